"""Self-contained HTML report: RD plots, BD tables, per-codec results and decoded crops, all embedded.

Images (plots and crops) are embedded as base64 PNG ``data:`` URIs so the single ``report.html`` file
can be moved or attached anywhere.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from .anchors import Curve

__all__ = ["Crop", "make_crop", "build_report"]


@dataclass
class Crop:
    """A decoded crop for the side-by-side view: ``label``, PNG bytes, rate (bpp) and PSNR (dB)."""

    label: str
    png: bytes
    bpp: float
    psnr: float


def make_crop(img: Image.Image, box: tuple[int, int, int, int] | None = None, size: int = 192) -> bytes:
    """PNG bytes of a ``size`` × ``size`` crop (centre crop unless ``box`` = (left, top, right, bottom))."""
    if box is None:
        w, h = img.size
        s = min(size, w, h)
        left, top = (w - s) // 2, (h - s) // 2
        box = (left, top, left + s, top + s)
    buf = io.BytesIO()
    img.crop(box).save(buf, format="PNG")
    return buf.getvalue()


def _b64(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _fmt(v: Any, key: str = "") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if isinstance(v, float):
        return f"{v:+.2f}" if key.startswith("bd") else f"{v:.4g}"
    return html.escape(str(v))


def _table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "<p>(none)</p>"
    keys = list(rows[0].keys())
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(k), k)}</td>" for k in keys) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:24px} h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right} th{background:#f0f3f8}
td:first-child,th:first-child{text-align:left}
.plots img{max-width:48%;margin:4px;border:1px solid #ddd}
.crops{display:flex;flex-wrap:wrap;gap:10px}
.crop{text-align:center;font-size:12px}
.crop img{width:256px;height:256px;image-rendering:pixelated;border:1px solid #999}
pre{background:#f6f6f6;padding:8px;font-size:11px;overflow:auto;max-height:300px}
"""


def build_report(
    path: str | Path,
    title: str,
    plots: Sequence[Path],
    summary: Sequence[dict[str, Any]],
    curves: Sequence[Curve],
    crops: Sequence[Crop] = (),
    meta: dict[str, Any] | None = None,
    crop_caption: str = "",
) -> Path:
    """Write the HTML report to ``path`` and return it.

    ``plots``: PNG files to embed; ``summary``: BD-rate rows (see :func:`ncodec.eval.common.summary_rows`);
    ``curves``: measured and anchor curves (their per-rate-point results are tabulated); ``crops``:
    decoded crops at similar bpp; ``meta``: reproducibility info shown as JSON.
    """
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<h2>Rate-distortion curves</h2><div class='plots'>",
    ]
    for p in plots:
        parts.append(f"<img alt='{html.escape(Path(p).name)}' src='{_b64(Path(p).read_bytes())}'>")
    parts.append("</div><h2>Bjøntegaard deltas</h2>")
    parts.append(
        "<p>BD-rate: average rate difference at equal quality (negative = fewer bits than the "
        "anchor). BD-PSNR: average quality difference at equal rate (pchip over log-rate).</p>"
    )
    parts.append(_table(summary))
    if crops:
        parts.append("<h2>Decoded crops at similar rate</h2>")
        if crop_caption:
            parts.append(f"<p>{html.escape(crop_caption)}</p>")
        parts.append("<div class='crops'>")
        for c in crops:
            stats = f"{c.bpp:.3f} bpp, {c.psnr:.2f} dB" if math.isfinite(c.psnr) else "reference"
            parts.append(
                f"<div class='crop'><img alt='{html.escape(c.label)}' src='{_b64(c.png)}'><br>"
                f"{html.escape(c.label)}<br>{stats}</div>"
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
