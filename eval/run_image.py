"""Image rate-distortion runner: every image × codec × rate point.

Rate is the size of the complete encoded file (all bytes) → ``bpp = 8 * bytes / (H * W)``. Metrics per
image: PSNR RGB, PSNR-Y (BT.601 full-range luma), MS-SSIM RGB; encode/decode wall time in seconds.
Per rate point, metrics are averaged over images (PSNR averaged per image, as CompressAI does).

Outputs in ``out``: ``per_image.csv``, ``<codec>.json`` (CompressAI results schema + ``meta``),
``summary.md``/``summary.csv`` (BD-rate/BD-PSNR against the anchor), ``rd_psnr.png``, ``rd_msssim.png``,
``rd_psnr_y.png`` (each with an ``.svg`` twin), ``report.html``.

The report's crops compare the codecs at matched rate: on the first image, each codec's rate point
nearest (in log-rate) to one target bpp inside all the sweeps, with the actual bpp stated, a centre
crop enlarged by an integer factor (nearest neighbour) and its absolute-error heat map beside it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from . import metrics as M
from .anchors import Curve, find_anchor
from .baselines import get_image_codec
from .bdrate import BDError, bd_rate
from .common import CodecFailedError, Timer, aggregate, dataset_hash, map_tasks, pick_anchor, write_csv
from .plots import ERROR_MAP_MAX, error_map
from .report import Crop, crop_box, make_crop, zoom_png
from .runner import base_meta, dataset_info, finalize

__all__ = ["IMAGE_EXTS", "list_images", "load_image", "run_image", "x265_vs_bpg", "matched_crops"]

#: Side of the crop shown in the report (pixels of the image) and the size it is enlarged to at least.
CROP_SIZE = 128
CROP_DISPLAY = 256

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
DEFAULT_ANCHORS = ("x265", "bpg_444_x265_ycbcr", "webp")
METRICS = ("bpp", "psnr-rgb", "psnr-y", "ms-ssim-rgb", "encoding_time", "decoding_time")

_CODEC_CACHE: dict[tuple, Any] = {}


def list_images(root: str | Path, limit: int | None = None) -> list[Path]:
    """Sorted image files in ``root`` (or ``[root]`` if it is a file); first ``limit`` if given."""
    p = Path(root)
    files = [p] if p.is_file() else sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTS)
    return files[:limit] if limit else files


def load_image(path: str | Path, crop: int | None = None) -> Image.Image:
    """Load an image as RGB; ``crop`` = centre crop to at most ``crop`` × ``crop`` pixels."""
    with Image.open(path) as im:
        img = im.convert("RGB")
    if crop:
        w, h = img.size
        cw, ch = min(crop, w), min(crop, h)
        left, top = (w - cw) // 2, (h - ch) // 2
        img = img.crop((left, top, left + cw, top + ch))
    return img


def _codec(name: str, kwargs: tuple) -> Any:
    key = (name, kwargs)
    if key not in _CODEC_CACHE:
        _CODEC_CACHE[key] = get_image_codec(name, **dict(kwargs))
    return _CODEC_CACHE[key]


def _task(t: tuple) -> tuple[dict[str, Any], bytes | None]:
    """One (codec, image, rate point): encode, decode, metrics. Returns (row, PNG of the decoded centre
    :data:`CROP_SIZE` crop, or None)."""
    name, kwargs, path, q, crop, want_crop = t
    codec = _codec(name, kwargs)
    img = load_image(path, crop)
    w, h = img.size
    with Timer() as te:
        data = codec.encode(img, q)
    with Timer() as td:
        dec = codec.decode(data)
    if dec.size != img.size:
        raise RuntimeError(f"{name}: decoded size {dec.size} != {img.size}")
    ref = img
    row = {
        "file": Path(path).name,
        "codec": codec.name,
        "quality": q,
        "width": w,
        "height": h,
        "bytes": len(data),
        "bpp": 8.0 * len(data) / (w * h),
        "psnr-rgb": M.psnr_rgb(ref, dec),
        "psnr-y": M.psnr_y(ref, dec),
        "ms-ssim-rgb": M.ms_ssim_rgb(ref, dec),
        "encoding_time": te.s,
        "decoding_time": td.s,
    }
    return row, (make_crop(dec, crop_box(w, h, CROP_SIZE)) if want_crop else None)


def _available(names: Sequence[str], kwargs: dict[str, dict]) -> list[tuple[str, Any]]:
    """Every requested codec, built and (ncodec) smoke-tested.

    Raises:
        CodecFailedError: a requested codec cannot be built or does not round-trip.
    """
    out = []
    for n in names:
        try:
            c = get_image_codec(n, **kwargs.get(n, {}))
            if n == "ncodec":  # smoke test: a broken encode must fail the run, not vanish from it
                probe = Image.new("RGB", (64, 64), (90, 120, 150))
                c.decode(c.encode(probe, c.qualities[len(c.qualities) // 2]))
            out.append((n, c))
        except Exception as e:  # noqa: BLE001
            raise CodecFailedError(f"codec {n} failed: {type(e).__name__}: {e}") from e
    return out


def x265_vs_bpg(x265: Curve, metric: str = "psnr-rgb") -> float:
    """BD-rate (%) of our x265 curve against the published BPG 4:4:4 x265 YCbCr Kodak curve.

    Sanity check for the HEVC baseline: should be within about ±10 % on the full Kodak set.
    """
    bpg = find_anchor("bpg_444_x265_ycbcr", "image-kodak")
    return bd_rate(bpg.results["bpp"], bpg.results[metric], x265.results["bpp"], x265.results[metric])


def matched_crops(
    ref: Image.Image, results: Sequence[tuple[dict[str, Any], bytes | None]], codecs: Sequence[str]
) -> tuple[list[Crop], str]:
    """Crops of one image (``ref``) at matched rate, and their caption.

    ``results``: ``(row, decoded crop PNG)`` pairs; those with a PNG are the rate points of ``ref``.
    The target rate is 0.5 bpp where every codec's sweep reaches it, else the geometric middle of the
    range all sweeps share (or of the gap between them); each codec shows its point nearest to it in
    log-rate, labelled with the actual bpp. Crops are enlarged by an integer factor with nearest
    neighbour, each with its error map (:func:`ncodec.eval.plots.error_map`) beside it.
    """
    pts = [(r, png) for r, png in results if png is not None]
    sweeps = {c: [(r, png) for r, png in pts if r["codec"] == c] for c in codecs}
    sweeps = {c: v for c, v in sweeps.items() if v}
    if not sweeps:
        return [], ""
    lo = max(min(r["bpp"] for r, _ in v) for v in sweeps.values())
    hi = min(max(r["bpp"] for r, _ in v) for v in sweeps.values())
    a, b = min(lo, hi), max(lo, hi)
    target = 0.5 if a <= 0.5 <= b else math.sqrt(a * b)
    box = crop_box(*ref.size, CROP_SIZE)
    ref_crop = np.asarray(ref.crop(box))
    side = ref_crop.shape[0]
    zoom = max(1, CROP_DISPLAY // side)
    crops = [Crop("original", zoom_png(ref_crop, zoom), 24.0, math.inf, zoom=zoom)]
    for c, v in sweeps.items():
        r, png = min(v, key=lambda rp: abs(math.log(rp[0]["bpp"] / target)))
        with Image.open(io.BytesIO(png)) as im:
            dec = np.asarray(im.convert("RGB"))
        crops.append(
            Crop(
                f"{c} q={r['quality']}",
                zoom_png(dec, zoom),
                r["bpp"],
                r["psnr-rgb"],
                error_png=zoom_png(error_map(ref_crop, dec), zoom),
                zoom=zoom,
            )
        )
    first = pts[0][0]["file"]
    caption = (
        f"{first}: centre {side}×{side} crop at {zoom}× (nearest neighbour, every pixel a {zoom}×{zoom} "
        f"block). Each codec shows the rate point of its sweep nearest to {target:.3f} bpp; its actual "
        f"rate is given below it. Right of each crop: |decoded − original| averaged over RGB, black = 0, "
        f"pale yellow ≥ {ERROR_MAP_MAX} levels."
    )
    return crops, caption


def run_image(
    inputs: str | Path,
    out: str | Path,
    codecs: Sequence[str] = ("jpeg", "webp", "x265"),
    anchors: Sequence[Curve] = (),
    anchor: str | None = None,
    rate_points: dict[str, list] | None = None,
    limit: int | None = None,
    crop: int | None = None,
    jobs: int = 1,
    codec_kwargs: dict[str, dict] | None = None,
    show_progress: bool | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Run the image evaluation; see the module docstring for the outputs. Returns finalize()'s dict plus
    ``curves`` (measured :class:`Curve` list) and ``rows`` (per-image rows)."""
    files = list_images(inputs, limit)
    if not files:
        raise FileNotFoundError(f"no images in {inputs}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    codec_kwargs = codec_kwargs or {}
    rate_points = rate_points or {}
    codecs_ok = _available(codecs, codec_kwargs)
    if not codecs_ok:
        raise ValueError("no usable codec")
    tasks = []
    for n, c in codecs_ok:
        kw = tuple(sorted(codec_kwargs.get(n, {}).items()))
        for q in rate_points.get(n, c.qualities):
            for i, f in enumerate(files):
                tasks.append((n, kw, str(f), q, crop, i == 0))
    results = map_tasks(_task, tasks, jobs, desc="image", show=show_progress)
    rows = [r for r, _ in results]
    write_csv(out / "per_image.csv", rows)

    sha = dataset_hash(files)
    settings = {
        "codecs": [n for n, _ in codecs_ok],
        "limit": limit,
        "crop": crop,
        "jobs": jobs,
        "rate_points": {n: list(rate_points.get(n, c.qualities)) for n, c in codecs_ok},
    }
    meta = base_meta(files, sha, settings)
    curves = []
    for _n, c in codecs_ok:
        sub = [r for r in rows if r["codec"] == c.name]
        res = aggregate(sub, "quality", METRICS)
        cm = dict(
            meta, codec=c.name, codec_settings=c.settings, codec_versions=c.versions(), n_images=len(files)
        )
        curves.append(Curve(c.name, c.description, res, meta=cm))

    extra = []
    for c in curves:
        if c.name == "x265":
            try:
                v = x265_vs_bpg(c)
                extra.append(f"x265 (ours) vs published BPG 4:4:4 x265 curve: BD-rate {v:+.2f} % (PSNR RGB)")
                c.meta["bd_rate_vs_bpg_published"] = v
            except (BDError, FileNotFoundError, KeyError) as e:
                extra.append(f"x265 vs BPG sanity check not available: {e}")

    anc = pick_anchor(anchor, curves, anchors, DEFAULT_ANCHORS, "image-kodak")

    crops, caption = matched_crops(load_image(files[0], crop), results, [c.name for _n, c in codecs_ok])
    fin = finalize(
        out,
        "image",
        curves,
        anchors,
        anc,
        "bpp",
        ("psnr-rgb", "ms-ssim-rgb-db"),
        [
            ("rd_psnr.png", "bpp", "psnr-rgb"),
            ("rd_msssim.png", "bpp", "ms-ssim-rgb-db"),
            ("rd_psnr_y.png", "bpp", "psnr-y"),
        ],
        meta,
        crops,
        caption,
        extra,
        quiet=quiet,
        dataset=dataset_info(inputs, files, "images", sha, crop=crop),
    )
    fin.update(curves=curves, rows=rows, extra=extra)
    return fin
