"""The Pillow plugin: ``import ncodec.codec.pillow`` makes Image.open read .ncb image streams and
img.save write them."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ncodec.codec as nc
import ncodec.codec.pillow  # noqa: F401  (registers the format)

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "urban100_img012_crop.png"


@pytest.fixture(scope="module")
def img() -> Image.Image:
    return Image.open(SAMPLE).convert("RGB").crop((0, 0, 64, 48))


def test_save_and_open_by_name(tmp_path, img):
    img.save(tmp_path / "x.ncb", quality=60)
    assert (tmp_path / "x.ncb").read_bytes() == nc.encode(img, quality=60)
    with Image.open(tmp_path / "x.ncb") as im:
        assert im.format == "NCODEC" and im.mode == "RGB" and im.size == (64, 48)
        assert im.info["quality"] == 60.0 and im.info["ncodec_model"] == "image-ctx-v2"  # the default
        pixels = np.asarray(im)
    assert np.array_equal(pixels, np.asarray(nc.decode(nc.encode(img, quality=60))))


def test_file_objects_targets_and_modes(img):
    for mode in ("L", "RGBA"):
        b = io.BytesIO()
        img.convert(mode).save(b, format="NCODEC", target_bpp=1.0)
        assert 8 * len(b.getvalue()) / (64 * 48) <= 1.0
        b.seek(0)
        im = Image.open(b)
        assert im.mode == mode and im.convert("RGB").size == (64, 48)


def test_open_reads_the_header_only_and_refuses_audio(tmp_path, img):
    img.save(tmp_path / "x.ncb", quality=30)
    code = (
        "import sys\nimport ncodec.codec.pillow\nfrom PIL import Image\n"
        f"im = Image.open({str(tmp_path / 'x.ncb')!r})\nprint(im.size, 'torch' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "(64, 48) False", r.stderr
    from ncodec.codec.audio_io import read_audio

    x, rate = read_audio(DATA / "librispeech_103-1240-0000_4s.flac")
    (tmp_path / "a.ncb").write_bytes(nc.encode((x[:, :8000], rate), quality=10))
    with pytest.raises(Image.UnidentifiedImageError):
        Image.open(tmp_path / "a.ncb")
