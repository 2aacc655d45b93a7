"""Bjøntegaard delta metrics (VCEG-M33 / JVET-pchip variant).

* :func:`bd_rate` — average bitrate difference (percent) of a test curve against an anchor curve at equal
  quality; negative means the test codec needs fewer bits.
* :func:`bd_psnr` — average quality difference (dB, or whatever unit the quality axis has) at equal rate.

Both use piecewise cubic Hermite interpolation (``scipy.interpolate.PchipInterpolator``) over the
natural log of the rate and integrate it exactly over the overlapping interval, as in CompressAI's
``compressai.utils`` helpers and the JVET CTC spreadsheet ("pchip" variant). Rates may be in any
unit (bpp, kbps, bits) as long as both curves use the same one.

* :func:`crossings` — where the two interpolated curves cross inside the common quality interval. A
  BD-rate averages over that interval, so for crossing curves it hides that one codec wins at low rates
  and the other at high rates; the report flags such cells.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator

__all__ = ["bd_rate", "bd_psnr", "crossings", "BDError"]


class BDError(ValueError):
    """Raised when a curve cannot be used for Bjøntegaard metrics (too few / non-monotonic points)."""


def _prepare(rate: Sequence[float], quality: Sequence[float], label: str) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rate, dtype=np.float64).ravel()
    q = np.asarray(quality, dtype=np.float64).ravel()
    if r.shape != q.shape:
        raise BDError(f"{label}: rate and quality have different lengths ({r.size} vs {q.size})")
    if r.size < 2:
        raise BDError(f"{label}: need at least 2 rate points, got {r.size}")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(q))):
        raise BDError(f"{label}: rate/quality contain NaN or inf")
    if np.any(r <= 0):
        raise BDError(f"{label}: rates must be > 0 (log-rate is used)")
    order = np.argsort(r)
    r, q = r[order], q[order]
    if np.any(np.diff(r) <= 0):
        raise BDError(f"{label}: duplicate rates {r.tolist()}")
    if np.any(np.diff(q) <= 0):
        raise BDError(
            f"{label}: quality is not strictly increasing with rate (non-monotonic curve): "
            f"rate={np.round(r, 4).tolist()} quality={np.round(q, 4).tolist()}"
        )
    return np.log(r), q


def _overlap(a: np.ndarray, b: np.ndarray, what: str) -> tuple[float, float]:
    lo = max(a.min(), b.min())
    hi = min(a.max(), b.max())
    if not hi > lo:
        raise BDError(
            f"curves do not overlap in {what}: [{a.min():.4g}, {a.max():.4g}] vs "
            f"[{b.min():.4g}, {b.max():.4g}]"
        )
    return float(lo), float(hi)


def bd_rate(
    rate_anchor: Sequence[float],
    quality_anchor: Sequence[float],
    rate_test: Sequence[float],
    quality_test: Sequence[float],
) -> float:
    """Bjøntegaard delta rate in percent of ``test`` against ``anchor`` (pchip over log-rate).

    ``log(rate)`` is interpolated as a function of quality (e.g. PSNR in dB) for both curves, integrated
    over the common quality interval; the average log difference ``d`` gives ``(exp(d) - 1) * 100``.
    A test curve with every rate multiplied by 0.9 at the same quality gives exactly ``-10.0``.

    Raises :class:`BDError` (a ``ValueError``) for fewer than 2 points, non-monotonic curves or curves
    whose quality ranges do not overlap.
    """
    lra, qa = _prepare(rate_anchor, quality_anchor, "anchor")
    lrt, qt = _prepare(rate_test, quality_test, "test")
    lo, hi = _overlap(qa, qt, "quality")
    fa = PchipInterpolator(qa, lra)
    ft = PchipInterpolator(qt, lrt)
    avg = (ft.integrate(lo, hi) - fa.integrate(lo, hi)) / (hi - lo)
    return float((np.exp(avg) - 1.0) * 100.0)


def bd_psnr(
    rate_anchor: Sequence[float],
    quality_anchor: Sequence[float],
    rate_test: Sequence[float],
    quality_test: Sequence[float],
) -> float:
    """Bjøntegaard delta quality (dB for PSNR) of ``test`` against ``anchor`` at equal rate.

    Quality is interpolated (pchip) as a function of ``log(rate)`` and the mean difference over the
    common log-rate interval is returned; positive means the test codec is better.
    """
    lra, qa = _prepare(rate_anchor, quality_anchor, "anchor")
    lrt, qt = _prepare(rate_test, quality_test, "test")
    lo, hi = _overlap(lra, lrt, "log-rate")
    fa = PchipInterpolator(lra, qa)
    ft = PchipInterpolator(lrt, qt)
    return float((ft.integrate(lo, hi) - fa.integrate(lo, hi)) / (hi - lo))


def crossings(
    rate_anchor: Sequence[float],
    quality_anchor: Sequence[float],
    rate_test: Sequence[float],
    quality_test: Sequence[float],
    samples: int = 2001,
) -> list[tuple[float, float]]:
    """Points ``(rate, quality)`` where the two curves cross strictly inside their common quality range.

    The curves are the ones :func:`bd_rate` integrates (pchip of log-rate over quality); a crossing is a
    sign change of their log-rate difference, located by bisection to 1e-10 in quality. Touching at the
    ends of the interval is not a crossing. The rate is the anchor's interpolated rate at that quality
    (the same unit as the inputs). Raises :class:`BDError` as :func:`bd_rate` does.
    """
    lra, qa = _prepare(rate_anchor, quality_anchor, "anchor")
    lrt, qt = _prepare(rate_test, quality_test, "test")
    lo, hi = _overlap(qa, qt, "quality")
    fa = PchipInterpolator(qa, lra)
    ft = PchipInterpolator(qt, lrt)

    def diff(q: float) -> float:
        return float(ft(q) - fa(q))

    tol = 1e-9  # log-rate difference below which the curves touch rather than cross
    grid = np.linspace(lo, hi, samples)
    d = ft(grid) - fa(grid)
    sign = np.where(d > tol, 1, np.where(d < -tol, -1, 0))
    out: list[tuple[float, float]] = []
    last_i, last_s = None, 0
    for i, s in enumerate(sign):
        if s == 0:
            continue
        if last_s and s != last_s:
            a, b = float(grid[last_i]), float(grid[i])
            for _ in range(200):
                if b - a < 1e-10:
                    break
                m = 0.5 * (a + b)
                if np.sign(diff(m)) == last_s:
                    a = m
                else:
                    b = m
            q = 0.5 * (a + b)
            out.append((float(np.exp(fa(q))), q))
        last_i, last_s = i, s
    return out
