"""Shared last step of the runners: JSON per codec, BD summary, RD plots and the HTML report."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .anchors import Curve
from .common import library_versions, machine_info, summary_rows, with_msssim_db, write_json, write_summary
from .plots import rd_plot
from .report import Crop, build_report

__all__ = ["finalize", "base_meta", "dataset_info"]


def base_meta(files: Sequence[Path], dataset_sha: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Reproducibility block stored in every result file."""
    return {
        "dataset": {"n_files": len(files), "files": [Path(f).name for f in files], "sha256": dataset_sha},
        "machine": machine_info(),
        "libraries": library_versions(),
        "run_settings": settings,
    }


def dataset_info(
    inputs: str | Path,
    files: Sequence[Path],
    unit: str,
    sha256: str,
    crop: int | None = None,
    frames: int | None = None,
    max_seconds: float | None = None,
) -> dict[str, Any]:
    """What the run covered, for the report's header and the anchor check
    (:func:`ncodec.eval.anchors.coverage_problem`): the data set's ``name`` (the folder, or the
    folder holding a single input file), ``path``, ``items`` and their ``unit``, ``sha256`` and the
    limits ``crop`` (centre crop, pixels), ``frames`` and ``max_seconds`` (``None`` = not limited)."""
    p = Path(inputs)
    folder = p.parent if p.is_file() else p
    return {
        "name": folder.resolve().name,
        "path": str(p),
        "items": len(files),
        "unit": unit,
        "sha256": sha256,
        "crop": crop,
        "frames": frames,
        "max_seconds": max_seconds,
    }


def finalize(
    out: Path,
    medium: str,
    run_curves: Sequence[Curve],
    published: Sequence[Curve],
    anchor: Curve,
    rate_key: str,
    quality_keys: Sequence[str],
    plot_specs: Sequence[tuple[str, str, str]],
    meta: dict[str, Any],
    crops: Sequence[Crop] = (),
    crop_caption: str = "",
    extra_lines: Sequence[str] = (),
    quiet: bool = False,
    dataset: dict[str, Any] | None = None,
    clips: Sequence[Any] = (),
    clip_caption: str = "",
) -> dict[str, Any]:
    """Write ``<codec>.json``, ``run_info.json``, ``summary.md/.csv``, RD plots (PNG and SVG) and
    ``report.html``.

    ``plot_specs``: ``(file name, x key, y key)``; ``dataset``: :func:`dataset_info` (header, and BD
    cells against published curves only when the run covers their data set); ``clips``: audio
    :class:`ncodec.eval.report.Clip` players.
    Returns ``{"summary": rows, "plots": [...], "report": path, "anchor": name}``.
    """
    for c in run_curves:
        write_json(out / f"{c.name}.json", c.to_json())
    write_json(out / "run_info.json", dict(meta, medium=medium, codecs={c.name: c.meta for c in run_curves}))
    run_curves = [with_msssim_db(c) for c in run_curves]
    published = [with_msssim_db(c) for c in published]
    anchor = with_msssim_db(anchor)
    others = [c for c in list(run_curves) + list(published) if c is not anchor]
    rows = summary_rows(others, anchor, rate_key, quality_keys, dataset)
    title = f"BD-rate / BD-quality against {anchor.name} ({medium}, rate axis: {rate_key})"
    md = write_summary(out, rows, title)
    if extra_lines:
        md += "\n" + "\n".join(extra_lines) + "\n"
        (out / "summary.md").write_text(md)
    if not quiet:
        print(md, file=sys.stdout)
    run_rates = [v for c in run_curves for v in c.results.get(rate_key, []) if v == v]
    x_max = max(run_rates) * 1.15 if run_rates else None
    plots = []
    for fname, xk, yk in plot_specs:
        p = rd_plot(
            list(run_curves) + list(published),
            out / fname,
            xk,
            yk,
            title=f"{medium}: {yk} vs {xk}",
            x_max=x_max,
        )
        if p is not None:
            plots.append(p)
    report = build_report(
        out / "report.html",
        f"ncodec {medium} rate-distortion evaluation",
        plots,
        rows,
        list(run_curves) + list(published),
        crops=crops,
        meta=meta,
        crop_caption=crop_caption,
        dataset=dataset,
        clips=clips,
        clip_caption=clip_caption,
    )
    return {"summary": rows, "plots": plots, "report": report, "anchor": anchor.name}
