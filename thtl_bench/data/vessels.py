"""Vessel geometry shared by every phantom domain: centreline paths shaped by one tortuosity
level, Murray's-law branching, rasterisation into coverage or X-ray path-length maps, and the
acquisition effects (uneven light, blur, sensor noise).

Geometry lives in a 64 x 64 *reference frame* (one unit = one pixel at the default image
size); `u = image_size / 64` scales it at rasterisation, so a profile with larger images draws
the same scene more finely and the tortuosity indices (computed in reference units) do not
change with image size. All arithmetic is `detmath` (same bits on every CPU).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thtl_bench.data import detmath as dm
from thtl_bench.data import tortuosity
from thtl_bench.data.detmath import Draw

REF = 64.0  # reference frame size (pixels at the default image size)

# Tortuosity model: how one level tau in [0, 1] shapes a centreline (reference units).
# tau 0: a smooth vessel (retinal or benign-laryngeal); tau 1: a serpentine, coiled vessel
# (Ni type Vb). docs/phantoms.md gives the reasons for each number.
TORT = {
    "meander_rad": (0.05, 0.55),   # heading noise SD = a + b * tau (rad)
    "meander_corr": (6.0, -3.0),   # its correlation length = a + b * tau (reference px)
    "coil_onset": 0.35,            # coils (loops) appear above this tau ...
    "coil_radius": 2.6,            # ... with this radius at tau = 1 (reference px)
    "coil_period": (6.0, 11.0),    # course advance per turn, uniform range (reference px)
    "calibre_cv": (0.04, 0.30),    # calibre irregularity SD = a + b * tau (fraction of the radius)
    "calibre_corr": 2.0,           # its correlation length (reference px)
}
STEP = 0.5  # centreline sampling (reference px)
MIN_RADIUS = 0.45  # thinner vessels are not drawn (under one pixel wide at the default size)


@dataclass
class Vessel:
    pts: np.ndarray  # (n, 2) x, y in reference px
    r: np.ndarray  # (n,) radius in reference px
    tau: float = 0.0
    measured: bool = True  # enters the tortuosity statistics (tufts, dots and catheters do not)


# ---------------------------------------------------------------- random blocks
N_STRUCT = 24  # uniforms per vessel for its structure (branch points, angles, calibres, lengths)
MAX_LEN = 256.0  # longest centreline (reference px); bounds the knots a vessel needs
_CHANNELS = 4  # smooth noise channels: heading meander, coil speed, coil radius, calibre
_CORR = {"speed": 10.0, "radius": 8.0}  # correlation lengths of the coil channels (reference px)
_K_CAP = int(MAX_LEN / STEP / (TORT["calibre_corr"] / STEP)) + 5  # knots per channel, shortest corr


@dataclass(frozen=True)
class Block:
    """The random numbers of one vessel slot: structure uniforms, two path uniforms (coil
    period and phase) and spline knots (K, 4) of unit variance."""
    struct: np.ndarray
    path_u: np.ndarray
    knots: np.ndarray


class Slots:
    """Random blocks addressed by slot number, drawn in order from one stream: block i holds
    the same numbers whatever the generator does with other slots, so two images that differ
    only in vessel shape (a twin with other tortuosity) keep every other draw."""

    def __init__(self, d: Draw):
        self.d, self.blocks = d, []

    def __getitem__(self, i: int) -> Block:
        while len(self.blocks) <= i:
            u = self.d.random(N_STRUCT + 2 + _K_CAP * _CHANNELS)
            knots = np.multiply(np.subtract(u[N_STRUCT + 2:], 0.5), 3.4641016151377544).reshape(_K_CAP, _CHANNELS)
            self.blocks.append(Block(u[:N_STRUCT], u[N_STRUCT:N_STRUCT + 2], knots))
        return self.blocks[i]


def _spline(knots: np.ndarray, n: int, corr: np.ndarray) -> np.ndarray:
    """(m, n) smooth unit-variance noise: a cubic B-spline through each row's knots (m, K),
    spaced corr[i] samples apart; the weights are normalised so every sample has variance 1."""
    t = np.divide(np.arange(n, dtype=np.float64)[None, :], np.maximum(corr, 1.0)[:, None])
    i = np.minimum(np.floor(t).astype(np.int64), knots.shape[1] - 4)
    f = np.subtract(t, i)
    f2 = np.multiply(f, f)
    f3 = np.multiply(f2, f)
    g = np.subtract(1.0, f)
    w = (np.divide(np.multiply(np.multiply(g, g), g), 6.0),
         np.divide(np.add(np.subtract(np.multiply(f3, 3.0), np.multiply(f2, 6.0)), 4.0), 6.0),
         np.divide(np.add(np.add(np.add(np.multiply(f3, -3.0), np.multiply(f2, 3.0)), np.multiply(f, 3.0)), 1.0), 6.0),
         np.divide(f3, 6.0))
    rows = np.arange(len(knots))[:, None]
    x = np.multiply(knots[rows, i], w[0])
    norm = np.multiply(w[0], w[0])
    for k in range(1, 4):
        x = np.add(x, np.multiply(knots[rows, np.add(i, k)], w[k]))
        norm = np.add(norm, np.multiply(w[k], w[k]))
    return np.divide(x, np.sqrt(norm))


# ---------------------------------------------------------------- centrelines
def paths(starts, headings, lengths, taus, bends, blocks: list[Block], coil_scale=None) -> list[tuple[np.ndarray, ...]]:
    """Centrelines of several vessels at once, each (points (n, 2), calibre noise (n,),
    course heading (n,)).

    A vessel runs `length` reference px along its course from `start`: a heading that meanders
    with its tortuosity level tau (plus a steady `bend`, rad per px) and, above the coil onset,
    a circular offset that turns faster than the course advances, drawing loops. It uses only
    its own Block, the same numbers for every tau, so twins stay aligned. `coil_scale`
    (per vessel, default 1) shrinks the loops of fine vessels (neovascular tufts)."""
    m = len(blocks)
    if m == 0:
        return []
    taus = np.asarray(taus, dtype=np.float64)
    ns = [max(min(int(float(L) / STEP), int(MAX_LEN / STEP)), 4) for L in lengths]
    n = max(ns)
    knots = np.stack([b.knots for b in blocks])  # (m, K, 4)
    a, b = TORT["meander_rad"]
    ca, cb = TORT["meander_corr"]
    corr = np.concatenate([np.divide(np.add(ca, np.multiply(taus, cb)), STEP), np.full(m, _CORR["speed"] / STEP),
                           np.full(m, _CORR["radius"] / STEP), np.full(m, TORT["calibre_corr"] / STEP)])
    noise = _spline(np.concatenate([knots[:, :, c] for c in range(_CHANNELS)]), n, corr)  # all channels at once
    wander, speed, radial, cal = noise[:m], noise[m:2 * m], noise[2 * m:3 * m], noise[3 * m:]
    s = np.multiply(np.arange(n, dtype=np.float64), STEP)[None, :]
    h = np.add(np.add(np.asarray(headings, dtype=np.float64)[:, None], np.multiply(s, np.asarray(bends)[:, None])),
               np.multiply(wander, np.add(a, np.multiply(taus, b))[:, None]))
    sh, ch = dm.sincos(h)
    x = np.cumsum(np.multiply(ch, STEP), axis=1)
    y = np.cumsum(np.multiply(sh, STEP), axis=1)
    pu = np.stack([bl.path_u for bl in blocks])
    lo, hi = TORT["coil_period"]
    period = np.add(lo, np.multiply(pu[:, 0], hi - lo))
    phase = np.add(np.divide(np.multiply(np.cumsum(np.multiply(np.add(1.0, np.multiply(speed, 0.25)), STEP), axis=1),
                                         dm.TWO_PI), period[:, None]), np.multiply(pu[:, 1:2], dm.TWO_PI))
    coil = np.clip(np.divide(np.subtract(taus, TORT["coil_onset"]), 1 - TORT["coil_onset"]), 0.0, 1.0)
    if coil_scale is not None:
        coil = np.multiply(coil, np.asarray(coil_scale, dtype=np.float64))
    rho = np.multiply(np.clip(np.add(1.0, np.multiply(radial, 0.3)), 0.3, None), np.multiply(coil, TORT["coil_radius"])[:, None])
    cy, cx = dm.sincos(phase)
    x = np.add(x, np.multiply(rho, np.subtract(cx, cx[:, :1])))
    y = np.add(y, np.multiply(rho, np.subtract(cy, cy[:, :1])))
    st = np.asarray(starts, dtype=np.float64).reshape(m, 2)
    x = np.add(np.subtract(x, x[:, :1]), st[:, 0:1])
    y = np.add(np.subtract(y, y[:, :1]), st[:, 1:2])
    return [(np.stack([x[i, :k], y[i, :k]], 1), cal[i, :k], h[i, :k]) for i, k in enumerate(ns)]


def calibre(noise: np.ndarray, r0: float, tau: float, taper: float = 0.3) -> np.ndarray:
    """Radius along a centreline: a smooth taper (by `taper` over its length) times an
    irregularity that grows with tau (regular calibre in benign vessels, irregular in type V)."""
    a, b = TORT["calibre_cv"]
    n = len(noise)
    irr = np.clip(np.add(1.0, np.multiply(noise, a + b * tau)), 0.6, 1.6)
    t = np.divide(np.arange(n, dtype=np.float64), max(n - 1, 1))
    return np.multiply(np.multiply(np.subtract(1.0, np.multiply(t, taper)), irr), r0)


def murray_split(r0: float, q: float) -> tuple[float, float]:
    """Daughter radii at a bifurcation with r0^3 = r1^3 + r2^3 (Murray 1926); q = r2^3 / r0^3."""
    return dm.cbrt_s(r0 * r0 * r0 * (1 - q)), dm.cbrt_s(r0 * r0 * r0 * q)


def clip_to(pts: np.ndarray, inside: np.ndarray) -> int:
    """Length of the leading run of points that are inside (a vessel stops where it leaves)."""
    out = np.flatnonzero(~inside)
    return int(out[0]) if out.size else len(pts)


def grow_tree(trunks: list[dict], slots: Slots, tau_of, visible, rules: dict, scale: float = 1.0) -> list[dict]:
    """Grow trunks into trees level by level (one batched path computation per level). A trunk
    is a dict with start, heading, bend, length (course, reference px), r0 and any tags (kept
    on its branches). Bifurcations follow `rules` (first_branch, branch_interval, murray_q,
    branch_angle, daughter_length, branch_bend, max_depth, max_branches); calibre falls only
    at bifurcations (Murray's law). A vessel stops where `visible(pts)` turns false.

    Each vessel's numbers come from its slot (by tree address), so a twin grown with another
    tortuosity (`tau_of(vessel) -> tau`) or a longer course (`scale`) keeps the structure.
    Returns the vessels as the trunk dicts plus depth, vessel (Vessel) and block (Block)."""
    nb = rules["max_branches"]
    per_trunk = 1 + nb + nb * nb

    def pick(rng, x):
        return rng[0] + x * (rng[1] - rng[0])

    level = [dict(t, depth=0, slot=i * per_trunk, base=i * per_trunk) for i, t in enumerate(trunks)]
    done = []
    while level:
        blocks = [slots[v["slot"]] for v in level]
        taus = [tau_of(v) for v in level]
        res = paths([v["start"] for v in level], [v["heading"] for v in level],
                    [v["length"] * scale for v in level], taus, [v["bend"] for v in level], blocks)
        nxt = []
        for v, bl, tau, (pts, noise, course) in zip(level, blocks, taus, res, strict=True):
            keep = max(clip_to(pts, visible(pts)), 2)
            r = calibre(noise, v["r0"], tau, taper=0.0)
            u = bl.struct
            pos = pick(rules["first_branch"], u[0])
            for j in range(nb if v["depth"] < rules["max_depth"] else 0):
                k = int(pos * scale / STEP)
                if k >= keep - 4:
                    break
                b = u[1 + 6 * j: 7 + 6 * j]
                r_par, r_dau = murray_split(float(r[k]), pick(rules["murray_q"], b[0]))
                r[k:] = np.multiply(r[k:], r_par / float(r[k]))
                if r_dau >= MIN_RADIUS:
                    side = 1 if b[1] < 0.5 else -1
                    slot = v["base"] + 1 + j if v["depth"] == 0 else v["base"] + 1 + nb * (v["slot"] - v["base"]) + j
                    nxt.append(dict(v, start=pts[k], heading=float(course[k]) + side * pick(rules["branch_angle"], b[2]),
                                    bend=(b[4] - 0.5) * 2 * rules["branch_bend"], r0=r_dau, depth=v["depth"] + 1,
                                    length=max(v["length"] - pos, 2.0) * pick(rules["daughter_length"], b[3]), slot=slot))
                pos += pick(rules["branch_interval"], b[5])
            done.append(dict(v, vessel=Vessel(pts[:keep], r[:keep], tau), block=bl))
        level = nxt
    return done


# ---------------------------------------------------------------- measurement
def measure(vessels: list[Vessel], visible, min_length: float = 6.0) -> tuple[dict, list[dict]]:
    """Tortuosity summary (length-weighted DM/ICM/SOAM) over the measured vessels, each taken
    along its longest visible run; `visible(pts) -> bool mask`. Also the calibre CV."""
    segs, radii = [], []
    for v in vessels:
        if not v.measured or len(v.pts) < 4:
            continue
        run = _longest_run(visible(v.pts))
        if run is None:
            continue
        seg = v.pts[run[0]:run[1]]
        if len(seg) * STEP >= min_length and float(tortuosity.arc_lengths(seg).sum()) >= min_length:
            segs.append(seg)
            radii.append(v.r[run[0]:run[1]])
    per = tortuosity.indices_many(segs) if segs else []
    summary = tortuosity.summarise(per)
    cvs = []
    for rr in radii:
        c = np.subtract(rr, rr.mean())
        cvs.append(float(np.sqrt(np.mean(np.multiply(c, c)))) / float(rr.mean()))
    w = np.array([p["length"] for p in per])
    summary["calibre_cv"] = float(np.multiply(np.array(cvs), w).sum()) / float(w.sum()) if cvs else 0.0
    return summary, per


def _longest_run(ok: np.ndarray) -> tuple[int, int] | None:
    if not ok.any():
        return None
    x = np.concatenate([[0], ok.astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(x))
    starts, ends = edges[0::2], edges[1::2]
    k = int(np.argmax(ends - starts))
    return int(starts[k]), int(ends[k])


# ---------------------------------------------------------------- rasterisation
def stamps(vessels: list[Vessel], u: float, step: float = 0.5) -> tuple[np.ndarray, ...]:
    """Disc stamps every `step` output px along all vessels at once (linear interpolation of
    points and radii): x, y, r (output px), the owning vessel's index and the centreline point
    each stamp belongs to (stamps run in path order)."""
    if not vessels:
        z = np.zeros(0)
        return z, z, z, z.astype(np.int64), z.astype(np.int64)
    p = np.multiply(np.concatenate([v.pts for v in vessels]), u)
    rad = np.multiply(np.concatenate([v.r for v in vessels]), u)
    sizes = np.array([len(v.pts) for v in vessels])
    owner = np.repeat(np.arange(len(vessels)), sizes)
    first = np.repeat(np.cumsum(sizes) - sizes, sizes)
    last = np.zeros(len(p), bool)
    last[np.cumsum(sizes) - 1] = True
    nxt = np.where(last, np.arange(len(p)), np.arange(len(p)) + 1)
    d = np.subtract(p[nxt], p)
    seg = dm.hypot(d[:, 0], d[:, 1])
    k = np.where(last, 1, np.maximum(np.ceil(np.divide(seg, step)).astype(np.int64), 1))
    idx = np.repeat(np.arange(len(p)), k)
    start = np.repeat(np.cumsum(k) - k, k)
    f = np.divide(np.subtract(np.arange(int(k.sum())), start).astype(np.float64), np.repeat(k, k).astype(np.float64))
    x = np.add(p[idx, 0], np.multiply(f, d[idx, 0]))
    y = np.add(p[idx, 1], np.multiply(f, d[idx, 1]))
    r = np.add(rad[idx], np.multiply(f, np.subtract(rad[nxt[idx]], rad[idx])))
    ok = r >= MIN_RADIUS * u  # by reference radius: the same vessels at every image size
    return x[ok], y[ok], r[ok], owner[idx][ok], np.subtract(idx, first[idx])[ok]


def _windows(shape, x, y, reach):
    """Stamps grouped by window half-size: (stamp indices, flat pixel index, squared distance, valid)."""
    h, w = shape
    half = np.ceil(np.add(reach, 0.5)).astype(np.int64)
    if not len(half):
        return
    for k in range(int(half.min()), int(half.max()) + 1):
        sel = np.flatnonzero(half == k)
        if not len(sel):
            continue
        off = np.arange(-k, k + 1)
        jx = np.add(np.floor(x[sel]).astype(np.int64)[:, None], off)
        iy = np.add(np.floor(y[sel]).astype(np.int64)[:, None], off)
        dx = np.subtract(np.add(jx, 0.5), x[sel][:, None])
        dy = np.subtract(np.add(iy, 0.5), y[sel][:, None])
        d2 = np.add(np.multiply(dy, dy)[:, :, None], np.multiply(dx, dx)[:, None, :])
        ok = ((iy >= 0) & (iy < h))[:, :, None] & ((jx >= 0) & (jx < w))[:, None, :]
        flat = np.add(np.multiply(iy, w)[:, :, None], jx[:, None, :])
        yield sel, flat, d2, ok


def contributions(shape: tuple[int, int], x, y, r) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flat pixel index, coverage, stamp index) of every stamp-pixel pair with coverage > 0.
    Pixel (i, j) has its centre at (j + 0.5, i + 0.5); a disc covers min(clip(r - d + 1/2), 2r)."""
    flats, covs, ids = [], [], []
    for sel, flat, d2, ok in _windows(shape, x, y, r):
        rr = r[sel][:, None, None]
        cov = np.clip(np.add(np.subtract(rr, np.sqrt(d2)), 0.5), 0.0, 1.0)
        cov = np.minimum(cov, np.minimum(np.multiply(rr, 2.0), 1.0))
        keep = ok & (cov > 0)
        flats.append(flat[keep])
        covs.append(cov[keep])
        ids.append(np.broadcast_to(sel[:, None, None], keep.shape)[keep])
    if not flats:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)
    return np.concatenate(flats), np.concatenate(covs), np.concatenate(ids)


def coverage(shape: tuple[int, int], x, y, r, out: np.ndarray | None = None) -> np.ndarray:
    """Antialiased coverage in [0, 1] of the union of discs (max over discs: a tube is the
    union of its stamps)."""
    out = np.zeros(shape) if out is None else out
    flat, cov, _ = contributions(shape, x, y, r)
    np.maximum.at(out.reshape(-1), flat, cov)
    return out


def path_length(shape: tuple[int, int], vessels: list[Vessel], u: float) -> np.ndarray:
    """X-ray path length through contrast-filled tubes (output px): per vessel the chord
    2 sqrt(r^2 - d^2) of its cross-section, max along the vessel, summed over vessels (overlaps
    in projection add up). The radius is widened by half a pixel and the chord rescaled so the
    iodine per unit length (pi r^2) is kept for pixel-thin vessels."""
    total = np.zeros(shape)
    x, y, r, own, _ = stamps(vessels, u)
    re2 = np.add(np.multiply(r, r), 0.25)
    reach = np.sqrt(re2)
    per = np.zeros((len(vessels), shape[0] * shape[1]))
    for sel, flat, d2, ok in _windows(shape, x, y, reach):
        rr2 = re2[sel][:, None, None]
        chord = np.multiply(np.sqrt(np.clip(np.subtract(rr2, d2), 0.0, None)), 2.0)
        chord = np.multiply(chord, np.divide(np.subtract(rr2, 0.25), rr2))
        keep = ok & (chord > 0)
        o = np.broadcast_to(own[sel][:, None, None], keep.shape)[keep]
        np.maximum.at(per, (o, flat[keep]), chord[keep])
    for row in per:  # sum in vessel order: the same additions everywhere
        total = np.add(total, row.reshape(shape))
    return total


def render(shape: tuple[int, int], vessels: list[Vessel], u: float, out: np.ndarray | None = None) -> np.ndarray:
    x, y, r, _, _ = stamps(vessels, u)
    return coverage(shape, x, y, r, out=out)


def fill_prefix(cov: np.ndarray, flat: np.ndarray, val: np.ndarray, key: np.ndarray, n: int, target: float) -> int:
    """Largest m <= n such that adding the contributions with key < m keeps the mean coverage
    within `target`; `cov` is updated in place. Returns m."""
    trial = cov.copy()
    np.maximum.at(trial.reshape(-1), flat, val)
    if float(trial.mean()) <= target:
        cov[...] = trial
        return n
    lo, hi, best = 0, n - 1, None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        t = cov.copy()
        sel = key < mid
        np.maximum.at(t.reshape(-1), flat[sel], val[sel])
        if float(t.mean()) <= target:
            lo, best = mid, t
        else:
            hi = mid - 1
    if best is not None:
        cov[...] = best
    return lo


# ---------------------------------------------------------------- acquisition
def finish(rgb: np.ndarray, d: Draw, diff: dict, size: int, noise_scale: float = 1.0) -> np.ndarray:
    """Uneven light (a random gradient and a vignette), optical blur and sensor noise, then
    quantisation to uint8. `diff` is synth.difficulty (fractions of full scale, blur in px at 64)."""
    g = np.divide(np.add(np.arange(size, dtype=np.float64), 0.5), size) - 0.5
    yy, xx = g[:, None], g[None, :]
    ang = d.uniform(0.0, dm.TWO_PI)
    tilt = d.uniform(-0.5, 0.5)
    vig = d.uniform(0.3, 1.0)
    grad = np.add(np.multiply(xx, dm.cos_s(ang)), np.multiply(yy, dm.sin_s(ang)))
    rad2 = np.add(np.multiply(xx, xx), np.multiply(yy, yy))
    light = np.add(1.0, np.multiply(np.subtract(np.multiply(grad, 2 * tilt), np.multiply(rad2, 2 * vig)),
                                    diff["illumination"]))
    out = np.multiply(rgb, light[..., None])
    out = dm.blur2d(out, diff["blur"] * size / REF)
    out = np.add(out, d.normal(0.0, diff["noise"] * 255 * noise_scale, out.shape))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def composite(base: np.ndarray, cov: np.ndarray, colour, alpha: float) -> np.ndarray:
    """base * (1 - a cov) + colour * a cov, per channel."""
    a = np.multiply(cov, alpha)[..., None]
    return np.add(np.multiply(base, np.subtract(1.0, a)), np.multiply(np.asarray(colour, dtype=np.float64), a))
