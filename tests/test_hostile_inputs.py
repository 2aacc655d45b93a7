"""Odd inputs (issue 20, items 1, 5, 6, 7): each is coded faithfully, refused with one line
(UnsupportedInputError, exit 3), or coded with a one-line warning, never crashed on or mangled."""

from __future__ import annotations

import struct
import subprocess
import sys
import textwrap
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ncodec.codec.errors import UnsupportedInputError

ROOT = Path(__file__).resolve().parents[1]


def _png(path: Path, w: int, h: int, depth: int, colour_type: int, rows) -> None:
    """A PNG written chunk by chunk (``rows`` yields each row's raw bytes, filter byte excluded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    c = zlib.compressobj(9)
    body = b"".join(c.compress(b"\0" + r) for r in rows) + c.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


# ---- item 1: 8-channel audio -----------------------------------------------------------------


def test_eight_channel_wav_reads(tmp_path: Path) -> None:
    """An 8-channel WAV written by PyAV (ncodec's own writer) reads back; it used to segfault
    (PyAV 18.1 reports 9 planes for an 8-channel planar frame). Run in a child so a crash fails
    the test instead of the suite."""
    script = textwrap.dedent(
        f"""
        import numpy as np
        from ncodec.codec.audio_io import read_audio, write_audio
        x = (np.random.default_rng(0).standard_normal((8, 3000)) * 0.1).astype(np.float32)
        for ch in (8, 7, 3, 2, 1):
            p = {str(tmp_path)!r} + f"/a{{ch}}.wav"
            write_audio(p, x[:ch], 16000)
            y, sr = read_audio(p)
            assert y.shape == (ch, 3000) and sr == 16000, (ch, y.shape)
            assert np.abs(y - x[:ch]).max() < 2 / 32768, ch
        print("ok")
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "ok", (run.returncode, run.stderr[-2000:])


# ---- item 5: decompression bombs ---------------------------------------------------------------


def test_bomb_just_over_the_limit_is_refused_before_decoding(tmp_path: Path, monkeypatch) -> None:
    """A 20000 x 20000 PNG (390 KB) is refused from its header, whatever Pillow's process-wide
    guard is set to, with no warning and without decoding a pixel."""
    from PIL import ImageFile

    from ncodec.codec.image import read_image

    bomb = tmp_path / "bomb.png"
    _png(bomb, 20000, 20000, 8, 0, (bytes(20000) for _ in range(20000)))

    def no_load(self):  # pragma: no cover - reaching this is the failure
        raise AssertionError("pixels decoded before the size check")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_load)
    for limit in (1 << 28, None, Image.MAX_IMAGE_PIXELS):
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(UnsupportedInputError) as e:
                read_image(bomb)
        assert "\n" not in str(e.value)


# ---- item 6: short multi-channel audio ---------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 1), (3, 2), (8, 1), (8, 8), (2, 5), (1, 1)])
def test_short_multichannel_audio_is_not_transposed(shape) -> None:
    """[C, T] with T < C and T <= 8 stays [C, T] (a 1-sample stereo signal is not mono)."""
    from ncodec.codec.audio import prepare

    x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) / 100
    np.testing.assert_array_equal(prepare(x, 16000), x)


def test_long_time_major_audio_is_transposed() -> None:
    """[T, C] with more rows than any channel count is read as samples x channels."""
    from ncodec.codec.audio import prepare

    x = np.zeros((100, 2), np.float32)
    assert prepare(x, 16000).shape == (2, 100)


# ---- item 7: silent mangling ---------------------------------------------------------------------


def _prepared(path: Path):
    from ncodec.codec.image import prepare, read_image

    return prepare(read_image(path))


def test_32bit_integer_tiff_is_refused(tmp_path: Path) -> None:
    """Coding it as 16-bit clipped 90 % of the pixels to white, with exit 0."""
    p = tmp_path / "i32.tif"
    a = (np.arange(64 * 64, dtype=np.int64).reshape(64, 64) * 500_000).astype(np.int32)
    Image.fromarray(a, "I").save(p)
    with pytest.raises(UnsupportedInputError, match="32-bit"):
        _prepared(p)


def test_32bit_integer_image_in_memory() -> None:
    """Mode "I" in memory: values within 16 bits are a 16-bit image (Pillow's own use of "I");
    larger values are refused."""
    from ncodec.codec.image import prepare

    a = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.int32)
    prep = prepare(Image.fromarray(a, "I"))
    assert prep.bit_depth == 16 and prep.channels == 1
    np.testing.assert_array_equal(prep.rgb[..., 0], (a >> 8).astype(np.uint8))
    with pytest.raises(UnsupportedInputError, match="32-bit"):
        prepare(Image.fromarray(a * 1000, "I"))
    with pytest.raises(UnsupportedInputError, match="32-bit"):
        prepare(Image.fromarray(a - 5, "I"))


@pytest.mark.parametrize("colour_type,channels", [(2, 3), (6, 4)], ids=["rgb48", "rgba64"])
def test_16bit_per_channel_png_is_recorded_as_16bit(tmp_path: Path, colour_type: int, channels: int) -> None:
    """A 48-bit (or 64-bit RGBA) PNG: coded from its high bytes (Pillow's 8-bit reading) and
    recorded as a 16-bit source in the header, as the README says."""
    rng = np.random.default_rng(0)
    px = rng.integers(0, 65536, (16, 16, channels)).astype(">u2")
    p = tmp_path / "c.png"
    _png(p, 16, 16, 16, colour_type, (px[y].tobytes() for y in range(16)))
    prep = _prepared(p)
    assert prep.bit_depth == 16 and prep.channels == channels
    np.testing.assert_array_equal(prep.rgb, (px[..., :3] >> 8).astype(np.uint8))
    if channels == 4:
        np.testing.assert_array_equal(prep.alpha, (px[..., 3] >> 8).astype(np.uint8))


def test_animated_gif_codes_first_frame_with_one_warning(tmp_path: Path) -> None:
    p = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (8, 8), (i * 80, 0, 0)) for i in range(3)]
    frames[0].save(p, save_all=True, append_images=frames[1:])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        prep = _prepared(p)
    msgs = [str(x.message) for x in w]
    assert len(msgs) == 1 and "first of 3 frames" in msgs[0] and "\n" not in msgs[0], msgs
    assert prep.rgb.shape == (8, 8, 3) and int(prep.rgb[0, 0, 0]) == 0


def test_still_gif_and_plain_png_give_no_warning(tmp_path: Path) -> None:
    p, q = tmp_path / "still.gif", tmp_path / "plain.png"
    Image.new("RGB", (8, 8), (10, 20, 30)).save(p)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(q)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _prepared(p).bit_depth == 8
        assert _prepared(q).bit_depth == 8
