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
FACTORIAL = ("fundus_lesion", "fundus_lesion_tortuous", "fundus_vessel", "fundus_vessel_tortuous")
ALL = ("fundus", "larynx", "fundus_tortuous", "angio", *FACTORIAL)
# numpy's transcendental ufuncs (tools/ulp_synth.py's list, plus power and friends) and math's
NUMPY_TRANSCENDENTAL = ("sin", "cos", "tan", "exp", "expm1", "log", "log1p", "hypot", "arctan", "arctan2", "arcsin",
                        "arccos", "tanh", "sinh", "cosh", "power", "float_power", "exp2", "log2", "log10", "cbrt")
MATH_TRANSCENDENTAL = ("sin", "cos", "tan", "exp", "expm1", "log", "log1p", "log2", "log10", "atan", "atan2", "pow",
                       "hypot", "cbrt", "sinh", "cosh", "tanh")


def tiny(**over) -> dict:
    s = copy.deepcopy(BASE["synth"])
    s.update(fundus_tortuous={"tortuosity_of": "malignant"}, angio={"per_class": [2, 1, 1]}, fundus_signs={"per_cell": 1})
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


# ------------------------------------------------------------------ the mechanism factorial


def test_factorial_domains_are_one_image_set_labelled_two_ways(tmp_path):
    """Every (lesion level, vessel level) pair per_cell times; the lesion- and the vessel-graded
    domain of a version hold the very same files and differ only in the label; the tortuous
    twins keep ids, levels, lesion and sign counts and vessel area, and change the trees."""
    st = synth(tmp_path, tiny(fundus_signs={"per_cell": 2}), FACTORIAL)
    dig = {d: tree_digest(tmp_path / d) for d in FACTORIAL}
    rows = {d: read_indices(tmp_path / d / "phantom_indices.csv") for d in FACTORIAL}
    for radial in ("fundus_lesion", "fundus_lesion_tortuous"):
        other = radial.replace("lesion", "vessel")
        images = {k: v for k, v in dig[radial].items() if k.endswith(".png")}
        assert images and images == {k: v for k, v in dig[other].items() if k.endswith(".png")}
        assert dig[radial]["train.csv"] != dig[other]["train.csv"]
    cells = [(int(r["lesion_level"]), int(r["vessel_level"])) for r in rows["fundus_lesion"]]
    assert sorted(cells) == sorted((a, b) for a in range(5) for b in range(5) for _ in range(2))
    for d, (rule, _) in phantoms.FACTORIAL.items():
        assert [r["label"] for r in rows[d]] == [r[f"{rule}_level"] for r in rows[d]]
        with open(tmp_path / d / "train.csv", newline="") as fh:
            table = list(csv.DictReader(fh))
        assert [t["diagnosis"] for t in table] == [r["label"] for r in rows[d]]
        assert st[d]["params"]["label_rule"] == rule and st[d]["class_names"] == ["0", "1", "2", "3", "4"]
        assert st[d]["ceiling_columns"] == list(phantoms.CEILING[d])
    same = ("id", "lesion_level", "vessel_level", "n_ma", "n_haem", "n_exudate", "n_cotton_wool", "preretinal",
            "beading_quadrants", "irma_quadrants", "n_irma", "n_nv")
    for a, b in zip(rows["fundus_vessel"], rows["fundus_vessel_tortuous"], strict=True):
        assert [a[c] for c in same] == [b[c] for c in same]
        assert float(b["soam"]) > float(a["soam"])  # the twin's trees coil (more so on average: below)
        assert abs(float(a["vessel_fraction"]) - float(b["vessel_fraction"])) < 0.15 * float(a["vessel_fraction"])


    soam = {d: np.mean([float(r["soam"]) for r in rows[d]]) for d in ("fundus_vessel", "fundus_vessel_tortuous")}
    assert soam["fundus_vessel_tortuous"] > 5 * soam["fundus_vessel"]


def test_vessel_signs_follow_the_etdrs_order_and_lesions_carry_none():
    for i in range(100):
        for level in fundus_phantom.LEVELS:
            v = fundus_phantom.vessel_plan(dm.draw(3, i, level), level)
            beads, irma = len(v["bead_q"]), len(v["irma_q"])
            assert (beads >= 2) == (level >= 1) and beads <= 4 and len(set(v["bead_q"])) == beads
            assert (irma >= 1) == (level >= 2) and irma <= 2
            assert (v["nve"], v["nvd"]) == (int(level >= 3), int(level >= 4))
            lp = fundus_phantom.lesion_plan(dm.draw(4, i, level), level)
            assert not {"bead_q", "irma_q", "nvd", "nve"} & set(lp)
            haem = sum(lp["haem_q"])
            assert (lp["ma"] > 0) == (level >= 1) and (haem + lp["exudate"] > 0) == (level >= 2) or level < 2
            assert (min(lp["haem_q"]) >= 2) == (level >= 3) and lp["preretinal"] == int(level == 4)


def test_vessel_signs_take_the_place_of_peripheral_veins_not_extra_area():
    """The same eye at every vessel level: its vessel area stays the sign-free tree's (the vein
    periphery drops out as the signs come in), its lesions stay, and the signs are visible."""
    diff = {**BASE["synth"]["difficulty"], "noise": 0.0}
    res = [fundus_phantom.image(11, 4, None, 64, diff, levels=(2, v), stream=phantoms.SIGNS_STREAM)
           for v in fundus_phantom.LEVELS]
    cover = [float(np.mean(r["mask"] > 0)) for r in res]
    assert max(cover) - min(cover) < 0.01 * fundus_phantom.FIELD_SHARE
    t = [r["truth"] for r in res]
    assert t[0]["sign_fraction"] == 0 and t[0]["reach"] > 1.0  # the whole tree, out to the rim
    assert t[4]["sign_fraction"] > t[2]["sign_fraction"] > 0 and t[4]["reach"] < t[2]["reach"] < t[0]["reach"]
    assert all(x["area_excess"] == 0 for x in t)
    assert len({(x["n_ma"], x["n_haem"], x["n_exudate"]) for x in t}) == 1
    changed = np.abs(res[4]["rgb"].astype(int) - res[0]["rgb"].astype(int)).sum(-1) > 30
    assert changed.sum() > 40


def test_venous_dilation_widens_the_veins_with_the_level_and_keeps_the_area():
    """Venous dilation (the sign a tortuous tree does not mimic): the veins of a higher vessel
    level are wider, the area they add is given back by the periphery, and 0 leaves the image
    as the signs alone draw it."""
    diff = {**BASE["synth"]["difficulty"], "noise": 0.0}

    def draw(v, dil, tau=None):
        return fundus_phantom.image(11, 4, None, 64, diff, tau, levels=(2, v), stream=phantoms.SIGNS_STREAM,
                                    dilation=dil)

    for tau in (None, 0.9):
        plain, wide = draw(4, 0.0, tau), draw(4, 0.2, tau)
        assert wide["truth"]["vein_dilation"] == pytest.approx(1.8) and plain["truth"]["vein_dilation"] == 1.0
        assert wide["truth"]["reach"] < plain["truth"]["reach"]  # the periphery gives the area back
        cover = [float(np.mean(r["mask"] > 0)) for r in (plain, wide)]
        assert abs(cover[0] - cover[1]) < 0.01 * fundus_phantom.FIELD_SHARE
        # the veins are wider: more vessel pixels whose four neighbours are vessel too
        inner = []
        for r in (plain, wide):
            m = r["mask"] > 0
            inner.append(int((m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]).sum()))
        assert inner[1] > 1.05 * inner[0]
    assert np.array_equal(draw(0, 0.2)["rgb"], draw(0, 0.0)["rgb"])  # level 0: no dilation


def test_factorial_parameters_are_checked(tmp_path):
    for bad in (0, 1.5, "2", True):
        with pytest.raises(phantoms.SynthError, match="synth.fundus_signs.per_cell"):
            synth(tmp_path, tiny(fundus_signs={"per_cell": bad}), ["fundus_vessel"])
    for bad in (-0.1, 0.6, "0.2", True):
        with pytest.raises(phantoms.SynthError, match="synth.fundus_signs.venous_dilation"):
            synth(tmp_path, tiny(fundus_signs={"per_cell": 1, "venous_dilation": bad}), ["fundus_vessel"])
    s = tiny()
    del s["fundus_signs"]
    with pytest.raises(phantoms.SynthError, match="synth.fundus_signs is missing"):
        synth(tmp_path, s, ["fundus_lesion"])
    a, b = (phantoms.domain_params(tiny(), d) for d in ("fundus_lesion", "fundus_vessel"))
    assert a != b and {**a, "label_rule": "vessel"} == b
    assert "fundus_tortuous" in phantoms.domain_params(tiny(), "fundus_vessel_tortuous")

