# distrl-agents for GPU nodes: PyTorch's CUDA build, the CLI as entry point, a non-root user.
#   docker build -t distrl-agents .
#   docker run --gpus all --ipc=host --user "$(id -u):$(id -g)" -v "$PWD:/workspace" \
#       distrl-agents experiment=iqn_paper env.game=breakout
#   docker run --gpus all --ipc=host --user "$(id -u):$(id -g)" -v "$PWD:/workspace" \
#       distrl-agents -m experiment=c51_paper agent=c51,iqn env.game=pong,breakout hydra/launcher=local
# The whole working directory is mounted: runs/ (single runs) and multirun/ (sweeps) both land
# on the host, owned by the user that --user names (the image's own user, uid 1000, otherwise).
#
# No CUDA base image: PyTorch's CUDA wheels carry their CUDA and cuDNN libraries (the nvidia-*
# packages pip installs with torch), and the host's driver comes in through the NVIDIA container
# toolkit (--gpus). A CUDA runtime image would hold a second copy of several GB.
FROM ubuntu:24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    HOME=/tmp/home \
    MPLCONFIGDIR=/tmp/home/.matplotlib

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

# A non-root user, uid 1000 (ubuntu:24.04's own "ubuntu" user gives way to it); any --user uid
# works too (HOME and caches live under /tmp/home, writable by all).
RUN (userdel --remove ubuntu 2>/dev/null || true) \
    && useradd --create-home --uid 1000 --user-group distrl \
    && mkdir -p /tmp/home /workspace \
    && chmod 1777 /tmp/home \
    && chown 1000:1000 /workspace
USER 1000:1000

# Outputs (runs/, multirun/) go to a mounted volume; TensorBoard reads the same directory.
WORKDIR /workspace
VOLUME ["/workspace"]
EXPOSE 6006
ENTRYPOINT ["distrl-train"]
CMD []
