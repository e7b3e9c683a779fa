#!/usr/bin/env bash
# The GPU checks of the speed issue, as one script for a machine with a CUDA device:
#   bash scripts/gpu_check.sh [OUT_DIR]
# 1. the CUDA tests (GPU-resident replay, every agent on CUDA in fp32/bf16, a training run with the
#    buffer on the device); 2. ms per update per agent (fp32, bf16, compiled); 3. whole-loop agent
#    steps/s per agent with the projected hours for 200M frames. Output goes to OUT_DIR (default
#    gpu_check/), one file per step, ready for docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu_check}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu.txt"
python -m pytest tests/test_cuda.py -q 2>&1 | tee "$out/tests.txt"
python scripts/bench_update.py --devices cuda --compile --iters 50 2>&1 | tee "$out/bench_update.txt"
python scripts/bench_train.py --device cuda --precision bf16 --overlap on --steps 20000 \
    --warmup 5000 --updates 200 --num-envs 8 2>&1 | tee "$out/bench_train.txt"
