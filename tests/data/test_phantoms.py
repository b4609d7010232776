"""Phantoms: byte-identical for one seed, geometry (not colour) carries the larynx label."""

from __future__ import annotations

import copy
import hashlib
import json

import numpy as np
from support.data import BASE

from thtl_bench.data import tortuosity
from thtl_bench.data.phantoms import larynx_image, larynx_look, synth, tau_range


def tree_digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    scfg = copy.deepcopy(BASE["synth"])
    synth(tmp_path / "a", scfg)
    synth(tmp_path / "b", scfg)
    a, b = tree_digest(tmp_path / "a"), tree_digest(tmp_path / "b")
    assert a == b and len(a) > 20
    assert {"fundus/train.csv", "larynx/manifest.csv", "larynx/phantom_stats.json", "fundus/contact_sheet.png"} <= set(a)
    assert any(k.startswith("larynx/masks/") for k in a) and any(k.startswith("fundus/masks/train_images/") for k in a)
    scfg["seed"] += 1
    synth(tmp_path / "c", scfg, ["larynx"])
    c = tree_digest(tmp_path / "c")
    assert {k: v for k, v in a.items() if k.startswith("larynx/")} != c


def test_tortuosity_indices_known_shapes():
    t = np.linspace(0, 1, 200)
    line = np.stack([100 * t, 0 * t], 1)
    wave = np.stack([100 * t, 5 * np.sin(2 * np.pi * 4 * t)], 1)
    coil = np.stack([100 * t + 4 * np.cos(2 * np.pi * 12 * t), 4 * np.sin(2 * np.pi * 12 * t)], 1)
    ls, ws, cs = (tortuosity.indices(x) for x in (line, wave, coil))
    assert abs(ls["dm"] - 1) < 1e-6 and ls["soam"] < 1e-6
    assert ws["dm"] > 1.05 and tortuosity.inflection_count(wave) >= 6
    assert cs["soam"] > ws["soam"] > ls["soam"]


def test_larynx_classes_differ_in_geometry_not_colour():
    diff = BASE["synth"]["difficulty"]
    res = {}
    for lab in ("benign", "malignant"):
        a, b = tau_range(lab, diff["tortuosity_overlap"])
        out = []
        for i in range(12):
            rng = np.random.default_rng([lab == "benign", i])
            look = larynx_look(rng)
            out.append(larynx_image(rng, float(rng.uniform(a, b)), look, 32, diff))
        res[lab] = out
    soam = {k: np.mean([o[2]["soam"] for o in v]) for k, v in res.items()}
    rgb = {k: np.mean([o[0].reshape(-1, 3).mean(0) for o in v], 0) for k, v in res.items()}
    ink = {k: np.mean([o[3] for o in v]) for k, v in res.items()}
    assert soam["malignant"] > 1.5 * soam["benign"]
    assert np.abs(rgb["malignant"] - rgb["benign"]).max() < 8  # of 255
    assert abs(ink["malignant"] - ink["benign"]) < 0.05


def test_stats_file_reports_indices_per_class(tmp_path):
    synth(tmp_path, BASE["synth"], ["larynx"])
    st = json.loads((tmp_path / "larynx" / "phantom_stats.json").read_text())
    assert set(st["classes"]) == {"benign", "malignant"}
    for e in st["classes"].values():
        assert {"dm", "icm", "soam", "mean_rgb", "vessel_fraction", "n"} <= set(e)
