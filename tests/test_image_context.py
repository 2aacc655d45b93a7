"""The context entropy model (issue 22): exact integer networks and its multi-part latent codec."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ncodec.bitstream.errors import BitstreamError
from ncodec.models.image_context import (
    FX,
    ImageContextModel,
    IntPassNet,
    PassNet,
    pass_inputs,
    passes,
    quantize_pass_net,
)
from ncodec.models.latent_codecs.base import UnitShape, join_parts, split_parts

WEIGHTS = Path(__file__).resolve().parents[1] / "models" / "weights" / "image-ctx-v1.safetensors"


@pytest.fixture(scope="module")
def model() -> ImageContextModel:
    torch.set_num_threads(1)
    return ImageContextModel.load(WEIGHTS)


@pytest.fixture(scope="module")
def coded(model):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 64, 128, generator=g)
    x = torch.nn.functional.avg_pool2d(x, 5, 1, 2)  # some spatial structure
    ys, z_hat = model.analyze(x, 60.0)
    c = model.latent_codec(threads=1).compress(ys, z_hat)
    return ys, z_hat, c


def test_shipped_weights_load(model):
    assert model.KIND == "image-context" and model.model_id == "image-ctx-v1"
    assert len(model.ctx_int) == sum(1 for g, p in passes(model.context) if g > 0 or p == 1)
    assert model.latent_codec().parts == 1 + len(passes(model.context))
    assert len(model.digest) == 32


def test_round_trip_exact(model, coded):
    ys, z_hat, c = coded
    shape = UnitShape(tuple(ys.shape), tuple(z_hat.shape))
    assert len(c.parts) == model.latent_codec().parts
    dec = model.latent_codec(threads=1).decompress(split_parts(c.payload, len(c.parts)), shape)
    assert dec.dtype == torch.float64 and torch.equal(dec, c.ys_hat)
    # ys_hat is a multiple of 2**-8 and within half a step of ys wherever the residual is not clamped
    assert torch.equal(dec * FX, torch.round(dec * FX))
    assert (dec - ys.double()).abs().max() <= 0.5 + 1e-6


def test_decode_same_with_threads(model, coded):
    ys, z_hat, c = coded
    shape = UnitShape(tuple(ys.shape), tuple(z_hat.shape))
    one = model.latent_codec(threads=1).decompress(c.parts, shape)
    two = model.latent_codec(threads=2).decompress(c.parts, shape)
    assert torch.equal(one, two)
    again = model.latent_codec(threads=2).compress(ys, z_hat)
    assert again.parts == c.parts


def test_damaged_parts_raise(model, coded):
    ys, z_hat, c = coded
    shape = UnitShape(tuple(ys.shape), tuple(z_hat.shape))
    codec = model.latent_codec(threads=1)
    with pytest.raises(BitstreamError):
        codec.decompress(c.parts[:-1], shape)
    with pytest.raises(BitstreamError):
        split_parts(join_parts(c.parts)[:3], len(c.parts))
    longest = max(range(1, len(c.parts)), key=lambda i: len(c.parts[i]))
    for cut in (0, 1, len(c.parts[longest]) // 2):
        bad = list(c.parts)
        bad[longest] = bad[longest][:cut]
        with pytest.raises(BitstreamError):
            codec.decompress(bad, shape)


def test_integer_net_matches_float_twin():
    torch.manual_seed(1)
    c, c_prev = 4, 6
    net = PassNet(c, c_prev, True, 16, 5, 3)
    torch.nn.init.normal_(net.out.weight, std=0.1)
    torch.nn.init.normal_(net.out.bias, std=0.1)
    u_a = torch.randn(2, c, 8, 8) * 1.5
    u_prev = torch.randn(2, c_prev, 8, 8) * 1.5
    t_h = torch.randint(0, 64, (2, c, 8, 8)).float()
    u_a, u_prev = torch.round(u_a * FX) / FX, torch.round(u_prev * FX) / FX
    sp, ch, hy = pass_inputs(u_a, u_prev, t_h)
    int_net = quantize_pass_net(net, sp, ch, hy)
    with torch.no_grad():
        dm, dt = net(sp, ch, hy)
    fx = lambda v: torch.round(v.double() * FX).long()  # noqa: E731
    dm_fx, dt_fx = int_net(fx(sp), fx(ch), fx(hy))
    scale = float(max(dm.abs().max(), dt.abs().max()))
    assert (dm_fx / FX - dm).abs().max() < 0.01 * scale + 2 / FX
    assert (dt_fx / FX - dt).abs().max() < 0.01 * scale + 2 / FX
    # the stored form round-trips
    t = int_net.state_tensors("x")
    again = IntPassNet.from_state_tensors({k: v.clone() for k, v in t.items()}, "x", c, c_prev, True)
    assert all(torch.equal(a, b) for a, b in zip(again(fx(sp), fx(ch), fx(hy)), (dm_fx, dt_fx)))


def _checkerboard_variant(model: ImageContextModel) -> ImageContextModel:
    """The shipped transforms with small random checkerboard + channel context networks (the
    shipped model is channel-only), quantised on the latents of a random image."""
    import copy

    from ncodec.models.image_context import ContextNets, log_scale_table, rate_forward

    torch.manual_seed(3)
    cfg = {"slices": [32, 64, 96], "checkerboard": True, "hidden": 8, "k_sp": 5, "k_ch": 3}
    nets = ContextNets(cfg)
    for net in nets.nets.values():
        torch.nn.init.normal_(net.out.weight, std=0.05)
    x = torch.nn.functional.avg_pool2d(
        torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(5)), 3, 1, 1
    )
    ys, z_hat = model.analyze(x, 40.0)
    mu_fx, t_h = model.hyper_fx(z_hat)
    col: dict = {}
    with torch.no_grad():
        rate_forward(
            nets, ys.float(), mu_fx.float() / FX, t_h.float(), log_scale_table(model), ste=False, collect=col
        )
    out = copy.copy(model)
    out.config = dict(model.config, context=cfg)
    out.ctx_int = {k: quantize_pass_net(nets.nets[f"g{k[0]}p{k[1]}"], *v) for k, v in col.items()}
    return out


def test_checkerboard_round_trip(model, coded):
    cb = _checkerboard_variant(model)
    ys, z_hat, _ = coded
    shape = UnitShape(tuple(ys.shape), tuple(z_hat.shape))
    c = cb.latent_codec(threads=1).compress(ys, z_hat)
    assert len(c.parts) == 1 + 6
    assert torch.equal(cb.latent_codec(threads=2).decompress(c.parts, shape), c.ys_hat)
    assert (c.ys_hat - ys.double()).abs().max() <= 0.5 + 1e-6


def test_widen_keeps_the_function(tmp_path):
    from ncodec.models.image_context import ContextNets
    from ncodec.models.train_context import load_nets, save_checkpoint, widen

    torch.manual_seed(0)
    cfg = {"slices": [4, 4, 8], "checkerboard": True, "hidden": 8, "k_sp": 3, "k_ch": 3}
    nets = ContextNets(cfg)
    for net in nets.nets.values():  # a trained-looking last layer (it starts at zero)
        torch.nn.init.normal_(net.out.weight, std=0.1)
    save_checkpoint(
        tmp_path / "a.safetensors", nets, torch.optim.Adam(nets.parameters()), {"cfg": cfg, "step": 7}
    )
    meta = widen(tmp_path / "a.safetensors", tmp_path / "b.safetensors", 12)
    assert meta["cfg"]["hidden"] == 12 and meta["step"] == 7
    wide = load_nets(tmp_path / "b.safetensors")
    for key, net in nets.nets.items():
        sp = torch.randn(2, 2 * net.hy.in_channels, 6, 6) if net.sp is not None else None
        ch = torch.randn(2, net.ch.in_channels, 6, 6) if net.ch is not None else None
        hy = torch.randn(2, net.hy.in_channels, 6, 6)
        with torch.no_grad():
            for a, b in zip(net(sp, ch, hy), wide.nets[key](sp, ch, hy)):
                assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError):
        widen(tmp_path / "a.safetensors", tmp_path / "c.safetensors", 8)
