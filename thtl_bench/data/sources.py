"""Readers of the real data set layouts into one list of samples.

Every reader returns a `Listing`: the samples it could use plus the problems it found (missing
image, image without a label row, unknown label, empty class folder, ...), so that `data check`
reports everything at once and `load_domain` refuses to train on a folder with errors.
Sample ids are paths relative to the domain root (posix), stable across machines.
"""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from thtl_bench.data.errors import DataError, Problem

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
MASKS_DIR = "masks"  # phantom vessel masks mirror the image paths under <root>/masks/
LAYOUTS = {"fundus": ("aptos", "eyepacs", "idrid", "folders"), "larynx": ("cenbi", "folders", "manifest")}


@dataclass(frozen=True)
class Sample:
    path: Path
    id: str  # path relative to the domain root
    label: str
    group: str  # patient/subject id, else the image id
    meta: tuple = ()  # (key, value) pairs, e.g. (("histology", "SCC"),)


@dataclass
class Listing:
    domain: str
    root: Path
    layout: str
    classes: list[str]
    samples: list[Sample] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def mask_path(self, s: Sample) -> Path:
        return self.root / MASKS_DIR / Path(s.id).with_suffix(".png")

    def add(self, code: str, path, message: str, fix: str, severity: str = "error") -> None:
        self.problems.append(Problem(code, str(path), message, fix, severity))


def _rel(root: Path, p: Path) -> str:
    return p.relative_to(root).as_posix()


def _images_under(d: Path, root: Path) -> list[Path]:
    """Image files below d, sorted, skipping the masks folder and hidden entries."""
    masks = root / MASKS_DIR
    out = []
    for p in sorted(d.rglob("*")):
        if p.suffix.lower() in IMAGE_EXTS and p.is_file() and masks not in p.parents:
            if not any(part.startswith(".") for part in p.relative_to(root).parts):
                out.append(p)
    return out


def _read_csv(path: Path, need: list[str], lst: Listing) -> list[tuple[int, dict]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        cols = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in need if c not in cols]
        if missing:
            lst.add("bad_csv", path, f"columns {missing} missing (found {cols})",
                    f"give the file a header row with {need}")
            return []
        return [(i + 2, {k.strip(): (v or "").strip() for k, v in row.items() if k}) for i, row in enumerate(reader)]


def _label(raw: str, lst: Listing, where: str, alias: dict | None = None) -> str | None:
    """Map a raw label to a class name; an unknown label is a problem and the row is dropped."""
    lab = raw.strip()
    if alias:
        lab = alias.get(lab, lab)
    if lst.domain == "fundus" and re.fullmatch(r"\d+(\.0+)?", lab):
        lab = str(int(float(lab)))  # grades may be written 2 or 2.0
    if lab not in lst.classes:
        lst.add("unknown_label", where, f"label {raw!r} is not one of the classes {lst.classes}",
                f"correct the label, or set data.{lst.domain}.classes"
                + (f" / data.{lst.domain}.folder_map" if alias is not None else ""))
        return None
    return lab


def _table(lst: Listing, csv_path: Path, id_col: str, label_col: str, search: list[Path],
           group_of=lambda key: None, prefer: str | None = None) -> None:
    """Shared logic of the label-table layouts (APTOS, EyePACS, IDRiD): one row per image stem."""
    index: dict[str, list[Path]] = defaultdict(list)
    for d in search:
        for p in _images_under(d, lst.root):
            index[p.stem].append(p)
    used: set[Path] = set()
    for line, row in _read_csv(csv_path, [id_col, label_col], lst):
        key = row[id_col]
        key = Path(key).stem if Path(key).suffix.lower() in IMAGE_EXTS else key
        where = f"{csv_path}:{line}"
        cands = index.get(key, [])
        if len(cands) > 1 and prefer:
            cands = [p for p in cands if prefer in _rel(lst.root, p).lower()] or cands
        if not cands:
            lst.add("missing_image", where, f"row names image {key!r} but no such image file exists under "
                    f"{', '.join(str(d) for d in search)}", "add the image file or delete the row")
            continue
        if len(cands) > 1:
            lst.add("ambiguous_image", where, f"image {key!r} matches several files {[str(c) for c in cands]}",
                    "keep one copy of the image")
            continue
        lab = _label(row[label_col], lst, where)
        used.add(cands[0])
        if lab is not None:
            rid = _rel(lst.root, cands[0])
            lst.samples.append(Sample(cands[0], rid, lab, group_of(key) or rid))
    _orphans(lst, used, csv_path)


def _orphans(lst: Listing, used: set[Path], table: Path) -> None:
    """Images without a label row, looked for only in folders that hold labelled images
    (so an unlabelled test folder next to the train folder is not flooded with warnings)."""
    for d in sorted({p.parent for p in used}):
        for p in sorted(d.iterdir()):
            if p.suffix.lower() in IMAGE_EXTS and p not in used and p.is_file():
                lst.add("orphan_image", p, f"image has no row in {table.name}",
                        f"add a row for it to {table} or move the image out of {d}")


def _label_table(lst: Listing, name: str, layout: str, columns: str) -> Path | None:
    """The layout's label table, or None after recording a problem naming it and the fix."""
    table = lst.root / name
    if table.is_file():
        return table
    lst.add("missing_table", table, f"{layout} layout needs {name} ({columns})",
            f"put {name} in {lst.root} or set data.{lst.domain}.layout")
    return None


# ---------------------------------------------------------------- fundus layouts
def _aptos(lst: Listing, dcfg: dict) -> None:
    table = _label_table(lst, "train.csv", "APTOS", "id_code,diagnosis")
    if table is not None:
        _table(lst, table, "id_code", "diagnosis", [lst.root / "train_images"])


def _eyepacs(lst: Listing, dcfg: dict) -> None:
    table = _label_table(lst, "trainLabels.csv", "EyePACS", "image,level")
    if table is None:
        return
    # `<subject>_left` / `<subject>_right`: both eyes of one subject form one group.
    _table(lst, table, "image", "level", [lst.root], group_of=lambda k: re.sub(r"_(left|right)$", "", k))


def _idrid(lst: Listing, dcfg: dict) -> None:
    tables = []
    for p in sorted(lst.root.rglob("*.csv")):
        with open(p, encoding="utf-8-sig") as fh:
            head = fh.readline()
        if "Image name" in head and "Retinopathy grade" in head:
            tables.append(p)
    if not tables:
        lst.add("missing_table", lst.root, "IDRiD layout needs a grading CSV (Image name,Retinopathy grade)",
                f"put 'IDRiD_Disease Grading_Training Labels.csv' under {lst.root}")
    for t in tables:
        # file names repeat between the training and testing sets: prefer the matching folder
        prefer = "test" if "test" in t.name.lower() else "train"
        _table(lst, t, "Image name", "Retinopathy grade", [lst.root], prefer=prefer)


def _class_folders(lst: Listing, dcfg: dict) -> None:
    """One folder per class; a sub-folder level below it (e.g. PatientNNN) is taken as the group."""
    alias = dcfg.get("folder_map") or {}
    dirs = [d for d in sorted(lst.root.iterdir()) if d.is_dir() and d.name != MASKS_DIR and not d.name.startswith(".")]
    if not dirs:
        lst.add("no_class_folders", lst.root, "no class folders found",
                f"put one folder per class ({lst.classes}) in {lst.root}")
    for d in dirs:
        lab = _label(d.name, lst, d, alias)
        imgs = _images_under(d, lst.root)
        if not imgs:
            lst.add("empty_class", d, "class folder holds no images", "add images or delete the folder")
        if lab is None:
            continue
        for p in imgs:
            rid = _rel(lst.root, p)
            sub = p.relative_to(d).parts
            lst.samples.append(Sample(p, rid, lab, f"{d.name}/{sub[0]}" if len(sub) > 1 else rid))


# ---------------------------------------------------------------- larynx layouts
_PATIENT = re.compile(r"patient\s*0*(\d+)", re.I)


def _spreadsheet_labels(root: Path, lst: Listing) -> dict[int, str] | None:
    """Patient number -> class from CE-NBI's patient list (needs an .xlsx reader)."""
    books = sorted(root.glob("*.xlsx"))
    if not books:
        lst.add("missing_table", root, "cenbi_label_source=spreadsheet but no .xlsx patient list is here",
                "put Patients_List_Updated_Final.xlsx in the root or set data.larynx.cenbi_label_source: folder")
        return None
    try:
        import openpyxl
    except ImportError as exc:
        raise DataError(Problem("no_xlsx_reader", str(books[0]), "reading the patient spreadsheet needs openpyxl",
                                "pip install openpyxl, or set data.larynx.cenbi_label_source: folder")) from exc
    rows = list(openpyxl.load_workbook(books[0], read_only=True, data_only=True).active.iter_rows(values_only=True))
    head = [str(c or "").lower() for c in rows[0]] if rows else []
    pcol = next((i for i, h in enumerate(head) if "patient" in h), None)
    lcol = next((i for i, h in enumerate(head) if any(w in h for w in ("malign", "benign", "class", "diagnos"))), None)
    if pcol is None or lcol is None:
        lst.add("bad_csv", books[0], f"cannot find patient and class columns in header {head}",
                "name them 'Patient' and 'Class' (benign/malignant), or use cenbi_label_source: folder")
        return None
    alias = {"b": "benign", "m": "malignant"}
    out = {}
    for row in rows[1:]:
        cell = str(row[pcol] or "")
        m = _PATIENT.search(cell) or re.fullmatch(r"\s*0*(\d+)\s*", cell)
        word = str(row[lcol] or "").strip().lower()
        if m and word:
            out[int(m.group(1))] = alias.get(word, word)
    return out


def _cenbi(lst: Listing, dcfg: dict) -> None:
    alias = dcfg.get("folder_map") or {}
    sheet = None
    if dcfg.get("cenbi_label_source", "folder") == "spreadsheet":
        sheet = _spreadsheet_labels(lst.root, lst)
    tops = [d for d in sorted(lst.root.iterdir()) if d.is_dir() and d.name != MASKS_DIR and not d.name.startswith(".")]
    if not tops:
        lst.add("no_class_folders", lst.root, "no Benign/Malignant folders found", "extract the CE-NBI zip here")
    for top in tops:
        lab = _label(top.name, lst, top, alias)
        if not _images_under(top, lst.root):
            lst.add("empty_class", top, "class folder holds no images", "add images or delete the folder")
        if lab is None:
            continue
        for p in _images_under(top, lst.root):
            parts = p.relative_to(top).parts
            m = _PATIENT.fullmatch(parts[-2]) if len(parts) >= 2 else None
            if m is None:
                lst.add("no_patient", p, "image is not inside a PatientNNN folder",
                        "move it to <Class>/<Histology>/PatientNNN/ (patient ids keep splits leak-free)")
                continue
            y = lab
            if sheet is not None:
                y = sheet.get(int(m.group(1)))
                if y not in lst.classes:
                    lst.add("unknown_label", p, f"patient {m.group(1)} has label {y!r} in the spreadsheet",
                            "fix the spreadsheet row or use cenbi_label_source: folder")
                    continue
            hist = parts[0] if len(parts) >= 3 else ""
            lst.samples.append(Sample(p, _rel(lst.root, p), y, f"Patient{int(m.group(1)):03d}",
                                      (("histology", hist),)))


def _manifest(lst: Listing, dcfg: dict) -> None:
    table = _label_table(lst, "manifest.csv", "manifest", "path,label[,patient_id]")
    if table is None:
        return
    alias = dcfg.get("folder_map") or {}
    used: set[Path] = set()
    for line, row in _read_csv(table, ["path", "label"], lst):
        where = f"{table}:{line}"
        p = lst.root / row["path"]
        if not p.is_file():
            lst.add("missing_image", where, f"row names {row['path']!r} but {p} does not exist",
                    "add the image file or delete the row")
            continue
        used.add(p)
        lab = _label(row["label"], lst, where, alias)
        if lab is not None:
            rid = _rel(lst.root, p)
            lst.samples.append(Sample(p, rid, lab, row.get("patient_id") or rid))
    _orphans(lst, used, table)


READERS = {"aptos": _aptos, "eyepacs": _eyepacs, "idrid": _idrid, "folders": _class_folders,
           "cenbi": _cenbi, "manifest": _manifest}


def read_source(cfg: dict, domain: str) -> Listing:
    """List a domain's samples and problems per `data.<domain>` (layout, root, classes)."""
    if domain not in LAYOUTS:
        raise DataError(Problem("unknown_domain", domain, f"unknown domain {domain!r}", f"use one of {list(LAYOUTS)}"))
    dcfg = cfg["data"][domain]
    layout = dcfg["layout"]
    if layout not in LAYOUTS[domain]:
        raise DataError(Problem("unknown_layout", cfg.get("_params_file", "params.yaml"),
                                f"data.{domain}.layout={layout!r} is not a {domain} layout",
                                f"use one of {list(LAYOUTS[domain])}"))
    root = Path(dcfg["root"])
    lst = Listing(domain, root, layout, [str(c) for c in dcfg["classes"]])
    if not root.is_dir():
        lst.add("missing_root", root, "data folder not found",
                "run `thtl-bench synth --out data` for phantoms, or put the data set there "
                f"(or set data.{domain}.root), then `thtl-bench data check`")
        return lst
    READERS[layout](lst, dcfg)
    lst.samples.sort(key=lambda s: s.id)
    present = Counter(s.label for s in lst.samples)
    if len(present) < 2:
        lst.add("too_few_classes", root, f"found {len(present)} class(es) with images ({sorted(present)}); "
                "classification needs at least two", f"add images of the classes {lst.classes}")
    for c in lst.classes:
        if c not in present and len(present) >= 2:
            lst.add("class_without_images", root, f"class {c!r} has no images",
                    f"add images or drop it from data.{domain}.classes", "warning")
    labels_of = defaultdict(set)
    for s in lst.samples:
        labels_of[s.group].add(s.label)
    for g, labs in sorted(labels_of.items()):
        if len(labs) > 1:
            lst.add("mixed_group", f"{root}/{g}", f"group {g!r} has images of classes {sorted(labs)}",
                    "check the labels; the split keeps the group together under its majority class", "warning")
    return lst
