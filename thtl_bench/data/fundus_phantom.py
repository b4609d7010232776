"""Colour fundus phantoms: a radial vessel tree from the optic disc and the lesions that define
each grade of the International Clinical DR scale (ICDR, Wilkinson et al. 2003).

- 0 no DR; 1 mild NPDR: microaneurysms only; 2 moderate NPDR: + dot/blot haemorrhages, hard
  exudates (cotton-wool spots); 3 severe NPDR (4-2-1 rule): haemorrhages in all four
  quadrants, venous beading in >= 2 quadrants, IRMA in >= 1; 4 PDR: neovascularisation at
  the disc (NVD) and/or elsewhere (NVE) +- preretinal haemorrhage, on a moderate or severe
  NPDR background. Grades 3 and 4 therefore differ from 2 and 3 in vessel geometry.

The tree: 8 trunks (artery and vein of the four quadrants; temporal arcades arching around
the macula, nasal vessels radial), Murray's-law bifurcations down to sub-pixel calibre. A
`tau` argument other than None draws the *same* eye (disc, lesions, colours, noise: every
draw lives in its own stream) with twisted trees of that tortuosity level instead, the total
vessel area matched to the radial twin: the `fundus_tortuous` control domain.

The factorial recipe (`image(..., levels=(L, V))`, the `fundus_signs` image set): every image
carries a *lesion level* L and a *vessel-sign level* V drawn independently (a fully crossed
design). L sets the coloured lesions only (microaneurysms, haemorrhages, exudates, cotton-wool
spots, preretinal haemorrhage), V the vessel-geometry signs only (venous beading, IRMA, new
vessels), so a grade read from L is readable from colour, one read from V only from vessel
geometry. The signs add no vessel pixels: the vein tree loses the same area from the tips of
its branches (capillary non-perfusion and vessel dropout, where IRMA and new vessels arise), so
an image's vein area is its sign-free tree's whatever V (docs/phantoms.md, "fundus_signs").

Sizes are in the 64-px reference frame (vessels.REF). The anatomy (disc size, disc-fovea
distance, field of view) is to scale; calibres and lesions are enlarged about 3-4x so that
the smallest lesion (a microaneurysm) is 2 px across at the default 64 px (docs/phantoms.md).
"""

from __future__ import annotations

import math

import numpy as np

from thtl_bench.data import detmath as dm
from thtl_bench.data import vessels as V

CLASSES = ["0", "1", "2", "3", "4"]
FOV_R = 0.47 * V.REF  # field-of-view radius: a 45-degree photo (~13 mm of retina) ...
DD = 2 * FOV_R / 7.2  # ... spans about 7.2 disc diameters (disc 1.8 mm)
ANATOMY = {
    "disc_offset": 1.25,        # disc and fovea 2.5 DD apart, the field centred between them (DD)
    "vein_radius": (1.0, 1.2),  # main vein radius at the disc (reference px; ~3.5x the real 75 um)
    "nasal_calibre": 0.85,      # nasal trunks are thinner than the temporal arcades
    "avr": 0.72,                # artery/vein calibre ratio (normal 0.67-0.75)
    "arcade_radius": (2.2, 3.0),  # temporal arcades bend around the macula with this radius (DD)
    "trunk_length": (1.15, 1.35),  # nominal trunk course, FOV radii (they end at the FOV rim)
    "tau": (0.0, 0.15),         # retinal tortuosity level (normal retinal DM 1.0-1.1)
}
TREE = {  # branching rules (vessels.grow_tree); lengths in reference px
    "first_branch": (0.4 * DD, 0.9 * DD),     # course to the first bifurcation
    "branch_interval": (0.7 * DD, 1.3 * DD),  # course between bifurcations
    "murray_q": (0.15, 0.45),   # r2^3 / r0^3 of the smaller daughter
    "branch_angle": (0.6, 1.2),  # smaller daughter's deviation (rad; 35-70 degrees)
    "daughter_length": (0.45, 0.85),  # daughter course / parent's remaining course
    "branch_bend": 0.01,        # daughters' steady bend, uniform +- (rad per px)
    "max_depth": 2,             # trunk -> branch -> sub-branch
    "max_branches": 3,          # bifurcations per vessel
}
LESIONS = {  # radii in reference px
    "ma": (1.0, 1.3),           # microaneurysm: 2-2.6 px across at 64 px (the size rule)
    "haem": (1.3, 2.1),         # dot/blot haemorrhage
    "exudate": (0.8, 1.2),      # hard exudate (clustered)
    "cotton_wool": (1.6, 2.3),  # cotton-wool spot (soft edge)
    "bead_amp": (0.4, 0.6),     # venous beading: calibre x (1 +- amp) ...
    "bead_period": (3.0, 4.0),  # ... with this period in vein diameters
    "irma_length": (4.0, 7.0),  # IRMA segment course (reference px)
    "irma_radius": 0.55,
    "irma_tau": (0.8, 1.0),
    "nv_loops": (6, 10),        # fine tortuous vessels per neovascular tuft
    "nv_length": (3.0, 6.0),
    "nv_radius": 0.5,
    "nv_coil": 0.5,             # tuft loops are finer than a coiled vessel's
    "preretinal": (4.0, 7.0),   # boat-shaped preretinal haemorrhage radius
}
COLOURS = {  # RGB and opacity
    "fundus": (196, 88, 40), "disc": (245, 205, 140), "vein": ((110, 22, 16), 0.85),
    "artery": ((170, 45, 25), 0.7), "ma": ((100, 10, 10), 0.9), "haem": ((105, 15, 12), 0.85),
    "exudate": ((235, 215, 90), 0.9), "cotton_wool": ((235, 225, 205), 0.7), "preretinal": ((90, 8, 8), 0.95),
}
QUADRANTS = ((1, -1), (1, 1), (-1, -1), (-1, 1))  # (x sign, y sign) about the field centre
# The factorial recipe's vessel signs, drawn to the lesions' size rule (every sign >= 2 px across
# at 64 px) so that a grade read from them is visible at the profile's image size; the `fundus`
# recipe keeps LESIONS' finer vessels.
SIGN_LOOK = {**LESIONS,
             "bead_amp": (0.8, 1.0),     # dilations double the calibre (sausage-like beading)
             "irma_radius": 0.8,         # IRMA and new vessels 1.6 px wide (a vein branch's calibre)
             "irma_length": (5.0, 8.0),
             "nv_radius": 0.8,
             "nv_length": (3.5, 6.5),
             "nvd_margin": (0.5, 0.9)}  # NVD centre from the disc centre (DD): on the disc margin
LEVELS = (0, 1, 2, 3, 4)  # lesion and vessel-sign levels of the factorial recipe (ordinal)
FIELD_SHARE = dm.PI * (FOV_R / V.REF) * (FOV_R / V.REF)  # the field of view's share of the image

# stream purposes (draw keys)
_TREE, _LOOK, _LESION, _FINISH, _SIGNS = 1, 2, 3, 4, 5


def grade_plan(d: dm.Draw, grade: str) -> dict:
    """Lesion counts that satisfy the grade's ICDR definition."""
    p = {"ma": 0, "haem_q": [0, 0, 0, 0], "exudate": 0, "cotton_wool": 0, "bead_q": [], "irma_q": [],
         "nvd": 0, "nve": 0, "preretinal": 0}
    g = int(grade)
    if g == 1:
        p["ma"] = 1 + d.poisson(2.5)
    background = g if g < 4 else d.choice([2, 3])  # PDR grows on a moderate or severe NPDR retina
    if g >= 2 and background == 2:
        p["ma"] = 2 + d.poisson(3.0)
        for _ in range(d.poisson(3.0)):
            p["haem_q"][int(d.integers(0, 4))] += 1
        p["exudate"] = d.poisson(4.0)
        if sum(p["haem_q"]) + p["exudate"] == 0:
            p["haem_q"][int(d.integers(0, 4))] = 1  # moderate means more than microaneurysms
        p["cotton_wool"] = d.poisson(0.5)
    if g >= 2 and background == 3:
        p["ma"] = 3 + d.poisson(4.0)
        p["haem_q"] = [2 + d.poisson(1.5) for _ in range(4)]  # all four quadrants
        p["exudate"] = d.poisson(5.0)
        p["cotton_wool"] = d.poisson(1.5)
        p["bead_q"] = sorted(int(q) for q in d.permutation(4)[: int(d.integers(2, 5))])
        p["irma_q"] = sorted(int(q) for q in d.permutation(4)[: int(d.integers(1, 3))])
    if g == 4:
        p["nvd"] = int(d.random() < 0.5)
        p["nve"] = (0 if p["nvd"] else 1) + d.poisson(0.7)
        p["preretinal"] = int(d.random() < 0.3)
    return p


def lesion_plan(d: dm.Draw, level: int) -> dict:
    """Coloured lesions of lesion level 0-4: the ICDR lesion criteria without their vessel signs
    (0 none; 1 microaneurysms only; 2 moderate: + haemorrhages and/or hard exudates, cotton-wool
    spots; 3 severe: haemorrhages in all four quadrants; 4: a severe background plus the PDR
    haemorrhage, a preretinal bleed). The counts are grade_plan's."""
    p = {"ma": 0, "haem_q": [0, 0, 0, 0], "exudate": 0, "cotton_wool": 0, "preretinal": 0}
    if level == 1:
        p["ma"] = 1 + d.poisson(2.5)
    elif level == 2:
        p["ma"] = 2 + d.poisson(3.0)
        for _ in range(d.poisson(3.0)):
            p["haem_q"][int(d.integers(0, 4))] += 1
        p["exudate"] = d.poisson(4.0)
        if sum(p["haem_q"]) + p["exudate"] == 0:
            p["haem_q"][int(d.integers(0, 4))] = 1
        p["cotton_wool"] = d.poisson(0.5)
    elif level >= 3:
        p["ma"] = 3 + d.poisson(4.0)
        p["haem_q"] = [2 + d.poisson(1.5) for _ in range(4)]
        p["exudate"] = d.poisson(5.0)
        p["cotton_wool"] = d.poisson(1.5)
        p["preretinal"] = int(level == 4)
    return p


def vessel_plan(d: dm.Draw, level: int) -> dict:
    """Vessel-geometry signs of vessel-sign level 0-4, each level adding the next sign of the
    ETDRS severity scale (ETDRS report 12; the 4-2-1 rule; DRS high-risk PDR): 0 none; 1 definite
    venous beading in 2-4 quadrants; 2 + IRMA in 1-2 quadrants; 3 + new vessels elsewhere (one
    NVE tuft on a main vein: PDR); 4 + new vessels at the disc (NVD, a tuft of >= 1/3 disc area:
    high-risk PDR)."""
    p = {"bead_q": [], "irma_q": [], "nvd": 0, "nve": 0}
    if level >= 1:
        p["bead_q"] = sorted(int(q) for q in d.permutation(4)[: int(d.integers(2, 5))])
    if level >= 2:
        p["irma_q"] = sorted(int(q) for q in d.permutation(4)[: int(d.integers(1, 3))])
    p["nve"] = int(level >= 3)
    p["nvd"] = int(level >= 4)
    return p


def _trunks(d: dm.Draw, disc, side: int) -> list[dict]:
    """Artery and vein of each quadrant leaving the disc."""
    out = []
    rv = d.uniform(*ANATOMY["vein_radius"])
    for kind in ("vein", "artery"):
        for up in (-1, 1):
            off = d.normal(0.0, 0.12)
            r_arc = d.uniform(*ANATOMY["arcade_radius"]) * DD
            tl = d.uniform(*ANATOMY["trunk_length"]) * FOV_R
            nl = d.uniform(*ANATOMY["trunk_length"]) * FOV_R
            r0 = rv * (1.0 if kind == "vein" else ANATOMY["avr"]) * d.uniform(0.92, 1.08)
            # temporal arcade: leaves mostly vertically, bends towards the fovea
            out.append({"kind": kind, "quadrant": (-side, up), "start": disc,
                        "heading": dm.atan2_s(up * 1.0, -side * 0.35) + off,
                        "bend": up * side / r_arc, "length": tl, "r0": r0})
            out.append({"kind": kind, "quadrant": (side, up), "start": disc,
                        "heading": dm.atan2_s(up * 0.6, side * 1.0) + off,
                        "bend": d.normal(0.0, 0.004), "length": nl, "r0": r0 * ANATOMY["nasal_calibre"]})
    return out


def _spots(d: dm.Draw, n: int, rng_r, quadrant=None, where=(0.15, 0.85)) -> list[V.Vessel]:
    """n round lesions spread over the field (or one quadrant), uniform in area."""
    out = []
    for _ in range(n):
        rad = FOV_R * math.sqrt(d.uniform(where[0] ** 2, where[1] ** 2))
        if quadrant is None:
            a = d.uniform(0.0, dm.TWO_PI)
        else:
            sx, sy = QUADRANTS[quadrant]
            a0 = dm.atan2_s(sy, sx)
            a = a0 + d.uniform(-dm.PI / 4, dm.PI / 4)
        c = V.REF / 2
        p = np.array([[c + rad * dm.cos_s(a), c + rad * dm.sin_s(a)]])
        out.append(V.Vessel(p, np.array([d.uniform(*rng_r)]), measured=False))
    return out


def _lesion_vessels(d: dm.Draw, plan: dict, tree: list[dict], disc, slots: V.Slots, look: dict = LESIONS):
    """IRMA segments and neovascular tufts (fine tortuous vessels), and beading of the veins
    of the chosen quadrants (in place). Returns (vessels, number of IRMA segments)."""
    for v in tree:
        if v["kind"] == "vein" and v["depth"] <= 1 and QUADRANTS.index(v["quadrant"]) in plan["bead_q"]:
            ves = v["vessel"]
            n = len(ves.pts)
            u = v["block"].struct  # the vessel's own numbers: twins bead alike
            amp = look["bead_amp"][0] + u[22] * (look["bead_amp"][1] - look["bead_amp"][0])
            per = (look["bead_period"][0] + u[23] * (look["bead_period"][1] - look["bead_period"][0])) * 2 * float(ves.r[0])
            s = np.multiply(np.arange(n, dtype=np.float64), V.STEP)
            t = np.divide(np.arange(n, dtype=np.float64), max(n - 1, 1))
            # over 20-90 % of the vessel's length, ramped in and out over 1/8 of it
            on = np.multiply(np.clip(np.multiply(np.subtract(t, 0.2), 8.0), 0, 1), np.clip(np.multiply(np.subtract(0.9, t), 8.0), 0, 1))
            # sausage-like: dilations of +amp, constrictions of -amp/3 (a vein is not interrupted)
            wave = dm.cos(np.multiply(s, dm.TWO_PI / per))
            wave = np.where(wave > 0, np.multiply(wave, amp), np.multiply(wave, amp / 3))
            ves.r = np.maximum(np.multiply(ves.r, np.add(1.0, np.multiply(wave, on))), np.minimum(ves.r, V.MIN_RADIUS + 0.1))
    extra, specs = [], []
    for q in plan["irma_q"]:
        for _ in range(1 + int(d.integers(0, 2))):
            c = _spots(d, 1, (0, 0), q, (0.3, 0.75))[0].pts[0]
            specs.append(("irma", c, d.uniform(0, dm.TWO_PI), d.uniform(*look["irma_length"]),
                          look["irma_radius"], d.uniform(*look["irma_tau"]), 1.0))
    if look.get("nvd_margin") is None:
        centres = [np.add(disc, d.normal(0.0, 0.3 * DD, 2))] * plan["nvd"]
    else:  # on the disc margin, from where it fans out (within 1 DD of the disc, as NVD is defined)
        centres = []
        for _ in range(plan["nvd"]):
            s_, c_ = dm.sincos(d.uniform(0.0, dm.TWO_PI))
            rr = d.uniform(*look["nvd_margin"]) * DD
            centres.append(np.add(disc, [rr * float(c_), rr * float(s_)]))
    veins = [v for v in tree if v["kind"] == "vein" and v["depth"] == 0]
    for _ in range(plan["nve"]):
        v = veins[int(d.integers(0, len(veins)))]["vessel"]
        centres.append(np.add(v.pts[min(int(d.uniform(0.35, 0.8) * len(v.pts)), len(v.pts) - 1)], d.normal(0.0, 1.0, 2)))
    for c in centres:
        n = int(d.integers(look["nv_loops"][0], look["nv_loops"][1] + 1))
        a0 = d.uniform(0, dm.TWO_PI)
        for j in range(n):
            specs.append(("nv", c, a0 + dm.TWO_PI * j / n + d.normal(0, 0.3), d.uniform(*look["nv_length"]),
                          look["nv_radius"], 0.95, look["nv_coil"]))
    if specs:
        res = V.paths([s[1] for s in specs], [s[2] for s in specs], [s[3] for s in specs], [s[5] for s in specs],
                      [0.0] * len(specs), [slots[i] for i in range(len(specs))], [s[6] for s in specs])
        for s, (pts, noise, _) in zip(specs, res, strict=True):
            extra.append(V.Vessel(pts, V.calibre(noise, s[4], 0.0, taper=0.0), s[5], measured=False))
    return extra, sum(1 for sp in specs if sp[0] == "irma")


def _preretinal(shape, u, d: dm.Draw, disc) -> np.ndarray:
    """Boat-shaped haemorrhage: a disc whose upper part is cut flat by the fluid level."""
    rad = d.uniform(*LESIONS["preretinal"])
    c = np.add(disc, [d.uniform(-2.0, 2.0) * DD / 2, d.uniform(0.6, 1.6) * DD])
    level = c[1] - rad * d.uniform(0.0, 0.5)
    g = np.divide(np.add(np.arange(shape[0], dtype=np.float64), 0.5), u)
    yy, xx = g[:, None], g[None, :]
    dist = dm.hypot(np.subtract(xx, c[0]), np.subtract(yy, c[1]))
    inside = np.clip(np.add(np.multiply(np.subtract(rad, dist), u), 0.5), 0, 1)
    return np.multiply(inside, np.clip(np.add(np.multiply(np.subtract(yy, level), u), 0.5), 0, 1))


def image(seed: int, index: int, grade: str | None, size: int, diff: dict, tau: float | None = None, *,
          levels: tuple[int, int] | None = None, stream: int = 1, dilation: float = 0.0) -> dict:
    """One fundus phantom: {'rgb', 'mask', 'truth'}; tau=None gives the radial tree. `grade`
    (ICDR 0-4) draws the `fundus` recipe; `levels=(L, V)` the factorial one (grade unused), whose
    veins are widened by `dilation` per vessel-sign level (venous dilation; the area it adds is
    given back by the periphery like the signs'). `stream` is the domain key of the draws (1:
    fundus; another key: other eyes)."""
    u = size / V.REF
    shape = (size, size)
    look = dm.draw(seed, stream, index, _LOOK)
    c = np.array([V.REF / 2, V.REF / 2])
    side = look.sign()  # right or left eye: disc nasal, fovea temporal
    disc = np.add(c, [side * ANATOMY["disc_offset"] * DD, look.normal(0.0, 0.03 * FOV_R)])
    fovea = np.add(c, [-side * ANATOMY["disc_offset"] * DD, look.normal(0.0, 0.03 * FOV_R)])
    rd = look.uniform(0.45, 0.55) * DD
    tree_tau = look.uniform(*ANATOMY["tau"])
    trunks = _trunks(dm.draw(seed, stream, index, _TREE), disc, side)
    slots = V.Slots(dm.draw(seed, stream, index, _TREE, 1))

    def fov(pts):
        return dm.hypot(np.subtract(pts[:, 0], c[0]), np.subtract(pts[:, 1], c[1])) < FOV_R

    tree = V.grow_tree(trunks, slots, lambda v: tree_tau, fov, TREE)
    if tau is not None:
        # the twin: same structure, twisted to `tau`, its course lengthened until it covers the
        # radial tree's area (coils lengthen the path and it no longer runs off the field)
        target = float(V.render(shape, [v["vessel"] for v in tree], u).mean())
        lo, hi, best, err = 0.25, 2.0, None, float("inf")
        for _ in range(7):
            mid = (lo + hi) / 2
            t = V.grow_tree(trunks, slots, lambda v: tau, fov, TREE, scale=mid)
            cov_t = float(V.render(shape, [v["vessel"] for v in t], u).mean())
            if abs(cov_t - target) < err:
                best, err = t, abs(cov_t - target)
            lo, hi = (mid, hi) if cov_t < target else (lo, mid)
        tree = best
    lesion_d = dm.draw(seed, stream, index, _LESION)
    if levels is None:
        plan = grade_plan(lesion_d, grade)
        sign_d, sign_slots = lesion_d, V.Slots(dm.draw(seed, stream, index, _LESION, 1))
    else:  # vessel signs from a stream of their own: lesions do not move with V, nor signs with L
        sign_d, sign_slots = dm.draw(seed, stream, index, _SIGNS), V.Slots(dm.draw(seed, stream, index, _SIGNS, 1))
        plan = {**lesion_plan(lesion_d, int(levels[0])), **vessel_plan(sign_d, int(levels[1]))}
        clean = float(V.render(shape, [v["vessel"] for v in tree if v["kind"] == "vein"], u).mean())  # before beading
        widen = 1.0 + dilation * int(levels[1])  # generalised venous dilation, after the area target
        for v in tree:
            if v["kind"] == "vein":
                v["vessel"].r = np.multiply(v["vessel"].r, widen)
    extra, n_irma = _lesion_vessels(sign_d, plan, tree, disc, sign_slots, LESIONS if levels is None else SIGN_LOOK)
    art = [v["vessel"] for v in tree if v["kind"] == "artery"]
    vein = [v["vessel"] for v in tree if v["kind"] == "vein"] + extra
    cov_a = V.render(shape, art, u)
    if levels is None:
        cov_v = V.render(shape, vein, u)
    else:
        cov_v, fine = _drop_out(tree, extra, clean, disc, shape, u)
    # background: orange fundus, darker towards the rim and at the macula, bright disc
    g = np.divide(np.add(np.arange(size, dtype=np.float64), 0.5), u)
    yy, xx = g[:, None], g[None, :]
    rr = dm.hypot(np.subtract(xx, c[0]), np.subtract(yy, c[1]))
    tex = dm.smooth_field(look, shape, 4.0 * u)
    shade = np.subtract(np.add(0.85, np.multiply(tex, 0.04)), np.multiply(np.multiply(rr, rr), 0.25 / (FOV_R * FOV_R)))
    fov_d2 = dm.hypot(np.subtract(xx, fovea[0]), np.subtract(yy, fovea[1]))
    mac = dm.exp(np.multiply(np.multiply(fov_d2, fov_d2), -1.0 / (0.9 * DD) ** 2))
    shade = np.multiply(np.multiply(shade, np.subtract(1.0, np.multiply(mac, 0.35))), look.uniform(0.85, 1.1))
    rgb = np.multiply(np.asarray(COLOURS["fundus"], dtype=np.float64), shade[..., None])
    dd = dm.hypot(np.subtract(xx, disc[0]), np.subtract(yy, disc[1]))
    discmask = np.clip(np.divide(np.subtract(rd, dd), 1.5), 0, 1)
    rgb = V.composite(rgb, discmask, COLOURS["disc"], 1.0)
    for cov, key in ((cov_v, "vein"), (cov_a, "artery")):
        rgb = V.composite(rgb, cov, *COLOURS[key])
    # lesions
    n_haem = sum(plan["haem_q"])
    spots = {"ma": _spots(lesion_d, plan["ma"], LESIONS["ma"], where=(0.1, 0.7)),
             "haem": [s for q, n in enumerate(plan["haem_q"]) for s in _spots(lesion_d, n, LESIONS["haem"], q)],
             "exudate": _exudates(lesion_d, plan["exudate"], fovea),
             "cotton_wool": _spots(lesion_d, plan["cotton_wool"], LESIONS["cotton_wool"], where=(0.2, 0.6))}
    for key, soft in (("haem", 0.5), ("ma", 0.0), ("exudate", 0.0), ("cotton_wool", 1.2)):
        if spots[key]:
            cov = V.render(shape, spots[key], u)
            cov = dm.blur2d(cov, soft * u) if soft else cov
            rgb = V.composite(rgb, cov, *COLOURS[key])
    if plan["preretinal"]:
        rgb = V.composite(rgb, _preretinal(shape, u, lesion_d, disc), *COLOURS["preretinal"])
    inside = np.clip(np.add(np.multiply(np.subtract(FOV_R, rr), u), 0.5), 0, 1)
    rgb = np.multiply(rgb, inside[..., None])
    img = V.finish(rgb, dm.draw(seed, 1, index, _FINISH), diff, size, noise_scale=0.5)
    img[inside < 0.5] = 0  # the camera's black surround stays black
    vcov = np.maximum(cov_a, cov_v)
    summary, _ = V.measure([v["vessel"] for v in tree], fov)
    truth = {"tau": tree_tau if tau is None else tau, **{k: summary[k] for k in ("dm", "icm", "soam", "calibre_cv")},
             "vessel_fraction": float(np.multiply(vcov, inside).sum()) / float(inside.sum()),
             "n_ma": plan["ma"], "n_haem": n_haem, "haem_quadrants": sum(1 for n in plan["haem_q"] if n),
             "n_exudate": plan["exudate"], "n_cotton_wool": plan["cotton_wool"],
             "beading_quadrants": len(plan["bead_q"]), "irma_quadrants": len(plan["irma_q"]),
             "n_nv": plan["nvd"] + plan["nve"], "nvd": plan["nvd"], "preretinal": plan["preretinal"]}
    if levels is not None:
        truth.update(lesion_level=int(levels[0]), vessel_level=int(levels[1]), n_irma=n_irma,
                     vein_dilation=1.0 + dilation * int(levels[1]), **fine)
    return {"rgb": img, "mask": ((vcov >= 0.5).astype(np.uint8) * 255), "truth": truth}


def _drop_out(tree: list[dict], extra: list[V.Vessel], clean: float, disc, shape, u: float) -> tuple[np.ndarray, dict]:
    """Vein coverage with the signs (`extra`, beading already applied) and the vein tree out to
    the distance from the disc where the sign-free tree's coverage `clean` is reached: the tree
    is filled stamp by stamp outwards from the disc (the periphery drops out: non-perfused
    retina, where IRMA and new vessels arise). Returns (coverage, facts: sign_fraction,
    dropout_fraction, area_excess (of the field), reach: the distance kept, FOV radii)."""
    veins = [v["vessel"] for v in tree if v["kind"] == "vein"]
    cov = V.render(shape, extra, u)
    signs = float(cov.mean())
    x, y, r, _, _ = V.stamps(veins, u)
    dist = dm.hypot(np.subtract(np.divide(x, u), disc[0]), np.subtract(np.divide(y, u), disc[1]))
    order = np.argsort(dist, kind="stable")
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    flat, val, sid = V.contributions(shape, x, y, r)
    m = V.fill_prefix(cov, flat, val, rank[sid], len(x), clean)
    reach = float(dist[order[m - 1]]) / FOV_R if m else 0.0
    return cov, {"sign_fraction": signs / FIELD_SHARE,
                 "dropout_fraction": max(clean - float(cov.mean()) + signs, 0.0) / FIELD_SHARE,
                 "area_excess": max(float(cov.mean()) - clean, 0.0) / FIELD_SHARE,
                 "reach": reach}


def _exudates(d: dm.Draw, n: int, fovea) -> list[V.Vessel]:
    """Hard exudates in one or two clusters, most near the macula (where they leak)."""
    if n == 0:
        return []
    centres = []
    for _ in range(1 + int(n > 4)):
        if d.random() < 0.6:
            centres.append(np.add(fovea, d.normal(0.0, 1.0 * DD, 2)))
        else:
            centres.append(_spots(d, 1, (0, 0), where=(0.2, 0.7))[0].pts[0])
    out = []
    for i in range(n):
        p = np.add(centres[i % len(centres)], d.normal(0.0, 2.0, 2))
        out.append(V.Vessel(p[None, :], np.array([d.uniform(*LESIONS["exudate"])]), measured=False))
    return out
