"""Trains the context entropy model of :mod:`ncodec.models.image_context` on cached latents.

``python -m ncodec.models.train_context --cache runs/cache/image-hp-v1 --steps N --seconds S --out DIR``

The transforms and hyperprior of ``image-hp-v1`` are frozen; only the context networks train, with
a rate-only loss: the bits of ``ys - mu`` (uniform noise standing in for the rounding, so the mean
gets a gradient) under the Gaussian table the coder will pick (the scale quantised to the 64-table
set, straight-through), at a random quality per crop; the log reports the bits of the rounded
residuals the coder writes. Each step
scales cached ``g_a`` latents (:mod:`ncodec.models.latent_cache`), runs ``h_a`` and the float twin
of the integer hyper-synthesis (1/16 resolution, cheap) and the context networks. One thread; resumable:
``DIR/checkpoint.safetensors`` holds the networks, Adam's moments and the step (no pickle), and a
new run with the same ``--out`` continues until ``--steps`` or for another ``--seconds``.

``--eval`` measures the rate saving against the hyperprior on the held-in images (training images
that were never cached, never Kodak) at qualities 10, 50 and 90, per pass.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ncodec.models.image_context import (
    DEFAULT_CONTEXT,
    ContextNets,
    gaussian_bits,
    log_scale_table,
    rate_forward,
)
from ncodec.models.int_hyper import Z_LIMIT
from ncodec.models.train_core import load_state, save_state

EVAL_QUALITIES = (10.0, 50.0, 90.0)


_FLOAT_HS: dict = {}


def float_hyper(base):
    """The float32 twin of ``base``'s integer hyper-synthesis (about 6x faster on a CPU; within one
    fixed-point unit of the exact means, and the same table for all but ~1e-4 of the latents)."""
    key = id(base)
    if key not in _FLOAT_HS:
        from ncodec.models import layers
        from ncodec.models.int_hyper import dequantize_into

        h_s = layers.hyper_synthesis(base.config["n"], base.config["m"])
        dequantize_into(base.h_s_int, h_s)
        _FLOAT_HS[key] = h_s.eval()
    return _FLOAT_HS[key]


def hyper_inputs(
    base, y: torch.Tensor, qualities: list[float], exact: bool = False
) -> tuple[torch.Tensor, ...]:
    """Cached ``y`` ``[B, M, h, w]`` (any float) at per-sample qualities -> ``ys`` float32, the
    hyperprior's ``mu_h`` (float32, multiples of 2**-8), table index ``t_h`` (float32), ``z_hat``.
    ``exact`` runs the integer hyper-synthesis the codec runs; otherwise its float twin (training)."""
    from ncodec.models.int_hyper import table_indexes

    with torch.no_grad():
        gains = torch.cat([base._gain(base.log_gain, q) for q in qualities])
        ys = y.float() * gains
        z_hat = torch.round(base.h_a(ys)).clamp(-Z_LIMIT, Z_LIMIT).to(torch.int64)
        if exact:
            mu_fx, sigma_fx = base.h_s_int(z_hat)
        else:
            mu_fx, sigma_fx = (
                torch.round(v * 256).to(torch.int64) for v in float_hyper(base)(z_hat.float()).chunk(2, 1)
            )
        idx = table_indexes(sigma_fx, base.y_thresholds)
        return ys, mu_fx.float() / 256.0, idx.float(), z_hat


def save_checkpoint(path: Path, nets: ContextNets, opt: torch.optim.Optimizer, meta: dict) -> None:
    save_state(path, nets.state_dict(), "net", opt, meta)


def load_checkpoint(path: Path) -> tuple[dict, dict, dict]:
    return load_state(path, "net")


def load_nets(path: Path) -> ContextNets:
    meta, net, _ = load_checkpoint(path)
    nets = ContextNets(meta["cfg"])
    nets.load_state_dict(net)
    return nets.eval()


@torch.no_grad()
def widen(src: Path, dst: Path, hidden: int, seed: int = 1) -> dict:
    """Function-preserving widening (Net2Net-style) of checkpoint ``src`` to ``hidden`` channels,
    saved to ``dst`` (fresh Adam moments, same step): the new first-layer units start random
    (half the default init) with zero weights into ``mid``; the new ``mid`` units start random
    with zero weights into ``out``; so the widened networks compute exactly the old ones."""
    meta, state, _ = load_checkpoint(src)
    old = ContextNets(meta["cfg"])
    old.load_state_dict(state)
    h = meta["cfg"]["hidden"]
    if hidden <= h:
        raise ValueError(f"--widen: {hidden} is not wider than {h}")
    torch.manual_seed(seed)
    cfg = dict(meta["cfg"], hidden=hidden)
    new = ContextNets(cfg)
    for key, o in old.nets.items():
        n = new.nets[key]
        for name in ("sp", "ch", "hy"):
            lo, ln = getattr(o, name), getattr(n, name)
            if lo is None:
                continue
            ln.weight[:h] = lo.weight
            ln.weight[h:] *= 0.5
            if lo.bias is not None:
                ln.bias[:h] = lo.bias
                ln.bias[h:] = 0
        n.mid.weight.zero_()
        n.mid.weight[:h, :h] = o.mid.weight
        torch.nn.init.kaiming_uniform_(n.mid.weight[h:], a=5**0.5)
        n.mid.weight[h:] *= 0.5
        n.mid.bias[:h] = o.mid.bias
        n.mid.bias[h:] = 0
        n.out.weight.zero_()
        n.out.weight[:, :h] = o.out.weight
        n.out.bias[:] = o.out.bias
    meta = dict(meta, cfg=cfg, widened_from=str(src), widened_at_step=meta["step"])
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(dst, new, torch.optim.Adam(new.parameters()), meta)
    return meta


def train(
    cache: Path, out: Path, steps: int, seconds: float, cfg: dict, batch: int, lr: float, seed: int
) -> Path:
    from ncodec.models.latent_cache import load as load_cache
    from ncodec.models.registry import load_model

    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint.safetensors"
    base = load_model("image-hp-v1")
    log_scales = log_scale_table(base)
    meta = {"cfg": cfg, "step": 0, "elapsed": 0.0, "batch": batch, "lr": lr, "seed": seed}
    if ckpt.exists():
        meta, net_state, opt_state = load_checkpoint(ckpt)
        cfg = meta["cfg"]
    nets = ContextNets(cfg)
    opt = torch.optim.Adam(nets.parameters(), lr=lr)
    if ckpt.exists():
        nets.load_state_dict(net_state)
        sd = opt.state_dict()
        sd["state"] = opt_state
        opt.load_state_dict(sd)
    data = load_cache(cache)
    print(f"{data.shape[0]} cached crops, {sum(p.numel() for p in nets.parameters())} parameters", flush=True)
    gen = torch.Generator().manual_seed(seed + meta["step"])
    t0, start_elapsed, log = time.time(), meta["elapsed"], []
    c0, start_cpu = time.process_time(), meta.get("cpu_s", 0.0)
    pixels = 16.0 * 16.0 * data.shape[-1] * data.shape[-2]
    # each run plans its own schedule: the learning rate decays over the last 30 % of the time from
    # the first run's start to this run's end (a resumed run restarts the decay from --lr)
    total_s = start_elapsed + seconds
    meta["total_seconds"], meta["lr"] = total_s, lr
    while meta["step"] < steps and time.time() - t0 < seconds:
        idx = torch.randint(0, data.shape[0], (batch,), generator=gen)
        qs = (torch.rand(batch, generator=gen) * 100).tolist()
        ys, mu_h, t_h, _ = hyper_inputs(base, data[idx], qs)
        # cosine decay over the last 30 % of the planned time
        frac = min((start_elapsed + time.time() - t0) / max(total_s, 1.0), 1.0)
        cur = lr if frac < 0.7 else lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (frac - 0.7) / 0.3)))
        for gparam in opt.param_groups:
            gparam["lr"] = cur
        res = rate_forward(nets, ys, mu_h, t_h, log_scales)
        bits = sum(res["bits"].values())
        loss = bits.mean() / pixels
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(nets.parameters(), 1.0)
        opt.step()
        meta["step"] += 1
        with torch.no_grad():
            r0 = torch.round(ys - mu_h)
            base_bits = gaussian_bits(r0, torch.exp(log_scales[t_h.long()])).sum()
            coded = gaussian_bits(res["sym"], torch.exp(log_scales[res["t"].long()])).sum()
        log.append((float(coded), float(base_bits)))
        if meta["step"] % 25 == 0:
            b, b0 = map(sum, zip(*log))
            el = start_elapsed + time.time() - t0
            print(
                f"step {meta['step']} y-bpp {b / len(log) / batch / pixels:.4f} "
                f"saving {100 * (1 - b / b0):.2f} % lr {cur:.2e} {el:.0f} s",
                flush=True,
            )
            log = []
        if meta["step"] % 200 == 0:
            meta["elapsed"] = start_elapsed + time.time() - t0
            meta["cpu_s"] = start_cpu + time.process_time() - c0
            save_checkpoint(ckpt, nets, opt, meta)
    meta["elapsed"] = start_elapsed + time.time() - t0
    meta["cpu_s"] = start_cpu + time.process_time() - c0
    save_checkpoint(ckpt, nets, opt, meta)
    print(
        f"saved {ckpt} at step {meta['step']} ({meta['elapsed']:.0f} s, {meta['cpu_s']:.0f} CPU-s)",
        flush=True,
    )
    return ckpt


def load_image(path: Path) -> torch.Tensor:
    """``[1, 3, H, W]`` in [0, 1], replicate-padded to multiples of 64 (as the codec pads)."""
    a = np.asarray(Image.open(path).convert("RGB"))
    h, w = a.shape[:2]
    a = np.pad(a, ((0, (-h) % 64), (0, (-w) % 64), (0, 0)), mode="edge")
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float().div_(255.0), (h, w)


@torch.no_grad()
def evaluate(nets_list: dict[str, ContextNets], images: list[Path], qualities=EVAL_QUALITIES) -> dict:
    """Per model and quality: total bits (z + y, ideal under the quantised tables) and PSNR,
    against the hyperprior alone, summed over ``images``."""
    from ncodec.models.registry import load_model

    base = load_model("image-hp-v1")
    log_scales = log_scale_table(base)
    res: dict = {}
    for path in images:
        x, (h, w) = load_image(path)
        y = base.analysis(x)
        for q in qualities:
            ys, mu_h, t_h, z_hat = hyper_inputs(base, y, [q], exact=True)
            zbits = base.z_tables.ideal_bits(z_hat.numpy().reshape(-1), base.z_indexes(tuple(z_hat.shape)))
            runs = {"hp": None, **nets_list}
            for name, nets in runs.items():
                if nets is None:
                    sym = torch.round(ys - mu_h)
                    ys_hat, t, per_pass = sym + mu_h, t_h, {}
                else:
                    r = rate_forward(nets, ys, mu_h, t_h, log_scales, ste=False)
                    ys_hat, t, sym = r["ys_hat"], r["t"], r["sym"]
                    per_pass = {k: float(v.sum()) for k, v in r["bits"].items()}
                ybits = base.y_tables.ideal_bits(
                    sym.to(torch.int64).numpy().reshape(-1), t.to(torch.int64).numpy().reshape(-1)
                )
                xh = base.synthesize(ys_hat, q)[..., :h, :w]
                mse = float(((xh - x[..., :h, :w]) ** 2).mean())
                d = res.setdefault(name, {}).setdefault(
                    q, {"bits": 0.0, "zbits": 0.0, "psnr": [], "pixels": 0}
                )
                d["bits"] += zbits + ybits
                d["zbits"] += zbits
                d["psnr"].append(10 * math.log10(1 / mse))
                d["pixels"] += h * w
                for (g, p), v in per_pass.items():
                    d[f"pass{g}.{p}"] = d.get(f"pass{g}.{p}", 0.0) + v
    return res


@torch.no_grad()
def calibration_inputs(
    nets: ContextNets, crops: torch.Tensor, qualities=(0.0, 25.0, 50.0, 75.0, 100.0)
) -> dict:
    """Real-valued inputs of every pass network over ``crops`` (cached ``y``) at several qualities,
    through the exact hyperprior, to size the integer twins' activations."""
    from ncodec.models.registry import load_model

    base = load_model("image-hp-v1")
    log_scales = log_scale_table(base)
    got: dict = {}
    for q in qualities:
        ys, mu_h, t_h, _ = hyper_inputs(base, crops, [q] * crops.shape[0], exact=True)
        col: dict = {}
        rate_forward(nets, ys, mu_h, t_h, log_scales, ste=False, collect=col)
        for k, v in col.items():
            got.setdefault(k, []).append(v)
    cat = lambda xs: None if xs[0] is None else torch.cat(xs)  # noqa: E731
    return {k: tuple(cat([v[i] for v in vs]) for i in range(3)) for k, vs in got.items()}


def export(ckpt: Path, cache: Path, out: Path, model_id: str = "image-ctx-v1", card: dict | None = None):
    """Integer twins of the checkpoint's networks on ``image-hp-v1``'s transforms, saved to ``out``."""
    from ncodec.models.image_context import ImageContextModel
    from ncodec.models.latent_cache import load as load_cache
    from ncodec.models.registry import load_model

    nets = load_nets(ckpt)
    crops = load_cache(cache)
    crops = crops[torch.randperm(crops.shape[0], generator=torch.Generator().manual_seed(7))[:48]]
    model = ImageContextModel.from_hyperprior(
        load_model("image-hp-v1"), nets, calibration_inputs(nets, crops), model_id
    )
    model.save(out, card)
    return model


@torch.no_grad()
def measure_codec(weights: Path, images: list[Path], qualities=EVAL_QUALITIES) -> dict:
    """The exported model's actual payload bytes, PSNR and decode time (latent decode + synthesis,
    1 thread, CPU seconds so that other load on the machine does not count) per quality, against
    ``image-hp-v1`` coded the format-1 way, summed over ``images``."""
    from ncodec import entropy
    from ncodec.models.image_context import ImageContextModel
    from ncodec.models.latent_codecs.base import UnitShape
    from ncodec.models.registry import load_model

    base, ctx = load_model("image-hp-v1"), ImageContextModel.load(weights)
    codec = ctx.latent_codec(threads=1)
    out: dict = {}
    for path in images:
        x, (h, w) = load_image(path)
        y = base.analysis(x)
        for q in qualities:
            ys, z_hat = base.scale_latents(y, q)
            shape = UnitShape(tuple(ys.shape), tuple(z_hat.shape))
            # image-hp-v1, format 1: z part, y part
            mu_fx, t_h = ctx.hyper_fx(z_hat)
            sym = torch.round(ys.double() - mu_fx.double() / 256).to(torch.int32)
            zi = base.z_indexes(tuple(z_hat.shape))
            z_data = entropy.encode(z_hat.to(torch.int32).numpy().reshape(-1), zi, base.z_tables, threads=1)
            y_data = entropy.encode(
                sym.numpy().reshape(-1), t_h.to(torch.int32).numpy().reshape(-1), base.y_tables, threads=1
            )
            t0 = time.process_time()
            zd = entropy.decode(z_data, zi, base.z_tables, threads=1)
            mu2, t2 = ctx.hyper_fx(torch.from_numpy(zd.astype(np.int64)).view(shape.z))
            sd = entropy.decode(y_data, t2.to(torch.int32).numpy().reshape(-1), base.y_tables, threads=1)
            ys_hat0 = torch.from_numpy(sd.astype(np.int64)).view(shape.y).double() + mu2.double() / 256
            t_lat0 = time.process_time() - t0
            x0 = base.synthesize(ys_hat0, q)
            t_all0 = time.process_time() - t0
            c = codec.compress(ys, z_hat)
            t0 = time.process_time()
            ys_hat1 = codec.decompress(c.parts, shape)
            t_lat1 = time.process_time() - t0
            x1 = ctx.synthesize(ys_hat1, q)
            t_all1 = time.process_time() - t0
            assert torch.equal(ys_hat1, c.ys_hat)
            for name, nbytes, xh, tl, ta in (
                ("hp", len(z_data) + len(y_data) + 1, x0, t_lat0, t_all0),
                ("ctx", len(c.payload), x1, t_lat1, t_all1),
            ):
                mse = float(((xh[..., :h, :w] - x[..., :h, :w]) ** 2).mean())
                d = out.setdefault(name, {}).setdefault(
                    q, {"bytes": 0, "psnr": [], "pixels": 0, "t_lat": 0.0, "t_dec": 0.0}
                )
                d["bytes"] += nbytes
                d["psnr"].append(10 * math.log10(1 / mse))
                d["pixels"] += h * w
                d["t_lat"] += tl
                d["t_dec"] += ta
    summary = {}
    for name, per_q in out.items():
        for q, d in per_q.items():
            hp = out["hp"][q]
            summary.setdefault(name, {})[q] = {
                "bpp": 8 * d["bytes"] / d["pixels"],
                "saving_%": 100 * (1 - d["bytes"] / hp["bytes"]),
                "psnr": float(np.mean(d["psnr"])),
                "dpsnr": float(np.mean(d["psnr"]) - np.mean(hp["psnr"])),
                "latent_decode_s_per_mpix": d["t_lat"] / d["pixels"] * 1e6,
                "decode_s_per_mpix": d["t_dec"] / d["pixels"] * 1e6,
            }
    return summary


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, default=Path("runs/cache/image-hp-v1"))
    ap.add_argument("--out", type=Path, default=Path("runs/context"))
    ap.add_argument("--steps", type=int, default=100000)
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--context", type=str, default=json.dumps(DEFAULT_CONTEXT), help="JSON context config")
    ap.add_argument("--export", type=Path, default=None, help="write the inference weights of --out here")
    ap.add_argument("--measure", type=Path, default=None, help="measure an exported weights file")
    ap.add_argument("--eval", nargs="*", type=Path, default=None, help="checkpoints to evaluate instead")
    ap.add_argument("--model-id", default="image-ctx-v1", help="model name --export writes into the weights")
    ap.add_argument(
        "--widen",
        nargs=2,
        metavar=("CHECKPOINT", "HIDDEN"),
        default=None,
        help="write CHECKPOINT widened to HIDDEN channels (same function) as --out's checkpoint",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.eval is not None:
        from ncodec.models.latent_cache import held_in_split

        _, held = held_in_split()
        nets = {str(p): load_nets(p) for p in args.eval}
        print(json.dumps(summarize(evaluate(nets, held)), indent=1))
        return
    if args.measure is not None:
        from ncodec.models.latent_cache import held_in_split

        print(json.dumps(measure_codec(args.measure, held_in_split()[1]), indent=1))
        return
    if args.export is not None:
        export(args.out / "checkpoint.safetensors", args.cache, args.export, args.model_id)
        return
    if args.widen is not None:
        print(widen(Path(args.widen[0]), args.out / "checkpoint.safetensors", int(args.widen[1])))
        return
    train(
        args.cache,
        args.out,
        args.steps,
        args.seconds,
        json.loads(args.context),
        args.batch,
        args.lr,
        args.seed,
    )


def summarize(res: dict) -> dict:
    out = {}
    for name, per_q in res.items():
        for q, d in per_q.items():
            hp = res["hp"][q]
            out.setdefault(name, {})[q] = {
                "bpp": d["bits"] / d["pixels"],
                "saving_%": 100 * (1 - d["bits"] / hp["bits"]),
                "psnr": float(np.mean(d["psnr"])),
                "dpsnr": float(np.mean(d["psnr"]) - np.mean(hp["psnr"])),
            }
    return out


if __name__ == "__main__":
    main()
