"""Reference points: the shortcut probe sits at chance on phantoms whose label lives in vessel
geometry, catches a planted colour shortcut; the ceiling reads the generator's truth."""

from __future__ import annotations

import copy
import csv
import hashlib

import numpy as np
import pytest
from PIL import Image
from support.data import BASE

from thtl_bench.data import references, splits
from thtl_bench.data.phantoms import synth


@pytest.fixture(scope="module")
def larynx(tmp_path_factory):
    root = tmp_path_factory.mktemp("refs")
    s = copy.deepcopy(BASE["synth"])
    s["larynx"] = {"patients": {"benign": 20, "malignant": 20}, "images_per_patient": [2, 2]}
    s["difficulty"]["tortuosity_overlap"] = 0.0  # disjoint tortuosity ranges: the geometry decides
    synth(root, s, ["larynx"])
    with open(root / "larynx" / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    ids = [r["path"] for r in rows]
    imgs = np.stack([np.asarray(Image.open(root / "larynx" / i)) for i in ids])
    classes = ["benign", "malignant"]
    labels = np.array([classes.index(r["label"]) for r in rows])
    groups = [r["patient_id"] for r in rows]
    hashes = [hashlib.sha256(im.tobytes()).hexdigest() for im in imgs]
    sp = {r["id"]: r["split"] for r in splits.make_splits(ids, [r["label"] for r in rows], groups, hashes, 0, 0.2, 0.4)}
    ind, cols = references.load_indices(root / "larynx", ids)
    return {"imgs": imgs, "labels": labels, "groups": groups, "split": [sp[i] for i in ids], "classes": classes,
            "ind": ind, "cols": cols}


def test_shortcut_at_chance_and_ceiling_well_above(larynx):
    L = larynx
    r = references.references(L["imgs"], L["labels"], L["groups"], L["split"], L["classes"], L["ind"], seed=0, n_boot=300)
    maj, short, ceil = r["majority"]["accuracy"], r["shortcut"], r["ceiling"]
    assert r["n_test"] >= 20 and r["test_groups"] >= 10 and "dm" in L["cols"]
    assert short["accuracy_ci"][0] <= maj  # not distinguishable from the majority rate
    assert ceil["accuracy"] >= maj + 0.25 and ceil["accuracy_ci"][0] > maj
    assert "qwk" not in short  # two classes: accuracy only


def test_planted_colour_shortcut_is_caught(larynx):
    L = larynx
    imgs = L["imgs"].astype(int)
    imgs[L["labels"] == 1, :, :, 0] += 40  # malignant images redder
    imgs = np.clip(imgs, 0, 255).astype(np.uint8)
    r = references.references(imgs, L["labels"], L["groups"], L["split"], L["classes"], None, seed=0, n_boot=200)
    assert r["shortcut"]["accuracy"] >= 0.9 and r["shortcut"]["accuracy_ci"][0] > r["majority"]["accuracy"]
    assert r["ceiling"] is None


def test_kappa_matches_sklearn_and_bootstrap_resamples_groups():
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 300)
    p = np.clip(y + rng.integers(-1, 2, 300), 0, 4)
    conf = np.zeros((5, 5))
    np.add.at(conf, (y, p), 1)
    assert abs(references._qwk_from_confusion(conf) - cohen_kappa_score(y, p, weights="quadratic")) < 1e-12
    # 10 patients x 10 images with one outcome each: the interval is that of 10 units, not 100
    y2 = np.zeros(100, int)
    pred = np.repeat(rng.integers(0, 2, 10), 10)
    grouped = references._score(y2, pred, np.repeat(np.arange(10), 10), 2, np.random.default_rng(1), 2000, 0.95)
    single = references._score(y2, pred, np.arange(100), 2, np.random.default_rng(1), 2000, 0.95)
    assert np.diff(grouped["accuracy_ci"])[0] > 1.8 * np.diff(single["accuracy_ci"])[0]


def test_multiclass_gives_kappa_and_bad_inputs_are_refused(tmp_path):
    s = copy.deepcopy(BASE["synth"])
    s["fundus"] = {"per_grade": [4, 4, 4, 4, 4]}
    synth(tmp_path, s, ["fundus"])
    with open(tmp_path / "fundus" / "phantom_indices.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    ids = [r["id"] for r in rows]
    imgs = np.stack([np.asarray(Image.open(tmp_path / "fundus" / i)) for i in ids])
    labels = np.array([int(r["label"]) for r in rows])
    split = ["train" if i % 2 else "test" for i in range(len(ids))]
    ind, _ = references.load_indices(tmp_path / "fundus", ids)
    r = references.references(imgs, labels, ids, split, list("01234"), ind, seed=0, n_boot=100)
    assert {"qwk", "qwk_ci"} <= set(r["ceiling"]) and r["ceiling"]["qwk"] > 0.5
    with pytest.raises(references.ReferencePointError, match="train and the test split"):
        references.references(imgs, labels, ids, ["train"] * len(ids), list("01234"), None, seed=0, n_boot=10)
    with pytest.raises(references.ReferencePointError, match="no row for 'nope.png'"):
        references.load_indices(tmp_path / "fundus", ["nope.png"])
    with pytest.raises(references.ReferencePointError, match="only phantom data"):
        references.load_indices(tmp_path, ids)
