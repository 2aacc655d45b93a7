"""Per-medium parameter blocks of the header (FORMAT.md, "Parameter blocks").

Each block is a fixed little-endian struct, checked against hard limits when read, so a decoder
never sizes an allocation from an unchecked field.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from ncodec.bitstream.errors import CorruptStreamError, LimitExceededError

MAX_DIM = 65535
MAX_PIXELS = 1 << 28  # 268 Mpixel, e.g. 16384 x 16384
MAX_AUDIO_SAMPLES = 1 << 36
MAX_FRAMES = 1 << 24
MAX_VIDEO_PIXELS = 1 << 25  # per frame (frames are coded whole): 8K UHD is 2**24.98


@dataclass(frozen=True)
class ImageParams:
    """Image block, 16 bytes.

    Attributes:
        width, height: pixels, ``1..65535`` each, at most ``2**28`` in all.
        channels: of the source: 1 (gray), 3 (RGB) or 4 (RGBA).
        bit_depth: of the source: 8 or 16 (coded at 8 bits).
        quality: centi-units of the quality parameter, ``0..10000`` (quality 0.00–100.00).
        tile: tile (layout 0) or segment (layout 1) edge in pixels, a multiple of 64 in ``64..4096``.
        alpha: 0 = none, 1 = one extra segment with the zlib-deflated 8-bit alpha plane.
        layout: 0 = independent tiles (format versions 1-2); 1 = one picture whose latents are
            coded in segments of ``tile`` pixels (version 3; FORMAT.md, "Picture layout").
    """

    width: int
    height: int
    channels: int
    bit_depth: int
    quality: int
    tile: int
    alpha: int = 0
    layout: int = 1

    _S = struct.Struct("<IIBBHHBB")

    def to_bytes(self) -> bytes:
        self.check()
        return self._S.pack(
            self.width,
            self.height,
            self.channels,
            self.bit_depth,
            self.quality,
            self.tile,
            self.alpha,
            self.layout,
        )

    @classmethod
    def from_bytes(cls, b: bytes) -> ImageParams:
        if len(b) != cls._S.size:
            raise CorruptStreamError(f"image parameter block is {len(b)} bytes, expected {cls._S.size}")
        p = cls(*cls._S.unpack(b))
        p.check()
        return p

    def check(self) -> None:
        if not (1 <= self.width <= MAX_DIM and 1 <= self.height <= MAX_DIM):
            raise LimitExceededError(f"image size {self.width}x{self.height} outside 1..{MAX_DIM}")
        if self.width * self.height > MAX_PIXELS:
            raise LimitExceededError(f"image of {self.width * self.height} pixels exceeds {MAX_PIXELS}")
        if self.channels not in (1, 3, 4) or self.bit_depth not in (8, 16) or self.alpha not in (0, 1):
            raise CorruptStreamError("invalid image channels, bit depth or alpha mode")
        if self.layout not in (0, 1):
            raise CorruptStreamError(f"unknown image layout {self.layout}")
        if self.alpha != (self.channels == 4):
            raise CorruptStreamError("alpha mode does not match the channel count")
        if not 0 <= self.quality <= 10000 or self.tile % 64 or not 64 <= self.tile <= 4096:
            raise CorruptStreamError("invalid quality or tile size")

    @property
    def tiles_x(self) -> int:
        return -(-self.width // self.tile)

    @property
    def tiles_y(self) -> int:
        return -(-self.height // self.tile)

    @property
    def segments(self) -> int:
        """Data segments the stream must hold: tiles (or segments) in raster order, then alpha."""
        return self.tiles_x * self.tiles_y + self.alpha

    @property
    def shape(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.width, self.height

    def describe(self, total_bytes: int) -> dict[str, Any]:
        """``ncodec info`` fields; ``bpp`` is bits of the whole stream per pixel."""
        return {
            "width": self.width,
            "height": self.height,
            "channels": self.channels,
            "bit_depth": self.bit_depth,
            "quality": self.quality / 100,
            "tile": self.tile,
            "layout": "picture" if self.layout else "tiles",
            "alpha": bool(self.alpha),
            "bpp": total_bytes * 8 / (self.width * self.height),
        }


@dataclass(frozen=True)
class AudioParams:
    """Audio block, 24 bytes: sample rate (Hz), channels, channel mode (0 independent, 1 mid/side),
    rate (kbps x 10), samples per channel, samples per chunk (one chunk = one segment)."""

    sample_rate: int
    channels: int
    channel_mode: int
    rate: int
    samples: int
    chunk: int

    _S = struct.Struct("<IBBHQQ")

    def to_bytes(self) -> bytes:
        self.check()
        return self._S.pack(
            self.sample_rate, self.channels, self.channel_mode, self.rate, self.samples, self.chunk
        )

    @classmethod
    def from_bytes(cls, b: bytes) -> AudioParams:
        if len(b) != cls._S.size:
            raise CorruptStreamError(f"audio parameter block is {len(b)} bytes, expected {cls._S.size}")
        p = cls(*cls._S.unpack(b))
        p.check()
        return p

    def check(self) -> None:
        if (
            not 8000 <= self.sample_rate <= 192000
            or not 1 <= self.channels <= 8
            or self.channel_mode not in (0, 1)
        ):
            raise CorruptStreamError("invalid sample rate, channel count or channel mode")
        if self.channel_mode == 1 and self.channels != 2:
            raise CorruptStreamError("mid/side mode needs exactly two channels")
        if self.samples < 1 or self.rate < 1:
            raise CorruptStreamError("audio stream declares no samples or a zero rate")
        if self.samples > MAX_AUDIO_SAMPLES or not 1 <= self.chunk <= 1 << 24:
            raise LimitExceededError("audio length or chunk size exceeds the limits")

    @property
    def segments(self) -> int:
        """Data segments the stream must hold: one per chunk."""
        return -(-self.samples // self.chunk)

    @property
    def shape(self) -> tuple[int, int]:
        """(channels, samples per channel)."""
        return self.channels, self.samples

    def describe(self, total_bytes: int) -> dict[str, Any]:
        """``ncodec info`` fields; ``kbps`` is kbit/s of the whole stream, ``seconds`` its duration."""
        seconds = self.samples / self.sample_rate
        return {
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "channel_mode": "mid/side" if self.channel_mode == 1 else "independent",
            "rate_kbps": self.rate / 10,
            "samples": self.samples,
            "seconds": seconds,
            "chunk": self.chunk,
            "kbps": total_bytes * 8 / seconds / 1000,
        }


@dataclass(frozen=True)
class VideoParams:
    """Video block, 24 bytes, or 32 with timestamps (FORMAT.md, "Video"): width, height (pixels),
    frame rate as num/den, frame count, nominal quality (centi-units: the first I-frame's; every
    frame carries its own), GOP length (frames per data segment), and the source's colour format
    (``colour``: bit 0 BT.601 else BT.709, bit 1 full range, bit 2 RGB / 4:4:4 source), which the
    decoder's file writers use to give the source's format back.

    ``tb_num``/``tb_den``: the time base (seconds per tick) of the presentation timestamps every
    GOP segment then carries (format version 3, a variable-rate source); ``0/0``: none, frame
    ``i`` is shown at ``i / fps`` (the 24-byte block of versions 1-2 and constant-rate sources).
    """

    width: int
    height: int
    fps_num: int
    fps_den: int
    frames: int
    quality: int
    gop: int
    colour: int = 0
    tb_num: int = 0
    tb_den: int = 0

    _S = struct.Struct("<HHIIIHBBI")
    _TB = struct.Struct("<II")
    FLAG_TIMESTAMPS = 1

    @property
    def timestamps(self) -> bool:
        """Whether the GOP segments carry presentation timestamps (FORMAT.md, "Timestamps")."""
        return self.tb_num != 0

    def to_bytes(self) -> bytes:
        self.check()
        block = self._S.pack(
            self.width,
            self.height,
            self.fps_num,
            self.fps_den,
            self.frames,
            self.quality,
            self.colour,
            self.FLAG_TIMESTAMPS if self.timestamps else 0,
            self.gop,
        )
        return block + self._TB.pack(self.tb_num, self.tb_den) if self.timestamps else block

    @classmethod
    def from_bytes(cls, b: bytes) -> VideoParams:
        if len(b) not in (cls._S.size, cls._S.size + cls._TB.size):
            raise CorruptStreamError(
                f"video parameter block is {len(b)} bytes, expected {cls._S.size} "
                f"(or {cls._S.size + cls._TB.size} with timestamps)"
            )
        w, h, num, den, frames, quality, colour, flags, gop = cls._S.unpack_from(b)
        if flags & ~cls.FLAG_TIMESTAMPS:
            raise CorruptStreamError(f"unknown video flags 0x{flags:02x}")
        timed = bool(flags & cls.FLAG_TIMESTAMPS)
        if timed != (len(b) > cls._S.size):
            raise CorruptStreamError("video block length does not match its timestamp flag")
        tb = cls._TB.unpack_from(b, cls._S.size) if timed else (0, 0)
        if timed and 0 in tb:
            raise CorruptStreamError("zero timestamp time base")
        p = cls(w, h, num, den, frames, quality, gop, colour, *tb)
        p.check()
        return p

    def check(self) -> None:
        if not (1 <= self.width <= MAX_DIM and 1 <= self.height <= MAX_DIM):
            raise LimitExceededError(f"video size {self.width}x{self.height} outside 1..{MAX_DIM}")
        if self.width * self.height > MAX_VIDEO_PIXELS:
            pixels = self.width * self.height
            raise LimitExceededError(f"video frames of {pixels} pixels exceed {MAX_VIDEO_PIXELS}")
        if not 1 <= self.frames <= MAX_FRAMES:
            raise LimitExceededError(f"video of {self.frames} frames outside 1..{MAX_FRAMES}")
        if (
            not 1 <= self.fps_num < 1 << 31
            or not 1 <= self.fps_den < 1 << 31
            or self.fps_num > 1000 * self.fps_den
            or not 1 <= self.gop <= MAX_FRAMES
            or not 0 <= self.quality <= 10000
            or not 0 <= self.colour < 8
        ):
            raise CorruptStreamError("invalid frame rate, GOP, quality or colour format")
        if (self.tb_num == 0) != (self.tb_den == 0) or not (
            0 <= self.tb_num < 1 << 31 and 0 <= self.tb_den < 1 << 31
        ):
            raise CorruptStreamError("invalid timestamp time base")

    @property
    def fps(self) -> float:
        return self.fps_num / self.fps_den

    @property
    def seconds(self) -> float:
        return self.frames * self.fps_den / self.fps_num

    @property
    def segments(self) -> int:
        """Data segments the stream must hold: one per GOP."""
        return -(-self.frames // self.gop)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(width, height, frames)."""
        return self.width, self.height, self.frames

    def describe(self, total_bytes: int) -> dict[str, Any]:
        """``ncodec info`` fields; ``kbps`` is kbit/s of the whole stream, ``bpp`` bits per pixel
        of all frames."""
        return {
            "width": self.width,
            "height": self.height,
            "fps": f"{self.fps_num}/{self.fps_den}" if self.fps_den != 1 else str(self.fps_num),
            "frames": self.frames,
            "seconds": self.seconds,
            "quality": self.quality / 100,
            "gop": self.gop,
            "colour": ("bt601" if self.colour & 1 else "bt709")
            + (" full" if self.colour & 2 else " limited")
            + (" rgb" if self.colour & 4 else " 4:2:0"),
            "timestamps": f"stored (time base {self.tb_num}/{self.tb_den} s)"
            if self.timestamps
            else "none (constant rate)",
            "kbps": total_bytes * 8 / self.seconds / 1000,
            "bpp": total_bytes * 8 / (self.width * self.height * self.frames),
        }


PARAMS: dict[int, type] = {1: ImageParams, 2: AudioParams, 3: VideoParams}
"""Container media id -> its parameter block (FORMAT.md, "Parameter blocks")."""
