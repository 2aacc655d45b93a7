"""ncodec's video codec in the video evaluation: rows in :mod:`eval.run_video`'s schema.

Same protocol as the x264/x265 rows: the source's YUV 4:2:0 planes are the reference; ncodec
codes RGB, so the frames it is given are the planes converted by ``metrics.yuv420_to_rgb`` (BT.709
limited range, nearest chroma upsampling: the same conversion the metrics use), and its decoded
RGB frames are converted back to 4:2:0 with the same matrix (area chroma down-sampling,
``codec.video_io.from_rgb``) before PSNR-YUV; PSNR-RGB and MS-SSIM compare the RGB of both
plane sets, as for the classical codecs. The rate counts the whole ``.ncb`` stream (header,
segment framing and index included), not only the payloads. The ``crf`` column holds ncodec's
quality (0..100, higher is better).

Hook into ``run_video`` (one place, after its ``rows`` are computed)::

    from .run_video_ncodec import ncodec_rows, ncodec_curve
    nrows = ncodec_rows(files, qualities, gop=gop, frames=frames)
    rows += nrows; curves.append(ncodec_curve(nrows, meta))

``model="image-hp-v1"`` with ``gop=1`` codes every frame as an I-frame (the all-intra reference);
``model="video-st-v1"`` (the default video model) codes P-frames with its temporal entropy model.
Every row runs with one torch thread.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics as M
from .anchors import Curve
from .baselines import frame_planes
from .baselines_video import load_video
from .common import Timer, aggregate
from .run_video import METRICS, rd_row

NAME = "ncodec"
QUALITIES = (10, 25, 40, 55, 70, 85)


def _rgb_to_planes(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from ncodec.codec.video_io import Colour, from_rgb

    return tuple(frame_planes(from_rgb(rgb, "yuv420p", Colour("bt709", False, False))))  # type: ignore[return-value]


def ncodec_row(
    path: str | Path,
    quality: float,
    *,
    gop: int | None = None,
    frames: int | None = None,
    model: Any = "image-hp-v1",
    p_offset: float | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Encodes and decodes one sequence at ``quality``; returns its row (``run_video`` schema).
    ``model``: a shipped model name or a loaded model (image, temporal or ``VideoModel``)."""
    import torch

    from ncodec.bitstream.container import StreamReader
    from ncodec.bitstream.params import VideoParams
    from ncodec.codec import video as V
    from ncodec.codec.video_io import Colour
    from ncodec.models.registry import load_model

    torch.set_num_threads(1)
    src, fps, _ = load_video(str(path), frames)
    n = len(src)
    m = load_model(model) if isinstance(model, str) else model
    opts: dict[str, Any] = {"gop": gop or V.DEFAULT_GOP}
    if p_offset is not None:
        opts["p_offset"] = p_offset
    buf = io.BytesIO()
    with Timer() as te:
        V.encode_frames(
            m,
            (M.yuv420_to_rgb(*p) for p in src),
            buf,
            n_frames=n,
            fps=Fraction(fps).limit_denominator(1001),
            colour=Colour("bt709", False, False),
            quality=quality,
            device=device,
            **opts,
        )
    data = buf.getvalue()
    with Timer() as td:
        r = StreamReader(io.BytesIO(data))
        params = VideoParams.from_bytes(r.header.params)
        dec = [_rgb_to_planes(f) for f in V.decode_frames(m, params, r.segments(), device=device)]
    if len(dec) != n:
        raise RuntimeError(f"ncodec: decoded {len(dec)} frames, expected {n}")
    return rd_row(path, NAME, quality, src, dec, fps, len(data), te.s, td.s)


def ncodec_rows(
    files: Sequence[str | Path],
    qualities: Sequence[float] = QUALITIES,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """Rows for every quality x sequence (quality-major, as ``run_video`` orders its tasks)."""
    return [ncodec_row(f, q, **kwargs) for q in qualities for f in files]


def ncodec_curve(rows: list[dict[str, Any]], meta: dict | None = None, gop: int | None = None) -> Curve:
    """The averaged RD curve of :func:`ncodec_rows`' rows."""
    from ncodec.codec.video import DEFAULT_GOP

    g = gop or DEFAULT_GOP
    return Curve(
        NAME,
        "ncodec all-intra (image-hp-v1: every frame an I-frame)"
        if g == 1
        else f"ncodec video (I-frames image-hp-v1, P-frames the temporal model video-st-v1), GOP {g}",
        aggregate(rows, "crf", METRICS),
        meta=dict(meta or {}, codec=NAME, codec_settings={"gop": g, "rate": "quality"}),
    )


__all__ = ["ncodec_row", "ncodec_rows", "ncodec_curve", "QUALITIES"]
