"""ncodec's entropy coding: quantised probability tables and an interleaved rANS coder.

:func:`encode` / :func:`decode` code integer symbols with per-symbol tables (a :class:`TableSet`)
using the fastest available backend (C++ extension, CUDA, or the pure-Python reference
:mod:`ncodec.entropy.rans_ref`, which defines the format). All backends are bit-exact.
"""

from __future__ import annotations

from ncodec.entropy.coder import available_backends, cuda_available, decode, encode
from ncodec.entropy.constants import (
    AUTO_LANE_BITS,
    AUTO_MAX_LANES,
    DEFAULT_SEGMENT_SYMBOLS,
    MAX_LANES,
    MAX_SYMBOL_MAGNITUDE,
    MAX_TABLE_OFFSET,
    MAX_TABLE_SIZE,
    PREC,
    RANS_L,
    auto_lanes,
)
from ncodec.entropy.tables import (
    TableSet,
    from_pmfs,
    gaussian_scale_table,
    gaussian_tables,
    quantize_pmf,
    scale_indexes,
)

__all__ = [
    "AUTO_LANE_BITS",
    "AUTO_MAX_LANES",
    "DEFAULT_SEGMENT_SYMBOLS",
    "MAX_LANES",
    "MAX_SYMBOL_MAGNITUDE",
    "MAX_TABLE_OFFSET",
    "MAX_TABLE_SIZE",
    "PREC",
    "RANS_L",
    "TableSet",
    "auto_lanes",
    "available_backends",
    "cuda_available",
    "decode",
    "encode",
    "from_pmfs",
    "gaussian_scale_table",
    "gaussian_tables",
    "quantize_pmf",
    "scale_indexes",
]
