"""Training of ``audio-pd-v1``'s decoder on cached latents (the encoder and entropy model frozen).

Two steps, both resumable, everything under ``runs/audio_pd`` (git-ignored)::

    python -m ncodec.models.train_audio_pd cache            # latents of the training corpus
    python -m ncodec.models.train_audio_pd train --minutes 20 --run main   # repeat to resume
    python -m ncodec.models.train_audio_pd export --run main --out models/weights/audio-pd-v1.safetensors

``cache`` runs ``audio-hp-v1``'s analysis, gains and exact integer hyperprior over every signal of
``../shared/data/audio/{speech,music}/train`` (never a test split; music as mid and side) at the
nominal rates :data:`CACHE_KBPS`, and stores per rate the residual symbols (int16), table indexes
(uint8) and means (int32, in 2**-8 units) frame by frame, with the 16 kHz waveforms. Every 20th
signal is held out as a validation set (still training data, never test data).

``train`` fits the synthesis (``g_s``, post-filter, inverse filterbank, inverse gains and the new
enhancer, :mod:`ncodec.models.audio_pd`) to random 1.28 s windows of the cached latents with the
audio-hp-v1 loss (multi-resolution STFT + log-mel + 0.5 x relative L1), one thread.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch

from ncodec.models.train_audio import DEFAULT_DATA, list_audio, load_corpus

ROOT = Path("runs/audio_pd")
CACHE_KBPS = (5.0, 7.0, 9.5, 13.0, 19.0, 32.0)
LEVEL_WEIGHTS = (0.2, 0.2, 0.2, 0.2, 0.12, 0.08)
WINDOW = 128  # frames per training window (1.28 s)
CROP = 2  # frames at each window edge left out of the loss
ENH_C, ENH_DIL = 192, (1, 2, 4)
BASE = "audio-hp-v1"


def cache(data: Path = DEFAULT_DATA, root: Path = ROOT) -> None:
    from ncodec.models.audio_model import FRAME, HYPER
    from ncodec.models.int_hyper import OUT_FRAC_BITS
    from ncodec.models.registry import load_model

    torch.set_num_threads(1)
    out = root / "cache"
    out.mkdir(parents=True, exist_ok=True)
    if (out / "index.json").exists():
        print(f"{out}: cache exists")
        return
    m = load_model(BASE)
    signals = load_corpus(list_audio(data), root / "corpus16k.npz")
    unit = FRAME * HYPER
    waves, frames = [], []
    per = {k: ([], [], []) for k in range(len(CACHE_KBPS))}
    t0 = time.time()
    for i, s in enumerate(signals):
        n = -(-s.size // unit) * unit
        x = np.zeros(n, np.float32)
        x[: s.size] = s
        with torch.no_grad():
            y = m.analyze(torch.from_numpy(x)[None, None])
            for k, kbps in enumerate(CACHE_KBPS):
                ys, z_hat = m.scale(y, kbps)
                mu, idx = m.hyper(z_hat, tuple(ys.shape))
                sym = torch.round(ys.double() - mu).clamp(-32767, 32767)
                per[k][0].append(sym[0].T.numpy().astype(np.int16))
                per[k][1].append(idx[0].T.numpy().astype(np.uint8))
                per[k][2].append(torch.round(mu[0].T * (1 << OUT_FRAC_BITS)).numpy().astype(np.int32))
        waves.append(x)
        frames.append(n // FRAME)
        if i % 50 == 0:
            print(f"{i}/{len(signals)} signals, {time.time() - t0:.0f} s", flush=True)
    np.save(out / "wave.npy", np.concatenate(waves))
    for k in per:
        for j, name in enumerate(("sym", "idx", "mu")):
            np.save(out / f"l{k}_{name}.npy", np.concatenate(per[k][j]))
    (out / "index.json").write_text(
        json.dumps({"frames": frames, "kbps": list(CACHE_KBPS), "base": BASE, "digest": m.digest[:16].hex()})
    )
    print(f"cached {sum(frames)} frames x {len(CACHE_KBPS)} rates in {time.time() - t0:.0f} s")


def pick_level(rng: random.Random, i: int, levels: list[int] | None, n_levels: int) -> int:
    """Batch item ``i``'s cached rate level: drawn by ``LEVEL_WEIGHTS``, or the given ``levels``
    in turn (validation batches)."""
    if levels is not None:
        return levels[i % len(levels)]
    k = int(np.searchsorted(np.cumsum(LEVEL_WEIGHTS), rng.random() * sum(LEVEL_WEIGHTS)))
    return min(k, n_levels - 1)


def pick_signal(rng: random.Random, cum: np.ndarray, ids: np.ndarray) -> int:
    """A signal of ``ids`` drawn with the probabilities whose cumulative sums are ``cum``."""
    return int(ids[min(int(np.searchsorted(cum, rng.random())), len(ids) - 1)])


class Cache:
    """The cached latents, memory-mapped; windows of ``WINDOW`` frames."""

    def __init__(self, root: Path = ROOT):
        from ncodec.models.audio import rate_to_level

        d = root / "cache"
        meta = json.loads((d / "index.json").read_text())
        self.kbps = meta["kbps"]
        self.q = [rate_to_level(k) for k in self.kbps]
        self.frames = np.asarray(meta["frames"])
        self.start = np.concatenate([[0], np.cumsum(self.frames)[:-1]])
        self.wave = np.load(d / "wave.npy", mmap_mode="r")
        self.lat = [
            tuple(np.load(d / f"l{k}_{n}.npy", mmap_mode="r") for n in ("sym", "idx", "mu"))
            for k in range(len(self.kbps))
        ]
        ids = np.arange(len(self.frames))
        ok = self.frames >= WINDOW
        self.val = ids[ok & (ids % 20 == 0)]
        self.train = ids[ok & (ids % 20 != 0)]

    def window(self, sig: int, k: int, a: int) -> tuple[np.ndarray, ...]:
        from ncodec.models.audio import FRAME

        f0 = self.start[sig] + a
        sym, idx, mu = (v[f0 : f0 + WINDOW] for v in self.lat[k])
        x = self.wave[f0 * FRAME : (f0 + WINDOW) * FRAME]
        mu = mu.astype(np.float64) / 256.0
        ys = np.where(sym == 0, 0.0, sym + mu)
        return ys.T, idx.T, mu.T, x

    def batch(self, rng: random.Random, size: int, ids: np.ndarray, levels=None) -> dict[str, torch.Tensor]:
        w = self.frames[ids].astype(np.float64)
        cum = np.cumsum(w / w.sum())
        out = {"ys": [], "idx": [], "mu": [], "x": [], "q": []}
        for i in range(size):
            k = pick_level(rng, i, levels, len(self.kbps))
            for _ in range(20):
                sig = pick_signal(rng, cum, ids)
                a = rng.randrange(self.frames[sig] - WINDOW + 1)
                ys, idx, mu, x = self.window(sig, k, a)
                if np.sqrt(np.mean(np.square(x, dtype=np.float64))) > 3e-3:
                    break
            for n, v in zip(("ys", "idx", "mu", "x"), (ys, idx, mu, x), strict=True):
                out[n].append(np.ascontiguousarray(v))
            out["q"].append(self.q[k])
        t = {n: torch.from_numpy(np.stack(out[n])).float() for n in ("ys", "mu")}
        t["idx"] = torch.from_numpy(np.stack(out["idx"]).astype(np.int64))
        t["x"] = torch.from_numpy(np.stack(out["x"]).astype(np.float32))[:, None]
        t["q"] = torch.tensor(out["q"], dtype=torch.float32)
        return t


TRAINED = ("g_s.", "post.", "ifb.", "log_inv_gain", "enh.")


def build(enh_c: int = ENH_C, enh_dil=ENH_DIL):
    """The training model: an AudioPDModel with audio-hp-v1's weights and a fresh enhancer."""
    from ncodec.models.audio_pd import AudioPDModel
    from ncodec.models.registry import load_model

    base = load_model(BASE)
    config = dict(base.config, enh_c=enh_c, enh_dil=list(enh_dil))
    model = AudioPDModel(config, "audio-pd-train")
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("enh.") for k in missing), (missing, unexpected)
    for n, p in model.named_parameters():
        p.requires_grad_(n.startswith(TRAINED))
    return base, model


def loss_on(model, b: dict[str, torch.Tensor], side: bool = True, l1: float = 0.5) -> dict[str, torch.Tensor]:
    """audio-hp-v1's loss on the window (edges cropped), with the time-domain L1 weighted ``l1``."""
    from ncodec.models.audio import FRAME, spectral_loss
    from ncodec.models.audio_pd import inv_gain_at, side_features

    inv = inv_gain_at(model.log_inv_gain, b["q"])
    f = model.g_s(b["ys"] * inv)
    f = f + model.post(f)
    s = side_features(b["ys"], b["idx"], b["mu"], inv, b["q"])
    if not side:
        s = torch.cat([torch.zeros_like(s[:, :-1]), s[:, -1:]], dim=1)
    f = model.enh(f, s)
    x_hat = model.ifb(f)
    c = CROP * FRAME
    a, x = x_hat[..., c:-c], b["x"][..., c:-c]
    d = spectral_loss(a, x)
    dist = d["dist"]
    if l1 != 0.5:  # spectral_loss holds 0.5 x the relative L1
        rel = (a - x).abs().mean(dim=(1, 2)) / x.abs().mean(dim=(1, 2)).clamp_min(1e-3)
        dist = dist + (l1 - 0.5) * rel
    return {"loss": dist.mean(), "mel": d["mel"].mean()}


def train(
    run: str,
    minutes: float,
    total_steps: int,
    lr: float = 5e-4,
    batch: int = 8,
    side: bool = True,
    deadline: float | None = None,
    l1: float = 0.5,
) -> None:
    """Trains ``run`` for ``minutes`` (resuming its checkpoint). The learning rate decays (cosine)
    over the last 30 % of ``total_steps`` or of the time until ``deadline`` (Unix time), whichever
    comes first."""
    torch.set_num_threads(1)
    cache_ = Cache()
    out = ROOT / run
    out.mkdir(parents=True, exist_ok=True)
    _, model = build()
    params_new = [p for n, p in model.named_parameters() if n.startswith("enh.")]
    params_old = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("enh.")]
    opt = torch.optim.Adam([{"params": params_new, "lr": lr}, {"params": params_old, "lr": lr / 5}])
    ck = out / "ckpt.pt"
    step, t_first = 0, time.time()
    log = out / "log.jsonl"
    if ck.exists():
        st = torch.load(ck, weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step, t_first = st["step"], st.get("t0", t_first)
        print(f"resumed at step {step}")
    rng = random.Random(1000 + step)
    vrng = random.Random(7)
    val = [cache_.batch(vrng, 8, cache_.val, levels=[0, 1, 2, 3]) for _ in range(4)]

    def validate() -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            r = [loss_on(model, v, side, l1) for v in val]
        model.train()
        return {k: float(np.mean([float(x[k]) for x in r])) for k in ("loss", "mel")}

    if step == 0:
        v = validate()
        print(f"val at start: {v}", flush=True)
        with log.open("a") as f:
            f.write(json.dumps({"step": 0, "val": v}) + "\n")
    t_end = time.time() + minutes * 60
    acc, n_acc, t0 = {"loss": 0.0, "mel": 0.0}, 0, time.time()
    model.train()
    while time.time() < t_end and step < total_steps and not (deadline and time.time() > deadline):
        frac = step / total_steps
        if deadline:
            frac = max(frac, (time.time() - t_first) / max(deadline - t_first, 1.0))
        scale = 1.0 if frac < 0.7 else 0.5 * (1 + math.cos(math.pi * (frac - 0.7) / 0.3))
        opt.param_groups[0]["lr"] = lr * scale
        opt.param_groups[1]["lr"] = lr / 5 * scale
        b = cache_.batch(rng, batch, cache_.train)
        r = loss_on(model, b, side, l1)
        opt.zero_grad(set_to_none=True)
        r["loss"].backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 5.0)
        opt.step()
        step += 1
        acc["loss"] += float(r["loss"])
        acc["mel"] += float(r["mel"])
        n_acc += 1
        if step % 50 == 0:
            rec = {"step": step, **{k: round(v / n_acc, 4) for k, v in acc.items()}}
            rec["s_per_step"] = round((time.time() - t0) / n_acc, 3)
            if step % 500 == 0:
                rec["val"] = validate()
            print(json.dumps(rec), flush=True)
            with log.open("a") as f:
                f.write(json.dumps(rec) + "\n")
            acc, n_acc, t0 = {"loss": 0.0, "mel": 0.0}, 0, time.time()
        if step % 250 == 0:
            _save(ck, model, opt, step, t_first)
    _save(ck, model, opt, step, t_first)
    v = validate()
    print(f"stopped at step {step}; val {v}", flush=True)
    with log.open("a") as f:
        f.write(json.dumps({"step": step, "val": v, "end": True}) + "\n")


def _save(ck: Path, model, opt, step: int, t0: float) -> None:
    tmp = ck.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "t0": t0}, tmp)
    tmp.replace(ck)


def export_run(run: str, out: Path, model_id: str = "audio-pd-v1") -> Path:
    from ncodec.models.audio_pd import export

    st = torch.load(ROOT / run / "ckpt.pt", weights_only=False)
    base, model = build()
    model.load_state_dict(st["model"])
    synth = {k: v for k, v in model.state_dict().items() if k.startswith(TRAINED)}
    card = {"steps": st["step"], "base": BASE, "cache_kbps": list(CACHE_KBPS)}
    export(base, synth, model_id, ENH_C, ENH_DIL).save(Path(out), card=card)
    return Path(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ncodec.models.train_audio_pd", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cache")
    c.add_argument("--data", type=Path, default=DEFAULT_DATA)
    t = sub.add_parser("train")
    t.add_argument("--run", default="main")
    t.add_argument("--minutes", type=float, default=20.0)
    t.add_argument("--steps", type=int, default=12000, help="planned total (sets the lr decay)")
    t.add_argument("--lr", type=float, default=5e-4)
    t.add_argument("--deadline", type=float, default=None, help="Unix time by which the lr has decayed")
    t.add_argument("--l1", type=float, default=0.5, help="weight of the relative time-domain L1")
    t.add_argument("--no-side", action="store_true", help="ablation: the enhancer without side info")
    e = sub.add_parser("export")
    e.add_argument("--run", default="main")
    e.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    if a.cmd == "cache":
        cache(a.data)
    elif a.cmd == "train":
        train(a.run, a.minutes, a.steps, a.lr, side=not a.no_side, deadline=a.deadline, l1=a.l1)
    else:
        print(export_run(a.run, a.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
