"""Classical codec baselines: real round trips with real sizes."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

if importlib.util.find_spec("ncodec") is None:  # not installed yet: map the source tree as the package
    _pkg = types.ModuleType("ncodec")
    _pkg.__path__ = [str(Path(__file__).resolve().parents[1])]
    sys.modules["ncodec"] = _pkg

import numpy as np
import pytest
from PIL import Image

from ncodec.eval import metrics as M  # noqa: E402
from ncodec.eval.baselines import get_image_codec, rgb_to_ycbcr_full, ycbcr_full_to_rgb  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KODAK = DATA / "images" / "kodak"
SPEECH = DATA / "audio" / "speech" / "test"


def _kodak_crop(size: int = 192) -> Image.Image:
    if not (KODAK / "kodim23.png").exists():
        pytest.skip(f"Kodak images not found in {KODAK}")
    img = Image.open(KODAK / "kodim23.png").convert("RGB")
    return img.crop((300, 150, 300 + size, 150 + size))


def _small_image() -> Image.Image:
    y, x = np.mgrid[0:64, 0:96]
    rgb = np.stack([(x * 2.5) % 256, (y * 4) % 256, ((x + y) * 1.7) % 256], -1).astype(np.uint8)
    return Image.fromarray(rgb)


@pytest.mark.parametrize("name", ["jpeg", "jpeg420", "webp", "avif", "x265"])
def test_image_codec_roundtrip(name):
    codec = get_image_codec(name)
    img = _small_image()
    low, high = codec.qualities[1], codec.qualities[-1]
    d_low, d_high = codec.encode(img, low), codec.encode(img, high)
    assert isinstance(d_high, bytes) and len(d_low) > 0
    assert len(d_high) > len(d_low)  # more quality -> more bytes
    dec = codec.decode(d_high)
    assert dec.size == img.size and dec.mode == "RGB"
    assert M.psnr_rgb(img, dec) > 30.0
    assert codec.versions()


def test_ycbcr_full_range_roundtrip():
    rgb = np.asarray(_kodak_crop())
    back = ycbcr_full_to_rgb(rgb_to_ycbcr_full(rgb))
    assert M.psnr_rgb(rgb, back) > 45.0
    grey = np.full((2, 2, 3), 77, np.uint8)
    ycc = rgb_to_ycbcr_full(grey)
    assert ycc[0, 0, 0] == 77 and ycc[1, 0, 0] == 128 and ycc[2, 0, 0] == 128  # full range, neutral chroma


def test_x265_near_lossless_at_high_quality():
    img = _kodak_crop()
    codec = get_image_codec("x265", preset="medium")
    data = codec.encode(img, 4)
    assert M.psnr_rgb(img, codec.decode(data)) > 40.0
    assert data[:4] == b"\x00\x00\x00\x01"  # Annex-B HEVC elementary stream


def test_opus_12kbps_on_speech():
    from ncodec.eval.run_audio import _task, list_audio

    files = list_audio(SPEECH, 1) if SPEECH.is_dir() else []
    if not files:
        pytest.skip(f"speech test set not found in {SPEECH}")
    row = _task(("opus", (), str(files[0]), 12, 4.0))
    assert 9.0 < row["kbps"] < 16.0  # real size incl. Ogg overhead
    assert row["si-sdr"] > 3.0
    assert 0.8 < row["stoi"] <= 1.0
    assert 2.5 < row["pesq-wb"] <= 4.7
    assert row["mel-distance"] < 1.5
    assert abs(row["delay_samples"]) < 400  # Opus pre-skip is handled by the decoder


def test_audio_alignment_recovers_delay():
    from ncodec.eval.baselines_audio import align

    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 8000)).astype(np.float32)
    delayed = np.concatenate([np.zeros((1, 1105), np.float32), x, np.zeros((1, 300), np.float32)], axis=1)
    y, lag = align(x, delayed, 16000)
    assert lag == 1105 and y.shape == x.shape
    assert np.allclose(y, x)
