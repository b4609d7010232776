# thtl-bench on CUDA. Build and run (docs/reproducibility.md):
#   docker build -t thtl-bench --build-arg FETCH_WEIGHTS="resnet18 resnet50" .
#   docker run --gpus all --rm --user "$(id -u):$(id -g)" -e HOME=/tmp -v "$PWD:/workspace" \
#       thtl-bench nox -s benchmark -- paper
#
# Base: the official PyTorch CUDA *runtime* image whose torch is requirements/torch.txt's pin
# (torch 2.14.1+cu130, the same CUDA 13.0 build pip installs on Linux). The tag is pinned;
# tests/test_shell.py checks that its torch version equals the pin.
FROM pytorch/pytorch:2.14.1-cuda13.0-cudnn9-runtime

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    THTL_WEIGHTS_DIR=/opt/thtl-weights

# The same pinned requirements, in the same order, as CI (.ci/run). torch.txt only confirms the
# base image's torch (pip keeps 2.14.1+cu130: it satisfies ==2.14.1); a different torch fails here.
COPY requirements/ /tmp/requirements/
RUN python -m pip install --no-cache-dir -r /tmp/requirements/torch.txt \
    && python -m pip install --no-cache-dir -r /tmp/requirements/base.txt -r /tmp/requirements/dev.txt \
    && python -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"

# Non-root user; it owns the working tree and the folders the suite writes.
RUN useradd --no-log-init --create-home --uid 1000 thtl \
    && mkdir -p /workspace "$THTL_WEIGHTS_DIR" \
    && chown thtl:thtl /workspace "$THTL_WEIGHTS_DIR"
WORKDIR /workspace
COPY --chown=thtl:thtl . /workspace
RUN python -m pip install --no-cache-dir --no-deps -e . \
    && mkdir -p data records checkpoints report .benchmarks \
    && chown thtl:thtl data records checkpoints report .benchmarks
# Numeric, so the host and `docker run --user` checks can resolve it (uid 1000 = thtl).
USER 1000:1000

# ImageNet weights baked at build time (the only step that downloads): a space- or
# comma-separated model list, e.g. --build-arg FETCH_WEIGHTS="resnet18 vgg16". Empty: none.
ARG FETCH_WEIGHTS=""
RUN if [ -n "$FETCH_WEIGHTS" ]; then \
        echo "$FETCH_WEIGHTS" | tr ',' ' ' | HF_HUB_OFFLINE=0 xargs thtl-bench weights fetch; \
    fi

# From here on nothing reaches a hub: weights come from THTL_WEIGHTS_DIR or a Python package.
ENV HF_HUB_OFFLINE=1 \
    TIMM_OFFLINE=1

# Data and results live outside the image: bind-mount them (no VOLUME: an anonymous volume would
# shadow a bind mount of the whole checkout, e.g. in CI), e.g.
#   -v "$PWD/data:/workspace/data" -v "$PWD/records:/workspace/records" \
#   -v "$PWD/checkpoints:/workspace/checkpoints" -v "$PWD/report:/workspace/report"
# or mount the whole checkout at /workspace (the editable install then runs the mounted code).

# The benchmark of the default profile; pass a profile after `--` (nox -s benchmark -- paper).
CMD ["nox", "-s", "benchmark"]
