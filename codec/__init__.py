"""ncodec's public API: encode and decode media to and from ``.ncb`` streams.

See :mod:`ncodec.codec.api` for the functions and :mod:`ncodec.codec.cli` for the ``ncodec`` command.
"""

from ncodec.codec.api import (
    DecodeReport,
    EncodeReport,
    decode,
    decode_file,
    encode,
    encode_file,
    info,
    models,
)
from ncodec.codec.errors import OutputExistsError, UnknownModelError, UnsupportedInputError

__all__ = [
    "encode",
    "decode",
    "encode_file",
    "decode_file",
    "info",
    "models",
    "EncodeReport",
    "DecodeReport",
    "OutputExistsError",
    "UnknownModelError",
    "UnsupportedInputError",
]
