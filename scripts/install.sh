#!/usr/bin/env bash
# The project's install steps, shared by CI (.ci/run) and the Docker image (Dockerfile).
#   bash scripts/install.sh [EXTRAS] [--editable]     (PYTHON=... picks the interpreter)
# PyTorch is installed first: `torch==2.13.0` is the CPU build where a local CPU wheel is offered
# (as on our CI machines) and PyPI's CUDA build elsewhere (the Docker image for GPU nodes). On a
# CPU-only machine without a local wheel, set TORCH_INDEX_URL to PyTorch's CPU wheel index to
# avoid the multi-GB CUDA download.
set -euo pipefail
python="${PYTHON:-$(command -v python || command -v python3)}"
extras="${1:-}"
editable=""
if [ "${2:-}" = "--editable" ]; then editable="-e"; fi
if [ -n "${TORCH_INDEX_URL:-}" ]; then
    "$python" -m pip install "torch==2.13.0" --index-url "$TORCH_INDEX_URL"
else
    "$python" -m pip install "torch==2.13.0"
fi
"$python" -m pip install $editable ".${extras:+[$extras]}"
