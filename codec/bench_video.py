"""Video codec speed (``ncodec bench video``): encode and decode frames per second at 540p and
1080p, ncodec beside x264 and x265 (medium preset, PyAV) timed in the same run on the same frames.

The clip is synthetic (a textured pattern panning and zooming), so no data set is needed. ncodec's
time covers the whole stream (transforms, entropy coding, container); the classical codecs' the
encode of RGB frames converted to YUV 4:2:0 and the decode back to RGB.
"""

from __future__ import annotations

import io
import json
import time
from fractions import Fraction

import numpy as np

SIZES = {"540p": (960, 540), "1080p": (1920, 1080)}


def synthetic_clip(width: int, height: int, frames: int, seed: int = 0) -> list[np.ndarray]:
    """Deterministic RGB uint8 frames ``[H, W, 3]``: smooth colour fields and fine texture under a
    global pan and slow zoom, so that motion-compensating codecs have something to find."""
    rng = np.random.default_rng(seed)
    big = (height + 64, width + 64 + 8 * frames)
    tex = rng.integers(0, 256, (big[0] // 4 + 1, big[1] // 4 + 1, 3), dtype=np.uint8)
    tex = np.repeat(np.repeat(tex, 4, axis=0), 4, axis=1)[: big[0], : big[1]].astype(np.float32)
    yy, xx = np.mgrid[0 : big[0], 0 : big[1]].astype(np.float32)
    field = np.stack(
        [128 + 100 * np.sin(xx / 97), 128 + 100 * np.cos(yy / 61), 128 + 60 * np.sin((xx + yy) / 43)], -1
    )
    canvas = np.clip(0.7 * field + 0.3 * tex, 0, 255)
    out = []
    for t in range(frames):
        x0, y0 = 8 * t, 2 * t
        out.append(np.ascontiguousarray(canvas[y0 : y0 + height, x0 : x0 + width].astype(np.uint8)))
    return out


def _classical(codec: str, frames: list[np.ndarray], fps: int = 25) -> tuple[float, float, int]:
    """(encode s, decode s, bytes) of ``frames`` with PyAV's ``codec`` (libx264/libx265), medium."""
    import av

    h, w = frames[0].shape[:2]
    buf = io.BytesIO()
    t0 = time.perf_counter()
    with av.open(buf, "w", format="matroska") as c:
        st = c.add_stream(codec, rate=fps)
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        st.options = {"preset": "medium", "crf": "23"}
        if codec == "libx265":
            st.options["x265-params"] = "log-level=error"
        for f in frames:
            for p in st.encode(av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p")):
                c.mux(p)
        for p in st.encode(None):
            c.mux(p)
    te = time.perf_counter() - t0
    data = buf.getvalue()
    t0 = time.perf_counter()
    with av.open(io.BytesIO(data)) as c:
        n = sum(1 for fr in c.decode(video=0) if fr.to_ndarray(format="rgb24") is not None)
    td = time.perf_counter() - t0
    assert n == len(frames)
    return te, td, len(data)


def run_video_bench(
    sizes: tuple[str, ...] = ("540p", "1080p"),
    frames: int = 4,
    quality: float = 50.0,
    gop: int = 16,
    threads: int = 2,
    device: str = "cpu",
    model: str | None = None,
    as_json: bool = False,
) -> list[dict]:
    """Times ncodec, x264 and x265 on a synthetic clip per size; prints and returns the rows
    (frames per second, and ncodec's speed as a fraction of each peer's)."""
    import torch

    from ncodec.codec import video
    from ncodec.models.registry import DEFAULT_MODEL, load_model

    torch.set_num_threads(threads)
    m = load_model(model or DEFAULT_MODEL["video"])
    rows = []
    for size in sizes:
        w, h = SIZES[size]
        clip = synthetic_clip(w, h, frames)
        buf = io.BytesIO()
        t0 = time.perf_counter()
        stats = video.encode_frames(
            m, iter(clip), buf, n_frames=frames, fps=Fraction(25), quality=quality, gop=gop, device=device
        )
        te = time.perf_counter() - t0
        from ncodec.bitstream import StreamReader
        from ncodec.bitstream.params import VideoParams

        t0 = time.perf_counter()
        r = StreamReader(io.BytesIO(buf.getvalue()))
        n = sum(
            1
            for _ in video.decode_frames(
                m, VideoParams.from_bytes(r.header.params), r.segments(), device=device
            )
        )
        td = time.perf_counter() - t0
        assert n == frames
        row = {
            "size": size,
            "frames": frames,
            "ncodec_encode_fps": frames / te,
            "ncodec_decode_fps": frames / td,
            "ncodec_kbps": stats.kbps,
        }
        for name, lib in (("x264", "libx264"), ("x265", "libx265")):
            ce, cd, nbytes = _classical(lib, clip)
            row[f"{name}_encode_fps"] = frames / ce
            row[f"{name}_decode_fps"] = frames / cd
            row[f"{name}_kbps"] = nbytes * 8 / (frames / 25) / 1000
        rows.append(row)
    if as_json:
        print(json.dumps({"device": device, "threads": threads, "quality": quality, "rows": rows}, indent=1))
    else:
        print(
            f"video speed, frames per second ({device}, {threads} threads; "
            f"x264/x265 medium, crf 23; ncodec quality {quality:g})"
        )
        print(f"{'size':<7}{'ncodec enc':>11}{'dec':>8}{'x264 enc':>10}{'dec':>8}{'x265 enc':>10}{'dec':>8}")
        for r in rows:
            print(
                f"{r['size']:<7}{r['ncodec_encode_fps']:>11.2f}{r['ncodec_decode_fps']:>8.2f}"
                f"{r['x264_encode_fps']:>10.1f}{r['x264_decode_fps']:>8.1f}"
                f"{r['x265_encode_fps']:>10.1f}{r['x265_decode_fps']:>8.1f}"
            )
    return rows
