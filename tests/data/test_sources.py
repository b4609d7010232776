"""Layout readers (APTOS, EyePACS, IDRiD, folders, CE-NBI, manifest) and their problem reports."""

from __future__ import annotations

import pytest
from support.data import BASE, make_cfg, png  # noqa: F401  (re-exported for readers)

from thtl_bench.data.errors import DataError
from thtl_bench.data.sources import read_source


def codes(lst) -> list[str]:
    return sorted(p.code for p in lst.problems if p.severity == "error")


def test_aptos(tmp_path):
    root = tmp_path / "fundus"
    for i, _g in enumerate([0, 1, 2, 0]):
        png(root / "train_images" / f"id{i}.png", i)
    (root / "train.csv").write_text("id_code,diagnosis\nid0,0\nid1,1\nid2,2\nid3,0\n")
    lst = read_source(make_cfg(tmp_path, "fundus", "aptos"), "fundus")
    assert codes(lst) == []
    assert [(s.id, s.label) for s in lst.samples] == [("train_images/id0.png", "0"), ("train_images/id1.png", "1"),
                                                      ("train_images/id2.png", "2"), ("train_images/id3.png", "0")]


def test_aptos_missing_orphan_unknown(tmp_path):
    root = tmp_path / "fundus"
    for i in range(3):
        png(root / "train_images" / f"id{i}.png", i)
    png(root / "train_images" / "stray.png", 9)
    (root / "train.csv").write_text("id_code,diagnosis\nid0,0\nid1,1\nid2,7\nghost,2\n")
    lst = read_source(make_cfg(tmp_path, "fundus", "aptos"), "fundus")
    by = {p.code: p for p in lst.problems}
    assert set(by) >= {"missing_image", "orphan_image", "unknown_label"}
    assert by["missing_image"].path.endswith("train.csv:5") and "ghost" in by["missing_image"].message
    assert by["orphan_image"].path.endswith("stray.png")
    assert by["unknown_label"].path.endswith("train.csv:4") and "'7'" in by["unknown_label"].message
    assert all(p.fix for p in lst.problems)


def test_eyepacs_groups_by_subject(tmp_path):
    root = tmp_path / "fundus"
    rows = ["image,level"]
    for i, (subj, eye, lvl) in enumerate([(10, "left", 0), (10, "right", 1), (11, "left", 2), (11, "right", 2)]):
        png(root / "train" / f"{subj}_{eye}.jpeg", i)
        rows.append(f"{subj}_{eye},{lvl}")
    (root / "trainLabels.csv").write_text("\n".join(rows) + "\n")
    lst = read_source(make_cfg(tmp_path, "fundus", "eyepacs"), "fundus")
    assert codes(lst) == []
    assert [s.group for s in lst.samples] == ["10", "10", "11", "11"]


def test_idrid_prefers_matching_set(tmp_path):
    root = tmp_path / "fundus"
    png(root / "Images" / "a. Training Set" / "IDRiD_001.jpg", 1)
    png(root / "Images" / "a. Training Set" / "IDRiD_002.jpg", 2)
    png(root / "Images" / "b. Testing Set" / "IDRiD_001.jpg", 3)
    (root / "IDRiD_Disease Grading_Training Labels.csv").write_text(
        "Image name,Retinopathy grade,Risk of macular edema \nIDRiD_001,3,1\nIDRiD_002,0,0\n")
    (root / "IDRiD_Disease Grading_Testing Labels.csv").write_text(
        "Image name,Retinopathy grade,Risk of macular edema \nIDRiD_001,4,2\n")
    lst = read_source(make_cfg(tmp_path, "fundus", "idrid"), "fundus")
    assert codes(lst) == []
    got = {s.id: s.label for s in lst.samples}
    assert got == {"Images/a. Training Set/IDRiD_001.jpg": "3", "Images/a. Training Set/IDRiD_002.jpg": "0",
                   "Images/b. Testing Set/IDRiD_001.jpg": "4"}


def test_fundus_folders_and_empty_class(tmp_path):
    root = tmp_path / "fundus"
    png(root / "0" / "a.png", 1)
    png(root / "3" / "b.png", 2)
    (root / "4").mkdir()
    lst = read_source(make_cfg(tmp_path, "fundus", "folders"), "fundus")
    assert [(s.id, s.label) for s in lst.samples] == [("0/a.png", "0"), ("3/b.png", "3")]
    empty = [p for p in lst.problems if p.code == "empty_class"]
    assert len(empty) == 1 and empty[0].path.endswith("4")


def test_larynx_flat_folders_with_map(tmp_path):
    root = tmp_path / "larynx"
    png(root / "B" / "x1.jpg", 1)
    png(root / "M" / "x2.jpg", 2)
    png(root / "Q" / "x3.jpg", 3)
    lst = read_source(make_cfg(tmp_path, "larynx", "folders"), "larynx")
    assert [(s.id, s.label) for s in lst.samples] == [("B/x1.jpg", "benign"), ("M/x2.jpg", "malignant")]
    unk = [p for p in lst.problems if p.code == "unknown_label"]
    assert len(unk) == 1 and unk[0].path.endswith("Q") and "folder_map" in unk[0].fix


def test_cenbi_layout(tmp_path):
    root = tmp_path / "larynx"
    png(root / "Benign" / "Cyst" / "Patient001" / "P001 (1).jpg", 1)
    png(root / "Benign" / "Cyst" / "Patient001" / "P001 (2).jpg", 2)
    png(root / "Malignant" / "SCC" / "Patient092" / "P092 (1).jpg", 3)
    png(root / "Malignant" / "SCC" / "loose.jpg", 4)
    lst = read_source(make_cfg(tmp_path, "larynx", "cenbi"), "larynx")
    assert [(s.label, s.group, dict(s.meta)["histology"]) for s in lst.samples] == [
        ("benign", "Patient001", "Cyst"), ("benign", "Patient001", "Cyst"), ("malignant", "Patient092", "SCC")]
    assert [p.code for p in lst.problems] == ["no_patient"] and lst.problems[0].path.endswith("loose.jpg")


def test_cenbi_spreadsheet_needs_reader(tmp_path):
    try:
        import openpyxl  # noqa: F401
        pytest.skip("openpyxl installed: the error path does not apply")
    except ImportError:
        pass
    root = tmp_path / "larynx"
    png(root / "Benign" / "Cyst" / "Patient001" / "P001 (1).jpg", 1)
    (root / "Patients_List_Updated_Final.xlsx").write_bytes(b"PK")
    cfg = make_cfg(tmp_path, "larynx", "cenbi")
    cfg["data"]["larynx"]["cenbi_label_source"] = "spreadsheet"
    with pytest.raises(DataError, match="openpyxl") as exc:
        read_source(cfg, "larynx")
    assert "Patients_List_Updated_Final.xlsx" in str(exc.value)


def test_manifest_layout_and_problems(tmp_path):
    root = tmp_path / "larynx"
    png(root / "benign" / "a.png", 1)
    png(root / "malignant" / "b.png", 2)
    png(root / "malignant" / "orphan.png", 3)
    png(root / "masks" / "benign" / "a.png", 4)  # masks are not samples
    (root / "manifest.csv").write_text("path,label,patient_id\nbenign/a.png,benign,P1\nmalignant/b.png,M,P2\n"
                                       "malignant/gone.png,malignant,P3\nbenign/a.png,unsure,P1\n")
    lst = read_source(make_cfg(tmp_path), "larynx")
    assert [(s.id, s.label, s.group) for s in lst.samples[:2]] == [("benign/a.png", "benign", "P1"),
                                                                   ("malignant/b.png", "malignant", "P2")]
    by = {p.code: p for p in lst.problems}
    assert by["missing_image"].path.endswith("manifest.csv:4")
    assert by["orphan_image"].path.endswith("orphan.png")
    assert by["unknown_label"].path.endswith("manifest.csv:5")


def test_fewer_than_two_classes_and_missing_root(tmp_path):
    root = tmp_path / "larynx"
    png(root / "benign" / "a.png", 1)
    (root / "manifest.csv").write_text("path,label\nbenign/a.png,benign\n")
    lst = read_source(make_cfg(tmp_path), "larynx")
    assert [p.code for p in lst.problems] == ["too_few_classes"] and str(root) in lst.problems[0].path
    lst = read_source(make_cfg(tmp_path / "nowhere"), "larynx")
    assert [p.code for p in lst.problems] == ["missing_root"] and "synth" in lst.problems[0].fix
