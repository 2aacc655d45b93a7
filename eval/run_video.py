"""Video rate-distortion runner: every sequence × codec × CRF.

Rate: the real size of the encoded elementary stream (sum of packet bytes) →
``bpp = 8 * bytes / (W * H * frames)`` and ``kbps = 8 * bytes / (frames / fps) / 1000``.
Quality per frame, averaged over frames then over sequences: PSNR-Y/U/V and the weighted
``psnr-yuv = (6 Y + U + V) / 8`` on the 4:2:0 planes, PSNR RGB and MS-SSIM RGB after BT.709
limited-range conversion (the shared test sequences are tagged BT.709 limited range) with nearest
chroma upsampling, applied identically to source and decoded frames. Encode/decode speed in fps.

Outputs in ``out``: ``per_video.csv``, ``<codec>.json``, ``summary.md``/``summary.csv``, RD plots,
``report.html``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics as M
from .anchors import Curve
from .baselines_video import get_video_codec, load_video
from .common import Timer, aggregate, dataset_hash, map_tasks, pick_anchor, write_csv
from .runner import base_meta, dataset_info, finalize

__all__ = ["VIDEO_EXTS", "list_videos", "run_video"]

VIDEO_EXTS = (".mkv", ".mp4", ".y4m", ".avi", ".mov", ".webm")
METRICS = (
    "bpp",
    "kbps",
    "psnr-rgb",
    "psnr-yuv",
    "psnr-y",
    "ms-ssim-rgb",
    "encoding_fps",
    "decoding_fps",
    "encoding_time",
    "decoding_time",
)


def list_videos(root: str | Path, limit: int | None = None) -> list[Path]:
    """Video files directly in ``root`` (sorted; sub-folders such as ``train/`` are ignored) or ``[root]``."""
    p = Path(root)
    files = (
        [p]
        if p.is_file()
        else sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_EXTS)
    )
    return files[:limit] if limit else files


def _task(t: tuple) -> dict[str, Any]:
    name, kwargs, path, crf, frames_limit = t
    codec = get_video_codec(name, **dict(kwargs))
    frames, fps, info = load_video(path, frames_limit)
    n = len(frames)
    with Timer() as te:
        packets = codec.encode(frames, fps, crf)
    with Timer() as td:
        dec = codec.decode(packets)
    if len(dec) != n:
        raise RuntimeError(f"{name}: decoded {len(dec)} frames, expected {n}")
    return rd_row(path, codec.name, crf, frames, dec, fps, sum(len(p) for p in packets), te.s, td.s)


def rd_row(
    path: str | Path,
    name: str,
    rate: Any,
    src: Sequence,
    dec: Sequence,
    fps: float,
    nbytes: int,
    enc_s: float,
    dec_s: float,
) -> dict[str, Any]:
    """One per-video row: rate (bpp, kbps of ``nbytes``) and the frame-averaged PSNR-Y/U/V/YUV 6:1:1,
    PSNR-RGB and MS-SSIM of the decoded YUV 4:2:0 planes ``dec`` against ``src``; ``rate`` is the
    codec's rate setting (the ``crf`` column), times in seconds."""
    n = len(src)
    h, w = src[0][0].shape
    acc: dict[str, list[float]] = {
        k: [] for k in ("psnr-y", "psnr-u", "psnr-v", "psnr-yuv", "psnr-rgb", "ms-ssim-rgb")
    }
    for a, b in zip(src, dec):
        for k, v in M.psnr_yuv420(a, b).items():
            acc[k].append(v)
        ra, rb = M.yuv420_to_rgb(*a), M.yuv420_to_rgb(*b)
        acc["psnr-rgb"].append(min(M.psnr_rgb(ra, rb), 100.0))
        acc["ms-ssim-rgb"].append(M.ms_ssim_rgb(ra, rb))
    row: dict[str, Any] = {
        "file": Path(path).name,
        "codec": name,
        "crf": rate,
        "frames": n,
        "width": w,
        "height": h,
        "fps": fps,
        "bytes": nbytes,
        "bpp": 8.0 * nbytes / (w * h * n),
        "kbps": 8.0 * nbytes / (n / fps) / 1000.0,
    }
    row.update({k: float(np.mean(v)) for k, v in acc.items()})
    row.update(encoding_time=enc_s, decoding_time=dec_s, encoding_fps=n / enc_s, decoding_fps=n / dec_s)
    return row


NCODEC_VARIANTS = ("ncodec", "ncodec-intra")
"""ncodec's curves: with the run's GOP, and all-intra (the reference that shows the temporal
model's saving)."""


def run_video(
    inputs: str | Path,
    out: str | Path,
    codecs: Sequence[str] = ("x264", "x265"),
    anchors: Sequence[Curve] = (),
    anchor: str | None = None,
    rate_points: dict[str, list] | None = None,
    limit: int | None = None,
    frames: int | None = None,
    gop: int = 250,
    jobs: int = 1,
    show_progress: bool | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Run the video evaluation (see module docstring). Returns finalize()'s dict plus ``curves``/``rows``."""
    files = list_videos(inputs, limit)
    if not files:
        raise FileNotFoundError(f"no video files in {inputs}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rate_points = rate_points or {}
    learned = [n for n in codecs if n in NCODEC_VARIANTS]
    ok = [(n, get_video_codec(n, gop=gop)) for n in codecs if n not in NCODEC_VARIANTS]
    tasks = []
    for n, c in ok:
        for q in rate_points.get(n, c.qualities):
            for f in files:
                tasks.append((n, (("gop", gop),), str(f), q, frames))
    rows = map_tasks(_task, tasks, jobs, desc="video", show=show_progress)
    ncodec_rows_by = {}
    for n in learned:  # ncodec (GOP as the others) and ncodec-intra (every frame an I-frame)
        from ncodec.models.registry import DEFAULT_MODEL

        from .run_video_ncodec import QUALITIES, ncodec_rows

        g, model = (1, "image-hp-v1") if n == "ncodec-intra" else (gop, DEFAULT_MODEL["video"])
        nrows = ncodec_rows(files, rate_points.get(n, QUALITIES), gop=g, frames=frames, model=model)
        for r in nrows:
            r["codec"] = n
        ncodec_rows_by[n] = (nrows, g)
        rows = rows + nrows
    write_csv(out / "per_video.csv", rows)
    settings = {
        "codecs": codecs,
        "limit": limit,
        "frames": frames,
        "gop": gop,
        "rate_points_crf": {n: list(rate_points.get(n, c.qualities)) for n, c in ok},
        "rgb_conversion": "BT.709 limited range, nearest chroma upsampling",
    }
    sha = dataset_hash(files)
    meta = base_meta(files, sha, settings)
    curves = []
    for _n, c in ok:
        res = aggregate([r for r in rows if r["codec"] == c.name], "crf", METRICS)
        curves.append(
            Curve(
                c.name,
                c.description,
                res,
                meta=dict(
                    meta,
                    codec=c.name,
                    codec_settings=c.settings,
                    codec_versions=c.versions(),
                    n_files=len(files),
                ),
            )
        )
    for n, (nrows, g) in ncodec_rows_by.items():
        from .run_video_ncodec import ncodec_curve

        c = ncodec_curve(nrows, meta, g)
        c.name = n
        curves.append(c)
    anc = pick_anchor(anchor, curves, anchors, ("x265", "x264"), "video-uvg")
    fin = finalize(
        out,
        "video",
        curves,
        anchors,
        anc,
        "bpp",
        ("psnr-yuv", "psnr-rgb", "ms-ssim-rgb-db"),
        [
            ("rd_psnr_yuv.png", "bpp", "psnr-yuv"),
            ("rd_psnr.png", "bpp", "psnr-rgb"),
            ("rd_msssim.png", "bpp", "ms-ssim-rgb-db"),
        ],
        meta,
        quiet=quiet,
        dataset=dataset_info(inputs, files, "sequences", sha, frames=frames),
    )
    fin.update(curves=curves, rows=rows)
    return fin
