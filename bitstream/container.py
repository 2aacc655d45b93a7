"""The ``.ncb`` container: header, checksummed segments, index and end record (see FORMAT.md).

This module knows bytes only: no torch, no models. A stream is written and read segment by
segment, so a long stream never has to sit in memory, and every declared size is checked against
a hard limit before anything is allocated for it.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from ncodec.bitstream.errors import (
    CorruptStreamError,
    LimitExceededError,
    TruncatedStreamError,
    UnsupportedVersionError,
)

MAGIC = b"\x8aNCB"
FORMAT_VERSION = 3
"""The version this ncodec writes. Version 2 binds every segment to its stream and place (its CRC
is seeded with the header's CRC and the segment's number); version 3 codes an image as one picture
in segments (the image block's layout byte, FORMAT.md "Picture layout") and lets a video keep its
source's timestamps (the video block's flags). Versions 1 and 2 still decode."""
READ_VERSIONS = (1, 2, 3)
_LAST_SEGMENT_TAG = 0xFFFFFFFF  # the CRC seed's segment number of the index and end segments

MEDIA_IMAGE, MEDIA_AUDIO, MEDIA_VIDEO = 1, 2, 3
MEDIA_NAMES = {MEDIA_IMAGE: "image", MEDIA_AUDIO: "audio", MEDIA_VIDEO: "video"}

SEG_DATA, SEG_INDEX, SEG_END = 0x53, 0x49, 0x45  # 'S', 'I', 'E'

MAX_HEADER_BODY = 4096
MAX_SEGMENT_BYTES = 256 << 20
MAX_SEGMENTS = 1 << 24
MAX_MODEL_ID = 64
HASH_BYTES = 16

_PREFIX = struct.Struct("<4sBBH")  # magic, version, media, body length
_SEG = struct.Struct("<BII")  # kind, payload length, CRC-32 of payload
_END_PAYLOAD = struct.Struct("<IQ")  # data segment count, index offset (0 = none)
END_RECORD_BYTES = _SEG.size + _END_PAYLOAD.size


def crc32(data: bytes | memoryview, start: int = 0) -> int:
    """CRC-32 (ISO-HDLC, as zlib and PNG use) of ``data`` (continuing from ``start``, the CRC of
    what precedes it)."""
    return zlib.crc32(data, start) & 0xFFFFFFFF


def segment_crc(version: int, header_crc: int, tag: int, payload: bytes | memoryview) -> int:
    """A segment's stored CRC (FORMAT.md, section 3). Version 1: CRC of the payload. Version 2:
    CRC of ``u32 header CRC, u32 tag, payload``, where ``tag`` is the data segment's number
    (0, 1, ...) or ``0xFFFFFFFF`` for the index and end segments: a segment moved to another place
    or another stream fails its check."""
    if version == 1:
        return crc32(payload)
    return crc32(payload, crc32(struct.pack("<II", header_crc, tag)))


@dataclass
class Header:
    """Everything a decoder needs before the first segment.

    Attributes:
        media: ``MEDIA_IMAGE``, ``MEDIA_AUDIO`` or ``MEDIA_VIDEO``.
        model_id: ASCII name of the model that wrote the stream (1..64 characters).
        model_hash: first 16 bytes of the SHA-256 of the model's weights and tables.
        params: the medium's parameter block, raw (parsed by the medium's codec, see FORMAT.md).
        version: format version the stream was written with (writers: 1 or 2).
        crc: the header's CRC (set by :func:`read_header` and :meth:`to_bytes`); version 2 seeds
            every segment's CRC with it.
    """

    media: int
    model_id: str
    model_hash: bytes
    params: bytes = b""
    version: int = FORMAT_VERSION
    crc: int = field(default=0, compare=False)

    def to_bytes(self) -> bytes:
        mid = self.model_id.encode("ascii")
        if not 1 <= len(mid) <= MAX_MODEL_ID:
            raise ValueError(f"model id must be 1..{MAX_MODEL_ID} ASCII characters")
        if len(self.model_hash) != HASH_BYTES:
            raise ValueError(f"model hash must be {HASH_BYTES} bytes")
        if self.media not in MEDIA_NAMES:
            raise ValueError(f"unknown media type {self.media}")
        body = bytes([len(mid)]) + mid + self.model_hash + struct.pack("<H", len(self.params)) + self.params
        if len(body) > MAX_HEADER_BODY:
            raise ValueError("header too large")
        if self.version not in READ_VERSIONS:
            raise ValueError(f"format version {self.version} cannot be written")
        head = _PREFIX.pack(MAGIC, self.version, self.media, len(body)) + body
        self.crc = crc32(head)
        return head + struct.pack("<I", self.crc)


def _read_exact(f: BinaryIO, n: int, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise TruncatedStreamError(
            f"stream ends inside the {what} ({len(data)} of {n} bytes): the file is incomplete"
        )
    return data


def read_header(f: BinaryIO) -> Header:
    """Reads and checks the header at the current position of ``f``.

    Raises:
        CorruptStreamError: not an ncodec stream, or a damaged header.
        UnsupportedVersionError: written by a newer format version.
        TruncatedStreamError: the stream ends inside the header.
    """
    prefix = f.read(_PREFIX.size)
    if len(prefix) < 4 or prefix[:4] != MAGIC:
        raise CorruptStreamError("not an ncodec stream (bad magic bytes)")
    if len(prefix) < _PREFIX.size:
        raise TruncatedStreamError("stream ends inside the header: the file is incomplete")
    _, version, media, body_len = _PREFIX.unpack(prefix)
    if version not in READ_VERSIONS:
        raise UnsupportedVersionError(
            f"stream format version {version}; this ncodec reads version {FORMAT_VERSION}: upgrade ncodec"
            if version > FORMAT_VERSION
            else f"unknown stream format version {version}"
        )
    if body_len > MAX_HEADER_BODY:
        raise LimitExceededError(f"header declares {body_len} bytes (limit {MAX_HEADER_BODY})")
    body = _read_exact(f, body_len, "header")
    (stored,) = struct.unpack("<I", _read_exact(f, 4, "header checksum"))
    if crc32(prefix + body) != stored:
        raise CorruptStreamError("header checksum mismatch: the stream is damaged")
    if media not in MEDIA_NAMES:
        raise CorruptStreamError(f"unknown media type {media}")
    try:
        n = body[0]
        mid = body[1 : 1 + n].decode("ascii")
        mhash = body[1 + n : 1 + n + HASH_BYTES]
        (plen,) = struct.unpack_from("<H", body, 1 + n + HASH_BYTES)
        params = body[3 + n + HASH_BYTES :]
    except (IndexError, UnicodeDecodeError, struct.error) as e:
        raise CorruptStreamError(f"malformed header: {e}") from None
    if not 1 <= n <= MAX_MODEL_ID or len(mhash) != HASH_BYTES or len(params) != plen:
        raise CorruptStreamError("malformed header fields")
    return Header(media, mid, mhash, params, version, stored)


class StreamWriter:
    """Writes a header, then data segments one at a time, then the index and end record.

    Usage::

        with StreamWriter(f, header) as w:
            for payload in payloads:
                w.write_segment(payload)
    """

    def __init__(self, f: BinaryIO, header: Header, index: bool = True):
        self.f = f
        self.index = index
        self.offsets: list[int] = []
        self.pos = 0
        self._closed = False
        self._write(header.to_bytes())
        self.version, self.header_crc = header.version, header.crc

    def _write(self, data: bytes) -> None:
        self.f.write(data)
        self.pos += len(data)

    def _segment(self, kind: int, payload: bytes, tag: int = _LAST_SEGMENT_TAG) -> None:
        if len(payload) > MAX_SEGMENT_BYTES:
            raise ValueError(f"segment of {len(payload)} bytes exceeds the {MAX_SEGMENT_BYTES} limit")
        crc = segment_crc(self.version, self.header_crc, tag, payload)
        self._write(_SEG.pack(kind, len(payload), crc))
        self._write(payload)

    def write_segment(self, payload: bytes) -> None:
        """Appends one independently decodable data segment (tile, chunk, frame)."""
        if len(self.offsets) >= MAX_SEGMENTS:
            raise ValueError("too many segments")
        self.offsets.append(self.pos)
        self._segment(SEG_DATA, payload, len(self.offsets) - 1)

    def close(self) -> None:
        """Writes the index (if enabled) and the end record. Idempotent."""
        if self._closed:
            return
        self._closed = True
        index_at = 0
        if self.index and self.offsets:
            index_at = self.pos
            self._segment(SEG_INDEX, struct.pack(f"<I{len(self.offsets)}Q", len(self.offsets), *self.offsets))
        self._segment(SEG_END, _END_PAYLOAD.pack(len(self.offsets), index_at))

    def __enter__(self) -> StreamWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()


@dataclass
class StreamReader:
    """Reads a stream sequentially (``segments()``) or by index (``segment(i)``, seekable files).

    Every segment's checksum is verified before its payload is returned (in version 2 it also
    covers the segment's number and the header). The sequential reader checks the index, when
    present, against the segments it actually read: their count and the offsets where it found
    them; the end record's count and index offset likewise.
    """

    f: BinaryIO
    header: Header = field(init=False)
    data_start: int = field(init=False)

    def __post_init__(self) -> None:
        self.header = read_header(self.f)
        self.data_start = _tell(self.f)
        if self.data_start == 0:  # an unseekable file: the header is all that was read
            self.data_start = len(self.header.to_bytes())

    def _read_segment(self, tag: int = _LAST_SEGMENT_TAG) -> tuple[int, bytes]:
        """One segment at the current position; ``tag``: the data segment number its CRC must
        cover (version 2), ignored for index and end segments."""
        raw = self.f.read(_SEG.size)
        if len(raw) == 0:
            raise TruncatedStreamError("stream ends without its end record: the file is incomplete")
        if len(raw) < _SEG.size:
            raise TruncatedStreamError("stream ends inside a segment header: the file is incomplete")
        kind, length, stored = _SEG.unpack(raw)
        if kind not in (SEG_DATA, SEG_INDEX, SEG_END):
            raise CorruptStreamError(f"unknown segment kind 0x{kind:02x}: the stream is damaged")
        if length > MAX_SEGMENT_BYTES:
            raise LimitExceededError(f"segment declares {length} bytes (limit {MAX_SEGMENT_BYTES})")
        payload = _read_exact(self.f, length, "segment")
        h = self.header
        if segment_crc(h.version, h.crc, tag if kind == SEG_DATA else _LAST_SEGMENT_TAG, payload) != stored:
            raise CorruptStreamError(
                "segment checksum mismatch: the stream is damaged"
                + (" (or its segments are out of place)" if kind == SEG_DATA and h.version >= 2 else "")
            )
        return kind, payload

    def segments(self) -> Iterator[bytes]:
        """Yields data segment payloads in order; checks the index (when present) against the
        segments read, the end record, and that nothing follows."""
        count = 0
        pos = self.data_start
        offsets: list[int] = []
        index_at = 0
        while True:
            at = pos
            kind, payload = self._read_segment(count)
            pos += _SEG.size + len(payload)
            if kind == SEG_DATA:
                if index_at:
                    raise CorruptStreamError("data segment after the index: the stream is damaged")
                count += 1
                if count > MAX_SEGMENTS:
                    raise LimitExceededError("too many segments")
                offsets.append(at)
                yield payload
            elif kind == SEG_INDEX:
                if index_at:
                    raise CorruptStreamError("two index segments: the stream is damaged")
                _check_index(payload, offsets)
                index_at, offsets = at, []
            else:
                if len(payload) != _END_PAYLOAD.size:
                    raise CorruptStreamError("malformed end record")
                declared, declared_index = _END_PAYLOAD.unpack(payload)
                if declared != count:
                    raise CorruptStreamError(f"end record declares {declared} segments, found {count}")
                if declared_index != index_at:
                    raise CorruptStreamError(
                        f"end record places the index at {declared_index}, found "
                        + (f"at {index_at}" if index_at else "none")
                    )
                if self.f.read(1):
                    raise CorruptStreamError("bytes after the end record: the stream is damaged")
                return

    def read_index(self) -> list[int]:
        """File offsets of the data segments, from the index (needs a seekable file)."""
        self.f.seek(-END_RECORD_BYTES, io.SEEK_END)
        end_at = _tell(self.f)
        kind, payload = self._read_segment()
        if kind != SEG_END or len(payload) != _END_PAYLOAD.size:
            raise CorruptStreamError("missing end record")
        count, index_at = _END_PAYLOAD.unpack(payload)
        if count > MAX_SEGMENTS or index_at == 0 or not self.data_start <= index_at < end_at:
            raise CorruptStreamError("stream has no valid index")
        if 4 + 8 * count + _SEG.size > end_at - index_at:
            raise CorruptStreamError("index does not fit between its offset and the end record")
        self.f.seek(index_at)
        kind, payload = self._read_segment()
        if (
            kind != SEG_INDEX
            or len(payload) != 4 + 8 * count
            or struct.unpack_from("<I", payload)[0] != count
        ):
            raise CorruptStreamError("malformed index")
        offsets = list(struct.unpack_from(f"<{count}Q", payload, 4))
        if any(not self.data_start <= o < index_at for o in offsets) or offsets != sorted(set(offsets)):
            raise CorruptStreamError("index offsets out of range")
        return offsets

    def segment(self, i: int) -> bytes:
        """The payload of data segment ``i`` (random access through the index); in version 2 its
        CRC must cover ``i``, so an index pointing at another segment is refused."""
        offsets = self.read_index()
        if not 0 <= i < len(offsets):
            raise IndexError(f"segment {i} out of range 0..{len(offsets) - 1}")
        self.f.seek(offsets[i])
        kind, payload = self._read_segment(i)
        if kind != SEG_DATA:
            raise CorruptStreamError("index points at a non-data segment")
        return payload


def _check_index(payload: bytes, offsets: list[int]) -> None:
    """The index read sequentially must list exactly the data segments before it, where they were
    found (an index declaring 10**9 entries, or offsets that disagree, is corrupt)."""
    if len(payload) < 4:
        raise CorruptStreamError("malformed index")
    (k,) = struct.unpack_from("<I", payload)
    if k != len(offsets) or len(payload) != 4 + 8 * k:
        raise CorruptStreamError(f"index declares {k} segments, the stream holds {len(offsets)}")
    if list(struct.unpack_from(f"<{k}Q", payload, 4)) != offsets:
        raise CorruptStreamError("index offsets disagree with the segments' places: the stream is damaged")


def _tell(f: BinaryIO) -> int:
    try:
        return f.tell()
    except (OSError, AttributeError):
        return 0


def write_stream(header: Header, payloads: list[bytes], index: bool = True) -> bytes:
    """A whole stream in memory: header, data segments, index, end record."""
    buf = io.BytesIO()
    with StreamWriter(buf, header, index=index) as w:
        for p in payloads:
            w.write_segment(p)
    return buf.getvalue()


def read_stream(data: bytes) -> tuple[Header, list[bytes]]:
    """Parses a whole in-memory stream; returns the header and the data segment payloads."""
    r = StreamReader(io.BytesIO(data))
    return r.header, list(r.segments())


def upgrade(data: bytes) -> bytes:
    """A whole in-memory stream of any readable version rewritten in :data:`FORMAT_VERSION`: the
    same header fields and payloads, with the current version's checksums."""
    h, payloads = read_stream(data)
    return write_stream(Header(h.media, h.model_id, h.model_hash, h.params), payloads)
