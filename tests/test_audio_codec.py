"""Audio codec: round trips, rate control, chunk random access, damaged streams, exactness."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

import ncodec.codec as nc
from ncodec.bitstream import BitstreamError, StreamReader
from ncodec.bitstream.container import read_stream, write_stream
from ncodec.bitstream.params import AudioParams
from ncodec.codec import audio as audio_pipe
from ncodec.codec.api import decode_audio_chunk
from ncodec.codec.bench_audio import synthetic_audio
from ncodec.codec.errors import UnsupportedInputError
from ncodec.models.registry import SHIPPED, load_model

pytestmark = pytest.mark.skipif(
    not SHIPPED["audio-hp-v1"].weights_path.exists(), reason="audio weights not shipped"
)


def _snr(ref: np.ndarray, est: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref**2) / max(np.sum((ref - est) ** 2), 1e-12)))


@pytest.fixture(scope="module")
def speechy() -> np.ndarray:
    return synthetic_audio(4.5, 16000, 1)


@pytest.mark.parametrize(
    "seconds,sr,channels",
    [(0.1, 16000, 1), (0.5, 44100, 2), (1.3, 48000, 1), (4.5, 16000, 1), (2.2, 22050, 2)],
)
def test_round_trip(seconds, sr, channels):
    x = synthetic_audio(seconds, sr, channels)
    data = nc.encode((x, sr), quality=80)
    y, sr_out = nc.decode(data)
    assert sr_out == sr and y.shape == x.shape and y.dtype == np.float32
    assert np.isfinite(y).all()
    info = nc.info(data)
    assert info["medium"] == "audio" and info["channels"] == channels and info["samples"] == x.shape[1]
    assert info["segments"] == -(-x.shape[1] // (2 * sr))
    assert info["channel_mode"] == ("mid/side" if channels == 2 else "independent")
    assert _snr(x, y) > -3.0  # a lossy but sane reconstruction (the codec is perceptual, not MSE)
    assert np.corrcoef(x.reshape(-1), y.reshape(-1))[0, 1] > 0.5


def test_rate_grows_with_quality(speechy):
    sizes = [len(nc.encode((speechy, 16000), quality=q)) for q in (0, 40, 80, 100)]
    assert sizes == sorted(sizes) and sizes[-1] > 2 * sizes[0]


@pytest.mark.parametrize("target", [8.0, 24.0])
def test_target_kbps(speechy, target):
    data = nc.encode((speechy, 16000), target_kbps=target)
    kbps = len(data) * 8 / 4.5 / 1000
    assert abs(kbps / target - 1) <= 0.10, kbps
    assert abs(nc.info(data)["kbps"] - kbps) < 1e-9


def test_chunk_random_access(speechy):
    data = nc.encode((speechy, 16000), quality=70)
    full, _ = nc.decode(data)
    r = StreamReader(io.BytesIO(data))
    assert len(r.read_index()) == 3
    for k in range(3):
        part, sr = decode_audio_chunk(data, k)
        a, b = k * 32000, min((k + 1) * 32000, speechy.shape[1])
        assert sr == 16000 and part.shape == (1, b - a)
        # identical to the sequential decode away from the crossfades at chunk edges
        np.testing.assert_allclose(part[:, 320:-320], full[:, a + 320 : b - 320], atol=1e-5)


def test_streaming_decode_file(tmp_path, speechy):
    from ncodec.codec.audio_io import read_audio, write_audio

    src = tmp_path / "in.flac"
    write_audio(src, np.stack([speechy[0], 0.5 * speechy[0]]), 16000)
    nc.encode_file(src, tmp_path / "x.ncb", target_kbps=24)
    for ext in (".wav", ".flac"):
        rep = nc.decode_file(tmp_path / "x.ncb", tmp_path / f"out{ext}")
        y, sr = read_audio(tmp_path / f"out{ext}")
        assert rep.medium == "audio" and sr == 16000 and y.shape == (2, speechy.shape[1])


def test_damaged_streams(speechy):
    data = nc.encode((speechy[:, :24000], 16000), quality=50)
    for cut in (5, 30, len(data) // 2, len(data) - 1):
        with pytest.raises(BitstreamError):
            nc.decode(data[:cut])
    bad = bytearray(data)
    bad[len(data) // 2] ^= 0x40
    with pytest.raises(BitstreamError):
        nc.decode(bytes(bad))
    # a well-formed container whose chunk payload is garbage (valid CRC) must still fail cleanly
    header, payloads = read_stream(data)
    rng = np.random.default_rng(1)
    junk = write_stream(header, [rng.integers(0, 256, len(p), dtype=np.uint8).tobytes() for p in payloads])
    with pytest.raises(BitstreamError):
        nc.decode(junk)
    # header that implies more chunks than the stream holds
    p = AudioParams.from_bytes(header.params)
    header.params = AudioParams(p.sample_rate, 1, 0, p.rate, p.samples * 3, p.chunk).to_bytes()
    with pytest.raises(BitstreamError):
        nc.decode(write_stream(header, payloads))


def test_empty_and_bad_input():
    with pytest.raises(UnsupportedInputError):
        nc.encode((np.zeros((1, 0), np.float32), 16000))
    with pytest.raises(UnsupportedInputError):
        nc.encode((np.zeros((1, 100), np.float32), 1000))
    with pytest.raises(UnsupportedInputError):
        nc.encode((np.full((1, 100), np.nan, np.float32), 16000))
    with pytest.raises(ValueError):
        nc.encode((np.zeros((1, 100), np.float32), 16000), quality=50, target_kbps=10)


def test_symbols_bit_exact_across_threads(speechy):
    data = nc.encode((speechy, 16000), quality=60, model="audio-hp-v1")  # decoded with its model below
    header, payloads = read_stream(data)
    params = AudioParams.from_bytes(header.params)
    m = load_model("audio-hp-v1")
    results = []
    old = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            results.append([audio_pipe.decode_chunk_latents(m, p, params, k) for k, p in enumerate(payloads)])
    finally:
        torch.set_num_threads(old)
    for a, b in zip(*results):
        assert torch.equal(a, b)  # dequantised latents: symbols and means, bit for bit


def test_weights_loader_rejects_wrong_files(tmp_path):
    from ncodec.models.audio_model import AudioModel, ModelFileError

    with pytest.raises(ModelFileError):
        AudioModel.load(SHIPPED["image-hp-v1"].weights_path)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelFileError):
        AudioModel.load(junk)


def test_cli_round_trip(tmp_path):
    from ncodec.codec.audio_io import read_audio, write_audio
    from ncodec.codec.cli import main

    x = synthetic_audio(1.0, 44100, 2)
    write_audio(tmp_path / "a.wav", x, 44100)
    assert (
        main(["encode", str(tmp_path / "a.wav"), "-o", str(tmp_path / "a.ncb"), "--target-kbps", "32"]) == 0
    )
    assert main(["info", str(tmp_path / "a.ncb")]) == 0
    assert main(["decode", str(tmp_path / "a.ncb"), "-o", str(tmp_path / "b.flac")]) == 0
    y, sr = read_audio(tmp_path / "b.flac")
    assert sr == 44100 and y.shape == x.shape
    assert main(["decode", str(tmp_path / "a.ncb"), "-o", str(tmp_path / "b.png")]) == 5  # output side
