"""Laryngeal contact-endoscopy NBI phantoms, benign vs malignant by vessel geometry only.

Benign (ELS 2016 "longitudinal"; Ni 2011 types I-IV): vessels running parallel to the
surface along one direction, gently meandering, of regular calibre, branching smoothly at
acute angles (Murray's-law calibres); some patients (type IV) also show small brown dots in
a regular arrangement. Malignant (ELS "perpendicular"; Ni type V): loops seen end-on as
clustered brown dots of irregular size and spacing, some hollow (Va), and serpentine,
earthworm-like vessels that coil, run in any direction and vary in calibre (Vb).

One tortuosity level tau per image (patient range benign U(0, a), malignant U(1 - a, 1),
a = (1 + synth.difficulty.tortuosity_overlap) / 2) sets meander, coils, calibre irregularity
and the spread of directions. Everything else is drawn from one distribution for both
classes: colours (a two-band NBI model), contrast, texture, vessel calibre, the deep-vessel
layer and the total ink area, which is filled to its target exactly (the last element is cut
to fit), so the class cannot be read from colour, contrast or vessel area.
"""

from __future__ import annotations

import math

import numpy as np

from thtl_bench.data import detmath as dm
from thtl_bench.data import vessels as V

CLASSES = ["benign", "malignant"]
# NBI: the 415 nm image is shown in the green and blue channels, the 540 nm image in red
# (Gono et al. 2004). Superficial capillaries absorb 415 nm (brown), deeper vessels 540 nm (cyan).
LOOK = {
    "mucosa": (168.0, 150.0),       # reflectance at 540 / 415 nm as display values (R, G)
    "blue_gain": 0.85,              # display: B = 0.85 x the 415 nm image
    "band_variation": (0.9, 1.1),   # per patient and band
    "absorb_superficial": (0.45, 0.61),  # fraction absorbed by a fully covered pixel (540, 415)
    "absorb_deep": (0.58, 0.25),
    "haemoglobin": (0.75, 1.15),    # per-patient factor on every absorption (contrast)
    "texture": 0.07, "texture_corr": 3.0,
    "ink": (0.14, 0.22),            # vessel area fraction of the image
    "deep_share": (0.25, 0.45),     # of that area, the deep (cyan) layer
    "calibre": (0.85, 1.2),         # per-patient calibre factor
}
MORPH = {  # reference px
    "deep_radius": (1.2, 1.7), "deep_tau": (0.0, 0.3), "deep_spread": 0.2, "deep_length": (0.5, 1.0),
    "radius": (0.75, 1.0),          # superficial vessel radius
    "calibre_cv_total": 0.34,       # calibre CV within + between vessels (the largest within-vessel CV)
    "length": (0.35, 0.8),          # superficial vessel course, image widths
    "spread": (0.15, 1.2),          # SD of direction about the axis = a + b tau^1.5 (rad)
    "branches": 2,                  # up to this many side branches per vessel
    "murray_q": (0.25, 0.5), "branch_angle": (0.25, 0.55),  # smooth, acute branching
    "branch_length": (0.3, 0.6),
    "dot_radius": 2.0,              # end-on loop: dot radius = 2 x the capillary radius
    "p_dots": 0.5,                  # patients with dots (type IV if benign, Va if malignant) ...
    "dot_share": (0.2, 0.6),        # ... and their share of the superficial area: one law for both
                                    # classes (dot area would show in the colour histogram)
    "lattice": (4.5, 6.5),          # type IV: regular spacing (reference px), jitter 10 %
    "clusters": (2, 5), "cluster_sd": 6.0,  # type Va: clustered, irregular ...
    "dot_cv": {"benign": 0.05, "malignant": 0.3},   # ... and of irregular size
    "hollow": {"benign": 0.0, "malignant": 0.3},    # share of ring-like (hollow) dots
    "image_tau_sd": 0.05,           # image-to-image variation of tau within a patient
}


def tau_range(label: str, overlap: float) -> tuple[float, float]:
    """Benign U(0, a), malignant U(1-a, 1) with a = (1 + overlap)/2: overlap 0 gives disjoint
    ranges, 1 identical ones."""
    a = (1 + overlap) / 2
    return (0.0, a) if label == "benign" else (1 - a, 1.0)


def patient(d: dm.Draw, label: str, overlap: float) -> dict:
    """Per-patient look and pattern; only tau and the dot pattern depend on the label."""
    lo, hi = LOOK["band_variation"]
    p = {"band": (d.uniform(lo, hi), d.uniform(lo, hi)), "hb": d.uniform(*LOOK["haemoglobin"]),
         "ink": d.uniform(*LOOK["ink"]), "deep_share": d.uniform(*LOOK["deep_share"]),
         "calibre": d.uniform(*LOOK["calibre"]), "theta": d.uniform(0.0, dm.PI)}
    a, b = tau_range(label, overlap)
    p["tau"], p["tau_range"] = d.uniform(a, b), (a, b)
    has_dots = d.random() < MORPH["p_dots"]
    p["dot_share"] = d.uniform(*MORPH["dot_share"]) if has_dots else 0.0
    p["label"] = label
    return p


def _vessel_specs(d: dm.Draw, pat: dict, tau: float, theta: float, deep: bool) -> dict:
    if deep:
        return {"start": d.uniform(-0.1, 1.1, 2) * V.REF, "heading": theta + d.normal(0.0, MORPH["deep_spread"]),
                "length": d.uniform(*MORPH["deep_length"]) * V.REF, "tau": d.uniform(*MORPH["deep_tau"]),
                "r0": d.uniform(*MORPH["deep_radius"]) * pat["calibre"]}
    a, b = MORPH["spread"]
    # calibre varies along an irregular (type V) vessel and between regular ones, with one total
    # spread: the calibre distribution of an image is the same for both classes
    ca, cb = V.TORT["calibre_cv"]
    within = ca + cb * tau
    between = math.sqrt(max(MORPH["calibre_cv_total"] ** 2 - within * within, 0.0))
    return {"start": d.uniform(-0.1, 1.1, 2) * V.REF,
            "heading": theta + d.normal(0.0, a + b * tau * math.sqrt(tau)) + (dm.PI if d.random() < 0.5 else 0.0),
            "length": d.uniform(*MORPH["length"]) * V.REF, "tau": tau,
            "r0": d.uniform(*MORPH["radius"]) * pat["calibre"] * min(max(1.0 + d.normal(0.0, between), 0.6), 1.6)}


def _grow(d: dm.Draw, slots: V.Slots, at: int, specs: list[dict]) -> tuple[list[V.Vessel], int]:
    """Vessels with smooth side branches (Murray calibres), parents before their branches."""
    res = V.paths([s["start"] for s in specs], [s["heading"] for s in specs], [s["length"] for s in specs],
                  [s["tau"] for s in specs], [0.0] * len(specs), [slots[at + i] for i in range(len(specs))])
    at += len(specs)
    groups, kids = [], []
    for s, (pts, noise, course) in zip(specs, res, strict=True):
        r = V.calibre(noise, s["r0"], s["tau"], taper=0.2)
        mine = []
        for _ in range(int(d.integers(0, MORPH["branches"] + 1))):
            k = int(d.integers(len(pts) // 5, max(len(pts) * 4 // 5, len(pts) // 5 + 1)))
            r_par, r_dau = V.murray_split(float(r[k]), d.uniform(*MORPH["murray_q"]))
            r[k:] = np.multiply(r[k:], r_par / float(r[k]))
            mine.append({"start": pts[k], "heading": float(course[k]) + d.sign() * d.uniform(*MORPH["branch_angle"]),
                         "length": s["length"] * d.uniform(*MORPH["branch_length"]), "tau": s["tau"], "r0": r_dau})
        groups.append([V.Vessel(pts, r, s["tau"])])
        kids.append(mine)
    flat = [k for m in kids for k in m]
    if flat:
        res = V.paths([s["start"] for s in flat], [s["heading"] for s in flat], [s["length"] for s in flat],
                      [s["tau"] for s in flat], [0.0] * len(flat), [slots[at + i] for i in range(len(flat))])
        at += len(flat)
        it = iter(zip(flat, res, strict=True))
        for g, mine in zip(groups, kids, strict=True):
            for _ in mine:
                s, (pts, noise, _c) = next(it)
                g.append(V.Vessel(pts, V.calibre(noise, s["r0"], s["tau"], taper=0.3), s["tau"]))
    return [v for g in groups for v in g], at


def _fill_vessels(shape, u, d, slots, at, pat, tau, theta, deep, target) -> tuple[np.ndarray, list[V.Vessel], int]:
    """Add vessels until their coverage reaches `target`, the last one cut where the budget is
    full. They are made in batches sized by the area still missing."""
    cov = np.zeros(shape)
    drawn: list[V.Vessel] = []
    r = np.mean(MORPH["deep_radius"] if deep else MORPH["radius"]) * pat["calibre"]
    length = np.mean(MORPH["deep_length"] if deep else MORPH["length"]) * V.REF
    per_vessel = 2 * r * length * (1 + 0.5 * MORPH["branches"] * np.mean(MORPH["branch_length"])) / (V.REF * V.REF)
    while target > 0 and float(cov.mean()) < target:
        n = int(min(max(np.ceil(1.2 * (target - float(cov.mean())) / per_vessel), 2), 16))
        batch, at = _grow(d, slots, at, [_vessel_specs(d, pat, tau, theta, deep) for _ in range(n)])
        x, y, rr, own, seg = V.stamps(batch, u)
        if not len(x):
            continue
        flat, val, sid = V.contributions(shape, x, y, rr)
        m = V.fill_prefix(cov, flat, val, sid, len(x), target)
        if m == len(x):
            drawn += batch
            continue
        if m > 0:
            last = int(own[m - 1])
            drawn += batch[:last]
            v, k = batch[last], int(seg[m - 1]) + 1
            if k >= 2:
                drawn.append(V.Vessel(v.pts[:k], v.r[:k], v.tau, v.measured))
        break
    return cov, drawn, at


def _dots(d: dm.Draw, pat: dict, label: str) -> list[V.Vessel]:
    """Candidate end-on loops in drawing order: a jittered lattice (type IV) or clusters (Va)."""
    r0 = MORPH["dot_radius"] * MORPH["radius"][0] * pat["calibre"] * d.uniform(1.0, 1.3)
    cv = MORPH["dot_cv"][label]
    if label == "benign":
        sp = d.uniform(*MORPH["lattice"])
        ang = d.uniform(0.0, dm.PI)
        ca, sa = dm.cos_s(ang), dm.sin_s(ang)
        g = np.arange(-int(V.REF / sp) - 2, int(V.REF / sp) + 3, dtype=np.float64) * sp
        gx, gy = np.meshgrid(g, g)
        off = d.uniform(0.0, sp, 2)
        x = np.add(np.add(np.subtract(np.multiply(gx, ca), np.multiply(gy, sa)), V.REF / 2), off[0])
        y = np.add(np.add(np.add(np.multiply(gx, sa), np.multiply(gy, ca)), V.REF / 2), off[1])
        pts = np.stack([x.ravel(), y.ravel()], 1)
        pts = np.add(pts, d.normal(0.0, 0.1 * sp, pts.shape))
        pts = pts[((pts > -2) & (pts < V.REF + 2)).all(1)]
        c = d.uniform(0.2, 0.8, 2) * V.REF  # drawn outwards from a centre: a regular patch
        dx, dy = np.subtract(pts[:, 0], c[0]), np.subtract(pts[:, 1], c[1])
        pts = pts[np.argsort(np.add(np.multiply(dx, dx), np.multiply(dy, dy)), kind="stable")]
    else:
        centres = d.uniform(0.1, 0.9, (int(d.integers(*MORPH["clusters"])), 2)) * V.REF
        n = 400
        which = d.integers(0, len(centres), n)
        pts = np.add(centres[which], d.normal(0.0, MORPH["cluster_sd"], (n, 2)))
    radii = np.multiply(np.clip(d.normal(1.0, cv, len(pts)), 0.5, 1.8), r0)
    hollow = d.random(len(pts)) < MORPH["hollow"][label]
    out = []
    t = np.multiply(np.arange(13, dtype=np.float64), dm.TWO_PI / 12)
    circ = np.stack([dm.cos(t), dm.sin(t)], 1)
    for p, r, h in zip(pts, radii, hollow, strict=True):
        if h:  # a loop seen slightly obliquely: a ring of capillary calibre
            out.append(V.Vessel(np.add(np.multiply(circ, r - 0.4), p), np.full(13, 0.5), measured=False))
        else:
            out.append(V.Vessel(p[None, :], np.array([r]), measured=False))
    return out


def _fill_dots(shape, u, base: np.ndarray, dots: list[V.Vessel], target: float) -> tuple[np.ndarray, list[V.Vessel]]:
    """The longest prefix of `dots` whose union with `base` stays within `target` coverage."""
    cov = base.copy()
    x, y, r, own, _ = V.stamps(dots, u)
    flat, val, sid = V.contributions(shape, x, y, r)
    m = V.fill_prefix(cov, flat, val, own[sid], len(dots), target)
    return cov, dots[:m]


def _nn_cv(pts: np.ndarray) -> float:
    """Coefficient of variation of nearest-neighbour distances (0 for a perfect lattice)."""
    if len(pts) < 3:
        return 0.0
    dx = np.subtract(pts[:, None, 0], pts[None, :, 0])
    dy = np.subtract(pts[:, None, 1], pts[None, :, 1])
    d2 = np.add(np.multiply(dx, dx), np.multiply(dy, dy))
    np.fill_diagonal(d2, np.inf)
    nn = np.sqrt(d2.min(axis=1))
    c = np.subtract(nn, nn.mean())
    return float(np.sqrt(np.mean(np.multiply(c, c)))) / float(nn.mean())


def image(seed: int, pid: int, k: int, pat: dict, size: int, diff: dict, *, geometry: bool = False) -> dict:
    """One image of a patient: {'rgb', 'mask', 'truth'}; `geometry=True` adds 'vessels': the drawn
    vessels by layer ({'superficial', 'deep', 'dots'}: lists of vessels.Vessel), from which
    thtl_bench.data.segments labels each vessel pixel (the same bytes either way)."""
    u = size / V.REF
    shape = (size, size)
    d = dm.draw(seed, 3, pid, k)
    slots = V.Slots(dm.draw(seed, 3, pid, k, 1))
    a, b = pat["tau_range"]
    tau = min(max(pat["tau"] + d.normal(0.0, MORPH["image_tau_sd"]), a), b)
    theta = pat["theta"] + d.normal(0.0, 0.15)
    area = pat["ink"]
    deep_t = area * pat["deep_share"]
    sup_t = area - deep_t
    cov_d, deep, at = _fill_vessels(shape, u, d, slots, 0, pat, tau, theta, True, deep_t)
    dot_t = sup_t * pat["dot_share"]
    cov_s, sup, at = _fill_vessels(shape, u, d, slots, at, pat, tau, theta, False, sup_t - dot_t)
    dots_drawn: list[V.Vessel] = []
    if dot_t > 0:
        cov_s, dots_drawn = _fill_dots(shape, u, cov_s, _dots(d, pat, pat["label"]), sup_t)
    # two-band NBI rendering
    # texture and acquisition have streams of their own: the vessels drawn before them do not shift them
    tex = np.add(1.0, np.multiply(dm.smooth_field(dm.draw(seed, 3, pid, k, 2), shape, LOOK["texture_corr"] * u),
                                  LOOK["texture"]))
    hb = pat["hb"]
    (s540, s415), (d540, d415) = LOOK["absorb_superficial"], LOOK["absorb_deep"]
    i540 = np.multiply(np.multiply(np.subtract(1.0, np.multiply(cov_s, s540 * hb)), np.subtract(1.0, np.multiply(cov_d, d540 * hb))),
                       LOOK["mucosa"][0] * pat["band"][0])
    i415 = np.multiply(np.multiply(np.subtract(1.0, np.multiply(cov_s, s415 * hb)), np.subtract(1.0, np.multiply(cov_d, d415 * hb))),
                       LOOK["mucosa"][1] * pat["band"][1])
    rgb = np.stack([i540, i415, np.multiply(i415, LOOK["blue_gain"])], -1)
    rgb = np.multiply(rgb, tex[..., None])
    img = V.finish(rgb, dm.draw(seed, 3, pid, k, 3), diff, size)
    vcov = np.maximum(cov_s, cov_d)

    def inside(p):
        return ((p >= 0) & (p < V.REF)).all(1)

    summary, _ = V.measure(sup, inside)
    centres = np.array([v.pts.mean(axis=0) for v in dots_drawn]) if dots_drawn else np.zeros((0, 2))
    radii = np.array([float(v.r[0]) if len(v.r) == 1 else float(dm.hypot(*np.subtract(v.pts[0], centres[i]))) + 0.5
                      for i, v in enumerate(dots_drawn)])
    truth = {"tau": tau, **{k_: summary[k_] for k_ in ("dm", "icm", "soam", "calibre_cv")},
             "vessel_fraction": float(vcov.mean()), "n_dots": len(dots_drawn),
             "dot_fraction": float(pat["dot_share"]) if dots_drawn else 0.0,
             "dot_size_cv": (float(np.sqrt(np.mean(np.multiply(radii - radii.mean(), radii - radii.mean())))) / float(radii.mean()))
             if len(radii) > 1 else 0.0,
             "dot_spacing_cv": _nn_cv(centres), "hollow_dots": sum(1 for v in dots_drawn if len(v.r) > 1)}
    out = {"rgb": img, "mask": ((vcov >= 0.5).astype(np.uint8) * 255), "truth": truth}
    if geometry:
        out["vessels"] = {"superficial": sup, "deep": deep, "dots": dots_drawn}
    return out
