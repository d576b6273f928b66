#!/usr/bin/env bash
# Install the mmdetection plug-in's dependencies: mmcv 2.1.0 built from source with its
# ops (no wheel matches torch 2.14), then mmdet 3.3.0 and its light requirements.
# Skips the build when a working mmcv with ops is already importable or its wheel is
# cached. ~7 min on 2 cores when it builds.
set -euo pipefail
if python -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" 2>/dev/null; then
  echo "mmcv 2.1.0 with ops already installed"
else
  # the wheel built here is kept in ssvision's cache, keyed by the torch it was built
  # against, so a fresh environment with the same torch installs it in seconds
  torch_version=$(python -c "import torch; print(torch.__version__.replace('+', '_'))")
  cache="${SSVISION_CACHE:-$HOME/.cache/ssvision}/wheels/mmcv-torch$torch_version"
  if ! ls "$cache"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
    pip install "setuptools>=77.0.3,<82"
    work=$(mktemp -d)
    pip download --no-deps --no-binary :all: --no-build-isolation mmcv==2.1.0 -d "$work"
    tar xzf "$work"/mmcv-2.1.0.tar.gz -C "$work"
    # torch 2.14's headers need C++20; -g0 drops ~80 MB of debug info
    sed -i "s/'-std=c++17'/'-std=c++20', '-g0'/g" "$work"/mmcv-2.1.0/setup.py
    mkdir -p "$cache"
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} pip wheel --no-build-isolation --no-deps \
      -w "$cache" "$work"/mmcv-2.1.0
    rm -rf "$work"
  fi
  pip install --no-deps "$cache"/mmcv-2.1.0-*.whl
fi
python -c "import mmdet; assert mmdet.__version__ == '3.3.0'" 2>/dev/null \
  || pip install --no-deps mmdet==3.3.0
pip install shapely six terminaltables tqdm
