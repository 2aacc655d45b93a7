"""The Python API's inputs: paths, PIL images, numpy arrays, torch tensors (single and batched),
typed decode results, and messages that name no CLI flag."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ncodec.codec as nc

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "urban100_img012_crop.png"


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return np.asarray(Image.open(SAMPLE).convert("RGB"))[:64, :64].copy()


@pytest.fixture(scope="module")
def ref(pixels) -> bytes:
    return nc.encode(Image.fromarray(pixels), quality=40)


def test_arrays_and_tensors_code_like_the_image(pixels, ref):
    assert nc.encode(pixels, quality=40) == ref
    assert nc.encode(pixels.astype(np.float32) / 255, quality=40) == ref  # float HWC in 0..1
    chw = torch.from_numpy(pixels).permute(2, 0, 1)
    assert nc.encode(chw, quality=40) == ref  # uint8 [3, H, W]
    assert nc.encode(chw.float() / 255, quality=40) == ref  # float [3, H, W]


def test_batches_give_a_list(pixels, ref):
    other = np.ascontiguousarray(pixels[::-1])
    batch = torch.from_numpy(np.stack([pixels, other])).permute(0, 3, 1, 2).float() / 255
    out = nc.encode(batch, quality=40)
    assert isinstance(out, list) and len(out) == 2
    assert out[0] == ref and out[1] == nc.encode(other, quality=40)


def test_paths(tmp_path, pixels, ref):
    Image.fromarray(pixels).save(tmp_path / "a.png")
    assert nc.encode(tmp_path / "a.png", quality=40) == ref
    assert nc.encode(str(tmp_path / "a.png"), quality=40) == ref
    (tmp_path / "a.ncb").write_bytes(ref)
    img = nc.decode(tmp_path / "a.ncb")
    assert isinstance(img, Image.Image) and img.size == (64, 64) and img.mode == "RGB"


def test_bad_inputs(pixels):
    with pytest.raises(nc.UnsupportedInputError, match=r"\[3, H, W\]"):
        nc.encode(torch.zeros(5, 8, 8))  # five channels
    with pytest.raises(nc.UnsupportedInputError, match="finite"):
        nc.encode(np.full((8, 8, 3), np.nan, dtype=np.float32))
    with pytest.raises(nc.UnsupportedInputError):
        nc.encode(pixels.astype(np.int64))


def test_messages_name_no_cli_flag(tmp_path, ref):
    (tmp_path / "a.ncb").write_bytes(ref)
    (tmp_path / "a.png").write_bytes(b"")
    errors = []
    for call in (
        lambda: nc.decode_file(tmp_path / "a.ncb", tmp_path / "a.png"),
        lambda: nc.encode_file(SAMPLE, tmp_path / "a.ncb"),
        lambda: nc.encode(np.zeros((8, 8, 3), np.uint8), quality=40, target_bpp=1),
        lambda: nc.encode(np.zeros((8, 8, 3), np.uint8), target_kbps=1),
        lambda: nc.encode_file(SAMPLE, tmp_path / "b.png"),
        lambda: nc.encode(np.zeros((8, 8, 3), np.uint8), tile=100),
    ):
        with pytest.raises((ValueError, OSError)) as e:
            call()
        errors.append(str(e.value))
    assert all("--" not in m for m in errors), errors


def test_decode_types(tmp_path):
    from ncodec.codec.audio_io import read_audio

    x, rate = read_audio(DATA / "librispeech_103-1240-0000_4s.flac")
    data = nc.encode((x[:, :16000], rate), quality=20)
    samples, sr = nc.decode(data)
    assert isinstance(samples, np.ndarray) and samples.dtype == np.float32 and samples.shape == (1, 16000)
    assert sr == rate == 16000
