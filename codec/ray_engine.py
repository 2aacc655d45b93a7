"""Coding on Ray Data, beyond one process or one machine (optional extra: ``pip install ncodec[ray]``).

Two entry points:

* :func:`run_jobs`: the folder jobs of :mod:`ncodec.codec.folders` (``ncodec encode DIR -o OUT
  --engine ray [--address ADDR]``), each a Ray task running :func:`~ncodec.codec.folders.run_job`
  on files every node can see (a shared file system);
* :func:`encode_dataset` / :func:`decode_dataset`: a map over a ``ray.data.Dataset`` whose
  column holds images (arrays, as ``ray.data.read_images`` gives them) or streams (bytes)::

      import ray
      from ncodec.codec.ray_engine import encode_dataset
      ds = encode_dataset(ray.data.read_images("photos/"), quality=60)   # adds column "ncb"
      ds.write_parquet("photos_ncb/")

Without an address, a local Ray is started in this process (and stopped when the jobs are done);
``address="auto"`` or ``"ray://host:10001"`` joins a running cluster.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        from ncodec.codec.errors import InvalidArgumentError

        raise InvalidArgumentError(
            "the ray engine needs Ray Data: pip install 'ncodec[ray]' (or 'ray[data]')"
        ) from None
    return ray


def _start(address: str | None, num_cpus: int | None) -> bool:
    """Connects to (or starts) Ray unless it is up; returns whether this call started it."""
    ray = _ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
    if address is None and num_cpus is not None:
        kwargs["num_cpus"] = num_cpus
    ray.init(address=address, **kwargs)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the caller shows its own
    return True


def _run_row(row: dict[str, Any]) -> dict[str, Any]:
    """One Ray Data row ``{"job": json}`` -> ``{"row": json}`` (one string column each way keeps
    every block's schema the same, whatever a job's options or outcome)."""
    import torch

    from ncodec.codec.folders import run_job

    torch.set_num_threads(1)
    return {"row": json.dumps(run_job(json.loads(row["job"])))}


def run_jobs(
    jobs: list[dict[str, Any]], *, address: str | None = None, concurrency: int | None = None
) -> Iterator[dict[str, Any]]:
    """Runs folder jobs as Ray tasks (one CPU each, at most ``concurrency`` at once) and yields
    their manifest rows as they finish."""
    ray = _ray()
    started = _start(address, concurrency)
    try:
        ds = ray.data.from_items([{"job": json.dumps(j)} for j in jobs], override_num_blocks=len(jobs))
        for out in ds.map(_run_row, num_cpus=1, concurrency=concurrency).iter_rows():
            yield json.loads(out["row"])
    finally:
        if started:
            ray.shutdown()


class _Encode:
    def __init__(self, column: str, out_column: str, kwargs: dict[str, Any]):
        self.column, self.out_column, self.kwargs = column, out_column, kwargs

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        import ncodec.codec as nc

        row[self.out_column] = nc.encode(row[self.column], **self.kwargs)
        return row


class _Decode:
    def __init__(self, column: str, out_column: str, device: str):
        self.column, self.out_column, self.device = column, out_column, device

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        import ncodec.codec as nc

        obj = nc.decode(row[self.column], device=self.device)
        if isinstance(obj, tuple):  # audio: (samples [C, T], sample_rate)
            row[self.out_column], row[self.out_column + "_rate"] = obj
        else:
            row[self.out_column] = np.asarray(obj)
        return row


def encode_dataset(ds: Any, column: str = "image", out_column: str = "ncb", **kwargs: Any) -> Any:
    """A lazy ``ray.data.Dataset``: ``ds`` with ``out_column`` holding each row's ``column``
    encoded by :func:`ncodec.codec.encode` (``kwargs``: ``quality``, ``target_bpp``...). Images
    are uint8 ``[H, W, 3]`` arrays (``ray.data.read_images``) or anything ``encode`` takes."""
    _ray()
    return ds.map(_Encode(column, out_column, kwargs), num_cpus=1)


def decode_dataset(ds: Any, column: str = "ncb", out_column: str = "image", device: str = "cpu") -> Any:
    """A lazy ``ray.data.Dataset``: ``ds`` with ``out_column`` holding each row's stream decoded
    (images: uint8 arrays ``[H, W, C]``; audio: float32 ``[C, T]`` and ``out_column + "_rate"``)."""
    _ray()
    return ds.map(_Decode(column, out_column, device), num_cpus=1)


__all__ = ["run_jobs", "encode_dataset", "decode_dataset"]
