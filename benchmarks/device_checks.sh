#!/usr/bin/env bash
# Every GPU check and figure in one pass of at most 8 minutes, for a CUDA host with the
# project's dependencies; writes a handful of files into OUT_DIR.
#
#   bash benchmarks/device_checks.sh OUT_DIR
#   DEVICE=cpu bash benchmarks/device_checks.sh OUT_DIR   # a small dry run of every part
#
# 1. the GPU-marked tests (AMP train steps of every method, strong views on the GPU equal
#    the CPU tensor ops, a Runner run with --amp)                    -> gpu_tests.log
# 2. end-to-end throughput, data pipeline included (benchmarks/throughput.py), strong
#    views made by the DataLoader workers vs on the GPU, in one file per workload:
#    FixMatch WRN-28-2 on 32x32 RGB digits (USB's input) B = 64, mu = 7: fp32, AMP bf16,
#    AMP bf16 + channels_last
#    DSSN DeepLabV3+ r18 512x512, B = 8 + 8: AMP bf16                -> tp_*.json
# 3. step cost SSL / supervised, WRN-28-2, fp32 and AMP              -> step_*.json
# Each part has its own time limit so that a slow part cannot starve the others; every
# result lands in OUT_DIR as soon as it exists.
set -uo pipefail
out=${1:?usage: device_checks.sh OUT_DIR}
device=${DEVICE:-cuda}
mkdir -p "$out"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
if [ "$device" = cpu ]; then  # the same commands, small, without AMP or the GPU tests
  size=(--b 4 --mu 2 --workers 1 --steps 2 --rounds 1 --pipeline-items 100)
  seg_size=(--b 1 --mu 1 --workers 1 --steps 1 --rounds 1 --pipeline-items 10)
  bf16=() gpu_tests=(--collect-only) step=(--b 4 --mu 2 --steps 2) crop=128 scale=1.0,1.2
else
  size=(--b 64 --mu 7 --workers 8 --steps 20 --rounds 2 --pipeline-items 1000)
  seg_size=(--b 8 --mu 1 --workers 8 --steps 10 --rounds 2 --pipeline-items 100)
  bf16=(--amp bf16) gpu_tests=() step=(--b 64 --mu 7 --steps 20) crop=512 scale=4.0,5.0
fi

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  nproc; date -u +%Y-%m-%d; } > "$out/machine.txt" 2>&1

timeout 120 python -m pytest -m gpu tests/test_gpu -q -p no:cacheprovider "${gpu_tests[@]}" \
  > "$out/gpu_tests.log" 2>&1
echo "gpu tests exit $?" >> "$out/gpu_tests.log"

wrn=configs/fixmatch/fixmatch_wrn28-2_2k_mnist5k-4pc.py
common=(--device "$device" "${size[@]}" --usb-images)
timeout 80 python -m benchmarks.throughput --config $wrn "${common[@]}" \
  --out "$out/tp_wrn_fp32.json" > /dev/null 2>> "$out/tp.err"
timeout 80 python -m benchmarks.throughput --config $wrn "${common[@]}" "${bf16[@]}" \
  --skip-pipeline --out "$out/tp_wrn_bf16.json" > /dev/null 2>> "$out/tp.err"
timeout 80 python -m benchmarks.throughput --config $wrn "${common[@]}" "${bf16[@]}" \
  --channels-last --skip-pipeline --out "$out/tp_wrn_bf16_cl.json" > /dev/null 2>> "$out/tp.err"
seg=(--cfg-options "train_dataloader.dataset.labeled.pipeline.0.crop_size=($crop,$crop)"
     "train_dataloader.dataset.unlabeled.pipeline.0.crop_size=($crop,$crop)"
     "train_dataloader.dataset.labeled.pipeline.0.scale_range=($scale)"
     "train_dataloader.dataset.unlabeled.pipeline.0.scale_range=($scale)")
timeout 120 python -m benchmarks.throughput \
  --config configs/dssn/dssn_deeplabv3plus-r18_2k_scenes-1-16.py \
  --device-config configs/dssn/dssn-devaug_deeplabv3plus-r18_2k_scenes-1-16.py \
  --device "$device" "${seg_size[@]}" "${bf16[@]}" \
  "${seg[@]}" --out "$out/tp_dssn${crop}_bf16.json" > /dev/null 2>> "$out/tp.err"

amps=("" "--amp"); [ "$device" = cpu ] && amps=("")
for amp in "${amps[@]}"; do
  timeout 45 python -m benchmarks.step_cost --device "$device" --net WideResNet "${step[@]}" \
    $amp --out "$out/step_wrn${amp:+_amp}.json" > /dev/null 2>> "$out/step.err"
done
exit 0
