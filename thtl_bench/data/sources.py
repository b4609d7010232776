"""Readers of the real data set layouts into one list of samples.

Every reader returns a `Listing`: the samples it could use plus the problems it found (missing
image, image without a label row, unknown label, empty class folder, ...), so that `data check`
reports everything at once and `load_domain` refuses to train on a folder with errors.
Sample ids are paths relative to the domain root (posix), stable across machines.

Nothing outside the (resolved) root is opened: data.dvc versions the root only, so a file reached
through `../`, an absolute path or a symbolic link out of the root would train on unversioned
data. The one exception is a link into a DVC cache (`cache.type: symlink`), which is versioned.
Folder links inside the root are not followed (a link loop cannot list images twice or forever).
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

from thtl_bench import domains
from thtl_bench.data.errors import DataError, Problem

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
MASKS_DIR = "masks"  # phantom vessel masks mirror the image paths under <root>/masks/
# The layouts a domain of each role may use (thtl_bench.domains owns both lists).
LAYOUTS = domains.LAYOUTS
# a DVC cache object: <cache>/[files/md5/]ab/cdef... (md5 split 2 + 30 hex digits)
_DVC_OBJECT = re.compile(r"(^|/)[0-9a-f]{2}/[0-9a-f]{30}$")
_UTF8_FIX = "save it as UTF-8 (Excel: 'CSV UTF-8'; or `iconv -f latin1 -t utf-8 old.csv > new.csv`)"


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
    # label-table rows per image id, settled after reading (one file named by several rows)
    rows: dict[str, list[tuple[str, Sample]]] = field(default_factory=dict, repr=False)
    _walked: dict = field(default_factory=dict, repr=False)  # (folder, exts, recursive) -> files
    _links: dict = field(default_factory=dict, repr=False)  # link -> usable?, judged (and reported) once

    def __post_init__(self) -> None:
        self.real_root = Path(os.path.realpath(self.root))

    def mask_path(self, s: Sample) -> Path:
        return self.root / MASKS_DIR / Path(s.id).with_suffix(".png")

    def add(self, code: str, path, message: str, fix: str, severity: str = "error") -> None:
        self.problems.append(Problem(code, str(path), message, fix, severity))

    def claim(self, where: str, sample: Sample) -> None:
        """A label-table row naming an image; several rows for one image are settled later."""
        self.rows.setdefault(sample.id, []).append((where, sample))

    def allowed(self, target: Path) -> bool:
        """True for a resolved path inside the root, or a DVC cache object (versioned)."""
        return target.is_relative_to(self.real_root) or bool(_DVC_OBJECT.search(target.as_posix()))


def _rel(root: Path, p: Path) -> str:
    return p.relative_to(root).as_posix()


def _kind(lst: Listing, p: Path, exts: set[str]) -> str | None:
    """"dir" or "file" for an entry worth reading, else None. A link is resolved, not trusted:
    one that dangles, loops or leaves the root is a problem, a folder link is not followed."""
    wanted = p.suffix.lower() in exts
    if not p.is_symlink():
        return "dir" if p.is_dir() else "file" if wanted and p.is_file() else None
    if not (wanted or p.suffix == ""):  # e.g. a link to notes.txt: never read, not our business
        return None
    if p not in lst._links:
        lst._links[p] = _judge_link(lst, p)
    return "file" if wanted and lst._links[p] else None


def _judge_link(lst: Listing, p: Path) -> bool:
    """True for a link to a file inside the root (or a DVC cache object); else a problem, once."""
    try:
        target = p.resolve(strict=True)
    except (OSError, RuntimeError):  # dangling, or a link loop (RuntimeError before Python 3.13)
        lst.add("broken_link", p, "symbolic link is broken or loops", "fix the link or delete it")
        return False
    if not lst.allowed(target):
        lst.add("outside_root", p, f"symbolic link leads outside the data root {lst.real_root} (to {target}); "
                "data.dvc does not version it", "copy the data into the root, or point the root at the folder "
                "that holds it")
        return False
    if target.is_dir():
        lst.add("linked_folder", p, f"folder is a symbolic link (to {target}); readers do not follow folder links",
                "replace the link by the folder itself (or move its files here)")
        return False
    return target.is_file()


def _entries(lst: Listing, d: Path, exts: set[str]) -> list[tuple[Path, str]]:
    """(path, kind) of d's entries, sorted, skipping hidden ones and the masks folder."""
    try:
        names = sorted(os.listdir(d))
    except OSError as exc:
        lst.add("unreadable_folder", d, f"cannot list the folder ({exc.strerror or exc})",
                "check that it exists and is readable")
        return []
    out = []
    for name in names:
        p = d / name
        if name.startswith(".") or p == lst.root / MASKS_DIR:
            continue
        kind = _kind(lst, p, exts)
        if kind:
            out.append((p, kind))
    return out


def _files_under(lst: Listing, d: Path, exts: set[str] = IMAGE_EXTS, recursive: bool = True) -> list[Path]:
    """Files with one of `exts` below d, sorted; walked once per listing (problems once)."""
    key = (d, tuple(sorted(exts)), recursive)
    if key not in lst._walked:
        out = []
        for p, kind in _entries(lst, d, exts):
            if kind == "file":
                out.append(p)
            elif recursive:
                out += _files_under(lst, p, exts)
        lst._walked[key] = sorted(out)
    return lst._walked[key]


def _read_text(path: Path, lst: Listing) -> str | None:
    """A table's text, or None after a problem naming the file (and the first bad byte)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        lst.add("unreadable_table", path, f"cannot read the file ({exc.strerror or exc})",
                "check the file's permissions")
        return None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        lst.add("bad_encoding", path, "file is UTF-16 text (Excel 'Unicode Text'), not UTF-8", _UTF8_FIX)
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - data.rfind(b"\n", 0, exc.start)
        lst.add("bad_encoding", f"{path}:{line}", f"file is not UTF-8: byte 0x{data[exc.start]:02x} at line {line}, "
                f"column {col} (byte offset {exc.start}); latin-1/cp1252 exports look like this", _UTF8_FIX)
        return None


def _read_csv(path: Path, need: list[str], lst: Listing) -> list[tuple[int, dict]]:
    """(line, {column: stripped cell}) per data row; bad rows become problems and are dropped.
    Lines are the file's own (blank lines and quoted line breaks counted), so editors find them."""
    text = _read_text(path, lst)
    if text is None:
        return []
    reader = csv.reader(io.StringIO(text, newline=""))
    out: list[tuple[int, dict]] = []
    try:
        header = next(reader, None)
        if header is None:
            lst.add("bad_csv", path, "file is empty", f"give the file a header row with {need}")
            return []
        cols = [c.strip() for c in header]
        missing = [c for c in need if c not in cols]
        twice = [c for c in need if cols.count(c) > 1]
        if missing or twice:
            lst.add("bad_csv", f"{path}:{reader.line_num}",
                    f"columns {missing} missing (found {cols})" if missing else f"columns {twice} appear twice",
                    f"give the file one header row with {need}")
            return []
        last = reader.line_num
        for row in reader:
            start, last = last + 1, reader.line_num
            where = f"{path}:{start}"
            if not any(c.strip() for c in row):
                continue
            if any("\n" in c or "\r" in c for c in row):
                lst.add("bad_row", where, f"a cell runs over lines {start}-{last}: a quote (\") is not closed",
                        "close or remove the stray quote")
                continue
            if len(row) > len(cols) and any(c.strip() for c in row[len(cols):]):
                lst.add("bad_row", where, f"row has {len(row)} cells but the header has {len(cols)}",
                        'quote cells that hold a comma ("a,b.png") or remove the extra cells')
                continue
            cells = {c: (row[i].strip() if i < len(row) else "") for i, c in enumerate(cols) if c}
            empty = [c for c in need if not cells[c]]
            if empty:
                lst.add("empty_cell", where, f"cell(s) {empty} empty", "fill them in or delete the row")
                continue
            out.append((start, cells))
    except csv.Error as exc:
        lst.add("bad_csv", f"{path}:{reader.line_num}", f"not a readable CSV ({exc})", "fix the line, or re-export "
                "the table as CSV UTF-8")
    return out


def _label(raw: str, lst: Listing, where: str, alias: dict | None = None) -> str | None:
    """Map a raw label to a class name; an unknown label is a problem and the row is dropped."""
    lab = raw.strip()
    if alias:
        lab = alias.get(lab, lab)
    if lab not in lst.classes and re.fullmatch(r"\d+(\.0+)?", lab) and str(int(float(lab))) in lst.classes:
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
    dirs = []
    for d in search:
        if d != lst.root and d.is_symlink():
            _kind(lst, d, set())  # a linked image folder: judged (and reported) like any link
        elif not d.is_dir():
            lst.add("missing_folder", d, f"{csv_path.name} names images in {d}, which does not exist",
                    f"put the images in {d}")
        else:
            dirs.append(d)
    for d in dirs:
        for p in _files_under(lst, d):
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
            lst.claim(where, Sample(cands[0], rid, lab, group_of(key) or rid))
    _orphans(lst, used, csv_path, [p for d in dirs for p in _files_under(lst, d)])


def _orphans(lst: Listing, used: set[Path], table: Path, listed: list[Path]) -> None:
    """Images without a label row, looked for only in folders that hold labelled images
    (so an unlabelled test folder next to the train folder is not flooded with warnings)."""
    dirs = {p.parent for p in used}
    for p in listed:
        if p.parent in dirs and p not in used:
            lst.add("orphan_image", p, f"image has no row in {table.name}",
                    f"add a row for it to {table} or move the image out of {p.parent}")


def _settle_rows(lst: Listing) -> None:
    """One sample per image named by label-table rows. Rows that repeat an image with the same
    label and patient are harmless (the image is used once, a warning); rows that disagree leave
    the true label unknown, so the image is left out and the disagreement is an error."""
    for rid, entries in sorted(lst.rows.items()):
        if len(entries) == 1:
            lst.samples.append(entries[0][1])
            continue
        said = "; ".join(f"{w} says {s.label!r}" + (f" (patient {s.group})" if s.group != rid else "")
                         for w, s in entries)
        if len({(s.label, s.group) for _, s in entries}) == 1:
            lst.add("duplicate_row", entries[0][0], f"image {rid!r} is listed {len(entries)} times with the same "
                    f"label: {said}; it is used once", "delete the repeated rows", "warning")
            lst.samples.append(entries[0][1])
        else:
            lst.add("conflicting_rows", entries[0][0], f"image {rid!r} is listed {len(entries)} times with "
                    f"different labels or patients: {said}",
                    "keep one row per image with the right label and patient (the image is left out until then)")
    lst.rows.clear()


def _label_table(lst: Listing, name: str, layout: str, columns: str) -> Path | None:
    """The layout's label table, or None after recording a problem naming it and the fix."""
    table = lst.root / name
    if _kind(lst, table, {table.suffix}) == "file":
        return table
    if not table.is_symlink():  # a link was judged, and its problem reported, by _kind
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
    tables = [t for t in _files_under(lst, lst.root, {".csv"}) if _is_grading_table(t)]
    if not tables:
        lst.add("missing_table", lst.root, "IDRiD layout needs a grading CSV (Image name,Retinopathy grade)",
                f"put 'IDRiD_Disease Grading_Training Labels.csv' under {lst.root}")
    for t in tables:
        # file names repeat between the training and testing sets: prefer the matching folder
        prefer = "test" if "test" in t.name.lower() else "train"
        _table(lst, t, "Image name", "Retinopathy grade", [lst.root], prefer=prefer)


def _is_grading_table(path: Path) -> bool:
    """Sniff the header only, in any encoding: the full read (`_read_csv`) reports a bad one."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return True  # let the full read name the file
    enc = "utf-16" if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8"
    first = head.decode(enc, errors="replace").splitlines()[:1]
    return bool(first) and "Image name" in first[0] and "Retinopathy grade" in first[0]


def _folders(lst: Listing) -> list[Path]:
    """The root's top-level folders (class folders), links judged like any other entry."""
    return [p for p, kind in _entries(lst, lst.root, set()) if kind == "dir"]


def _class_folders(lst: Listing, dcfg: dict) -> None:
    """One folder per class; a sub-folder level below it (e.g. PatientNNN) is taken as the group."""
    alias = dcfg.get("folder_map") or {}
    dirs = _folders(lst)
    if not dirs:
        lst.add("no_class_folders", lst.root, "no class folders found",
                f"put one folder per class ({lst.classes}) in {lst.root}")
    for d in dirs:
        lab = _label(d.name, lst, d, alias)
        imgs = _files_under(lst, d)
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


def _spreadsheet_labels(root: Path, lst: Listing) -> dict[int, str | None] | None:
    """Patient number -> class from CE-NBI's patient list (needs an .xlsx reader); a patient
    whose rows disagree maps to None (an error names the rows)."""
    books = _files_under(lst, root, {".xlsx"}, recursive=False)
    if not books:
        lst.add("missing_table", root, "cenbi_label_source=spreadsheet but no .xlsx patient list is here",
                "put Patients_List_Updated_Final.xlsx in the root or set data.larynx.cenbi_label_source: folder")
        return None
    try:
        import openpyxl
    except ImportError as exc:
        raise DataError(Problem("no_xlsx_reader", str(books[0]), "reading the patient spreadsheet needs openpyxl",
                                "pip install openpyxl, or set data.larynx.cenbi_label_source: folder")) from exc
    book = openpyxl.load_workbook(books[0], read_only=True, data_only=True)
    try:
        rows = list(book.active.iter_rows(values_only=True))
    finally:
        book.close()
    head = [str(c or "").lower() for c in rows[0]] if rows else []
    pcol = next((i for i, h in enumerate(head) if "patient" in h), None)
    lcol = next((i for i, h in enumerate(head) if any(w in h for w in ("malign", "benign", "class", "diagnos"))), None)
    if pcol is None or lcol is None:
        lst.add("bad_csv", books[0], f"cannot find patient and class columns in header {head}",
                "name them 'Patient' and 'Class' (benign/malignant), or use cenbi_label_source: folder")
        return None
    alias = {"b": "benign", "m": "malignant"}
    said: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for n, row in enumerate(rows[1:], start=2):
        cell = str(row[pcol] or "")
        m = _PATIENT.search(cell) or re.fullmatch(r"\s*0*(\d+)\s*", cell)
        word = str(row[lcol] or "").strip().lower()
        if m and word:
            said[int(m.group(1))].append((n, alias.get(word, word)))
    out: dict[int, str | None] = {}
    for pid, entries in sorted(said.items()):
        labels = {lab for _, lab in entries}
        out[pid] = labels.pop() if len(labels) == 1 else None
        if out[pid] is None:
            lst.add("conflicting_rows", f"{books[0]}:{entries[0][0]}", f"patient {pid} has rows with different "
                    "classes: " + "; ".join(f"row {n} says {lab!r}" for n, lab in entries),
                    "keep one row per patient (the patient's images are left out until then)")
    return out


def _cenbi(lst: Listing, dcfg: dict) -> None:
    alias = dcfg.get("folder_map") or {}
    sheet = None
    if dcfg.get("cenbi_label_source", "folder") == "spreadsheet":
        sheet = _spreadsheet_labels(lst.root, lst)
    tops = _folders(lst)
    if not tops:
        lst.add("no_class_folders", lst.root, "no Benign/Malignant folders found", "extract the CE-NBI zip here")
    for top in tops:
        lab = _label(top.name, lst, top, alias)
        imgs = _files_under(lst, top)
        if not imgs:
            lst.add("empty_class", top, "class folder holds no images", "add images or delete the folder")
        if lab is None:
            continue
        for p in imgs:
            parts = p.relative_to(top).parts
            m = _PATIENT.fullmatch(parts[-2]) if len(parts) >= 2 else None
            if m is None:
                lst.add("no_patient", p, "image is not inside a PatientNNN folder",
                        "move it to <Class>/<Histology>/PatientNNN/ (patient ids keep splits leak-free)")
                continue
            y = lab
            if sheet is not None:
                pid = int(m.group(1))
                if pid in sheet and sheet[pid] is None:
                    continue  # the spreadsheet disagrees with itself: reported once, above
                y = sheet.get(pid)
                if y not in lst.classes:
                    lst.add("unknown_label", p, f"patient {m.group(1)} has label {y!r} in the spreadsheet",
                            "fix the spreadsheet row or use cenbi_label_source: folder")
                    continue
            hist = parts[0] if len(parts) >= 3 else ""
            lst.samples.append(Sample(p, _rel(lst.root, p), y, f"Patient{int(m.group(1)):03d}",
                                      (("histology", hist),)))


def _manifest_path(lst: Listing, raw: str, where: str) -> Path | None:
    """The image a manifest row names, or None after a problem: paths are relative to the root
    and stay inside it (also through links); `a/./b` and `a\\b` are spelled `a/b` (one id per file)."""
    if raw.startswith(("/", "\\")) or PureWindowsPath(raw).drive:
        lst.add("absolute_path", where, f"path {raw!r} is absolute; manifest paths are relative to {lst.root}",
                "write the path relative to the folder that holds manifest.csv (e.g. benign/img1.png)")
        return None
    rel = os.path.normpath(raw.replace("\\", "/"))
    if rel == ".." or rel.startswith("../"):
        lst.add("outside_root", where, f"path {raw!r} leads outside the data root {lst.root}",
                "copy the image into the data root and name it relative to it")
        return None
    p = lst.root / rel
    if p.is_symlink():
        lst._links[p] = False  # a bad link is named by its row, not again by the folder scan
    try:
        target = p.resolve(strict=True)
    except (OSError, RuntimeError):
        lst.add("missing_image", where, f"row names {raw!r} but {p} does not exist"
                + (" (broken or looping link)" if p.is_symlink() else ""), "add the image file or delete the row")
        return None
    if not lst.allowed(target):
        lst.add("outside_root", where, f"path {raw!r} leads through a symbolic link outside the data root "
                f"{lst.real_root} (to {target})", "copy the image into the data root")
        return None
    if not target.is_file():
        lst.add("missing_image", where, f"row names {raw!r} but {p} is not a file", "name an image file")
        return None
    if p.is_symlink():
        lst._links[p] = True
    return p


def _manifest(lst: Listing, dcfg: dict) -> None:
    table = _label_table(lst, "manifest.csv", "manifest", "path,label[,patient_id]")
    if table is None:
        return
    alias = dcfg.get("folder_map") or {}
    used: set[Path] = set()
    for line, row in _read_csv(table, ["path", "label"], lst):
        where = f"{table}:{line}"
        p = _manifest_path(lst, row["path"], where)
        if p is None:
            continue
        used.add(p)
        lab = _label(row["label"], lst, where, alias)
        if "patient_id" in row and not row["patient_id"]:
            # an image without its patient would be its own group and could leak across splits
            lst.add("empty_cell", where, "cell ['patient_id'] empty",
                    "fill in the patient id (the image name if it is the patient's only image)")
            continue
        if lab is not None:
            rid = _rel(lst.root, p)
            lst.claim(where, Sample(p, rid, lab, row.get("patient_id") or rid))
    listed = [q for d in sorted({p.parent for p in used}) for q in _files_under(lst, d, recursive=False)]
    _orphans(lst, used, table, listed)


READERS = {"aptos": _aptos, "eyepacs": _eyepacs, "idrid": _idrid, "folders": _class_folders,
           "cenbi": _cenbi, "manifest": _manifest}


def read_source(cfg: dict, domain: str) -> Listing:
    """List a domain's samples and problems per `data.<domain>` (layout, root, classes)."""
    if domain not in domains.DOMAINS:
        raise DataError(Problem("unknown_domain", domain, f"unknown domain {domain!r}",
                                f"use one of {domains.NAMES} (thtl_bench.domains)"))
    if domain not in cfg["data"]:
        raise DataError(Problem("no_data_section", cfg.get("_params_file", "params.yaml"),
                                f"domain {domain!r} has no data.{domain} section (layout, root, classes)",
                                f"add data.{domain} to params.yaml"))
    dcfg = cfg["data"][domain]
    layout = dcfg["layout"]
    role = domains.get(domain).role
    if layout not in LAYOUTS[role]:
        raise DataError(Problem("unknown_layout", cfg.get("_params_file", "params.yaml"),
                                f"data.{domain}.layout={layout!r} is not a layout of a {role} domain",
                                f"use one of {list(LAYOUTS[role])}"))
    root = Path(dcfg["root"])
    lst = Listing(domain, root, layout, [str(c) for c in dcfg["classes"]])
    if not root.is_dir():
        lst.add("missing_root", root, "data folder not found",
                "run `thtl-bench synth --out data` for phantoms, or put the data set there "
                f"(or set data.{domain}.root), then `thtl-bench data check`")
        return lst
    READERS[layout](lst, dcfg)
    _settle_rows(lst)
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
