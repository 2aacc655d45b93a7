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
from ncodec.models.latent_opt import Schedule, _cost, rd_lambda, refine_context, refine_residuals
from ncodec.models.registry import load_model

SAMPLE = Path(__file__).parent / "data" / "bsds500_100007_crop.png"


@pytest.fixture(scope="module")
def img():
    return Image.open(SAMPLE).convert("RGB").crop((0, 0, 64, 64))


@pytest.mark.parametrize("model", ["image-ctx-v2", "image-hp-v1"])
def test_effort_streams_decode_and_are_deterministic(img, model):
    a = nc.encode(img, quality=40, effort=1, model=model)
    assert a == nc.encode(img, quality=40, effort=1, model=model)
    assert a != nc.encode(img, quality=40, model=model)  # the optimisation did change symbols
    out = nc.decode(a)  # the ordinary decoder
    assert out.size == img.size
    assert nc.info(a)["quality"] == 40.0
    assert nc.info(a)["model"] == model
    with pytest.raises(InvalidArgumentError):
        nc.encode(img, quality=40, effort=9, model=model)


def test_context_refinement_codes_its_choice_and_lowers_the_rd_cost(img):
    """With a context model the symbols written are those the optimiser scored (rounded around the
    context model's own means), and their RD cost, as coded, is below the single pass's."""
    m = load_model("image-ctx-v2")
    codec = m.latent_codec()
    rgb = np.asarray(img)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    ys, z = m.scale_latents(m.analysis(_to_tensor(rgb, "cpu")), 60.0)
    prior = codec.prior(z, tuple(ys.shape))
    lam = rd_lambda(m.config["lambdas"], m.level(60.0))

    def coded_cost(latents):
        coded = codec.compress_latents(latents, prior)
        bits = 8 * sum(len(p) for p in coded.parts)
        x_hat = m.synthesize(coded.ys_hat, 60.0)[..., :64, :64]
        return bits / 64**2 + lam * 255**2 * float(torch.mean((x_hat - x) ** 2)), coded

    refined = refine_context(m, codec, x, ys, prior, 60.0, Schedule(iters=8))
    cost, coded = coded_cost(refined)
    assert torch.equal(coded.ys_hat, refined)  # compress_latents re-rounds nothing
    assert cost < coded_cost(ys)[0]
    assert torch.equal(refined, refine_context(m, codec, x, ys, prior, 60.0, Schedule(iters=8)))


def test_relaxed_context_networks_follow_the_exact_ones(img):
    """The float twin the optimiser differentiates gives the exact networks' outputs to within
    their roundings (a few fixed-point units of 2**-8)."""
    m = load_model("image-ctx-v2")
    codec = m.latent_codec()
    rgb = np.asarray(img)
    ys, z = m.scale_latents(m.analysis(_to_tensor(rgb, "cpu")), 60.0)
    mu_h, t_h = codec.prior(z, tuple(ys.shape))
    sym, tab, _ = codec.quantize_latents(ys, (mu_h, t_h))
    u_fx = (sym * m.ctx_inv[tab] + 128) >> 8
    (g, p), net = max(m.ctx_int.items())  # the last slice: conditioned on all the others
    c0 = sum(m.context["slices"][:g])
    c1 = c0 + m.context["slices"][g]
    ch = torch.cat([u_fx[:, :c0], u_fx[:, :c0].abs()], 1)
    hy = t_h[:, c0:c1] * 16
    dm, dt = net(None, ch, hy)
    dm_f, dt_f = net.relaxed(None, ch.float(), hy.float())
    assert float((dm_f - dm).abs().max()) <= 4 and float((dt_f - dt).abs().max()) <= 4


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
