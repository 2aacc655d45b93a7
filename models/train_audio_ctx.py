"""Rate-only training of ``audio-ctx-v1``'s context networks on cached latents.

The symbols ``q`` and the hyperprior's table indexes of audio-hp-v1 (= audio-pd-v1) over the
training corpus are those ``python -m ncodec.models.train_audio_pd cache`` stores under
``runs/audio_pd/cache`` (git-ignored; every 20th signal held out). Everything here is under
``runs/audio_ctx`` (git-ignored), resumable, one thread::

    python -m ncodec.models.train_audio_ctx train --run main --minutes 20    # repeat to resume
    python -m ncodec.models.train_audio_ctx eval --run main                  # held-out bits per rate
    python -m ncodec.models.train_audio_ctx export --run main --out models/weights/audio-ctx-v1.safetensors

The loss is the code length of the symbols alone (bits per latent); the decoder is not involved.
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

from ncodec.models.audio_context import DEFAULT_CONTEXT, ContextNets, rate_bits
from ncodec.models.train_audio_pd import pick_level, pick_signal

ROOT = Path("runs/audio_ctx")
CACHE = Path("runs/audio_pd")
WINDOW = 128  # frames per training window (1.28 s)
BASE = "audio-pd-v1"


class SymbolCache:
    """The cached symbols and table indexes, memory-mapped, in windows of ``WINDOW`` frames."""

    def __init__(self, root: Path = CACHE):
        d = root / "cache"
        meta = json.loads((d / "index.json").read_text())
        self.kbps = meta["kbps"]
        self.frames = np.asarray(meta["frames"])
        self.start = np.concatenate([[0], np.cumsum(self.frames)[:-1]])
        self.lat = [
            tuple(np.load(d / f"l{k}_{n}.npy", mmap_mode="r") for n in ("sym", "idx"))
            for k in range(len(self.kbps))
        ]
        ids = np.arange(len(self.frames))
        ok = self.frames >= WINDOW
        self.val = ids[ok & (ids % 20 == 0)]
        self.train = ids[ok & (ids % 20 != 0)]

    def window(self, sig: int, k: int, a: int, n: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
        f0 = self.start[sig] + a
        sym, idx = (v[f0 : f0 + n] for v in self.lat[k])
        return sym.T, idx.T

    def batch(self, rng: random.Random, size: int, ids: np.ndarray, levels=None) -> dict[str, torch.Tensor]:
        w = self.frames[ids].astype(np.float64)
        cum = np.cumsum(w / w.sum())
        syms, idxs = [], []
        for i in range(size):
            k = pick_level(rng, i, levels, len(self.kbps))
            sig = pick_signal(rng, cum, ids)
            a = rng.randrange(self.frames[sig] - WINDOW + 1)
            s, t = self.window(sig, k, a)
            syms.append(np.ascontiguousarray(s))
            idxs.append(np.ascontiguousarray(t))
        return {
            "sym": torch.from_numpy(np.stack(syms).astype(np.float32)),
            "t_h": torch.from_numpy(np.stack(idxs).astype(np.float32)),
        }

    def val_set(self, per_level: int = 24, seed: int = 7) -> list[dict[str, torch.Tensor]]:
        """Fixed held-out windows: ``per_level`` per cached rate, one batch per rate."""
        rng = random.Random(seed)
        return [self.batch(rng, per_level, self.val, levels=[k]) for k in range(len(self.kbps))]


def bits_table(nets: ContextNets, val: list[dict[str, torch.Tensor]], kbps: list[float]) -> list[dict]:
    """Held-out bits per latent per cached rate: the hyperprior's and the context model's."""
    out = []
    nets.eval()
    with torch.no_grad():
        for k, b in enumerate(val):
            n = b["sym"].numel()
            r = {"kbps": kbps[k]}
            o = rate_bits(nets, b["sym"], b["t_h"], ste=False)
            r["hyper"] = float(o["bits_h"].sum()) / n
            r["ctx"] = float(o["bits"].sum()) / n
            r["saving_pct"] = 100 * (1 - r["ctx"] / r["hyper"])
            out.append(r)
    nets.train()
    return out


def train(
    run: str,
    minutes: float,
    total_steps: int,
    cfg: dict | None = None,
    lr: float = 1e-3,
    batch: int = 8,
    deadline: float | None = None,
) -> None:
    """Trains ``run`` for ``minutes`` (resuming its checkpoint); the learning rate decays (cosine)
    over the last 30 % of ``total_steps`` or of the time until ``deadline`` (Unix time)."""
    torch.set_num_threads(1)
    cache = SymbolCache()
    out = ROOT / run
    out.mkdir(parents=True, exist_ok=True)
    ck = out / "ckpt.pt"
    step, t_first, spent = 0, time.time(), 0.0
    if ck.exists():
        st = torch.load(ck, weights_only=False)
        cfg = st["cfg"]
    cfg = dict(cfg or DEFAULT_CONTEXT)
    nets = ContextNets(cfg, 160)
    opt = torch.optim.Adam(nets.parameters(), lr=lr)
    if ck.exists():
        nets.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step, t_first, spent = st["step"], st.get("t0", t_first), st.get("cpu_s", 0.0)
        print(f"resumed at step {step}")
    rng = random.Random(1000 + step)
    val = cache.val_set(8)
    log = out / "log.jsonl"

    def validate() -> float:
        tab = bits_table(nets, val, cache.kbps)
        return float(np.mean([r["saving_pct"] for r in tab]))

    if step == 0:
        (out / "cfg.json").write_text(json.dumps(cfg))
        with log.open("a") as f:
            f.write(json.dumps({"step": 0, "val_saving_pct": validate(), "cfg": cfg}) + "\n")
    t_end = time.time() + minutes * 60
    acc, n_acc, t0, c0 = 0.0, 0, time.time(), time.process_time()
    nets.train()
    while time.time() < t_end and step < total_steps and not (deadline and time.time() > deadline):
        frac = step / total_steps
        if deadline:
            frac = max(frac, (time.time() - t_first) / max(deadline - t_first, 1.0))
        scale = 1.0 if frac < 0.7 else 0.5 * (1 + math.cos(math.pi * min(1.0, (frac - 0.7) / 0.3)))
        opt.param_groups[0]["lr"] = lr * max(scale, 0.02)
        b = cache.batch(rng, batch, cache.train)
        r = rate_bits(nets, b["sym"], b["t_h"])
        n = b["sym"].numel()
        loss = r["bits"].sum() / n
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(nets.parameters(), 1.0)
        opt.step()
        step += 1
        acc += float(loss) / (float(r["bits_h"].sum().detach()) / n)
        n_acc += 1
        if step % 50 == 0:
            rec = {
                "step": step,
                "rel_bits": round(acc / n_acc, 4),
                "s_per_step": round((time.time() - t0) / n_acc, 3),
            }
            if step % 250 == 0:
                rec["val_saving_pct"] = round(validate(), 3)
            print(json.dumps(rec), flush=True)
            with log.open("a") as f:
                f.write(json.dumps(rec) + "\n")
            acc, n_acc, t0 = 0.0, 0, time.time()
        if step % 250 == 0:
            spent += time.process_time() - c0
            c0 = time.process_time()
            _save(ck, nets, opt, step, t_first, spent, cfg)
    spent += time.process_time() - c0
    _save(ck, nets, opt, step, t_first, spent, cfg)
    print(f"stopped at step {step}, {spent / 60:.1f} CPU-minutes in all", flush=True)


def _save(ck: Path, nets, opt, step: int, t0: float, cpu_s: float, cfg: dict) -> None:
    tmp = ck.with_suffix(".tmp")
    torch.save(
        {
            "model": nets.state_dict(),
            "opt": opt.state_dict(),
            "step": step,
            "t0": t0,
            "cpu_s": cpu_s,
            "cfg": cfg,
        },
        tmp,
    )
    tmp.replace(ck)


def load_nets(run: str) -> tuple[ContextNets, dict]:
    st = torch.load(ROOT / run / "ckpt.pt", weights_only=False)
    nets = ContextNets(st["cfg"], 160)
    nets.load_state_dict(st["model"])
    return nets.eval(), st


def evaluate(run: str, per_level: int = 24) -> list[dict]:
    """Held-out bits per latent per cached rate (float model, coded table rounding)."""
    torch.set_num_threads(1)
    cache = SymbolCache()
    nets, st = load_nets(run)
    tab = bits_table(nets, cache.val_set(per_level), cache.kbps)
    for r in tab:
        print(json.dumps({k: round(v, 4) for k, v in r.items()}))
    print(f"step {st['step']}, {st.get('cpu_s', 0) / 60:.1f} CPU-minutes")
    return tab


def export_run(run: str, out: Path, model_id: str = "audio-ctx-v1") -> Path:
    """Integer twins of the run's networks on audio-pd-v1, calibrated on 64 training windows."""
    from ncodec.models.audio_context import AudioContextModel, color_map, net_input
    from ncodec.models.registry import load_model

    torch.set_num_threads(1)
    nets, st = load_nets(run)
    cache = SymbolCache()
    rng = random.Random(3)
    b = [cache.batch(rng, 8, cache.train) for _ in range(8)]
    sym = torch.cat([x["sym"] for x in b])
    t_h = torch.cat([x["t_h"] for x in b])
    scale_h = torch.exp(torch.from_numpy(np.log(_scales())).float()[t_h.long()])
    u_all = sym / scale_h
    colors = color_map(nets.cfg, sym.shape[1], sym.shape[2])
    calib, u = [], torch.zeros_like(sym)
    for p in range(len(nets.nets)):
        calib.append(net_input(u, t_h).double())
        u = torch.where(colors == p, u_all, u)
    model = AudioContextModel.from_base(load_model(BASE), load_model("audio-hp-v1"), nets, calib, model_id)
    card = {"steps": st["step"], "cpu_minutes": round(st.get("cpu_s", 0) / 60, 1), "base": BASE}
    model.save(Path(out), card=card)
    return Path(out)


def _scales() -> np.ndarray:
    from ncodec.entropy.tables import gaussian_scale_table

    return gaussian_scale_table()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ncodec.models.train_audio_ctx", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--run", default="main")
    t.add_argument("--minutes", type=float, default=20.0)
    t.add_argument("--steps", type=int, default=20000, help="planned total (sets the lr decay)")
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--deadline", type=float, default=None, help="Unix time by which the lr has decayed")
    t.add_argument("--cfg", default=None, help="context configuration (JSON) of a new run")
    e = sub.add_parser("eval")
    e.add_argument("--run", default="main")
    x = sub.add_parser("export")
    x.add_argument("--run", default="main")
    x.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    if a.cmd == "train":
        cfg = json.loads(a.cfg) if a.cfg else None
        train(a.run, a.minutes, a.steps, cfg, a.lr, deadline=a.deadline)
    elif a.cmd == "eval":
        evaluate(a.run)
    else:
        print(export_run(a.run, a.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
