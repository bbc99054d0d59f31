#!/usr/bin/env bash
# The GPU check: the training step in float32 and mixed precision, each with and without XLA, under MirroredStrategy
# on every visible GPU, and generator inference at batch 1, 8 and 64, each beside the PyTorch original
# (../shared/bench/torch_reference.py, through benchmarks.torch_on_device) on the same device; one table at the end.
#
#   benchmarks/gpu_check.sh            # paper sizes: 224 px, conv_dim 64, 6 residual blocks, 8 frames per GPU
#   benchmarks/gpu_check.sh --smoke    # tiny sizes and iterations, the same rows and table (a CPU: a few minutes)
#
# Runs from anywhere, in under 8 minutes: every run is its own process under `timeout` (100 s a training run with XLA,
# which compiles the whole step, 50-60 s any other), and a run that fails or runs out of time gives its reason in the
# table instead of figures. Installs nothing. Needs the repository's install (`pip install -e ".[test]"`) and ../shared
# beside the checkout; on a GPU machine TensorFlow must see the GPU (`pip install "tensorflow[and-cuda]==2.21.0"`, or
# CUDA 12 and cuDNN 9 on the system) and torch must be a CUDA build (the test extra pins the CPU build: the torch
# column then says so). Figures are images/s; the torch side is the original as written: float32, eager. $PYTHON
# picks the interpreter (default: python on the PATH).
set -euo pipefail

size=224 conv_dim=64 res_blocks=6 batch=8 iters=10 warmup=3
case "${1:-}" in
  --smoke) size=32 conv_dim=8 res_blocks=1 batch=2 iters=1 warmup=1 ;;
  "") ;;
  *) echo "error: unknown argument '$1' (usage: benchmarks/gpu_check.sh [--smoke])" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.."
python=${PYTHON:-python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export TF_CPP_MIN_LOG_LEVEL=2
device=cpu
if command -v nvidia-smi > /dev/null && nvidia-smi -L > /dev/null 2>&1; then
  device=cuda
  nvidia-smi -L
fi

run() {  # run NAME LIMIT_S COMMAND...: the command's output, error output and exit status, kept under NAME
  local name=$1 limit=$2
  shift 2
  echo "[$(date +%T)] $name" >&2
  local status=0
  timeout "$limit" "$@" > "$work/$name.out" 2> "$work/$name.err" || status=$?
  echo "$status" > "$work/$name.status"
}

sizes=(--size="$size" --conv_dim="$conv_dim" --res_blocks="$res_blocks" --iters="$iters" --warmup="$warmup" --json)
train=("$python" -m benchmarks.train_step "${sizes[@]}" --batch="$batch")
run train_f32 50 "${train[@]}"
run train_f32_xla 100 "${train[@]}" --jit_compile
run train_mixed 50 "${train[@]}" --mixed_precision
run train_mixed_xla 100 "${train[@]}" --mixed_precision --jit_compile
run train_mirrored 60 "${train[@]}" --strategy=mirrored
run infer 45 "$python" -m benchmarks.inference "${sizes[@]}" --batches=1,8,64 --noend_to_end --nopeak
run torch 60 "$python" -m benchmarks.torch_on_device "${sizes[@]}" --batch="$batch" --batches=1,8,64 \
  --device="$device"

"$python" -m benchmarks.gpu_table "$work" torch \
  "training, float32|train_f32|train_img_per_s" \
  "training, float32, XLA|train_f32_xla|train_img_per_s" \
  "training, mixed precision|train_mixed|train_img_per_s" \
  "training, mixed precision, XLA|train_mixed_xla|train_img_per_s" \
  "training, MirroredStrategy, float32|train_mirrored|train_img_per_s" \
  "inference, batch 1|infer|infer_img_per_s_b1" \
  "inference, batch 8|infer|infer_img_per_s_b8" \
  "inference, batch 64|infer|infer_img_per_s_b64"
