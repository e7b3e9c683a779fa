#!/usr/bin/env bash
# The project's install steps, shared by CI (.ci/run) and the Docker image (Dockerfile).
#   bash scripts/install.sh [EXTRAS] [--editable]     (PYTHON=... picks the interpreter)
# PyTorch is installed first: `torch==2.13.0` is the CPU build where pip is offered a local CPU
# wheel (a torch-2.13.0+cpu wheel in a --find-links / PIP_FIND_LINKS directory, as on our CI
# machines: pip ranks the local +cpu version above PyPI's 2.13.0, and downloads nothing for
# torch) and PyPI's CUDA build elsewhere (the Docker image for GPU nodes). On a CPU-only machine
# without a local wheel, set TORCH_INDEX_URL to PyTorch's CPU wheel index to avoid the multi-GB
# CUDA download. Offline: PIP_NO_INDEX=1 PIP_FIND_LINKS=<wheel directory> (README.md).
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
