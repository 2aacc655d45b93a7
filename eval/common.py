"""Shared runner helpers: reproducibility records, dataset hashing, progress bars, result files, summaries."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import platform
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .anchors import Curve, coverage_problem
from .bdrate import BDError, bd_psnr, bd_rate, crossings

__all__ = [
    "dataset_hash",
    "machine_info",
    "library_versions",
    "progress",
    "write_csv",
    "write_json",
    "aggregate",
    "summary_rows",
    "format_summary",
    "write_summary",
    "UNITS",
    "unit_of",
]

#: Unit of every result column the runners write (shown in every table header of the report).
UNITS: dict[str, str] = {
    "bpp": "bpp",
    "kbps": "kbps",
    "kbps-target": "kbps",
    "psnr-rgb": "dB",
    "psnr-y": "dB",
    "psnr-u": "dB",
    "psnr-v": "dB",
    "psnr-yuv": "dB",
    "ms-ssim-rgb": "0-1",
    "ms-ssim-rgb-db": "dB",
    "si-sdr": "dB",
    "pesq-wb": "MOS-LQO",
    "visqol": "MOS-LQO",
    "stoi": "0-1",
    "mel-distance": "nats",
    "encoding_time": "s",
    "decoding_time": "s",
    "encoding_fps": "frames/s",
    "decoding_fps": "frames/s",
    "quality": "codec setting",
    "crf": "CRF",
    "bytes": "B",
    "width": "px",
    "height": "px",
    "frames": "frames",
    "fps": "frames/s",
    "duration_s": "s",
    "sample_rate": "Hz",
    "delay_samples": "samples",
}


def unit_of(key: str) -> str:
    """Unit of a result column (``""`` if unknown); a key that already ends in ``(unit)`` keeps it."""
    if key.endswith(")") and "(" in key:
        return key[key.rindex("(") + 1 : -1]
    return UNITS.get(key, "")


class CodecFailedError(RuntimeError):
    """A codec the run asked for cannot be built or does not work (``ncodec eval`` exit 1)."""


def dataset_hash(files: Sequence[Path]) -> str:
    """sha256 (hex) over the sorted file names and their bytes: ``name\\0 bytes`` for each file."""
    h = hashlib.sha256()
    for f in sorted(Path(p) for p in files):
        h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """Platform, CPU model, logical core count, Python version and host name."""
    return {
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "hostname": platform.node(),
    }


def library_versions() -> dict[str, str]:
    """Versions of the libraries used by the evaluation (pillow, av/ffmpeg, torch, numpy, ncodec, ...)."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str] = {}
    for pkg in (
        "ncodec",
        "torch",
        "torchaudio",
        "numpy",
        "scipy",
        "pillow",
        "av",
        "pytorch-msssim",
        "pystoi",
        "pesq",
        "visqol-python",
        "compressai",
    ):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def progress(iterable: Iterable, total: int | None = None, desc: str = "", enabled: bool | None = None):
    """tqdm progress bar on stderr, disabled automatically when stderr is not a TTY."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return iterable
    return tqdm(iterable, total=total, desc=desc, disable=not enabled, file=sys.stderr, dynamic_ncols=True)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write dict rows as CSV (header = union of keys in first-seen order)."""
    keys: list[str] = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: _fmt_csv(r.get(k)) for k in keys})


def _fmt_csv(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item"):
        return _jsonable(v.item())
    return v


def write_json(path: Path, data: dict) -> None:
    """Write JSON (NaN/inf written as ``null``), indented."""
    with open(path, "w") as f:
        json.dump(_jsonable(data), f, indent=2)
        f.write("\n")


def aggregate(rows: list[dict[str, Any]], key: str, metrics: Sequence[str]) -> dict[str, list[float]]:
    """Average ``metrics`` over items per rate point (``key``, e.g. ``"quality"``), in first-seen order.

    NaN values are ignored (mean of the finite values; NaN if none). Returns ``{key: [...], metric: [...]}``.
    """
    points: list[Any] = []
    for r in rows:
        if r[key] not in points:
            points.append(r[key])
    out: dict[str, list[float]] = {key: list(points)}
    for m in metrics:
        vals = []
        for p in points:
            xs = [float(r[m]) for r in rows if r[key] == p and r.get(m) is not None]
            xs = [x for x in xs if math.isfinite(x)]
            vals.append(sum(xs) / len(xs) if xs else math.nan)
        out[m] = vals
    return out


def summary_rows(
    curves: Sequence[Curve],
    anchor: Curve,
    rate_key: str,
    quality_keys: Sequence[str],
    dataset: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """BD-rate (%) and BD-quality of every curve against ``anchor`` for each quality metric.

    Curve points are sorted by rate; failures (too few / non-monotonic points) are reported as ``None`` with
    the reason in ``note``. Every row has the same columns: per metric ``bd-rate <q> (%)``, ``bd <q>
    (<unit>)`` and ``crossing <q>`` (empty, or where the two curves cross inside the interval the
    BD-rate averages over). When exactly one of the two curves is published (has a ``source``) and
    ``dataset`` (the run's, see :func:`ncodec.eval.runner.dataset_info`) does not cover that curve's
    data set, the BD cells hold the string ``"not computed: <reason>"`` instead of a number.
    """
    rows = []
    for c in curves:
        row: dict[str, Any] = {"codec": c.name, "anchor": anchor.name}
        notes = []
        skip = None
        if dataset is not None and bool(c.source) != bool(anchor.source):
            skip = coverage_problem(anchor if anchor.source else c, dataset)
        for qk in quality_keys:
            rk, bk, xk = f"bd-rate {qk} (%)", f"bd {qk} ({unit_of(qk) or qk})", f"crossing {qk}"
            row[rk] = row[bk] = None
            row[xk] = ""
            if skip:
                row[rk] = row[bk] = f"not computed: {skip}"
                continue
            try:
                ra, qa = anchor.results[rate_key], anchor.results[qk]
                rt, qt = c.results[rate_key], c.results[qk]
            except KeyError as e:
                notes.append(f"{qk}: missing {e}")
                continue
            for label, fn in ((rk, bd_rate), (bk, bd_psnr)):
                try:
                    row[label] = fn(ra, qa, rt, qt)
                except BDError as e:
                    if str(e) not in notes:
                        notes.append(str(e))
            try:
                cross = crossings(ra, qa, rt, qt)
            except BDError:
                cross = []
            if cross:
                u = unit_of(rate_key) or rate_key
                at = ", ".join(f"{r:.3g} {u} ({q:.2f} {unit_of(qk)})".replace(" )", ")") for r, q in cross)
                row[xk] = f"curves cross at {at}"
        row["note"] = "; ".join(notes)
        rows.append(row)
    return rows


def format_summary(rows: list[dict[str, Any]], title: str = "") -> str:
    """Markdown table of :func:`summary_rows` output."""
    if not rows:
        return ""
    keys = list(rows[0].keys())
    lines = [f"### {title}", ""] if title else []
    lines.append("| " + " | ".join(keys) + " |")
    lines.append("|" + "|".join("---" for _ in keys) + "|")
    for r in rows:
        cells = []
        for k in keys:
            v = r.get(k)
            if v is None:
                cells.append("n/a")
            elif isinstance(v, float):
                cells.append(f"{v:+.2f}" if k.startswith("bd") else f"{v:.3f}")
            else:
                cells.append(str(v).replace("|", "/")[:200])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_summary(out: Path, rows: list[dict[str, Any]], title: str) -> str:
    """Write ``summary.md`` and ``summary.csv`` into ``out``; return the markdown text."""
    md = format_summary(rows, title)
    (out / "summary.md").write_text(md)
    write_csv(out / "summary.csv", rows)
    return md


class Timer:
    """Context manager measuring wall time in seconds (``.s``)."""

    def __enter__(self) -> Timer:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.s = time.perf_counter() - self.t0


def parse_rate_points(spec: str | None, codecs: Sequence[str]) -> dict[str, list[float]]:
    """Parse ``--qualities``: ``"10,50,90"`` (all codecs) or ``"jpeg=10,50;x265=37,27"`` (per codec).

    Values are parsed as int when integral, else float. Returns ``{codec: [points]}`` (empty = defaults).
    """
    if not spec:
        return {}

    def nums(s: str) -> list[float]:
        out = []
        for t in s.split(","):
            t = t.strip()
            if t:
                v = float(t)
                out.append(int(v) if v.is_integer() else v)
        return out

    if "=" not in spec:
        pts = nums(spec)
        return {c: pts for c in codecs}
    out: dict[str, list[float]] = {}
    for part in spec.replace(" ", ";").split(";"):
        if part.strip():
            name, _, vals = part.partition("=")
            out[name.strip().lower()] = nums(vals)
    return out


def map_tasks(
    fn: Any, tasks: Sequence[Any], jobs: int = 1, desc: str = "", show: bool | None = None
) -> list[Any]:
    """Run ``fn(task)`` for each task, in order; ``jobs > 1`` uses a spawn-based process pool."""
    if jobs <= 1 or len(tasks) <= 1:
        return [fn(t) for t in progress(tasks, total=len(tasks), desc=desc, enabled=show)]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=mp.get_context("spawn"), initializer=_worker_init
    ) as ex:
        return list(progress(ex.map(fn, tasks), total=len(tasks), desc=desc, enabled=show))


def _worker_init() -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except Exception:  # noqa: BLE001
        pass


def with_msssim_db(c: Curve) -> Curve:
    """Add ``ms-ssim-rgb-db`` (``-10 log10(1 - MS-SSIM)``) to a curve's results if it has ``ms-ssim-rgb``."""
    if "ms-ssim-rgb" in c.results and "ms-ssim-rgb-db" not in c.results:
        c.results["ms-ssim-rgb-db"] = [
            (-10.0 * math.log10(1.0 - v)) if (v is not None and math.isfinite(v) and v < 1.0) else math.nan
            for v in c.results["ms-ssim-rgb"]
        ]
    return c


def pick_anchor(
    name: str | None, run: Sequence[Curve], published: Sequence[Curve], defaults: Sequence[str], subdir: str
) -> Curve:
    """Choose the BD anchor: ``name`` (a codec of this run, a loaded anchor, or a file/name in the anchors
    directory); otherwise the first of ``defaults`` found, else the first run curve."""
    from .anchors import find_anchor

    def lookup(n: str) -> Curve | None:
        k = n.lower()
        for c in list(run) + list(published):
            if c.name.lower() == k or (c.source and Path(c.source).stem.lower() == k):
                return c
        return None

    if name:
        c = lookup(name)
        if c is not None:
            return c
        return find_anchor(name, subdir)  # raises FileNotFoundError
    for d in defaults:
        c = lookup(d)
        if c is not None:
            return c
        try:
            return find_anchor(d, subdir)
        except FileNotFoundError:
            pass
    if not run and not published:
        raise ValueError("no curves to choose an anchor from")
    return (list(run) or list(published))[0]
