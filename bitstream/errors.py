"""The exceptions every ncodec reader raises on bad input.

Each message says what is wrong and what the user can do. All derive from :class:`BitstreamError`
(itself a ``ValueError``), so ``except BitstreamError`` catches every stream problem.
"""

from __future__ import annotations


class BitstreamError(ValueError):
    """Base class: the stream cannot be decoded."""


class CorruptStreamError(BitstreamError):
    """The stream is damaged: a checksum, magic, length or coded value is inconsistent."""


class TruncatedStreamError(CorruptStreamError):
    """The stream ends before the data it declares (an incomplete download or copy)."""


class UnsupportedVersionError(BitstreamError):
    """The stream was written by a newer (or unknown) format version."""


class ModelMismatchError(BitstreamError):
    """The stream was encoded with a different model (or weights) than the one decoding it."""

    def __init__(self, stream_model: str, stream_hash: str, local_model: str, local_hash: str):
        self.stream_model, self.stream_hash = stream_model, stream_hash
        self.local_model, self.local_hash = local_model, local_hash
        super().__init__(
            f"stream was encoded with model '{stream_model}' (weights {stream_hash[:12]}), but the "
            f"decoder has '{local_model}' (weights {local_hash[:12]}); decode with the ncodec version "
            "and weights that wrote it"
        )


class LimitExceededError(CorruptStreamError):
    """A declared size exceeds a hard limit; nothing was allocated for it."""
