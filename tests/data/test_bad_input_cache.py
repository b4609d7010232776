"""Geometry choices (data.resize), decoding traps (EXIF, 16-bit, empty), the files the data layer
writes (mode 0644, no temp file left on any error) and split files edited by hand."""

from __future__ import annotations

import contextlib
import os
import stat

import numpy as np
import pytest
from PIL import Image
from support.data import make_cfg, png

from thtl_bench.data import cache, splits
from thtl_bench.data.check import check_domain
from thtl_bench.data.errors import DataError


def manifest(tmp_path, n=12, size=(40, 20)):
    root = tmp_path / "larynx"
    rows = ["path,label,patient_id"]
    for i in range(n):
        lab = "malignant" if i % 2 else "benign"
        png(root / lab / f"{i}.png", i, size)
        rows.append(f"{lab}/{i}.png,{lab},P{i}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return make_cfg(tmp_path)


def test_resize_modes_are_distinct_geometries():
    assert cache.RESIZE_MODES == ("shorter_side_center_crop", "pad_to_square", "stretch")
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :8] = 255  # a white left fifth: cropped away by the centre crop, kept by the others
    im = Image.fromarray(a)
    out = {m: np.asarray(cache.geometry(im, 16, mode=m)) for m in cache.RESIZE_MODES}
    assert all(o.shape == (16, 16, 3) for o in out.values())
    assert out["shorter_side_center_crop"].max() == 0
    pad = out["pad_to_square"]
    assert pad[:4].max() == 0 and pad[-4:].max() == 0 and pad[4:12, :2].min() == 255  # black bars, whole field
    assert out["stretch"][:, :2].min() == 255 and out["stretch"][:, 5:].max() == 0


def test_unknown_resize_refused_naming_params_and_choices(tmp_path):
    cfg = manifest(tmp_path)
    cfg["data"]["resize"] = "letterbox"
    cfg["_params_file"] = "params.yaml"
    with pytest.raises(DataError) as exc:
        cache.load_domain(cfg, "larynx")
    msg = str(exc.value)
    assert msg.startswith("params.yaml: data.resize='letterbox'") and "pad_to_square" in msg and "stretch" in msg
    rep = check_domain(cfg, "larynx")  # reported with everything else, not raised
    assert [p.code for p in rep["problems"] if p.severity == "error"] == ["bad_resize"] and rep["counts"]


def test_each_resize_mode_gives_its_own_cache(tmp_path):
    cfg = manifest(tmp_path)
    got = {}
    for mode in cache.RESIZE_MODES:
        cfg["data"]["resize"] = mode
        got[mode] = np.array(cache.load_domain(cfg, "larynx").images)
    assert len(list((tmp_path / "cache").glob("larynx-*.npy"))) == 3
    crop, pad = got["shorter_side_center_crop"], got["pad_to_square"]
    assert not np.array_equal(crop, pad) and pad[:, :4].max() == 0  # 40x20 padded: black rows on top


def test_upscaling_judged_by_the_geometry(tmp_path):
    png(tmp_path / "wide.png", 1, (16, 8))
    _, crop = cache.open_checked(tmp_path / "wide.png", ["RGB"], 16, "shorter_side_center_crop")
    _, pad = cache.open_checked(tmp_path / "wide.png", ["RGB"], 16, "pad_to_square")
    assert [p.code for p in crop] == ["wrong_size"] and pad == []


def test_exif_orientation_is_applied(tmp_path):
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :10] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view": viewers show it 20 wide, 40 high
    Image.fromarray(a).save(tmp_path / "r.jpg", exif=exif, quality=95)
    im, probs = cache.open_checked(tmp_path / "r.jpg", ["RGB"], 16)
    assert probs == [] and im.size == (20, 40)
    assert np.asarray(im)[:10].mean() > 200 and np.asarray(im)[-10:].mean() < 50  # white part on top


def test_deep_images_refused_even_when_their_mode_is_allowed(tmp_path):
    Image.fromarray(np.full((32, 32), 4000, np.uint16)).save(tmp_path / "d.png")
    with Image.open(tmp_path / "d.png") as im:
        mode = im.mode
    _, probs = cache.open_checked(tmp_path / "d.png", ["RGB", mode], 16)
    assert [p.code for p in probs] == ["deep_image"] and "clip" in probs[0].message and "rescale" in probs[0].fix


def test_image_without_pixels(tmp_path, monkeypatch):
    # PIL neither writes nor reads a 0-pixel PNG/TIFF/BMP (those are `unreadable`); a decoder
    # plugin that yields one must still not reach the geometry (a division by zero there)
    png(tmp_path / "e.png", 1)
    monkeypatch.setattr(Image, "open", lambda p: contextlib.nullcontext(Image.new("RGB", (0, 7))))
    _, probs = cache.open_checked(tmp_path / "e.png", ["RGB"], 16)
    assert [p.code for p in probs] == ["empty_image"]


def test_written_files_are_readable_by_others(tmp_path):
    cfg = manifest(tmp_path)
    old = os.umask(0o077)  # a private umask, as on many clusters
    try:
        cache.load_domain(cfg, "larynx")
    finally:
        os.umask(old)
    files = [tmp_path / "splits" / "larynx" / "k0.csv", *(tmp_path / "cache").iterdir()]
    assert {f.suffix for f in files} == {".csv", ".npy", ".json"}
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o644}


@pytest.mark.parametrize("exc", [RuntimeError("decoder bug"), KeyboardInterrupt()])
def test_build_leaves_no_temp_file_on_any_error(tmp_path, exc):
    def fn(p):
        raise exc

    with pytest.raises(type(exc)):
        cache._build(tmp_path / "c" / "x.npy", [tmp_path / "a.png"], fn, (4, 4, 3))
    assert list((tmp_path / "c").iterdir()) == []


def test_split_file_edited_by_hand(tmp_path):
    cfg = manifest(tmp_path)
    cache.load_domain(cfg, "larynx")
    path = tmp_path / "splits" / "larynx" / "k0.csv"
    good = path.read_text()
    lines = good.splitlines()
    # a patient renamed in the split file, consistently, so nothing leaks: still not the data's
    path.write_text(good.replace(",P3,", ",P3b,"))
    with pytest.raises(DataError, match="patients"):
        cache.load_domain(cfg, "larynx")
    assert [p.code for p in check_domain(cfg, "larynx")["problems"]] == ["stale_splits"]
    # a split name or rank typed by hand: named by line, not a traceback
    bad = lines[:2] + [lines[2].replace(lines[2].split(",")[3], "tset")] + [lines[3].rsplit(",", 2)[0] + ",x," +
                                                                           lines[3].rsplit(",", 1)[1]] + lines[4:]
    path.write_text("\n".join(bad) + "\n")
    with pytest.raises(DataError) as exc:
        splits.read(path)
    assert [p.path.rsplit(":", 1)[1] for p in exc.value.problems] == ["3", "4"]
    assert "'tset'" in exc.value.problems[0].message and "'x'" in exc.value.problems[1].message
    assert {p.code for p in check_domain(cfg, "larynx")["problems"]} == {"bad_splits"}


def test_masks_must_match_their_images(tmp_path):
    cfg = manifest(tmp_path, n=4, size=(32, 32))
    root = tmp_path / "larynx"
    for lab, i in (("benign", 0), ("malignant", 1), ("benign", 2)):
        Image.new("L", (32, 32) if i else (16, 16)).save((root / "masks" / lab).mkdir(parents=True, exist_ok=True)
                                                         or root / "masks" / lab / f"{i}.png")
    got = sorted((p.code, p.severity) for p in check_domain(cfg, "larynx")["problems"])
    assert got == [("mask_size", "error"), ("missing_masks", "warning")]
