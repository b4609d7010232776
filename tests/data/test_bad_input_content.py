"""Identical image content: under two classes an error (check, load and split refuse it), within
one class a warning with the copies kept in one split; content hashes that cannot go stale."""

from __future__ import annotations

import os

import pytest
from support.data import make_cfg, png

from thtl_bench.data import cache
from thtl_bench.data.check import check_domain
from thtl_bench.data.errors import DataError
from thtl_bench.data.sources import read_source
from thtl_bench.data.splits import leaks, make_splits


def manifest(tmp_path, n=8):
    root = tmp_path / "larynx"
    rows = ["path,label,patient_id"]
    for i in range(n):
        lab = "malignant" if i % 2 else "benign"
        png(root / lab / f"{i}.png", i)
        rows.append(f"{lab}/{i}.png,{lab},P{i}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def test_same_content_benign_and_malignant_is_an_error_everywhere(tmp_path):
    root = manifest(tmp_path)
    (root / "malignant" / "3.png").write_bytes((root / "benign" / "0.png").read_bytes())
    cfg = make_cfg(tmp_path)
    rep = check_domain(cfg, "larynx")
    [err] = [p for p in rep["problems"] if p.code == "conflicting_duplicate"]
    assert err.severity == "error" and rep["errors"] == 1
    assert "benign/0.png as 'benign'" in err.message and "malignant/3.png as 'malignant'" in err.message
    assert "right class" in err.fix
    with pytest.raises(DataError, match="conflicting_duplicate|different classes"):
        cache.load_domain(cfg, "larynx")
    with pytest.raises(DataError, match="different classes"):
        cache.listing_or_raise(cfg, "larynx")  # what `thtl-bench data split` reads


def test_one_patients_identical_images_in_both_classes(tmp_path):
    root = tmp_path / "larynx"
    for i, pid in enumerate([1, 2, 3]):
        png(root / "Benign" / "Cyst" / f"Patient00{pid}" / "a.jpg", i)
        png(root / "Malignant" / "SCC" / f"Patient01{pid}" / "a.jpg", 10 + i)
    same = root / "Malignant" / "SCC" / "Patient005" / "b.png"
    png(root / "Benign" / "Cyst" / "Patient005" / "b.png", 99)
    png(same, 99)
    rep = check_domain(make_cfg(tmp_path, "larynx", "cenbi"), "larynx")
    codes = sorted((p.code, p.severity) for p in rep["problems"])
    assert ("conflicting_duplicate", "error") in codes and ("mixed_group", "warning") in codes


def test_same_content_one_class_is_a_warning_and_stays_in_one_split(tmp_path):
    root = manifest(tmp_path, n=12)
    (root / "benign" / "4.png").write_bytes((root / "benign" / "0.png").read_bytes())
    rep = check_domain(make_cfg(tmp_path), "larynx")
    [dup] = [p for p in rep["problems"] if p.code == "duplicate_image"]
    assert dup.severity == "warning" and rep["errors"] == 0 and "patients ['P0', 'P4']" in dup.message


def test_duplicates_chain_patients_into_one_split():
    # P1 and P2 share an image, P2 and P3 share another: all of P1, P2, P3 go to one split,
    # whatever the seed, and no content or patient straddles two splits
    ids, labels, groups, hashes = [], [], [], []
    for g in range(30):
        for k in range(2):
            ids.append(f"P{g:02d}_{k}.png")
            labels.append("malignant" if g % 2 else "benign")
            groups.append(f"P{g:02d}")
            hashes.append(f"h{g}_{k}")
    hashes[ids.index("P03_0.png")] = hashes[ids.index("P01_1.png")]
    hashes[ids.index("P05_0.png")] = hashes[ids.index("P03_1.png")]
    for seed in range(5):
        rows = make_splits(ids, labels, groups, hashes, seed=seed, val=0.2, test=0.25)
        assert leaks(rows, "x") == []
        assert len({r["split"] for r in rows if r["group"] in ("P01", "P03", "P05")}) == 1


def test_hash_memo_is_not_fooled_by_a_restored_mtime(tmp_path):
    root = manifest(tmp_path)
    cfg = make_cfg(tmp_path)
    lst = read_source(cfg, "larynx")
    before = cache.content_hashes(cfg, lst)
    f = root / "benign" / "0.png"
    st = f.stat()
    data = bytearray(f.read_bytes())
    data[-20] ^= 0xFF  # same size, other content (what `cp -p` / `rsync -a` of an edit looks like)
    f.write_bytes(bytes(data))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = cache.content_hashes(cfg, lst)
    assert after[0] != before[0] and after[1:] == before[1:]


def test_unhashable_file_is_named_and_the_check_goes_on(tmp_path, monkeypatch):
    manifest(tmp_path)
    cfg = make_cfg(tmp_path)
    real = cache.sha256_file

    def deny(p):
        if str(p).endswith("benign/2.png"):
            raise PermissionError(13, "Permission denied")
        return real(p)

    monkeypatch.setattr(cache, "sha256_file", deny)
    rep = check_domain(cfg, "larynx")
    [bad] = [p for p in rep["problems"] if p.code == "unreadable"]
    assert bad.path.endswith("benign/2.png") and "Permission denied" in bad.message
    assert sum(rep["counts"]["benign"].values()) == 3  # the others are still split and counted
    with pytest.raises(DataError, match="2.png"):
        cache.load_domain(cfg, "larynx")
