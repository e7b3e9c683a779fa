#!/usr/bin/env bash
# The GPU checks of the speed issue, as one script for a machine with a CUDA device:
#   bash scripts/gpu_check.sh [OUT_DIR]
# In order of importance (each step under its own time limit, STEP_TIMEOUT seconds, default 170,
# so that a slow one cannot starve the rest; output is written as it comes):
# 1. whole-loop agent steps/s per agent, bf16, 8 envs, with the projected hours for 200M frames;
# 2. the CUDA tests (GPU-resident replay, every agent on CUDA in fp32/bf16, CUDA-graph updates
#    against eager ones, training runs with the buffer on the device and with compile=graphs);
# 3. ms per update per agent on CUDA (fp32, bf16, compile=graphs);
# 4. the whole loop for C51 and IQN with compile=graphs;
# 5. what compile=auto measures and picks on CUDA (off, update, graphs) for QR-DQN and IQN.
# Output goes to OUT_DIR (default gpu_check/), one file per step, ready for docs/performance.md.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu_check}"
limit="${STEP_TIMEOUT:-170}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu.txt"
timeout "$limit" python scripts/bench_train.py --device cuda --precision bf16 --overlap on \
    --steps 20000 --warmup 5000 --updates 200 --num-envs 8 2>&1 | tee "$out/bench_train.txt"
timeout "$limit" python -m pytest tests/test_cuda.py -q 2>&1 | tee "$out/tests.txt"
timeout "$limit" python scripts/bench_update.py --devices cuda --compile graphs --iters 50 2>&1 \
    | tee "$out/bench_update.txt"
timeout "$limit" python scripts/bench_train.py --device cuda --precision bf16 --overlap on \
    --agents c51 iqn --compile graphs --steps 20000 --warmup 5000 --updates 200 --num-envs 8 \
    2>&1 | tee "$out/bench_train_graphs.txt"
for agent in qrdqn iqn; do
    timeout "$limit" distrl-train experiment=smoke agent="$agent" trainer.device=cuda \
        trainer.compile=auto run_dir="$out/compile_auto_$agent" 2>&1 | grep -E "compile=auto|Error" \
        | tee -a "$out/compile_auto.txt"
done
