"""X-ray coronary angiography phantoms with a stenosis-grade task.

A left coronary tree (left main -> LAD and LCx with diagonal / marginal branches, Murray's
law calibres, moderately tortuous) is projected as X-ray transmission: Beer-Lambert
attenuation along the path length through iodine-filled tubes, so vessels are dark on a bright
background, overlaps darker, thin branches faint. A contrast catheter enters from the image
border. Every image has one lesion site on the proximal-to-mid LAD or LCx whose diameter
reduction sets the class (visual grading as in CAD-RADS / QCA):

- none: 0-20 % (no or minimal luminal irregularity, CAD-RADS 0-1);
- moderate: 50-69 % (CAD-RADS 3);
- severe: 70-90 % (CAD-RADS 4).

The 25-49 % band is left out so the classes have a visible gap at 64 px. Grey-scale, stored as
RGB with equal channels.
"""

from __future__ import annotations

import numpy as np

from thtl_bench.data import detmath as dm
from thtl_bench.data import vessels as V

CLASSES = ["none", "moderate", "severe"]
STENOSIS = {"none": (0.0, 0.2), "moderate": (0.5, 0.7), "severe": (0.7, 0.9)}  # diameter reduction
ANATOMY = {  # reference px (64 px image; ~0.3 mm per px at 512 px -> 2.4 mm here, calibres ~2x)
    "ostium": ((0.15, 0.4), (0.12, 0.3)),  # ostium position, image fractions (x, y)
    "lm_radius": (1.7, 2.0), "lm_length": (4.0, 8.0),
    "lad_q": (0.4, 0.55),                 # LM bifurcation: r_LCx^3 / r_LM^3
    "lad_length": (0.8, 1.0), "lcx_length": (0.55, 0.8),  # image widths
    "tau": (0.15, 0.45),                  # coronary tortuosity level (moderate)
    "lesion_at": (0.15, 0.55),            # lesion site, fraction of the vessel's course
    "lesion_length": (1.0, 2.5),          # lesion length in reference diameters
    "catheter_radius": 1.0,
}
TREE = {"first_branch": (6.0, 12.0), "branch_interval": (7.0, 13.0), "murray_q": (0.15, 0.4),
        "branch_angle": (0.45, 0.9), "daughter_length": (0.4, 0.8), "branch_bend": 0.01,
        "max_depth": 1, "max_branches": 3}
XRAY = {
    "mu": 0.235,           # attenuation per reference px of iodinated lumen: a 3.4 px LM passes 45 %
    "contrast": (0.8, 1.2),  # per image (injection, patient size)
    "background": (0.72, 0.88), "anatomy": 0.06, "anatomy_corr": 10.0, "gradient": 0.12,
    "display": 235.0,
}
_TREE, _LOOK, _FINISH = 1, 2, 3


def image(seed: int, index: int, label: str, size: int, diff: dict) -> dict:
    u = size / V.REF
    shape = (size, size)
    d = dm.draw(seed, 4, index, _LOOK)
    slots = V.Slots(dm.draw(seed, 4, index, _TREE))
    (x0, x1), (y0, y1) = ANATOMY["ostium"]
    ost = np.array([d.uniform(x0, x1), d.uniform(y0, y1)]) * V.REF
    tau = d.uniform(*ANATOMY["tau"])
    r_lm = d.uniform(*ANATOMY["lm_radius"])
    lm_head = d.uniform(0.3, 0.9)  # down and to the right
    lm_len = d.uniform(*ANATOMY["lm_length"])
    bif = np.add(ost, [lm_len * dm.cos_s(lm_head), lm_len * dm.sin_s(lm_head)])
    r_lad, r_lcx = V.murray_split(r_lm, d.uniform(*ANATOMY["lad_q"]))
    trunks = [{"name": "lad", "start": bif, "heading": lm_head + d.uniform(0.2, 0.6), "bend": d.normal(0.0, 0.006),
               "length": d.uniform(*ANATOMY["lad_length"]) * V.REF, "r0": r_lad},
              {"name": "lcx", "start": bif, "heading": lm_head + dm.PI / 2 + d.uniform(0.2, 0.7),
               "bend": -abs(d.normal(0.0, 0.01)), "length": d.uniform(*ANATOMY["lcx_length"]) * V.REF, "r0": r_lcx}]

    def inside(p):
        return ((p >= -2) & (p < V.REF + 2)).all(1)

    tree = V.grow_tree(trunks, slots, lambda v: tau, inside, TREE)
    lm = V.Vessel(np.stack([np.linspace(ost[0], bif[0], 12), np.linspace(ost[1], bif[1], 12)], 1), np.full(12, r_lm), tau)
    # the lesion: a smooth (cos^2) narrowing of the lumen diameter by `ds`
    which = 0 if d.random() < 0.6 else 1
    ds = d.uniform(*STENOSIS[label])
    ves = [v for v in tree if v["depth"] == 0][which]["vessel"]
    n = len(ves.pts)
    at = int(d.uniform(*ANATOMY["lesion_at"]) * n)
    ref_d = 2 * float(ves.r[min(at, n - 1)])
    half = max(d.uniform(*ANATOMY["lesion_length"]) * ref_d / 2, 1.0)
    s = np.divide(np.subtract(np.multiply(np.arange(n, dtype=np.float64), V.STEP), at * V.STEP), half)
    bump = np.where(np.abs(s) < 1, np.multiply(dm.cos(np.multiply(s, dm.PI / 2)), dm.cos(np.multiply(s, dm.PI / 2))), 0.0)
    ves.r = np.multiply(ves.r, np.subtract(1.0, np.multiply(bump, ds)))
    # the catheter: a contrast-filled tube from the upper or left border to the ostium
    edge = np.array([d.uniform(-0.05, 0.3) * V.REF, -2.0]) if d.random() < 0.5 else np.array([-2.0, d.uniform(0.0, 0.4) * V.REF])
    t = np.linspace(0.0, 1.0, 24)
    mid = np.add(np.multiply(np.add(edge, ost), 0.5), d.normal(0.0, 3.0, 2))
    cat = np.add(np.add(np.multiply(np.multiply(np.subtract(1, t), np.subtract(1, t))[:, None], edge),
                        np.multiply(np.multiply(np.multiply(t, np.subtract(1, t)), 2.0)[:, None], mid)),
                 np.multiply(np.multiply(t, t)[:, None], ost))
    catheter = V.Vessel(cat, np.full(24, ANATOMY["catheter_radius"]), measured=False)
    vessels = [lm] + [v["vessel"] for v in tree]
    length = np.divide(V.path_length(shape, vessels + [catheter], u), u)  # reference px
    mu = XRAY["mu"] * d.uniform(*XRAY["contrast"])
    trans = dm.exp(np.multiply(length, -mu))
    g = np.divide(np.add(np.arange(size, dtype=np.float64), 0.5), size) - 0.5
    ang = d.uniform(0.0, dm.TWO_PI)
    grad = np.add(np.multiply(g[None, :], dm.cos_s(ang)), np.multiply(g[:, None], dm.sin_s(ang)))
    bg = np.multiply(np.add(np.add(1.0, np.multiply(dm.smooth_field(d, shape, XRAY["anatomy_corr"] * u), XRAY["anatomy"])),
                            np.multiply(grad, XRAY["gradient"] * 2)), d.uniform(*XRAY["background"]) * XRAY["display"])
    grey = np.multiply(bg, trans)[..., None]
    img = V.finish(grey, dm.draw(seed, 4, index, _FINISH), diff, size)
    cov = V.render(shape, vessels, u)
    summary, _ = V.measure([v["vessel"] for v in tree], inside)
    truth = {"tau": tau, **{k: summary[k] for k in ("dm", "icm", "soam", "calibre_cv")},
             "vessel_fraction": float(cov.mean()), "stenosis_pct": 100 * ds, "stenosis_vessel": which,
             "lesion_length": 2 * half, "reference_diameter": ref_d,
             "min_lumen": ref_d * (1 - ds), "n_vessels": len(vessels)}
    return {"rgb": np.repeat(img, 3, axis=2), "mask": ((cov >= 0.5).astype(np.uint8) * 255), "truth": truth}
