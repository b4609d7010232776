"""Segment labels of larynx phantoms (the CAM mediator): recomputed from the generator, checked
against the files on disk, tortuous where the centreline coils, never for real data."""

from __future__ import annotations

import copy
import csv
import json

import numpy as np
import pytest
from PIL import Image
from support.data import BASE

from thtl_bench.data import detmath as dm
from thtl_bench.data import larynx_phantom, phantoms, segments
from thtl_bench.data import vessels as V


@pytest.fixture(scope="module")
def larynx(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("segments")
    scfg = copy.deepcopy(BASE["synth"])
    scfg.update(image_size=48, larynx={"patients": {"benign": 3, "malignant": 3}, "images_per_patient": [2, 2]})
    phantoms.synth(tmp, scfg, ["larynx"])
    rows = list(csv.DictReader(open(tmp / "larynx" / "manifest.csv")))
    return tmp / "larynx", rows


def _circle(radius: float, turns: float = 1.0) -> np.ndarray:
    t = np.arange(0.0, turns * dm.TWO_PI, V.STEP / radius)
    return np.stack([np.multiply(dm.cos(t), radius), np.multiply(dm.sin(t), radius)], 1)


def test_local_curvature_is_the_bend_per_unit_length():
    line = np.stack([np.arange(0, 20, V.STEP), np.zeros(40)], 1)
    assert np.abs(segments.local_curvature(line)).max() < 1e-12
    for radius in (3.0, 8.0):
        k = segments.local_curvature(_circle(radius))
        assert np.median(k) == pytest.approx(1 / radius, rel=0.02)
    # the threshold sits between a coil (radius 2.6 px at tau 1) and a gentle bend
    assert np.median(segments.local_curvature(_circle(2.6))) > segments.CURVATURE
    assert np.median(segments.local_curvature(_circle(8.0))) < segments.CURVATURE
    assert segments.local_curvature(line[:2]).tolist() == [0.0, 0.0]


def test_labels_cover_exactly_the_vessel_mask_on_disk(larynx):
    root, rows = larynx
    ids = [r["path"] for r in rows]
    labels = segments.regenerate(root, ids)
    assert list(labels) == ids
    for i in ids:
        mask = np.asarray(Image.open(root / "masks" / i)) > 0
        lab = labels[i]
        assert lab.dtype == np.uint8 and lab.shape == mask.shape and set(np.unique(lab)) <= {0, 1, 2, 3}
        assert np.array_equal(lab > 0, mask)
        share = segments.shares(lab)
        assert list(share) == list(segments.CATEGORIES)
        assert sum(share.values()) == pytest.approx(float(mask.mean()))


def test_malignant_vessels_coil_and_benign_ones_run_straight():
    # tortuous share of the tube pixels (superficial and deep; the deep layer is straight in both)
    diff = BASE["synth"]["difficulty"]
    tort = {}
    for lab in larynx_phantom.CLASSES:
        shares = []
        for pid in range(1, 7):
            pat = larynx_phantom.patient(dm.draw(4, 2, pid), lab, 0.2)
            r = larynx_phantom.image(4, pid, 0, pat, 64, diff, geometry=True)
            s = segments.shares(segments.label_map(r["vessels"], r["mask"], 1.0))
            shares.append(s["tortuous"] / (s["tortuous"] + s["straight"]))
        tort[lab] = float(np.mean(shares))
    assert tort["malignant"] > 0.25 and tort["benign"] < 0.1, tort


def test_geometry_does_not_change_the_image():
    diff = BASE["synth"]["difficulty"]
    pat = larynx_phantom.patient(dm.draw(5, 2, 1), "malignant", 0.2)
    a = larynx_phantom.image(5, 1, 0, pat, 32, diff)
    b = larynx_phantom.image(5, 1, 0, pat, 32, diff, geometry=True)
    assert np.array_equal(a["rgb"], b["rgb"]) and np.array_equal(a["mask"], b["mask"]) and a["truth"] == b["truth"]
    assert set(b["vessels"]) == {"superficial", "deep", "dots"} and b["vessels"]["superficial"]


def test_a_file_the_generator_did_not_draw_is_refused(larynx, tmp_path):
    import shutil

    root, rows = larynx
    copy_root = tmp_path / "larynx"
    shutil.copytree(root, copy_root)
    first = rows[0]["path"]
    img = np.asarray(Image.open(copy_root / first)).copy()
    img[0, 0, 0] ^= 1  # one bit of one pixel
    Image.fromarray(img).save(copy_root / first)
    with pytest.raises(segments.SegmentError, match="not what the generator draws"):
        segments.regenerate(copy_root, [first])
    assert segments.regenerate(copy_root, [rows[1]["path"]])  # the untouched ones still work


def test_real_data_other_generators_and_foreign_ids_are_clear_errors(larynx, tmp_path):
    root, rows = larynx
    with pytest.raises(segments.SegmentError, match="only for phantom data"):
        segments.regenerate(tmp_path, [rows[0]["path"]])
    with pytest.raises(segments.SegmentError, match="not a larynx phantom's"):
        segments.regenerate(root, ["benign/img_001.png"])
    meta = json.loads((root / "phantom_stats.json").read_text())
    for change, needle in (({"generator_version": "2"}, "generator version"),
                           ({"params": {**meta["params"], "seed": 1}}, "params_hash")):
        other = tmp_path / f"v{len(needle)}"
        other.mkdir()
        (other / "phantom_stats.json").write_text(json.dumps({**meta, **change}))
        with pytest.raises(segments.SegmentError, match=needle):
            segments.regenerate(other, [rows[0]["path"]])
