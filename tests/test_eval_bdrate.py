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
