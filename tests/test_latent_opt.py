"""Encoder effort (latent optimisation): same decoder, deterministic, never a worse RD cost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ncodec.codec as nc
from ncodec.codec.errors import InvalidArgumentError
from ncodec.codec.image import _to_tensor
from ncodec.models.latent_opt import Schedule, _cost, rd_lambda, refine_residuals
from ncodec.models.registry import load_model

SAMPLE = Path(__file__).parent / "data" / "bsds500_100007_crop.png"


@pytest.fixture(scope="module")
def img():
    return Image.open(SAMPLE).convert("RGB").crop((0, 0, 64, 64))


def test_effort_streams_decode_and_are_deterministic(img):
    a = nc.encode(img, quality=40, effort=1)
    assert a == nc.encode(img, quality=40, effort=1)
    out = nc.decode(a)  # the ordinary decoder
    assert out.size == img.size
    assert nc.info(a)["quality"] == 40.0
    with pytest.raises(InvalidArgumentError):
        nc.encode(img, quality=40, effort=9)


def test_refinement_never_raises_the_rd_cost(img):
    m = load_model("image-hp-v1")
    rgb = np.asarray(img)
    y = m.analysis(_to_tensor(rgb, "cpu"))
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    ys, z = m.scale_latents(y, 60.0)
    mu, idx = m.hyper(z, tuple(ys.shape))
    from ncodec.entropy.tables import gaussian_scale_table

    sigma = torch.from_numpy(gaussian_scale_table()).float()[idx]
    inv_gain = m._gain(m.log_inv_gain, 60.0).detach()
    lam = rd_lambda(m.config["lambdas"], m.level(60.0))
    pixels = x.shape[-2] * x.shape[-1]

    def cost(latents):
        r = torch.round(latents - mu).float()
        return _cost(m, r, mu.float(), sigma, inv_gain, x, lam, pixels, torch.device("cpu"))

    refined = refine_residuals(m, x, ys, z, 60.0, Schedule(iters=8))
    assert cost(refined) <= cost(ys.double())
    assert torch.equal(torch.round(refined - mu), refined - mu)  # whole residuals over exact means


def test_lambda_interpolates_the_trained_levels():
    lams = [0.01, 0.04, 0.16]
    assert rd_lambda(lams, 0.0) == pytest.approx(0.01)
    assert rd_lambda(lams, 1.5) == pytest.approx(0.08)
    assert rd_lambda(lams, -1.0) == pytest.approx(0.0025)
