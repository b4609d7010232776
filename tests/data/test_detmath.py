"""detmath: accurate enough to draw with, scalar and array versions bit-identical, draws with
the moments they promise; pngio: files that decode to the pixels."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from thtl_bench.data import detmath as dm
from thtl_bench.data import pngio


def ulps(a, b):
    return float(np.max(np.abs(np.asarray(a) - b) / np.spacing(np.abs(b) + 1e-300)))


def test_functions_match_numpy_to_a_few_ulp():
    x = np.random.default_rng(0).uniform(-40, 40, 20000)
    p = np.abs(x) + 1e-4
    assert ulps(dm.sin(x), np.sin(x)) <= 4 and ulps(dm.cos(x), np.cos(x)) <= 4
    assert ulps(dm.exp(x / 2), np.exp(x / 2)) <= 2
    assert ulps(dm.log(p), np.log(p)) <= 2 and ulps(dm.log(p * 1e-200), np.log(p * 1e-200)) <= 2
    y = x[::-1] / 3
    assert ulps(dm.atan2(y, x), np.arctan2(y, x)) <= 4
    s, c = dm.sincos(x)
    assert np.array_equal(s, dm.sin(x)) and np.array_equal(c, dm.cos(x))
    assert float(dm.atan2(0.0, 0.0)) == 0.0 and float(dm.atan2(0.0, -1.0)) == pytest.approx(np.pi)
    assert float(dm.log(0.0)) == -np.inf and np.isnan(dm.log(-1.0))
    w = dm.wrap_angle(x)
    assert w.min() >= -np.pi and w.max() < np.pi and np.allclose(dm.sin(w), np.sin(x), atol=1e-12)


def test_python_float_versions_are_the_same_bits():
    x = np.random.default_rng(1).uniform(-30, 30, 3000)
    for f_s, f_a in ((dm.sin_s, dm.sin), (dm.cos_s, dm.cos), (dm.exp_s, dm.exp)):
        assert np.array_equal(np.array([f_s(v) for v in x]), f_a(x))
    p = np.abs(x) + 1e-3
    assert np.array_equal(np.array([dm.log_s(v) for v in p]), dm.log(p))
    assert np.array_equal(np.array([dm.atan2_s(a, b) for a, b in zip(x[::-1], x, strict=True)]), dm.atan2(x[::-1], x))
    assert max(abs(dm.cbrt_s(v) - np.cbrt(v)) / np.spacing(np.cbrt(v)) for v in p) <= 4


def test_draws_have_their_moments_and_are_reproducible():
    d = dm.draw(3, 1)
    z = d.normal(size=200000)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    u = d.uniform(2.0, 5.0, 100000)
    assert u.min() >= 2 and u.max() < 5 and abs(u.mean() - 3.5) < 0.02
    k = np.array([d.poisson(3.5) for _ in range(20000)])
    assert abs(k.mean() - 3.5) < 0.06 and abs(k.var() - 3.5) < 0.15
    assert d.choice(["a", "b"], p=[1.0, 0.0]) == "a"
    a, b = dm.draw(9, 2, 3), dm.draw(9, 2, 3)
    assert a.normal() == b.normal() and np.array_equal(a.uniform(0, 1, 5), b.uniform(0, 1, 5))
    assert dm.draw(9, 2, 4).normal() != dm.draw(9, 2, 3).normal()


def test_blur_and_smooth_field():
    taps = dm.gauss_kernel(1.5)
    assert abs(taps.sum() - 1) < 1e-12 and np.allclose(taps, taps[::-1])
    img = np.zeros((21, 21))
    img[10, 10] = 1.0
    b = dm.blur2d(img, 1.5)
    assert abs(b.sum() - 1) < 1e-9 and b[10, 10] == b.max()
    var = float((b.sum(0) * (np.arange(21) - 10) ** 2).sum())
    assert abs(var - 1.5 ** 2) < 0.05
    f = dm.smooth_field(dm.draw(1), (64, 64), 4.0)
    assert abs(f.std() - 1) < 1e-9 and np.corrcoef(f[:, :-2].ravel(), f[:, 2:].ravel())[0, 1] > 0.8


@pytest.mark.parametrize("shape", [(7, 5), (64, 64, 3), (160, 150, 3)])
def test_png_bytes_decode_to_the_pixels(shape):
    a = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    data = pngio.encode(a)
    assert data[:8] == pngio.SIGNATURE and data == pngio.encode(a.copy())
    im = Image.open(io.BytesIO(data))
    assert np.array_equal(np.asarray(im), a) and im.mode == ("L" if len(shape) == 2 else "RGB")
    idat = data[data.index(b"IDAT") + 4: data.index(b"IEND") - 8]
    assert zlib.decompress(idat) == np.concatenate([np.zeros((shape[0], 1), np.uint8), a.reshape(shape[0], -1)], 1).tobytes()
    with pytest.raises(ValueError, match="uint8"):
        pngio.encode(a.astype(np.float32))
