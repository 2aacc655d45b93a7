"""The Python API; the CLI is a thin shell over it.

    >>> from PIL import Image
    >>> import ncodec.codec as nc
    >>> data = nc.encode(Image.open("kodim01.png"), quality=50)       # bytes (.ncb stream)
    >>> img = nc.decode(data)                                          # PIL.Image
    >>> nc.encode_file("kodim01.png", "x.ncb", target_bpp=0.5)         # EncodeReport
    >>> nc.decode_file("x.ncb", "y.png")                               # DecodeReport

Units: bpp = bits of the whole stream per pixel; quality is a float in [0, 100].
"""

from __future__ import annotations

import io
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from ncodec.bitstream.container import (
    MEDIA_AUDIO,
    MEDIA_IMAGE,
    MEDIA_NAMES,
    Header,
    StreamReader,
    StreamWriter,
    write_stream,
)
from ncodec.bitstream.errors import CorruptStreamError, ModelMismatchError
from ncodec.bitstream.params import AudioParams, ImageParams
from ncodec.codec import image as image_pipe
from ncodec.codec.errors import OutputExistsError, UnsupportedInputError
from ncodec.models.registry import SHIPPED, UnknownModelError, load_model, model_info

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".ppm", ".pgm", ".gif"}
AUDIO_EXTS = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac"}
VIDEO_EXTS = {".mp4", ".mkv", ".webm", ".y4m", ".mov", ".avi"}
IMAGE_OUT_EXTS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP", ".ppm": "PPM"}
DEFAULT_QUALITY = 50.0


@lru_cache(maxsize=8)
def _model(name: str, device: str):
    m = load_model(name)
    if device != "cpu":
        import copy

        m = copy.deepcopy(m).to(device)
    return m


def _check_device(device: str) -> str:
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got '{device}'")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UnsupportedInputError("--device cuda asked for, but no CUDA device is available")
    return device


def _progress(enabled: bool) -> Callable[[Iterable], Iterable]:
    if not enabled or not sys.stderr.isatty():
        return lambda it: it
    from tqdm import tqdm

    return lambda it: tqdm(it, desc="tiles", leave=False)


# ---- encode ---------------------------------------------------------------------------------


def encode(
    obj: Any,
    *,
    quality: float | None = None,
    target_bpp: float | None = None,
    target_psnr: float | None = None,
    target_kbps: float | None = None,
    model: str | None = None,
    device: str = "cpu",
    tile: int = image_pipe.DEFAULT_TILE,
    progress: bool = False,
) -> bytes:
    """Encodes a medium to an ``.ncb`` stream.

    Args:
        obj: a ``PIL.Image.Image``, or a uint8 numpy array ``[H, W]`` / ``[H, W, 3|4]``.
            Audio: a ``(samples float32 [C, T], sample_rate)`` tuple.
        quality: 0..100, higher is better (default 50). At most one of quality / target_bpp /
            target_psnr may be given.
        target_bpp: search the quality whose stream is closest to, without exceeding, this
            many bits per pixel (whole stream).
        target_psnr: search the lowest quality reaching this RGB PSNR (dB).
        target_kbps: audio/video rate target in kbit/s.
        model: shipped model name (``ncodec models``); default per medium.
        device: ``cpu`` or ``cuda`` for the transforms (entropy coding and table selection are
            exact and identical on both).
        tile: tile edge in pixels (multiple of 64, 64..4096).

    Raises:
        UnsupportedInputError: the object is not a supported medium.
        UnknownModelError: no such model for that medium.
        ValueError: conflicting or out-of-range rate arguments.
    """
    device = _check_device(device)
    if isinstance(obj, tuple):
        if len(obj) != 2:
            raise UnsupportedInputError("audio must be a (samples [C, T], sample_rate) tuple")
        if quality is not None and target_kbps is not None:
            raise ValueError("give at most one of quality, target_kbps")
        if target_bpp is not None or target_psnr is not None:
            raise ValueError("--target-bpp/--target-psnr apply to images; use --quality or --target-kbps")
        return _encode_audio(obj[0], obj[1], quality, target_kbps, model, device)
    if isinstance(obj, np.ndarray):
        obj = _array_to_image(obj)
    if not isinstance(obj, Image.Image):
        raise UnsupportedInputError(f"cannot encode an object of type {type(obj).__name__}")
    if target_kbps is not None:
        raise ValueError("--target-kbps applies to audio and video; use --quality or --target-bpp for images")
    return _encode_image(obj, quality, target_bpp, target_psnr, model, device, tile, progress)


def _array_to_image(a: np.ndarray) -> Image.Image:
    if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise UnsupportedInputError("arrays must be uint8 [H, W], [H, W, 3] or [H, W, 4]")
    return Image.fromarray(a)


def _encode_image(img, quality, target_bpp, target_psnr, model, device, tile, progress) -> bytes:
    given = [v is not None for v in (quality, target_bpp, target_psnr)]
    if sum(given) > 1:
        raise ValueError("give at most one of quality, target_bpp, target_psnr")
    if quality is not None and not 0 <= quality <= 100:
        raise ValueError(f"quality must be in 0..100, got {quality}")
    if target_bpp is not None and not target_bpp > 0:
        raise ValueError("target_bpp must be positive")
    if tile % 64 or not 64 <= tile <= 4096:
        raise ValueError("tile must be a multiple of 64 in 64..4096")
    info = model_info(model, "image")
    m = _model(info.name, device)
    prep = image_pipe.prepare(img)
    analyses = image_pipe.analyze_tiles(m, prep, tile, device, _progress(progress))
    h, w = prep.rgb.shape[:2]

    def stream_at(q: float) -> bytes:
        params, payloads = image_pipe.encode_segments(m, prep, q, tile=tile, device=device, analyses=analyses)
        return write_stream(image_pipe.make_header(info.name, m.digest, params), payloads)

    if target_bpp is not None:
        return _search(stream_at, lambda d: len(d) * 8 / (w * h) <= target_bpp)
    if target_psnr is not None:
        ref = prep.rgb.astype(np.float64)

        def good(d: bytes) -> bool:
            out = np.asarray(decode(d, device=device).convert("RGB"), dtype=np.float64)
            mse = float(np.mean((out - ref) ** 2))
            return mse == 0 or 10 * np.log10(255**2 / mse) >= target_psnr

        return _search(stream_at, lambda d: not good(d), prefer_high=False)
    return stream_at(DEFAULT_QUALITY if quality is None else float(quality))


def _encode_audio(samples, sample_rate, quality, target_kbps, model, device) -> bytes:
    from ncodec.codec import audio as audio_pipe

    if quality is not None and not 0 <= quality <= 100:
        raise ValueError(f"quality must be in 0..100, got {quality}")
    if target_kbps is not None and not target_kbps > 0:
        raise ValueError("target_kbps must be positive")
    try:
        sample_rate = int(sample_rate)
    except (TypeError, ValueError):
        raise UnsupportedInputError("audio sample rate must be an integer") from None
    x = audio_pipe.prepare(samples, sample_rate)
    info = model_info(model, "audio")
    m = _model(info.name, device)
    params, analyses = audio_pipe.analyze(m, x, sample_rate, device=device)
    seconds = x.shape[1] / sample_rate

    def stream_at(rate: int) -> bytes:
        p, payloads = audio_pipe.encode_segments(params, analyses, rate)
        return write_stream(audio_pipe.make_header(info.name, m.digest, p), payloads)

    if target_kbps is None:
        q = audio_pipe.DEFAULT_QUALITY if quality is None else float(quality)
        return stream_at(audio_pipe.quality_to_rate(q))
    return _search_rate(stream_at, lambda d: len(d) * 8 / seconds / 1000, float(target_kbps))


def _search_rate(
    stream_at: Callable[[int], bytes], kbps_of: Callable[[bytes], float], target: float
) -> bytes:
    """Secant search (log rate vs log nominal rate), then bisection, over the audio rate field for the
    stream whose whole-file bitrate is closest to ``target`` kbit/s; stops within 2 %, else returns
    the closest of at most 20 tries, preferring one within 10 %."""
    from ncodec.codec.audio import MAX_RATE, MIN_RATE

    tried: dict[int, float] = {}
    streams: dict[int, bytes] = {}

    def at(r: int) -> float:
        if r not in tried:
            streams[r] = stream_at(r)
            tried[r] = kbps_of(streams[r])
        return tried[r]

    r = int(min(max(round(target * 10), MIN_RATE), MAX_RATE))
    prev: tuple[int, float] | None = None
    for _ in range(10):
        k = at(r)
        if abs(k / target - 1) < 0.02:
            break
        slope = 1.0
        if prev is not None and prev[0] != r and prev[1] > 0 and k > 0 and prev[1] != k:
            slope = min(max(math.log(k / prev[1]) / math.log(r / prev[0]), 0.2), 3.0)
        nxt = int(min(max(round(r * (target / max(k, 1e-6)) ** (1 / slope)), MIN_RATE), MAX_RATE))
        if nxt == r:
            nxt = min(max(r + (1 if k < target else -1), MIN_RATE), MAX_RATE)
        if nxt in tried:
            break
        prev, r = (r, k), nxt
    for _ in range(10):  # bisection fallback (the rate need not be monotone in the nominal rate)
        if any(abs(v / target - 1) < 0.02 for v in tried.values()):
            break
        below = [q for q, v in tried.items() if v < target]
        above = [q for q, v in tried.items() if v > target]
        if not below or not above:
            if below and max(below) < MAX_RATE:
                at(min(MAX_RATE, max(below) * 2))
                continue
            if above and min(above) > MIN_RATE:
                at(max(MIN_RATE, min(above) // 2))
                continue
            break
        lo, hi = max(below), min([q for q in above if q > max(below)] or [max(above)])
        mid = int(round(math.sqrt(lo * hi)))
        if mid in tried or not lo < mid < hi:
            break
        at(mid)
    best = min(tried, key=lambda q: (abs(tried[q] / target - 1) > 0.1, abs(math.log(tried[q] / target))))
    return streams[best]


def _search(
    stream_at: Callable[[float], bytes], ok: Callable[[bytes], bool], prefer_high: bool = True, steps: int = 9
) -> bytes:
    """Bisection over quality (centi-units) for the boundary where ``ok`` flips.

    With ``prefer_high``, returns the highest quality whose stream is ``ok`` (rate under target);
    otherwise the lowest quality whose stream is not ``ok`` (quality target reached)."""
    lo, hi = 0, 10000
    best_lo, best_hi = stream_at(0.0), stream_at(100.0)
    if ok(best_hi):
        return best_hi
    if not ok(best_lo):
        return best_lo
    for _ in range(steps):
        mid = (lo + hi) // 2
        if mid in (lo, hi):
            break
        d = stream_at(mid / 100)
        if ok(d):
            lo, best_lo = mid, d
        else:
            hi, best_hi = mid, d
    return best_lo if prefer_high else best_hi


# ---- decode ---------------------------------------------------------------------------------


def _check_model(header: Header) -> Any:
    if header.media not in (MEDIA_IMAGE, MEDIA_AUDIO):
        raise UnsupportedInputError(f"{MEDIA_NAMES[header.media]} streams cannot be decoded by this version")
    info = SHIPPED.get(header.model_id)
    if info is None or info.medium != MEDIA_NAMES[header.media]:
        raise ModelMismatchError(header.model_id, header.model_hash.hex(), "(none installed)", "-")
    m = load_model(info.name)
    if m.digest[:16] != header.model_hash:
        raise ModelMismatchError(header.model_id, header.model_hash.hex(), info.name, m.digest[:16].hex())
    return m


def _decode_reader(reader: StreamReader, device: str, progress: bool) -> Image.Image:
    _check_model(reader.header)
    params = ImageParams.from_bytes(reader.header.params)
    m = _model(reader.header.model_id, device)
    return image_pipe.decode_segments(
        m, params, reader.segments(), device=device, progress=_progress(progress)
    )


def _audio_blocks(reader: StreamReader, device: str):
    """(params, iterator of float32 ``[C, n]`` blocks) of an audio stream, decoded as read."""
    from ncodec.codec import audio as audio_pipe

    _check_model(reader.header)
    params = AudioParams.from_bytes(reader.header.params)
    audio_pipe.check_layout(params)
    m = _model(reader.header.model_id, device)
    return params, audio_pipe.decode_blocks(m, params, reader.segments(), device=device)


def decode(data: bytes, *, device: str = "cpu") -> Any:
    """Decodes an ``.ncb`` stream (bytes): an image stream to a ``PIL.Image`` (RGB, L or RGBA as
    coded), an audio stream to ``(samples float32 [C, T], sample_rate)``.

    Raises:
        ncodec.bitstream.BitstreamError: corrupt, truncated, unsupported or mismatched stream.
    """
    reader = StreamReader(io.BytesIO(bytes(data)))
    device = _check_device(device)
    if reader.header.media == MEDIA_AUDIO:
        params, blocks = _audio_blocks(reader, device)
        parts = list(blocks)
        x = np.concatenate(parts, axis=1) if parts else np.zeros((params.channels, 0), np.float32)
        return x, params.sample_rate
    return _decode_reader(reader, device, False)


def decode_audio_chunk(
    data: bytes | str | Path, index: int, *, device: str = "cpu"
) -> tuple[np.ndarray, int]:
    """Random access: decodes audio chunk ``index`` alone (through the stream's index) to
    ``(samples float32 [C, n], sample_rate)``, covering input samples ``index*chunk`` onwards."""
    from ncodec.codec import audio as audio_pipe

    f = io.BytesIO(bytes(data)) if isinstance(data, bytes | bytearray) else open(data, "rb")
    with f:
        reader = StreamReader(f)
        if reader.header.media != MEDIA_AUDIO:
            raise UnsupportedInputError("not an audio stream")
        _check_model(reader.header)
        params = AudioParams.from_bytes(reader.header.params)
        audio_pipe.check_layout(params)
        payload = reader.segment(index)
        m = _model(reader.header.model_id, _check_device(device))
        return audio_pipe.decode_chunk_at(m, params, payload, index, device), params.sample_rate


# ---- files ----------------------------------------------------------------------------------


@dataclass
class EncodeReport:
    """What :func:`encode_file` did: stream size in bytes, time in seconds, and the rate: ``bpp``
    (bits per pixel) for images, ``kbps`` (kbit/s) for audio, whose ``duration`` is in seconds."""

    input: str
    output: str
    medium: str
    bytes: int
    pixels: int
    seconds: float
    duration: float = 0.0

    @property
    def bpp(self) -> float:
        return self.bytes * 8 / self.pixels if self.pixels and self.medium == "image" else 0.0

    @property
    def kbps(self) -> float:
        return self.bytes * 8 / self.duration / 1000 if self.duration else 0.0

    def rate(self) -> str:
        """The rate in the medium's unit, for people."""
        return f"{self.kbps:.2f} kbps" if self.medium == "audio" else f"{self.bpp:.4f} bpp"


@dataclass
class DecodeReport:
    input: str
    output: str
    medium: str
    size: tuple[int, int]
    seconds: float


def detect_medium(path: Path) -> str:
    """``image``, ``audio`` or ``video`` from the file extension (then image content sniffing)."""
    ext = path.suffix.lower()
    if ext in IMAGE_EXTS:
        return "image"
    if ext in AUDIO_EXTS:
        return "audio"
    if ext in VIDEO_EXTS:
        return "video"
    raise UnsupportedInputError(f"{path}: unsupported file type '{ext}' (images, audio or video expected)")


def read_image(path: Path) -> Image.Image:
    try:
        Image.MAX_IMAGE_PIXELS = 1 << 28
        img = Image.open(path)
        img.load()
        return img
    except FileNotFoundError:
        raise UnsupportedInputError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as e:
        raise UnsupportedInputError(f"{path}: cannot read image ({e})") from None


def atomic_write(path: Path, write: Callable[[BinaryIO], None], force: bool) -> None:
    """Writes through a temporary file in the same folder, then renames it into place."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"{path} exists; use --force to overwrite")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def encode_file(src: str | Path, dst: str | Path, *, force: bool = False, **kwargs: Any) -> EncodeReport:
    """Encodes the file ``src`` to the ``.ncb`` file ``dst`` (atomically). ``kwargs`` as :func:`encode`."""
    src, dst = Path(src), Path(dst)
    if dst.exists() and not force:
        raise OutputExistsError(f"{dst} exists; use --force to overwrite")
    medium = detect_medium(src)
    if medium == "audio":
        from ncodec.codec.audio_io import read_audio

        samples, sr = read_audio(src)
        t0 = time.perf_counter()
        data = encode((samples, sr), **kwargs)
        dt = time.perf_counter() - t0
        atomic_write(dst, lambda f: f.write(data), force)
        return EncodeReport(str(src), str(dst), medium, len(data), 0, dt, samples.shape[1] / sr)
    if medium != "image":
        raise UnsupportedInputError(f"{src}: {medium} coding is not available in this version of ncodec")
    img = read_image(src)
    t0 = time.perf_counter()
    data = encode(img, **kwargs)
    dt = time.perf_counter() - t0
    atomic_write(dst, lambda f: f.write(data), force)
    return EncodeReport(str(src), str(dst), medium, len(data), img.size[0] * img.size[1], dt)


def decode_file(
    src: str | Path, dst: str | Path, *, force: bool = False, device: str = "cpu", progress: bool = False
) -> DecodeReport:
    """Decodes the ``.ncb`` file ``src`` into ``dst`` (PNG/TIFF/BMP/PPM for images), atomically.
    The stream is read segment by segment."""
    src, dst = Path(src), Path(dst)
    if dst.exists() and not force:
        raise OutputExistsError(f"{dst} exists; use --force to overwrite")
    fmt = IMAGE_OUT_EXTS.get(dst.suffix.lower())
    device = _check_device(device)
    t0 = time.perf_counter()
    try:
        f = open(src, "rb")
    except OSError as e:
        raise UnsupportedInputError(f"{src}: cannot open ({e.strerror})") from None
    with f:
        reader = StreamReader(f)
        if reader.header.media == MEDIA_AUDIO:
            from ncodec.codec.audio_io import OUT_FORMATS, AudioWriter

            afmt = OUT_FORMATS.get(dst.suffix.lower())
            if afmt is None:
                raise UnsupportedInputError(f"{dst}: audio decodes to .wav or .flac")
            params, blocks = _audio_blocks(reader, device)

            def write_audio(out: BinaryIO) -> None:  # written block by block, as segments are read
                w = AudioWriter(out, afmt[0], params.sample_rate, params.channels)
                for b in blocks:
                    w.write(b)
                w.close()

            atomic_write(dst, write_audio, force)
            dt = time.perf_counter() - t0
            return DecodeReport(str(src), str(dst), "audio", (params.channels, params.samples), dt)
        if reader.header.media == MEDIA_IMAGE and fmt is None:
            raise UnsupportedInputError(f"{dst}: images decode to .png, .tif, .bmp or .ppm")
        img = _decode_reader(reader, device, progress)
    dt = time.perf_counter() - t0
    atomic_write(dst, lambda f: img.save(f, format=fmt), force)
    return DecodeReport(str(src), str(dst), "image", img.size, dt)


def info(src: str | Path | bytes) -> dict[str, Any]:
    """Describes a stream: format version, medium, model, parameters and segment sizes.

    Reads every segment (verifying checksums) but decodes none.
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
    if h.media == MEDIA_IMAGE:
        p = ImageParams.from_bytes(h.params)
        if len(sizes) != p.segments:
            raise CorruptStreamError(f"stream holds {len(sizes)} segments, its header implies {p.segments}")
        out.update(
            width=p.width,
            height=p.height,
            channels=p.channels,
            bit_depth=p.bit_depth,
            quality=p.quality / 100,
            tile=p.tile,
            alpha=bool(p.alpha),
            bpp=total * 8 / (p.width * p.height),
        )
    elif h.media == MEDIA_AUDIO:
        from ncodec.codec.audio import check_layout

        p = AudioParams.from_bytes(h.params)
        lay = check_layout(p)
        if len(sizes) != lay.chunks:
            raise CorruptStreamError(f"stream holds {len(sizes)} segments, its header implies {lay.chunks}")
        seconds = p.samples / p.sample_rate
        out.update(
            sample_rate=p.sample_rate,
            channels=p.channels,
            channel_mode="mid/side" if p.channel_mode == 1 else "independent",
            rate_kbps=p.rate / 10,
            samples=p.samples,
            seconds=seconds,
            chunk=p.chunk,
            kbps=total * 8 / seconds / 1000,
        )
    return out


def models() -> list[dict[str, str]]:
    """The shipped models: name, medium, rate range, description, weights and card paths."""
    return [
        {
            "name": i.name,
            "medium": i.medium,
            "rate_range": i.rate_range,
            "description": i.description,
            "weights": str(i.weights_path),
            "card": str(i.card_path),
            "available": str(i.weights_path.exists()),
        }
        for i in SHIPPED.values()
    ]


__all__ = [
    "encode",
    "decode",
    "decode_audio_chunk",
    "encode_file",
    "decode_file",
    "info",
    "models",
    "EncodeReport",
    "DecodeReport",
    "StreamWriter",
    "StreamReader",
    "UnknownModelError",
]
