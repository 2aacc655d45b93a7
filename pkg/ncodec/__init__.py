"""ncodec: neural codecs for images, audio and video with bit-exact decoding and a fast rANS core.

The public API is :mod:`ncodec.codec` (``import ncodec.codec as nc``); the command line is
``ncodec`` (or ``python -m ncodec``). Importing this package imports nothing else.
"""

from __future__ import annotations


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ncodec")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


__version__ = _version()

__all__ = ["__version__"]
