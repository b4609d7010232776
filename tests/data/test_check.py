"""`data check`: every problem at once (each naming its file), counts, the size shortcut."""

from __future__ import annotations

from support.data import make_cfg, png

from thtl_bench.data import splits
from thtl_bench.data.check import check_domain, format_report


def test_reports_all_problems_at_once(tmp_path):
    root = tmp_path / "larynx"
    rows = ["path,label,patient_id"]
    for i in range(8):
        lab = "malignant" if i % 2 else "benign"
        png(root / lab / f"{i}.png", i)
        rows.append(f"{lab}/{i}.png,{lab},P{i}")
    (root / "benign" / "0.png").write_bytes((root / "benign" / "0.png").read_bytes()[:60])  # truncated
    png(root / "benign" / "2.png", 2, mode="L")
    png(root / "malignant" / "3.png", 3, size=(8, 8))
    png(root / "malignant" / "extra.png", 50)
    rows.append("malignant/none.png,malignant,P9")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    rep = check_domain(make_cfg(tmp_path), "larynx")
    by = {p.code: p.path for p in rep["problems"]}
    assert by["unreadable"].endswith("benign/0.png")
    assert by["wrong_mode"].endswith("benign/2.png")
    assert by["wrong_size"].endswith("malignant/3.png")
    assert by["orphan_image"].endswith("extra.png")
    assert by["missing_image"].endswith("manifest.csv:10")
    assert rep["errors"] == 5
    text = format_report(rep)
    assert "5 error(s)" in text and "benign" in text and "fix:" in text


def test_split_leaks_and_size_shortcut(tmp_path):
    root = tmp_path / "larynx"
    rows = ["path,label,patient_id"]
    for i in range(24):
        lab = "malignant" if i % 2 else "benign"
        png(root / lab / f"{i}.png", i, size=(48, 32) if lab == "malignant" else (32, 32))
        rows.append(f"{lab}/{i}.png,{lab},P{i}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    cfg = make_cfg(tmp_path)
    rep = check_domain(cfg, "larynx")
    assert rep["errors"] == 0 and [p.code for p in rep["problems"]] == ["size_shortcut"]
    assert rep["shortcut"]["size_accuracy"] == 1.0
    path = splits.split_path(cfg, "larynx", 0)
    from thtl_bench.data.cache import content_hashes
    from thtl_bench.data.sources import read_source

    lst = read_source(cfg, "larynx")
    rows_ = splits.compute(cfg, [s.id for s in lst.samples], [s.label for s in lst.samples],
                           [s.group for s in lst.samples], content_hashes(cfg, lst), 0)
    test_i = next(i for i, r in enumerate(rows_) if r["split"] == "test")
    train_i = next(i for i, r in enumerate(rows_) if r["split"] == "train")
    rows_[test_i]["group"] = rows_[train_i]["group"]  # hand-edited file: one patient in two splits
    splits.write(path, rows_)
    rep = check_domain(cfg, "larynx")
    leak = [p for p in rep["problems"] if p.code == "patient_leak"]
    assert len(leak) == 1 and leak[0].path == str(path) and rep["errors"] == 1
