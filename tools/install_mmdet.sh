#!/usr/bin/env bash
# Install the mmdetection plug-in's dependencies: mmcv 2.1.0 built from source with its
# ops (no wheel matches torch 2.14), then mmdet 3.3.0 and its light requirements.
# Skips the build when a working mmcv with ops is already importable. ~7 min on 2 cores.
set -euo pipefail
if python -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" 2>/dev/null; then
  echo "mmcv 2.1.0 with ops already installed"
else
  pip install "setuptools>=77.0.3,<82"
  work=$(mktemp -d)
  pip download --no-deps --no-binary :all: --no-build-isolation mmcv==2.1.0 -d "$work"
  tar xzf "$work"/mmcv-2.1.0.tar.gz -C "$work"
  # torch 2.14's headers need C++20; -g0 drops ~80 MB of debug info
  sed -i "s/'-std=c++17'/'-std=c++20', '-g0'/g" "$work"/mmcv-2.1.0/setup.py
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} pip install --no-build-isolation --no-deps \
    "$work"/mmcv-2.1.0
  rm -rf "$work"
fi
python -c "import mmdet; assert mmdet.__version__ == '3.3.0'" 2>/dev/null \
  || pip install --no-deps mmdet==3.3.0
pip install shapely six terminaltables tqdm
