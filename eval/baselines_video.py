"""Classical video codecs (x264, x265, SVT-AV1 through PyAV) with CompressAI's low-delay protocol.

Protocol (as CompressAI's ``compressai.utils.video.bench``): ``preset=medium``, ``tune=zerolatency``,
no B-frames, CRF sweep, 8-bit 4:2:0, with a documented GOP (``gop`` frames between intra frames;
default 250 = FFmpeg/x264 default, i.e. one intra frame for the short test clips). SVT-AV1 uses the
low-delay prediction structure (``pred-struct=1``), ``preset=8`` and the same GOP.

Frames are YUV 4:2:0 planes ``(Y [H, W], U [H/2, W/2], V [H/2, W/2])`` uint8. ``encode(frames, fps, crf)``
returns the list of packets (bytes); the rate is the sum of their sizes (raw elementary stream, no
container). ``decode(packets)`` returns decoded planes in display order.
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Any

import numpy as np

from .baselines import av_versions, encoder_banner, frame_planes

__all__ = ["AVVideoCodec", "VIDEO_CODECS", "get_video_codec", "load_video"]

Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


def load_video(path: str, max_frames: int | None = None) -> tuple[list[Planes], float, dict[str, Any]]:
    """Decode a video file → (list of yuv420p planes, frames per second, info dict).

    Frames not in ``yuv420p`` are converted with swscale. ``max_frames`` limits the number of frames.
    """
    import av

    frames: list[Planes] = []
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        fps = float(st.average_rate or st.guessed_rate or 25)
        info = {
            "width": st.codec_context.width,
            "height": st.codec_context.height,
            "pix_fmt": st.codec_context.pix_fmt,
            "color_range": int(st.codec_context.color_range or 0),
            "colorspace": int(st.codec_context.colorspace or 0),
        }
        for fr in c.decode(st):
            if fr.format.name != "yuv420p":
                fr = fr.reformat(format="yuv420p")
            frames.append(tuple(frame_planes(fr)))  # type: ignore[arg-type]
            if max_frames and len(frames) >= max_frames:
                break
    return frames, fps, info


def _to_frame(planes: Planes, pts: int) -> Any:
    import av

    y, u, v = planes
    h, w = y.shape
    if h % 2 or w % 2:
        raise ValueError("yuv420p frames need even width and height")
    frame = av.VideoFrame.from_ndarray(
        np.concatenate([y, u.reshape(h // 4, w), v.reshape(h // 4, w)]), "yuv420p"
    )
    frame.pts = pts
    return frame


class AVVideoCodec:
    """A PyAV/FFmpeg video encoder in low-delay configuration; ``q`` is the CRF."""

    def __init__(
        self,
        name: str,
        encoder: str,
        decoder: str,
        description: str,
        options: dict[str, str],
        qualities: list[int],
        gop: int = 250,
        threads: int = 0,
    ) -> None:
        self.name = name
        self.encoder = encoder
        self.decoder = decoder
        self.description = description
        self.options = options
        self.qualities = qualities
        self.gop = gop
        self.threads = threads
        self.settings = {"encoder": encoder, "options": options, "gop": gop, "b_frames": 0, "rc": "crf"}

    def encode(self, frames: list[Planes], fps: float, q: Any) -> list[bytes]:
        """Encode yuv420p planes at CRF ``q`` → list of packets (raw elementary stream)."""
        import av

        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1: errors only
        h, w = frames[0][0].shape
        ctx = av.CodecContext.create(self.encoder, "w")
        ctx.width, ctx.height, ctx.pix_fmt = w, h, "yuv420p"
        rate = Fraction(fps).limit_denominator(1001)
        ctx.time_base = 1 / rate
        ctx.framerate = rate
        ctx.gop_size = self.gop
        ctx.max_b_frames = 0
        if self.threads:
            ctx.thread_count = self.threads
        opts = {k: v.format(crf=q, gop=self.gop) for k, v in self.options.items()}
        ctx.options = opts
        pkts: list[bytes] = []
        for i, pl in enumerate(frames):
            pkts += [bytes(p) for p in ctx.encode(_to_frame(pl, i))]
        pkts += [bytes(p) for p in ctx.encode(None)]
        return pkts

    def decode(self, packets: list[bytes]) -> list[Planes]:
        """Decode packets from :meth:`encode` → yuv420p planes in display order."""
        import av

        ctx = av.CodecContext.create(self.decoder, "r")
        out: list[Planes] = []
        for p in packets:
            for fr in ctx.decode(av.Packet(p)):
                out.append(
                    tuple(frame_planes(fr if fr.format.name == "yuv420p" else fr.reformat(format="yuv420p")))
                )
        for fr in ctx.decode(None):
            out.append(
                tuple(frame_planes(fr if fr.format.name == "yuv420p" else fr.reformat(format="yuv420p")))
            )
        return out

    def versions(self) -> dict[str, str]:
        v = av_versions()
        if self.encoder in ("libx264", "libx265"):
            v[self.encoder] = encoder_banner(self.encoder)
        return v


def _x264(gop: int = 250, qualities: list[int] | None = None, threads: int = 0) -> AVVideoCodec:
    return AVVideoCodec(
        "x264",
        "libx264",
        "h264",
        f"x264 medium, tune=zerolatency, no B-frames, GOP {gop}, CRF (CompressAI protocol)",
        {"preset": "medium", "tune": "zerolatency", "crf": "{crf}", "bf": "0"},
        qualities or [17, 22, 27, 32, 37, 42],
        gop,
        threads,
    )


def _x265(gop: int = 250, qualities: list[int] | None = None, threads: int = 0) -> AVVideoCodec:
    return AVVideoCodec(
        "x265",
        "libx265",
        "hevc",
        f"x265 medium, tune=zerolatency, bframes=0, GOP {gop}, CRF (CompressAI protocol)",
        {
            "preset": "medium",
            "tune": "zerolatency",
            "crf": "{crf}",
            "x265-params": "bframes=0:keyint={gop}:info=0:log-level=error",
        },
        qualities or [17, 22, 27, 32, 37, 42],
        gop,
        threads,
    )


def _svtav1(gop: int = 250, qualities: list[int] | None = None, threads: int = 0) -> AVVideoCodec:
    return AVVideoCodec(
        "av1",
        "libsvtav1",
        "libdav1d",
        f"AV1 SVT-AV1 preset 8, low-delay (pred-struct=1), GOP {gop}, CRF",
        {"preset": "8", "crf": "{crf}", "svtav1-params": "pred-struct=1:keyint={gop}"},
        qualities or [24, 32, 40, 48, 55],
        gop,
        threads,
    )


VIDEO_CODECS: dict[str, Any] = {"x264": _x264, "x265": _x265, "av1": _svtav1, "svtav1": _svtav1}


def get_video_codec(name: str, **kwargs: Any) -> Any:
    """Instantiate a video codec by name (``x264, x265, av1``); ``gop``/``qualities`` override defaults."""
    try:
        factory = VIDEO_CODECS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown video codec {name!r}; choose from {sorted(VIDEO_CODECS)}") from None
    return factory(**kwargs)
