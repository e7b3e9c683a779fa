# distrl-agents for GPU nodes: CUDA runtime, PyTorch's CUDA build, the CLI as entry point.
#   docker build -t distrl-agents .
#   docker run --gpus all -v "$PWD:/workspace" distrl-agents agent=iqn env.game=breakout
#   docker run --gpus all -v "$PWD:/workspace" distrl-agents -m agent=c51,iqn env.game=pong,breakout
# The whole working directory is mounted: runs/ (single runs) and multirun/ (sweeps) both land
# on the host.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# The distribution's python3 is tied to the pinned base image; pinning it again adds nothing.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

WORKDIR /opt/distrl-agents
COPY pyproject.toml README.md ./
COPY distrl_agents ./distrl_agents
COPY scripts ./scripts
# The same install steps as CI (scripts/install.sh); here torch==2.13.0 resolves to PyPI's CUDA
# build.
RUN bash scripts/install.sh

# Outputs (runs/, multirun/) go to a mounted volume; TensorBoard reads the same directory.
WORKDIR /workspace
VOLUME ["/workspace"]
EXPOSE 6006
ENTRYPOINT ["distrl-train"]
CMD []
