"""Video file I/O through PyAV (FFmpeg), one frame at a time: a video is never held whole.

Reading: MP4, MKV, WebM, MOV, AVI, Y4M (any codec FFmpeg decodes) and raw ``.yuv`` (planar YUV
4:2:0, with ``size=(W, H)`` and ``fps`` given), any resolution, any pixel format FFmpeg converts
(YUV 4:2:0/4:2:2/4:4:4, RGB, gray, 8 or more bits). Frames come out as RGB uint8 ``[H, W, 3]``.

* **Colour.** YUV is converted with the matrix and range the stream is tagged with (BT.709 or
  BT.601, limited or full range); untagged streams use BT.709 from 720 lines up and BT.601 below,
  limited range (FFmpeg's and most players' convention). Chroma is upsampled by repetition
  (nearest), so YUV 4:2:0 -> RGB -> YUV 4:2:0 (area down-sampling, :class:`VideoWriter`) gives the
  source back exactly wherever its YUV lies inside the RGB gamut (elsewhere RGB clips).
  :class:`Colour` records what the source was, so the decoder can write the same format back.
* **Frame rate and time.** The rate is the stream's average rate (a :class:`~fractions.Fraction`;
  ``fps`` overrides it). :meth:`VideoReader.count_frames` also reads every frame's presentation
  timestamp (``pts``, in the stream's ``time_base``); :meth:`VideoReader.timestamps` gives them,
  from the first frame, when they are off the nominal grid (a variable-rate source), and ``None``
  for a constant-rate source (every frame within one tick of ``i / fps``), a raw ``.yuv``, a
  frame without a timestamp, or an ``fps`` override (which forces a constant rate).
  :meth:`VideoReader.timed` yields the timestamps in seconds.
* **Audio.** An audio track is dropped with a one-line warning (:class:`DroppedAudioWarning`): the
  video codec codes pictures only; code the sound separately with ``ncodec encode`` on an audio
  file.

Writing (:class:`VideoWriter`), frame by frame:

* ``.mkv``: FFV1 (lossless), as YUV 4:2:0 with the source's matrix and range when the source was
  YUV 4:2:0 (odd sizes allowed), else RGB (``bgr0``, FFV1 has no 8-bit planar RGB), so the file
  holds exactly the decoded pixels (up to the 4:2:0 conversion a YUV source had anyway);
* ``.mp4``: H.264 (libx264), ``preset=medium``, ``crf=10``, YUV 4:2:0 (needs an even width and
  height), tagged with the matrix and range: visually transparent, about 10x smaller than FFV1;
* ``.y4m``: raw YUV 4:2:0 (``yuv4mpegpipe``) with the source's range; Y4M has no matrix field, so
  it is written with the matrix readers assume (BT.709 from 720 lines, BT.601 below).

MKV and MP4 frames get the timestamps given to :meth:`VideoWriter.write` (in the writer's
``time_base``; by default frame ``n`` at ``n / fps``); Y4M has no timestamps (the nominal rate).
"""

from __future__ import annotations

import warnings
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ncodec.codec.errors import UnsupportedInputError

if TYPE_CHECKING:  # numpy, PyAV and torch load on first use: the CLI's parser imports this module
    import numpy as np

#: output suffix -> (muxer, encoder)
OUT_FORMATS = {".mkv": ("matroska", "ffv1"), ".mp4": ("mp4", "libx264"), ".y4m": ("yuv4mpegpipe", "rawvideo")}
MP4_CRF = 10
MAX_FPS = 1000
MAX_TICKS = 1 << 53
"""Timestamps (in ticks of their time base, from the first frame) must stay below this; deltas
between frames below ``2**32`` (FORMAT.md, "Timestamps")."""
DEFAULT_GOP = 16
"""Frames per GOP (segment). All-intra, the GOP only sets the seek granularity and a 17-byte
segment and index overhead per GOP (0.01 % at 2 Mbit/s, GOP 16, 25 fps); to be re-measured against
the temporal model's P-frame savings."""


class DroppedAudioWarning(UserWarning):
    """The input has an audio track, which the video codec does not code."""


@dataclass(frozen=True)
class Colour:
    """How the source stored colour: ``matrix`` ``"bt709"`` or ``"bt601"``, ``full_range``, and
    ``rgb`` (the source had RGB or 4:4:4 samples, so writers keep full-resolution colour)."""

    matrix: str = "bt709"
    full_range: bool = False
    rgb: bool = False

    def to_byte(self) -> int:
        """Bit 0: BT.601 (else BT.709); bit 1: full range; bit 2: RGB / 4:4:4 source."""
        return (self.matrix == "bt601") | (self.full_range << 1) | (self.rgb << 2)

    @classmethod
    def from_byte(cls, b: int) -> Colour:
        return cls("bt601" if b & 1 else "bt709", bool(b & 2), bool(b & 4))


def _flags():
    from av.video.reformatter import Interpolation as I  # noqa: E741

    return I.ACCURATE_RND | I.FULL_CHR_H_INT | I.FULL_CHR_H_INP


def _cs(matrix: str):
    from av.video.reformatter import Colorspace

    return Colorspace.ITU709 if matrix == "bt709" else Colorspace.ITU601


def _range(full: bool):
    from av.video.reformatter import ColorRange

    return ColorRange.JPEG if full else ColorRange.MPEG


def _colour_of(frame: Any, height: int) -> Colour:
    """The colour tags of a decoded frame, with the documented defaults for untagged streams."""
    name = frame.format.name
    rgb = name.startswith(("rgb", "bgr", "gbr", "argb", "abgr", "0rgb", "0bgr")) or "444" in name
    cs = int(frame.colorspace or 0)
    matrix = {1: "bt709", 5: "bt601", 6: "bt601"}.get(cs, "bt709" if height >= 720 else "bt601")
    full = int(frame.color_range or 0) == 2 or name.startswith("yuvj")
    return Colour(matrix, full, rgb)


def to_rgb(frame: Any, colour: Colour) -> np.ndarray:
    """A decoded PyAV frame -> RGB uint8 ``[H, W, 3]`` (nearest chroma upsampling)."""
    from av.video.reformatter import ColorRange, Interpolation

    if frame.format.name == "rgb24":
        return frame.to_ndarray()
    if frame.format.name.startswith(("rgb", "bgr", "gbr", "argb", "abgr", "0rgb", "0bgr", "gray")):
        return frame.to_ndarray(format="rgb24")
    out = frame.reformat(
        format="rgb24",
        src_colorspace=_cs(colour.matrix),
        dst_colorspace=_cs(colour.matrix),
        src_color_range=_range(colour.full_range),
        dst_color_range=ColorRange.JPEG,
        interpolation=Interpolation.POINT | _flags(),
    )
    return out.to_ndarray()


def from_rgb(rgb: np.ndarray, fmt: str, colour: Colour) -> Any:
    """RGB uint8 ``[H, W, 3]`` -> a PyAV frame in pixel format ``fmt`` (area chroma down-sampling),
    tagged with ``colour``'s matrix and range."""
    import av
    import numpy as np
    from av.video.reformatter import ColorRange, Interpolation

    f = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    if fmt == "rgb24":
        return f
    if fmt == "bgr0":
        return f.reformat(format="bgr0")
    return f.reformat(
        format=fmt,
        src_colorspace=_cs(colour.matrix),
        dst_colorspace=_cs(colour.matrix),
        src_color_range=ColorRange.JPEG,
        dst_color_range=_range(colour.full_range),
        interpolation=Interpolation.AREA | _flags(),
    )


def parse_size(size: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"WxH"`` or ``(W, H)`` -> ``(W, H)``."""
    if size is None or isinstance(size, tuple):
        return size
    try:
        w, h = (int(v) for v in str(size).lower().split("x"))
    except ValueError:
        raise ValueError(f"size must be WIDTHxHEIGHT, got '{size}'") from None
    if w < 1 or h < 1:
        raise ValueError(f"size must be positive, got '{size}'")
    return w, h


def parse_fps(fps: str | float | Fraction | None) -> Fraction | None:
    """``"30000/1001"``, ``25``, ``29.97`` -> a Fraction (denominators up to 1001)."""
    if fps is None:
        return None
    try:
        f = Fraction(str(fps)) if isinstance(fps, str) else Fraction(fps)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"frame rate must be a number or N/D, got '{fps}'") from None
    f = f.limit_denominator(1001)
    if not 0 < f <= MAX_FPS:
        raise ValueError(f"frame rate {fps} outside (0, {MAX_FPS}]")
    return f


class VideoReader:
    """Streams the first video stream of a file (a path, or a seekable binary file object: raw
    YUV when ``size`` and ``fps`` are given) as RGB frames.

    Attributes (known after opening): ``width``, ``height``, ``fps`` (Fraction), ``colour``,
    ``frames`` (the container's frame count, or ``None`` when it does not say; exact after
    :meth:`count_frames`), ``has_audio``, ``time_base`` (Fraction, of the stream's timestamps;
    ``None`` when unknown), ``pts`` (every frame's timestamp, after :meth:`count_frames`;
    ``None`` when a frame has none).

    Raises:
        UnsupportedInputError: missing or unreadable file, no video stream, bad raw-YUV geometry.
    """

    def __init__(
        self,
        path: str | Path | BinaryIO,
        *,
        size: str | tuple[int, int] | None = None,
        fps: str | float | Fraction | None = None,
        pix_fmt: str = "yuv420p",
    ):
        self._file = None if isinstance(path, str | Path) else path
        self.path = (
            Path(path) if self._file is None else Path(getattr(path, "name", "<stream>") or "<stream>")
        )
        self._size = parse_size(size)
        self._fps = parse_fps(fps)
        self._pix_fmt = pix_fmt
        self._counted = False
        self.time_base: Fraction | None = None
        self.pts: Sequence[int] | None = None
        self._raw = self.path.suffix.lower() == ".yuv" or (
            size is not None and fps is not None and self._file is not None
        )
        if self._file is None and not self.path.exists():
            raise UnsupportedInputError(f"{self.path}: no such file")
        c = self._open()
        try:
            st = c.streams.video[0]
            self.has_audio = bool(c.streams.audio)
            cc = st.codec_context
            self.width, self.height = int(cc.width), int(cc.height)
            rate = st.average_rate or st.guessed_rate or st.base_rate
            self.fps = self._fps or (parse_fps(rate) if rate else None)
            self.frames = int(st.frames) or None
            self.time_base = Fraction(st.time_base) if st.time_base else None
            first = next(self._decode(c, st), None)
            if first is None:
                raise UnsupportedInputError(f"{self.path}: no video frames")
            self.width, self.height = first.width, first.height
            self.colour = _colour_of(first, self.height)
        except UnsupportedInputError:
            raise
        except Exception as e:  # FFmpeg errors, bad headers
            raise UnsupportedInputError(f"{self.path}: cannot read video ({_msg(e)})") from None
        finally:
            c.close()
        if self.fps is None:
            raise UnsupportedInputError(f"{self.path}: the frame rate is unknown; give --fps")
        if self._raw:
            fsize = self.width * self.height + 2 * (-(-self.width // 2)) * (-(-self.height // 2))
            self.frames = self._size_bytes() // fsize
        if self.has_audio:
            warnings.warn(
                f"{self.path.name}: the audio track is dropped (ncodec codes the pictures only)",
                DroppedAudioWarning,
                stacklevel=2,
            )

    def _size_bytes(self) -> int:
        if self._file is None:
            return self.path.stat().st_size
        return self._file.seek(0, 2)

    def _open(self):
        import av

        opts: dict[str, str] = {}
        fmt = None
        if self._raw:
            if self._size is None or self._fps is None:
                raise UnsupportedInputError(f"{self.path}: raw .yuv input needs --size WxH and --fps")
            w, h = self._size
            fmt = "rawvideo"
            opts = {
                "video_size": f"{w}x{h}",
                "pixel_format": self._pix_fmt,
                "framerate": f"{self._fps.numerator}/{self._fps.denominator}",
            }
        try:
            if self._file is not None:
                self._file.seek(0)
            c = av.open(str(self.path) if self._file is None else self._file, format=fmt, options=opts)
        except Exception as e:
            raise UnsupportedInputError(f"{self.path}: cannot read video ({_msg(e)})") from None
        if not c.streams.video:
            c.close()
            raise UnsupportedInputError(f"{self.path}: no video stream")
        st = c.streams.video[0]
        st.thread_type = "AUTO"
        return c

    def _decode(self, c, st) -> Iterator[Any]:
        for packet in c.demux(st):
            yield from packet.decode()

    def timed(self) -> Iterator[tuple[float, np.ndarray]]:
        """Yields ``(timestamp in seconds, RGB uint8 [H, W, 3])`` in display order.

        Raises:
            UnsupportedInputError: an undecodable frame, or a frame whose size differs from the first.
        """
        c = self._open()
        try:
            st = c.streams.video[0]
            n = 0
            gen = self._decode(c, st)
            while True:
                try:
                    fr = next(gen, None)
                except Exception as e:
                    raise UnsupportedInputError(f"{self.path}: frame {n} is unreadable ({_msg(e)})") from None
                if fr is None:
                    break
                if (fr.width, fr.height) != (self.width, self.height):
                    raise UnsupportedInputError(
                        f"{self.path}: frame {n} is {fr.width}x{fr.height}, the video "
                        f"{self.width}x{self.height} (size changes are not supported)"
                    )
                t = float(fr.time) if fr.time is not None else n / float(self.fps)
                yield t, to_rgb(fr, self.colour)
                n += 1
        finally:
            c.close()

    def __iter__(self) -> Iterator[np.ndarray]:
        """Yields RGB uint8 ``[H, W, 3]`` frames in display order."""
        for _, rgb in self.timed():
            yield rgb

    def count_frames(self) -> int:
        """The number of frames, exactly: decodes the file once (without colour conversion; a
        container's count can differ from what decodes), except for raw ``.yuv``. Records every
        frame's ``pts`` on the way."""
        if self._counted or self._raw:
            return self.frames
        c = self._open()
        n = 0
        pts: array | None = array("q")
        try:
            for fr in self._decode(c, c.streams.video[0]):
                n += 1
                if pts is not None:
                    if fr.pts is None:
                        pts = None
                    else:
                        pts.append(int(fr.pts))
        except Exception as e:
            raise UnsupportedInputError(f"{self.path}: frame {n} is unreadable ({_msg(e)})") from None
        finally:
            c.close()
        self.frames, self._counted, self.pts = n, True, pts
        return n

    def timestamps(self) -> tuple[Fraction, Sequence[int]] | None:
        """``(time base, ticks)``: every frame's presentation time in ticks of the time base
        (seconds per tick), from the first frame (so the first is 0), made strictly increasing
        (a repeated or backward ``pts`` becomes its predecessor's plus one tick), when the source
        is variable-rate; ``None`` when frame ``i`` is within one tick of ``i / fps`` for every
        frame (constant rate), for raw ``.yuv``, an ``fps`` override, a frame without a ``pts``,
        or a time base or gap the stream cannot hold (then with a warning: the frames are coded at
        the nominal rate). Counts the frames first if :meth:`count_frames` has not run."""
        if self._raw or self._fps is not None:
            return None
        self.count_frames()
        tb, pts = self.time_base, self.pts
        if tb is None or not pts or len(pts) != self.frames:
            return None
        ticks, prev = array("q"), None
        for p in pts:
            t = p - pts[0]
            if prev is not None and t <= prev:
                t = prev + 1
            ticks.append(t)
            prev = t
        step = 1 / (self.fps * tb)  # ticks per nominal frame
        if all(abs(t - i * step) <= 1 for i, t in enumerate(ticks)):
            return None
        gaps = (b - a for a, b in zip(ticks, ticks[1:]))
        if (
            not (0 < tb.numerator < 1 << 31 and tb.denominator < 1 << 31)
            or ticks[-1] >= MAX_TICKS
            or any(g >= 1 << 32 for g in gaps)
        ):
            warnings.warn(
                f"{self.path.name}: variable-rate timestamps (time base {tb}) that the stream cannot "
                f"hold; coded at the nominal rate {self.fps}",
                stacklevel=2,
            )
            return None
        return tb, ticks


def _seekable(f: Any) -> bool:
    try:
        return bool(f.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _msg(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


class VideoWriter:
    """Writes RGB uint8 ``[H, W, 3]`` frames to a file object (or path) as MKV (FFV1), MP4 (x264)
    or Y4M, one at a time; see the module docstring for the formats. Call :meth:`close` at the end.

    ``time_base`` (seconds per tick) is that of the timestamps given to :meth:`write` (default
    ``1 / fps``); MKV stores them rounded to milliseconds (a frame that would land on its
    predecessor's millisecond moves one later), MP4 exactly; Y4M ignores timestamps (frames at the
    nominal rate ``fps``).
    """

    def __init__(
        self,
        f: BinaryIO | str | Path,
        suffix: str,
        width: int,
        height: int,
        fps: Fraction,
        colour: Colour = Colour(),
        time_base: Fraction | None = None,
    ):
        import av

        suffix = suffix.lower()
        if suffix not in OUT_FORMATS:
            raise UnsupportedInputError(f"video decodes to {', '.join(OUT_FORMATS)}, not '{suffix}'")
        mux, enc = OUT_FORMATS[suffix]
        if suffix == ".mp4" and (width % 2 or height % 2):
            raise UnsupportedInputError(
                f"MP4 (H.264 4:2:0) needs an even width and height, the video is {width}x{height}; "
                "decode to .mkv or .y4m"
            )
        if suffix == ".y4m":  # Y4M has no matrix field: write the one readers assume
            colour = Colour("bt709" if height >= 720 else "bt601", colour.full_range, colour.rgb)
        self.fmt = "bgr0" if suffix == ".mkv" and colour.rgb else "yuv420p"
        self.colour = colour
        self.width, self.height = width, height
        self._own = isinstance(f, str | Path)
        opts = {}
        if mux == "mp4" and not self._own and not _seekable(f):  # a pipe: fragmented MP4
            opts = {"movflags": "frag_keyframe+empty_moov"}
        self.container = av.open(str(f) if self._own else f, "w", format=mux, options=opts)
        rate = Fraction(fps).limit_denominator(1001)
        self.stream = self.container.add_stream(enc, rate=rate)
        s = self.stream
        s.width, s.height, s.pix_fmt = width, height, self.fmt
        self.timed = time_base is not None and suffix != ".y4m"
        self.in_time_base = Fraction(time_base) if self.timed else 1 / rate
        # Matroska keeps milliseconds: write in them, so no two frames round to the same time
        self.time_base = Fraction(1, 1000) if self.timed and mux == "matroska" else self.in_time_base
        self._last = -1
        s.time_base = self.time_base
        cc = s.codec_context
        cc.time_base = self.time_base
        if self.fmt == "yuv420p":
            cc.colorspace = _cs(colour.matrix)
            cc.color_range = _range(colour.full_range)
        if enc == "libx264":
            cc.options = {"preset": "medium", "crf": str(MP4_CRF)}
        elif enc == "ffv1":
            cc.options = {"level": "3", "slicecrc": "1"}
        self.n = 0

    def write(self, rgb: np.ndarray, pts: int | None = None) -> None:
        """Appends one frame; ``pts``: its presentation time in ticks of ``time_base`` (ignored
        without a ``time_base`` and for Y4M: frame ``n`` is then shown at ``n / fps``), increasing
        (a frame at or before its predecessor is moved one tick after it)."""
        import numpy as np

        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(
                f"frame {rgb.shape} {rgb.dtype}, expected ({self.height}, {self.width}, 3) uint8"
            )
        fr = from_rgb(rgb, self.fmt, self.colour)
        if self.timed and pts is not None:
            t = round(Fraction(pts) * self.in_time_base / self.time_base)
        else:
            t = self.n if not self.timed else self._last + 1
        fr.pts = self._last = max(t, self._last + 1)
        fr.time_base = self.time_base
        self.n += 1
        for p in self.stream.encode(fr):
            self.container.mux(p)

    def close(self) -> None:
        for p in self.stream.encode(None):
            self.container.mux(p)
        self.container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            try:
                self.container.close()
            except Exception:
                pass


def write_video(path: str | Path, frames, fps: Fraction, colour: Colour = Colour()) -> None:
    """Writes an iterable of RGB frames to ``path`` (format from the suffix)."""
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise ValueError("no frames to write")
    with VideoWriter(path, Path(path).suffix, first.shape[1], first.shape[0], fps, colour) as w:
        w.write(first)
        for fr in it:
            w.write(fr)


def sniff(data: bytes) -> bool:
    """Whether file content is a video container ncodec reads: Y4M; Matroska/WebM with a video
    track (``V_`` codec id in the first 64 KiB); MP4/MOV (``ftyp``) other than the audio-only
    brands (M4A, M4B); AVI."""
    head = bytes(data[:65536])
    if head.startswith(b"YUV4MPEG2 "):
        return True
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return b"V_" in head
    if head[4:8] == b"ftyp":
        return head[8:12] not in (b"M4A ", b"M4B ", b"M4P ")
    return head[:4] == b"RIFF" and head[8:12] == b"AVI "


def add_video_args(parser: Any, which: str = "all") -> None:
    """Adds the video options to an argparse parser: ``which`` is ``"encode"`` (--gop, --size,
    --fps), ``"decode"`` (--start, --frames) or ``"all"``. Imports nothing heavy (``--help``)."""
    if which in ("encode", "all"):
        parser.add_argument(
            "--gop",
            type=int,
            default=DEFAULT_GOP,
            help=f"video: frames per GOP / seek point (default {DEFAULT_GOP})",
        )
        parser.add_argument("--size", default=None, help="video: WIDTHxHEIGHT of a raw .yuv input (4:2:0)")
        parser.add_argument(
            "--fps",
            default=None,
            help="video: frame rate of a raw .yuv input, or an override (constant rate), e.g. 30000/1001",
        )
    if which in ("decode", "all"):
        parser.add_argument("--start", type=float, default=None, help="video: first second to decode (seeks)")
        parser.add_argument("--frames", type=int, default=None, help="video: number of frames to decode")


__all__ = [
    "add_video_args",
    "sniff",
    "DEFAULT_GOP",
    "VideoReader",
    "VideoWriter",
    "Colour",
    "DroppedAudioWarning",
    "OUT_FORMATS",
    "parse_fps",
    "parse_size",
    "write_video",
]
