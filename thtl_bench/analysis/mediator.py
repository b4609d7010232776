"""The mediator the LayerCAM maps can show (numpy/scipy only): where a map's mass lies on the
generator's vessel segments, tortuous vs straight, beside where it would lie by chance.

`thtl-bench cam` writes, per explained larynx phantom and arm, the share of the map's mass on each
segment category and each category's pixel share (cam.json: segment_mass {layer group: {straight,
tortuous, dots}}, segment_fraction). For one image and layer group,

    lift = mass_tortuous / (mass_tortuous + mass_straight) - px_tortuous / (px_tortuous + px_straight)

in percentage points: how much more of the map's vessel-segment mass sits on tortuous segments
than a map blind to the distinction would put there. Only images holding both kinds of segment
count. Images of one patient are averaged first; the interval is a t over patients (the
explained images are few: this is descriptive, beside the accuracy effects, not a claim).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps


def _lift(entry: dict, group: str) -> float | None:
    mass = (entry.get("segment_mass") or {}).get(group) or {}
    frac = entry.get("segment_fraction") or {}
    mt, ms = mass.get("tortuous"), mass.get("straight")
    ft, fs = frac.get("tortuous"), frac.get("straight")
    if None in (mt, ms, ft, fs) or ft <= 0 or fs <= 0 or mt + ms <= 0:
        return None
    return 100.0 * (mt / (mt + ms) - ft / (ft + fs))


def groups_of(entries: Sequence[dict]) -> list[str]:
    """The layer groups of the entries' maps, front to back (as cam.json keeps them)."""
    for e in entries:
        if e.get("segment_mass"):
            return list(e["segment_mass"])
    return []


def segment_lift(entries: Sequence[dict], confidence: float = 0.95, group: str | None = None) -> list[dict]:
    """Per (model, arm, via) on the target images: the mean tortuous lift (pp) of `group` (default:
    the deepest layer group) over patients, its t-interval, the numbers of patients and images, and
    the mean chance share (pp)."""
    rows = [e for e in entries if e.get("segment_mass")]
    if not rows:
        return []
    g = group or groups_of(rows)[-1]
    keys = list(dict.fromkeys((e["model"], e["arm"], e.get("via")) for e in rows))
    out = []
    for model, arm, via in keys:
        by_patient: dict[str, list[float]] = {}
        chance = []
        for e in rows:
            if (e["model"], e["arm"], e.get("via")) != (model, arm, via):
                continue
            lift = _lift(e, g)
            if lift is None:
                continue
            by_patient.setdefault(str(e.get("group") or e["image_id"]), []).append(lift)
            f = e["segment_fraction"]
            chance.append(100.0 * f["tortuous"] / (f["tortuous"] + f["straight"]))
        vals = np.array([np.mean(v) for v in by_patient.values()])
        row = {"model": model, "arm": arm, "via": via, "group": g, "patients": len(vals),
               "images": sum(len(v) for v in by_patient.values()), "lift_pp": None, "lo_pp": None, "hi_pp": None,
               "chance_pp": float(np.mean(chance)) if chance else None}
        if len(vals):
            row["lift_pp"] = float(vals.mean())
        if len(vals) >= 2:
            se = float(vals.std(ddof=1)) / math.sqrt(len(vals))
            h = float(sps.t.ppf(0.5 + confidence / 2, len(vals) - 1)) * se
            row.update(lo_pp=row["lift_pp"] - h, hi_pp=row["lift_pp"] + h)
        out.append(row)
    return out
