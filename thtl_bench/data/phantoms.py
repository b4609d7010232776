"""Synthetic vascular phantoms, written in the real layouts (fundus: APTOS; larynx: class folders
with PatientNNN sub-folders and a manifest), so the real readers run on every smoke run.

The label lives in vessel geometry only. Larynx: every image draws a tortuosity level tau in
[0, 1] from its patient's class range (benign low, malignant high, overlapping by
`synth.difficulty.tortuosity_overlap`); tau sets how far vessels stray from one longitudinal
direction, how much they meander, coil into loops and vary in calibre. Colour, contrast and
vessel ink area are drawn from the same distributions for both classes. Fundus: a radial tree
from the optic disc (Murray's-law calibres, arteries thinner and lighter than veins) plus the
lesions that define each DR grade.

Drawing is vectorised: a centreline is rasterised into a radius map, and the Euclidean
distance transform to the nearest centreline pixel gives antialiased tubes of varying calibre.
Images are drawn at 2x and box-downsampled. Every image has its own seeded generator, so the
output is byte-identical for one seed.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from thtl_bench.data import tortuosity

SS = 2  # supersampling factor
FUNDUS_CLASSES = ["0", "1", "2", "3", "4"]
LARYNX_CLASSES = ["benign", "malignant"]


# ---------------------------------------------------------------- drawing primitives
def tubes(shape: tuple[int, int], lines: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Coverage in [0, 1] of tubes along polylines; each line is (points (K,2) as x,y; radii (K,))."""
    rad = np.zeros(shape)
    for pts, r in lines:
        pts, r = _densify(pts, r)
        ix, iy = np.rint(pts[:, 0]).astype(int), np.rint(pts[:, 1]).astype(int)
        ok = (ix >= 0) & (iy >= 0) & (ix < shape[1]) & (iy < shape[0])
        np.maximum.at(rad, (iy[ok], ix[ok]), r[ok])
    if not rad.any():
        return rad
    dist, (ny, nx) = ndimage.distance_transform_edt(rad == 0, return_indices=True)
    return np.clip(rad[ny, nx] - dist + 0.5, 0.0, 1.0)


def _densify(pts: np.ndarray, r: np.ndarray, step: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    if len(pts) < 2:
        return pts, r
    seg = np.hypot(*np.diff(pts, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    t = np.arange(0.0, s[-1] + step, step)
    return np.stack([np.interp(t, s, pts[:, 0]), np.interp(t, s, pts[:, 1])], 1), np.interp(t, s, r)


def smooth_noise(rng: np.random.Generator, n: int, corr: float) -> np.ndarray:
    """1-D Gaussian-correlated noise of unit standard deviation over n samples."""
    x = ndimage.gaussian_filter1d(rng.standard_normal(n + int(6 * corr)), corr, mode="wrap")[: n]
    return x / (x.std() + 1e-9)


def texture(rng: np.random.Generator, size: int, corr: float) -> np.ndarray:
    t = ndimage.gaussian_filter(rng.standard_normal((size, size)), corr, mode="wrap")
    return t / (t.std() + 1e-9)


def downsample(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[:2]
    return a.reshape(h // SS, SS, w // SS, SS, *a.shape[2:]).mean(axis=(1, 3))


def finish(rgb: np.ndarray, rng: np.random.Generator, diff: dict, size: int) -> np.ndarray:
    """Shared acquisition effects at output size: uneven light, blur, sensor noise -> uint8."""
    yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
    ang = rng.uniform(0, 2 * np.pi)
    light = 1 + diff["illumination"] * (rng.uniform(-0.5, 0.5) * (np.cos(ang) * xx + np.sin(ang) * yy) * 2
                                        - rng.uniform(0.3, 1.0) * (xx ** 2 + yy ** 2) * 2)
    rgb = rgb * light[..., None]
    sigma = diff["blur"] * size / 64
    if sigma > 0:
        rgb = ndimage.gaussian_filter(rgb, (sigma, sigma, 0))
    rgb = rgb + rng.normal(0, diff["noise"] * 255, rgb.shape)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- larynx
def larynx_vessel(rng, start, theta0, tau, length, r0, scale):
    """One vessel centreline (x,y points at 1 px steps) and radii, shaped by tortuosity level tau."""
    n = max(int(length), 8)
    # heading: a slow meander around the vessel's direction; amplitude grows with tau
    wander = smooth_noise(rng, n, corr=6 * scale) * (0.08 + 0.9 * tau)
    heading = theta0 + wander
    base = np.cumsum(np.stack([np.cos(heading), np.sin(heading)], 1), axis=0) + start
    # coils: a circular offset turning faster than the path advances draws loops (corkscrews);
    # their strength switches on above tau ~ 0.3 and grows to tight coils
    coil = np.clip((tau - 0.3) / 0.7, 0, 1)
    rho = coil * rng.uniform(1.5, 3.5) * scale
    period = rng.uniform(7, 14) * scale
    phase = np.arange(n) * 2 * np.pi / period * np.exp(0.3 * smooth_noise(rng, n, 10 * scale)) + rng.uniform(0, 6.3)
    amp = rho * np.clip(1 + 0.5 * smooth_noise(rng, n, 8 * scale), 0.2, None)
    pts = base + amp[:, None] * np.stack([np.cos(phase), np.sin(phase)], 1)
    # calibre: smooth taper (benign) vs irregular beading (malignant)
    taper = 1 - 0.35 * np.arange(n) / n
    beading = np.clip(1 + (0.1 + 0.7 * tau) * 0.5 * smooth_noise(rng, n, 3 * scale), 0.35, 1.8)
    return pts, np.maximum(r0 * taper * beading, 0.45 * scale)


def larynx_image(rng, tau: float, look: dict, size: int, diff: dict):
    """One larynx phantom: (uint8 RGB, uint8 vessel mask, tortuosity summary, ink fraction)."""
    S = size * SS
    scale = S / 128  # geometry is defined at 128 px canvas
    theta0 = look["theta"] + rng.normal(0, 0.15)
    target = look["ink"] * S * S  # vessel area budget, class-independent
    layers = {"superficial": [], "deep": []}
    stats, ink = [], 0.0
    while ink < target:
        depth = "superficial" if rng.random() < 0.6 else "deep"
        spread = 0.1 + 1.2 * tau ** 1.5  # benign vessels run longitudinal, malignant in any direction
        th = theta0 + rng.normal(0, spread)
        start = rng.uniform(-0.1, 1.1, 2) * S
        r0 = rng.uniform(0.9, 1.7) * scale * (1.0 if depth == "superficial" else 1.3)
        length = rng.uniform(0.5, 1.0) * S * (1 - 0.4 * tau)
        pts, r = larynx_vessel(rng, start, th, tau, length, r0, scale)
        lines = [(pts, r)]
        # smooth branching; the daughter calibres follow Murray's law r0^3 = r1^3 + r2^3
        for _ in range(rng.integers(0, 3)):
            k = rng.integers(len(pts) // 4, max(len(pts) * 3 // 4, len(pts) // 4 + 1))
            q = rng.uniform(0.25, 0.5)
            r[k:] *= (1 - q) ** (1 / 3)
            side = rng.choice([-1, 1])
            cpts, cr = larynx_vessel(rng, pts[k], th + side * rng.uniform(0.25, 0.5), tau,
                                     length * rng.uniform(0.3, 0.6), r[k] * (q / (1 - q)) ** (1 / 3), scale)
            lines.append((cpts, cr))
        for p, rr in lines:
            layers[depth].append((p, rr))
            inside = (p >= 0).all(1) & (p < S).all(1)
            seglen = np.hypot(*np.diff(p, axis=0).T)
            ink += float((seglen * 2 * rr[1:] * inside[1:]).sum())
            if inside.sum() > 4:
                stats.append(tortuosity.indices(p[inside] / SS))
    cov = {k: tubes((S, S), v) for k, v in layers.items()}
    tex = texture(rng, S, 6 * scale)
    bg = np.asarray(look["mucosa"]) * (1 + 0.07 * tex)[..., None]
    a = look["contrast"]
    rgb = bg * (1 - a * cov["deep"])[..., None] + np.asarray(look["deep"]) * (a * cov["deep"])[..., None]
    rgb = rgb * (1 - a * cov["superficial"])[..., None] + np.asarray(look["brown"]) * (a * cov["superficial"])[..., None]
    vessel = np.maximum(cov["superficial"], cov["deep"])
    img = finish(downsample(rgb), rng, diff, size)
    mask = (downsample(vessel) >= 0.5).astype(np.uint8) * 255
    return img, mask, tortuosity.summarise(stats), float(vessel.mean())


def larynx_look(rng) -> dict:
    """Per-patient appearance, drawn identically for both classes (NBI: teal-pink mucosa,
    brown superficial and cyan-green deeper vessels)."""
    return {
        "mucosa": rng.normal([168, 150, 128], 10),
        "brown": rng.normal([92, 58, 46], 8),
        "deep": rng.normal([70, 112, 110], 8),
        "contrast": rng.uniform(0.55, 0.85),
        "ink": rng.uniform(0.16, 0.24),
        "theta": rng.uniform(0, np.pi),
    }


def tau_range(label: str, overlap: float) -> tuple[float, float]:
    """Benign U(0, a), malignant U(1-a, 1) with a = (1 + overlap)/2: overlap 0 gives disjoint
    ranges, 1 identical ones."""
    a = (1 + overlap) / 2
    return (0.0, a) if label == "benign" else (1 - a, 1.0)


# ---------------------------------------------------------------- fundus
def fundus_tree(rng, start, theta, r0, bend, S, fov_c, fov_r, depth=0, out=None):
    """Grow one vessel from `start`; branch with Murray's-law calibres until the radius is small."""
    out = [] if out is None else out
    scale = S / 128
    step, n = 1.0, int(rng.uniform(0.25, 0.45) * S)
    heading = theta + np.cumsum(bend + 0.006 * smooth_noise(rng, n, 8 * scale) / scale)
    pts = np.cumsum(np.stack([np.cos(heading), np.sin(heading)], 1) * step, 0) + start
    inside = np.hypot(*(pts - fov_c).T) < fov_r
    stop = int(np.argmin(inside)) if not inside.all() else n
    pts = pts[: max(stop, 2)]
    r = np.full(len(pts), r0)
    k = int(rng.uniform(0.35, 0.7) * len(pts))
    if r0 > 0.7 * scale and len(pts) > 6 and depth < 3:
        q = rng.uniform(0.2, 0.45)
        r[k:] = r0 * (1 - q) ** (1 / 3)  # Murray: r0^3 = r1^3 + r2^3
        side = rng.choice([-1, 1])
        fundus_tree(rng, pts[k], heading[k] + side * rng.uniform(0.5, 0.9), r0 * q ** (1 / 3),
                    rng.normal(0, 0.004) / scale, S, fov_c, fov_r, depth + 1, out)
        fundus_tree(rng, pts[-1], heading[len(pts) - 1], r[-1] * 0.92, bend * 0.6, S, fov_c, fov_r, depth + 1, out)
    out.append((pts, r))
    return out


LESIONS = {  # mean counts per grade: microaneurysm, haemorrhage, exudate, cotton-wool, neovascular tuft
    "0": (0, 0, 0, 0, 0), "1": (5, 0, 0, 0, 0), "2": (6, 3, 5, 0, 0),
    "3": (8, 10, 12, 3, 0), "4": (6, 8, 8, 2, 2),
}


def fundus_image(rng, grade: str, size: int, diff: dict):
    S = size * SS
    scale = S / 128
    c = np.array([S / 2, S / 2])
    R = 0.47 * S
    yy, xx = np.mgrid[0:S, 0:S]
    rr = np.hypot(xx - c[0], yy - c[1])
    side = rng.choice([-1, 1])  # left or right eye: disc nasal, fovea temporal
    disc = c + [side * 0.3 * R, rng.normal(0, 0.04 * R)]
    fovea = c + [-side * 0.12 * R, rng.normal(0, 0.03 * R)]
    rd = rng.uniform(0.08, 0.1) * R
    lines = {"artery": [], "vein": []}
    stats = []
    for kind, r0 in (("artery", 1.3 * scale), ("vein", 1.75 * scale)):
        for up in (-1, 1):
            off = rng.normal(0, 0.15)
            # temporal arcades leave the disc up/down and bend around the fovea; nasal ones stay radial
            th_t = np.arctan2(up * 1.0, -side * 0.35) + off
            bend_t = up * side * rng.uniform(0.6, 0.9) / (0.45 * R)
            for th, bend in ((th_t, bend_t), (np.arctan2(up * 0.6, side * 1.0) + off, 0.0)):
                for pts, r in fundus_tree(rng, disc, th, r0 * rng.uniform(0.9, 1.1), bend, S, c, R):
                    lines[kind].append((pts, r))
                    if len(pts) > 8:
                        stats.append(tortuosity.indices(pts / SS))
    mean = np.array(LESIONS[grade], float) * np.exp(rng.normal(0, 0.3 + 0.5 * diff["tortuosity_overlap"], 5))
    n_ma, n_hem, n_ex, n_cw, n_nv = rng.poisson(mean)

    def spots(n, rlo, rhi):
        ang, dist = rng.uniform(0, 2 * np.pi, n), R * np.sqrt(rng.uniform(0.02, 0.8, n))
        return [(np.array([[c[0] + d * np.cos(a), c[1] + d * np.sin(a)]]), np.array([rng.uniform(rlo, rhi) * scale]))
                for a, d in zip(ang, dist, strict=True)]

    neo = []
    for _ in range(n_nv):  # tangled fine new vessels next to the disc
        p, r = larynx_vessel(rng, disc + rng.normal(0, 1.5 * rd, 2), rng.uniform(0, 6.3), 0.9, 0.25 * S, 0.5 * scale, scale)
        neo.append((p, r * 0.8))
    cov_a = tubes((S, S), lines["artery"])
    cov_v = tubes((S, S), lines["vein"] + neo)
    bg = np.array([196, 88, 40]) * (0.85 + 0.04 * texture(rng, S, 8 * scale) - 0.25 * (rr / R) ** 2)[..., None]
    bg = bg * rng.uniform(0.85, 1.1)
    discmask = np.clip((rd - np.hypot(xx - disc[0], yy - disc[1])) / (2 * scale), 0, 1)
    bg = bg * (1 - discmask[..., None]) + np.array([245, 205, 140]) * discmask[..., None]
    fov = np.exp(-((np.hypot(xx - fovea[0], yy - fovea[1]) / (0.09 * R)) ** 2))
    bg = bg * (1 - 0.35 * fov)[..., None]
    rgb = bg
    for cov, col, a in ((cov_v, (110, 22, 16), 0.85), (cov_a, (170, 45, 25), 0.7)):
        rgb = rgb * (1 - a * cov)[..., None] + np.array(col) * (a * cov)[..., None]
    for n_lines, col, a, soft in ((spots(n_ma, 0.7, 1.0), (100, 10, 10), 0.9, 0), (spots(n_hem, 1.5, 3.0), (105, 15, 12), 0.85, 1),
                                  (spots(n_ex, 0.8, 1.6), (235, 215, 90), 0.9, 0), (spots(n_cw, 2.5, 4.0), (235, 225, 205), 0.7, 3)):
        if n_lines:
            cov = tubes((S, S), n_lines)
            cov = ndimage.gaussian_filter(cov, soft * scale) if soft else cov
            rgb = rgb * (1 - a * cov)[..., None] + np.array(col) * (a * cov)[..., None]
    outside = downsample((rr > R).astype(float))
    img = downsample(rgb) * (1 - outside)[..., None]
    img = finish(img, rng, {**diff, "noise": diff["noise"] * 0.5}, size)
    img[outside > 0.5] = 0  # the camera's black surround stays black
    mask = (downsample(np.maximum(cov_a, cov_v)) >= 0.5).astype(np.uint8) * 255
    return img, mask, tortuosity.summarise(stats), float(np.maximum(cov_a, cov_v).mean())


# ---------------------------------------------------------------- writing
def png_bytes(a: np.ndarray) -> bytes:
    """PNG with fixed settings and no metadata chunks, so equal arrays give equal bytes."""
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", compress_level=6, optimize=False)
    return buf.getvalue()


def _write(path: Path, a: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(a))


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *key]))


def synth_fundus(out: Path, scfg: dict) -> dict:
    seed, size, diff = scfg["seed"], scfg["image_size"], scfg["difficulty"]
    grades = np.repeat(FUNDUS_CLASSES, scfg["fundus"]["per_grade"])
    grades = grades[_rng(seed, 1, 0).permutation(len(grades))]  # ids do not reveal the grade
    rows, per = [], []
    for i, g in enumerate(grades):
        img, mask, tort, ink = fundus_image(_rng(seed, 1, i + 1), str(g), size, diff)
        name = f"ph{i:05d}"
        _write(out / "train_images" / f"{name}.png", img)
        _write(out / "masks" / "train_images" / f"{name}.png", mask)
        rows.append((name, str(g)))
        per.append((str(g), img, tort, ink))
    with open(out / "train.csv", "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows([("id_code", "diagnosis"), *rows])
    return _finish_domain(out, "fundus", FUNDUS_CLASSES, per, scfg)


def synth_larynx(out: Path, scfg: dict) -> dict:
    seed, size, diff = scfg["seed"], scfg["image_size"], scfg["difficulty"]
    lo, hi = scfg["larynx"]["images_per_patient"]
    labels = np.repeat(LARYNX_CLASSES, [scfg["larynx"]["patients"][c] for c in LARYNX_CLASSES])
    labels = labels[_rng(seed, 2, 0).permutation(len(labels))]  # patient numbers do not reveal the class
    rows, per = [], []
    for pid, lab in enumerate(labels, start=1):
        prng = _rng(seed, 2, pid)
        look = larynx_look(prng)
        a, b = tau_range(str(lab), diff["tortuosity_overlap"])
        tau_p = prng.uniform(a, b)
        for k in range(int(prng.integers(lo, hi + 1))):
            irng = _rng(seed, 3, pid, k)
            tau = float(np.clip(tau_p + irng.normal(0, 0.05), a, b))
            img, mask, tort, ink = larynx_image(irng, tau, look, size, diff)
            rel = f"{lab}/Patient{pid:03d}/P{pid:03d}_{k + 1:02d}.png"
            _write(out / rel, img)
            _write(out / "masks" / rel, mask)
            rows.append((rel, str(lab), f"Patient{pid:03d}"))
            per.append((str(lab), img, tort, ink))
    with open(out / "manifest.csv", "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows([("path", "label", "patient_id"), *rows])
    return _finish_domain(out, "larynx", LARYNX_CLASSES, per, scfg)


def _finish_domain(out: Path, domain: str, classes: list[str], per: list, scfg: dict) -> dict:
    stats = {"domain": domain, "kind": "phantom", "seed": scfg["seed"], "image_size": scfg["image_size"],
             "difficulty": scfg["difficulty"], "classes": {}}
    for c in classes:
        sel = [p for p in per if p[0] == c]
        if not sel:
            continue
        entry = {"n": len(sel)}
        for k in ("dm", "icm", "soam"):
            v = np.array([p[2][k] for p in sel])
            entry[k] = {"mean": round(float(v.mean()), 4), "sd": round(float(v.std()), 4)}
        entry["mean_rgb"] = [round(float(x), 2) for x in np.mean([p[1].reshape(-1, 3).mean(0) for p in sel], 0)]
        entry["vessel_fraction"] = round(float(np.mean([p[3] for p in sel])), 4)
        stats["classes"][c] = entry
    (out / "phantom_stats.json").write_text(json.dumps(stats, indent=1, sort_keys=True) + "\n")
    if scfg.get("contact_sheet", True):
        _write(out / "contact_sheet.png", contact_sheet(classes, per))
    return stats


def contact_sheet(classes: list[str], per: list, n: int = 8) -> np.ndarray:
    size = per[0][1].shape[0]
    label_w = 70
    sheet = Image.new("RGB", (label_w + n * (size + 2), len(classes) * (size + 2)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for row, c in enumerate(classes):
        imgs = [p[1] for p in per if p[0] == c][:n]
        draw.text((4, row * (size + 2) + size // 2 - 5), str(c), fill=(0, 0, 0))
        for j, im in enumerate(imgs):
            sheet.paste(Image.fromarray(im), (label_w + j * (size + 2), row * (size + 2)))
    return np.asarray(sheet)


SYNTH = {"fundus": synth_fundus, "larynx": synth_larynx}


def synth(out: str | Path, scfg: dict, domains: list[str] | tuple[str, ...] = ("fundus", "larynx")) -> dict:
    """Write each domain into <out>/<domain>; the previous folder is replaced only once the new
    one is complete, so an interrupted run never leaves a half-written data set."""
    out = Path(out)
    result = {}
    for d in domains:
        tmp = out / f".{d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        result[d] = SYNTH[d](tmp, scfg)
        shutil.rmtree(out / d, ignore_errors=True)
        tmp.rename(out / d)
    return result


def format_stats(stats: dict) -> str:
    lines = [f"{'domain':<7} {'class':<10} {'n':>5} {'DM':>12} {'ICM':>12} {'SOAM':>13} {'vessel%':>8}  mean RGB"]
    for d, st in stats.items():
        for c, e in st["classes"].items():
            lines.append(f"{d:<7} {c:<10} {e['n']:>5} {e['dm']['mean']:>6.3f}±{e['dm']['sd']:<5.3f}"
                         f"{e['icm']['mean']:>6.2f}±{e['icm']['sd']:<5.2f} {e['soam']['mean']:>6.3f}±{e['soam']['sd']:<5.3f}"
                         f"{100 * e['vessel_fraction']:>8.1f}  {e['mean_rgb']}")
    return "\n".join(lines)
