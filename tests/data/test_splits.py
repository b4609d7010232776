"""Split properties: no leakage, stratified, grouped, nested fractions, data + seed only."""

from __future__ import annotations

from collections import Counter

import numpy as np

from thtl_bench.data.splits import apply_fraction, leaks, make_splits


def data(n_groups=40, per=4, seed=0):
    rng = np.random.default_rng(seed)
    ids, labels, groups, hashes = [], [], [], []
    for g in range(n_groups):
        lab = "malignant" if g % 3 == 0 else "benign"
        for k in range(int(rng.integers(1, per + 1))):
            ids.append(f"{lab}/P{g:03d}_{k}.png")
            labels.append(lab)
            groups.append(f"P{g:03d}")
            hashes.append(f"h{g}_{k}")
    return ids, labels, groups, hashes


def test_no_patient_or_content_leak_and_duplicates_kept_together():
    ids, labels, groups, hashes = data()
    hashes[0] = hashes[-1]  # one image duplicated across two patients
    rows = make_splits(ids, labels, groups, hashes, seed=3, val=0.2, test=0.25)
    assert leaks(rows, "x") == []
    assert rows[0]["split"] == rows[-1]["split"]
    per_group = {}
    for r in rows:
        assert per_group.setdefault(r["group"], r["split"]) == r["split"]


def test_stratified_shares():
    ids, labels, groups, hashes = data(n_groups=90)
    rows = make_splits(ids, labels, groups, hashes, seed=1, val=0.2, test=0.25)
    for c in ("benign", "malignant"):
        cnt = Counter(r["split"] for r in rows if r["label"] == c)
        n = sum(cnt.values())
        assert abs(cnt["test"] / n - 0.25) < 0.08 and abs(cnt["val"] / n - 0.2) < 0.08


def test_depends_only_on_data_and_seed():
    ids, labels, groups, hashes = data()
    a = make_splits(ids, labels, groups, hashes, seed=5, val=0.2, test=0.25)
    b = make_splits(ids, labels, groups, hashes, seed=5, val=0.2, test=0.25)
    c = make_splits(ids, labels, groups, hashes, seed=6, val=0.2, test=0.25)
    assert a == b and [r["split"] for r in a] != [r["split"] for r in c]
    # a group's draw does not depend on the presence of unrelated groups (hash keys, no shared RNG)
    keep = [i for i, g in enumerate(groups) if g != "P039"]
    d = make_splits(*[[x[i] for i in keep] for x in (ids, labels, groups, hashes)], seed=5, val=0.2, test=0.25)
    assert sum(r["split"] != s["split"] for r, s in zip([a[i] for i in keep], d, strict=True)) <= 0.2 * len(d)


def test_nested_fractions_stratified_whole_groups():
    ids, labels, groups, hashes = data(n_groups=90)
    rows = make_splits(ids, labels, groups, hashes, seed=0, val=0.2, test=0.25)
    masks = {f: apply_fraction(rows, f) == "train" for f in (0.02, 0.1, 0.5, 0.9, 1.0)}
    fr = sorted(masks)
    for small, big in zip(fr, fr[1:], strict=False):
        assert not (masks[small] & ~masks[big]).any()
        assert masks[small].sum() < masks[big].sum()
    sel = apply_fraction(rows, 0.1)
    assert set(sel[[r["split"] != "train" for r in rows]]) <= {"val", "test"}
    assert {r["label"] for r, s in zip(rows, sel, strict=True) if s == "train"} == {"benign", "malignant"}
    by_group = {}
    for r, s in zip(rows, sel, strict=True):
        if r["split"] == "train":
            assert by_group.setdefault(r["group"], s) == s


def test_leaks_names_both_kinds():
    rows = [{"id": "a.png", "group": "P1", "split": "train", "sha256": "x"},
            {"id": "b.png", "group": "P1", "split": "test", "sha256": "y"},
            {"id": "c.png", "group": "P2", "split": "val", "sha256": "x"}]
    probs = leaks(rows, "splits/larynx.csv")
    assert sorted(p.code for p in probs) == ["duplicate_across_splits", "patient_leak"]
    assert all(p.path == "splits/larynx.csv" and "a.png" in p.message for p in probs)
