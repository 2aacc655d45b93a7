"""Training of the temporal entropy model for P-frame latents (issue 17), on cached latents.

``python -m ncodec.models.train_video --steps N --seconds S`` trains (resumably, in chunks) on the
records of :mod:`ncodec.models.video_cache`; ``--eval`` measures P-frame bits against intra coding
on the held-out training clips; ``--export PATH`` writes the shipped weights.

The loss is rate only (the transforms are frozen): the bits of the latents ``ys`` of a frame under
the predicted Gaussian ``N(mu, sigma)`` discretised to unit bins, where ``sigma = scale[idx0] *
exp(ds * step)`` starts from the table the hyperprior picks (the integer model adds ``round(ds)``
table steps). The scales learn from the rounded residuals, the means from the residuals plus
uniform noise (through rounding their gradient vanishes where most residuals round to 0). Each
sample is a frame of a cached run with its previous one or two frames decoded as intra coding
does, rescaled exactly to its quality.

Checkpoints are safetensors (no pickle): the float network, Adam's moments, the step and elapsed
time in the metadata; ``--seconds`` stops at a step boundary and saves.
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
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from ncodec.models.video_cache import OUT_DIR, gain
from ncodec.models.video_model import (
    FX,
    FrameRef,
    TemporalContext,
    TemporalNet,
    build,
    gain_ratio_q30,
    gain_tables,
    hyper_fx,
    rescale_fx,
    table_scales,
)

RUN_DIR = Path("runs/video")
LOG2E = 1.0 / math.log(2.0)


def gaussian_bits(r: Tensor, sigma: Tensor) -> Tensor:
    """Bits of residual ``r`` (any real) under ``N(0, sigma)`` integrated over ``[r-1/2, r+1/2]``."""
    a = r.abs()
    lik = torch.special.ndtr((0.5 - a) / sigma) - torch.special.ndtr((-0.5 - a) / sigma)
    return -torch.log2(lik.clamp_min(1e-9))


class Data:
    """The cached runs in memory; :meth:`batch` assembles training samples."""

    def __init__(self, image_model, root: Path, crop: int = 16, seed: int = 0, holdout: float = 0.0):
        files = sorted((root / "train").glob("*.npz"))
        files = [f for f in files if not f.name.endswith(".tmp.npz")]
        if not files:
            raise SystemExit(f"no cached runs under {root}/train: run python -m ncodec.models.video_cache")
        self.runs = []
        for f in files:
            with np.load(f) as z:
                self.runs.append({k: torch.from_numpy(z[k]) for k in ("y", "q", "mu", "sig", "yhat")})
        self.lg, self.exp_table, self.lo = gain_tables(image_model)
        self.thr = image_model.y_thresholds
        self.scales = torch.from_numpy(table_scales(len(image_model.y_tables))).float()
        self.image_model = image_model
        self.crop = crop
        self.rng = random.Random(seed)
        self.gains = {}

    def __len__(self) -> int:
        return len(self.runs)

    def _gain(self, q: float) -> Tensor:
        if q not in self.gains:
            self.gains[q] = gain(self.image_model, q)[0].detach().float()
        return self.gains[q]

    def ref(self, run: dict, t: int, q_to: float) -> Tensor:
        """Frame ``t``'s intra-decoded latents in the units of quality ``q_to`` (int64 fixed point)."""
        fx = run["yhat"][t].to(torch.int64)[None]
        q_from = float(run["q"][t])
        if int(round(q_from * 100)) == int(round(q_to * 100)):
            return fx
        return rescale_fx(fx, gain_ratio_q30(self.lg, self.exp_table, self.lo, q_from, q_to))

    def sample(self, run: dict, t: int) -> dict[str, Tensor]:
        q = float(run["q"][t])
        p1 = self.ref(run, t - 1, q)
        p2 = self.ref(run, t - 2, q) if t >= 2 else p1
        ys = run["y"][t].float() * self._gain(q)
        sig = run["sig"][t].to(torch.int64)
        idx0 = torch.bucketize(sig, self.thr)
        return {
            "ys": ys,
            "p1": p1[0].float() / FX,
            "p2": p2[0].float() / FX,
            "m0": run["mu"][t].float() / FX,
            "s0": sig.float() / FX,
            "idx0": idx0,
        }

    def batch(self, size: int) -> dict[str, Tensor]:
        out: dict[str, list[Tensor]] = {}
        c = self.crop
        for _ in range(size):
            run = self.runs[self.rng.randrange(len(self.runs))]
            t = self.rng.randrange(1, run["y"].shape[0])
            s = self.sample(run, t)
            h, w = s["ys"].shape[-2:]
            y0, x0 = self.rng.randrange(h - c + 1), self.rng.randrange(w - c + 1)
            for k, v in s.items():
                out.setdefault(k, []).append(v[..., y0 : y0 + c, x0 : x0 + c])
        return {k: torch.stack(v) for k, v in out.items()}


def losses(
    net: TemporalNet, b: dict[str, Tensor], scales: Tensor, noise: bool = True, monitor: bool = True
) -> dict[str, Tensor]:
    """Training loss (its value: bits per latent of the rounded residuals) and, with ``monitor``,
    without gradients, the bits per latent of the integer model's rule (rounded ``ds``) and of
    intra coding."""
    mu, ds = net(b["p1"], b["p2"], b["m0"], b["s0"])
    s_intra = scales[b["idx0"]]
    sigma = (s_intra * torch.exp(ds * net.step)).clamp(float(scales[0]), float(scales[-1]))
    r = b["ys"] - mu
    # scales learn from the residuals as they will be coded (rounded); means, whose gradient through
    # rounding vanishes where most residuals round to 0, from the residual plus uniform noise
    bits = gaussian_bits(torch.round(r).detach(), sigma).mean()
    if noise:
        bn = gaussian_bits(r + torch.empty_like(r).uniform_(-0.5, 0.5), sigma.detach()).mean()
        bits = bits + bn - bn.detach()
    out = {"loss": bits}
    if monitor:
        with torch.no_grad():
            out["intra"] = gaussian_bits(torch.round(b["ys"] - b["m0"]), s_intra).mean()
            idx = (b["idx0"] + torch.round(ds)).clamp(0, len(scales) - 1).long()
            out["exact"] = gaussian_bits(torch.round(b["ys"] - mu), scales[idx]).mean()
    return out


# ---- checkpoints ---------------------------------------------------------------------------------


def save_checkpoint(path: Path, net: TemporalNet, opt: torch.optim.Adam, step: int, elapsed: float) -> None:
    t = {f"net.{k}": v.detach().contiguous() for k, v in net.state_dict().items()}
    for i, p in enumerate(net.parameters()):
        st = opt.state.get(p)
        if st:
            t[f"opt.{i}.exp_avg"] = st["exp_avg"].contiguous()
            t[f"opt.{i}.exp_avg_sq"] = st["exp_avg_sq"].contiguous()
            t[f"opt.{i}.step"] = torch.as_tensor(st["step"], dtype=torch.float32).reshape(1)
    meta = {"step": str(step), "elapsed": f"{elapsed:.1f}", "config": json.dumps(net.config())}
    tmp = path.with_suffix(".tmp")
    save_file(t, str(tmp), metadata=meta)
    tmp.replace(path)


def load_checkpoint(path: Path) -> tuple[TemporalNet, dict[str, Tensor], int, float]:
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        t = {k: f.get_tensor(k) for k in f.keys()}
    net = TemporalNet(**json.loads(meta["config"]))
    state = {k[4:]: v for k, v in t.items() if k.startswith("net.")}
    w = state["convs.0.weight"]
    want = net.convs[0].weight.shape
    if w.shape[1] < want[1]:  # warm start from a network without the matching-cost inputs
        state["convs.0.weight"] = torch.cat([w, w.new_zeros(want[0], want[1] - w.shape[1], 1, 1)], 1)
    net.load_state_dict(state)
    return net, t, int(meta["step"]), float(meta["elapsed"])


def restore_optimizer(opt: torch.optim.Adam, net: TemporalNet, t: dict[str, Tensor]) -> None:
    for i, p in enumerate(net.parameters()):
        if f"opt.{i}.exp_avg" in t and t[f"opt.{i}.exp_avg"].shape == p.shape:
            opt.state[p] = {
                "step": torch.tensor(float(t[f"opt.{i}.step"][0])),
                "exp_avg": t[f"opt.{i}.exp_avg"].clone(),
                "exp_avg_sq": t[f"opt.{i}.exp_avg_sq"].clone(),
            }


def lr_at(step: int, total: int, base: float) -> float:
    warm = 200
    if step < warm:
        return base * (step + 1) / warm
    frac = min(1.0, step / max(total, 1))
    return base * (0.1 if frac > 0.9 else (0.3 if frac > 0.75 else 1.0))


def train(args, image_model) -> Path:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint.safetensors"
    if ckpt.exists():
        net, state, step, elapsed = load_checkpoint(ckpt)
    else:
        step_ln = math.log(256.0 / 0.11) / 63  # table spacing of entropy.gaussian_scale_table()
        net, state, step, elapsed = (
            TemporalNet(image_model.config["m"], args.hidden, args.radius, step_ln),
            {},
            0,
            0.0,
        )
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    restore_optimizer(opt, net, state)
    data = Data(image_model, Path(args.cache), seed=step + 1)
    scales = data.scales
    print(f"runs: {len(data)}; resuming at step {step}, {elapsed:.0f} s", flush=True)
    t0 = time.monotonic()
    acc: dict[str, float] = {}
    cnt: dict[str, int] = {}
    log = open(out / "log.jsonl", "a")
    while step < args.steps and time.monotonic() - t0 < args.seconds:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.lr)
        b = data.batch(args.batch)
        res = losses(net, b, scales, monitor=step % 5 == 0)
        opt.zero_grad(set_to_none=True)
        res["loss"].backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        for k, v in res.items():
            acc[k] = acc.get(k, 0.0) + float(v.detach())
            cnt[k] = cnt.get(k, 0) + 1
        if step % args.log_every == 0:
            rec = {k: round(v / cnt[k], 4) for k, v in acc.items()}
            rec["saving"] = round(1 - rec["exact"] / rec["intra"], 4)
            rec.update(step=step, elapsed=round(elapsed + time.monotonic() - t0, 1))
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()
            acc, cnt = {}, {}
        if step % 500 == 0:
            save_checkpoint(ckpt, net, opt, step, elapsed + time.monotonic() - t0)
    save_checkpoint(ckpt, net, opt, step, elapsed + time.monotonic() - t0)
    print(f"saved step {step} to {ckpt}", flush=True)
    return ckpt


# ---- measuring on held-out clips -----------------------------------------------------------------


@torch.no_grad()
def measure(image_model, model, root: Path, qualities=(25.0, 50.0, 75.0), frames: int | None = None) -> dict:
    """Ideal code lengths (quantised tables) of the held-out clips: frame 0 intra, every later frame
    a P-frame against the previous decoded one (and the one before), versus all-intra. Two chains:
    ``temporal`` (every P-frame temporally predicted) and ``auto`` (the codec's default: per frame
    the cheaper of the temporal and the intra prediction, plus its mode byte)."""
    from ncodec.models.image_model import Z_LIMIT

    yt, zt = image_model.y_tables, image_model.z_tables
    res = {}
    for q in qualities:
        tot = {"intra_y": 0.0, "temporal_y": 0.0, "auto_y": 0.0, "z": 0.0, "pixels": 0, "p_frames": 0}
        tot.update(temporal_z=0.0, auto_z=0.0)
        n_temporal = 0
        for f in sorted((root / "eval").glob("*.npz")):
            with np.load(f) as d:
                y_all, size = torch.from_numpy(d["y"]), d["size"]
            n = y_all.shape[0] if frames is None else min(frames, y_all.shape[0])
            refs: dict[str, list[FrameRef]] = {"temporal": [], "auto": []}
            for t in range(n):
                ys = y_all[t : t + 1].float() * gain(image_model, q)
                z = torch.round(image_model.h_a(ys)).clamp(-Z_LIMIT, Z_LIMIT).to(torch.int64)
                mu0, s0, idx0 = hyper_fx(image_model, z)
                sym0 = torch.round(ys.double() - mu0.double() / FX).to(torch.int64)
                intra = yt.ideal_bits(sym0.numpy(), idx0.numpy())
                z_intra = zt.ideal_bits(z.numpy(), image_model.z_indexes(tuple(z.shape)))
                if t > 0:
                    tot["intra_y"] += intra
                    tot["z"] += z_intra
                    tot["p_frames"] += 1
                    tot["pixels"] += int(size[0]) * int(size[1])
                for chain, rr in refs.items():
                    mu, sym = mu0, sym0
                    if t > 0:
                        ctx = TemporalContext(q, rr[-1], rr[-2] if len(rr) > 1 else None)
                        mu_t, idx_t = model.predict(mu0, s0, idx0, ctx, len(yt))
                        sym_t = torch.round(ys.double() - mu_t.double() / FX).to(torch.int64)
                        bits = yt.ideal_bits(sym_t.numpy(), idx_t.numpy())
                        if chain == "temporal" or bits <= intra:
                            mu, sym = mu_t, sym_t
                            n_temporal += chain == "auto"
                        tot[f"{chain}_y"] += (bits if chain == "temporal" else min(bits, intra)) + 8
                        z_bits = z_intra
                        if model.predicts_z:
                            zp, z_idx = model.predict_z(ctx, tuple(z.shape))
                            z_t = yt.ideal_bits((z - zp).numpy(), z_idx.numpy())
                            z_bits = z_t if chain == "temporal" else min(z_t, z_intra)
                        tot[f"{chain}_z"] += z_bits + 8
                    rr.append(FrameRef((sym * FX + mu).double() / FX, q))
        px = max(tot["pixels"], 1)
        row = {
            "p_frames": tot["p_frames"],
            "auto_temporal_frames": n_temporal,
            "intra_bpp": round((tot["intra_y"] + tot["z"]) / px, 5),
            "z_bpp": round(tot["z"] / px, 5),
        }
        for chain in ("temporal", "auto"):
            y_bits, z_bits = tot[f"{chain}_y"], tot[f"{chain}_z"]
            row[f"{chain}_bpp"] = round((y_bits + z_bits) / px, 5)
            row[f"{chain}_y_saving"] = round(1 - y_bits / max(tot["intra_y"], 1), 4)
            row[f"{chain}_z_saving"] = round(1 - z_bits / max(tot["z"], 1), 4)
            row[f"{chain}_total_saving"] = round(1 - (y_bits + z_bits) / max(tot["intra_y"] + tot["z"], 1), 4)
        res[f"q{q:g}"] = row
        print(json.dumps({f"q{q:g}": row}), flush=True)
    return res


@torch.no_grad()
def measure_skip(
    image_model,
    model,
    root: Path,
    clip: str = "davis2016_dog_854x480",
    qualities=(35.0, 50.0, 65.0),
    skips=(0.0, 0.1, 0.25),
    frames: int = 4,
) -> list[dict]:
    """Rate (ideal bits, P-frames only) and RGB PSNR of the P-frames of one held-out clip for each
    quality and ``skip`` deadzone (:class:`~ncodec.models.latent_codecs.temporal.TemporalCodec`'s
    encoder-only choice), chained as the codec runs them (each frame against its decoded
    predecessors)."""
    from ncodec.models.image_model import Z_LIMIT
    from ncodec.models.video_cache import VIDEO_DIR, read_clip

    yt, zt = image_model.y_tables, image_model.z_tables
    with np.load(root / "eval" / f"{clip}.npz") as d:
        y_all = torch.from_numpy(d["y"][:frames])
    rgb = read_clip(VIDEO_DIR / f"{clip}.mkv")[:frames]
    h, w = rgb[0].shape[:2]
    out = []
    for q in qualities:
        for skip in skips:
            bits, se, n = 0.0, 0.0, 0
            refs: list[FrameRef] = []
            for t in range(y_all.shape[0]):
                ys = y_all[t : t + 1].float() * gain(image_model, q)
                z = torch.round(image_model.h_a(ys)).clamp(-Z_LIMIT, Z_LIMIT).to(torch.int64)
                mu, s0, idx = hyper_fx(image_model, z)
                if t > 0:
                    ctx = TemporalContext(q, refs[-1], refs[-2] if len(refs) > 1 else None)
                    mu, idx = model.predict(mu, s0, idx, ctx, len(yt))
                r = ys.double() - mu.double() / FX
                sym = torch.round(r)
                if t > 0 and skip > 0:
                    sym = torch.where(r.abs() < 0.5 + skip, torch.zeros_like(sym), sym)
                sym = sym.to(torch.int64)
                ys_hat = (sym * FX + mu).double() / FX
                refs.append(FrameRef(ys_hat, q))
                if t == 0:
                    continue
                bits += yt.ideal_bits(sym.numpy(), idx.numpy())
                bits += zt.ideal_bits(z.numpy(), image_model.z_indexes(tuple(z.shape)))
                x = image_model.synthesize(ys_hat, q)[0, :, :h, :w].permute(1, 2, 0).double() * 255
                se += float(((torch.round(x) - torch.from_numpy(rgb[t]).double()) ** 2).mean())
                n += 1
            out.append(
                {
                    "quality": q,
                    "skip": skip,
                    "bpp": round(bits / (n * h * w), 5),
                    "psnr": round(10 * math.log10(255**2 / (se / n)), 3),
                }
            )
            print(json.dumps(out[-1]), flush=True)
    return out


@torch.no_grad()
def speed_540p(image_model, model, repeats: int = 3) -> dict:
    """Seconds per frame at 960x540 (latents 60x36, padded from 544 rows to 576) on the current
    threads, best of ``repeats``: the hyperprior alone (exact integer hyper-synthesis), the
    temporal network alone, and a whole P-frame's latent coding through
    :class:`~ncodec.models.latent_codecs.temporal.TemporalCodec` (``mode="temporal"``), encode and
    decode (one rANS thread). The transforms ``g_a``/``g_s`` are not included."""
    from ncodec.models.image_model import Z_LIMIT
    from ncodec.models.latent_codecs.base import UnitShape
    from ncodec.models.latent_codecs.temporal import TemporalCodec

    g = torch.Generator().manual_seed(0)
    ys = torch.randn(1, image_model.config["m"], 36, 60, generator=g) * 3
    z = torch.round(image_model.h_a(ys)).clamp(-Z_LIMIT, Z_LIMIT).to(torch.int64)
    prev = FrameRef(torch.round((ys + 0.3 * torch.randn(ys.shape, generator=g)).double() * 4) / 4, 50.0)
    ctx = TemporalContext(50.0, prev, prev)
    codec = TemporalCodec(model, image_model, threads=1, mode="temporal")
    shape = UnitShape(tuple(ys.shape), tuple(z.shape))
    best = {"hyper": 1e9, "temporal": 1e9, "p_frame_encode": 1e9, "p_frame_decode": 1e9}
    for _ in range(repeats):
        t0 = time.perf_counter()
        mu0, s0, idx0 = hyper_fx(image_model, z)
        t1 = time.perf_counter()
        model.predict(mu0, s0, idx0, ctx, len(image_model.y_tables))
        t2 = time.perf_counter()
        coded = codec.compress(ys, z, ctx)
        t3 = time.perf_counter()
        codec.decompress(coded.parts, shape, ctx)
        t4 = time.perf_counter()
        for k, v in zip(best, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            best[k] = min(best[k], v)
    return {k: round(v, 3) for k, v in best.items()}


@torch.no_grad()
def fit_z_predictor(image_model, root: Path, every: int = 2) -> tuple:
    """The hyper-latent predictor: the integer twin of the image model's ``h_a`` (calibrated on
    cached training latents) and, per quality bin and channel, the Gaussian table that codes
    ``z - round(h_a_int(previous ys_hat) / 256)`` in the fewest bits over the training runs."""
    from ncodec.models.image_model import Z_LIMIT
    from ncodec.models.video_model import Z_BINS, quantize_hyper_analysis, z_bin

    data = Data(image_model, root, seed=7)
    calib = torch.cat([data.sample(r, 1)["p1"][None] for r in data.runs[::8]])
    ha = quantize_hyper_analysis(image_model.h_a, calib)
    yt = image_model.y_tables
    n_z = image_model.config["n"]
    diffs: list[list[list[Tensor]]] = [[[] for _ in range(n_z)] for _ in range(Z_BINS)]
    for run in data.runs[::every]:
        for t in range(1, run["y"].shape[0]):
            q = float(run["q"][t])
            ys = run["y"][t : t + 1].float() * data._gain(q)
            z = torch.round(image_model.h_a(ys)).clamp(-Z_LIMIT, Z_LIMIT).to(torch.int64)
            zp = (ha(data.ref(run, t - 1, q)) + FX // 2) >> 8
            d = (z - zp)[0]
            for c in range(n_z):
                diffs[z_bin(q)][c].append(d[c].reshape(-1))
    z_idx = torch.zeros(Z_BINS, n_z, dtype=torch.int64)
    for b in range(Z_BINS):
        for c in range(n_z):
            if not diffs[b][c]:
                z_idx[b, c] = 20
                continue
            d = torch.cat(diffs[b][c]).numpy()
            best = min(range(len(yt)), key=lambda i: yt.ideal_bits(d, np.full(d.shape, i)))
            z_idx[b, c] = best
    return ha, z_idx


def calib_batch(image_model, root: Path, n: int = 64) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    data = Data(image_model, root, seed=12345)
    b = data.batch(n)
    return b["p1"], b["p2"], b["m0"], b["s0"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=4000, help="total steps (the schedule's length)")
    p.add_argument("--seconds", type=float, default=float("inf"), help="this chunk's time budget")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--radius", type=int, default=2)
    p.add_argument("--cache", type=Path, default=OUT_DIR)
    p.add_argument("--out", type=Path, default=RUN_DIR)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--train", action="store_true", help="train before --eval/--export (the default alone)")
    p.add_argument("--eval", action="store_true", help="measure P-frame bits on the held-out clips")
    p.add_argument("--eval-frames", type=int, default=None)
    p.add_argument("--skip-eval", action="store_true", help="measure the encoder's skip choice (with --eval)")
    p.add_argument("--export", type=Path, default=None, help="write the shipped weights file here")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    from ncodec.models.image_model import ImageModel
    from ncodec.models.registry import SHIPPED

    image_model = ImageModel.load(SHIPPED["image-hp-v1"].weights_path).requires_grad_(False)
    ckpt = a.out / "checkpoint.safetensors"
    if a.train or not (a.eval or a.export):
        train(a, image_model)
    if a.eval or a.export:
        net, _, step, elapsed = load_checkpoint(ckpt)
        ha, z_idx = fit_z_predictor(image_model, a.cache)
        model = build(net, image_model, calib_batch(image_model, a.cache), "video-st-v1", ha, z_idx)
        report = {"step": step, "train_seconds": elapsed}
        if a.eval:
            report["heldout"] = measure(image_model, model, a.cache, frames=a.eval_frames)
            report["speed_540p_s"] = speed_540p(image_model, model)
            if a.skip_eval:
                report["skip"] = measure_skip(image_model, model, a.cache)
            print(json.dumps(report, indent=1), flush=True)
            (a.out / "eval.json").write_text(json.dumps(report, indent=1))
        if a.export:
            model.save(a.export, card=report)
            print(f"wrote {a.export}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
