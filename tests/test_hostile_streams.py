"""Hostile streams (issue 20, items 2-4 and 9): segments bound to their place, the index checked
against the segments read, media type 3 raised as a stream error, decoded latents bounded."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest

import ncodec.codec as nc
from ncodec.bitstream import (
    MEDIA_IMAGE,
    MEDIA_VIDEO,
    BitstreamError,
    CorruptStreamError,
    Header,
    ImageParams,
    StreamReader,
    VideoParams,
    read_stream,
    write_stream,
)
from ncodec.bitstream.container import _SEG, END_RECORD_BYTES, read_header, segment_crc
from ncodec.codec.errors import UnsupportedInputError

HDR = Header(MEDIA_IMAGE, "image-test", bytes(range(16)), ImageParams(128, 64, 3, 8, 5000, 64).to_bytes())


def split(data: bytes) -> tuple[bytes, Header, list[bytes]]:
    """Header bytes, the parsed header and every data segment's raw bytes (kind, length, CRC and
    payload: each still CRC-valid where it stands)."""
    f = io.BytesIO(data)
    h = read_header(f)
    head = data[: f.tell()]
    raw, pos = [], f.tell()
    while data[pos] == 0x53:
        n = struct.unpack_from("<I", data, pos + 1)[0]
        raw.append(data[pos : pos + _SEG.size + n])
        pos += _SEG.size + n
    return head, h, raw


def rebuild(head: bytes, h: Header, raw: list[bytes], index: list[int] | None = None, count=None) -> bytes:
    """A stream of these raw data segments with a fresh, CRC-valid index and end record (what a
    careless or hostile splicer writes): only the binding can tell the segments are out of place."""
    out = bytearray(head)
    offsets = []
    for r in raw:
        offsets.append(len(out))
        out += r
    index_at = len(out)
    idx = offsets if index is None else index
    k = len(idx) if count is None else count
    payload = struct.pack(f"<I{len(idx)}Q", k, *idx)
    out += _SEG.pack(0x49, len(payload), segment_crc(h.version, h.crc, 0xFFFFFFFF, payload)) + payload
    end = struct.pack("<IQ", len(raw), index_at)
    out += _SEG.pack(0x45, len(end), segment_crc(h.version, h.crc, 0xFFFFFFFF, end)) + end
    return bytes(out)


def swapped(data: bytes, i: int, j: int) -> bytes:
    head, h, raw = split(data)
    raw[i], raw[j] = raw[j], raw[i]
    return rebuild(head, h, raw)


# ---- item 2: binding, container level -----------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2])
def test_rebuild_helper_is_faithful(version: int) -> None:
    data = write_stream(Header(HDR.media, HDR.model_id, HDR.model_hash, HDR.params, version), [b"a", b"b"])
    head, h, raw = split(data)
    assert rebuild(head, h, raw) == data


def test_swapped_segments_are_refused() -> None:
    """Two CRC-valid segments of equal length swapped, index and end record rewritten to match."""
    data = write_stream(HDR, [b"tile-0", b"tile-1", b"tile-2"])
    assert read_stream(data)[1] == [b"tile-0", b"tile-1", b"tile-2"]
    bad = swapped(data, 0, 2)
    with pytest.raises(CorruptStreamError, match="out of place"):
        read_stream(bad)
    r = StreamReader(io.BytesIO(bad))
    with pytest.raises(CorruptStreamError):  # random access checks the number too
        r.segment(0)


def test_segment_from_another_stream_is_refused() -> None:
    other = Header(HDR.media, HDR.model_id, HDR.model_hash, ImageParams(128, 64, 3, 8, 4000, 64).to_bytes())
    a, b = write_stream(HDR, [b"x", b"y"]), write_stream(other, [b"x", b"y"])
    head, h, raw = split(a)
    raw[1] = split(b)[2][1]
    with pytest.raises(CorruptStreamError):
        read_stream(rebuild(head, h, raw))


def test_index_declaring_a_billion_entries_is_refused() -> None:
    data = write_stream(HDR, [b"a", b"bb"])
    head, h, raw = split(data)
    offsets = [len(head), len(head) + len(raw[0])]
    bad = rebuild(head, h, raw, index=offsets, count=10**9)
    with pytest.raises(CorruptStreamError, match="index"):
        read_stream(bad)
    with pytest.raises(CorruptStreamError):
        StreamReader(io.BytesIO(bad)).read_index()


@pytest.mark.parametrize("version", [1, 2])
def test_index_whose_offsets_disagree_is_refused(version: int) -> None:
    data = write_stream(Header(HDR.media, HDR.model_id, HDR.model_hash, HDR.params, version), [b"a", b"bb"])
    head, h, raw = split(data)
    offsets = [len(head), len(head) + len(raw[0])]
    for bad_idx in ([offsets[0], offsets[1] + 1], [offsets[0] - 1, offsets[1]], offsets[:1]):
        with pytest.raises(CorruptStreamError, match="index"):
            read_stream(rebuild(head, h, raw, index=bad_idx))


def test_version_1_swap_of_unequal_segments_is_caught_by_the_index() -> None:
    """Version 1 CRCs do not cover the place: its original index still catches segments moved to
    other offsets (a swap of equal-length segments in version 1 is undetectable: FORMAT.md)."""
    v1 = Header(HDR.media, HDR.model_id, HDR.model_hash, HDR.params, 1)
    data = write_stream(v1, [b"a", b"bbbb"])
    head, h, raw = split(data)
    original_index = [len(head), len(head) + len(raw[0])]
    with pytest.raises(CorruptStreamError, match="index"):
        read_stream(rebuild(head, h, [raw[1], raw[0]], index=original_index))


def test_end_record_must_point_at_the_index() -> None:
    data = bytearray(write_stream(HDR, [b"a"]))
    h = read_header(io.BytesIO(bytes(data)))
    end = struct.pack("<IQ", 1, 0)  # "no index", but there is one
    data[-END_RECORD_BYTES:] = _SEG.pack(0x45, 12, segment_crc(2, h.crc, 0xFFFFFFFF, end)) + end
    with pytest.raises(CorruptStreamError, match="index"):
        read_stream(bytes(data))


# ---- item 2: binding, real streams ---------------------------------------------------------------


@pytest.fixture(scope="module")
def image_stream() -> bytes:
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(128, 40, (64, 128, 3)), 0, 255).astype(np.uint8)
    return nc.encode(img, quality=30, tile=64, model="image-hp-v1")  # a two-part hyperprior payload


@pytest.fixture(scope="module")
def audio_stream() -> bytes:
    t = np.arange(16000 * 5) / 16000
    x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return nc.encode((x, 16000), quality=20, model="audio-hp-v1")  # _with_huge_latent: 2 parts


def test_swapped_image_tiles_are_refused(image_stream: bytes) -> None:
    assert len(read_stream(image_stream)[1]) == 2
    nc.decode(image_stream)
    with pytest.raises(CorruptStreamError):
        nc.decode(swapped(image_stream, 0, 1))


def test_swapped_audio_chunks_are_refused(audio_stream: bytes) -> None:
    assert len(read_stream(audio_stream)[1]) == 3
    with pytest.raises(CorruptStreamError):
        nc.decode(swapped(audio_stream, 0, 1))
    with pytest.raises(CorruptStreamError):  # random access through the index
        StreamReader(io.BytesIO(swapped(audio_stream, 1, 2))).segment(1)


# ---- item 4: media type 3 ----------------------------------------------------------------------


@pytest.mark.parametrize("model", ["image-hp-v1", "no-such-model"])
def test_video_stream_raises_a_stream_error(model: str) -> None:
    """A media type 3 stream raises a BitstreamError (exit 4), never UnsupportedInputError (3)."""
    data = write_stream(
        Header(MEDIA_VIDEO, model, bytes(16), VideoParams(64, 64, 25, 1, 1, 5000, 1).to_bytes()), [b"x"]
    )
    with pytest.raises(BitstreamError) as e:
        nc.decode(data)
    assert not isinstance(e.value, UnsupportedInputError)


# ---- item 9: decoded latents beyond the encoder's clamp ------------------------------------------


def _with_huge_latent(data: bytes, medium: str) -> bytes:
    """``data`` with the first unit's latent residual 0 set to 2**30 (a valid rANS escape)."""
    import torch

    from ncodec import entropy
    from ncodec.bitstream import AudioParams
    from ncodec.models.latent_codecs import split_parts
    from ncodec.models.registry import load_model

    header, payloads = read_stream(data)
    m = load_model(header.model_id)
    codec = m.latent_codec()
    parts = split_parts(payloads[0], codec.parts)
    if medium == "image":  # segment 0 of a picture: its latents under the crop of the picture's prior
        from ncodec.codec.image import Picture

        pic = Picture(ImageParams.from_bytes(header.params), m.config["m"], m.config["n"])
        z_hat = codec.decode_hyper(parts[0], pic.z_shape)
        _, idx = pic.prior(codec, z_hat, pic.segments[0])
    else:
        from ncodec.codec.audio import FRAME, check_layout

        p = AudioParams.from_bytes(header.params)
        shape = m.unit_shape(p.channels, check_layout(p).region(0)[2] // FRAME)
        z = entropy.decode(parts[0], m.z_indexes(shape.z), m.z_tables)
        _, idx = m.hyper(torch.from_numpy(z.astype(np.int64)).view(shape.z), shape.y)
    idx = idx.to(torch.int32).numpy().reshape(-1)
    sym = entropy.decode(parts[1], idx, m.y_tables)
    sym[0] = 1 << 30
    y = entropy.encode(sym, idx, m.y_tables)
    from ncodec.entropy.varint import write_varint

    head = bytearray()
    write_varint(head, len(parts[0]))
    payloads[0] = bytes(head) + parts[0] + y
    return write_stream(Header(header.media, header.model_id, header.model_hash, header.params), payloads)


def test_image_latent_beyond_the_clamp_is_refused(image_stream: bytes) -> None:
    with pytest.raises(CorruptStreamError, match="beyond"):
        nc.decode(_with_huge_latent(image_stream, "image"))


def test_audio_latent_beyond_the_clamp_is_refused(audio_stream: bytes) -> None:
    with pytest.raises(CorruptStreamError, match="beyond"):
        nc.decode(_with_huge_latent(audio_stream, "audio"))
