"""Training of the variable-rate audio codec (``ncodec train audio``).

Random 1.28 s segments at 16 kHz from ``../shared/data/audio/speech/train`` and
``../shared/data/audio/music/train`` (never the ``test`` splits; music is used as mid and side
signals, as the codec codes stereo), a rate-distortion loss ``spectral distortion + mu(q) * kbit/s``
at a random rate level per segment, where each level's ``mu`` is adapted so that the level lands on
its nominal bitrate, Adam, and resumable safetensors checkpoints (see :mod:`ncodec.models.train`).
Runs on CPU or CUDA.
"""

from __future__ import annotations

import json
import math
import platform
import random
from pathlib import Path

import numpy as np
import torch

from ncodec.models.train import (
    RDOptimizers,
    RunClock,
    load_checkpoint,
    log_record,
    save_checkpoint,
    scheduled_lr,
    start_run,
)

AUDIO_EXTS = {".wav", ".flac", ".ogg", ".mp3", ".opus", ".m4a"}
SEGMENT = 20480  # 1.28 s at 16 kHz, a multiple of FRAME * HYPER
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "audio"


def list_audio(root: Path) -> list[Path]:
    """Audio files under ``root/{speech,music}/train`` (or ``root`` itself), sorted; refuses test data."""
    root = Path(root)
    subs = [root / "speech" / "train", root / "music" / "train"]
    roots = [s for s in subs if s.is_dir()] or [root]
    files = sorted(p for r in roots for p in r.rglob("*") if p.suffix.lower() in AUDIO_EXTS)
    if any("test" in p.relative_to(root).parts for p in files):
        raise ValueError("refusing to train on a test split")
    return files


def load_corpus(files: list[Path], cache: Path | None = None) -> list[np.ndarray]:
    """Every file at 16 kHz as float32 mono signals (stereo files give mid and side)."""
    if cache is not None and cache.exists():
        with np.load(cache) as z:
            sigs = [z[k] for k in sorted(z.files, key=int)]
        # compact corpora (compact_corpus) hold int16
        return [a.astype(np.float32) / 32768 if a.dtype == np.int16 else a for a in sigs]
    import torchaudio.functional as AF

    from ncodec.codec.audio_io import read_audio
    from ncodec.models.audio import SAMPLE_RATE

    out = []
    for f in files:
        try:
            x, sr = read_audio(f)
        except Exception as e:  # noqa: BLE001 - skip unreadable training files
            print(f"skipping {f}: {e}", flush=True)
            continue
        if x.shape[0] >= 2:
            x = np.stack([(x[0] + x[1]) / 2, (x[0] - x[1]) / 2])
        t = torch.from_numpy(np.ascontiguousarray(x[:2]))
        if sr != SAMPLE_RATE:
            t = AF.resample(t, sr, SAMPLE_RATE)
        for ch in t.numpy():
            if ch.size >= SEGMENT and np.abs(ch).max() > 1e-3:
                out.append(ch.astype(np.float32))
    if cache is not None:
        np.savez(cache, **{str(i): a for i, a in enumerate(out)})
    return out


def compact_corpus(signals: list[np.ndarray], out: Path, minutes: float = 15.0, seed: int = 0) -> float:
    """Writes a subset of the corpus small enough to carry to a GPU run: one excerpt from every
    signal (in random order, until ``minutes`` are taken), as int16 in a compressed npz that
    :func:`load_corpus` reads back (``--corpus``). Returns the MiB written."""
    rng = random.Random(seed)
    order = list(range(len(signals)))
    rng.shuffle(order)
    budget = int(minutes * 60 * 16000)
    per = max(2 * SEGMENT, min(30 * 16000, budget // max(len(signals), 1)))
    parts, total = [], 0
    for i in order:
        s = signals[i]
        n = min(per, s.size, budget - total)
        if n < SEGMENT:
            continue
        o = rng.randrange(s.size - n + 1)
        parts.append(np.round(np.clip(s[o : o + n], -1, 32767 / 32768) * 32768).astype(np.int16))
        total += n
        if total >= budget:
            break
    np.savez_compressed(out, **{str(i): a for i, a in enumerate(parts)})
    return Path(out).stat().st_size / 2**20


class SegmentSampler:
    """Random segments, skipping near-silence, with a random gain of -12..+3 dB (clipped to +-1)."""

    def __init__(self, signals: list[np.ndarray], seed: int = 0):
        if not signals:
            raise ValueError("no training audio found")
        self.signals = signals
        self.rng = random.Random(seed)
        w = np.array([s.size for s in signals], dtype=np.float64)
        self.cum = np.cumsum(w / w.sum())

    def batch(self, size: int) -> torch.Tensor:
        out = np.empty((size, 1, SEGMENT), dtype=np.float32)
        for i in range(size):
            for _ in range(20):
                s = self.signals[
                    min(int(np.searchsorted(self.cum, self.rng.random())), len(self.signals) - 1)
                ]
                o = self.rng.randrange(s.size - SEGMENT + 1)
                seg = s[o : o + SEGMENT]
                if np.sqrt(np.mean(seg * seg)) > 3e-3:
                    break
            g = 10 ** (self.rng.uniform(-12, 3) / 20)
            out[i, 0] = np.clip(seg * g, -1, 1)
        return torch.from_numpy(out)


def train(
    data: Path,
    out_dir: Path,
    *,
    steps: int,
    batch: int = 8,
    lr: float = 3e-4,
    c: int = 192,
    m: int = 160,
    n: int = 32,
    device: str = "cpu",
    seconds: float | None = None,
    budget: float | None = None,
    corpus: Path | None = None,
    init: Path | None = None,
    warmup: int = 600,
    log_every: int = 25,
    ckpt_every: int = 100,
    seed: int = 0,
) -> Path:
    """Trains (or resumes) until ``steps`` total steps or ``seconds`` of wall time; returns the
    checkpoint path (``out_dir/checkpoint.safetensors``). ``budget``: planned total seconds across
    resumed runs (learning-rate decay and stop, as for images); ``corpus``: a compact corpus
    (:func:`compact_corpus`) used instead of decoding ``data``. ``init``: a shipped weights file whose float
    transforms, gains and hyper-synthesis start a new run (see :func:`warm_start`); its first
    ``warmup`` steps train only the hyper-latent prior (learned afresh) with the rest frozen, so its
    initially poor rate estimate does not disturb the transforms or the rate multipliers."""
    from ncodec.models.audio import AudioHyperprior, rd_loss

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = AudioHyperprior(c, m, n).to(device)
    opt = RDOptimizers(model, lr, gain_lr_scale=10.0)
    ckpt = out_dir / "checkpoint.safetensors"
    meta = {"step": 0, "seconds": 0.0, "c": c, "m": m, "n": n, "batch": batch, "history": []}
    meta = start_run(model, opt, ckpt, meta, init, warmup, warm_start)
    if corpus is not None:
        if not Path(corpus).exists():
            raise FileNotFoundError(f"{corpus}: no such corpus file")
        signals = load_corpus([], Path(corpus))
    else:
        signals = load_corpus(list_audio(data), out_dir / "corpus16k.npz")
    sampler = SegmentSampler(signals, seed=seed + meta["step"])
    meta["data"] = str(corpus or data)
    meta["hardware"] = f"{platform.machine()} {device} {torch.get_num_threads()} threads"
    clock = RunClock(steps, seconds, budget, float(meta.get("seconds", 0.0)))
    acc: dict[str, float] = {}
    levels = model.levels
    while clock.running(meta["step"]):
        step = meta["step"]
        frac = clock.fraction(step)
        cur_lr = scheduled_lr(lr, frac, step, meta.get("warmup_until"))
        opt.set_lr(cur_lr)
        x = sampler.batch(batch).to(device)
        # stratified levels so every level is seen in every batch
        q = ((torch.arange(batch, device=device) + torch.rand(batch, device=device)) / batch) * (levels - 1)
        out = model(x, q)
        losses = rd_loss(model, out, x, q)
        warming = step < meta.get("warmup_until", 0)
        aux = opt.step(model, losses["loss"], warming)
        with torch.no_grad():  # dual ascent: push each level towards its nominal bitrate
            err = torch.log(losses["kbps"].detach().double() / model.target_kbps(q).double())
            qc = q.clamp(0, levels - 1).double()
            lo = qc.floor().long().clamp(max=levels - 2)
            t = qc - lo
            delta = torch.zeros(levels, dtype=torch.float64, device=device)
            delta.index_add_(0, lo, (1 - t) * err)
            delta.index_add_(0, lo + 1, t * err)
            if not warming:
                model.log_mu.add_(0.05 * delta).clamp_(math.log(1e-4), math.log(10.0))
        for k in ("loss", "dist", "mel"):
            acc[k] = acc.get(k, 0.0) + float(losses[k].detach())
        acc["kbps"] = acc.get("kbps", 0.0) + float(losses["kbps"].detach().mean())
        acc["rate_err"] = acc.get("rate_err", 0.0) + float(err.abs().mean())
        meta["step"] = step + 1
        if meta["step"] % log_every == 0:
            log_record(
                meta,
                acc,
                log_every,
                step=meta["step"],
                lr=cur_lr,
                aux=round(float(aux), 2),
                mu=[round(float(v), 3) for v in model.log_mu.exp()],
                elapsed=round(meta["seconds"] + clock.now(), 1),
            )
            acc = {}
        if meta["step"] % ckpt_every == 0:
            save_checkpoint(ckpt, model, opt.main, dict(meta, seconds=meta["seconds"] + clock.now()))
    meta["seconds"] += clock.now()
    save_checkpoint(ckpt, model, opt.main, meta)
    return ckpt


def warm_start(model, weights: Path) -> int:
    """:func:`ncodec.models.train.warm_start` (float transforms and gains, hyper-synthesis from its
    integer twin) plus the shipped per-level rate multipliers; returns how many tensors were set."""
    from safetensors import safe_open

    from ncodec.models.train import warm_start as warm_start_floats

    n = warm_start_floats(model, weights, kind="audio-hyperprior")
    with safe_open(str(weights), "pt") as f:
        config = json.loads((f.metadata() or {}).get("config", "{}"))
    if len(config.get("mu", [])) == model.levels:
        model.log_mu.copy_(torch.tensor(config["mu"], dtype=torch.float64).log())
    return n


def add_train_args(p) -> None:
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with speech/train and music/train")
    p.add_argument("--out", type=Path, default=Path("runs/audio"), help="checkpoint folder")
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--seconds", type=float, default=None, help="stop after this much wall time")
    p.add_argument(
        "--budget", type=float, default=None, help="planned total seconds across resumed runs (LR decay)"
    )
    p.add_argument("--corpus", type=Path, default=None, help="compact corpus (.npz) instead of --data")
    p.add_argument(
        "--compact-to", type=Path, default=None, help="only write a compact corpus of --data here (.npz)"
    )
    p.add_argument("--minutes", type=float, default=15.0, help="length of the compact corpus")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--c", type=int, default=192, help="channels of the decoder post-filter (0: none)")
    p.add_argument("--m", type=int, default=160, help="latent channels")
    p.add_argument("--n", type=int, default=32, help="hyper-latent channels")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--init", type=Path, default=None, help="start from a shipped weights file's transforms")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")


def run_train(args) -> int:
    if args.compact_to is not None:
        signals = load_corpus(list_audio(args.data), None)
        size = compact_corpus(signals, args.compact_to, args.minutes)
        print(f"{args.compact_to}: {size:.1f} MiB")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    ckpt = train(
        args.data,
        args.out,
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        c=args.c,
        m=args.m,
        n=args.n,
        device=args.device,
        seconds=args.seconds,
        budget=args.budget,
        corpus=args.corpus,
        init=args.init,
    )
    print(f"checkpoint: {ckpt}")
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="ncodec train audio", description=__doc__)
    add_train_args(p)
    return run_train(p.parse_args(argv))


def export_weights(
    ckpt: Path, out: Path, data: Path = DEFAULT_DATA, model_id: str = "audio-hp-v1", card: dict | None = None
) -> Path:
    """Exports a checkpoint to a shipped weights file (integer hyper-synthesis and tables included),
    calibrating integer activations on 16 training segments (never test data)."""
    from safetensors import safe_open

    from ncodec.models.audio import AudioHyperprior
    from ncodec.models.audio_model import export

    with safe_open(str(ckpt), "pt") as f:
        meta = json.loads(f.metadata()["meta"])
    model = AudioHyperprior(meta["c"], meta["m"], meta["n"])
    load_checkpoint(Path(ckpt), model, None)
    signals = load_corpus(list_audio(data), Path(ckpt).parent / "corpus16k.npz")
    calib = SegmentSampler(signals, seed=1234).batch(16)
    exported = export(model, calib, model_id)
    exported.save(Path(out), card=card)
    return Path(out)


if __name__ == "__main__":
    raise SystemExit(main())
