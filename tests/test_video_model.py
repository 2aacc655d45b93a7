"""Temporal entropy model for P-frames (issue 17): exact round trips, thread independence, the
integer network against its float twin, damaged payloads and the shipped weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ncodec.bitstream.errors import BitstreamError
from ncodec.models.image_model import ImageModel
from ncodec.models.latent_codecs.base import UnitShape
from ncodec.models.latent_codecs.hyperprior import HyperpriorCodec
from ncodec.models.latent_codecs.temporal import MODE_INTRA, MODE_TEMPORAL, TemporalCodec
from ncodec.models.registry import SHIPPED, WEIGHTS_DIR
from ncodec.models.video_model import (
    FX,
    KIND,
    FrameRef,
    TemporalContext,
    VideoTemporalModel,
    gain_ratio_q30,
    hyper_fx,
    rescale_fx,
)

WEIGHTS = WEIGHTS_DIR / "video-st-v1.safetensors"


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def models() -> tuple[VideoTemporalModel, ImageModel]:
    image = ImageModel.load(SHIPPED["image-hp-v1"].weights_path)
    return VideoTemporalModel.load(WEIGHTS), image


def frame(
    image: ImageModel, seed: int, h: int = 8, w: int = 12, base: torch.Tensor | None = None, q: float = 50
):
    """Scaled latents of a small frame (random, or ``base`` moved by one latent pixel plus noise),
    its hyper-latents and shape."""
    g = torch.Generator().manual_seed(seed)
    if base is None:
        ys = torch.randn(1, image.config["m"], h, w, generator=g) * 4
    else:
        ys = torch.roll(base, 1, dims=3) + 0.3 * torch.randn(base.shape, generator=g)
    with torch.no_grad():
        _, z = image.scale_latents(ys / image._gain(image.log_gain, q), q)
    return ys, z, UnitShape(tuple(ys.shape), tuple(z.shape))


def test_shipped_weights_load_and_match_the_image_model(models):
    model, image = models
    assert model.model_id == "video-st-v1" and model.image_model_id == "image-hp-v1"
    model.check_image_model(image)
    assert len(model.digest) == 32 and KIND == "video-temporal"
    assert model.float_state is not None and model.predicts_z


def test_round_trip_exact_across_qualities_and_threads(models):
    model, image = models
    ys0, z0, shape = frame(image, 0)
    intra = TemporalCodec(model, image, threads=1)
    c0 = intra.compress(ys0, z0)  # no context: intra mode, the hyperprior codec's payloads
    hp = HyperpriorCodec(image).compress(ys0, z0)
    assert c0.parts[0][0] == c0.parts[1][0] == MODE_INTRA
    assert [c0.parts[0][1:], c0.parts[1][1:]] == hp.parts
    assert torch.equal(intra.decompress(c0.parts, shape), c0.ys_hat)
    refs = [(c0.ys_hat, 60.0)]
    ys = ys0
    for i, q in enumerate((45.5, 45.5)):  # the quality changes from the first frame (60)
        ys, z, shape = frame(image, i + 1, base=ys, q=q)
        ctx = TemporalContext(q, FrameRef(*refs[0]), FrameRef(*refs[1]) if len(refs) > 1 else None)
        for skip, mode in ((0.0, "temporal"), (0.3, "temporal"), (0.0, "auto")):
            coded = TemporalCodec(model, image, threads=1, skip=skip, mode=mode).compress(ys, z, ctx)
            assert mode == "auto" or coded.parts[0][0] == coded.parts[1][0] == MODE_TEMPORAL
            assert torch.all(torch.round(coded.ys_hat * FX) == coded.ys_hat * FX)  # multiples of 2**-8
            for threads in (1, 2):
                out = TemporalCodec(model, image, threads=threads).decompress(coded.parts, shape, ctx)
                assert out.dtype == torch.float64 and torch.equal(out, coded.ys_hat)
            if coded.parts[1][0] == MODE_TEMPORAL:  # another reference decodes to something else
                other = TemporalContext(q, FrameRef(refs[0][0] + 1.0, refs[0][1]))
                try:
                    out = TemporalCodec(model, image).decompress(coded.parts, shape, other)
                    assert not torch.equal(out, coded.ys_hat)
                except BitstreamError:  # or the rANS payload no longer adds up
                    pass
        refs = [(coded.ys_hat, q)] + refs[:1]


def test_auto_mode_never_costs_more_than_intra(models):
    model, image = models
    ys0, z0, _ = frame(image, 11)
    prev = TemporalCodec(model, image).compress(ys0, z0).ys_hat
    for seed, base in ((12, ys0), (13, None)):  # a moved frame, an unrelated one (a scene cut)
        ys, z, _ = frame(image, seed, base=base)
        sizes = {
            m: len(TemporalCodec(model, image, mode=m).compress(ys, z, prev).parts[1])
            for m in ("auto", "temporal", "intra")
        }
        assert sizes["auto"] <= min(sizes["temporal"], sizes["intra"]) + 8


def test_bare_tensor_context_and_make_context(models):
    model, image = models
    ys0, z0, shape = frame(image, 3)
    codec = TemporalCodec(model, image)
    prev = codec.compress(ys0, z0).ys_hat
    ys, z, shape = frame(image, 4, base=ys0)
    a = codec.compress(ys, z, prev)
    b = codec.compress(ys, z, codec.make_context(0.0, [(prev, 0.0)]))  # a bare tensor: quality unknown
    assert a.parts == b.parts
    assert torch.equal(codec.decompress(a.parts, shape, prev), a.ys_hat)


def test_integer_network_close_to_float_twin(models):
    model, image = models
    net = model.float_net()
    ys0, z0, _ = frame(image, 5, 16, 16)
    ys, z, _ = frame(image, 6, base=ys0)
    mu0, s0, idx0 = hyper_fx(image, z)
    p1 = torch.round(ys0.double() * FX).to(torch.int64)
    p2 = torch.round(torch.roll(ys0, -1, 3).double() * FX).to(torch.int64)
    mu_i, idx_i = model.int_net(p1, p2, mu0, s0, idx0, len(image.y_tables))
    with torch.no_grad():
        mu_f, ds = net(*(v.float() / FX for v in (p1, p2, mu0, s0)))
    err = (mu_i.double() / FX - mu_f.double()).abs()
    assert float(err.max()) < 0.02 + 2e-3 * float(mu_f.abs().max())
    idx_f = (idx0 + torch.round(ds)).clamp(0, len(image.y_tables) - 1)
    d = (idx_i - idx_f).abs()
    assert int(d.max()) <= 1 and float((d > 0).double().mean()) < 0.01


def test_quality_rescaling_is_integer_and_close_to_the_gains(models):
    model, image = models
    for qa, qb in ((10.0, 80.0), (80.0, 10.0), (0.0, 100.0), (33.3, 33.4)):
        ratio = gain_ratio_q30(model.lg, model.exp_table, model.lo_level, qa, qb)
        assert ratio.dtype == torch.int64
        want = (image._gain(image.log_gain, qb) / image._gain(image.log_gain, qa)).flatten().double()
        got = ratio[0].double() * torch.exp2(ratio[1].double() - 30)
        assert torch.allclose(got, want, rtol=1e-4)
    x = (
        torch.tensor([[-(1 << 28), -3, 0, 5, 1 << 28]], dtype=torch.int64)
        .view(1, 1, 1, 5)
        .expand(1, 192, 1, 5)
    )
    ratio = gain_ratio_q30(model.lg, model.exp_table, model.lo_level, 0.0, 100.0)
    assert rescale_fx(x, ratio).dtype == torch.int64


def test_damaged_payloads_raise_bitstream_errors(models):
    model, image = models
    ys0, z0, shape = frame(image, 7)
    codec = TemporalCodec(model, image, mode="temporal")
    prev = codec.compress(ys0, z0).ys_hat
    ys, z, shape = frame(image, 8, base=ys0)
    coded = codec.compress(ys, z, prev)
    zp, yp = coded.parts
    bad = [
        [zp[:1] + bytes(len(zp) - 1), yp],
        [zp, yp[: len(yp) // 2]],
        [zp[:3], yp],
        [zp],
        [b"", b""],
        [zp, bytes(len(yp))],
        [zp, b"\x07" + yp[1:]],
    ]
    rng = np.random.default_rng(0)
    bad.append([zp, rng.integers(0, 256, len(yp), dtype=np.uint8).tobytes()])
    for parts in bad:
        try:
            out = codec.decompress(parts, shape, prev)
        except BitstreamError:
            continue
        # a damaged stream that still parses must at least not crash or hang
        assert out.shape == shape.y
    with pytest.raises(BitstreamError):
        codec.decompress([zp, yp[:2]], shape, prev)
    with pytest.raises(BitstreamError):
        codec.decompress([zp], shape, prev)
    with pytest.raises(BitstreamError):  # an unknown prediction mode
        codec.decompress([zp, b"\x07" + yp[1:]], shape, prev)
    with pytest.raises(BitstreamError):  # an unknown hyper-latent prediction mode
        codec.decompress([b"\x05" + zp[1:], yp], shape, prev)
    with pytest.raises(BitstreamError):  # a temporal frame without its reference
        codec.decompress([zp, bytes([MODE_TEMPORAL]) + yp[1:]], shape, None)
    with pytest.raises(BitstreamError):  # temporal hyper-latents without their reference
        codec.decompress([bytes([MODE_TEMPORAL]) + zp[1:], bytes([MODE_INTRA]) + yp[1:]], shape, None)
    with pytest.raises(BitstreamError):  # a reference of another size
        codec.decompress([zp, bytes([MODE_TEMPORAL]) + yp[1:]], shape, prev[..., :4])
