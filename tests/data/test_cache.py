"""load_domain: one geometry, decoded once, split files written/validated; the data folder vs dvc.lock."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from support.data import make_cfg, png

from thtl_bench.data import cache
from thtl_bench.data.check import dvc_hash, verify
from thtl_bench.data.errors import DataError
from thtl_bench.data.phantoms import synth


def manifest_set(tmp_path, n=12, size=(40, 30)):
    root = tmp_path / "larynx"
    rows = ["path,label,patient_id"]
    for i in range(n):
        lab = "malignant" if i % 2 else "benign"
        png(root / lab / f"{i}.png", i, size)
        rows.append(f"{lab}/{i}.png,{lab},P{i // 2 if lab == 'benign' else i}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return make_cfg(tmp_path)


def test_load_domain_geometry_labels_splits(tmp_path, monkeypatch):
    cfg = manifest_set(tmp_path)
    dt = cache.load_domain(cfg, "larynx")
    assert dt.images.shape == (12, 16, 16, 3) and dt.images.dtype == np.uint8
    assert isinstance(dt.images, np.memmap) and dt.masks is None and dt.kind == "real"
    assert dt.ids == sorted(dt.ids) and dt.labels.tolist() == [int(i.startswith("malignant")) for i in dt.ids]
    assert set(dt.split) <= {"train", "val", "test"} and len(dt.index("train")) > 0
    assert (tmp_path / "splits" / "larynx" / "k0.csv").is_file()
    # second load: nothing decoded again
    calls = []
    monkeypatch.setattr(cache, "decode", lambda *a: calls.append(a))
    again = cache.load_domain(cfg, "larynx")
    assert calls == [] and again.fingerprint == dt.fingerprint
    np.testing.assert_array_equal(again.images, dt.images)


def test_stale_split_file_refused(tmp_path):
    cfg = manifest_set(tmp_path)
    cache.load_domain(cfg, "larynx")
    png(tmp_path / "larynx" / "benign" / "0.png", 99, (40, 30))  # content changed
    with pytest.raises(DataError, match="data split") as exc:
        cache.load_domain(cfg, "larynx")
    assert "k0.csv" in str(exc.value)
    (tmp_path / "splits" / "larynx" / "k0.csv").unlink()
    cache.load_domain(cfg, "larynx", split_seed=5)  # writes k5.csv
    (tmp_path / "splits" / "larynx" / "k5.csv").rename(tmp_path / "splits" / "larynx" / "k0.csv")
    with pytest.raises(DataError, match="split settings"):  # k0.csv holds another seed's split
        cache.load_domain(cfg, "larynx", split_seed=0)


def test_every_split_seed_is_its_own_split(tmp_path):
    cfg = make_cfg(tmp_path)
    cfg["synth"]["larynx"]["patients"] = {"benign": 8, "malignant": 8}
    synth(tmp_path, cfg["synth"], ["larynx"])
    a, b = cache.load_domain(cfg, "larynx", split_seed=0), cache.load_domain(cfg, "larynx", split_seed=1)
    assert (tmp_path / "splits" / "larynx" / "k0.csv").is_file() and (tmp_path / "splits" / "larynx" / "k1.csv").is_file()
    test_a = {a.groups[i] for i in a.index("test")}
    test_b = {b.groups[i] for i in b.index("test")}
    assert test_a != test_b  # another split seed: other test patients
    assert not test_a & {a.groups[i] for i in a.index("train")}  # still no leak within a split


def test_bad_image_named_on_load(tmp_path):
    cfg = manifest_set(tmp_path)
    (tmp_path / "larynx" / "benign" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(DataError) as exc:
        cache.load_domain(cfg, "larynx")
    assert "2.png" in str(exc.value) and "unreadable" in [p.code for p in exc.value.problems]


def test_fraction_marks_unused_and_phantom_masks(tmp_path):
    cfg = make_cfg(tmp_path)
    cfg["synth"]["larynx"]["patients"] = {"benign": 8, "malignant": 8}
    cfg["synth"]["larynx"]["images_per_patient"] = [1, 2]
    synth(tmp_path, cfg["synth"], ["larynx"])
    dt = cache.load_domain(cfg, "larynx", fraction=0.3)
    assert dt.kind == "phantom" and dt.masks.shape == dt.images.shape[:3]
    assert set(np.unique(dt.masks)) <= {0, 1} and dt.masks.mean() > 0.02
    assert len(dt.index("unused")) > 0
    full = cache.load_domain(cfg, "larynx")
    assert len(full.index("unused")) == 0
    assert len(full.index("train")) == len(dt.index("train")) + len(dt.index("unused"))


def _phantom_cfg(tmp_path, monkeypatch) -> dict:
    """A tiny phantom profile whose data folder is data/smoke under tmp_path (the cwd), params
    and dvc.lock beside it."""
    monkeypatch.chdir(tmp_path)
    cfg = make_cfg(tmp_path)
    cfg.update(profile="smoke", _params_file=str(tmp_path / "params.yaml"))
    cfg["data"].update(root="data/smoke", kind="phantom")
    for d in ("fundus", "larynx"):
        cfg["data"][d]["root"] = f"data/smoke/{d}"
    cfg["synth"]["fundus"]["per_grade"] = [1, 1, 1, 1, 1]
    cfg["synth"]["larynx"]["patients"] = {"benign": 1, "malignant": 1}
    return cfg


def _lock(tmp_path, cfg, md5: str, **params) -> None:
    entry = {"cmd": ["thtl-bench synth --profile smoke"],
             "params": {"params.yaml": {"synth": cfg["synth"], "grid.domains": cfg["grid"]["domains"],
                                        "profiles.smoke": {}, **params}},
             "outs": [{"path": "data/smoke", "hash": "md5", "md5": md5}]}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"synth": entry}}))


def test_dvc_hash_is_what_dvc_records(tmp_path):
    """dvc_hash (dvc-data's build) gives the md5 `dvc add` writes for the same folder."""
    import shutil
    import subprocess
    import sys

    dvc = shutil.which("dvc") or shutil.which("dvc", path=str(Path(sys.executable).parent))
    if dvc is None:
        pytest.skip("dvc not installed")
    png(tmp_path / "d" / "a" / "x.png", 1)
    png(tmp_path / "d" / "b.png", 2)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([dvc, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([dvc, "add", "-q", "d"], cwd=tmp_path, check=True)
    want = yaml.safe_load((tmp_path / "d.dvc").read_text())["outs"][0]
    got = dvc_hash(tmp_path / "d")
    assert (got["md5"], got["nfiles"], got["size"]) == (want["md5"], want["nfiles"], want["size"])
    png(tmp_path / "d" / "b.png", 3)
    assert dvc_hash(tmp_path / "d")["md5"] != want["md5"]


def test_verify_checks_the_folder_against_dvc_lock_and_regenerates_missing_phantoms(tmp_path, monkeypatch):
    cfg = _phantom_cfg(tmp_path, monkeypatch)
    synth("data/smoke", cfg["synth"], ["fundus", "larynx"], profile="smoke")
    assert "records no stage output data/smoke" in verify(cfg)[-1]  # no dvc.lock yet: used as found
    made = dvc_hash(tmp_path / "data" / "smoke")
    _lock(tmp_path, cfg, made["md5"])
    assert "matches" in verify(cfg)[-1] and "stage synth" in verify(cfg)[-1]
    (tmp_path / "data" / "smoke" / "larynx" / "manifest.csv").write_text("path,label\n")  # planted change
    with pytest.raises(DataError, match=r"does not match .*dvc.lock \(stage synth\)"):
        verify(cfg)
    import shutil

    shutil.rmtree("data")
    lines = verify(cfg)  # regenerated, deterministically: the recorded hash again
    assert lines[0].startswith("regenerated") and "matches" in lines[-1]
    assert json.loads((tmp_path / "data" / "smoke" / "larynx" / "phantom_stats.json").read_text())["kind"] == "phantom"
    other = {**cfg["synth"], "seed": cfg["synth"]["seed"] + 1}
    _lock(tmp_path, cfg, "0" * 32 + ".dir", synth=other)  # the lock describes another recipe
    assert "other synth parameters" in verify(cfg)[-1]


def test_verify_never_makes_phantoms_for_missing_real_data(tmp_path, monkeypatch):
    cfg = _phantom_cfg(tmp_path, monkeypatch)
    cfg["data"]["kind"] = "real"
    with pytest.raises(DataError, match="dvc pull synth"):
        verify(cfg)
    assert not (tmp_path / "data").exists()
