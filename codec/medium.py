"""The per-medium codec interface and the table from the container's media id to its codec.

A medium (image, audio, video) is one module with one :class:`MediumCodec` subclass and one row
in :data:`CODECS`; ``api.py`` and the CLI dispatch through the table and never branch on the
medium. The path of an encode::

    obj --prepare--> prepared --analyse(model)--> Analysis          (rate independent: g_a, once)
    Analysis.encode(rate) -> Encoded(params, payloads, reconstruction)  (per rate: entropy coding)
    ratecontrol.search(...) over Analysis.encode for --target-bpp/--target-psnr/--target-kbps

and of a decode::

    StreamReader -> header.params -> codec.params_type.from_bytes -> codec.decode(model, params,
    segments) -> the medium's object (PIL image, (samples, rate), ...) -> codec.write(file)

Modules are imported on first use, so the table costs nothing to ``ncodec info`` or ``--help``.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ncodec.bitstream.container import MEDIA_AUDIO, MEDIA_IMAGE, MEDIA_NAMES, MEDIA_VIDEO
from ncodec.bitstream.errors import CorruptStreamError

Progress = Callable[[Iterable], Iterable]


def no_progress(it: Iterable) -> Iterable:
    return it


@dataclass
class Encoded:
    """A stream's content at one rate: the parameter block, the segment payloads in stream order,
    and the reconstruction the decoder will produce (computed on demand: rate searches that only
    count bytes never pay for the synthesis)."""

    params: Any
    payloads: list[bytes]
    reconstruct: Callable[[], Any] = field(repr=False)


class Analysis(ABC):
    """The rate-independent part of an encode (the analysis transform's output), kept so that a
    rate search codes many rates from one analysis."""

    @abstractmethod
    def encode(self, rate: float) -> Encoded:
        """Codes at ``rate``, in the medium's rate unit (``MediumCodec.rate_unit``)."""

    @property
    def costly(self) -> bool:
        """Whether :meth:`encode` is expensive (an encoder effort above 0), so that a rate search
        should first narrow the rate on :meth:`draft` encodes."""
        return False

    def draft(self, rate: float) -> Encoded:
        """A cheap encode whose size tracks :meth:`encode`'s closely (the same analysis at effort
        0), for narrowing a rate search; by default :meth:`encode` itself."""
        return self.encode(rate)


class EffortAnalysis(Analysis):
    """An analysis with an encoder effort: ``schedule`` is its latent optimisation (None at effort
    0), which :meth:`draft` skips."""

    schedule: Any = None

    @property
    def costly(self) -> bool:
        return self.schedule is not None

    def draft(self, rate: float) -> Encoded:
        schedule, self.schedule = self.schedule, None
        try:
            return self.encode(rate)
        finally:
            self.schedule = schedule


@dataclass(frozen=True)
class Target:
    """A rate-control target of a medium: ``measure`` maps a whole stream (bytes) and its
    :class:`Encoded` to the targeted quantity in ``unit``, which grows with the rate parameter;
    ``mode`` is :func:`ncodec.codec.ratecontrol.search`'s: ``at_most`` (bits), ``at_least``
    (PSNR) or ``nearest`` (kbit/s); ``tries`` bounds the rates coded."""

    name: str
    unit: str
    measure: Callable[[bytes, Encoded], float]
    mode: str = "at_most"
    tries: int = 16


class MediumCodec(ABC):
    """One medium's codec. Subclasses set the class attributes and implement the methods."""

    name: str = ""  #: "image", "audio", "video"
    media: int = 0  #: container media id (FORMAT.md)
    extensions: frozenset[str] = frozenset()  #: input file suffixes, lower case
    out_formats: dict[str, str] = {}  #: output suffix -> writer format name
    rate_unit: str = ""  #: what Analysis.encode's ``rate`` is, for messages
    rate_range: tuple[float, float] = (0.0, 100.0)  #: the rate parameter's domain
    rate_step: float = 0.01  #: its resolution (what the header stores)
    rate_geometric: bool = False  #: searched in log space (rates spanning decades)

    @property
    def params_type(self) -> type:
        from ncodec.bitstream.params import PARAMS

        return PARAMS[self.media]

    @property
    def default_out(self) -> str:
        """The output suffix used when no file name gives one (``-o -``, folders): the first of
        :attr:`out_formats`."""
        return next(iter(self.out_formats))

    # ---- encoder ----
    @abstractmethod
    def accepts(self, obj: Any) -> bool:
        """Whether an in-memory object is this medium's input (for ``api.encode``)."""

    def batch(self, obj: Any) -> list[Any] | None:
        """The items of a batch of inputs (e.g. an ``[N, 3, H, W]`` tensor), each coded as one
        stream; None when ``obj`` is a single input."""
        return None

    def sniff(self, data: bytes) -> bool:
        """Whether file content ``data`` (a whole file, as read from standard input or from a
        file whose name gives no type) is this medium's input."""
        return False

    @abstractmethod
    def read(self, path: Path | BinaryIO) -> Any:
        """Reads an input file (a path, or a seekable binary file object such as standard input
        read into memory) to the object :meth:`analyse` takes (raises UnsupportedInputError)."""

    @abstractmethod
    def analyse(
        self, model: Any, obj: Any, *, device: str = "cpu", progress: Progress = no_progress, **options: Any
    ) -> Analysis:
        """Checks and normalises ``obj`` and runs the analysis transforms (raises
        UnsupportedInputError for unsupported content)."""

    def rate_of(self, quality: float) -> float:
        """The rate parameter for a user ``quality`` in 0..100 (identity where they coincide)."""
        return float(quality)

    #: Media too long to analyse whole in memory (video) stream their encode: they set this and
    #: implement :meth:`encode_into`, which ``api.encode_file`` then calls instead of
    #: ``analyse``/``Analysis.encode``/``ratecontrol.search`` (the medium controls its rate itself).
    streaming = False

    def encode_into(self, model: Any, src: Any, out: BinaryIO, **options: Any) -> Any:
        """Streaming media: codes the input file ``src`` (a path or a seekable file object) into
        the binary file ``out``; returns an object with ``bytes`` and ``params``. ``options``:
        ``quality``, ``target_kbps``, ``device``, ``progress`` and the medium's own."""
        raise NotImplementedError(f"{self.name} does not stream its encode")

    def targets(self, analysis: Analysis) -> dict[str, Target]:
        """The rate-control targets this medium supports (``bpp``, ``psnr``, ``kbps``...)."""
        return {}

    # ---- decoder ----
    @abstractmethod
    def decode(
        self,
        model: Any,
        params: Any,
        segments: Iterable[bytes],
        *,
        device: str = "cpu",
        progress: Progress = no_progress,
    ) -> Any:
        """Rebuilds the medium from its segments (consumed one at a time)."""

    def decode_stream(
        self,
        model: Any,
        params: Any,
        segments: Iterable[bytes],
        *,
        device: str = "cpu",
        progress: Progress = no_progress,
    ) -> Iterator[Any]:
        """Streaming decode for file output: yields the pieces :meth:`write` accepts. The default
        yields the whole decoded object once."""
        yield self.decode(model, params, segments, device=device, progress=progress)

    def decode_range_stream(
        self,
        model: Any,
        params: Any,
        reader: Any,
        *,
        start: float | None = None,
        frames: int | None = None,
        region: tuple[int, int, int, int] | None = None,
        device: str = "cpu",
    ) -> Iterator[Any]:
        """Random access for file output, found through the index of ``reader`` (a seekable
        ``StreamReader``): the pieces from ``start`` seconds, ``frames`` of them (media with
        frames), or the pixels of ``region = (x, y, width, height)`` (media with pictures)."""
        from ncodec.codec.errors import InvalidArgumentError

        raise InvalidArgumentError(f"{self.name} streams have no frames or regions to decode")

    @abstractmethod
    def write(self, pieces: Iterable[Any], params: Any, out: BinaryIO, suffix: str) -> None:
        """Writes decoded pieces (from :meth:`decode_stream`) as a file of type ``suffix``."""

    def decoded_shape(self, params: Any) -> tuple[int, ...]:
        """What a decode report prints: (width, height) or (channels, samples)."""
        return params.shape


CODECS: dict[int, str] = {
    MEDIA_IMAGE: "ncodec.codec.image:ImageCodec",
    MEDIA_AUDIO: "ncodec.codec.audio:AudioCodec",
    MEDIA_VIDEO: "ncodec.codec.video:VideoCodec",
}
"""Media id -> ``module:class`` of its codec. Adding a medium is one module and one row here."""

_loaded: dict[int, MediumCodec] = {}


def codec_for(media: int) -> MediumCodec:
    """The codec of container media id ``media``.

    Raises:
        CorruptStreamError: an unknown media id.
        UnsupportedVersionError: a medium this version of ncodec cannot code.
    """
    if media not in _loaded:
        spec = CODECS.get(media)
        if spec is None:
            from ncodec.bitstream.errors import UnsupportedVersionError

            if media in MEDIA_NAMES:
                raise UnsupportedVersionError(
                    f"{MEDIA_NAMES[media]} streams cannot be decoded by this version of ncodec"
                )
            raise CorruptStreamError(f"unknown media type {media}")
        mod, cls = spec.split(":")
        _loaded[media] = getattr(importlib.import_module(mod), cls)()
    return _loaded[media]


def media_ids() -> list[int]:
    return sorted(CODECS)


__all__ = [
    "MediumCodec",
    "Analysis",
    "Encoded",
    "Target",
    "CODECS",
    "codec_for",
    "MEDIA_VIDEO",
]
