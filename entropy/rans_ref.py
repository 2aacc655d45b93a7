"""Pure-Python reference of ncodec's rANS payload: the format's definition and the test oracle.

This module defines, bit for bit, the entropy-coded payload that ``bitstream/FORMAT.md`` (section
"rANS payload") describes. The C++ and CUDA coders must produce and accept exactly these bytes. It
is written for clarity, not speed: use :mod:`ncodec.entropy.coder` in production.

Coder parameters (shared by every implementation, see :mod:`ncodec.entropy.constants`):

* probabilities are quantised to ``PREC = 16`` bits: a table's CDF runs from 0 to 65536;
* each lane's state is a 32-bit integer kept in ``[2**16, 2**32)``;
* renormalisation moves one 16-bit word at a time (at most one per symbol);
* symbol ``j`` of a segment belongs to lane ``j % K``; each lane writes its own word stream.
"""

from __future__ import annotations

import numpy as np

from ncodec.bitstream.errors import CorruptStreamError, TruncatedStreamError
from ncodec.entropy.constants import (
    MAX_LANES,
    MAX_SYMBOL_MAGNITUDE,
    PREC,
    RANS_L,
    auto_lanes,
)
from ncodec.entropy.tables import TableSet
from ncodec.entropy.varint import read_varint, write_varint

_MASK = (1 << PREC) - 1


def _symbol_ops(value: int, table: int, tables: TableSet) -> list[tuple[int, int]]:
    """The coding operations ``(start, freq)`` of one value, in decode order.

    A value inside the table's support is one op. A value outside it is the escape symbol (the
    table's last entry), then a 5-bit uniform op holding ``m = bit_length(e) - 1`` where
    ``e = u + 1`` and ``u`` zig-zags the distance to the support, then the low ``m`` bits of ``e``
    in uniform chunks of at most 16 bits, least significant chunk first.
    """
    cdf = tables.cdf[table]
    n = int(tables.sizes[table])
    off = int(tables.offsets[table])
    i = value - off
    if 0 <= i < n - 1:
        return [(int(cdf[i]), int(cdf[i + 1] - cdf[i]))]
    ops = [(int(cdf[n - 1]), int(cdf[n] - cdf[n - 1]))]
    u = 2 * (off - 1 - value) if i < 0 else 2 * (value - (off + n - 1)) + 1
    e = u + 1
    m = e.bit_length() - 1
    ops.append(_uniform_op(m, 5))
    shift = 0
    while shift < m:
        k = min(16, m - shift)
        ops.append(_uniform_op((e >> shift) & ((1 << k) - 1), k))
        shift += k
    return ops


def _uniform_op(value: int, bits: int) -> tuple[int, int]:
    """A ``bits``-bit uniform value as an exact rANS op (``1 <= bits <= 16``)."""
    return value << (PREC - bits), 1 << (PREC - bits)


def _op_cost_bits(freq: int) -> int:
    """Integer cost estimate of an op for the auto-lane policy: ``PREC - floor(log2 freq)``."""
    return PREC - (freq.bit_length() - 1)


def _encode_lane(ops: list[tuple[int, int]]) -> tuple[int, list[int]]:
    """Encodes one lane's ops; returns the final state and the words in decode (reading) order."""
    x = RANS_L
    words: list[int] = []
    for start, freq in reversed(ops):
        if x >= (freq << 16):
            words.append(x & 0xFFFF)
            x >>= 16
        x = ((x // freq) << PREC) + (x % freq) + start
    words.reverse()
    return x, words


def encode(
    symbols: np.ndarray,
    indexes: np.ndarray,
    tables: TableSet,
    *,
    lanes: int = 0,
    segment_symbols: int = 1 << 16,
) -> bytes:
    """Encodes integer symbols, each with the table its index selects.

    Args:
        symbols: int32 array, any shape; values in ``[-2**30, 2**30]``.
        indexes: integer array of the same size; ``0 <= indexes < len(tables)``.
        tables: the probability tables.
        lanes: lanes per segment, ``1..MAX_LANES``; 0 picks them from the estimated size
            (:func:`ncodec.entropy.constants.auto_lanes`).
        segment_symbols: symbols per independently decodable segment (>= 1).

    Returns:
        The rANS payload (see FORMAT.md).

    Raises:
        ValueError: on shape mismatch, out-of-range index or symbol, or bad parameters.
    """
    sym = np.asarray(symbols).reshape(-1).astype(np.int64)
    idx = np.asarray(indexes).reshape(-1).astype(np.int64)
    _check_encode_args(sym, idx, tables, lanes, segment_symbols)
    n = sym.size
    out = bytearray()
    write_varint(out, n)
    write_varint(out, segment_symbols)
    bodies = []
    for s0 in range(0, n, segment_symbols):
        seg_ops = [
            _symbol_ops(int(v), int(t), tables)
            for v, t in zip(sym[s0 : s0 + segment_symbols], idx[s0 : s0 + segment_symbols])
        ]
        bodies.append(_encode_segment(seg_ops, lanes))
    for body in bodies:
        write_varint(out, len(body))
    for body in bodies:
        out += body
    return bytes(out)


def _encode_segment(seg_ops: list[list[tuple[int, int]]], lanes: int) -> bytes:
    n = len(seg_ops)
    if lanes == 0:
        est = sum(_op_cost_bits(ops[0][1]) for ops in seg_ops)
        lanes = auto_lanes(est)
    k = min(lanes, n)
    states, lane_words = [], []
    for lane in range(k):
        ops = [op for ops in seg_ops[lane::k] for op in ops]
        x, words = _encode_lane(ops)
        states.append(x)
        lane_words.append(words)
    body = bytearray()
    write_varint(body, k)
    for x in states:
        body += x.to_bytes(4, "little")
    for words in lane_words:
        write_varint(body, len(words))
    for words in lane_words:
        body += np.asarray(words, dtype="<u2").tobytes()
    return bytes(body)


def _check_encode_args(
    sym: np.ndarray, idx: np.ndarray, tables: TableSet, lanes: int, segment_symbols: int
) -> None:
    if sym.size != idx.size:
        raise ValueError(f"symbols ({sym.size}) and indexes ({idx.size}) differ in size")
    if not 0 <= lanes <= MAX_LANES:
        raise ValueError(f"lanes must be in 0..{MAX_LANES}, got {lanes}")
    if segment_symbols < 1:
        raise ValueError(f"segment_symbols must be >= 1, got {segment_symbols}")
    if sym.size:
        if idx.min() < 0 or idx.max() >= len(tables):
            raise ValueError(f"table index out of range 0..{len(tables) - 1}")
        if np.abs(sym).max() > MAX_SYMBOL_MAGNITUDE:
            raise ValueError(f"symbol magnitude exceeds {MAX_SYMBOL_MAGNITUDE}")


class _LaneReader:
    """Decoder state of one lane: its rANS state and its word stream."""

    def __init__(self, state: int, words: np.ndarray):
        self.x = state
        self.words = words
        self.pos = 0

    def decode_op(self, cdf: np.ndarray, n: int) -> int:
        slot = self.x & _MASK
        s = int(np.searchsorted(cdf[1 : n + 1], slot, side="right"))
        self._advance(int(cdf[s]), int(cdf[s + 1] - cdf[s]), slot)
        return s

    def decode_uniform(self, bits: int) -> int:
        slot = self.x & _MASK
        value = slot >> (PREC - bits)
        start, freq = _uniform_op(value, bits)
        self._advance(start, freq, slot)
        return value

    def _advance(self, start: int, freq: int, slot: int) -> None:
        self.x = freq * (self.x >> PREC) + slot - start
        if self.x < RANS_L:
            if self.pos >= self.words.size:
                raise CorruptStreamError("rANS lane ran out of words: the payload is corrupt")
            self.x = (self.x << 16) | int(self.words[self.pos])
            self.pos += 1


def decode(data: bytes, indexes: np.ndarray, tables: TableSet) -> np.ndarray:
    """Decodes a payload made by :func:`encode` with the same indexes and tables.

    Args:
        data: the rANS payload.
        indexes: the table index of every symbol, as given to the encoder (its size is the
            number of symbols expected).
        tables: the probability tables the encoder used.

    Returns:
        int32 array of shape ``(indexes.size,)``.

    Raises:
        TruncatedStreamError: the payload ends early.
        CorruptStreamError: the payload is inconsistent (sizes, states, words left over).
        ValueError: an index is out of range.
    """
    idx = np.asarray(indexes).reshape(-1).astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= len(tables)):
        raise ValueError(f"table index out of range 0..{len(tables) - 1}")
    buf = memoryview(data)
    n, pos = read_varint(buf, 0)
    seg_n, pos = read_varint(buf, pos)
    if n != idx.size:
        raise CorruptStreamError(f"payload holds {n} symbols, the decoder expects {idx.size}")
    if seg_n < 1:
        raise CorruptStreamError("segment size is 0")
    n_seg = -(-n // seg_n)
    lengths = []
    for _ in range(n_seg):
        length, pos = read_varint(buf, pos)
        lengths.append(length)
    if pos + sum(lengths) > len(buf):
        raise TruncatedStreamError("rANS payload is shorter than its segment table says")
    if pos + sum(lengths) < len(buf):
        raise CorruptStreamError("rANS payload has trailing bytes")
    out = np.empty(n, dtype=np.int32)
    for s, length in enumerate(lengths):
        s0 = s * seg_n
        seg_idx = idx[s0 : s0 + seg_n]
        out[s0 : s0 + seg_idx.size] = _decode_segment(buf[pos : pos + length], seg_idx, tables)
        pos += length
    return out


def _decode_segment(body: memoryview, idx: np.ndarray, tables: TableSet) -> np.ndarray:
    n = idx.size
    k, pos = read_varint(body, 0)
    if not 1 <= k <= min(MAX_LANES, n):
        raise CorruptStreamError(f"segment declares {k} lanes for {n} symbols")
    if pos + 4 * k > len(body):
        raise CorruptStreamError("segment header is cut short")
    states = [int.from_bytes(body[pos + 4 * i : pos + 4 * i + 4], "little") for i in range(k)]
    pos += 4 * k
    counts = []
    for _ in range(k):
        c, pos = read_varint(body, pos)
        counts.append(c)
    if pos + 2 * sum(counts) != len(body):
        raise CorruptStreamError("segment word counts do not match its length")
    readers = []
    for x, c in zip(states, counts):
        if not RANS_L <= x < (1 << 32):
            raise CorruptStreamError("rANS lane state out of range")
        readers.append(_LaneReader(x, np.frombuffer(body[pos : pos + 2 * c], dtype="<u2")))
        pos += 2 * c
    out = np.empty(n, dtype=np.int32)
    for j in range(n):
        out[j] = _decode_value(readers[j % k], int(idx[j]), tables)
    for r in readers:
        if r.x != RANS_L or r.pos != r.words.size:
            raise CorruptStreamError("rANS lane did not end in its initial state: the payload is corrupt")
    return out


def _decode_value(r: _LaneReader, t: int, tables: TableSet) -> int:
    n = int(tables.sizes[t])
    off = int(tables.offsets[t])
    s = r.decode_op(tables.cdf[t], n)
    if s < n - 1:
        return off + s
    m = r.decode_uniform(5)
    e, shift = 0, 0
    while shift < m:
        b = min(16, m - shift)
        e |= r.decode_uniform(b) << shift
        shift += b
    u = (e | (1 << m)) - 1
    value = off + n - 1 + (u >> 1) if u & 1 else off - 1 - (u >> 1)
    if abs(value) > MAX_SYMBOL_MAGNITUDE:
        raise CorruptStreamError("escaped symbol out of range: the payload is corrupt")
    return value
