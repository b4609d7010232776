"""Transcendental functions and random draws that give the same bits on every CPU.

numpy's sin/cos/exp/log/arctan2/power dispatch to SIMD kernels (AVX2, AVX-512, NEON) whose
results differ in the last bits between machines, and Generator.uniform/normal/poisson run
C code that a compiler may contract into fused multiply-adds on arm64. Everything here is
built from numpy's + - * / and sqrt, which IEEE 754 rounds correctly, one ufunc call per
operation (a compiler cannot fuse operations that live in different ufunc calls), and from
the platform-independent PCG64 bit stream (`Generator.random`, `integers`, `permutation`).

Accuracy is a few ulp, ample for drawing; what matters is that it is the same everywhere.
Functions take and return float64 arrays (scalars come back as 0-d arrays; use float()).
"""

from __future__ import annotations

import math

import numpy as np

PI = 3.141592653589793
TWO_PI = 6.283185307179586
HALF_PI = 1.5707963267948966
# Cody-Waite splits: the high parts have trailing zero bits, so k * high is exact for |k| < 2**20.
_PIO2_HI = 1.5707963267341256
_PIO2_LO = 6.077100506506192e-11
_LN2_HI = 0.6931471803691238
_LN2_LO = 1.9082149292705877e-10
_INV_LN2 = 1.4426950408889634
_TAN_PI_8 = 0.41421356237309503
_SQRT_HALF = 0.7071067811865476


def _f(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _horner(x: np.ndarray, coefs: tuple[float, ...]) -> np.ndarray:
    """sum(c_i x^i) with coefs from the highest power down; one ufunc per operation."""
    acc = np.full_like(x, coefs[0])
    for c in coefs[1:]:
        acc = np.multiply(acc, x)
        acc = np.add(acc, c)
    return acc


# Taylor coefficients (|r| <= pi/4 after reduction: truncation error < 1e-17).
_SIN = tuple(((-1) ** k) / float(np.prod(np.arange(1, 2 * k + 2, dtype=np.float64))) for k in range(8, -1, -1))
_COS = tuple(((-1) ** k) / float(np.prod(np.arange(1, 2 * k + 1, dtype=np.float64))) for k in range(8, -1, -1))
_ATAN = tuple(((-1) ** k) / (2 * k + 1) for k in range(22, -1, -1))
_EXP = tuple(1.0 / float(np.prod(np.arange(1, k + 1, dtype=np.float64))) for k in range(14, -1, -1))


def _sincos_reduced(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    k = np.rint(np.multiply(x, 1.0 / HALF_PI))
    r = np.subtract(x, np.multiply(k, _PIO2_HI))
    r = np.subtract(r, np.multiply(k, _PIO2_LO))
    r2 = np.multiply(r, r)
    s = np.multiply(_horner(r2, _SIN), r)
    c = _horner(r2, _COS)
    return s, c, np.mod(k.astype(np.int64), 4)


def sincos(x) -> tuple[np.ndarray, np.ndarray]:
    """(sin x, cos x) from one argument reduction."""
    s, c, q = _sincos_reduced(_f(x))
    sn = np.where(q == 0, s, np.where(q == 1, c, np.where(q == 2, -s, -c)))
    cs = np.where(q == 0, c, np.where(q == 1, -s, np.where(q == 2, -c, s)))
    return sn, cs


def sin(x) -> np.ndarray:
    s, c, q = _sincos_reduced(_f(x))
    return np.where(q == 0, s, np.where(q == 1, c, np.where(q == 2, -s, -c)))


def cos(x) -> np.ndarray:
    s, c, q = _sincos_reduced(_f(x))
    return np.where(q == 0, c, np.where(q == 1, -s, np.where(q == 2, -c, s)))


def exp(x) -> np.ndarray:
    x = np.clip(_f(x), -700.0, 700.0)
    k = np.rint(np.multiply(x, _INV_LN2))
    r = np.subtract(x, np.multiply(k, _LN2_HI))
    r = np.subtract(r, np.multiply(k, _LN2_LO))
    return np.ldexp(_horner(r, _EXP), k.astype(np.int32))  # scaling by 2**k is exact


def log(x) -> np.ndarray:
    """Natural log of x > 0 (non-positive inputs give -inf/nan as np.log would)."""
    x = _f(x)
    m, e = np.frexp(x)  # exact: x = m * 2**e, 0.5 <= m < 1
    low = m < _SQRT_HALF
    m = np.where(low, np.multiply(m, 2.0), m)
    e = np.where(low, e - 1, e).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):  # x <= 0 is handled below
        s = np.divide(np.subtract(m, 1.0), np.add(m, 1.0))  # log m = 2 atanh(s), |s| < 0.172
    s2 = np.multiply(s, s)
    series = _horner(s2, tuple(1.0 / (2 * k + 1) for k in range(12, -1, -1)))
    lm = np.multiply(np.multiply(series, s), 2.0)
    out = np.add(np.add(np.multiply(e, _LN2_LO), lm), np.multiply(e, _LN2_HI))
    out = np.where(x == 0, -np.inf, out)
    return np.where(x < 0, np.nan, out)


def _atan_unit(t: np.ndarray) -> np.ndarray:
    """atan(t) for 0 <= t <= 1: reduce to |u| <= tan(pi/8) around pi/4, then the odd series."""
    hi = t > _TAN_PI_8
    u = np.where(hi, np.divide(np.subtract(t, 1.0), np.add(t, 1.0)), t)
    u2 = np.multiply(u, u)
    series = _horner(u2, _ATAN)
    a = np.multiply(series, u)
    return np.where(hi, np.add(a, PI / 4), a)


def atan2(y, x) -> np.ndarray:
    """Angle of (x, y) in (-pi, pi], as np.arctan2 (atan2(0, 0) = 0)."""
    y, x = np.broadcast_arrays(_f(y), _f(x))
    ay, ax = np.abs(y), np.abs(x)
    big, small = np.maximum(ay, ax), np.minimum(ay, ax)
    t = np.divide(small, np.where(big == 0, 1.0, big))
    a = _atan_unit(t)
    a = np.where(ay > ax, np.subtract(HALF_PI, a), a)
    a = np.where(x < 0, np.subtract(PI, a), a)
    return np.where(np.signbit(y), -a, a)


def hypot(x, y) -> np.ndarray:
    x, y = _f(x), _f(y)
    return np.sqrt(np.add(np.multiply(x, x), np.multiply(y, y)))


def wrap_angle(a) -> np.ndarray:
    """a mapped to [-pi, pi)."""
    a = _f(a)
    k = np.floor(np.divide(np.add(a, PI), TWO_PI))
    return np.subtract(a, np.multiply(k, TWO_PI))


# ---------------------------------------------------------------- Python-float versions
# The same algorithms on Python floats (IEEE doubles; one operation per bytecode, never fused):
# per-call numpy overhead would dominate the many scalar uses (branch angles, draws).
def _horner_s(x: float, coefs: tuple[float, ...]) -> float:
    acc = coefs[0]
    for c in coefs[1:]:
        acc = acc * x + c
    return acc


def _sincos_s(x: float) -> tuple[float, float, int]:
    k = float(round(x * (1.0 / HALF_PI)))
    r = x - k * _PIO2_HI
    r = r - k * _PIO2_LO
    r2 = r * r
    return _horner_s(r2, _SIN) * r, _horner_s(r2, _COS), int(k) % 4


def sin_s(x: float) -> float:
    s, c, q = _sincos_s(float(x))
    return (s, c, -s, -c)[q]


def cos_s(x: float) -> float:
    s, c, q = _sincos_s(float(x))
    return (c, -s, -c, s)[q]


def exp_s(x: float) -> float:
    x = min(max(float(x), -700.0), 700.0)
    k = float(round(x * _INV_LN2))
    r = x - k * _LN2_HI
    r = r - k * _LN2_LO
    return math.ldexp(_horner_s(r, _EXP), int(k))


def log_s(x: float) -> float:
    x = float(x)
    if x <= 0:
        return -math.inf if x == 0 else math.nan
    m, e = math.frexp(x)
    if m < _SQRT_HALF:
        m, e = m * 2.0, e - 1
    s = (m - 1.0) / (m + 1.0)
    lm = _horner_s(s * s, tuple(1.0 / (2 * k + 1) for k in range(12, -1, -1))) * s * 2.0
    return e * _LN2_LO + lm + e * _LN2_HI


def atan2_s(y: float, x: float) -> float:
    y, x = float(y), float(x)
    ay, ax = abs(y), abs(x)
    big, small = max(ay, ax), min(ay, ax)
    t = small / big if big > 0 else 0.0
    if t > _TAN_PI_8:
        v = (t - 1.0) / (t + 1.0)
        a = _horner_s(v * v, _ATAN) * v + PI / 4
    else:
        a = _horner_s(t * t, _ATAN) * t
    if ay > ax:
        a = HALF_PI - a
    if x < 0:
        a = PI - a
    return -a if math.copysign(1.0, y) < 0 else a


def cbrt_s(x: float) -> float:
    """Cube root of x >= 0: exact scaling by 2**(3j), then Newton steps on [0.125, 1)."""
    x = float(x)
    if x <= 0:
        return 0.0
    m, e = math.frexp(x)
    j = e // 3
    m = math.ldexp(m, e - 3 * j)  # in [0.125, 1)
    y = 0.7
    for _ in range(7):
        y = y - (y * y * y - m) / (3.0 * y * y)
    return math.ldexp(y, j)


# ---------------------------------------------------------------- filtering
def gauss_kernel(sigma: float, truncate: float = 3.0) -> np.ndarray:
    """Normalised Gaussian taps over +-ceil(truncate * sigma)."""
    rad = max(int(np.ceil(truncate * sigma)), 1)
    k = np.arange(-rad, rad + 1, dtype=np.float64)
    w = exp(np.divide(np.multiply(k, k), -2.0 * sigma * sigma))
    return np.divide(w, w.sum())


def filter1d(a: np.ndarray, taps: np.ndarray, axis: int, mode: str = "reflect") -> np.ndarray:
    """Correlate `a` with symmetric `taps` along `axis` by shifted multiply-adds (no BLAS, no
    compiled float filter loop); `mode` is np.pad's ("reflect", "wrap", "edge")."""
    a = np.asarray(a, dtype=np.float64)
    rad = len(taps) // 2
    if rad == 0:
        return np.multiply(a, taps[0])
    pad = [(0, 0)] * a.ndim
    pad[axis] = (rad, rad)
    p = np.pad(a, pad, mode=mode if mode != "reflect" else "symmetric")
    n = a.shape[axis]
    out = np.zeros_like(a)
    for i, w in enumerate(taps):
        out = np.add(out, np.multiply(np.take(p, np.arange(i, i + n), axis=axis), w))
    return out


def blur2d(a: np.ndarray, sigma: float, mode: str = "reflect") -> np.ndarray:
    """Separable Gaussian blur over the first two axes."""
    if sigma <= 0:
        return np.asarray(a, dtype=np.float64)
    taps = gauss_kernel(sigma)
    return filter1d(filter1d(a, taps, 0, mode), taps, 1, mode)


# ---------------------------------------------------------------- random draws
class Draw:
    """Seeded draws from a numpy Generator using only its platform-independent bit stream:
    `random` ((bits >> 11) * 2**-53, exact), `integers` and `permutation`. Normals come from
    Box-Muller and Poisson counts from Knuth's product method, both through this module."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def random(self, size=None) -> np.ndarray:
        return self.rng.random(size)

    def uniform(self, lo, hi, size=None):
        if size is None and np.ndim(lo) == 0 and np.ndim(hi) == 0:
            return float(lo) + (float(hi) - float(lo)) * float(self.rng.random())
        u = self.rng.random(size)
        lo, hi = _f(lo), _f(hi)
        out = np.add(lo, np.multiply(np.subtract(hi, lo), u))
        return float(out) if size is None and out.ndim == 0 else out

    def normal(self, mean=0.0, sd=1.0, size=None):
        if size is None and np.ndim(mean) == 0 and np.ndim(sd) == 0:
            u1, u2 = 1.0 - float(self.rng.random()), float(self.rng.random())
            return float(mean) + float(sd) * (math.sqrt(-2.0 * log_s(u1)) * cos_s(u2 * TWO_PI))
        shape = () if size is None else (size,) if np.isscalar(size) else tuple(size)
        n = int(np.prod(shape)) if shape else 1
        m = (n + 1) // 2  # Box-Muller gives two normals per pair of uniforms
        u1 = np.subtract(1.0, self.rng.random(m))  # (0, 1]: log is finite
        u2 = self.rng.random(m)
        rad = np.sqrt(np.multiply(log(u1), -2.0))
        sn, cs = sincos(np.multiply(u2, TWO_PI))
        z = np.concatenate([np.multiply(rad, cs), np.multiply(rad, sn)])[:n]
        out = np.add(_f(mean), np.multiply(_f(sd), z.reshape(shape)))
        return float(out) if size is None and out.ndim == 0 else out

    def poisson(self, lam: float) -> int:
        """Knuth: count uniforms until their product falls below exp(-lam) (lam <= ~30)."""
        if lam <= 0:
            return 0
        limit, prod, k = exp_s(-float(lam)), 1.0, 0
        while True:
            prod *= float(self.rng.random())
            if prod <= limit:
                return k
            k += 1

    def integers(self, lo: int, hi: int, size=None):
        """Integers in [lo, hi) (numpy's exclusive upper bound)."""
        return self.rng.integers(lo, hi, size)

    def choice(self, items, p=None):
        """One item; with probabilities p, by inverse CDF on one uniform."""
        if p is None:
            return items[int(self.rng.integers(0, len(items)))]
        u, acc = float(self.rng.random()), 0.0
        for item, w in zip(items, p, strict=True):
            acc += float(w)
            if u < acc:
                return item
        return items[-1]

    def sign(self) -> int:
        return 1 if self.rng.integers(0, 2) else -1

    def permutation(self, n: int) -> np.ndarray:
        return self.rng.permutation(n)


def draw(seed: int, *key: int) -> Draw:
    """An independent stream per (seed, key...) so adding a draw to one image or one purpose
    does not shift the others."""
    return Draw(np.random.default_rng(np.random.SeedSequence([int(seed), *[int(k) for k in key]])))


def smooth_field(d: Draw, shape: tuple[int, int], corr: float) -> np.ndarray:
    """2-D Gaussian-correlated noise (periodic), unit standard deviation."""
    t = blur2d(d.normal(size=shape), corr, mode="wrap")
    c = np.subtract(t, t.mean())
    return np.divide(c, float(np.sqrt(np.mean(np.multiply(c, c)))) + 1e-12)
