"""The video medium: frames <-> the image model's latents <-> I/P frame payloads <-> GOP segments.

Every frame goes through the image model's transforms (``ImageModel.analysis`` /
``scale_latents`` / ``synthesize``, the frame replicate-padded to multiples of 64 as an image tile
is, but never tiled: a frame is one coding unit). What differs between frames is the latent codec:

* **I-frames**: the image model's own latent codec (``image-hp-v1``: the two-part hyperprior
  codec), exactly an image tile's payload;
* **P-frames**: a conditional latent codec whose ``context`` is built from the previously decoded
  frames' dequantised latents ``ys_hat`` (exact: multiples of ``2**-8``) and their qualities, never
  from pixels. Which codec is the stream's model's choice (:class:`VideoModel`): an image model
  alone gives an all-intra stream; a temporal model (``video-st-v1``, issue 17) adds P-frames.

**Container.** One GOP = one data segment, so the container's index gives random access to every
GOP's I-frame. A GOP's payload is the multi-part payload (``join_parts``) of its frames (their
count follows from the header); a frame's payload is a 3-byte head (u8 type: 0 I, 1 P; u16
centi-quality) then its latent codec's multi-part payload. Each frame carries its quality, so
P-frames may use a lower quality than I-frames (``p_offset``) and rate control may change the
quality from GOP to GOP. See FORMAT.md, "Video data segments".

**Memory.** The encoder holds one GOP of latents (rate control codes a GOP at several qualities
from one analysis); the decoder one GOP's payload and two frames of latents. Frames stream in and
out (:func:`encode_file`, :meth:`VideoCodec.decode_stream`).

**Timestamps.** A constant-rate source stores none: frame ``i`` is shown at ``i / fps``. A
variable-rate one (:meth:`~ncodec.codec.video_io.VideoReader.timestamps`) stores its time base in
the parameter block and, in front of every GOP's frames, the GOP's presentation timestamps (u64
first tick, then varint deltas; FORMAT.md, "Timestamps"). Decoded frames then carry them
(:class:`TimedFrame`) and the MKV/MP4 writers use them; Y4M gets the nominal rate.

**Seeking.** :func:`decode_range` reads the index, jumps to the GOP holding the start frame,
entropy-decodes from the last I-frame at or before it and synthesises only the frames asked for.
Time ``t`` maps to the frame on screen at ``t``: ``floor(t * fps)``, or with timestamps the last
frame whose timestamp is ``<= t`` (a binary search over the GOPs' first timestamps, through the
index).

**Rate control** (:func:`encode_file`): ``quality`` (0..100) codes every GOP at that quality;
``target_kbps`` gives each GOP its share of the bytes still left (by frames) and searches the GOP's
quality by secant steps on log bytes from the previous GOP's quality, so the whole stream lands
within a few per cent of the target (the last GOPs absorb earlier misses).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from ncodec.bitstream.container import MEDIA_VIDEO, Header, StreamReader, StreamWriter
from ncodec.bitstream.errors import BitstreamError, CorruptStreamError, ModelMismatchError
from ncodec.bitstream.params import MAX_FRAMES, MAX_VIDEO_PIXELS, VideoParams
from ncodec.codec.errors import UnsupportedInputError
from ncodec.codec.medium import Analysis, Encoded, MediumCodec, Progress, Target, no_progress
from ncodec.codec.video_io import (
    DEFAULT_GOP,
    MAX_TICKS,
    OUT_FORMATS,
    Colour,
    VideoReader,
    VideoWriter,
    add_video_args,
    parse_fps,
    sniff,
)
from ncodec.entropy.varint import read_varint, write_varint
from ncodec.models.latent_codecs import HyperpriorCodec, LatentCodec, UnitShape, join_parts, split_parts

VIDEO_EXTS = frozenset({".mp4", ".mkv", ".webm", ".y4m", ".mov", ".avi", ".yuv"})
DEFAULT_QUALITY = 50.0
P_OFFSET = 0.0
"""Quality units P-frames are coded below their GOP's I-frame (0 until a P-frame codec is measured)."""
I_FRAME, P_FRAME = 0, 1
FRAME_HEAD = struct.Struct("<BH")
TS_FIRST = struct.Struct("<Q")
DOWNSAMPLE = 64


# ---- model -----------------------------------------------------------------------------------


@dataclass
class VideoModel:
    """What codes a video: the image model (transforms and the I-frame latent codec) and the
    P-frame latent codec (``None``: all-intra). ``model_id`` and ``digest`` go into the stream
    header: the image model's for all-intra streams, the temporal model's otherwise (which in turn
    pins the image model it was trained against)."""

    image: Any
    p_codec: LatentCodec | None = None
    model_id: str = ""
    digest: bytes = b""
    i_codec: LatentCodec = field(init=False)

    def __post_init__(self) -> None:
        lc = getattr(self.image, "latent_codec", None)
        self.i_codec = lc() if lc is not None else HyperpriorCodec(self.image)
        self.model_id = self.model_id or self.image.model_id
        self.digest = self.digest or self.image.digest

    def unit_shape(self, w: int, h: int) -> UnitShape:
        hz, wz = -(-h // DOWNSAMPLE), -(-w // DOWNSAMPLE)
        c = self.image.config
        return UnitShape(y=(1, c["m"], 4 * hz, 4 * wz), z=(1, c["n"], hz, wz))


def _temporal_codec(temporal: Any, image: Any) -> LatentCodec:
    """The P-frame codec of a temporal model (issue 17's ``TemporalCodec``)."""
    from ncodec.models.latent_codecs.temporal import TemporalCodec

    return TemporalCodec(temporal, image)


_video_models: dict[tuple[int, str], VideoModel] = {}


def video_model(model: Any, device: str = "cpu") -> VideoModel:
    """The :class:`VideoModel` of a loaded model: a :class:`VideoModel` as is; an image model
    (anything with ``analysis``) for all-intra coding; a temporal model (anything naming its
    ``image_model_id``) with the image model it names and its P-frame codec."""
    if isinstance(model, VideoModel):
        return model
    key = (id(model), device)
    if key in _video_models:
        return _video_models[key]
    if hasattr(model, "analysis"):
        vm = VideoModel(model)
    elif hasattr(model, "image_model_id"):
        from ncodec.models.registry import load_model

        image = load_model(model.image_model_id)
        if device != "cpu":
            import copy

            image = copy.deepcopy(image).to(device)
        check = getattr(model, "check_image_model", None)
        if check is not None:
            check(image)
        vm = VideoModel(image, _temporal_codec(model, image), model.model_id, model.digest)
    else:
        raise UnsupportedInputError(f"{type(model).__name__} is not a video or image model")
    _video_models[key] = vm
    return vm


def make_context(p_codec: LatentCodec, quality: float, refs: list[tuple[torch.Tensor, float]]) -> Any:
    """A P-frame's ``context``: ``refs`` are the decoded ``(ys_hat, quality)`` of the previous
    frames, newest first. A codec with ``make_context(quality, refs)`` builds its own; otherwise
    the temporal model's ``TemporalContext`` (previous two frames) when that module exists, else
    the previous frame's ``ys_hat``."""
    make = getattr(p_codec, "make_context", None)
    if make is not None:
        return make(quality, refs)
    try:
        from ncodec.models.video_model import FrameRef, TemporalContext
    except ImportError:
        return refs[0][0]
    prev2 = FrameRef(*refs[1]) if len(refs) > 1 else None
    return TemporalContext(quality, FrameRef(*refs[0]), prev2)


# ---- frames ----------------------------------------------------------------------------------


def _to_tensor(rgb: np.ndarray, device: str) -> torch.Tensor:
    """uint8 ``[h, w, 3]`` -> float ``[1, 3, H, W]`` in [0, 1], replicate-padded to multiples of 64."""
    h, w = rgb.shape[:2]
    a = np.pad(rgb, ((0, (-h) % DOWNSAMPLE), (0, (-w) % DOWNSAMPLE), (0, 0)), mode="edge")
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float().div_(255.0).to(device)


def analyse_frame(vm: VideoModel, rgb: np.ndarray, device: str = "cpu") -> torch.Tensor:
    """``g_a`` of one frame (rate independent)."""
    with torch.no_grad():
        return vm.image.analysis(_to_tensor(rgb, device))


def synthesize_frame(vm: VideoModel, ys_hat: torch.Tensor, w: int, h: int, quality: float) -> np.ndarray:
    """Dequantised latents -> uint8 ``[h, w, 3]``."""
    x = vm.image.synthesize(ys_hat, quality)[0, :, :h, :w]
    return x.mul(255).round_().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def _centi(q: float) -> int:
    return int(round(min(max(float(q), 0.0), 100.0) * 100))


@dataclass
class CodedGop:
    """A GOP coded at one quality: its segment payload and, per frame, ``(ys_hat, quality)``."""

    payload: bytes
    latents: list[tuple[torch.Tensor, float]]


def code_gop(vm: VideoModel, ys: list[torch.Tensor], quality: float, p_offset: float = P_OFFSET) -> CodedGop:
    """Codes the analysed frames ``ys`` of one GOP: the first (and, all-intra, every) frame as an
    I-frame at ``quality``, the others as P-frames at ``quality - p_offset``."""
    frames: list[bytes] = []
    latents: list[tuple[torch.Tensor, float]] = []
    refs: list[tuple[torch.Tensor, float]] = []
    for i, y in enumerate(ys):
        ftype = P_FRAME if i > 0 and vm.p_codec is not None else I_FRAME
        qc = _centi(quality if ftype == I_FRAME else quality - p_offset)
        q = qc / 100  # the decoder sees only the stored centi-quality
        ys_, z_hat = vm.image.scale_latents(y, q)
        if ftype == I_FRAME:
            coded = vm.i_codec.compress(ys_, z_hat)
        else:
            coded = vm.p_codec.compress(ys_, z_hat, make_context(vm.p_codec, q, refs))
        frames.append(FRAME_HEAD.pack(ftype, qc) + join_parts(coded.parts))
        refs = [(coded.ys_hat, q)] + refs[:1]
        latents.append((coded.ys_hat, q))
    return CodedGop(join_parts(frames), latents)


def gop_frames(params: VideoParams, k: int) -> int:
    """Frames in GOP ``k``."""
    return min(params.gop, params.frames - k * params.gop)


# ---- timestamps ------------------------------------------------------------------------------


class TimedFrame(np.ndarray):
    """A decoded frame (uint8 ``[H, W, 3]``, an ``ndarray``) of a stream with timestamps: ``pts``
    is its presentation time in ticks of ``time_base`` (seconds per tick) from the stream's first
    frame. Frames of constant-rate streams are plain arrays."""

    pts: int | None = None
    time_base: Fraction | None = None

    def __array_finalize__(self, obj: Any) -> None:
        self.pts = getattr(obj, "pts", None)
        self.time_base = getattr(obj, "time_base", None)

    @property
    def time(self) -> Fraction | None:
        """Presentation time in seconds."""
        return None if self.pts is None else self.pts * self.time_base


def _timed(rgb: np.ndarray, pts: int, time_base: Fraction) -> TimedFrame:
    f = rgb.view(TimedFrame)
    f.pts, f.time_base = pts, time_base
    return f


def time_base(params: VideoParams) -> Fraction | None:
    """The time base (seconds per tick) of a stream's timestamps; ``None`` when it has none."""
    return Fraction(params.tb_num, params.tb_den) if params.timestamps else None


def timestamp_block(ticks: Sequence[int]) -> bytes:
    """A GOP's timestamp block: u64 first tick, then each later frame's delta as a varint."""
    out = bytearray(TS_FIRST.pack(ticks[0]))
    for a, b in zip(ticks, ticks[1:]):
        write_varint(out, b - a)
    return bytes(out)


def check_timestamps(ticks: Sequence[int], n_frames: int) -> None:
    """What a stream can hold: ``n_frames`` ticks from 0, strictly increasing, deltas below
    ``2**32`` and all below :data:`MAX_TICKS` (raises ``UnsupportedInputError`` otherwise)."""
    if len(ticks) != n_frames:
        raise UnsupportedInputError(f"{len(ticks)} timestamps for {n_frames} frames")
    if ticks[0] != 0 or ticks[-1] >= MAX_TICKS:
        raise UnsupportedInputError(f"timestamps must start at 0 and stay below {MAX_TICKS} ticks")
    if any(not 0 < b - a < 1 << 32 for a, b in zip(ticks, ticks[1:])):
        raise UnsupportedInputError("timestamps must increase, by less than 2**32 ticks a frame")


def _checked_timestamps(
    timestamps: tuple[Fraction, Sequence[int]] | None, n_frames: int
) -> tuple[int, int, Sequence[int]]:
    """``(tb num, tb den, ticks)`` of ``timestamps`` checked for a stream (``0, 0, ()``: none)."""
    if timestamps is None:
        return 0, 0, ()
    tb, ticks = Fraction(timestamps[0]), timestamps[1]
    check_timestamps(ticks, n_frames)
    if not (0 < tb.numerator < 1 << 31 and tb.denominator < 1 << 31):
        raise UnsupportedInputError(f"timestamp time base {tb} outside 1/(2**31-1)..2**31-1")
    return tb.numerator, tb.denominator, ticks


def gop_timestamps(params: VideoParams, payload: bytes, k: int) -> tuple[list[int] | None, int]:
    """GOP ``k``'s timestamps (ticks) and where its frames start in ``payload``: ``(None, 0)``
    for a stream without timestamps.

    Raises:
        CorruptStreamError: a block that is truncated or holds a value out of range (GOP 0 must
            start at 0, every delta is ``1..2**32-1``, every tick below ``2**53``).
    """
    if not params.timestamps:
        return None, 0
    n = gop_frames(params, k)
    if len(payload) < TS_FIRST.size + (n - 1):  # every delta takes a byte at least
        raise CorruptStreamError(f"GOP {k}: the timestamp block overruns its segment")
    (t,) = TS_FIRST.unpack_from(payload)
    if t >= MAX_TICKS or (k == 0 and t != 0):
        raise CorruptStreamError(f"GOP {k}: first timestamp {t} out of range")
    ticks, pos = [t], TS_FIRST.size
    for _ in range(n - 1):
        d, pos = read_varint(payload, pos)
        t += d
        if d == 0 or t >= MAX_TICKS:
            raise CorruptStreamError(f"GOP {k}: timestamps do not increase, or leave the range")
        ticks.append(t)
    return ticks, pos


def _check_order(prev: list[int] | None, ticks: list[int] | None, k: int) -> list[int] | None:
    """GOP ``k``'s first timestamp must follow the previous GOP's last (when both are known)."""
    if prev is not None and ticks is not None and ticks[0] <= prev[-1]:
        raise CorruptStreamError(f"GOP {k} starts at or before the end of GOP {k - 1}")
    return ticks


def _split_gop(params: VideoParams, payload: bytes, k: int) -> list[tuple[int, int, bytes]]:
    """``(type, centi-quality, parts payload)`` of every frame of GOP ``k`` (after its timestamps)."""
    out = []
    _, at = gop_timestamps(params, payload, k)
    for j, fp in enumerate(split_parts(payload[at:], gop_frames(params, k))):
        if len(fp) < FRAME_HEAD.size:
            raise CorruptStreamError(f"frame {k * params.gop + j}: payload shorter than its head")
        ftype, qc = FRAME_HEAD.unpack_from(fp)
        if ftype not in (I_FRAME, P_FRAME) or qc > 10000:
            raise CorruptStreamError(f"frame {k * params.gop + j}: invalid frame type or quality")
        if j == 0 and ftype != I_FRAME:
            raise CorruptStreamError(f"GOP {k} does not start with an I-frame")
        out.append((ftype, qc, fp[FRAME_HEAD.size :]))
    return out


def decode_gop(
    vm: VideoModel,
    params: VideoParams,
    payload: bytes,
    k: int,
    first: int = 0,
    last: int | None = None,
) -> Iterator[np.ndarray]:
    """Decodes GOP ``k``'s frames ``first..last-1`` (in-GOP indexes) to uint8 ``[H, W, 3]``.
    Frames before ``first`` are entropy-decoded only as far as P-frames need them (from the last
    I-frame at or before ``first``) and never synthesised. With timestamps, the frames are
    :class:`TimedFrame` s.

    Raises:
        CorruptStreamError: a damaged GOP (bad framing, timestamps, frame heads or latent payloads).
    """
    ticks, _ = gop_timestamps(params, payload, k)
    tb = time_base(params)
    frames = _split_gop(params, payload, k)
    last = len(frames) if last is None else min(last, len(frames))
    start = max(j for j in range(first + 1) if frames[j][0] == I_FRAME)
    shape = vm.unit_shape(params.width, params.height)
    refs: list[tuple[torch.Tensor, float]] = []
    for j in range(start, last):
        ftype, qc, data = frames[j]
        q = qc / 100
        n = k * params.gop + j
        try:
            if ftype == I_FRAME:
                ys_hat = vm.i_codec.decompress(split_parts(data, vm.i_codec.parts), shape)
            else:
                if vm.p_codec is None:
                    raise CorruptStreamError(
                        f"frame {n} is a P-frame, but the stream's model codes I-frames only"
                    )
                parts = split_parts(data, vm.p_codec.parts)
                ys_hat = vm.p_codec.decompress(parts, shape, make_context(vm.p_codec, q, refs))
        except BitstreamError:
            raise
        except (ValueError, RuntimeError, IndexError, OverflowError) as e:  # sizes that do not fit
            raise CorruptStreamError(f"frame {n} is damaged ({e})") from None
        refs = [(ys_hat, q)] + refs[:1]
        if j >= first:
            rgb = synthesize_frame(vm, ys_hat, params.width, params.height, q)
            yield rgb if ticks is None else _timed(rgb, ticks[j], tb)


# ---- in-memory video ---------------------------------------------------------------------------


@dataclass
class Video:
    """A video in memory or streamed: ``frames`` is an array ``[T, H, W, 3]`` uint8 or an iterable
    of ``[H, W, 3]`` uint8 frames (for example a :class:`~ncodec.codec.video_io.VideoReader`),
    ``fps`` the frame rate, ``colour`` the source's colour format (for writing files back),
    ``timestamps`` a variable-rate video's ``(time base, ticks)``: every frame's presentation time
    in ticks of the time base (seconds per tick) from the first frame (``None``: frame ``i`` is
    shown at ``i / fps``)."""

    frames: Any
    fps: Fraction = Fraction(25)
    colour: Colour = Colour()
    timestamps: tuple[Fraction, Sequence[int]] | None = None

    @property
    def times(self) -> list[Fraction] | None:
        """The frames' presentation times in seconds (``None`` for a constant rate)."""
        if self.timestamps is None:
            return None
        tb, ticks = self.timestamps
        return [t * tb for t in ticks]


def _check_frame(rgb: Any, shape: tuple[int, int] | None, n: int) -> np.ndarray:
    a = np.asarray(rgb)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise UnsupportedInputError(f"frame {n}: video frames must be uint8 [H, W, 3]")
    if shape is not None and a.shape[:2] != shape:
        raise UnsupportedInputError(
            f"frame {n} is {a.shape[1]}x{a.shape[0]}, the first {shape[1]}x{shape[0]}"
        )
    if a.shape[0] * a.shape[1] > MAX_VIDEO_PIXELS or max(a.shape[:2]) > 65535:
        raise UnsupportedInputError(
            f"frames of {a.shape[1]}x{a.shape[0]} exceed the {MAX_VIDEO_PIXELS}-pixel limit"
        )
    return a


class VideoAnalysis(Analysis):
    """Every frame's ``g_a`` of an in-memory video (memory grows with its length: files go
    through :func:`encode_file`, which holds one GOP)."""

    def __init__(
        self, vm: VideoModel, video: Video, gop: int, device: str, progress: Progress, p_offset: float
    ):
        self.vm, self.gop, self.p_offset = vm, gop, p_offset
        self.fps = parse_fps(video.fps)
        self.colour = video.colour
        self.ys: list[torch.Tensor] = []
        shape = None
        for n, f in enumerate(progress(video.frames)):
            a = _check_frame(f, shape, n)
            shape = a.shape[:2]
            self.ys.append(analyse_frame(vm, a, device))
        if not self.ys:
            raise UnsupportedInputError("empty video (no frames)")
        if len(self.ys) > MAX_FRAMES:
            raise UnsupportedInputError(f"video of more than {MAX_FRAMES} frames")
        self.height, self.width = shape
        self.timestamps = video.timestamps

    @property
    def seconds(self) -> float:
        return len(self.ys) / float(self.fps)

    def encode(self, rate: float) -> Encoded:
        qc = _centi(rate)
        tb_num, tb_den, ticks = _checked_timestamps(self.timestamps, len(self.ys))
        params = VideoParams(
            self.width,
            self.height,
            self.fps.numerator,
            self.fps.denominator,
            len(self.ys),
            qc,
            self.gop,
            self.colour.to_byte(),
            tb_num,
            tb_den,
        )
        gops = [
            code_gop(self.vm, self.ys[i : i + self.gop], qc / 100, self.p_offset)
            for i in range(0, len(self.ys), self.gop)
        ]

        def reconstruct() -> Video:
            frames = [
                synthesize_frame(self.vm, y, self.width, self.height, q) for g in gops for y, q in g.latents
            ]
            return Video(np.stack(frames), self.fps, self.colour, self.timestamps)

        payloads = [g.payload for g in gops]
        if tb_num:
            g = self.gop
            payloads = [timestamp_block(ticks[k * g : (k + 1) * g]) + p for k, p in enumerate(payloads)]
        return Encoded(params, payloads, reconstruct)


# ---- streaming encode -------------------------------------------------------------------------

_LOG_BYTES_PER_QUALITY = 0.03
"""Prior slope of ln(bytes) per quality unit (image-hp-v1 on Kodak: 0.096 -> 1.67 bpp over 0..100)."""


def _search_gop(
    code: Callable[[float], CodedGop], goal: float, q0: float, slope: float, tries: int = 6, tol: float = 0.03
) -> tuple[float, CodedGop, float]:
    """The quality (centi-resolution) whose GOP payload is nearest ``goal`` bytes: secant steps on
    ln(bytes) from ``q0`` with prior ``slope``. Returns (quality, coded GOP, slope seen)."""
    seen: dict[int, CodedGop] = {}

    def at(q: float) -> tuple[int, int]:
        qc = _centi(q)
        if qc not in seen:
            seen[qc] = code(qc / 100)
        return qc, len(seen[qc].payload)

    qc, b = at(q0)
    prev = None
    for _ in range(tries - 1):
        err = math.log(goal / max(b, 1))
        if abs(err) <= math.log1p(tol):
            break
        if prev is not None and prev[1] != b and prev[0] != qc:
            s = math.log(prev[1] / b) / ((prev[0] - qc) / 100)
            if 0.003 < s < 0.3:
                slope = s
        nxt = _centi(qc / 100 + err / slope)
        if nxt == qc or nxt in seen:
            below = [c for c in seen if len(seen[c].payload) <= goal]
            above = [c for c in seen if len(seen[c].payload) > goal]
            if not below or not above:
                break
            lo, hi = max(below), min(above)
            nxt = (lo + hi) // 2
            if nxt in seen:
                break
        prev = (qc, b)
        qc, b = at(nxt / 100)
    best = min(seen, key=lambda c: abs(math.log(max(len(seen[c].payload), 1) / goal)))
    return best / 100, seen[best], slope


@dataclass
class EncodeStats:
    """What :func:`encode_file` did: frames, bytes written, duration (s), kbit/s, the per-GOP
    qualities and the number of GOP codings the rate control tried."""

    frames: int
    bytes: int
    seconds: float
    width: int
    height: int
    qualities: list[float]
    tries: int
    params: VideoParams

    @property
    def kbps(self) -> float:
        return self.bytes * 8 / self.seconds / 1000


class _Counter:
    def __init__(self, f: BinaryIO):
        self.f, self.n = f, 0

    def write(self, b: bytes) -> int:
        self.n += len(b)
        return self.f.write(b)


def encode_frames(
    model: Any,
    frames: Iterable[np.ndarray],
    out: BinaryIO,
    *,
    n_frames: int,
    fps: Fraction,
    colour: Colour = Colour(),
    quality: float | None = None,
    target_kbps: float | None = None,
    gop: int = DEFAULT_GOP,
    p_offset: float = P_OFFSET,
    device: str = "cpu",
    progress: Progress = no_progress,
    timestamps: tuple[Fraction, Sequence[int]] | None = None,
) -> EncodeStats:
    """Encodes ``n_frames`` RGB frames (any iterable: they are consumed one at a time) to the
    stream ``out``, one GOP in memory at a time. See the module docstring for the rate control.
    ``timestamps``: ``(time base, ticks)`` of a variable-rate source (every frame's presentation
    time in ticks from the first, see :func:`check_timestamps`), stored in the stream; ``None``:
    frame ``i`` is shown at ``i / fps`` and nothing is stored.

    Raises:
        UnsupportedInputError: frames of the wrong type or size, or not ``n_frames`` of them;
            timestamps the stream cannot hold.
        ValueError: bad options.
    """
    if quality is not None and target_kbps is not None:
        raise ValueError("give at most one of quality, target_kbps")
    if quality is not None and not 0 <= quality <= 100:
        raise ValueError(f"quality must be in 0..100, got {quality}")
    if target_kbps is not None and not target_kbps > 0:
        raise ValueError("target_kbps must be positive")
    if not 1 <= int(gop) <= MAX_FRAMES:
        raise ValueError(f"gop must be in 1..{MAX_FRAMES}")
    if not 1 <= n_frames <= MAX_FRAMES:
        raise UnsupportedInputError(f"video of {n_frames} frames (1..{MAX_FRAMES} supported)")
    gop = int(gop)
    fps = parse_fps(fps)
    tb_num, tb_den, ticks = _checked_timestamps(timestamps, n_frames)
    vm = video_model(model, device)
    seconds = n_frames / float(fps)
    q = DEFAULT_QUALITY if quality is None else float(quality)
    budget = None if target_kbps is None else target_kbps * 1000 / 8 * seconds
    slope = _LOG_BYTES_PER_QUALITY
    it = iter(frames)
    shape = None
    writer: StreamWriter | None = None
    counter = _Counter(out)
    done, qualities, tries = 0, [], 0
    n_gops = -(-n_frames // gop)
    for k in progress(range(n_gops)):
        ys = []
        for _ in range(gop_frames_of(n_frames, gop, k)):
            f = next(it, None)
            if f is None:
                raise UnsupportedInputError(f"the video ended after {done + len(ys)} of {n_frames} frames")
            a = _check_frame(f, shape, done + len(ys))
            shape = a.shape[:2]
            ys.append(analyse_frame(vm, a, device))
        head = b"" if not tb_num else timestamp_block(ticks[done : done + len(ys)])
        if budget is None:
            coded = code_gop(vm, ys, q, p_offset)
            tries += 1
        else:
            # header (written with the first GOP), segment heads, index and end record
            left = budget - (counter.n or 64 + len(vm.model_id)) - 9 * (n_gops - k) - 8 * n_gops - 34
            goal = max(left * len(ys) / (n_frames - done) - len(head), 16.0)
            n_seen = [0]

            def code(qq: float, ys=ys, n_seen=n_seen) -> CodedGop:
                n_seen[0] += 1
                return code_gop(vm, ys, qq, p_offset)

            q, coded, slope = _search_gop(code, goal, q, slope)
            tries += n_seen[0]
        if writer is None:
            h, w = shape
            params = VideoParams(
                w,
                h,
                fps.numerator,
                fps.denominator,
                n_frames,
                _centi(q),
                gop,
                colour.to_byte(),
                tb_num,
                tb_den,
            )
            writer = StreamWriter(
                counter, Header(MEDIA_VIDEO, vm.model_id, vm.digest[:16], params.to_bytes())
            )
        writer.write_segment(head + coded.payload)
        qualities.append(q)
        done += len(ys)
    if next(it, None) is not None:
        raise UnsupportedInputError(f"the video holds more than the {n_frames} frames counted")
    writer.close()
    return EncodeStats(n_frames, counter.n, seconds, shape[1], shape[0], qualities, tries, params)


def gop_frames_of(n_frames: int, gop: int, k: int) -> int:
    return min(gop, n_frames - k * gop)


def encode_file(
    model: Any,
    src: str | Path | BinaryIO,
    out: BinaryIO,
    *,
    size: str | tuple[int, int] | None = None,
    fps: str | float | Fraction | None = None,
    **options: Any,
) -> EncodeStats:
    """Encodes the video file ``src`` to the binary file ``out``, streaming (options as
    :func:`encode_frames`; ``size``/``fps`` for raw ``.yuv`` input, ``fps`` overrides a file's rate
    and then frames are coded at that constant rate). A variable-rate source's timestamps are
    stored (:meth:`~ncodec.codec.video_io.VideoReader.timestamps`)."""
    reader = VideoReader(src, size=size, fps=fps)
    n = reader.count_frames()
    if n < 1:
        raise UnsupportedInputError(f"{src}: no video frames")
    return encode_frames(
        model,
        reader,
        out,
        n_frames=n,
        fps=reader.fps,
        colour=reader.colour,
        timestamps=reader.timestamps(),
        **options,
    )


# ---- decoding ---------------------------------------------------------------------------------


def decode_frames(
    model: Any,
    params: VideoParams,
    segments: Iterable[bytes],
    *,
    device: str = "cpu",
    progress: Progress = no_progress,
) -> Iterator[np.ndarray]:
    """Decodes a stream's segments as they come; yields its ``params.frames`` frames
    (:class:`TimedFrame` s when the stream stores timestamps)."""
    vm = video_model(model, device)
    it = iter(segments)
    prev = None
    for k in progress(range(params.segments)):
        payload = next(it, None)
        if payload is None:
            raise CorruptStreamError(f"stream holds fewer segments than its {params.segments} GOPs")
        prev = _check_order(prev, gop_timestamps(params, payload, k)[0], k)
        yield from decode_gop(vm, params, payload, k)
    if next(it, None) is not None:
        raise CorruptStreamError("stream holds more segments than the video has GOPs")


def _seconds(start_seconds: float | Fraction) -> Fraction:
    if not start_seconds >= 0 or not math.isfinite(start_seconds):
        raise ValueError(f"start must be a non-negative number of seconds, got {start_seconds}")
    return Fraction(str(start_seconds)) if not isinstance(start_seconds, Fraction) else start_seconds


def start_frame(params: VideoParams, start_seconds: float) -> int:
    """The frame on screen at ``start_seconds`` at the nominal rate: ``floor(t * fps)`` (exact
    for rational ``t``). Streams with timestamps seek with :func:`seek_frame`."""
    return math.floor(_seconds(start_seconds) * params.fps_num / params.fps_den)


def seek_frame(r: StreamReader, params: VideoParams, start_seconds: float) -> int:
    """The frame on screen at ``start_seconds``: :func:`start_frame` without timestamps; with
    them, the last frame whose timestamp is ``<= t`` (the last frame shows for one nominal frame
    time), found by a binary search over the GOPs' first timestamps, reading ``log2(GOPs)``
    segments through the index. ``params.frames`` when ``t`` is past the end.

    Raises:
        BitstreamError: a damaged index, segment or timestamp block.
    """
    if not params.timestamps:
        return start_frame(params, start_seconds)
    target = _seconds(start_seconds) / time_base(params)  # in ticks
    if target == 0:
        return 0
    offsets = r.read_index()
    if len(offsets) != params.segments:
        raise CorruptStreamError(f"index lists {len(offsets)} segments, the header implies {params.segments}")
    seen: dict[int, list[int]] = {}

    def ticks(k: int) -> list[int]:
        if k not in seen:
            seen[k] = gop_timestamps(params, r.segment(k), k)[0]
        return seen[k]

    lo, hi = 0, params.segments - 1  # GOP 0 starts at tick 0 <= target
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ticks(mid)[0] <= target:
            lo = mid
        else:
            hi = mid - 1
    t = ticks(lo)
    j = max(i for i in range(len(t)) if t[i] <= target)
    n = lo * params.gop + j
    frame_ticks = Fraction(params.fps_den, params.fps_num) / time_base(params)
    if n == params.frames - 1 and target >= t[j] + frame_ticks:
        return params.frames
    return n


def _check_version(r: StreamReader, params: VideoParams) -> VideoParams:
    if params.timestamps and r.header.version < 3:
        raise CorruptStreamError(f"a version {r.header.version} video stream with timestamps")
    return params


def open_stream(f: BinaryIO, device: str = "cpu") -> tuple[StreamReader, VideoParams, Any]:
    """Reads a video stream's header: (reader, params, the model it names, checked).

    Raises:
        ModelMismatchError: the stream names a model that is not installed, or other weights.
        BitstreamError: not a video stream, or a damaged header.
    """
    from ncodec.models.registry import SHIPPED, load_model

    r = StreamReader(f)
    h = r.header
    if h.media != MEDIA_VIDEO:
        raise CorruptStreamError("not a video stream")
    params = _check_version(r, VideoParams.from_bytes(h.params))
    if h.model_id not in SHIPPED:
        raise ModelMismatchError(h.model_id, h.model_hash.hex(), "(none installed)", "-")
    m = load_model(h.model_id)
    if m.digest[:16] != h.model_hash:
        raise ModelMismatchError(h.model_id, h.model_hash.hex(), h.model_id, m.digest[:16].hex())
    return r, params, m


def decode_range(
    path: str | Path | BinaryIO,
    start_seconds: float = 0.0,
    frames: int | None = None,
    *,
    model: Any = None,
    device: str = "cpu",
) -> Iterator[np.ndarray]:
    """Random access: yields ``frames`` frames (all the rest if ``None``) from the frame on screen
    at ``start_seconds``, reading only the GOPs that hold them (through the index).

    Raises:
        ValueError: a start beyond the end or a negative count.
        BitstreamError: a damaged stream or index.
    """
    own = isinstance(path, str | Path)
    f = open(path, "rb") if own else path
    try:
        if model is None:
            r, params, model = open_stream(f, device)
        else:
            r = StreamReader(f)
            if r.header.media != MEDIA_VIDEO:
                raise CorruptStreamError("not a video stream")
            params = _check_version(r, VideoParams.from_bytes(r.header.params))
        yield from _decode_range(r, params, model, seek_frame(r, params, start_seconds), frames, device)
    finally:
        if own:
            f.close()


def _decode_range(
    r: StreamReader, params: VideoParams, model: Any, first: int, count: int | None, device: str
) -> Iterator[np.ndarray]:
    vm = video_model(model, device)
    if first >= params.frames:
        raise ValueError(f"start frame {first} is beyond the video's {params.frames} frames")
    if count is not None and count < 0:
        raise ValueError("frames must be non-negative")
    end = params.frames if count is None else min(params.frames, first + count)
    offsets = r.read_index()
    if len(offsets) != params.segments:
        raise CorruptStreamError(f"index lists {len(offsets)} segments, the header implies {params.segments}")
    prev = None
    for k in range(first // params.gop, -(-end // params.gop)):
        payload = r.segment(k)  # through the index; checks the segment is the k-th
        prev = _check_order(prev, gop_timestamps(params, payload, k)[0], k)
        lo = max(first - k * params.gop, 0)
        hi = min(end - k * params.gop, gop_frames(params, k))
        yield from decode_gop(vm, params, payload, k, lo, hi)


# ---- the medium --------------------------------------------------------------------------------


class VideoCodec(MediumCodec):
    """Video (files, or :class:`Video` / uint8 arrays ``[T, H, W, 3]`` in memory); the rate
    parameter is the quality 0..100 (I-frames; P-frames ``p_offset`` lower)."""

    name = "video"
    media = MEDIA_VIDEO
    extensions = VIDEO_EXTS
    out_formats = {k: v[0] for k, v in OUT_FORMATS.items()}
    rate_unit = "quality"
    rate_range = (0.0, 100.0)
    rate_step = 0.01

    def accepts(self, obj: Any) -> bool:
        return isinstance(obj, Video) or (
            isinstance(obj, np.ndarray) and obj.ndim == 4 and obj.shape[-1] == 3 and obj.dtype == np.uint8
        )

    def read(self, path: Path | BinaryIO, *, size: Any = None, fps: Any = None) -> Video:
        """A streamed :class:`Video` (frames are decoded as they are consumed) of a path or a
        seekable binary file, with its timestamps if it is variable-rate (read by decoding the
        file once, without colour conversion)."""
        reader = VideoReader(path, size=size, fps=fps)
        return Video(reader, reader.fps, reader.colour, reader.timestamps())

    def sniff(self, data: bytes) -> bool:
        return sniff(data)

    def analyse(
        self,
        model: Any,
        obj: Any,
        *,
        device: str = "cpu",
        progress: Progress = no_progress,
        gop: int = DEFAULT_GOP,
        p_offset: float = P_OFFSET,
        fps: Any = None,
        **options: Any,
    ) -> VideoAnalysis:
        """``gop``: frames per GOP; ``p_offset``: quality units P-frames sit below I-frames;
        ``fps`` for a bare array (default 25)."""
        if not 1 <= int(gop) <= MAX_FRAMES:
            raise ValueError(f"gop must be in 1..{MAX_FRAMES}")
        video = obj if isinstance(obj, Video) else Video(obj, parse_fps(fps) or Fraction(25))
        return VideoAnalysis(video_model(model, device), video, int(gop), device, progress, p_offset)

    def targets(self, analysis: VideoAnalysis) -> dict[str, Target]:
        s = analysis.seconds
        return {"kbps": Target("kbps", "kbit/s", lambda data, enc: len(data) * 8 / s / 1000, "nearest", 12)}

    def decode(
        self,
        model: Any,
        params: VideoParams,
        segments: Iterable[bytes],
        *,
        device: str = "cpu",
        progress: Progress = no_progress,
    ) -> Video:
        """The whole video in memory (``Video.frames`` is ``[T, H, W, 3]`` uint8; with stored
        timestamps, ``Video.timestamps``)."""
        frames = list(decode_frames(model, params, segments, device=device, progress=progress))
        tb = time_base(params)
        times = None if tb is None else (tb, [f.pts for f in frames])
        return Video(
            np.stack(frames).view(np.ndarray),
            Fraction(params.fps_num, params.fps_den),
            Colour.from_byte(params.colour),
            times,
        )

    def decode_stream(
        self,
        model: Any,
        params: VideoParams,
        segments: Iterable[bytes],
        *,
        device: str = "cpu",
        progress: Progress = no_progress,
    ) -> Iterator[np.ndarray]:
        """Yields the frames one at a time (uint8 ``[H, W, 3]``)."""
        return decode_frames(model, params, segments, device=device, progress=progress)

    def write(self, pieces: Iterable[np.ndarray], params: VideoParams, out: BinaryIO, suffix: str) -> None:
        """Writes frames as MKV (FFV1), MP4 (x264 crf 10) or Y4M (see ``video_io``). With stored
        timestamps, MKV and MP4 frames get them (:class:`TimedFrame`, from the first frame
        written, which is at 0); Y4M, and streams without, the nominal rate."""
        fps = Fraction(params.fps_num, params.fps_den)
        colour = Colour.from_byte(params.colour)
        tb = time_base(params)
        with VideoWriter(out, suffix, params.width, params.height, fps, colour, time_base=tb) as w:
            base = None
            for f in pieces:
                pts = getattr(f, "pts", None) if tb is not None else None
                if pts is not None:
                    base = pts if base is None else base
                    pts -= base
                w.write(f, pts)

    def decoded_shape(self, params: VideoParams) -> tuple[int, ...]:
        return params.width, params.height, params.frames

    def decode_range_stream(
        self,
        model: Any,
        params: VideoParams,
        reader: StreamReader,
        *,
        start: float | None = None,
        frames: int | None = None,
        region: tuple[int, int, int, int] | None = None,
        device: str = "cpu",
    ) -> Iterator[np.ndarray]:
        """Like :meth:`decode_stream`, from the frame on screen at ``start`` seconds, ``frames``
        of them (all the rest if ``None``), jumping through the index of ``reader`` (a seekable
        stream whose header was read) to the GOP that holds the start.

        Raises:
            ValueError: a start beyond the end, or a negative count.
            InvalidArgumentError: a region (video frames are decoded whole).
        """
        if region is not None:
            from ncodec.codec.errors import InvalidArgumentError

            raise InvalidArgumentError("video frames are decoded whole: --region applies to images")
        first = seek_frame(reader, _check_version(reader, params), start or 0.0)
        if first >= params.frames:
            raise ValueError(f"start frame {first} is beyond the video's {params.frames} frames")
        return _decode_range(reader, params, model, first, frames, device)

    # ---- file paths (streaming) ----

    streaming = True

    def encode_into(self, model: Any, src: Any, out: BinaryIO, **options: Any) -> EncodeStats:
        """Streams ``src`` into ``out`` (see :meth:`encode_file`); the interface's entry."""
        progress = options.pop("progress", None)
        return encode_file(
            model, src, out, progress=progress if callable(progress) else no_progress, **options
        )

    def encode_file(self, model: Any, src: str | Path, out: BinaryIO, **options: Any) -> EncodeStats:
        """Streams the video file ``src`` into the stream file ``out`` (options: ``quality``,
        ``target_kbps``, ``gop``, ``p_offset``, ``size``, ``fps``, ``device``, ``progress``)."""
        return encode_file(model, src, out, **options)

    def decode_file(
        self,
        src: str | Path | BinaryIO,
        out: BinaryIO,
        suffix: str,
        *,
        model: Any = None,
        start: float | None = None,
        frames: int | None = None,
        device: str = "cpu",
        progress: Progress = no_progress,
    ) -> tuple[VideoParams, int]:
        """Decodes the stream ``src`` into the video file ``out`` of type ``suffix``, frame by
        frame; ``start`` (seconds) and ``frames`` select a range (through the index). Returns
        the parameters and the number of frames written."""
        own = isinstance(src, str | Path)
        f = open(src, "rb") if own else src
        try:
            if model is None:
                r, params, model = open_stream(f, device)
            else:
                r = StreamReader(f)
                params = _check_version(r, VideoParams.from_bytes(r.header.params))
            if start is None and frames is None:
                pieces = decode_frames(model, params, r.segments(), device=device, progress=progress)
            else:
                pieces = _decode_range(r, params, model, seek_frame(r, params, start or 0.0), frames, device)
            n = [0]

            def counted() -> Iterator[np.ndarray]:
                for p in pieces:
                    n[0] += 1
                    yield p

            self.write(counted(), params, out, suffix)
            return params, n[0]
        finally:
            if own:
                f.close()


__all__ = [
    "VideoCodec",
    "VideoModel",
    "Video",
    "video_model",
    "encode_frames",
    "encode_file",
    "decode_frames",
    "decode_range",
    "seek_frame",
    "TimedFrame",
    "add_video_args",
    "DEFAULT_GOP",
]
