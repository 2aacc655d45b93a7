"""Unsigned LEB128 varints, the length fields of the rANS payload (at most 5 bytes, < 2**32)."""

from __future__ import annotations

from ncodec.bitstream.errors import CorruptStreamError, TruncatedStreamError


def write_varint(out: bytearray, value: int) -> None:
    """Appends ``value`` (``0 <= value < 2**32``) as little-endian base-128 groups."""
    if not 0 <= value < 1 << 32:
        raise ValueError(f"varint out of range: {value}")
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def read_varint(buf: memoryview | bytes, pos: int) -> tuple[int, int]:
    """Reads a varint at ``pos``; returns ``(value, next_pos)``.

    Raises:
        TruncatedStreamError: the buffer ends inside the varint.
        CorruptStreamError: more than 5 bytes, or a value of ``2**32`` or more.
    """
    value = 0
    for i in range(5):
        if pos + i >= len(buf):
            raise TruncatedStreamError("stream ends inside a length field")
        b = buf[pos + i]
        value |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            if value >= 1 << 32:
                break
            return value, pos + i + 1
    raise CorruptStreamError("malformed length field (varint)")
