#!/usr/bin/env bash
# CUDA checks and GPU figures in one pass, for a CUDA host with the project's dependencies.
#
#   bash benchmarks/device_checks.sh OUT_DIR [SEG_ITERS] [SEG_PARALLEL] [TIMING_ITERS]
#
# 1. the GPU-marked tests (AMP train steps, a Runner run with --amp);
# 2. step cost SSL / supervised on CUDA, fp32 and AMP (TinyCNN and WRN-28-2);
# 3. the segmentation benchmark (benchmarks/seg_scenes.py) on balanced and long-tailed
#    scenes (long-tailed at 1/16 only), SEG_PARALLEL runs at a time, then each method timed alone.
# Each part has its own time limit so that a slow part cannot starve the others; every
# result lands in OUT_DIR as soon as it exists.
set -uo pipefail
out=${1:?usage: device_checks.sh OUT_DIR [SEG_ITERS] [SEG_PARALLEL]}
iters=${2:-2000}
parallel=${3:-9}
timing=${4:-100}
mkdir -p "$out"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  nproc; date -u +%Y-%m-%d; } > "$out/machine.txt" 2>&1

timeout 150 python -m pytest -m gpu tests/test_gpu -q -p no:cacheprovider \
  > "$out/gpu_tests.log" 2>&1
echo "gpu tests exit $?" >> "$out/gpu_tests.log"

for net in TinyCNN WideResNet; do
  for amp in "" "--amp"; do
    b=32; [ "$net" = WideResNet ] && b=64
    timeout 90 python benchmarks/step_cost.py --device cuda --net "$net" --b "$b" --mu 7 \
      --steps 30 $amp --out "$out/step_${net}${amp:+_amp}.json" >/dev/null 2>>"$out/step.err"
  done
done

timeout 400 python benchmarks/seg_scenes.py --scenes balanced lt10:1-16 --fractions 1-16 1-8 \
  --iters "$iters" --parallel "$parallel" --workers 1 --timing-iters "$timing" \
  --out-dir work_dirs/device_seg > "$out/seg_table.md" 2>&1
echo "seg benchmark exit $?" >> "$out/seg_table.md"
cp work_dirs/device_seg/results.jsonl "$out/seg_results.jsonl" 2>/dev/null
tar czf "$out/seg_logs.tgz" work_dirs/device_seg/*.log \
  work_dirs/device_seg/*/*/vis_data/scalars.json 2>/dev/null
exit 0
