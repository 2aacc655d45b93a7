"""Constants of the rANS format, shared by the Python reference, the C++ and the CUDA coders.

Changing any of these changes the bitstream: bump ``FORMAT_VERSION`` in ``ncodec.bitstream``.
"""

from __future__ import annotations

PREC = 16
"""Probability precision in bits: every table's CDF sums to ``2**PREC``."""

RANS_L = 1 << 16
"""Lower bound of a lane's state; states live in ``[RANS_L, 2**32)`` and start and end at it."""

MAX_LANES = 1024
"""Most interleaved lanes in one segment."""

MAX_TABLE_SIZE = 4096
"""Most entries (regular symbols plus escape) in one table."""

MAX_TABLE_OFFSET = 1 << 20
"""Largest magnitude of a table's first value."""

MAX_SYMBOL_MAGNITUDE = 1 << 30
"""Largest magnitude of a coded symbol; larger values are refused, escapes included."""

DEFAULT_SEGMENT_SYMBOLS = 1 << 16
"""Symbols per independently decodable segment unless the caller says otherwise."""

AUTO_LANE_BITS = 16384
"""Auto lanes: one lane per this many estimated bits (2 KiB), so lane headers stay near 0.3 %."""

AUTO_MAX_LANES = 32


def auto_lanes(estimated_bits: int) -> int:
    """Lanes for a segment whose ops cost ``estimated_bits`` (sum of ``PREC - floor(log2 freq)``
    over each symbol's first op): the largest power of two ``<= estimated_bits // AUTO_LANE_BITS``,
    clamped to ``1..AUTO_MAX_LANES``. Integer-only, so every implementation picks the same."""
    q = estimated_bits // AUTO_LANE_BITS
    if q < 1:
        return 1
    return min(AUTO_MAX_LANES, 1 << (q.bit_length() - 1))
