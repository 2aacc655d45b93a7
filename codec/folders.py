"""Folders: ``ncodec encode DIR -o OUTDIR`` and ``ncodec decode DIR -o OUTDIR``.

A folder operation is a list of per-file jobs (plain dicts, so that they pickle and travel to
worker processes or Ray tasks) run by :func:`run_job`, which never raises: each job gives one
manifest row (JSON Lines, appended to ``OUTDIR/manifest.jsonl`` as jobs finish)::

    {"input": "in/a.png", "output": "out/a.ncb", "medium": "image", "status": "ok",
     "bytes": 5123, "rate": 0.625, "rate_unit": "bpp", "quality": 50.0, "seconds": 0.41}

``status`` is ``ok``, ``skipped`` (the output exists and ``force`` is false: reruns resume) or
``error`` (with ``error``, the one-line message, and ``code``, the CLI's exit code for it).
The input tree is mirrored: ``in/x/a.png`` -> ``out/x/a.ncb`` -> ``out2/x/a.png``. Engines:
``local`` (this process for ``jobs=1``, else a pool of ``jobs`` processes) and ``ray``
(:mod:`ncodec.codec.ray_engine`, Ray Data, optional extra ``ncodec[ray]``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ncodec.codec.errors import InvalidArgumentError, UnsupportedInputError, exit_code

MANIFEST = "manifest.jsonl"
STREAM_SUFFIX = ".ncb"


def _files(root: Path, keep: Callable[[Path], bool]) -> list[Path]:
    """Files under ``root`` (recursively, sorted, hidden files and folders left out)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if not name.startswith(".") and keep(p):
                out.append(p)
    return out


def _check_unique(jobs: list[dict[str, Any]]) -> None:
    seen: dict[str, str] = {}
    for j in jobs:
        if j["output"] in seen:
            raise InvalidArgumentError(
                f"{seen[j['output']]} and {j['input']} would both be written to {j['output']}"
            )
        seen[j["output"]] = j["input"]


def plan_encode(src: str | Path, dst: str | Path, **options: Any) -> list[dict[str, Any]]:
    """Encode jobs for every file under ``src`` that some medium reads (by suffix); ``options``
    as :func:`ncodec.codec.api.encode` (``quality``, ``target_bpp``, ``model``...)."""
    from ncodec.codec.medium import codec_for, media_ids

    src, dst = Path(src), Path(dst)
    readable = set().union(*(codec_for(m).extensions for m in media_ids()))
    jobs = [
        {
            "op": "encode",
            "input": str(p),
            "output": str(dst / p.relative_to(src).with_suffix(STREAM_SUFFIX)),
            "options": options,
        }
        for p in _files(src, lambda p: p.suffix.lower() in readable)
    ]
    _check_unique(jobs)
    return jobs


def plan_decode(
    src: str | Path, dst: str | Path, format: str | None = None, **options: Any
) -> list[dict[str, Any]]:
    """Decode jobs for every ``.ncb`` file under ``src``, to ``format`` (a suffix such as ``png``)
    or each medium's default type (read from the stream's header)."""
    from ncodec.bitstream.container import StreamReader
    from ncodec.codec.api import output_suffix
    from ncodec.codec.medium import codec_for

    src, dst = Path(src), Path(dst)
    jobs = []
    for p in _files(src, lambda p: p.suffix.lower() == STREAM_SUFFIX):
        job: dict[str, Any] = {"op": "decode", "input": str(p), "options": dict(options, format=format)}
        try:
            with open(p, "rb") as f:
                codec = codec_for(StreamReader(f).header.media)
            suffix = output_suffix(codec, p, format) if format else codec.default_out
        except Exception as e:  # reported by the job, as any other failure of this file
            job["error"], job["code"] = _message(e), exit_code(e)
            suffix = ".failed"
        job["output"] = str(dst / p.relative_to(src).with_suffix(suffix))
        jobs.append(job)
    _check_unique(jobs)
    return jobs


def _message(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Runs one encode or decode job (see :func:`plan_encode`) and returns its manifest row; never
    raises for a failure of the file (the row says ``error``)."""
    from ncodec.codec import api

    row: dict[str, Any] = {"input": job["input"], "output": job["output"], "status": "ok"}
    t0 = time.perf_counter()
    try:
        if "error" in job:
            raise _Planned(job["error"], job["code"])
        out = Path(job["output"])
        out.parent.mkdir(parents=True, exist_ok=True)
        if job["op"] == "encode":
            r = api.encode_file(job["input"], out, force=True, **job["options"])
            unit = "bpp" if r.medium == "image" else "kbps"
            stream = r.stream or {}
            row.update(
                medium=r.medium,
                bytes=r.bytes,
                rate=r.bpp if unit == "bpp" else r.kbps,
                rate_unit=unit,
                quality=stream.get("quality"),
                rate_kbps=stream.get("rate_kbps"),
            )
            if r.target is not None:
                row.update(target=r.target, reached=r.reached, clamped=r.clamped)
        else:
            d = api.decode_file(job["input"], out, force=True, **job["options"])
            row.update(medium=d.medium, bytes=out.stat().st_size, size=list(d.size))
    except Exception as e:
        row.update(
            status="error", error=_message(e), code=e.code if isinstance(e, _Planned) else exit_code(e)
        )
    row["seconds"] = round(time.perf_counter() - t0, 4)
    return row


class _Planned(Exception):
    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def _init_worker(threads: int) -> None:
    """A pool worker: ``threads`` torch threads; SIGTERM unwinds (temporary files removed)."""
    import signal
    import sys

    def term(signum, frame):
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, term)
    import torch

    torch.set_num_threads(threads)


def _run_pool(jobs: list[dict[str, Any]], workers: int) -> Iterator[dict[str, Any]]:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    threads = max(1, (os.cpu_count() or 1) // workers)
    pool = ProcessPoolExecutor(
        workers, mp_context=mp.get_context("spawn"), initializer=_init_worker, initargs=(threads,)
    )
    try:
        pending = {pool.submit(run_job, j) for j in jobs}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
        pool.shutdown()
    except BaseException:
        # interrupted: stop the workers now (each removes its temporary file) and wait for them
        procs = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            p.terminate()
        for p in procs:
            p.join(10)
        raise


@dataclass
class FolderReport:
    """A folder operation's outcome: counts per status, the manifest's path and the rows."""

    manifest: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(r["status"] == status for r in self.rows)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] == "error"]


def run_folder(
    op: str,
    src: str | Path,
    dst: str | Path,
    *,
    jobs: int = 1,
    force: bool = False,
    engine: str = "local",
    address: str | None = None,
    manifest: str | Path | None = None,
    progress: bool = False,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    **options: Any,
) -> FolderReport:
    """Encodes (``op="encode"``) or decodes every file under the folder ``src`` into the folder
    ``dst``, mirroring the tree; outputs that exist are skipped unless ``force`` (so a rerun
    resumes). Each file's row is appended to ``manifest`` (default ``dst/manifest.jsonl``) as it
    finishes. ``options`` go to :func:`ncodec.codec.api.encode_file` or ``decode_file``
    (``format`` for decode).

    Raises:
        UnsupportedInputError: ``src`` is not a folder or holds no file to code.
        InvalidArgumentError: bad ``jobs``/``engine``, or two inputs that map to one output.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise UnsupportedInputError(f"{src}: not a folder")
    if jobs < 1:
        raise InvalidArgumentError(f"jobs must be at least 1, got {jobs}")
    if engine not in ("local", "ray"):
        raise InvalidArgumentError(f"unknown engine '{engine}' (local or ray)")
    if op == "encode":
        planned = plan_encode(src, dst, **options)
    elif op == "decode":
        planned = plan_decode(src, dst, **options)
    else:
        raise InvalidArgumentError(f"unknown folder operation '{op}'")
    if not planned:
        what = "media files" if op == "encode" else f"{STREAM_SUFFIX} streams"
        raise UnsupportedInputError(f"{src}: no {what} in this folder")
    dst.mkdir(parents=True, exist_ok=True)
    manifest = Path(manifest) if manifest is not None else dst / MANIFEST
    report = FolderReport(str(manifest))
    t0 = time.perf_counter()
    todo = []
    skipped = []
    for j in planned:
        if not force and Path(j["output"]).exists():
            skipped.append({"input": j["input"], "output": j["output"], "status": "skipped", "seconds": 0.0})
        else:
            todo.append(j)
    rows: Iterable[dict[str, Any]]
    if not todo:
        rows = []
    elif engine == "ray":
        from ncodec.codec.ray_engine import run_jobs

        rows = run_jobs(todo, address=address, concurrency=jobs)
    elif jobs == 1 or len(todo) == 1:
        rows = (run_job(j) for j in todo)
    else:
        rows = _run_pool(todo, min(jobs, len(todo)))
    bar = None
    if progress:
        import sys

        from tqdm import tqdm

        if sys.stderr.isatty():
            bar = tqdm(total=len(planned), desc=op, unit="file", initial=len(skipped), leave=False, delay=1.0)
    with open(manifest, "a", encoding="utf-8") as mf:
        for row in [*skipped, *rows]:
            mf.write(json.dumps(row) + "\n")
            mf.flush()
            report.rows.append(row)
            if bar is not None and row["status"] != "skipped":
                bar.update()
            if on_row is not None:
                on_row(row)
    if bar is not None:
        bar.close()
    report.seconds = time.perf_counter() - t0
    return report


__all__ = ["plan_encode", "plan_decode", "run_job", "run_folder", "FolderReport", "MANIFEST"]
