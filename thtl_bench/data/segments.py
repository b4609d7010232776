"""Which vessel pixels of a larynx phantom lie on tortuous and which on straight segments: the
mediator LayerCAM is read against (thtl_bench.cam).

The data folder holds no such file (the default data stays byte for byte what it was): the
labels are recomputed from the generator. `regenerate(root, ids)` reads the domain's
phantom_stats.json (generator version and the synth parameters that made its bytes), draws each
requested image again with its vessels, checks that the pixels equal the PNG on disk (else the
folder was made by other code or parameters, and it says so), and labels every vessel pixel:

- `straight` / `tortuous`: a pixel of a vessel tube (superficial or deep layer) whose centreline
  bends, averaged over WINDOW reference px around the point, by more than CURVATURE rad per
  reference px: tighter than a circle of twice the largest coil radius of the tortuosity model
  (vessels.TORT coil_radius 2.6 px, so CURVATURE = 1 / 5.2). A coiled (Ni Vb) stretch is
  tortuous, a gently meandering or straight one (ELS longitudinal) is not, whatever the class;
- `dots`: end-on loops (Ni IV / Va brown dots and rings), which are neither.

Every pixel of the image's vessel mask (coverage >= 0.5, the masks/ file) takes the category
whose stamps cover it most (ties: straight, tortuous, dots). Label codes: 0 no
vessel, then CATEGORIES in order (1, 2, 3). Pure numpy through detmath, like the generator.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from thtl_bench.data import detmath as dm
from thtl_bench.data import larynx_phantom, phantoms
from thtl_bench.data import vessels as V
from thtl_bench.errors import UserError

CATEGORIES = ("straight", "tortuous", "dots")
WINDOW = 4.0  # reference px of centreline the bend is averaged over (about half a coil period)
CURVATURE = 1.0 / (2.0 * V.TORT["coil_radius"])  # rad per reference px
_ID = re.compile(r"(?P<label>[A-Za-z]+)/Patient(?P<pid>\d+)/P(?P=pid)_(?P<k>\d+)\.png")


class SegmentError(UserError, ValueError):
    """Segment labels that cannot be recomputed for a data folder."""


def local_curvature(pts: np.ndarray, window: float = WINDOW) -> np.ndarray:
    """Mean absolute turning per unit arc length (rad per reference px) around each point of a
    centreline: the turns at the interior points of the `window` px of arc centred on it, over
    the arc between the midpoints of its first and last segments (1/R on a circle of radius R);
    0 where fewer than three points fall in the window."""
    p = np.asarray(pts, dtype=np.float64)
    n = len(p)
    if n < 3:
        return np.zeros(n)
    d = np.diff(p, axis=0)
    seg = dm.hypot(d[:, 0], d[:, 1])
    turn = np.abs(dm.wrap_angle(np.diff(dm.atan2(d[:, 1], d[:, 0]))))  # at points 1 .. n-2
    arc = np.concatenate([[0.0], np.cumsum(seg)])  # arc length at each point
    mid = np.divide(np.add(arc[:-1], arc[1:]), 2.0)  # ... at each segment's midpoint
    cum = np.concatenate([[0.0], np.cumsum(np.concatenate([[0.0], turn, [0.0]]))])  # turning at points < i
    lo = np.searchsorted(arc, np.subtract(arc, window / 2), side="left")
    hi = np.searchsorted(arc, np.add(arc, window / 2), side="right")  # the window: points lo .. hi-1
    ok = hi - lo >= 3
    lo, hi = np.where(ok, lo, 0), np.where(ok, hi, 3)
    length = np.subtract(mid[hi - 2], mid[lo])
    bend = np.subtract(cum[hi - 1], cum[lo + 1])
    return np.where(ok & (length > 0), np.divide(bend, np.where(length > 0, length, 1.0)), 0.0)


def label_map(layers: dict[str, list[V.Vessel]], mask: np.ndarray, u: float) -> np.ndarray:
    """uint8 (H, W) labels (0 none, 1 straight, 2 tortuous, 3 dots) of the vessel pixels `mask`
    (the image's own vessel mask) from its vessels, layers {'superficial', 'deep', 'dots'} as
    larynx_phantom.image(geometry=True) returns them."""
    shape = tuple(np.asarray(mask).shape)
    tubes = [v for key in ("superficial", "deep") for v in layers[key]]
    x, y, r, own, seg = V.stamps(tubes, u)
    bent = np.zeros(len(x), bool)
    if len(x):
        sizes = np.array([len(v.pts) for v in tubes])
        flags = np.concatenate([local_curvature(v.pts) > CURVATURE for v in tubes])
        bent = flags[np.add(np.subtract(np.cumsum(sizes), sizes)[own], seg)]
    cov = np.stack([V.coverage(shape, x[~bent], y[~bent], r[~bent]), V.coverage(shape, x[bent], y[bent], r[bent]),
                    V.render(shape, layers["dots"], u)])
    # the mask, not cov >= 0.5: the generator's last vessel is cut mid-stamp, a pixel at its tip
    return np.where(np.asarray(mask) > 0, np.argmax(cov, axis=0) + 1, 0).astype(np.uint8)


def _synth_params(root: Path) -> dict:
    meta_path = root / "phantom_stats.json"
    if not meta_path.is_file():
        raise SegmentError(f"{meta_path} not found: segment labels exist only for phantom data "
                           "(`thtl-bench synth`); real data has no generator to ask")
    meta = json.loads(meta_path.read_text())
    params = meta.get("params") or {}
    if meta.get("domain") != "larynx" or meta.get("generator_version") != phantoms.GENERATOR_VERSION:
        raise SegmentError(f"{meta_path}: domain {meta.get('domain')!r}, generator version "
                           f"{meta.get('generator_version')!r}; segment labels are recomputed for larynx phantoms of "
                           f"generator version {phantoms.GENERATOR_VERSION}: regenerate the data (`thtl-bench synth`)")
    if phantoms.params_hash(params) != meta.get("params_hash"):
        raise SegmentError(f"{meta_path}: params do not match params_hash (edited by hand?): regenerate the data")
    return params


def regenerate(root: str | Path, ids: list[str]) -> dict[str, np.ndarray]:
    """{id: uint8 label map at the synth size} for larynx phantom images `ids` (paths relative to
    the domain root, as the manifest lists them), each checked against its PNG on disk."""
    from PIL import Image

    root = Path(root)
    params = _synth_params(root)
    seed, size, diff = int(params["seed"]), int(params["image_size"]), params["difficulty"]
    out: dict[str, np.ndarray] = {}
    for i in ids:
        m = _ID.fullmatch(str(i))
        if m is None or m["label"] not in larynx_phantom.CLASSES:
            raise SegmentError(f"{root}: image id {i!r} is not a larynx phantom's "
                               "(<class>/PatientNNN/PNNN_kk.png): segment labels need the generator's own files")
        pid, k = int(m["pid"]), int(m["k"]) - 1
        pat = larynx_phantom.patient(dm.draw(seed, 2, pid), m["label"], diff["tortuosity_overlap"])
        r = larynx_phantom.image(seed, pid, k, pat, size, diff, geometry=True)
        with Image.open(root / i) as im:
            disk = np.asarray(im.convert("RGB"))
        if disk.shape != r["rgb"].shape or not np.array_equal(disk, r["rgb"]):
            raise SegmentError(f"{root / i}: the file is not what the generator draws from {root}/phantom_stats.json "
                               "(other code or parameters made it): regenerate the data (`thtl-bench synth`)")
        out[str(i)] = label_map(r["vessels"], r["mask"], size / V.REF)
    return out


def shares(labels: np.ndarray) -> dict[str, float]:
    """Pixel share of each category in a label map (of the whole image)."""
    lab = np.asarray(labels)
    return {c: float(np.mean(lab == k)) for k, c in enumerate(CATEGORIES, start=1)}
