"""Training of the variable-rate audio codec (``ncodec train audio``).

Random 1.28 s segments at 16 kHz from ``../shared/data/audio/speech/train`` and
``../shared/data/audio/music/train`` (never the ``test`` splits; music is used as mid and side
signals, as the codec codes stereo), a rate-distortion loss ``spectral distortion + mu(q) * kbit/s``
at a random rate level per segment, where each level's ``mu`` is adapted so that the level lands on
its nominal bitrate, and the common loop of :mod:`ncodec.models.train_core` (Adam, resumable
safetensors checkpoints, warm start, data-parallel under ``torchrun``). Runs on CPU or CUDA.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ncodec.models import train_core as core

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


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """The first audio stream of a file, decoded by PyAV (FFmpeg): float32 ``[channels, samples]``
    in about ``[-1, 1]`` and the rate in Hz. Raises on a file without audio."""
    import av

    with av.open(str(path)) as box:
        stream = box.streams.audio[0]
        planar = av.AudioResampler(format="fltp", layout=stream.layout, rate=stream.rate)
        frames = [out for fr in box.decode(stream) for out in planar.resample(fr)]
        frames += planar.resample(None)
        if not frames:
            raise ValueError("no audio samples")
        x = np.concatenate([fr.to_ndarray() for fr in frames], axis=1)
        return np.ascontiguousarray(x, dtype=np.float32), int(stream.rate)


def load_corpus(files: list[Path], cache: Path | None = None) -> list[np.ndarray]:
    """Every file at 16 kHz as float32 mono signals (stereo files give mid and side)."""
    if cache is not None and cache.exists():
        with np.load(cache) as z:
            sigs = [z[k] for k in sorted(z.files, key=int)]
        # compact corpora (compact_corpus) hold int16
        return [a.astype(np.float32) / 32768 if a.dtype == np.int16 else a for a in sigs]
    import torchaudio.functional as AF

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


def adapt_mu(model, kbps: torch.Tensor, q: torch.Tensor, dist: core.Dist, step: float = 0.05) -> torch.Tensor:
    """Dual ascent on the per-level rate multipliers ``model.log_mu``: each level moves towards its
    nominal bitrate by the log rate error of the segments near it (``kbps``, ``q``: ``[B]``),
    averaged over the ranks. Returns the absolute log rate errors ``[B]``."""
    levels = model.levels
    with torch.no_grad():
        err = torch.log(kbps.detach().double() / model.target_kbps(q).double())
        qc = q.clamp(0, levels - 1).double()
        lo = qc.floor().long().clamp(max=levels - 2)
        t = qc - lo
        delta = torch.zeros(levels, dtype=torch.float64, device=q.device)
        delta.index_add_(0, lo, (1 - t) * err)
        delta.index_add_(0, lo + 1, t * err)
        dist.average_([delta])  # one update on every rank keeps log_mu identical
        if step:
            model.log_mu.add_(step * delta).clamp_(math.log(1e-4), math.log(10.0))
    return err.abs()


@dataclass
class AudioTrainer(core.Trainer):
    """An :class:`~ncodec.models.audio.AudioHyperprior` (``c``, ``m``, ``n`` channels) on random
    segments of the audio under ``data`` (or of a compact ``corpus``, :func:`compact_corpus`), at
    stratified random rate levels whose multipliers adapt towards their nominal bitrates. After a
    warm start the prior trains alone with the rest and the multipliers frozen, so its initially
    poor rate estimate disturbs neither. Train it with :func:`~ncodec.models.train_core.fit`."""

    data: Path = DEFAULT_DATA
    c: int = 192
    m: int = 160
    n: int = 32
    corpus: Path | None = None
    gain_lr_scale = 10.0  # not a field: the class-wide rate factor of the gains

    def build(self) -> torch.nn.Module:
        from ncodec.models.audio import AudioHyperprior

        return AudioHyperprior(self.c, self.m, self.n)

    def sizes(self) -> dict:
        return {"c": self.c, "m": self.m, "n": self.n}

    def prepare(self, out_dir: Path, dist: core.Dist) -> dict:
        with dist.main_first():  # rank 0 writes the decoded corpus' cache, the others read it
            self.signals = _signals(self.data, self.corpus, out_dir / "corpus16k.npz")
        return {"data": str(self.corpus or self.data)}

    def batches(self, seed: int, size: int) -> Iterator[torch.Tensor]:
        """``[size, 1, SEGMENT]`` tensors."""
        sampler = SegmentSampler(self.signals, seed=seed)
        return iter(lambda: sampler.batch(size), None)

    def step(self, run: core.Run, x: torch.Tensor, s: core.Step) -> dict[str, torch.Tensor]:
        from ncodec.models.audio import rd_loss

        model, b = run.model, x.shape[0]
        # stratified levels, so that every level is seen in every batch
        q = ((torch.arange(b, device=x.device) + torch.rand(b, device=x.device)) / b) * (model.levels - 1)
        losses = rd_loss(model, model(x, q), x, q)
        aux = run.opt.step(model, losses["loss"], s.warming)
        err = adapt_mu(model, losses["kbps"], q, run.dist, 0.0 if s.warming else 0.05)
        out = {k: losses[k] for k in ("loss", "dist", "mel")}
        return {**out, "kbps": losses["kbps"].mean(), "rate_err": err.mean(), "aux": aux}

    def warm(self, model: torch.nn.Module, weights: Path) -> int:
        return warm_start(model, weights)

    def log_extra(self, run: core.Run) -> dict:
        return {"mu": [round(float(v), 3) for v in run.model.log_mu.exp()]}


def _signals(data: Path, corpus: Path | None, cache: Path) -> list[np.ndarray]:
    """The training signals: a compact corpus file if given, else ``data`` decoded (and cached)."""
    if corpus is None:
        return load_corpus(list_audio(data), cache)
    if not Path(corpus).exists():
        raise FileNotFoundError(f"{corpus}: no such corpus file")
    return load_corpus([], Path(corpus))


def warm_start(model, weights: Path) -> int:
    """:func:`ncodec.models.train_core.warm_start` (float transforms and gains, hyper-synthesis
    from its integer twin) plus the shipped per-level rate multipliers; returns how many tensors
    were set."""
    from safetensors import safe_open

    n = core.warm_start(model, weights, kind="audio-hyperprior")
    with safe_open(str(weights), "pt") as f:
        config = json.loads((f.metadata() or {}).get("config", "{}"))
    if len(config.get("mu", [])) == model.levels:
        model.log_mu.copy_(torch.tensor(config["mu"], dtype=torch.float64).log())
    return n


def add_train_args(p) -> None:
    """Adds the options of ``ncodec train audio`` to an :class:`argparse.ArgumentParser`."""
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with speech/train and music/train")
    core.add_run_args(p, out=Path("runs/audio"), steps=20000, lr=3e-4, log_every=25, ckpt_every=100)
    p.add_argument("--corpus", type=Path, default=None, help="compact corpus (.npz) instead of --data")
    p.add_argument(
        "--compact-to", type=Path, default=None, help="only write a compact corpus of --data here (.npz)"
    )
    p.add_argument("--minutes", type=float, default=15.0, help="length of the compact corpus")
    p.add_argument("--c", type=int, default=192, help="channels of the decoder post-filter (0: none)")
    p.add_argument("--m", type=int, default=160, help="latent channels")
    p.add_argument("--n", type=int, default=32, help="hyper-latent channels")


def run_train(args) -> int:
    """Runs ``ncodec train audio`` (or only ``--compact-to``); returns the exit status."""
    if args.compact_to is not None:
        size = compact_corpus(load_corpus(list_audio(args.data), None), args.compact_to, args.minutes)
        print(f"{args.compact_to}: {size:.1f} MiB")
        return 0
    trainer = AudioTrainer(args.data, c=args.c, m=args.m, n=args.n, corpus=args.corpus)
    return core.fit_from_args(trainer, args)


def main(argv: list[str] | None = None) -> int:
    """``ncodec train audio`` on its own: parses ``argv`` and runs it; returns the exit status."""
    return core.cli_main(argv, "ncodec train audio", __doc__, add_train_args, run_train)


def export_weights(
    ckpt: Path, out: Path, data: Path = DEFAULT_DATA, model_id: str = "audio-hp-v1", card: dict | None = None
) -> Path:
    """Exports a checkpoint to a shipped weights file (integer hyper-synthesis and tables included),
    calibrating integer activations on 16 training segments (never test data)."""
    from ncodec.models.audio_model import export

    model = core.load_trained(ckpt, lambda meta: AudioTrainer(c=meta["c"], m=meta["m"], n=meta["n"]).build())
    signals = load_corpus(list_audio(data), Path(ckpt).parent / "corpus16k.npz")
    calib = SegmentSampler(signals, seed=1234).batch(16)
    export(model, calib, model_id).save(Path(out), card=card)
    return Path(out)


if __name__ == "__main__":
    raise SystemExit(main())
