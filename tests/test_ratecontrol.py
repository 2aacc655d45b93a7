"""Rate control's search: the same answer with or without a guess, fewer tries with a good one,
and the domain's ends reported as clamped."""

import math

import pytest

from ncodec.codec.ratecontrol import search


def _kbps(k: int) -> float:
    """A monotone, step-like rate curve (kbit/s of a rate field k)."""
    return 0.1 * k + 0.3 * (k // 40) + 0.04 * math.sin(k / 7.0)


@pytest.mark.parametrize("mode", ["at_most", "at_least", "nearest"])
@pytest.mark.parametrize("geometric", [False, True])
@pytest.mark.parametrize("goal", [3.0, 12.0, 47.5])
def test_guess_keeps_the_answer(mode, geometric, goal):
    plain = search(_kbps, float, goal, 10, 2000, mode=mode, geometric=geometric, tolerance=0.0, max_tries=64)
    for guess in (10, 60, 500, 2000):
        res = search(
            _kbps,
            float,
            goal,
            10,
            2000,
            mode=mode,
            geometric=geometric,
            tolerance=0.0,
            guess=guess,
            max_tries=64,
        )
        assert res.rate == plain.rate and not res.clamped


def test_good_guess_costs_few_tries():
    plain = search(_kbps, float, 12.0, 10, 65535, mode="nearest", geometric=True)
    k = plain.rate
    res = search(_kbps, float, 12.0, 10, 65535, mode="nearest", geometric=True, guess=int(k * 1.05))
    assert abs(res.value / 12.0 - 1) <= 0.02
    assert res.tries <= 4 < plain.tries


@pytest.mark.parametrize("guess", [None, 10, 900, 2000])
def test_ends_are_clamped(guess):
    low = search(_kbps, float, 0.01, 10, 2000, guess=guess)
    assert low.rate == 10 and low.clamped
    high = search(_kbps, float, 1e6, 10, 2000, guess=guess)
    assert high.rate == 2000 and high.clamped


def test_effort_target_search_codes_few_full_effort_tries(monkeypatch):
    """A target search at an encoder effort narrows the rate on effort-0 drafts, so only a few
    encodes pay for the latent optimisation, and the target is still met."""
    import numpy as np

    import ncodec.codec as nc
    from ncodec.codec.image import ImageAnalysis

    yy, xx = np.mgrid[0:96, 0:128]
    rgb = np.stack([xx * 2, yy * 2, (xx + yy) % 256], -1).astype(np.uint8)
    full = []
    encode = ImageAnalysis.encode

    def counted(self, rate):
        if self.schedule is not None:
            full.append(rate)
        return encode(self, rate)

    plain = []

    def counted_plain(self, rate):
        plain.append(rate)
        return encode(self, rate)

    monkeypatch.setattr(ImageAnalysis, "encode", counted_plain)
    nc.encode(rgb, target_bpp=0.5, model="image-hp-v1")
    monkeypatch.setattr(ImageAnalysis, "encode", counted)
    data = nc.encode(rgb, target_bpp=0.5, effort=1, model="image-hp-v1")
    assert len(data) * 8 / rgb[..., 0].size <= 0.5
    assert 1 <= len(full) < len(plain)
