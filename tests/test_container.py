"""The .ncb container: round trips, field checks, random access and hostile input."""

from __future__ import annotations

import io
import random
import struct

import pytest

from ncodec.bitstream import (
    FORMAT_VERSION,
    MAGIC,
    MEDIA_AUDIO,
    MEDIA_IMAGE,
    AudioParams,
    BitstreamError,
    CorruptStreamError,
    Header,
    ImageParams,
    LimitExceededError,
    StreamReader,
    StreamWriter,
    TruncatedStreamError,
    UnsupportedVersionError,
    VideoParams,
    read_stream,
    write_stream,
)
from ncodec.bitstream.container import crc32

HEADER = Header(
    MEDIA_IMAGE, "image-test", bytes(range(16)), ImageParams(768, 512, 3, 8, 5000, 1024).to_bytes()
)
PAYLOADS = [b"tile-0" * 10, b"", bytes(range(256)) * 3]


def test_round_trip():
    data = write_stream(HEADER, PAYLOADS)
    header, payloads = read_stream(data)
    assert header == HEADER
    assert payloads == PAYLOADS
    assert data[:4] == MAGIC and data[4] == FORMAT_VERSION and data[5] == MEDIA_IMAGE


def test_layout_matches_format_md():
    """Byte offsets as FORMAT.md specifies them."""
    data = write_stream(HEADER, [b"abc"], index=False)
    body_len = struct.unpack_from("<H", data, 6)[0]
    assert body_len == 1 + len("image-test") + 16 + 2 + 16
    assert data[8] == len("image-test") and data[9 : 9 + 10] == b"image-test"
    hdr_end = 8 + body_len
    hcrc = crc32(data[:hdr_end])
    assert struct.unpack_from("<I", data, hdr_end)[0] == hcrc
    seg = hdr_end + 4
    # version 2: a segment's CRC covers the header's CRC and its number (0xFFFFFFFF: index, end)
    seed = crc32(struct.pack("<II", hcrc, 0))
    assert data[seg] == ord("S") and struct.unpack_from("<II", data, seg + 1) == (3, crc32(b"abc", seed))
    assert data[seg + 9 : seg + 12] == b"abc"
    end = data[seg + 12 :]
    seed = crc32(struct.pack("<II", hcrc, 0xFFFFFFFF))
    assert end[0] == ord("E") and struct.unpack_from("<IIIQ", end, 1)[:3] == (12, crc32(end[9:], seed), 1)
    assert len(end) == 21


def test_streaming_reader_and_index():
    buf = io.BytesIO()
    with StreamWriter(buf, HEADER) as w:
        for p in PAYLOADS:
            w.write_segment(p)
    buf.seek(0)
    r = StreamReader(buf)
    assert r.segment(2) == PAYLOADS[2]
    assert r.segment(0) == PAYLOADS[0]
    with pytest.raises(IndexError):
        r.segment(3)


def test_params_round_trip_and_limits():
    for p in (ImageParams(1, 1, 1, 16, 0, 64), ImageParams(8000, 8000, 4, 8, 10000, 4096, 1)):
        assert ImageParams.from_bytes(p.to_bytes()) == p
    a = AudioParams(48000, 2, 1, 120, 10**9, 48000)
    assert AudioParams.from_bytes(a.to_bytes()) == a
    v = VideoParams(1920, 1080, 30000, 1001, 300, 5000, 32)
    assert VideoParams.from_bytes(v.to_bytes()) == v
    huge = struct.pack("<IIBBHHBB", 70000, 70000, 3, 8, 0, 1024, 0, 0)
    with pytest.raises(LimitExceededError):
        ImageParams.from_bytes(huge)
    with pytest.raises(CorruptStreamError):
        ImageParams.from_bytes(b"\x00" * 15)


def test_bad_magic_and_version():
    data = bytearray(write_stream(HEADER, PAYLOADS))
    with pytest.raises(CorruptStreamError, match="magic"):
        read_stream(b"PNG\x00" + bytes(data[4:]))
    data[4] = FORMAT_VERSION + 1
    with pytest.raises(UnsupportedVersionError, match="upgrade"):
        read_stream(bytes(data))
    assert issubclass(UnsupportedVersionError, BitstreamError)


def test_every_truncation_raises_typed_error():
    data = write_stream(HEADER, PAYLOADS)
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            read_stream(data[:n])
    with pytest.raises(TruncatedStreamError):
        read_stream(data[: len(data) // 2])


def test_bit_flips_and_insertions_raise_typed_error():
    data = write_stream(HEADER, PAYLOADS)
    rng = random.Random(0)
    for _ in range(300):
        d = bytearray(data)
        if rng.random() < 0.7:
            i = rng.randrange(len(d))
            d[i] ^= 1 << rng.randrange(8)
        else:
            i = rng.randrange(len(d) + 1)
            d[i:i] = bytes([rng.randrange(256)])
        with pytest.raises(BitstreamError):
            read_stream(bytes(d))


def test_huge_declared_segment_is_refused_before_allocation():
    data = bytearray(write_stream(HEADER, [b"x"], index=False))
    seg = len(HEADER.to_bytes())
    struct.pack_into("<I", data, seg + 1, 0xFFFFFFFF)
    with pytest.raises(LimitExceededError):
        read_stream(bytes(data))


def test_trailing_bytes_rejected():
    with pytest.raises(CorruptStreamError):
        read_stream(write_stream(HEADER, PAYLOADS) + b"\x00")


def test_header_validation():
    with pytest.raises(ValueError):
        Header(MEDIA_AUDIO, "", bytes(16)).to_bytes()
    with pytest.raises(ValueError):
        Header(MEDIA_AUDIO, "x", bytes(3)).to_bytes()
