"""Synthetic vascular phantoms written in the real data sets' layouts, so the real readers run
on every smoke run; docs/phantoms.md describes the model and every knob.

Domains (`synth(out, scfg, domains)`; the default is fundus + larynx):
- `fundus`: APTOS layout (train.csv id_code,diagnosis + train_images/), 5 ICDR grades;
- `larynx`: class folders benign/malignant with PatientNNN sub-folders + manifest.csv
  (path,label,patient_id);
- `fundus_tortuous`: the fundus images' twins (same eye, lesions, colours, noise and vessel
  area) with the vessel trees twisted to the malignant larynx's tortuosity: a control that
  changes one property (radial vs tortuous trees);
- `angio`: coronary angiography, one folder per stenosis class (none, moderate, severe);
- the 2 x 2 factorial of the mechanism (C6): one image set, `fundus_signs`, whose every image
  carries a lesion level L and a vessel-sign level V drawn independently (fully crossed), in
  two versions (radial trees; their tortuous twins, as `fundus_tortuous`), each labelled by
  two rules: `fundus_lesion` (radial, label L), `fundus_vessel` (radial, label V),
  `fundus_lesion_tortuous`, `fundus_vessel_tortuous`. The two domains of one version hold the
  very same image files; only train.csv (and the label column of phantom_indices.csv) differs.

Each domain folder also gets vessel masks under masks/, `phantom_indices.csv` (per-image
generator truth: tortuosity indices, vessel fraction, lesion counts, ...; real data sets
have no such file) and `phantom_stats.json` (generator version, the synth parameters and
their hash, the profile, per-class summaries). Every byte is the same on every CPU: all
arithmetic is `detmath`, PNGs come from `pngio`, nothing holds a time stamp or a font.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np

from thtl_bench.config import digest
from thtl_bench.data import angio_phantom, fundus_phantom, larynx_phantom, pngio
from thtl_bench.data import detmath as dm
from thtl_bench.errors import UserError

GENERATOR_VERSION = "3"  # bump whenever the same parameters would give other bytes
DEFAULT_DOMAINS = ("fundus", "larynx")
FUNDUS_CLASSES = fundus_phantom.CLASSES
LARYNX_CLASSES = larynx_phantom.CLASSES
# generator truth per domain (phantom_indices.csv columns after id,label,group), and the
# columns a perfect reader of the label-defining geometry would use (the reference ceiling)
TRUTH = {
    "fundus": ("tau", "dm", "icm", "soam", "calibre_cv", "vessel_fraction", "n_ma", "n_haem", "haem_quadrants",
               "n_exudate", "n_cotton_wool", "beading_quadrants", "irma_quadrants", "n_nv", "nvd", "preretinal"),
    "larynx": ("tau", "dm", "icm", "soam", "calibre_cv", "vessel_fraction", "n_dots", "dot_fraction", "dot_size_cv",
               "dot_spacing_cv", "hollow_dots"),
    "angio": ("tau", "dm", "icm", "soam", "calibre_cv", "vessel_fraction", "stenosis_pct", "stenosis_vessel",
              "lesion_length", "reference_diameter", "min_lumen", "n_vessels"),
}
TRUTH["fundus_tortuous"] = TRUTH["fundus"]
# the factorial: domain -> (label rule, tortuous twin?)
FACTORIAL = {"fundus_lesion": ("lesion", False), "fundus_lesion_tortuous": ("lesion", True),
             "fundus_vessel": ("vessel", False), "fundus_vessel_tortuous": ("vessel", True)}
SIGN_CLASSES = [str(k) for k in fundus_phantom.LEVELS]
_SIGNS_TRUTH = ("lesion_level", "vessel_level", "n_irma", "vein_dilation", "sign_fraction", "dropout_fraction", "area_excess", "reach")
for _d in FACTORIAL:
    TRUTH[_d] = TRUTH["fundus"] + _SIGNS_TRUTH
CEILING = {
    "fundus": ("n_ma", "n_haem", "haem_quadrants", "n_exudate", "n_cotton_wool", "beading_quadrants",
               "irma_quadrants", "n_nv", "preretinal"),
    "larynx": ("dm", "icm", "soam", "calibre_cv", "dot_fraction", "dot_size_cv", "dot_spacing_cv"),
    "angio": ("stenosis_pct", "min_lumen"),
}
CEILING["fundus_tortuous"] = CEILING["fundus"]
# what a perfect reader of each label's signs would use: the lesion counts, or the generator's
# own vessel-sign measurements
for _d, (_rule, _) in FACTORIAL.items():
    CEILING[_d] = (("n_ma", "n_haem", "haem_quadrants", "n_exudate", "n_cotton_wool", "preretinal")
                   if _rule == "lesion" else ("beading_quadrants", "irma_quadrants", "n_irma", "n_nv", "vein_dilation"))


class SynthError(UserError, ValueError):
    """A synth section that cannot make the requested domain."""


# ---------------------------------------------------------------- parameters and meta
def domain_params(scfg: dict, domain: str) -> dict:
    """The synth parameters that determine a domain's bytes (hashed into its meta file)."""
    keys = {"fundus": ["fundus"], "larynx": ["larynx"], "fundus_tortuous": ["fundus", "fundus_tortuous"],
            "angio": ["angio"],
            **{d: ["fundus_signs", "fundus_tortuous"] if twin else ["fundus_signs"] for d, (_, twin) in FACTORIAL.items()}
            }[domain]
    missing = [k for k in keys if k not in scfg]
    if missing:
        raise SynthError(f"synth.{missing[0]} is missing from the parameters: add it to params.yaml "
                         f"(see docs/phantoms.md) to make the {domain!r} phantoms")
    out = {"generator_version": GENERATOR_VERSION, "seed": int(scfg["seed"]), "image_size": int(scfg["image_size"]),
           "difficulty": {k: scfg["difficulty"][k] for k in sorted(scfg["difficulty"])}}
    for k in keys:
        out[k] = scfg[k]
    if domain in FACTORIAL:
        out["label_rule"] = FACTORIAL[domain][0]
    return out


def params_hash(params: dict) -> str:
    return digest(params, 16)


def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()


def _fmt(x) -> str:
    if isinstance(x, (bool, np.bool_)):
        return str(int(x))
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{float(x):.6f}"


# ---------------------------------------------------------------- domains
def _twin_taus(scfg: dict, key: int, n: int) -> list[float | None]:
    """Tortuosity of each of n tortuous twins: the larynx class's patient-level law plus its
    image-level jitter (synth.fundus_tortuous.tortuosity_of), one stream per image."""
    src = scfg["fundus_tortuous"]["tortuosity_of"]
    if src not in LARYNX_CLASSES:
        raise SynthError(f"synth.fundus_tortuous.tortuosity_of={src!r}: use one of {LARYNX_CLASSES}")
    lo, hi = larynx_phantom.tau_range(src, scfg["difficulty"]["tortuosity_overlap"])
    out = []
    for i in range(n):
        td = dm.draw(int(scfg["seed"]), key, i)
        out.append(min(max(td.uniform(lo, hi) + td.normal(0.0, larynx_phantom.MORPH["image_tau_sd"]), lo), hi))
    return out


def _fundus_items(scfg: dict, tortuous: bool, memo: dict):
    seed, size, diff = int(scfg["seed"]), int(scfg["image_size"]), scfg["difficulty"]
    per_grade = scfg["fundus"]["per_grade"]
    if len(per_grade) != len(FUNDUS_CLASSES):
        raise SynthError(f"synth.fundus.per_grade needs {len(FUNDUS_CLASSES)} counts (grades 0-4), got {per_grade}")
    grades = np.repeat(FUNDUS_CLASSES, per_grade)
    grades = grades[dm.draw(seed, 1, 0).permutation(len(grades))]  # ids do not reveal the grade
    taus = _twin_taus(scfg, 5, len(grades)) if tortuous else [None] * len(grades)
    for i, (g, tau) in enumerate(zip(grades, taus, strict=True)):
        r = fundus_phantom.image(seed, i + 1, str(g), size, diff, tau=tau)
        name = f"ph{i:05d}"
        yield f"train_images/{name}.png", str(g), f"train_images/{name}.png", r


SIGNS_STREAM, SIGNS_TWIN_STREAM = 6, 7  # draw keys of the fundus_signs images and their twins' tortuosity


def signs_cells(scfg: dict) -> list[tuple[int, int]]:
    """(lesion level, vessel level) of each fundus_signs image in id order: every pair of levels
    synth.fundus_signs.per_cell times (L and V independent and balanced), in a seeded order."""
    per_cell = scfg["fundus_signs"]["per_cell"]
    if not isinstance(per_cell, int) or isinstance(per_cell, bool) or per_cell < 1:
        raise SynthError(f"synth.fundus_signs.per_cell={per_cell!r}: give a whole number >= 1 (images per "
                         "pair of lesion and vessel-sign levels)")
    cells = [(a, b) for a in fundus_phantom.LEVELS for b in fundus_phantom.LEVELS for _ in range(per_cell)]
    return [cells[j] for j in dm.draw(int(scfg["seed"]), SIGNS_STREAM, 0).permutation(len(cells))]


def _signs_set(scfg: dict, tortuous: bool, memo: dict) -> list:
    """The fundus_signs images (radial or tortuous twins), made once per synth call: the lesion-
    and the vessel-graded domain of one version write the same images."""
    key = ("fundus_signs", tortuous)
    if key not in memo:
        seed, size, diff = int(scfg["seed"]), int(scfg["image_size"]), scfg["difficulty"]
        cells = signs_cells(scfg)
        dil = scfg["fundus_signs"].get("venous_dilation", 0.0)
        if isinstance(dil, bool) or not isinstance(dil, int | float) or not 0 <= dil <= 0.5:
            raise SynthError(f"synth.fundus_signs.venous_dilation={dil!r}: give the vein widening per "
                             "vessel-sign level, a number in [0, 0.5] (docs/phantoms.md)")
        taus = _twin_taus(scfg, SIGNS_TWIN_STREAM, len(cells)) if tortuous else [None] * len(cells)
        memo[key] = [(f"train_images/ph{i:05d}.png", cell,
                      fundus_phantom.image(seed, i + 1, None, size, diff, tau=tau, levels=cell, stream=SIGNS_STREAM,
                                             dilation=float(dil)))
                     for i, (cell, tau) in enumerate(zip(cells, taus, strict=True))]
    return memo[key]


def _signs_items(scfg: dict, domain: str, memo: dict):
    rule, tortuous = FACTORIAL[domain]
    for rel, (lesion, vessel), r in _signs_set(scfg, tortuous, memo):
        yield rel, str(lesion if rule == "lesion" else vessel), rel, r


def _larynx_items(scfg: dict, memo: dict):
    seed, size, diff = int(scfg["seed"]), int(scfg["image_size"]), scfg["difficulty"]
    lcfg = scfg["larynx"]
    lo, hi = lcfg["images_per_patient"]
    labels = np.repeat(LARYNX_CLASSES, [int(lcfg["patients"][c]) for c in LARYNX_CLASSES])
    labels = labels[dm.draw(seed, 2, 0).permutation(len(labels))]  # patient numbers do not reveal the class
    for pid, lab in enumerate(labels, start=1):
        pd = dm.draw(seed, 2, pid)
        pat = larynx_phantom.patient(pd, str(lab), diff["tortuosity_overlap"])
        for k in range(int(pd.integers(int(lo), int(hi) + 1))):
            r = larynx_phantom.image(seed, pid, k, pat, size, diff)
            rel = f"{lab}/Patient{pid:03d}/P{pid:03d}_{k + 1:02d}.png"
            yield rel, str(lab), f"Patient{pid:03d}", r


def _angio_items(scfg: dict, memo: dict):
    seed, size, diff = int(scfg["seed"]), int(scfg["image_size"]), scfg["difficulty"]
    counts = scfg["angio"]["per_class"]
    if len(counts) != len(angio_phantom.CLASSES):
        raise SynthError(f"synth.angio.per_class needs {len(angio_phantom.CLASSES)} counts "
                         f"({', '.join(angio_phantom.CLASSES)}), got {counts}")
    labels = np.repeat(angio_phantom.CLASSES, counts)
    labels = labels[dm.draw(seed, 4, 0).permutation(len(labels))]
    for i, lab in enumerate(labels):
        r = angio_phantom.image(seed, i + 1, str(lab), size, diff)
        rel = f"{lab}/an{i:05d}.png"
        yield rel, str(lab), rel, r


DOMAINS = {  # name: (classes, layout, items(scfg, memo))
    "fundus": (FUNDUS_CLASSES, "aptos", lambda s, m: _fundus_items(s, False, m)),
    "fundus_tortuous": (FUNDUS_CLASSES, "aptos", lambda s, m: _fundus_items(s, True, m)),
    "larynx": (LARYNX_CLASSES, "manifest", _larynx_items),
    "angio": (angio_phantom.CLASSES, "folders", _angio_items),
    **{d: (SIGN_CLASSES, "aptos", lambda s, m, d=d: _signs_items(s, d, m)) for d in FACTORIAL},
}


def _write_domain(out: Path, domain: str, scfg: dict, profile: str | None, memo: dict) -> tuple[dict, list]:
    classes, layout, items = DOMAINS[domain]
    params = domain_params(scfg, domain)
    rows, per = [], []
    for rel, label, group, r in items(scfg, memo):
        pngio.write(out / rel, r["rgb"])
        pngio.write(out / "masks" / rel, r["mask"])
        rows.append((rel, label, group, r["truth"]))
        per.append((label, group, r["rgb"]))
    if layout == "aptos":
        table = [("id_code", "diagnosis")] + [(Path(rel).stem, lab) for rel, lab, _, _ in rows]
        _write_csv(out / "train.csv", table)
    elif layout == "manifest":
        _write_csv(out / "manifest.csv", [("path", "label", "patient_id")] + [(r[0], r[1], r[2]) for r in rows])
    cols = TRUTH[domain]
    _write_csv(out / "phantom_indices.csv", [("id", "label", "group", *cols)]
               + [(rel, lab, grp, *(_fmt(t[c]) for c in cols)) for rel, lab, grp, t in rows])
    meta = {"domain": domain, "kind": "phantom", "layout": layout, "class_names": list(classes),
            "generator": "thtl-bench synth", "generator_version": GENERATOR_VERSION,
            "params_hash": params_hash(params), "params": params, "profile": profile,
            "n_images": len(rows), "n_groups": len({r[2] for r in rows}),
            "truth_columns": list(cols), "ceiling_columns": list(CEILING[domain]),
            "classes": _class_stats(classes, rows, per)}
    (out / "phantom_stats.json").write_bytes(_json_bytes(meta))
    return meta, per


def _write_csv(path: Path, rows) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.write_bytes(buf.getvalue().encode())


def _class_stats(classes, rows, per) -> dict:
    out = {}
    for c in classes:
        sel = [i for i, r in enumerate(rows) if r[1] == c]
        if not sel:
            continue
        e = {"n": len(sel), "groups": len({rows[i][2] for i in sel})}
        for k in rows[sel[0]][3]:
            v = np.array([float(rows[i][3][k]) for i in sel])
            m = float(v.mean())
            c_ = np.subtract(v, m)
            e[k] = {"mean": round(m, 4), "sd": round(float(np.sqrt(np.mean(np.multiply(c_, c_)))), 4)}
        rgb = np.stack([per[i][2].reshape(-1, 3).mean(axis=0) for i in sel])
        e["mean_rgb"] = [round(float(x), 2) for x in rgb.mean(axis=0)]
        out[c] = e
    return out


def synth(out: str | Path, scfg: dict, domains: list[str] | tuple[str, ...] = DEFAULT_DOMAINS, *,
          profile: str | None = None, sheets: str | Path | None = None) -> dict:
    """Write each domain into <out>/<domain>; the previous folder is replaced only once the new
    one is complete, so an interrupted run never leaves a half-written data set. `profile` is
    recorded in the meta files; `sheets` (a folder outside the data) gets one contact sheet
    per domain, phantoms_<domain>.png. Returns each domain's meta (phantom_stats.json)."""
    out = Path(out)
    unknown = [d for d in domains if d not in DOMAINS]
    if unknown:
        raise SynthError(f"unknown phantom domain {unknown[0]!r}; known: {sorted(DOMAINS)}")
    result, memo = {}, {}
    for d in domains:
        tmp = out / f".{d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        result[d], per = _write_domain(tmp, d, scfg, profile, memo)
        shutil.rmtree(out / d, ignore_errors=True)
        tmp.rename(out / d)
        if sheets is not None:
            pngio.write(Path(sheets) / f"phantoms_{d}.png", contact_sheet(DOMAINS[d][0], per))
    return result


def contact_sheet(classes: list[str], per: list, n: int = 8, gap: int = 2) -> np.ndarray:
    """One row per class (in class order, no text): the first image of up to n different
    groups (patients), so a row is not one patient's look."""
    size = per[0][2].shape[0]
    sheet = np.full((len(classes) * (size + gap), n * (size + gap), 3), 255, np.uint8)
    for row, c in enumerate(classes):
        seen, j = set(), 0
        for lab, grp, img in per:
            if lab != c or grp in seen or j >= n:
                continue
            seen.add(grp)
            sheet[row * (size + gap): row * (size + gap) + size, j * (size + gap): j * (size + gap) + size] = img
            j += 1
    return sheet


def format_stats(stats: dict) -> str:
    lines = [f"{'domain':<16} {'class':<10} {'n':>5} {'groups':>6} {'DM':>12} {'ICM':>12} {'SOAM':>13} "
             f"{'vessel%':>8}  mean RGB"]
    for d, st in stats.items():
        for c, e in st["classes"].items():
            lines.append(f"{d:<16} {c:<10} {e['n']:>5} {e['groups']:>6} {e['dm']['mean']:>6.3f}±{e['dm']['sd']:<5.3f}"
                         f"{e['icm']['mean']:>6.2f}±{e['icm']['sd']:<5.2f} {e['soam']['mean']:>6.3f}±{e['soam']['sd']:<5.3f}"
                         f"{100 * e['vessel_fraction']['mean']:>8.1f}  {e['mean_rgb']}")
    return "\n".join(lines)
