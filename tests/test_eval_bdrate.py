"""Bjøntegaard delta tests against hand-computable cases."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

if importlib.util.find_spec("ncodec") is None:  # not installed yet: map the source tree as the package
    _pkg = types.ModuleType("ncodec")
    _pkg.__path__ = [str(Path(__file__).resolve().parents[1])]
    sys.modules["ncodec"] = _pkg

import math

import numpy as np
import pytest

from ncodec.eval.bdrate import BDError, bd_psnr, bd_rate  # noqa: E402

RATES = [0.1, 0.25, 0.5, 1.0, 2.0]
PSNR = [27.0, 30.0, 33.0, 36.5, 40.0]


def test_identical_curves_give_zero():
    assert bd_rate(RATES, PSNR, RATES, PSNR) == pytest.approx(0.0, abs=1e-9)
    assert bd_psnr(RATES, PSNR, RATES, PSNR) == pytest.approx(0.0, abs=1e-9)


def test_constant_rate_factor():
    # same quality with 10 % fewer bits everywhere -> exactly -10 %
    assert bd_rate(RATES, PSNR, [0.9 * r for r in RATES], PSNR) == pytest.approx(-10.0, abs=1e-9)
    assert bd_rate(RATES, PSNR, [1.25 * r for r in RATES], PSNR) == pytest.approx(25.0, abs=1e-9)


def test_constant_psnr_offset():
    assert bd_psnr(RATES, PSNR, RATES, [p + 0.5 for p in PSNR]) == pytest.approx(0.5, abs=1e-9)


def test_linear_log_rate_case():
    # PSNR = 10 * log2(rate) + 40 for anchor; test shifted by +1 dB -> rate factor 2**(-0.1)
    r = np.array([0.125, 0.25, 0.5, 1.0])
    q = 10 * np.log2(r) + 40
    expected = (2 ** (-0.1) - 1) * 100
    assert bd_rate(r, q, r, q + 1.0) == pytest.approx(expected, rel=1e-6)


def test_order_does_not_matter():
    assert bd_rate(RATES[::-1], PSNR[::-1], RATES, PSNR) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    "rates,quality,msg",
    [
        ([1.0], [30.0], "at least 2"),
        ([0.1, 0.2, 0.4], [30.0, 29.0, 33.0], "non-monotonic"),
        ([0.1, 0.1, 0.4], [30.0, 31.0, 33.0], "duplicate"),
        ([0.0, 0.2, 0.4], [30.0, 31.0, 33.0], "> 0"),
        ([0.1, 0.2, math.nan], [30.0, 31.0, 33.0], "NaN"),
    ],
)
def test_invalid_curves_raise(rates, quality, msg):
    with pytest.raises(ValueError, match=msg):
        bd_rate(RATES, PSNR, rates, quality)
    with pytest.raises(BDError):
        bd_psnr(rates, quality, RATES, PSNR)


def test_no_overlap_raises():
    with pytest.raises(ValueError, match="overlap"):
        bd_rate(RATES, PSNR, RATES, [p + 50 for p in PSNR])


# ------------------------------------------------------------------ cross-check on published curves
# CompressAI's published Kodak curves (../shared/anchors/image-kodak; bpp, PSNR-RGB in dB), copied so
# the cross-check runs without the shared folder too.
PUBLISHED = {
    "vtm": (
        [0.048245, 0.112495, 0.245817, 0.490545, 0.87481, 1.43085, 2.324607, 3.632609],
        [26.144845, 28.493022, 31.199874, 34.261533, 37.419793, 40.424444, 43.505767, 46.59176],
    ),
    "bpg_444_x265_ycbcr": (
        [0.067768, 0.161023, 0.351554, 0.684697, 1.199665, 1.929712, 3.057876, 4.703143],
        [26.195128, 28.681549, 31.594657, 34.857474, 38.259887, 41.478873, 44.70311, 47.632516],
    ),
    "webp": (
        [0.234419, 0.296336, 0.352865, 0.407049, 0.460802, 0.512705, 0.567407, 0.620739, 0.674676,
         0.721817, 0.770877, 0.823675, 0.874027, 0.934291, 0.998388, 1.216314, 1.520081, 2.010354,
         2.928479],
        [28.328424, 29.151205, 29.820851, 30.406979, 30.939177, 31.442621, 31.935957, 32.424824,
         32.88346, 33.237553, 33.606664, 33.971663, 34.328179, 34.69345, 35.104168, 36.369046,
         37.778259, 39.556952, 41.759249],
    ),
    "jpeg": (
        [0.221153, 0.326614, 0.423126, 0.508386, 0.587866, 0.660127, 0.728946, 0.786027, 0.849719,
         0.906001, 0.96438, 1.037212, 1.127396, 1.239846, 1.368827, 1.571807, 1.858816, 2.350199,
         3.40134],
        [23.779895, 26.57723, 28.042246, 29.041809, 29.78473, 30.378313, 30.903165, 31.307827,
         31.704845, 32.058653, 32.399296, 32.789916, 33.234742, 33.792594, 34.394295, 35.239001,
         36.328865, 37.912125, 40.556657],
    ),
}  # fmt: skip
ANCHORS = Path(__file__).resolve().parents[1].parent / "shared" / "anchors" / "image-kodak"


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch-Carlson PCHIP derivatives (weighted harmonic mean inside, 3-point formula at the ends),
    written out here independently of scipy."""
    h = np.diff(x)
    m = np.diff(y) / h
    d = np.zeros_like(y)
    for k in range(1, len(x) - 1):
        if m[k - 1] * m[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / m[k - 1] + w2 / m[k])
    for i, (h0, h1, m0, m1) in ((0, (h[0], h[1], m[0], m[1])), (-1, (h[-1], h[-2], m[-1], m[-2]))):
        e = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        if np.sign(e) != np.sign(m0):
            e = 0.0
        elif np.sign(m0) != np.sign(m1) and abs(e) > 3 * abs(m0):
            e = 3 * m0
        d[i] = e
    return d


def _pchip_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Integral over [lo, hi] of the PCHIP interpolant: Gauss-Legendre (exact for the cubic pieces)."""
    d = _pchip_slopes(x, y)
    gx, gw = np.polynomial.legendre.leggauss(4)
    total = 0.0
    for k in range(len(x) - 1):
        a, b = max(lo, x[k]), min(hi, x[k + 1])
        if b <= a:
            continue
        t = 0.5 * (b - a) * gx + 0.5 * (a + b)
        h, s = x[k + 1] - x[k], (t - x[k]) / (x[k + 1] - x[k])
        v = ((2 * s**3 - 3 * s**2 + 1) * y[k] + (s**3 - 2 * s**2 + s) * h * d[k]
             + (-2 * s**3 + 3 * s**2) * y[k + 1] + (s**3 - s**2) * h * d[k + 1])  # fmt: skip
        total += 0.5 * (b - a) * float(np.sum(gw * v))
    return total


def _reference_bd(ra, qa, rt, qt) -> tuple[float, float]:
    """BD-rate (%) and BD-PSNR (dB), pchip over log-rate, computed without ncodec.eval.bdrate."""
    oa, ot = np.argsort(ra), np.argsort(rt)  # some published files list the points high rate first
    la, lt = np.log(np.asarray(ra, float)[oa]), np.log(np.asarray(rt, float)[ot])
    qa, qt = np.asarray(qa, float)[oa], np.asarray(qt, float)[ot]
    lo, hi = max(qa.min(), qt.min()), min(qa.max(), qt.max())
    d = (_pchip_integral(qt, lt, lo, hi) - _pchip_integral(qa, la, lo, hi)) / (hi - lo)
    rlo, rhi = max(la.min(), lt.min()), min(la.max(), lt.max())
    p = (_pchip_integral(lt, qt, rlo, rhi) - _pchip_integral(la, qa, rlo, rhi)) / (rhi - rlo)
    return (math.exp(d) - 1) * 100, p


def _published_pairs():
    curves = dict(PUBLISHED)
    if ANCHORS.is_dir():  # every published Kodak curve with bpp and PSNR-RGB
        import json

        for f in sorted(ANCHORS.glob("*.json")):
            r = json.loads(f.read_text())["results"]
            if "bpp" in r and "psnr-rgb" in r and len(r["bpp"]) >= 3:
                curves[f.stem] = (r["bpp"], r["psnr-rgb"])
    anchor = curves["bpg_444_x265_ycbcr"]
    return [(name, anchor, c) for name, c in curves.items() if name != "bpg_444_x265_ycbcr"]


def test_pchip_reference_matches_scipy_on_a_curve():
    from scipy.interpolate import PchipInterpolator

    r, q = PUBLISHED["webp"]
    x, y = np.asarray(q), np.log(r)
    assert _pchip_integral(x, y, x[1] + 0.1, x[-2] - 0.3) == pytest.approx(
        PchipInterpolator(x, y).integrate(x[1] + 0.1, x[-2] - 0.3), rel=1e-12
    )


@pytest.mark.parametrize(
    "name,anchor,test", _published_pairs(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_bd_matches_independent_pchip_on_published_curves(name, anchor, test):
    ra, qa = anchor
    rt, qt = test
    ref_rate, ref_psnr = _reference_bd(ra, qa, rt, qt)
    assert bd_rate(ra, qa, rt, qt) == pytest.approx(ref_rate, rel=1e-9, abs=1e-9)
    assert bd_psnr(ra, qa, rt, qt) == pytest.approx(ref_psnr, rel=1e-9, abs=1e-9)


def test_published_bd_rates_have_the_known_signs_and_sizes():
    """VTM saves about a fifth of BPG's bits on Kodak; JPEG and WebP cost more (as the anchors show)."""
    bpg = PUBLISHED["bpg_444_x265_ycbcr"]
    assert -25 < bd_rate(*bpg, *PUBLISHED["vtm"]) < -12
    assert 20 < bd_rate(*bpg, *PUBLISHED["webp"]) < 70
    assert bd_rate(*bpg, *PUBLISHED["jpeg"]) > 80


# ------------------------------------------------------------------------------------- crossings


def test_crossing_curves_are_found_where_they_cross():
    from ncodec.eval.bdrate import crossings

    r = [0.25, 0.5, 1.0, 2.0, 4.0]
    qa = [10 * math.log2(x) + 40 for x in r]  # lines over log-rate: pchip reproduces them exactly
    qt = [12 * math.log2(x) + 40 for x in r]  # steeper: worse below 1 bpp, better above
    (pt,) = crossings(r, qa, r, qt)
    assert pt[0] == pytest.approx(1.0, rel=1e-6) and pt[1] == pytest.approx(40.0, abs=1e-6)
    two = [q + 2.0 * (math.log2(x) ** 2 - 1.0) for x, q in zip(r, qa)]  # equal at 0.5 and 2 bpp
    assert [round(x, 3) for x, _ in crossings(r, qa, r, two)] == [0.5, 2.0]


def test_parallel_or_touching_curves_do_not_cross():
    from ncodec.eval.bdrate import crossings

    assert crossings(RATES, PSNR, [0.9 * x for x in RATES], PSNR) == []
    assert crossings(RATES, PSNR, RATES, PSNR) == []  # identical: touching everywhere, no sign change
    assert crossings(*PUBLISHED["bpg_444_x265_ycbcr"], *PUBLISHED["vtm"]) == []
