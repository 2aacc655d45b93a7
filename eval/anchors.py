"""Published rate-distortion curves ("anchors") in CompressAI's JSON results schema.

Schema: ``{"name": str, "description": str, "results": {"bpp": [...], "psnr-rgb": [...], ...}}``;
``bpp`` in bits per pixel, ``psnr-*`` in dB, ``ms-ssim-*`` in ``[0, 1]``.

The default anchor directory is ``<repo>/../shared/anchors`` (the repository is found relative to this
file); override it with the ``NCODEC_ANCHORS`` environment variable or the ``root`` argument.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Curve",
    "anchors_root",
    "load_curve",
    "list_anchors",
    "find_anchor",
    "resolve_anchors",
    "ANCHOR_DATASETS",
    "coverage_problem",
]

DEFAULT_IMAGE_ANCHORS = ("vtm", "bpg_444_x265_ycbcr", "webp", "jpeg")

#: The data set the curves of each anchor folder were measured on: (name, item count, unit). A BD-rate
#: against one of them means something only for a run over that whole set, uncropped.
ANCHOR_DATASETS: dict[str, tuple[str, int, str]] = {
    "image-kodak": ("Kodak", 24, "images"),
    "image-kodak-sota": ("Kodak", 24, "images"),
    "video-uvg": ("UVG", 7, "sequences"),
}


@dataclass
class Curve:
    """One RD curve: ``name``, ``description``, ``results`` (metric -> list, one entry per rate point)."""

    name: str
    description: str = ""
    results: dict[str, list[float]] = field(default_factory=dict)
    source: str = ""  # file path, or "" for curves measured in this run
    meta: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = {"name": self.name, "description": self.description, "results": self.results}
        if self.meta:
            d["meta"] = self.meta
        return d


def anchors_root(root: str | os.PathLike | None = None) -> Path:
    """Directory holding anchor JSON files (``<repo>/../shared/anchors`` unless overridden)."""
    if root is not None:
        return Path(root)
    env = os.environ.get("NCODEC_ANCHORS")
    if env:
        return Path(env)
    # this file is <repo>/eval/anchors.py (editable install); fall back to ../shared next to the cwd
    repo = Path(__file__).resolve().parents[1]
    candidates = [repo.parent / "shared" / "anchors", Path.cwd().parent / "shared" / "anchors",
                  Path.cwd() / "shared" / "anchors"]  # fmt: skip
    return next((c for c in candidates if c.is_dir()), candidates[0])


def validate_results_json(d: dict) -> None:
    """Raise ``ValueError`` if ``d`` does not follow CompressAI's results schema."""
    if not isinstance(d, dict) or "name" not in d or "results" not in d:
        raise ValueError("anchor JSON needs 'name' and 'results'")
    res = d["results"]
    if not isinstance(res, dict) or not res:
        raise ValueError("'results' must be a non-empty object")
    lengths = {k: len(v) for k, v in res.items() if isinstance(v, list)}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"'results' lists have different lengths: {lengths}")


def load_curve(path: str | os.PathLike) -> Curve:
    """Load one CompressAI-schema JSON file into a :class:`Curve`."""
    p = Path(path)
    with p.open() as f:
        d = json.load(f)
    validate_results_json(d)
    res = d["results"]
    # some anchors store MS-SSIM only in dB
    if "ms-ssim-rgb" not in res and "ms-ssim-db-rgb" in res:
        res["ms-ssim-rgb"] = [1.0 - 10 ** (-v / 10.0) for v in res["ms-ssim-db-rgb"]]
    return Curve(
        name=str(d["name"]),
        description=str(d.get("description", "")),
        results={k: list(v) for k, v in res.items() if isinstance(v, list)},
        source=str(p),
        meta=d.get("meta", {}),
    )


def list_anchors(subdir: str = "image-kodak", root: str | os.PathLike | None = None) -> list[Path]:
    """Sorted JSON files in ``<root>/<subdir>`` (empty if the directory does not exist)."""
    d = anchors_root(root) / subdir
    return sorted(d.glob("*.json")) if d.is_dir() else []


def find_anchor(name: str, subdir: str = "image-kodak", root: str | os.PathLike | None = None) -> Curve:
    """Find an anchor by file stem (``"vtm"``) or by its ``name`` field (``"VTM"``), case-insensitive.

    ``name`` may also be a path to a JSON file. Raises ``FileNotFoundError`` if nothing matches.
    """
    p = Path(name)
    if p.suffix == ".json" and p.is_file():
        return load_curve(p)
    key = name.lower().removesuffix(".json")
    files = list_anchors(subdir, root)
    for f in files:
        if f.stem.lower() == key:
            return load_curve(f)
    for f in files:
        c = load_curve(f)
        if c.name.lower() == key:
            return c
    raise FileNotFoundError(
        f"anchor {name!r} not found in {anchors_root(root) / subdir} (have: {[f.stem for f in files]})"
    )


def resolve_anchors(
    spec: str | None, subdir: str = "image-kodak", root: str | os.PathLike | None = None
) -> list[Curve]:
    """Parse ``--anchors`` (comma-separated file paths or names); ``None`` → the default image set.

    ``"none"`` or ``""`` gives no anchors. Missing defaults are skipped silently; missing explicit names
    raise ``FileNotFoundError``.
    """
    if spec is None:
        if subdir != "image-kodak":
            return []
        out = []
        for n in DEFAULT_IMAGE_ANCHORS:
            try:
                out.append(find_anchor(n, subdir, root))
            except FileNotFoundError:
                pass
        return out
    if spec.strip().lower() in ("", "none"):
        return []
    return [find_anchor(s.strip(), subdir, root) for s in spec.split(",") if s.strip()]


def coverage_problem(anchor: Curve, dataset: dict) -> str | None:
    """Why this run's curves cannot be compared with the published ``anchor``, or ``None`` if they can.

    ``dataset`` describes the run (see :func:`ncodec.eval.runner.dataset_info`): ``name`` (folder),
    ``items``, ``unit``, ``sha256`` and the limits ``crop`` (pixels), ``frames``, ``max_seconds``
    (``None`` when not limited). An anchor written by an earlier ``ncodec eval`` run (its
    ``meta`` holds the data set's sha256) must have the same files and crop; a curve from one of the
    :data:`ANCHOR_DATASETS` folders needs the whole named set (``"3 of 24 images"`` otherwise). Curves
    whose data set is unknown (a JSON file from elsewhere) are not checked.
    """
    reasons = []
    n, unit = dataset.get("items", 0), dataset.get("unit", "items")
    ds = anchor.meta.get("dataset") if isinstance(anchor.meta, dict) else None
    if isinstance(ds, dict) and ds.get("sha256"):  # a curve from an earlier ncodec eval run
        if ds["sha256"] != dataset.get("sha256"):
            reasons.append(f"anchor measured on other files ({ds.get('n_files', '?')} {unit}; this run {n})")
        settings = anchor.meta.get("run_settings", {})
        for k in ("crop", "frames", "max_seconds"):
            if settings.get(k) != dataset.get(k):
                reasons.append(f"anchor {k} {settings.get(k)}, this run {dataset.get(k)}")
        return "; ".join(reasons) or None
    known = ANCHOR_DATASETS.get(Path(anchor.source).parent.name) if anchor.source else None
    if known is None:
        return None
    name, total, unit = known
    if name.lower() not in str(dataset.get("name", "")).lower():
        reasons.append(f"run on '{dataset.get('name')}', anchor measured on {name}")
    if n != total:
        reasons.append(f"{n} of {total} {unit}")
    if dataset.get("crop"):
        c = dataset["crop"]
        reasons.append(f"{unit} cropped to {c}×{c} px")
    if dataset.get("frames"):
        reasons.append(f"first {dataset['frames']} frames only")
    if dataset.get("max_seconds"):
        reasons.append(f"first {dataset['max_seconds']:g} s only")
    return "; ".join(reasons) or None
