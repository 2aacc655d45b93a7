"""Metrics against hand-computed values."""

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

from ncodec.eval import metrics as M  # noqa: E402


def test_psnr_known_error():
    rng = np.random.default_rng(0)
    a = rng.integers(10, 240, size=(32, 48, 3), dtype=np.uint8)
    b = a.copy()
    b[::2] += 4  # half the samples off by 4 -> MSE = 8
    assert M.psnr_rgb(a, b) == pytest.approx(10 * math.log10(255**2 / 8.0), abs=1e-9)
    assert M.psnr_rgb(a, a) == math.inf


def test_psnr_y_grey_offset():
    a = np.full((16, 16, 3), 100, np.uint8)
    b = np.full((16, 16, 3), 102, np.uint8)  # luma error exactly 2 (weights sum to 1)
    assert M.psnr_y(a, b) == pytest.approx(10 * math.log10(255**2 / 4.0), abs=1e-9)


def test_ms_ssim_identity_and_small_images():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, size=(176, 176, 3), dtype=np.uint8)
    assert M.ms_ssim_rgb(a, a) == pytest.approx(1.0, abs=1e-6)
    noisy = np.clip(a.astype(int) + rng.integers(-20, 21, size=a.shape), 0, 255).astype(np.uint8)
    assert 0.0 < M.ms_ssim_rgb(a, noisy) < 1.0
    assert math.isnan(M.ms_ssim_rgb(a[:64, :64], a[:64, :64]))
    assert M.ms_ssim_db(0.99) == pytest.approx(20.0)


def test_si_sdr_scaled_and_noisy():
    rng = np.random.default_rng(2)
    s = rng.standard_normal(16000).astype(np.float32)
    s -= s.mean()
    assert M.si_sdr(s, 0.5 * s) > 100  # scale invariant
    n = rng.standard_normal(16000)
    n -= n.mean()
    n -= np.dot(n, s) / np.dot(s, s) * s  # orthogonal to s
    n *= np.linalg.norm(s) / np.linalg.norm(n) / 10  # 20 dB below
    assert M.si_sdr(s, 3.0 * (s + n)) == pytest.approx(20.0, abs=1e-3)


def test_audio_perceptual_metrics_sane():
    sr = 16000
    t = np.arange(3 * sr) / sr
    # speech-like: amplitude-modulated harmonic complex
    x = (np.sin(2 * np.pi * 3 * t) ** 2) * sum(
        np.sin(2 * np.pi * f * t) / k for k, f in enumerate([150, 300, 450], 1)
    )
    x = (0.3 * x / np.abs(x).max()).astype(np.float32)[None]
    assert M.mel_distance(x, x, sr) == pytest.approx(0.0, abs=1e-6)
    noisy = x + 0.01 * np.random.default_rng(3).standard_normal(x.shape).astype(np.float32)
    assert M.mel_distance(x, noisy, sr) > 0
    assert 0.5 < M.stoi(x, noisy, sr) <= 1.0
    p = M.pesq_wb(x, noisy, sr)
    assert math.isnan(p) or 1.0 <= p <= 4.7


def test_psnr_yuv420_weighting():
    y = np.full((8, 8), 100, np.uint8)
    u = np.full((4, 4), 120, np.uint8)
    v = np.full((4, 4), 130, np.uint8)
    r = M.psnr_yuv420((y, u, v), (y + 1, u + 2, v))
    py, pu = 10 * math.log10(255**2), 10 * math.log10(255**2 / 4)
    assert r["psnr-y"] == pytest.approx(py)
    assert r["psnr-v"] == 100.0
    assert r["psnr-yuv"] == pytest.approx((6 * py + pu + 100.0) / 8)


def test_yuv420_to_rgb_grey():
    y = np.full((4, 4), 126, np.uint8)  # limited-range mid grey
    c = np.full((2, 2), 128, np.uint8)
    rgb = M.yuv420_to_rgb(y, c, c)
    assert rgb.shape == (4, 4, 3)
    assert np.all(np.abs(rgb.astype(int) - round((126 - 16) * 255 / 219)) <= 1)
