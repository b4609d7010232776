"""Phantoms: same bytes for one seed on every CPU, the real layouts, meta files, grades and
patterns as specified, geometry (not colour) carrying the larynx label."""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.data import BASE

from thtl_bench import config
from thtl_bench.data import detmath as dm
from thtl_bench.data import fundus_phantom, larynx_phantom, phantoms
from thtl_bench.data.check import dvc_hash, recorded_recipe
from thtl_bench.data.phantoms import synth
from thtl_bench.io import dvc_lock_output

ROOT = Path(__file__).resolve().parents[2]
ALL = ("fundus", "larynx", "fundus_tortuous", "angio")
# numpy's transcendental ufuncs (tools/ulp_synth.py's list, plus power and friends) and math's
NUMPY_TRANSCENDENTAL = ("sin", "cos", "tan", "exp", "expm1", "log", "log1p", "hypot", "arctan", "arctan2", "arcsin",
                        "arccos", "tanh", "sinh", "cosh", "power", "float_power", "exp2", "log2", "log10", "cbrt")
MATH_TRANSCENDENTAL = ("sin", "cos", "tan", "exp", "expm1", "log", "log1p", "log2", "log10", "atan", "atan2", "pow",
                       "hypot", "cbrt", "sinh", "cosh", "tanh")


def tiny(**over) -> dict:
    s = copy.deepcopy(BASE["synth"])
    s.update(fundus_tortuous={"tortuosity_of": "malignant"}, angio={"per_class": [2, 1, 1]})
    for k, v in over.items():
        s[k] = v
    return s


def tree_digest(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def read_indices(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_same_seed_same_bytes_layouts_and_no_sheet_in_data(tmp_path):
    scfg = tiny()
    synth(tmp_path / "a", scfg, ALL, sheets=tmp_path / "sheets")
    synth(tmp_path / "b", scfg, ALL)
    a, b = tree_digest(tmp_path / "a"), tree_digest(tmp_path / "b")
    assert a == b and len(a) > 40
    assert {"fundus/train.csv", "larynx/manifest.csv", "fundus_tortuous/train.csv"} <= set(a)
    for d in ALL:
        assert {f"{d}/phantom_stats.json", f"{d}/phantom_indices.csv"} <= set(a)
        assert any(k.startswith(f"{d}/masks/") for k in a)
        sheet = Image.open(tmp_path / "sheets" / f"phantoms_{d}.png")
        assert sheet.mode == "RGB" and sheet.size[1] == len(phantoms.DOMAINS[d][0]) * (32 + 2)
    assert not [k for k in a if "sheet" in k or "contact" in k]  # sheets live outside the hashed data
    assert {k.split("/")[1] for k in a if k.startswith("angio/")} >= {"none", "moderate", "severe"}
    scfg["seed"] += 1
    synth(tmp_path / "c", scfg, ["larynx"])
    assert {k: v for k, v in a.items() if k.startswith("larynx/")} != tree_digest(tmp_path / "c")


def test_pngs_decode_to_what_was_drawn(tmp_path):
    synth(tmp_path, tiny(), ["angio", "larynx"])
    for p in sorted((tmp_path / "larynx").rglob("*.png"))[:6] + sorted((tmp_path / "angio").rglob("*.png"))[:6]:
        im = Image.open(p)
        assert im.mode in ("RGB", "L") and im.size == (32, 32)
    grey = np.asarray(Image.open(next((tmp_path / "angio" / "none").glob("*.png"))))
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()


def _nudging(fn, rng, calls, name):
    def g(*args, **kwargs):
        calls.append(name)
        r = fn(*args, **kwargs)
        if isinstance(r, np.ndarray) and r.dtype.kind == "f" and r.size:
            step = rng.integers(-1, 2, r.shape)
            r = np.where(step > 0, np.nextafter(r, np.inf), np.where(step < 0, np.nextafter(r, -np.inf), r)).astype(r.dtype)
        elif isinstance(r, float):
            r = math.nextafter(r, math.inf if rng.random() < 0.5 else -math.inf)
        return r
    return g


def test_bytes_do_not_depend_on_transcendental_last_bits(tmp_path, monkeypatch):
    """Other CPUs' SIMD kernels and libms differ in the last bits of sin, exp, ...: perturbing
    every such result by one ulp at random must not change a byte (and nothing calls them)."""
    scfg = tiny()
    synth(tmp_path / "plain", scfg, ALL)
    rng, calls = np.random.default_rng(1), []
    for name in NUMPY_TRANSCENDENTAL:
        monkeypatch.setattr(np, name, _nudging(getattr(np, name), rng, calls, f"np.{name}"))
    for name in MATH_TRANSCENDENTAL:
        monkeypatch.setattr(math, name, _nudging(getattr(math, name), rng, calls, f"math.{name}"))
    synth(tmp_path / "nudged", scfg, ALL)
    assert tree_digest(tmp_path / "plain") == tree_digest(tmp_path / "nudged")
    assert calls == []


def test_default_profile_reproduces_the_hash_dvc_lock_records(tmp_path):
    """params.yaml as committed -> the bytes whose DVC hash dvc.lock records for the synth stage's
    output (made on another machine): the phantoms are the same on every CPU. The lock's recipe
    must be today's, else the lock is stale (not the generator)."""
    cfg = config.load(ROOT / "params.yaml")
    found = dvc_lock_output(ROOT / "dvc.lock", ROOT / cfg["data"]["root"])
    assert found is not None, f"dvc.lock records no output {cfg['data']['root']}: run `dvc repro synth`, commit dvc.lock"
    stage, want, params = found
    assert stage == "synth"
    assert recorded_recipe(cfg, params) == {"synth": cfg["synth"], "domains": cfg["grid"]["domains"]}, \
        "dvc.lock's synth stage ran with other parameters: run `dvc repro synth`, commit dvc.lock"
    synth(tmp_path / "data", cfg["synth"], cfg["grid"]["domains"] + ["larynx"], profile=cfg["profile"])
    got = dvc_hash(tmp_path / "data")  # DVC's own hashing (dvc-data), as `dvc status` computes it
    assert (got["md5"], got["nfiles"], got["size"]) == (want["md5"], want["nfiles"], want["size"]), \
        "the phantoms differ from the bytes dvc.lock records: a generator change needs `dvc repro synth`"


def test_meta_records_version_params_hash_and_profile(tmp_path):
    scfg = tiny()
    st = synth(tmp_path / "a", scfg, ["fundus", "larynx"], profile="smoke")
    meta = json.loads((tmp_path / "a" / "larynx" / "phantom_stats.json").read_text())
    assert meta == st["larynx"]
    assert meta["generator_version"] == phantoms.GENERATOR_VERSION and meta["profile"] == "smoke"
    assert meta["params"]["image_size"] == 32 and meta["params"]["seed"] == scfg["seed"]
    assert meta["params"]["larynx"] == scfg["larynx"] and "fundus" not in meta["params"]
    assert meta["params_hash"] == phantoms.params_hash(phantoms.domain_params(scfg, "larynx"))
    assert set(meta["classes"]) == {"benign", "malignant"}
    for e in meta["classes"].values():
        assert {"dm", "icm", "soam", "mean_rgb", "vessel_fraction", "n", "groups"} <= set(e)
    # the hash follows the domain's own parameters only
    other = tiny(angio={"per_class": [5, 5, 5]})
    assert phantoms.domain_params(other, "larynx") == phantoms.domain_params(scfg, "larynx")
    bigger = tiny(image_size=48)
    assert phantoms.params_hash(phantoms.domain_params(bigger, "larynx")) != meta["params_hash"]
    rows = read_indices(tmp_path / "a" / "larynx" / "phantom_indices.csv")
    assert [r["id"] for r in rows] == [r["path"] for r in csv.DictReader(open(tmp_path / "a" / "larynx" / "manifest.csv"))]
    assert list(rows[0])[:3] == ["id", "label", "group"] and set(meta["ceiling_columns"]) <= set(rows[0])


def test_unknown_domain_or_missing_section_is_a_clear_error(tmp_path):
    with pytest.raises(phantoms.SynthError, match="unknown phantom domain 'retina'"):
        synth(tmp_path, tiny(), ["retina"])
    s = tiny()
    del s["angio"]
    with pytest.raises(phantoms.SynthError, match="synth.angio is missing"):
        synth(tmp_path, s, ["angio"])


def test_fundus_grades_follow_icdr():
    """Lesion plans satisfy each grade's definition (4-2-1 rule for 3, new vessels for 4)."""
    for i in range(200):
        for g in fundus_phantom.CLASSES:
            p = fundus_phantom.grade_plan(dm.draw(3, i, int(g)), g)
            haem, vessel = sum(p["haem_q"]), (len(p["bead_q"]), len(p["irma_q"]), p["nvd"] + p["nve"])
            if g == "0":
                assert p["ma"] == haem == p["exudate"] == 0 and vessel == (0, 0, 0)
            elif g == "1":
                assert p["ma"] >= 1 and haem == p["exudate"] == p["cotton_wool"] == 0 and vessel == (0, 0, 0)
            elif g == "2":
                assert haem + p["exudate"] >= 1 and vessel == (0, 0, 0)
            elif g == "3":
                assert min(p["haem_q"]) >= 1 and len(p["bead_q"]) >= 2 and len(p["irma_q"]) >= 1 and vessel[2] == 0
            else:
                assert vessel[2] >= 1


def test_smallest_lesion_spans_two_pixels_at_the_default_size():
    size = config.load(ROOT / "params.yaml")["synth"]["image_size"]
    u = size / 64
    assert 2 * fundus_phantom.LESIONS["ma"][0] * u >= 2.0
    # and it is there: a grade-1 image differs from its grade-0 twin by dark spots of >= 2 px
    diff = BASE["synth"]["difficulty"]
    a = fundus_phantom.image(5, 3, "0", size, {**diff, "noise": 0.0})["rgb"].astype(int)
    b = fundus_phantom.image(5, 3, "1", size, {**diff, "noise": 0.0})["rgb"].astype(int)
    dark = (a - b).sum(-1) > 30
    assert dark.sum() >= 4


def test_larynx_classes_differ_in_geometry_not_colour_or_ink():
    """Patients drawn from the same stream get the same look whatever their class (colour,
    contrast, ink, calibre, deep layer); only tau and the dot arrangement follow the label.
    Their images then differ in vessel geometry, not in mean colour or vessel area."""
    diff = BASE["synth"]["difficulty"]
    res = {"benign": [], "malignant": []}
    for i in range(12):
        pats = {lab: larynx_phantom.patient(dm.draw(1, i), lab, 0.2) for lab in res}
        for key in ("band", "hb", "ink", "deep_share", "calibre", "theta", "dot_share"):
            assert pats["benign"][key] == pats["malignant"][key]
        for lab in res:
            res[lab].append(larynx_phantom.image(1, i, 0, pats[lab], 32, diff))
    mean = {k: {c: float(np.mean([o["truth"][c] for o in v])) for c in ("dm", "soam", "vessel_fraction")}
            for k, v in res.items()}
    rgb = {k: np.mean([o["rgb"].reshape(-1, 3).mean(0) for o in v], 0) for k, v in res.items()}
    assert mean["malignant"]["soam"] > 2.5 * mean["benign"]["soam"]
    assert mean["malignant"]["dm"] > mean["benign"]["dm"] + 0.2
    assert np.abs(rgb["malignant"] - rgb["benign"]).max() < 0.5  # of 255
    assert abs(mean["malignant"]["vessel_fraction"] - mean["benign"]["vessel_fraction"]) < 0.005


def test_ink_area_is_filled_to_the_patient_target():
    pat = larynx_phantom.patient(dm.draw(2, 2), "malignant", 0.2)
    for k in range(3):
        r = larynx_phantom.image(2, 2, k, pat, 64, BASE["synth"]["difficulty"])
        assert abs(r["truth"]["vessel_fraction"] - pat["ink"]) < 0.1 * pat["ink"]


def test_fundus_tortuous_changes_only_the_trees(tmp_path):
    """The control's tortuosity sits at the malignant larynx's and far from the radial fundus;
    colour, vessel area, lesion counts and field of view stay those of its radial twins."""
    s = tiny(fundus={"per_grade": [3, 3, 3, 3, 3]}, larynx={"patients": {"benign": 1, "malignant": 12},
                                                              "images_per_patient": [1, 1]})
    synth(tmp_path, s, ["fundus", "fundus_tortuous", "larynx"])
    rows = {d: read_indices(tmp_path / d / "phantom_indices.csv") for d in ("fundus", "fundus_tortuous", "larynx")}
    mal = [r for r in rows["larynx"] if r["label"] == "malignant"]

    def mean(rs, c):
        return float(np.mean([float(r[c]) for r in rs]))

    for c in ("dm", "icm", "soam"):
        f, t, m = mean(rows["fundus"], c), mean(rows["fundus_tortuous"], c), mean(mal, c)
        assert abs(t - m) < 0.5 * abs(f - m), (c, f, t, m)
    for a, b in zip(rows["fundus"], rows["fundus_tortuous"], strict=True):
        assert a["id"] == b["id"] and a["label"] == b["label"]
        counts = ("n_ma", "n_haem", "haem_quadrants", "n_exudate", "n_cotton_wool", "beading_quadrants",
                  "irma_quadrants", "n_nv", "preretinal")
        assert [a[c] for c in counts] == [b[c] for c in counts]
        assert abs(float(a["vessel_fraction"]) - float(b["vessel_fraction"])) < 0.1 * float(a["vessel_fraction"])
        ia = np.asarray(Image.open(tmp_path / "fundus" / a["id"])).astype(float)
        ib = np.asarray(Image.open(tmp_path / "fundus_tortuous" / b["id"])).astype(float)
        assert np.abs(ia.reshape(-1, 3).mean(0) - ib.reshape(-1, 3).mean(0)).max() < 3
        assert ((ia.sum(-1) == 0) == (ib.sum(-1) == 0)).mean() > 0.99  # the same field of view


def test_angio_classes_are_stenosis_grades(tmp_path):
    synth(tmp_path, tiny(angio={"per_class": [4, 4, 4]}), ["angio"])
    rows = read_indices(tmp_path / "angio" / "phantom_indices.csv")
    pct = {c: [float(r["stenosis_pct"]) for r in rows if r["label"] == c] for c in ("none", "moderate", "severe")}
    assert max(pct["none"]) <= 20 and 50 <= min(pct["moderate"]) and max(pct["moderate"]) < 70 <= min(pct["severe"])
    for r in rows:
        assert r["id"].startswith(r["label"] + "/") and (tmp_path / "angio" / r["id"]).is_file()
