"""Model registry: names -> ModelSpec -> StagedModel (torchvision or timm, random or ImageNet init).

Names: the catalog's registered models (thtl_bench.catalog, canonical order), or any library
model as tv:NAME / timm:NAME / a bare library name. Families (how a library model is cut into
stages and groups): thtl_bench.models.staging.FAMILIES.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re

from thtl_bench.catalog import CATALOG, MODELS
from thtl_bench.errors import UserError
from thtl_bench.models.library import library_model
from thtl_bench.models.spec import ModelSpec, WeightsOrigin
from thtl_bench.models.staged import StagedModel
from thtl_bench.models.staging import stage

INITS = ("random", "imagenet")


class UnknownModel(UserError, KeyError):
    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


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
    if name in CATALOG:
        entry = CATALOG[name]
        spec = _tv_spec(name, name, True) if entry.library == "torchvision" else _timm_spec(name, name, True)
        if entry.package:
            spec = dataclasses.replace(spec, weights=dataclasses.replace(spec.weights, package=entry.package))
        return spec
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

    init="imagenet" resolves the weights offline first (see thtl_bench.models.weights) before building
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
        from thtl_bench.models import fetch, weights

        resolved = fetch.resolve(spec, cfg, checkpoint=checkpoint)  # fails fast, before any build
        model = library_model(spec, 1000, size, pretrained_layout=True)
        info.update(weights.load_into(model, spec, resolved))
    else:
        model = library_model(spec, num_classes, size, pretrained_layout=False)
    staged = stage(model, spec.name, spec.library)
    staged.weights_info = info
    if init == "imagenet" and staged.num_classes != num_classes:
        staged.replace_head(num_classes)
    return staged
