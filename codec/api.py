"""The Python API; the CLI is a thin shell over it.

    >>> from PIL import Image
    >>> import ncodec.codec as nc
    >>> data = nc.encode(Image.open("kodim01.png"), quality=50)       # bytes (.ncb stream)
    >>> img = nc.decode(data)                                          # PIL.Image
    >>> nc.encode_file("kodim01.png", "x.ncb", target_bpp=0.5)         # EncodeReport
    >>> nc.decode_file("x.ncb", "y.png")                               # DecodeReport

File names may be ``"-"`` for standard input or output (the input's medium is then sniffed from
its content). Every function dispatches through the medium table (:mod:`ncodec.codec.medium`): nothing here
knows one medium from another. Units: bpp = bits of the whole stream per pixel; kbps = kbit/s of
the whole stream; quality is a float in [0, 100].
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

from ncodec.bitstream.container import (
    MAGIC,
    MEDIA_NAMES,
    Header,
    StreamReader,
    StreamWriter,
    write_stream,
)
from ncodec.bitstream.errors import BitstreamError, CorruptStreamError, ModelMismatchError
from ncodec.bitstream.params import PARAMS
from ncodec.codec.errors import (
    InvalidArgumentError,
    OutputError,
    OutputExistsError,
    UnsupportedInputError,
)
from ncodec.codec.medium import Encoded, MediumCodec, codec_for, media_ids
from ncodec.models.registry import SHIPPED, UnknownModelError, load_model, model_info

DEFAULT_QUALITY = 50.0
_TARGETS = {"target_bpp": "bpp", "target_psnr": "psnr", "target_kbps": "kbps"}
STDIO = "-"
"""The file name of standard input (an input) or standard output (an output)."""
PROGRESS_DELAY = 1.0
"""Seconds before a progress bar shows: operations shorter than this show none."""


@lru_cache(maxsize=8)
def _model(name: str, device: str):
    m = load_model(name)
    if device != "cpu":
        import copy

        m = copy.deepcopy(m).to(device)
    return m


def _check_device(device: str) -> str:
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise InvalidArgumentError(f"device must be 'cpu' or 'cuda', got '{device}'")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UnsupportedInputError("a CUDA device was asked for, but none is available")
    return device


def _progress(enabled: bool, desc: str) -> Callable[[Iterable], Iterable]:
    """A tqdm wrapper for iterables on a terminal's stderr, shown after :data:`PROGRESS_DELAY`."""
    if not enabled or not sys.stderr.isatty():
        return lambda it: it
    from tqdm import tqdm

    return lambda it: tqdm(it, desc=desc, leave=False, delay=PROGRESS_DELAY)


def _codec_of(obj: Any) -> MediumCodec:
    for media in media_ids():
        codec = codec_for(media)
        if codec.accepts(obj):
            return codec
    raise UnsupportedInputError(f"cannot encode an object of type {type(obj).__name__}")


# ---- encode ---------------------------------------------------------------------------------


@dataclass
class Encoding:
    """An encode's outcome: the stream, its parameter block, and for a target search the target
    (``bpp``, ``psnr``, ``kbps``), the value reached and whether the goal was out of reach."""

    data: bytes
    params: Any
    target: str | None = None
    reached: float | None = None
    clamped: bool = False


def _rate_request(
    quality: float | None, target_bpp: float | None, target_psnr: float | None, target_kbps: float | None
) -> tuple[str, str, float] | None:
    """The one rate target asked for, as (argument, target name, goal), or None for a quality;
    checks that at most one is given and that quality lies in 0..100."""
    values = {"target_bpp": target_bpp, "target_psnr": target_psnr, "target_kbps": target_kbps}
    given = [(k, _TARGETS[k], float(v)) for k, v in values.items() if v is not None]
    if len(given) + (quality is not None) > 1:
        raise InvalidArgumentError("give at most one of quality, target_bpp, target_psnr, target_kbps")
    if quality is not None and not 0 <= quality <= 100:
        raise InvalidArgumentError(f"quality must be in 0..100, got {quality}")
    return given[0] if given else None


def encode_obj(
    codec: MediumCodec,
    obj: Any,
    *,
    quality: float | None = None,
    target_bpp: float | None = None,
    target_psnr: float | None = None,
    target_kbps: float | None = None,
    model: str | None = None,
    device: str = "cpu",
    progress: bool = False,
    **options: Any,
) -> Encoding:
    """:func:`encode` with the medium chosen and the search outcome reported."""
    given = _rate_request(quality, target_bpp, target_psnr, target_kbps)
    device = _check_device(device)
    info = model_info(model, codec.name)
    m = _model(info.name, device)
    analysis = codec.analyse(m, obj, device=device, progress=_progress(progress, codec.name), **options)

    def stream_at(rate: float, code=analysis.encode) -> tuple[bytes, Encoded]:
        enc = code(rate)
        name, digest = info.name, m.digest
        if info.decoder_above is not None and rate > info.decoder_above[0]:
            name = info.decoder_above[1]  # same payload; that model decodes this rate better
            digest = _model(name, device).digest
        return write_stream(Header(codec.media, name, digest[:16], enc.params.to_bytes()), enc.payloads), enc

    if given is None:
        data, enc = stream_at(codec.rate_of(DEFAULT_QUALITY if quality is None else float(quality)))
        return Encoding(data, enc.params)
    arg, name, goal = given
    targets = codec.targets(analysis)
    if name not in targets:
        raise InvalidArgumentError(
            f"{arg} does not apply to {codec.name}; use one of quality, "
            + ", ".join(k for k, v in _TARGETS.items() if v in targets)
        )
    if not goal > 0:
        raise InvalidArgumentError(f"{arg} must be positive")
    from ncodec.codec.ratecontrol import search

    t = targets[name]
    scale = 1.0 / codec.rate_step
    lo, hi = (int(round(r * scale)) for r in codec.rate_range)
    bar = None
    if progress and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=t.tries, desc=f"{name} search", unit="try", leave=False, delay=PROGRESS_DELAY)

    def tried(rate: float, value: float) -> None:
        if bar is not None:
            bar.set_postfix_str(f"{codec.rate_unit} {rate:g}: {value:.4g} {t.unit}", refresh=False)
            bar.update()

    def run(code_at, guess: int | None = None):
        return search(
            code_at,
            lambda item: t.measure(*item),
            goal,
            lo,
            hi,
            mode=t.mode,
            scale=scale,
            geometric=codec.rate_geometric,
            max_tries=t.tries,
            progress=tried,
            guess=guess,
        )

    try:
        guess = None
        if analysis.costly:
            # an encoder effort: narrow the rate on cheap effort-0 drafts, then code at full effort
            # only around it (a few tries instead of a bisection of the whole domain)
            draft = run(lambda rate: stream_at(rate, analysis.draft))
            guess = int(round(draft.rate * scale))
        res = run(stream_at, guess)
    finally:
        if bar is not None:
            bar.close()
    data, enc = res.item
    return Encoding(data, enc.params, name, res.value, res.clamped)


def encode(
    obj: Any,
    *,
    quality: float | None = None,
    target_bpp: float | None = None,
    target_psnr: float | None = None,
    target_kbps: float | None = None,
    model: str | None = None,
    device: str = "cpu",
    progress: bool = False,
    **options: Any,
) -> bytes | list[bytes]:
    """Encodes a medium to an ``.ncb`` stream (bytes), or a batch to a list of streams.

    Args:
        obj: a file name (``str`` or ``Path``: any file ``encode_file`` reads; ``"-"`` is standard
            input), or an object in memory: an image (``PIL.Image.Image``; a numpy array
            ``[H, W]`` / ``[H, W, 3|4]``; a torch tensor ``[3, H, W]``; uint8, or float in 0..1),
            a batch of images (a tensor ``[N, 3, H, W]``: returns a list of N streams) or audio
            (a ``(samples float32 [C, T], sample_rate)`` tuple).
        quality: 0..100, higher is better (default 50). At most one of quality and the targets.
        target_bpp: images: the highest quality whose whole stream stays within this many bits
            per pixel.
        target_psnr: images: the lowest quality reaching this RGB PSNR (dB).
        target_kbps: audio (and video): the rate whose whole stream is nearest this many kbit/s.
        model: shipped model name (``ncodec models``); default per medium.
        device: ``cpu`` or ``cuda`` for the transforms (entropy coding and table selection are
            exact and identical on both).
        options: the medium's own, e.g. ``tile`` (image segment edge in pixels, a multiple of 64
            in 64..4096: the unit of entropy coding and region decode) or ``chunk`` (audio
            samples per chunk).

    Raises:
        UnsupportedInputError: the object is not a supported medium, or the file unreadable.
        UnknownModelError: no such model for that medium.
        ValueError: conflicting or out-of-range rate arguments.
    """
    if isinstance(obj, str | os.PathLike):
        codec, obj = read_input(obj)
    else:
        codec = _codec_of(obj)
    kw = dict(
        quality=quality,
        target_bpp=target_bpp,
        target_psnr=target_psnr,
        target_kbps=target_kbps,
        model=model,
        device=device,
        progress=progress,
        **options,
    )
    items = codec.batch(obj)
    if items is not None:
        return [encode_obj(codec, item, **kw).data for item in items]
    return encode_obj(codec, obj, **kw).data


# ---- decode ---------------------------------------------------------------------------------


def _open_stream(reader: StreamReader, device: str) -> tuple[MediumCodec, Any, Any]:
    """The codec, checked parameters and model of a stream.

    Raises:
        ModelMismatchError: the stream names a model that is not installed, or other weights.
    """
    header = reader.header
    codec = codec_for(header.media)
    params = codec.params_type.from_bytes(header.params)
    info = SHIPPED.get(header.model_id)
    if info is None or codec.name not in info.media:
        raise ModelMismatchError(header.model_id, header.model_hash.hex(), "(none installed)", "-")
    m = _model(info.name, device)
    if m.digest[:16] != header.model_hash:
        raise ModelMismatchError(header.model_id, header.model_hash.hex(), info.name, m.digest[:16].hex())
    return codec, params, m


def decode(
    data: bytes | str | os.PathLike, *, device: str = "cpu", region: tuple[int, int, int, int] | None = None
) -> Any:
    """Decodes an ``.ncb`` stream (bytes, or a file name) to its medium's object (``region``:
    only the pixels ``(x, y, width, height)`` of an image, decoding only the segments under it):

    * image: a ``PIL.Image.Image``, mode ``RGB``, ``L`` (grayscale sources) or ``RGBA`` (sources
      with alpha), of the coded size;
    * audio: a tuple ``(samples, sample_rate)``: ``numpy.ndarray`` float32 ``[channels, samples]``
      in about [-1, 1] and the source's rate in Hz (int).

    Raises:
        ncodec.bitstream.BitstreamError: corrupt, truncated, unsupported or mismatched stream.
        UnsupportedInputError: an unreadable file.
    """
    if isinstance(data, str | os.PathLike):
        data = _read_bytes(data)
    reader = StreamReader(io.BytesIO(bytes(data)))
    device = _check_device(device)
    codec, params, m = _open_stream(reader, device)
    if region is not None:
        return next(iter(codec.decode_range_stream(m, params, reader, region=region, device=device)))
    return codec.decode(m, params, reader.segments(), device=device)


def decode_audio_chunk(data: bytes | str | Path, index: int, *, device: str = "cpu") -> tuple[Any, int]:
    """Random access: decodes audio chunk ``index`` alone (through the stream's index) to
    ``(samples float32 [C, n], sample_rate)``, covering input samples ``index*chunk`` onwards."""
    from ncodec.codec import audio

    f = io.BytesIO(bytes(data)) if isinstance(data, bytes | bytearray) else open(data, "rb")
    with f:
        reader = StreamReader(f)
        if MEDIA_NAMES.get(reader.header.media) != "audio":
            raise UnsupportedInputError("not an audio stream")
        _, params, m = _open_stream(reader, _check_device(device))
        payload = reader.segment(index)
        return audio.decode_chunk_at(m, params, payload, index), params.sample_rate


# ---- files ----------------------------------------------------------------------------------


@dataclass
class EncodeReport:
    """What :func:`encode_file` did: stream size in bytes, encode time in seconds, and the rate:
    ``bpp`` (bits per pixel) for images, ``kbps`` (kbit/s) for audio and video, whose ``duration``
    is in seconds. For a target search, ``target`` names it, ``reached`` is the value the stream
    reaches (in the target's unit) and ``clamped`` says that the goal lay out of reach."""

    input: str
    output: str
    medium: str
    bytes: int
    pixels: int
    seconds: float
    duration: float = 0.0
    target: str | None = None
    reached: float | None = None
    clamped: bool = False
    stream: dict[str, Any] | None = None
    """The stream's parameters as ``info`` gives them (e.g. ``quality``, ``rate_kbps``)."""

    @property
    def bpp(self) -> float:
        return self.bytes * 8 / self.pixels if self.pixels and self.medium == "image" else 0.0

    @property
    def kbps(self) -> float:
        return self.bytes * 8 / self.duration / 1000 if self.duration else 0.0

    def rate(self) -> str:
        """The rate in the medium's unit, for people."""
        return f"{self.bpp:.4f} bpp" if self.medium == "image" else f"{self.kbps:.2f} kbps"


@dataclass
class DecodeReport:
    """What :func:`decode_file` did: ``size`` is (width, height) for images and (channels,
    samples) for audio; ``seconds`` the decode time."""

    input: str
    output: str
    medium: str
    size: tuple[int, ...]
    seconds: float


class _Stdin(io.BytesIO):
    """Standard input read into memory, named ``-`` in messages."""

    name = STDIO

    def __str__(self) -> str:
        return "<stdin>"


def _read_bytes(src: str | os.PathLike) -> bytes:
    """A whole input file (``-``: standard input) as bytes."""
    if str(src) == STDIO:
        return sys.stdin.buffer.read()
    try:
        with open(src, "rb") as f:
            return f.read()
    except OSError as e:
        raise UnsupportedInputError(f"{src}: cannot open ({e.strerror})") from None


def sniff_medium(data: bytes, name: str = STDIO) -> MediumCodec:
    """The codec whose input ``data`` (file content) is, asked of each medium in turn."""
    if data[: len(MAGIC)] == MAGIC:
        raise UnsupportedInputError(f"{name}: this is an ncodec stream already (decode it)")
    if not data:
        raise UnsupportedInputError(f"{name}: empty input")
    for media in media_ids():
        codec = codec_for(media)
        if codec.sniff(data):
            return codec
    raise UnsupportedInputError(f"{name}: not an image, audio or video file this version reads")


def detect_medium(path: str | Path) -> MediumCodec:
    """The codec for an input file: from its suffix, else from its content."""
    path = Path(path)
    ext = path.suffix.lower()
    for media in media_ids():
        codec = codec_for(media)
        if ext in codec.extensions:
            return codec
    if not path.exists():
        raise UnsupportedInputError(f"{path}: no such file")
    if not path.is_file():
        raise UnsupportedInputError(f"{path}: not a file (images, audio or video expected)")
    return sniff_medium(_read_bytes(path), str(path))


def read_input(src: str | os.PathLike) -> tuple[MediumCodec, Any]:
    """Reads an input file (``-``: standard input, whose medium is sniffed from its content) to
    its codec and the object the codec encodes."""
    if str(src) == STDIO:
        data = _read_bytes(src)
        codec = sniff_medium(data)
        return codec, codec.read(_Stdin(data))
    codec = detect_medium(Path(src))
    return codec, codec.read(Path(src))


def media_suffixes() -> set[str]:
    """Every suffix some medium reads or writes (a ``.ncb`` stream must not be named so)."""
    out: set[str] = set()
    for media in media_ids():
        codec = codec_for(media)
        out |= set(codec.extensions) | set(codec.out_formats)
    return out


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_stdout(write: Callable[[BinaryIO], None]) -> None:
    """Writes to standard output, through an anonymous spool (writers seek back: WAV sizes, MP4
    indexes), so that a failure leaves nothing half-written and pipes work."""
    out = sys.stdout.buffer
    if out.isatty():
        raise InvalidArgumentError("refusing to write binary data to a terminal: redirect or pipe it")
    with tempfile.SpooledTemporaryFile(max_size=64 << 20) as spool:
        write(spool)
        spool.seek(0)
        shutil.copyfileobj(spool, out)
    out.flush()


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None], force: bool) -> None:
    """Writes through a temporary file in the same folder, then renames it into place; ``-`` is
    standard output. The file gets the permissions a new file would (``0o666 & ~umask``), or
    those of the file it replaces. Nothing is left behind on failure, interruption
    (KeyboardInterrupt) or SystemExit (the CLI turns SIGTERM into one).

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is false.
        OutputError: the file cannot be written (its folder is missing or read-only, the disk full).
    """
    if str(path) == STDIO:
        return _write_stdout(write)
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"{path} exists")
    try:
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask()
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None
    try:
        try:
            os.fchmod(fd, mode)
            f = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            raise
        with f:
            write(f)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and not isinstance(e, OutputError | BitstreamError | UnsupportedInputError):
            raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None
        raise


def encode_file(src: str | Path, dst: str | Path, *, force: bool = False, **kwargs: Any) -> EncodeReport:
    """Encodes the file ``src`` to the ``.ncb`` file ``dst`` (atomically); either may be ``-``
    (standard input, sniffed, or output). ``kwargs`` as :func:`encode`.

    Raises:
        InvalidArgumentError: ``dst`` has a media suffix (``.png``, ``.wav``...): a stream named so
            would pass for that type; name it ``.ncb``.
        OutputExistsError, OutputError: as :func:`atomic_write`.
    """
    src, dst = Path(src), Path(dst)
    if str(dst) != STDIO:
        ext = dst.suffix.lower()
        if ext in media_suffixes():
            raise InvalidArgumentError(
                f"{dst}: an ncodec stream is not a {ext} file; name the output "
                f"{dst.with_suffix('.ncb').name} (decode writes {ext} files)"
            )
        if dst.exists() and not force:
            raise OutputExistsError(f"{dst} exists")
    data = _read_bytes(src) if str(src) == STDIO else None  # standard input is read once
    codec = sniff_medium(data) if data is not None else detect_medium(src)
    source: Any = _Stdin(data) if data is not None else src
    if codec.streaming:
        return _encode_streaming(codec, source, src, dst, force, **kwargs)
    obj = codec.read(source)
    t0 = time.perf_counter()
    enc = encode_obj(codec, obj, **kwargs)
    dt = time.perf_counter() - t0
    atomic_write(dst, lambda f: f.write(enc.data), force)
    about = enc.params.describe(len(enc.data))
    pixels = about.get("width", 0) * about.get("height", 0)  # per frame for video
    return EncodeReport(
        str(src),
        str(dst),
        codec.name,
        len(enc.data),
        pixels,
        dt,
        about.get("seconds", 0.0),
        enc.target,
        enc.reached,
        enc.clamped,
        about,
    )


def _encode_streaming(
    codec: MediumCodec,
    source: Any,
    src: Path,
    dst: Path,
    force: bool,
    *,
    quality: float | None = None,
    target_bpp: float | None = None,
    target_psnr: float | None = None,
    target_kbps: float | None = None,
    model: str | None = None,
    device: str = "cpu",
    progress: bool = False,
    **options: Any,
) -> EncodeReport:
    """A medium that codes as it reads (video): the file streams through ``codec.encode_into``
    into the output, one group of frames in memory at a time; the medium does its own rate
    control (``target_kbps``)."""
    given = _rate_request(quality, target_bpp, target_psnr, target_kbps)
    if given is not None and given[1] != "kbps":
        raise InvalidArgumentError(f"{given[0]} does not apply to {codec.name}; use quality or target_kbps")
    device = _check_device(device)
    m = _model(model_info(model, codec.name).name, device)
    stats: list[Any] = []
    t0 = time.perf_counter()

    def write(f: BinaryIO) -> None:
        stats.append(
            codec.encode_into(
                m,
                source,
                f,
                quality=quality,
                target_kbps=target_kbps,
                device=device,
                progress=_progress(progress, codec.name),
                **options,
            )
        )

    atomic_write(dst, write, force)
    st = stats[0]
    about = st.params.describe(st.bytes)
    target = "kbps" if target_kbps is not None else None
    return EncodeReport(
        str(src),
        str(dst),
        codec.name,
        st.bytes,
        0,
        time.perf_counter() - t0,
        about.get("seconds", 0.0),
        target,
        about["kbps"] if target else None,
        False,
        about,
    )


def output_suffix(codec: MediumCodec, dst: str | Path, format: str | None = None) -> str:
    """The output type of a decode: ``format`` (``png``, ``.jpg``...) if given, else ``dst``'s
    suffix, else (``-``, no suffix) the medium's default (:attr:`MediumCodec.default_out`).

    Raises:
        OutputError: the medium cannot be written as that type.
    """
    if format:
        suffix = "." + format.lower().lstrip(".")
    elif str(dst) == STDIO or not Path(dst).suffix:
        suffix = codec.default_out
    else:
        suffix = Path(dst).suffix.lower()
    if suffix not in codec.out_formats:
        raise OutputError(
            f"{dst}: {codec.name} decodes to {', '.join(sorted(codec.out_formats))}, not '{suffix}'"
        )
    return suffix


def decode_file(
    src: str | Path,
    dst: str | Path,
    *,
    force: bool = False,
    device: str = "cpu",
    progress: bool = False,
    format: str | None = None,
    start: float | None = None,
    frames: int | None = None,
    region: tuple[int, int, int, int] | None = None,
) -> DecodeReport:
    """Decodes the ``.ncb`` file ``src`` into ``dst``, atomically, reading the stream segment by
    segment. Either may be ``-`` (standard input or output). The output type is ``format`` if
    given, else ``dst``'s suffix (images: PNG, JPEG, WebP, TIFF, BMP, PPM; audio: WAV, FLAC,
    MP3, Opus, Ogg (Opus), M4A (AAC); video: MKV (FFV1), MP4 (x264), Y4M), else the medium's
    default (PNG, WAV, MKV). ``start`` (seconds) and ``frames`` decode a range of a video,
    seeking through the index to the group of frames that holds the start; ``region``
    ``(x, y, width, height)`` (pixels) decodes only that part of an image."""
    src, dst = Path(src), Path(dst)
    if str(dst) != STDIO and dst.exists() and not force:
        raise OutputExistsError(f"{dst} exists")
    device = _check_device(device)
    t0 = time.perf_counter()
    if str(src) == STDIO:
        f: BinaryIO = io.BytesIO(_read_bytes(src))
    else:
        try:
            f = open(src, "rb")
        except OSError as e:
            raise UnsupportedInputError(f"{src}: cannot open ({e.strerror})") from None
    with f:
        reader = StreamReader(f)
        codec, params, m = _open_stream(reader, device)
        suffix = output_suffix(codec, dst, format)
        if start is None and frames is None and region is None:
            pieces = codec.decode_stream(
                m, params, reader.segments(), device=device, progress=_progress(progress, codec.name)
            )
        else:
            pieces = codec.decode_range_stream(
                m, params, reader, start=start, frames=frames, region=region, device=device
            )
        written = [0]

        def counted(it: Iterable[Any]) -> Iterable[Any]:
            for piece in it:
                written[0] += 1
                yield piece

        atomic_write(dst, lambda out: codec.write(counted(pieces), params, out, suffix), force)
    size = codec.decoded_shape(params)
    if start is not None or frames is not None:  # a range: the frames actually written
        size = (*size[:-1], written[0])
    if region is not None:
        size = tuple(region[2:])
    return DecodeReport(str(src), str(dst), codec.name, size, time.perf_counter() - t0)


def info(src: str | Path | bytes) -> dict[str, Any]:
    """Describes a stream: format version, medium, model, parameters and segment sizes.

    Reads every segment (verifying checksums) but decodes none, and imports no torch.
    """
    f = io.BytesIO(bytes(src)) if isinstance(src, bytes | bytearray) else open(src, "rb")
    with f:
        r = StreamReader(f)
        h = r.header
        sizes = [len(p) for p in r.segments()]
        total = f.tell()
    out: dict[str, Any] = {
        "format_version": h.version,
        "medium": MEDIA_NAMES[h.media],
        "model": h.model_id,
        "model_hash": h.model_hash.hex(),
        "bytes": total,
        "segments": len(sizes),
        "segment_bytes": sizes,
    }
    p = PARAMS[h.media].from_bytes(h.params)
    if len(sizes) != p.segments:
        raise CorruptStreamError(f"stream holds {len(sizes)} segments, its header implies {p.segments}")
    out.update(p.describe(total))
    return out


def models() -> list[dict[str, Any]]:
    """The shipped models: name, medium, rate range, description, weights and card paths, and
    whether the weights file is present (bool)."""
    return [
        {
            "name": i.name,
            "medium": i.medium,
            "rate_range": i.rate_range,
            "description": i.description,
            "weights": str(i.weights_path),
            "card": str(i.card_path),
            "available": i.weights_path.exists(),
        }
        for i in SHIPPED.values()
    ]


__all__ = [
    "encode",
    "encode_obj",
    "decode",
    "decode_audio_chunk",
    "encode_file",
    "decode_file",
    "detect_medium",
    "sniff_medium",
    "read_input",
    "output_suffix",
    "atomic_write",
    "STDIO",
    "info",
    "models",
    "Encoding",
    "EncodeReport",
    "DecodeReport",
    "StreamWriter",
    "StreamReader",
    "UnknownModelError",
]
