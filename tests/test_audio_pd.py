"""audio-pd-v1: audio-hp-v1's bitstream with a perceptually trained decoder.

Round trips, streaming decode equals whole decode, the payload is audio-hp-v1's (same symbols,
same bytes), old-model streams still decode with their own model, and the shipped digest."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ncodec.codec as nc
from ncodec.bitstream import AudioParams, read_stream
from ncodec.codec import audio as audio_pipe
from ncodec.codec.bench_audio import synthetic_audio
from ncodec.models.registry import SHIPPED, load_model

PD, HP = "audio-pd-v1", "audio-hp-v1"
pytestmark = pytest.mark.skipif(
    not (SHIPPED[PD].weights_path.exists() and SHIPPED[HP].weights_path.exists()),
    reason="audio weights not shipped",
)


@pytest.fixture(scope="module")
def speechy() -> np.ndarray:
    return synthetic_audio(4.5, 16000, 1)


def _model_id(data: bytes) -> str:
    return nc.info(data)["model"]


@pytest.mark.parametrize("sr,channels,kbps", [(16000, 1, 6.0), (16000, 1, 12.0), (44100, 2, 24.0)])
def test_round_trip(sr, channels, kbps):
    x = synthetic_audio(2.7, sr, channels)
    data = nc.encode((x, sr), target_kbps=kbps, model=PD)
    assert _model_id(data) == PD
    y, sr_out = nc.decode(data)
    assert sr_out == sr and y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
    assert np.corrcoef(x.reshape(-1), y.reshape(-1))[0, 1] > 0.5


def test_streaming_decode_equals_whole_decode(speechy, tmp_path):
    data = nc.encode((speechy, 16000), target_kbps=12, model=PD)
    whole, _ = nc.decode(data)
    m = load_model(PD)
    header, segments = read_stream(data)
    p = AudioParams.from_bytes(header.params)
    blocks = list(audio_pipe.decode_blocks(m, p, iter(segments)))  # segment by segment
    assert len(blocks) > 1
    np.testing.assert_array_equal(np.concatenate(blocks, axis=1), whole)
    # through the file decoder too
    (tmp_path / "x.ncb").write_bytes(data)
    nc.decode_file(tmp_path / "x.ncb", tmp_path / "y.wav")
    from ncodec.codec.audio_io import read_audio

    y, _ = read_audio(tmp_path / "y.wav")
    assert np.abs(y - whole).max() <= 2 / 32768


def test_payload_is_audio_hp_v1s(speechy):
    """The new model changes the decoder only: the same chunk payloads and exact latents."""
    a = nc.encode((speechy, 16000), quality=40, model=PD)
    b = nc.encode((speechy, 16000), quality=40, model=HP)
    (ha, sa), (hb, sb) = read_stream(a), read_stream(b)
    assert list(sa) == list(sb) and ha.params == hb.params
    pd, hp = load_model(PD), load_model(HP)
    p = AudioParams.from_bytes(ha.params)
    for k, payload in enumerate(sa):
        ext = audio_pipe.decode_chunk_latents(pd, payload, p, k)
        ys = audio_pipe.decode_chunk_latents(hp, payload, p, k)
        assert ext.shape[1] == 3 * ys.shape[1]
        assert torch.equal(ext[:, : ys.shape[1]], ys)


def test_old_model_streams_still_decode(speechy):
    data = nc.encode((speechy, 16000), target_kbps=12, model=HP)
    assert _model_id(data) == HP
    y, sr = nc.decode(data)
    m = load_model(HP)
    header, segments = read_stream(data)
    ref = np.concatenate(
        list(audio_pipe.decode_blocks(m, AudioParams.from_bytes(header.params), segments)), 1
    )
    np.testing.assert_array_equal(y, ref)


def test_decoders_differ_and_pd_is_closer_in_mel(speechy):
    from ncodec.eval.metrics import mel_distance

    y = {}
    for name in (PD, HP):
        y[name], _ = nc.decode(nc.encode((speechy, 16000), target_kbps=6, model=name))
    assert not np.array_equal(y[PD], y[HP])
    assert mel_distance(speechy, y[PD], 16000) < mel_distance(speechy, y[HP], 16000)


def test_registry_digest():
    m = load_model(PD)
    assert m.digest[:16].hex() == SHIPPED[PD].digest
    assert type(m).__name__ == "AudioPDModel" and m.latent_codec().parts == 2


def test_weights_file_is_small():
    assert SHIPPED[PD].weights_path.stat().st_size < 8 << 20


def test_chunk_random_access(speechy):
    from ncodec.codec.api import decode_audio_chunk

    data = nc.encode((speechy, 16000), quality=70, model=PD)
    full, _ = nc.decode(data)
    for k in range(3):
        part, _ = decode_audio_chunk(data, k)
        a, b = k * 32000, min((k + 1) * 32000, speechy.shape[1])
        np.testing.assert_allclose(part[:, 320:-320], full[:, a + 320 : b - 320], atol=1e-5)


def test_export_round_trip(tmp_path, speechy):
    """export (audio-hp-v1 + a synthesis) -> weights file -> loaded through the registry -> decodes."""
    from ncodec.models.audio_pd import AudioPDModel, export
    from ncodec.models.registry import ARCHITECTURES, load_weights

    base = load_model(HP)
    torch.manual_seed(0)
    tmp = AudioPDModel(dict(base.config, enh_c=16, enh_dil=[1]), "t")
    synth = {k: v for k, v in tmp.state_dict().items() if k.startswith("enh.")}
    synth["enh.out.weight"] = torch.randn_like(synth["enh.out.weight"]) * 1e-3
    exported = export(base, synth, "audio-pd-test", 16, [1])
    exported.save(tmp_path / "m.safetensors")
    m = load_weights(tmp_path / "m.safetensors")
    assert type(m) is ARCHITECTURES["audio-perceptual"] and m.digest == exported.digest
    codec = m.latent_codec()
    region = torch.from_numpy(speechy[:, :6400])[:, None]
    ys, z_hat = m.scale(m.analyze(region), 12.0)
    coded = codec.compress(ys, z_hat)
    ext = codec.decompress(coded.parts, m.unit_shape(1, ys.shape[-1]))
    assert torch.equal(ext, coded.ys_hat)
    a, b = m.decode_latents(ext, 12.0), base.decode_latents(ext[:, : base.m], 12.0)
    assert a.shape == b.shape and not torch.equal(a, b)


def test_encoder_reconstruction_is_the_decode(speechy):
    from ncodec.codec.audio import AudioCodec

    m, codec = load_model(PD), AudioCodec()
    enc = codec.analyse(m, (speechy, 16000)).encode(120)
    y, sr = codec.decode(m, enc.params, enc.payloads)
    assert sr == 16000 and np.array_equal(y, enc.reconstruct()[0])


def test_high_rates_are_written_for_audio_hp_v1s_decoder(speechy):
    """Above 32 kbit/s (nominal) audio-hp-v1 decodes better and the payload is the same bytes, so
    audio-pd-v1 writes those streams under audio-hp-v1's name; below, under its own."""
    x, sr = speechy, 16000
    low = nc.encode((x, sr), quality=10, model=PD)  # 7.6 kbit/s nominal
    high = nc.encode((x, sr), quality=75, model=PD)  # 35.4 kbit/s
    assert read_stream(low)[0].model_id == "audio-pd-v1"
    assert read_stream(high)[0].model_id == "audio-hp-v1"
    assert AudioParams.from_bytes(read_stream(high)[0].params).rate > 320
    assert high == nc.encode((x, sr), quality=75, model=HP)
