"""audio-ctx-v1: audio-pd-v1's symbols and decoder under a context entropy model.

Round trips, the decoded symbols and samples are audio-pd-v1's bit for bit (pure rate saving),
thread counts give the same bytes, a golden stream, damaged payloads raise the typed stream
errors, old-model streams still decode, and an exported model loads back through the registry.

Regenerate the golden stream only with a format version bump or a new model id:
``NCODEC_REGEN_GOLDEN=1 pytest tests/test_audio_context.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import ncodec.codec as nc
from ncodec.bitstream import AudioParams, BitstreamError, read_stream, write_stream
from ncodec.codec import audio as audio_pipe
from ncodec.codec.bench_audio import synthetic_audio
from ncodec.models.latent_codecs import split_parts
from ncodec.models.registry import SHIPPED, load_model

CTX, PD, HP = "audio-ctx-v1", "audio-pd-v1", "audio-hp-v1"
GOLDEN = Path(__file__).parent / "golden"
pytestmark = pytest.mark.skipif(
    not all(SHIPPED[n].weights_path.exists() for n in (CTX, PD, HP)), reason="audio weights not shipped"
)


@pytest.fixture(scope="module")
def speechy() -> np.ndarray:
    return synthetic_audio(4.5, 16000, 1)


def _chunks(data: bytes):
    header, segments = read_stream(data)
    return header, AudioParams.from_bytes(header.params), list(segments)


def _symbols(name: str, data: bytes) -> list[torch.Tensor]:
    """Every chunk's decoded ``[ys_hat, t_h, mu]`` under model ``name`` (exact)."""
    m = load_model(name)
    _, p, segs = _chunks(data)
    return [audio_pipe.decode_chunk_latents(m, s, p, k) for k, s in enumerate(segs)]


@pytest.mark.parametrize("sr,channels,kbps", [(16000, 1, 6.0), (44100, 2, 12.0)])
def test_round_trip(sr, channels, kbps):
    x = synthetic_audio(2.7, sr, channels)
    data = nc.encode((x, sr), target_kbps=kbps, model=CTX)
    assert nc.info(data)["model"] == CTX
    y, sr_out = nc.decode(data)
    assert sr_out == sr and y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
    assert np.corrcoef(x.reshape(-1), y.reshape(-1))[0, 1] > 0.5


def test_same_symbols_and_samples_as_audio_pd_v1_fewer_bytes(speechy):
    """At one rate field both models decode to identical latents and samples; only the bytes differ."""
    a = nc.encode((speechy, 16000), quality=30, model=CTX)
    b = nc.encode((speechy, 16000), quality=30, model=PD)
    assert _chunks(a)[1] == _chunks(b)[1]
    for x, y in zip(_symbols(CTX, a), _symbols(PD, b), strict=True):
        assert torch.equal(x, y)
    assert np.array_equal(nc.decode(a)[0], nc.decode(b)[0])
    assert len(a) < len(b)


def test_threads_give_the_same_bytes(speechy):
    m = load_model(CTX)
    region = torch.from_numpy(speechy[:, :32640])[:, None]
    ys, z_hat = m.scale(m.analyze(region), 9.0)
    one = m.latent_codec(threads=1).compress(ys, z_hat)
    two = m.latent_codec(threads=2).compress(ys, z_hat)
    assert one.parts == two.parts and len(one.parts) == m.latent_codec().parts
    shape = m.unit_shape(1, ys.shape[-1])
    for threads in (1, 2):
        assert torch.equal(m.latent_codec(threads=threads).decompress(one.parts, shape), one.ys_hat)
    torch.set_num_threads(2)  # the integer networks do not depend on the BLAS thread count
    try:
        assert torch.equal(m.latent_codec().decompress(one.parts, shape), one.ys_hat)
    finally:
        torch.set_num_threads(1)


def _latent_digest(data: bytes) -> str:
    h = hashlib.sha256()
    for ext in _symbols(CTX, data):
        h.update((ext * 256).numpy().astype("<i8").tobytes())
    return h.hexdigest()


def test_golden_stream():
    stream, meta = GOLDEN / "audio_ctx_v1.ncb", GOLDEN / "audio_ctx_v1.json"
    x = synthetic_audio(2.5, 16000, 1)  # two chunks
    if os.environ.get("NCODEC_REGEN_GOLDEN") == "1":
        data = nc.encode((x, 16000), quality=40, model=CTX)
        stream.write_bytes(data)
        meta.write_text(
            json.dumps({"latents_sha256": _latent_digest(data), "bytes": len(data)}, indent=1) + "\n"
        )
    data = stream.read_bytes()
    expect = json.loads(meta.read_text())
    assert len(data) == expect["bytes"] and _latent_digest(data) == expect["latents_sha256"]
    assert nc.encode((x, 16000), quality=40, model=CTX) == data  # the encoder writes the same bytes
    y, _ = nc.decode(data)
    assert y.shape == x.shape and np.isfinite(y).all()


def _rewrite(data: bytes, fn) -> bytes:
    header, segments = read_stream(data)
    return write_stream(header, [fn(k, s) for k, s in enumerate(segments)])


@pytest.mark.parametrize(
    "damage",
    [
        lambda k, s: s[: len(s) // 2],  # truncated chunk payload
        lambda k, s: s[:3],  # a part length that overruns
        lambda k, s: bytes(b ^ 0x5A for b in s),  # garbage
        lambda k, s: s + s,  # trailing bytes in the last part
    ],
)
def test_damaged_payload_raises_stream_errors(speechy, damage):
    data = nc.encode((speechy[:, :20000], 16000), quality=40, model=CTX)
    bad = _rewrite(data, damage)
    try:
        y, _ = nc.decode(bad)
    except BitstreamError:
        return
    assert np.isfinite(y).all()  # a payload that still parses decodes to something finite


def test_wrong_part_count_is_corrupt(speechy):
    from ncodec.bitstream.errors import CorruptStreamError

    m = load_model(CTX)
    data = nc.encode((speechy[:, :20000], 16000), quality=40, model=CTX)
    _, p, segs = _chunks(data)
    parts = split_parts(segs[0], m.latent_codec().parts)
    with pytest.raises(CorruptStreamError):
        m.latent_codec().decompress(parts[:-1], m.unit_shape(1, 10))


def test_old_model_streams_still_decode(speechy):
    for name in (HP, PD):
        data = nc.encode((speechy, 16000), target_kbps=12, model=name)
        assert nc.info(data)["model"] == name
        y, _ = nc.decode(data)
        _, p, segs = _chunks(data)
        ref = np.concatenate(list(audio_pipe.decode_blocks(load_model(name), p, segs)), 1)
        np.testing.assert_array_equal(y, ref)


def test_registry_digest_and_parts():
    m = load_model(CTX)
    assert m.digest[:16].hex() == SHIPPED[CTX].digest
    assert type(m).__name__ == "AudioContextModel" and m.latent_codec().parts == 3
    assert SHIPPED[CTX].weights_path.stat().st_size < 12 << 20


def test_export_round_trip_and_near_zero_init_is_the_hyperprior(tmp_path, speechy):
    """A context model whose last layer is (near) zero, as training starts, picks the hyperprior's
    tables; an exported model loads back through the registry with the same digest and codes
    losslessly."""
    from ncodec.models.audio_context import AudioContextModel, ContextNets, int_input, net_input, pass_tables
    from ncodec.models.registry import ARCHITECTURES, load_weights

    base = load_model(PD)
    torch.manual_seed(0)
    nets = ContextNets({"pattern": "checker", "hidden": 8, "k": 3}, base.m)
    region = torch.from_numpy(speechy[:, :12800])[:, None]
    ys, z_hat = base.scale(base.analyze(region), 9.0)
    mu, t_h = base.hyper(z_hat, tuple(ys.shape))
    sym = torch.round(ys.double() - mu)
    calib = [net_input(sym.float() / 2, t_h.float()).double()] * 2
    with torch.no_grad():
        for net in nets.nets:
            net.net[-1].weight.normal_(0, 1e-6)  # exact zeros have no integer scale
    near_zero = AudioContextModel.from_base(base, load_model(HP), nets, calib, "audio-ctx-zero")
    u_fx = int_input(sym.long(), t_h)[:, : base.m]
    for p in range(2):
        assert torch.equal(pass_tables(near_zero, p, u_fx, t_h), t_h)
    ref = base.latent_codec().compress(ys, z_hat)
    with torch.no_grad():
        for net in nets.nets:
            net.net[-1].weight.normal_(0, 0.05)
    m = AudioContextModel.from_base(base, load_model(HP), nets, calib, "audio-ctx-test")
    m.save(tmp_path / "m.safetensors")
    back = load_weights(tmp_path / "m.safetensors")
    assert type(back) is ARCHITECTURES["audio-context"] and back.digest == m.digest
    coded = back.latent_codec().compress(ys, z_hat)
    assert torch.equal(coded.ys_hat, ref.ys_hat)
    shape = back.unit_shape(1, ys.shape[-1])
    assert torch.equal(back.latent_codec().decompress(coded.parts, shape), ref.ys_hat)


def test_first_pass_skips_the_zero_inputs_exactly():
    """Pass 0 runs its first layer on the hyperprior's channels only: the same integers as the full
    input with the (not yet decoded) symbols at zero."""
    from ncodec.models.audio_context import int_input

    m = load_model(CTX)
    t_h = torch.randint(0, 64, (2, m.m, 37))
    full = m.ctx_int[0](int_input(torch.zeros_like(t_h), t_h))
    assert torch.equal(m.ctx_int[0](int_input(None, t_h)), full)


def test_above_32_kbps_it_decodes_with_audio_hp_v1s_synthesis(speechy):
    """Same symbols as audio-hp-v1 at a rate field above 320 (32 kbit/s), and its decoder's samples."""
    a = nc.encode((speechy, 16000), quality=75, model=CTX)
    b = nc.encode((speechy, 16000), quality=75, model=HP)
    assert _chunks(a)[1].rate > 320 and _chunks(a)[1] == _chunks(b)[1]
    assert nc.info(a)["model"] == CTX and len(a) < len(b)
    assert np.array_equal(nc.decode(a)[0], nc.decode(b)[0])


def test_latent_beyond_the_clamp_is_refused(speechy):
    """A pass-0 symbol rewritten to 2**30 (a valid rANS escape) is refused as corrupt."""
    from ncodec import entropy
    from ncodec.bitstream.errors import CorruptStreamError
    from ncodec.models.audio_context import color_map, pass_tables
    from ncodec.models.latent_codecs import join_parts

    m = load_model(CTX)
    data = nc.encode((speechy[:, :20000], 16000), quality=40, model=CTX)
    header, p, segs = _chunks(data)
    parts = split_parts(segs[0], 3)
    shape = m.unit_shape(1, audio_pipe.check_layout(p).region(0)[2] // 160)
    z = entropy.decode(parts[0], m.z_indexes(shape.z), m.z_tables)
    _, t_h = m.hyper(torch.from_numpy(z.astype(np.int64)).view(shape.z), shape.y)
    first = color_map(m.context, m.m, shape.y[-1]) == 0
    idx = pass_tables(m, 0, None, t_h)[..., first].to(torch.int32).numpy().reshape(-1)
    sym = entropy.decode(parts[1], idx, m.y_tables)
    sym[0] = 1 << 30
    parts[1] = entropy.encode(sym, idx, m.y_tables)
    bad = write_stream(header, [join_parts(parts), *segs[1:]])
    with pytest.raises(CorruptStreamError, match="beyond"):
        nc.decode(bad)
