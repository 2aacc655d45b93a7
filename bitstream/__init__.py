"""The ``.ncb`` container (specified byte by byte in FORMAT.md) and its exceptions. No torch here."""

from ncodec.bitstream.container import (
    FORMAT_VERSION,
    MAGIC,
    MEDIA_AUDIO,
    MEDIA_IMAGE,
    MEDIA_VIDEO,
    Header,
    StreamReader,
    StreamWriter,
    read_header,
    read_stream,
    write_stream,
)
from ncodec.bitstream.errors import (
    BitstreamError,
    CorruptStreamError,
    LimitExceededError,
    ModelMismatchError,
    TruncatedStreamError,
    UnsupportedVersionError,
)
from ncodec.bitstream.params import AudioParams, ImageParams, VideoParams

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "MEDIA_AUDIO",
    "MEDIA_IMAGE",
    "MEDIA_VIDEO",
    "Header",
    "StreamReader",
    "StreamWriter",
    "read_header",
    "read_stream",
    "write_stream",
    "BitstreamError",
    "CorruptStreamError",
    "LimitExceededError",
    "ModelMismatchError",
    "TruncatedStreamError",
    "UnsupportedVersionError",
    "AudioParams",
    "ImageParams",
    "VideoParams",
]
