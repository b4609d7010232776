"""Bad label tables: an image named twice, non-UTF-8 or broken CSV, empty cells. Each is a
problem naming file:line and the fix; none is a traceback or a silently wrong label."""

from __future__ import annotations

import sys
import types

from support.data import make_cfg, png

from thtl_bench.data.check import check_domain
from thtl_bench.data.sources import read_source


def errors(lst) -> list:
    return [p for p in lst.problems if p.severity == "error"]


def aptos(tmp_path, rows: str, n: int = 5):
    root = tmp_path / "fundus"
    for i in range(n):
        png(root / "train_images" / f"id{i}.png", i)
    (root / "train.csv").write_text("id_code,diagnosis\n" + rows)
    return root


def manifest(tmp_path, rows: list[str], header: str = "path,label,patient_id") -> object:
    root = tmp_path / "larynx"
    for i in range(4):
        lab = "malignant" if i % 2 else "benign"
        png(root / lab / f"{i}.png", i)
    (root / "manifest.csv").write_text("\n".join([header, *rows]) + "\n")
    return root


def test_aptos_image_listed_with_two_grades_is_an_error_naming_both_lines(tmp_path):
    aptos(tmp_path, "id0,0\nid1,1\nid2,2\nid3,3\nid4,4\nid0.png,4\n")
    cfg = make_cfg(tmp_path, "fundus", "aptos")
    lst = read_source(cfg, "fundus")
    [err] = [p for p in errors(lst) if p.code == "conflicting_rows"]
    assert err.path.endswith("train.csv:2")
    assert "train.csv:2 says '0'" in err.message and "train.csv:7 says '4'" in err.message
    assert "one row per image" in err.fix
    assert "train_images/id0.png" not in [s.id for s in lst.samples]  # neither label is trusted
    assert check_domain(cfg, "fundus")["errors"] == 1


def test_same_image_same_grade_twice_is_a_warning_and_used_once(tmp_path):
    # Decision: the label is not in doubt, and the image enters the data once, so no result
    # changes; a warning still asks for the repeated row to go (today it is used twice).
    aptos(tmp_path, "id0,0\nid1,1\nid2,2\nid3,3\nid4,4\nid2,2.0\n")
    lst = read_source(make_cfg(tmp_path, "fundus", "aptos"), "fundus")
    assert errors(lst) == []
    [warn] = [p for p in lst.problems if p.code == "duplicate_row"]
    assert warn.severity == "warning" and "train.csv:4" in warn.message and "train.csv:7" in warn.message
    assert [s.id for s in lst.samples].count("train_images/id2.png") == 1


def test_eyepacs_row_twice_with_two_levels(tmp_path):
    root = tmp_path / "fundus"
    for i, name in enumerate(["10_left", "10_right", "11_left"]):
        png(root / "train" / f"{name}.jpeg", i)
    (root / "trainLabels.csv").write_text("image,level\n10_left,0\n10_right,1\n11_left,2\n10_left.jpeg,3\n")
    lst = read_source(make_cfg(tmp_path, "fundus", "eyepacs"), "fundus")
    [err] = [p for p in errors(lst) if p.code == "conflicting_rows"]
    assert "trainLabels.csv:2 says '0' (patient 10)" in err.message and "trainLabels.csv:5 says '3'" in err.message


def test_idrid_one_file_named_by_both_tables(tmp_path):
    # no testing folder: the testing table's row falls back to the training image
    root = tmp_path / "fundus"
    png(root / "Images" / "a. Training Set" / "IDRiD_001.jpg", 1)
    png(root / "Images" / "a. Training Set" / "IDRiD_002.jpg", 2)
    head = "Image name,Retinopathy grade,Risk of macular edema \n"
    (root / "IDRiD_Disease Grading_Training Labels.csv").write_text(head + "IDRiD_001,3,1\nIDRiD_002,0,0\n")
    (root / "IDRiD_Disease Grading_Testing Labels.csv").write_text(head + "IDRiD_001,1,0\n")
    lst = read_source(make_cfg(tmp_path, "fundus", "idrid"), "fundus")
    [err] = [p for p in errors(lst) if p.code == "conflicting_rows"]
    assert "Training Labels.csv:2 says '3'" in err.message and "Testing Labels.csv:2 says '1'" in err.message


def test_manifest_one_file_two_spellings_two_labels_or_patients(tmp_path):
    manifest(tmp_path, ["benign/0.png,benign,P0", "malignant/1.png,malignant,P1", "benign/2.png,benign,P2",
                        "malignant/3.png,malignant,P3", "./benign/0.png,malignant,P0", "benign//2.png,benign,P9"])
    lst = read_source(make_cfg(tmp_path), "larynx")
    by = {p.message.split("'")[1]: p for p in errors(lst) if p.code == "conflicting_rows"}
    assert set(by) == {"benign/0.png", "benign/2.png"}
    assert "manifest.csv:6 says 'malignant'" in by["benign/0.png"].message
    assert "(patient P2)" in by["benign/2.png"].message and "(patient P9)" in by["benign/2.png"].message


def test_latin1_csv_named_with_line_byte_and_fix_and_check_goes_on(tmp_path):
    root = manifest(tmp_path, ["benign/0.png,benign,P0", "malignant/1.png,malignant,P1"])
    with open(root / "manifest.csv", "ab") as fh:
        fh.write("benign/2.png,benign,Patiënt2\n".encode("latin-1"))
    rep = check_domain(make_cfg(tmp_path), "larynx")
    [bad] = [p for p in rep["problems"] if p.code == "bad_encoding"]
    assert bad.path.endswith("manifest.csv:4") and "byte 0xeb" in bad.message and "column 25" in bad.message
    assert "UTF-8" in bad.fix
    aptos(tmp_path, "")
    (tmp_path / "fundus" / "train.csv").write_bytes("id_code,diagnosis\nid0,0\nid1,1 \xe9\n".encode("latin-1"))
    lst = read_source(make_cfg(tmp_path, "fundus", "aptos"), "fundus")
    assert [p.path.rsplit("/", 1)[-1] for p in lst.problems if p.code == "bad_encoding"] == ["train.csv:3"]


def test_idrid_sniffs_non_utf8_tables_and_names_them(tmp_path):
    root = tmp_path / "fundus"
    png(root / "Images" / "a. Training Set" / "IDRiD_001.jpg", 1)
    png(root / "Images" / "a. Training Set" / "IDRiD_002.jpg", 2)
    text = "Image name,Retinopathy grade,Risk of macular edema \nIDRiD_001,3,1 é\nIDRiD_002,0,0\n"
    (root / "IDRiD_Disease Grading_Training Labels.csv").write_bytes(text.encode("cp1252"))
    (root / "IDRiD_Disease Grading_Testing Labels.csv").write_bytes(text.encode("utf-16"))
    (root / "notes.csv").write_bytes("unrelated,é\n".encode("latin-1"))  # not a grading table: ignored
    lst = read_source(make_cfg(tmp_path, "fundus", "idrid"), "fundus")
    bad = sorted(p.path.rsplit("/", 1)[-1] for p in lst.problems if p.code == "bad_encoding")
    assert bad == ["IDRiD_Disease Grading_Testing Labels.csv", "IDRiD_Disease Grading_Training Labels.csv:2"]
    assert any("UTF-16" in p.message for p in lst.problems)


def test_empty_cells_are_named_and_trailing_spaces_are_fine(tmp_path):
    # trailing spaces in cells and header names were already stripped (kept, tested here)
    manifest(tmp_path, ["benign/0.png , benign ,P0", "malignant/1.png,,P1", ",benign,P2",
                        "malignant/3.png,malignant,"], header="path ,label , patient_id")
    lst = read_source(make_cfg(tmp_path), "larynx")
    empty = {p.path.rsplit(":", 1)[-1]: p.message for p in lst.problems if p.code == "empty_cell"}
    assert empty == {"3": "cell(s) ['label'] empty", "4": "cell(s) ['path'] empty", "5": "cell ['patient_id'] empty"}
    assert [(s.id, s.label, s.group) for s in lst.samples] == [("benign/0.png", "benign", "P0")]


def test_line_numbers_count_blank_lines_and_stray_quotes(tmp_path):
    manifest(tmp_path, ["benign/0.png,benign,P0", "", "", "malignant/1.png,unsure,P1",
                        'benign/2.png,"benign,P2', "malignant/3.png,malignant,P3"])
    lst = read_source(make_cfg(tmp_path), "larynx")
    by = {p.code: p for p in lst.problems}
    assert by["unknown_label"].path.endswith("manifest.csv:5")
    assert by["bad_row"].path.endswith("manifest.csv:6") and "quote" in by["bad_row"].message


def test_row_with_extra_cells_refused(tmp_path):
    manifest(tmp_path, ["benign/0.png,benign,P0", "malignant/1,x.png,malignant,P1", "benign/2.png,benign,P2,,"])
    lst = read_source(make_cfg(tmp_path), "larynx")
    [bad] = [p for p in lst.problems if p.code == "bad_row"]
    assert bad.path.endswith("manifest.csv:3") and "4 cells but the header has 3" in bad.message
    assert "benign/2.png" in [s.id for s in lst.samples]  # trailing empty cells (Excel) are fine


def test_header_problems(tmp_path):
    root = manifest(tmp_path, [], header="")
    (root / "manifest.csv").write_text("")
    assert [p.message for p in read_source(make_cfg(tmp_path), "larynx").problems][0] == "file is empty"
    (root / "manifest.csv").write_text("path,label,label\nbenign/0.png,benign,malignant\n")
    [bad] = [p for p in read_source(make_cfg(tmp_path), "larynx").problems if p.code == "bad_csv"]
    assert "['label'] appear twice" in bad.message


def test_spreadsheet_patient_with_two_classes(tmp_path, monkeypatch):
    rows = [("Patient", "Class"), ("Patient001", "B"), ("Patient002", "M"), ("Patient001", "M"), ("3", "benign")]
    book = types.SimpleNamespace(active=types.SimpleNamespace(iter_rows=lambda values_only: iter(rows)),
                                 close=lambda: None)
    monkeypatch.setitem(sys.modules, "openpyxl", types.SimpleNamespace(load_workbook=lambda *a, **k: book))
    root = tmp_path / "larynx"
    for i, (cls, pid) in enumerate([("Benign", 1), ("Malignant", 2), ("Benign", 3)]):
        png(root / cls / "H" / f"Patient{pid:03d}" / f"P{pid} (1).jpg", i)
    (root / "Patients_List_Updated_Final.xlsx").write_bytes(b"PK")
    cfg = make_cfg(tmp_path, "larynx", "cenbi")
    cfg["data"]["larynx"]["cenbi_label_source"] = "spreadsheet"
    lst = read_source(cfg, "larynx")
    [err] = [p for p in lst.problems if p.code == "conflicting_rows"]
    assert err.path.endswith(".xlsx:2") and "row 2 says 'benign'" in err.message and "row 4 says 'malignant'" in err.message
    assert [s.group for s in lst.samples] == ["Patient003", "Patient002"]  # Patient001 left out
