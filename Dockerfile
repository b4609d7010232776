# thtl-bench on CUDA. Build and run (docs/reproducibility.md):
#   docker build -t thtl-bench --build-arg FETCH_WEIGHTS="resnet18 resnet50" .
#   docker run --gpus all --rm --user "$(id -u):$(id -g)" -e HOME=/tmp -v "$PWD/records:/workspace/records" \
#       thtl-bench nox -s benchmark -- paper
#
# Layers go from the slowest-changing to the fastest: base image, pinned requirements, ImageNet
# weights (FETCH_WEIGHTS), then the source tree. A new commit rebuilds only the source layers; the
# weights are downloaded again only when the requirements or FETCH_WEIGHTS change.
# The weights layer is a heredoc: build with BuildKit (the default builder since Docker 23).
#
# Base: the official PyTorch CUDA *runtime* image whose torch is requirements/torch.txt's pin
# (torch 2.14.1+cu130, the same CUDA 13.0 build pip installs on Linux). The tag is pinned;
# tests/repo/test_shell.py checks that its torch version equals the pin.
FROM pytorch/pytorch:2.14.1-cuda13.0-cudnn9-runtime

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# TORCH_HOME and HF_HOME are the caches thtl_bench.models.weights reads offline: the torch hub cache
# ($TORCH_HOME/hub/checkpoints, file names carry a sha256 prefix that is checked) and the Hugging
# Face cache ($HF_HOME/hub, blobs named by their sha256). tests/repo/test_ci.py checks that the
# resolver looks exactly there. THTL_WEIGHTS_DIR is for `thtl-bench weights import` or a mount.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    THTL_WEIGHTS_DIR=/opt/thtl-weights \
    TORCH_HOME=/opt/thtl-cache/torch \
    HF_HOME=/opt/thtl-cache/huggingface

# The same pinned requirements, in the same order, as CI (.ci/run). torch.txt only confirms the
# base image's torch (pip keeps 2.14.1+cu130: it satisfies ==2.14.1); a different torch fails here.
COPY requirements/ /tmp/requirements/
RUN python -m pip install --no-cache-dir -r /tmp/requirements/torch.txt \
    && python -m pip install --no-cache-dir -r /tmp/requirements/base.txt -r /tmp/requirements/dev.txt \
    && python -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"

# ImageNet weights, baked before the source is copied so that no commit invalidates them: a space-
# or comma-separated list of thtl-bench model names, e.g. --build-arg FETCH_WEIGHTS="resnet18 vgg16".
# Empty: none. Names resolve as thtl_bench.models does: tv:NAME / timm:NAME, a bare name in
# torchvision first, then timm. torchvision downloads the DEFAULT weights (the registry's) into the
# torch hub cache with its hash check; timm downloads its pretrained tag into the Hugging Face
# cache (or the torch hub cache for url-only weights). This is the only step that downloads.
# Leave out efficientnet_lite0: its weights ship in a PyPI package (requirements/base.txt), and a
# hub copy would be found first and change which file loads.
ARG FETCH_WEIGHTS=""
RUN python - <<'EOF'
import os
import sys


def library(name, tv_names, timm):
    """(library, arch) of a thtl-bench model name, or None when neither library has it."""
    prefix, sep, arch = name.partition(":")
    if not sep:
        prefix, arch = "", name
    if prefix in ("tv", "torchvision", "") and arch in tv_names:
        return "torchvision", arch
    if prefix in ("timm", "") and timm.is_model(arch.split(".", 1)[0]):
        return "timm", arch
    return None


names = os.environ.get("FETCH_WEIGHTS", "").replace(",", " ").split()
if names:
    import timm
    import torchvision.models as tvm

    tv_names = set(tvm.list_models(module=tvm))
    for name in names:
        found = library(name, tv_names, timm)
        if found is None:
            sys.exit(f"FETCH_WEIGHTS: {name!r} is neither a torchvision nor a timm model name "
                     "(write tv:NAME or timm:NAME as in params.yaml)")
        lib, arch = found
        if lib == "torchvision":
            weights = tvm.get_model_weights(arch).DEFAULT
            weights.get_state_dict(progress=False, check_hash=True)
            print(f"{name}: torchvision {weights} -> torch hub cache", flush=True)
        else:
            timm.create_model(arch, pretrained=True)
            print(f"{name}: timm {arch} -> Hugging Face (or torch hub) cache", flush=True)
EOF

# From here on nothing reaches a hub: weights come from the caches above, THTL_WEIGHTS_DIR or a
# Python package (efficientnet_lite0).
ENV HF_HUB_OFFLINE=1 \
    TIMM_OFFLINE=1

# Non-root user; it owns the working tree and the folders the suite writes.
RUN useradd --no-log-init --create-home --uid 1000 thtl \
    && mkdir -p /workspace "$THTL_WEIGHTS_DIR" \
    && chown thtl:thtl /workspace "$THTL_WEIGHTS_DIR"
WORKDIR /workspace
# The source tree (.dockerignore keeps out .git, DVC's local config with remote credentials, .env
# files, data, caches and checkpoints).
COPY --chown=thtl:thtl . /workspace
RUN python -m pip install --no-cache-dir --no-deps -e . \
    && mkdir -p data records checkpoints report .benchmarks \
    && chown thtl:thtl data records checkpoints report .benchmarks
# Numeric, so the host and `docker run --user` checks can resolve it (uid 1000 = thtl).
USER 1000:1000

# Data and results live outside the image: bind-mount them (no VOLUME: an anonymous volume would
# shadow a bind mount), e.g.
#   -v "$PWD/data:/workspace/data:ro" -v "$PWD/records:/workspace/records" \
#   -v "$PWD/checkpoints:/workspace/checkpoints" -v "$PWD/report:/workspace/report"
# or mount a copy of the working tree without .git at /workspace (the editable install then runs
# the mounted code), as .github/workflows/gpu-benchmark.yml does.

# The benchmark of the default profile; pass a profile after `--` (nox -s benchmark -- paper).
CMD ["nox", "-s", "benchmark"]
