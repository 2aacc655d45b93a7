"""Self-contained HTML report: data set, RD plots, BD tables, per-codec results, decoded crops and audio.

Plots (SVG, or PNG where no SVG was written), crops, spectrograms and audio clips (WAV) are embedded as
base64 ``data:`` URIs so the single ``report.html`` file can be moved or attached anywhere.

What the report flags:

* a BD cell against a published curve whose data set the run did not cover holds ``not computed:
  <reason>`` (e.g. ``3 of 24 images``) and is shown in red;
* a BD cell whose two curves cross inside the averaged interval is marked with a warning sign, and the
  ``crossing`` column beside it says where (orange).

Every table header names its unit (:data:`ncodec.eval.common.UNITS`).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .anchors import Curve
from .common import unit_of

__all__ = ["Crop", "Clip", "make_crop", "crop_box", "zoom_png", "wav_bytes", "build_report"]


@dataclass
class Crop:
    """A decoded crop for the side-by-side view: ``label``, PNG bytes (already zoomed), the rate (bpp)
    and PSNR (dB) of the whole decoded image, the error map's PNG (same zoom) and the zoom factor."""

    label: str
    png: bytes
    bpp: float
    psnr: float
    error_png: bytes | None = None
    zoom: int = 1


@dataclass
class Clip:
    """A decoded audio clip for the players: ``label``, WAV bytes, the rate (kbps) of the file it comes
    from, the spectrogram's PNG and a short ``stats`` text (e.g. PESQ)."""

    label: str
    wav: bytes
    kbps: float
    spectrogram: bytes | None = None
    stats: str = ""


def crop_box(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """The centre ``size`` × ``size`` box (smaller where the image is) as (left, top, right, bottom)."""
    s = min(size, width, height)
    left, top = (width - s) // 2, (height - s) // 2
    return (left, top, left + s, top + s)


def make_crop(img: Image.Image, box: tuple[int, int, int, int] | None = None, size: int = 192) -> bytes:
    """PNG bytes of a ``size`` × ``size`` crop (centre crop unless ``box`` = (left, top, right, bottom))."""
    if box is None:
        box = crop_box(*img.size, size)
    buf = io.BytesIO()
    img.crop(box).save(buf, format="PNG")
    return buf.getvalue()


def zoom_png(img: Image.Image | np.ndarray, zoom: int) -> bytes:
    """PNG bytes of ``img`` enlarged by the integer ``zoom`` with nearest-neighbour (every source pixel
    becomes a ``zoom`` × ``zoom`` block; nothing is interpolated)."""
    if int(zoom) != zoom or zoom < 1:
        raise ValueError(f"zoom must be a positive integer, got {zoom!r}")
    im = img if isinstance(img, Image.Image) else Image.fromarray(np.asarray(img, dtype=np.uint8))
    im = im.resize((im.width * int(zoom), im.height * int(zoom)), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def wav_bytes(x: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV bytes of ``x`` (``[C, T]`` or ``[T]`` float in ``[-1, 1]``)."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[None]
    pcm = np.clip(np.rint(a.T * 32767.0), -32768, 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(a.shape[0])
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def _uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        return im.size


def _fmt(v: Any, key: str = "") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if isinstance(v, float):
        return f"{v:+.2f}" if key.startswith("bd") else f"{v:.4g}"
    return html.escape(str(v))


def _header(key: str) -> str:
    """Column header with its unit: ``psnr-rgb [dB]``; keys that name their unit keep it."""
    if key.endswith(")") and "(" in key:
        return key
    u = unit_of(key)
    return f"{key} [{u}]" if u else key


def _table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "<p>(none)</p>"
    keys = list(rows[0].keys())
    head = "".join(f"<th>{html.escape(_header(k))}</th>" for k in keys)
    body = []
    for r in rows:
        cells = []
        for k in keys:
            v = r.get(k)
            metric = k.split(" ")[1] if k.startswith("bd") and " " in k else None
            cross = r.get(f"crossing {metric}") if metric else None
            if k.startswith("bd") and isinstance(v, str):  # not computed: the reason, in red
                cells.append(f"<td class='flag' title='{html.escape(v)}'>{html.escape(v)}</td>")
            elif k.startswith("bd") and cross and v is not None:
                cells.append(f"<td class='warn' title='{html.escape(cross)}'>&#9888; {_fmt(v, k)}</td>")
            elif k.startswith("crossing") and v:
                cells.append(f"<td class='warn'>&#9888; {html.escape(str(v))}</td>")
            else:
                cells.append(f"<td>{_fmt(v, k)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _dataset_line(ds: dict[str, Any]) -> str:
    limits = []
    if ds.get("crop"):
        limits.append(f"centre crop {ds['crop']}×{ds['crop']} px")
    if ds.get("frames"):
        limits.append(f"first {ds['frames']} frames")
    if ds.get("max_seconds"):
        limits.append(f"first {ds['max_seconds']:g} s of each file")
    crop = "; ".join(limits) if limits else "none (full items)"
    sha = str(ds.get("sha256", ""))[:16]
    return (
        "<table class='dataset'>"
        f"<tr><th>data set</th><td>{html.escape(str(ds.get('name', '')))}</td></tr>"
        f"<tr><th>path</th><td><code>{html.escape(str(ds.get('path', '')))}</code></td></tr>"
        f"<tr><th>items</th><td>{int(ds.get('items', 0))} {html.escape(str(ds.get('unit', '')))}</td></tr>"
        f"<tr><th>crop / limits</th><td>{html.escape(crop)}</td></tr>"
        f"<tr><th>sha256</th><td><code>{html.escape(sha)}…</code></td></tr></table>"
    )


def _plot_img(p: Path) -> str:
    svg = p.with_suffix(".svg")
    if svg.is_file():
        src = _uri(svg.read_bytes(), "image/svg+xml")
    else:
        src = _uri(p.read_bytes())
    return f"<img alt='{html.escape(p.name)}' src='{src}'>"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:24px} h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right} th{background:#f0f3f8}
td:first-child,th:first-child{text-align:left}
table.dataset td,table.dataset th{text-align:left}
td.flag{background:#fde2e2;color:#b00000;font-weight:600;text-align:left}
td.warn{background:#fff1d6;color:#8a4b00;font-weight:600}
.plots img{width:48%;margin:4px;border:1px solid #ddd}
.crops{display:flex;flex-wrap:wrap;gap:14px}
.crop{text-align:center;font-size:12px;border:1px solid #ddd;padding:4px}
.crop img{image-rendering:pixelated;image-rendering:crisp-edges;margin:1px}
.clips{display:flex;flex-wrap:wrap;gap:14px}
.clip{font-size:12px;border:1px solid #ddd;padding:4px}
.clip audio{width:420px;display:block}
pre{background:#f6f6f6;padding:8px;font-size:11px;overflow:auto;max-height:300px}
"""


def _crop_html(c: Crop) -> str:
    stats = f"{c.bpp:.3f} bpp, {c.psnr:.2f} dB (whole image)" if math.isfinite(c.psnr) else "reference"
    imgs = []
    for data, what in ((c.png, "decoded"), (c.error_png, "error map")):
        if data is None:
            continue
        w, h = _png_size(data)  # shown at its own size: the zoom is done in the PNG, never by the browser
        imgs.append(f"<img alt='{html.escape(c.label)} {what}' width='{w}' height='{h}' src='{_uri(data)}'>")
    zoom = f", {c.zoom}× zoom" if c.zoom > 1 else ""
    return (
        f"<div class='crop'>{''.join(imgs)}<br><b>{html.escape(c.label)}</b><br>"
        f"{html.escape(stats)}{html.escape(zoom)}</div>"
    )


def build_report(
    path: str | Path,
    title: str,
    plots: Sequence[Path],
    summary: Sequence[dict[str, Any]],
    curves: Sequence[Curve],
    crops: Sequence[Crop] = (),
    meta: dict[str, Any] | None = None,
    crop_caption: str = "",
    dataset: dict[str, Any] | None = None,
    clips: Sequence[Clip] = (),
    clip_caption: str = "",
) -> Path:
    """Write the HTML report to ``path`` and return it.

    ``plots``: PNG files (their ``.svg`` twins are embedded where they exist); ``summary``: BD-rate rows
    (see :func:`ncodec.eval.common.summary_rows`); ``curves``: measured and anchor curves (their
    per-rate-point results are tabulated); ``crops``: decoded crops at matched rate; ``meta``:
    reproducibility info shown as JSON; ``dataset``: :func:`ncodec.eval.runner.dataset_info`, shown
    in the header; ``clips``: audio players with spectrograms.
    """
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if dataset:
        parts.append(_dataset_line(dataset))
    parts.append("<h2>Rate-distortion curves</h2><div class='plots'>")
    for p in plots:
        parts.append(_plot_img(Path(p)))
    parts.append("</div><h2>Bjøntegaard deltas</h2>")
    parts.append(
        "<p>BD-rate: average rate difference at equal quality (negative = fewer bits than the "
        "anchor). BD-quality: average quality difference at equal rate (pchip over log-rate). "
        "<span style='color:#b00000'>Red</span>: not computed, the run does not cover the data set "
        "the published curve was measured on. <span style='color:#8a4b00'>&#9888;</span>: the two "
        "curves cross inside the averaged interval, so the single number hides a rate range where "
        "the order is reversed.</p>"
    )
    parts.append(_table(summary))
    if crops:
        parts.append("<h2>Decoded crops at matched rate</h2>")
        if crop_caption:
            parts.append(f"<p>{html.escape(crop_caption)}</p>")
        parts.append("<div class='crops'>")
        parts.extend(_crop_html(c) for c in crops)
        parts.append("</div>")
    if clips:
        parts.append("<h2>Decoded audio at matched rate</h2>")
        if clip_caption:
            parts.append(f"<p>{html.escape(clip_caption)}</p>")
        parts.append("<div class='clips'>")
        for c in clips:
            rate = f"{c.kbps:.1f} kbps" if math.isfinite(c.kbps) else "reference"
            spec = (
                f"<img alt='{html.escape(c.label)} spectrogram' src='{_uri(c.spectrogram)}'>"
                if c.spectrogram
                else ""
            )
            parts.append(
                f"<div class='clip'><b>{html.escape(c.label)}</b> &mdash; {html.escape(rate)}"
                f"{(', ' + html.escape(c.stats)) if c.stats else ''}"
                f"<audio controls preload='metadata' src='{_uri(c.wav, 'audio/wav')}'></audio>{spec}</div>"
            )
        parts.append("</div>")
    parts.append("<h2>Results per rate point</h2>")
    for c in curves:
        if c.source:
            continue
        keys = list(c.results.keys())
        n = max((len(v) for v in c.results.values()), default=0)
        rows = [{k: (c.results[k][i] if i < len(c.results[k]) else None) for k in keys} for i in range(n)]
        parts.append(f"<h3>{html.escape(c.name)}</h3><p>{html.escape(c.description)}</p>{_table(rows)}")
    if meta:
        parts.append(
            "<h2>Reproducibility</h2><pre>" + html.escape(json.dumps(meta, indent=2, default=str)) + "</pre>"
        )
    parts.append("</body></html>")
    p = Path(path)
    p.write_text("\n".join(parts), encoding="utf-8")
    return p
