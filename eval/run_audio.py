"""Audio rate-distortion runner: every file × codec × target bitrate (kbps).

Rate is the real size of the complete encoded file: ``kbps = 8 * bytes / duration_s / 1000``. The
decoded signal is resampled back to the input rate (torchaudio), delay-compensated and cropped to the
input length (:func:`ncodec.eval.baselines_audio.align`) before computing SI-SDR (dB), log-mel L1
distance, STOI and PESQ-WB. Per rate point, metrics are averaged over files.

Outputs in ``out``: ``per_file.csv``, ``<codec>.json`` (results: ``kbps-target``, ``kbps``, ``si-sdr``,
``mel-distance``, ``stoi``, ``pesq-wb``, ``encoding_time``, ``decoding_time`` + ``meta``), ``summary.md``
/``summary.csv`` (BD-rate over kbps against the anchor codec), RD plots (PNG and SVG) and
``report.html``. ``visqol`` (ViSQOL v3 MOS-LQO) is added when the optional ``visqol-python`` package
is importable (see :func:`ncodec.eval.metrics.visqol`).

The report plays the first file decoded by every codec at matched rate (each codec's rate point
nearest in log-rate to one target kbps inside all the sweeps, actual kbps stated; the first
:data:`CLIP_SECONDS` seconds, embedded as WAV) with a log-mel spectrogram of each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics as M
from .anchors import Curve
from .baselines_audio import align, get_audio_codec, load_audio
from .common import CodecFailedError, Timer, aggregate, dataset_hash, map_tasks, pick_anchor, write_csv
from .plots import spectrogram_png
from .report import Clip, wav_bytes
from .runner import base_meta, dataset_info, finalize

__all__ = ["AUDIO_EXTS", "list_audio", "run_audio", "matched_clips"]

#: Length of the clips embedded in the report (seconds from the start of the first file).
CLIP_SECONDS = 8.0

AUDIO_EXTS = (".flac", ".wav", ".ogg", ".mp3", ".opus", ".m4a")
METRICS = ("kbps", "si-sdr", "mel-distance", "stoi", "pesq-wb", "encoding_time", "decoding_time")

_CODEC_CACHE: dict[tuple, Any] = {}


def list_audio(root: str | Path, limit: int | None = None) -> list[Path]:
    """Audio files under ``root`` (recursive, sorted by path) or ``[root]``; first ``limit`` if given."""
    p = Path(root)
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_EXTS)
    return files[:limit] if limit else files


def _metrics() -> tuple[str, ...]:
    return METRICS + (("visqol",) if M.visqol_available() else ())


def _task(t: tuple) -> dict[str, Any]:
    """One (codec, file, rate): encode, decode, metrics. ``t`` = (codec, kwargs, path, kbps, max_seconds);
    returns the row."""
    return _task_clip((*t, False))[0]


def _task_clip(t: tuple) -> tuple[dict[str, Any], np.ndarray | None]:
    """:func:`_task` with a sixth element ``want_clip``. Returns (row, the decoded signal aligned to the
    input, first :data:`CLIP_SECONDS` s, or None unless ``want_clip``)."""
    name, kwargs, path, kbps, max_seconds, want_clip = t
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
    row = {
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
    if M.visqol_available():
        row["visqol"] = M.visqol(x, y, sr)
    return row, (np.asarray(y[:, : int(CLIP_SECONDS * sr)], dtype=np.float32) if want_clip else None)


def matched_clips(
    x: np.ndarray, sr: int, results: Sequence[tuple[dict[str, Any], np.ndarray | None]], codecs: Sequence[str]
) -> tuple[list[Clip], str]:
    """Players for one file (``x`` at ``sr``, the reference) at matched rate, and their caption.

    ``results``: ``(row, decoded clip)`` pairs; those with a clip are the rate points of that file. The
    target rate is the geometric middle of the kbps range all sweeps share (or of the gap between
    them); each codec plays its point nearest to it in log-rate, labelled with the actual kbps. Every
    clip gets a log-mel spectrogram on one colour scale (the reference's maximum and 80 dB below).
    """
    pts = [(r, y) for r, y in results if y is not None]
    sweeps = {c: [(r, y) for r, y in pts if r["codec"] == c] for c in codecs}
    sweeps = {c: v for c, v in sweeps.items() if v}
    if not sweeps:
        return [], ""
    lo = max(min(r["kbps"] for r, _ in v) for v in sweeps.values())
    hi = min(max(r["kbps"] for r, _ in v) for v in sweeps.values())
    target = math.sqrt(lo * hi)
    ref = np.asarray(x[:, : int(CLIP_SECONDS * sr)], dtype=np.float32)
    secs = ref.shape[1] / sr
    s_ref = M.log_mel_db(ref, sr)
    vmax = float(s_ref.max())
    vmin = vmax - 80.0
    clips = [
        Clip("original", wav_bytes(ref, sr), math.inf, spectrogram_png(s_ref, secs, "original", vmin, vmax))
    ]
    for c, v in sweeps.items():
        r, y = min(v, key=lambda ry: abs(math.log(ry[0]["kbps"] / target)))
        label = f"{c} ({r['kbps-target']} kbps setting)"
        spec = spectrogram_png(M.log_mel_db(y, sr), y.shape[1] / sr, label, vmin, vmax)
        stats = ", ".join(
            f"{k} {r[k]:.2f}{u}"
            for k, u in (("pesq-wb", ""), ("visqol", ""), ("si-sdr", " dB"))
            if isinstance(r.get(k), float) and math.isfinite(r[k])
        )
        clips.append(Clip(label, wav_bytes(y, sr), r["kbps"], spec, stats))
    first = pts[0][0]["file"]
    caption = (
        f"{first}, first {secs:.1f} s, decoded and aligned to the input. Each codec plays the rate point "
        f"of its sweep nearest to {target:.1f} kbps; its actual rate (whole file) is given. Log-mel "
        f"spectrograms (80 bands, dB, one colour scale: the original's maximum to 80 dB below)."
    )
    return clips, caption


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
            if n.startswith("ncodec"):  # smoke test: a codec under development may import but not work yet
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
            for i, f in enumerate(files):
                tasks.append((n, kw, str(f), k, max_seconds, i == 0))
    results = map_tasks(_task_clip, tasks, jobs, desc="audio", show=show_progress)
    rows = [r for r, _ in results]
    write_csv(out / "per_file.csv", rows)
    settings = {
        "codecs": [n for n, _ in ok],
        "limit": limit,
        "max_seconds": max_seconds,
        "rate_points_kbps": {n: list(rate_points.get(n, c.rates)) for n, c in ok},
    }
    settings["visqol"] = (
        "visqol-python, speech mode (16 kHz, polynomial mapper) at <= 16 kHz, else audio mode (48 kHz)"
        if M.visqol_available()
        else "not installed (optional: pip install visqol-python)"
    )
    sha = dataset_hash(files)
    meta = base_meta(files, sha, settings)
    curves = []
    for _n, c in ok:
        res = aggregate([r for r in rows if r["codec"] == c.name], "kbps-target", _metrics())
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
    x0, sr0 = load_audio(str(files[0]))
    if max_seconds:
        x0 = x0[:, : int(max_seconds * sr0)]
    clips, clip_caption = matched_clips(x0[:2], sr0, results, [c.name for _n, c in ok])
    fin = finalize(
        out,
        "audio",
        curves,
        anchors,
        anc,
        "kbps",
        ("pesq-wb", "si-sdr", "stoi", *(("visqol",) if M.visqol_available() else ())),
        [
            ("rd_pesq.png", "kbps", "pesq-wb"),
            ("rd_sisdr.png", "kbps", "si-sdr"),
            ("rd_stoi.png", "kbps", "stoi"),
            ("rd_mel.png", "kbps", "mel-distance"),
            *([("rd_visqol.png", "kbps", "visqol")] if M.visqol_available() else []),
        ],
        meta,
        quiet=quiet,
        dataset=dataset_info(inputs, files, "files", sha, max_seconds=max_seconds),
        clips=clips,
        clip_caption=clip_caption,
    )
    fin.update(curves=curves, rows=rows)
    return fin
