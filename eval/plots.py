"""Rate-distortion plots (matplotlib, Agg backend) written as PNG and SVG, spectrogram and error-map images.

Curves are :class:`ncodec.eval.anchors.Curve` objects; curves measured in this run are drawn with solid
lines and markers (``ncodec`` thicker), published anchors with dashed lines.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .anchors import Curve  # noqa: E402

__all__ = ["rd_plot", "ms_ssim_to_db", "spectrogram_png", "error_map"]

_LABELS = {
    "bpp": "rate (bits per pixel)",
    "kbps": "rate (kbit/s)",
    "psnr-rgb": "PSNR RGB (dB)",
    "psnr-y": "PSNR Y (dB)",
    "psnr-yuv": "PSNR YUV 6:1:1 (dB)",
    "ms-ssim-rgb": "MS-SSIM (0-1)",
    "ms-ssim-rgb-db": "MS-SSIM (dB, -10 log10(1 - MS-SSIM))",
    "si-sdr": "SI-SDR (dB)",
    "pesq-wb": "PESQ-WB (MOS-LQO)",
    "stoi": "STOI (0-1)",
    "visqol": "ViSQOL (MOS-LQO)",
    "mel-distance": "log-mel L1 distance (nats, lower is better)",
}


def ms_ssim_to_db(values: Sequence[float]) -> list[float]:
    """MS-SSIM → dB: ``-10 log10(1 - v)`` (NaN for ``v >= 1`` or NaN)."""
    out = []
    for v in values:
        if v is None or not math.isfinite(v) or v >= 1.0:
            out.append(math.nan)
        else:
            out.append(-10.0 * math.log10(1.0 - v))
    return out


def _series(c: Curve, key: str) -> list[float] | None:
    if key in c.results:
        return [math.nan if v is None else float(v) for v in c.results[key]]
    if key == "ms-ssim-rgb-db" and "ms-ssim-rgb" in c.results:
        return ms_ssim_to_db(c.results["ms-ssim-rgb"])
    return None


def rd_plot(
    curves: Sequence[Curve],
    path: str | Path,
    x_key: str = "bpp",
    y_key: str = "psnr-rgb",
    title: str = "",
    highlight: str = "ncodec",
    x_max: float | None = None,
) -> Path | None:
    """Plot ``y_key`` against ``x_key`` for every curve that has both; write a PNG to ``path`` and the
    same figure as SVG beside it (``path`` with the suffix ``.svg``).

    Points are sorted by rate. Returns the PNG's path, or ``None`` if no curve had the keys.
    """
    fig, ax = plt.subplots(figsize=(7.0, 5.0), dpi=110)
    drawn = 0
    for c in curves:
        xs, ys = _series(c, x_key), _series(c, y_key)
        if not xs or not ys:
            continue
        pts = sorted((x, y) for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y))
        if x_max is not None:
            pts = [p for p in pts if p[0] <= x_max] or pts
        if not pts:
            continue
        is_anchor = bool(c.source)
        style = (
            dict(linestyle="--", marker=".", linewidth=1.2, alpha=0.85)
            if is_anchor
            else dict(linestyle="-", marker="o", markersize=4, linewidth=1.6)
        )
        if c.name == highlight:
            style.update(linewidth=2.8, markersize=6, color="black", zorder=5)
        label = c.name + (" (published)" if is_anchor else "")
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label, **style)
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel(_LABELS.get(x_key, x_key))
    ax.set_ylabel(_LABELS.get(y_key, y_key))
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    p = Path(path)
    fig.savefig(p, format="png")
    fig.savefig(p.with_suffix(".svg"), format="svg")
    plt.close(fig)
    return p


def spectrogram_png(spec_db: np.ndarray, seconds: float, title: str = "", vmin: float | None = None,
                    vmax: float | None = None) -> bytes:  # fmt: skip
    """PNG bytes of a log-mel spectrogram (``[mels, frames]`` in dB), time axis in seconds.

    Pass the same ``vmin``/``vmax`` for every codec so that their colours compare.
    """
    fig, ax = plt.subplots(figsize=(4.2, 1.9), dpi=100)
    ax.imshow(spec_db, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
              extent=(0.0, seconds, 0, spec_db.shape[0]), interpolation="nearest")  # fmt: skip
    ax.set_xlabel("time (s)", fontsize=8)
    ax.set_ylabel("mel band", fontsize=8)
    ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=8)
    fig.tight_layout(pad=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


#: Absolute error (mean over RGB, 8-bit levels) shown at full brightness in :func:`error_map`.
ERROR_MAP_MAX = 32


def error_map(ref: np.ndarray, dec: np.ndarray, vmax: float = ERROR_MAP_MAX) -> np.ndarray:
    """Heat map (``[H, W, 3]`` uint8, colour map "inferno") of ``|dec - ref|`` averaged over RGB.

    0 is black; ``vmax`` and above is pale yellow. The scale is fixed so that maps of different codecs
    compare directly.
    """
    err = np.abs(dec.astype(np.float64) - ref.astype(np.float64))
    if err.ndim == 3:
        err = err.mean(axis=2)
    cmap = matplotlib.colormaps["inferno"]
    rgba = cmap(np.clip(err / float(vmax), 0.0, 1.0))
    return (rgba[..., :3] * 255.0 + 0.5).astype(np.uint8)
