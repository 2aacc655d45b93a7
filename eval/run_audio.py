"""Audio rate-distortion runner: every file × codec × target bitrate (kbps).

Rate is the real size of the complete encoded file: ``kbps = 8 * bytes / duration_s / 1000``. The
decoded signal is resampled back to the input rate (torchaudio), delay-compensated and cropped to the
input length (:func:`ncodec.eval.baselines_audio.align`) before computing SI-SDR (dB), log-mel L1
distance, STOI and PESQ-WB. Per rate point, metrics are averaged over files.

Outputs in ``out``: ``per_file.csv``, ``<codec>.json`` (results: ``kbps-target``, ``kbps``, ``si-sdr``,
``mel-distance``, ``stoi``, ``pesq-wb``, ``encoding_time``, ``decoding_time`` + ``meta``), ``summary.md``
/``summary.csv`` (BD-rate over kbps against the anchor codec), RD plots and ``report.html``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics as M
from .anchors import Curve
from .baselines_audio import align, get_audio_codec, load_audio
from .common import CodecFailedError, Timer, aggregate, dataset_hash, map_tasks, pick_anchor, write_csv
from .runner import base_meta, finalize

__all__ = ["AUDIO_EXTS", "list_audio", "run_audio"]

AUDIO_EXTS = (".flac", ".wav", ".ogg", ".mp3", ".opus", ".m4a")
METRICS = ("kbps", "si-sdr", "mel-distance", "stoi", "pesq-wb", "encoding_time", "decoding_time")

_CODEC_CACHE: dict[tuple, Any] = {}


def list_audio(root: str | Path, limit: int | None = None) -> list[Path]:
    """Audio files under ``root`` (recursive, sorted by path) or ``[root]``; first ``limit`` if given."""
    p = Path(root)
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_EXTS)
    return files[:limit] if limit else files


def _task(t: tuple) -> dict[str, Any]:
    name, kwargs, path, kbps, max_seconds = t
    key = (name, kwargs)
    if key not in _CODEC_CACHE:
        _CODEC_CACHE[key] = get_audio_codec(name, **dict(kwargs))
    codec = _CODEC_CACHE[key]
    x, sr = load_audio(path)
    if max_seconds:
        x = x[:, : int(max_seconds * sr)]
    x = x[:2]
    dur = x.shape[1] / sr
    with Timer() as te:
        data = codec.encode(x, sr, kbps)
    with Timer() as td:
        y, sr_dec = codec.decode(data)
    if sr_dec != sr:
        y = M._resample(y, sr_dec, sr).astype(np.float32)
    y, lag = align(x, y, sr)
    return {
        "file": Path(path).name,
        "codec": codec.name,
        "kbps-target": kbps,
        "sample_rate": sr,
        "channels": x.shape[0],
        "duration_s": dur,
        "bytes": len(data),
        "kbps": 8.0 * len(data) / dur / 1000.0,
        "delay_samples": lag,
        "si-sdr": M.si_sdr(x, y),
        "mel-distance": M.mel_distance(x, y, sr),
        "stoi": M.stoi(x, y, sr),
        "pesq-wb": M.pesq_wb(x, y, sr),
        "encoding_time": te.s,
        "decoding_time": td.s,
    }


def run_audio(
    inputs: str | Path,
    out: str | Path,
    codecs: Sequence[str] = ("opus", "aac", "mp3"),
    anchors: Sequence[Curve] = (),
    anchor: str | None = None,
    rate_points: dict[str, list] | None = None,
    limit: int | None = None,
    jobs: int = 1,
    codec_kwargs: dict[str, dict] | None = None,
    show_progress: bool | None = None,
    quiet: bool = False,
    max_seconds: float | None = None,
) -> dict[str, Any]:
    """Run the audio evaluation (see module docstring). Returns finalize()'s dict plus ``curves``/``rows``."""
    files = list_audio(inputs, limit)
    if not files:
        raise FileNotFoundError(f"no audio files in {inputs}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    codec_kwargs = codec_kwargs or {}
    rate_points = rate_points or {}
    ok = []
    for n in codecs:
        try:
            c = get_audio_codec(n, **codec_kwargs.get(n, {}))
            if n == "ncodec":  # smoke test: a codec under development may import but not work yet
                noise = np.random.default_rng(0).uniform(-0.1, 0.1, (1, 16000)).astype(np.float32)
                c.decode(c.encode(noise, 16000, c.rates[len(c.rates) // 2]))
            ok.append((n, c))
        except Exception as e:  # noqa: BLE001 - a requested codec that fails fails the run
            raise CodecFailedError(f"codec {n} failed: {type(e).__name__}: {e}") from e
    if not ok:
        raise ValueError("no usable codec")
    tasks = []
    for n, c in ok:
        kw = tuple(sorted(codec_kwargs.get(n, {}).items()))
        for k in rate_points.get(n, c.rates):
            for f in files:
                tasks.append((n, kw, str(f), k, max_seconds))
    rows = map_tasks(_task, tasks, jobs, desc="audio", show=show_progress)
    write_csv(out / "per_file.csv", rows)
    settings = {
        "codecs": [n for n, _ in ok],
        "limit": limit,
        "max_seconds": max_seconds,
        "rate_points_kbps": {n: list(rate_points.get(n, c.rates)) for n, c in ok},
    }
    meta = base_meta(files, dataset_hash(files), settings)
    curves = []
    for _n, c in ok:
        res = aggregate([r for r in rows if r["codec"] == c.name], "kbps-target", METRICS)
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
    anc = pick_anchor(anchor, curves, anchors, ("opus",), "audio")
    fin = finalize(
        out,
        "audio",
        curves,
        anchors,
        anc,
        "kbps",
        ("pesq-wb", "si-sdr", "stoi"),
        [
            ("rd_pesq.png", "kbps", "pesq-wb"),
            ("rd_sisdr.png", "kbps", "si-sdr"),
            ("rd_stoi.png", "kbps", "stoi"),
            ("rd_mel.png", "kbps", "mel-distance"),
        ],
        meta,
        quiet=quiet,
    )
    fin.update(curves=curves, rows=rows)
    return fin
