"""Decoder-only fine-tune of the synthesis on cached decoded latents (issue 22).

``python -m ncodec.models.train_synthesis cache|train|measure|export``

The analysis, the hyperprior and the context entropy model of ``image-ctx-v2`` stay frozen, so the
bitstream does too: what the decoder sees for an image at a quality is fixed, and only ``g_s`` and
its inverse gains per trained level (``log_inv_gain``) train, to lower the distortion at exactly the
same bytes.

* ``cache``: random 256x256 crops of the training images (as :mod:`ncodec.models.latent_cache`
  crops them; never the held-in images, never Kodak) at a random quality 0..100 each, with the
  latents ``ys_hat`` the ``image-ctx-v2`` codec decodes for them (through its own exact
  quantisation, which rounds around the context means), stored exactly (``ys_hat * 256``, int32)
  with the pixels (uint8) and the quality, in seeded chunks under ``runs/cache/synthesis-ctx-v2``.
* ``train``: Adam on the training objective's distortion term, ``lambda(q) * 255^2 * MSE``
  (``lambda`` log-linear in the rate level as the gains are, extrapolated below the lowest trained
  level as they are), one thread, resumable (``DIR/checkpoint.safetensors``: weights, Adam moments,
  step, CPU seconds; no pickle), with weight snapshots every ``--snapshot`` steps to choose from.
* ``measure``: the held-in images (:func:`~ncodec.models.latent_cache.held_in_split`) coded once per
  quality by ``image-ctx-v2``; PSNR-RGB of the 8-bit reconstruction of the same ``ys_hat`` by the
  base and by each given checkpoint, and a BD-rate over the qualities.
* ``export``: ``image-ctx-v2``'s weights with a checkpoint's ``g_s`` and ``log_inv_gain`` under a new
  model id (the same kind, ``image-context``: the encoder and payload are ``image-ctx-v2``'s).

Measured (``image-ctx-v2``'s card, "Decoder-only synthesis fine-tune"): about +0.01 dB at equal
bytes on the held-in images after 38 CPU-minutes, a BD-rate of -0.2 %; not shipped.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn

from ncodec.models.train_core import load_state, save_state

BASE = "image-ctx-v2"
DEFAULT_CACHE = Path("runs/cache/synthesis-ctx-v2")
DEFAULT_OUT = Path("runs/synth")
CHUNK = 200
FX = 256  # ys_hat is a multiple of 2**-8 (the context codec's fixed point)
MEASURE_QUALITIES = (10.0, 35.0, 60.0, 85.0)


def load_base():
    """A private (mutable) copy of the base model, not the registry's cached instance."""
    from ncodec.models.image_context import ImageContextModel
    from ncodec.models.registry import SHIPPED

    return ImageContextModel.load(SHIPPED[BASE].weights_path)


# ---- cache -------------------------------------------------------------------------------


def build_cache(out: Path, crops: int, data: Path, seconds: float = float("inf")) -> None:
    """Writes (or completes) ``ceil(crops / CHUNK)`` chunks under ``out``, each seeded by its index;
    stops after the chunk that passes ``seconds``."""
    from ncodec.models.latent_cache import crop_chunks, save_chunk

    model = load_base()
    codec = model.latent_codec(threads=1)
    t0 = time.time()
    for k, n_chunks, path, rng, batch in crop_chunks(out, crops, data, BASE, model.digest.hex(), 5000):
        qs = [rng.uniform(0.0, 100.0) for _ in range(CHUNK)]
        x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).contiguous()
        xf = x.float().div(255.0)
        y = torch.cat([model.analysis(xf[i : i + 8]) for i in range(0, CHUNK, 8)])
        fx = []
        for i in range(CHUNK):
            # the codec's own quantisation: hyper-latents, exact prior, context passes
            ys, z_hat = model.scale_latents(y[i : i + 1], qs[i])
            ys_hat = codec.compress(ys, z_hat).ys_hat
            fx.append(torch.round(ys_hat * FX).to(torch.int32))
        q = torch.tensor(qs, dtype=torch.float32)
        save_chunk(path, {"x": x, "ys_hat_fx": torch.cat(fx).contiguous(), "q": q})
        print(f"chunk {k + 1}/{n_chunks} ({time.time() - t0:.0f} s)", flush=True)
        if time.time() - t0 > seconds:
            break


def load_cache(cache: Path) -> dict[str, Tensor]:
    files = sorted(Path(cache).glob("chunk_*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no cache under {cache}: run python -m ncodec.models.train_synthesis cache")
    parts = [load_file(str(f)) for f in files]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


# ---- training ----------------------------------------------------------------------------


PEDESTAL = 2.0**-36  # CompressAI's GDN re-parametrisation: (2**-18)**2
BETA_MIN = 1e-6


class ReparamGDN(nn.Module):
    """A stored GDN layer trained in CompressAI's re-parametrisation (``beta = max(p_b,
    sqrt(BETA_MIN + PEDESTAL))**2 - PEDESTAL``, ``gamma`` likewise with bound 0), as ``image-hp-v1``
    was trained: most stored ``gamma`` entries are 0 and many ``beta`` are 1e-6, so Adam steps on
    the effective values themselves would move them by orders of magnitude."""

    def __init__(self, gdn: nn.Module):
        super().__init__()
        self.inverse = gdn.inverse
        self.pb = nn.Parameter(torch.sqrt(gdn.beta.detach().clamp_min(0) + PEDESTAL))
        self.pg = nn.Parameter(torch.sqrt(gdn.gamma.detach().clamp_min(0) + PEDESTAL))

    @staticmethod
    def effective(pb: Tensor, pg: Tensor) -> tuple[Tensor, Tensor]:
        beta = pb.clamp_min(math.sqrt(BETA_MIN + PEDESTAL)) ** 2 - PEDESTAL
        gamma = pg.clamp_min(math.sqrt(PEDESTAL)) ** 2 - PEDESTAL
        return beta, gamma

    def forward(self, x: Tensor) -> Tensor:
        beta, gamma = self.effective(self.pb, self.pg)
        c = x.shape[1]
        norm = F.conv2d(x * x, gamma.view(c, c, 1, 1), beta)
        return x * (torch.sqrt(norm) if self.inverse else torch.rsqrt(norm))


def to_training(model) -> None:
    """Swaps ``model.g_s``'s GDN layers for :class:`ReparamGDN` (training only)."""
    for i, mod in enumerate(model.g_s):
        if hasattr(mod, "gamma"):
            model.g_s[i] = ReparamGDN(mod)


def trainable(model) -> dict[str, Tensor]:
    """The parameters that train: ``g_s`` and the inverse gains, by state-dict name."""
    t = {f"g_s.{k}": v for k, v in model.g_s.named_parameters()}
    t["log_inv_gain"] = model.log_inv_gain
    return t


def effective_weights(w: dict[str, Tensor]) -> dict[str, Tensor]:
    """Checkpoint weights (training names) -> the inference model's (stored GDN ``beta``/``gamma``)."""
    out = {}
    for k, v in w.items():
        if k.endswith(".pb"):
            beta, gamma = ReparamGDN.effective(v, w[k[:-3] + ".pg"])
            out[k[:-3] + ".beta"], out[k[:-3] + ".gamma"] = beta, gamma
        elif not k.endswith(".pg"):
            out[k] = v
    return out


def lam(model, quality: float) -> float:
    """``lambda`` at ``quality``: log-linear in the rate level between (or beyond) trained levels,
    as the gains are interpolated (the original training clamped to the trained levels, whose
    range it sampled)."""
    q = model.level(quality)
    ll = np.log(np.asarray(model.config["lambdas"], dtype=np.float64))
    lo = min(max(math.floor(q), 0), len(ll) - 2)
    t = q - lo
    return float(np.exp((1 - t) * ll[lo] + t * ll[lo + 1]))


def inv_gains(model, qualities: list[float]) -> Tensor:
    """Differentiable ``[B, M, 1, 1]`` inverse gains at per-sample qualities."""
    return torch.cat([model._gain(model.log_inv_gain, q) for q in qualities])


def save_checkpoint(path: Path, model, opt: torch.optim.Optimizer | None, meta: dict) -> None:
    save_state(path, trainable(model), "w", opt, meta)


def load_checkpoint(path: Path) -> tuple[dict, dict[str, Tensor], dict]:
    return load_state(path, "w")


def apply_weights(model, w: dict[str, Tensor]) -> None:
    """Loads checkpoint weights ``w`` (names as :func:`trainable` gives them in training) into
    ``model``, a training model (after :func:`to_training`) or an inference one."""
    if not any(isinstance(m, ReparamGDN) for m in model.g_s):
        w = effective_weights(w)
    with torch.no_grad():
        for k, v in trainable(model).items():
            v.copy_(w[k])


def train(
    cache: Path, out: Path, seconds: float, steps: int, batch: int, lr: float, seed: int, snapshot: int
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint.safetensors"
    model = load_base()
    to_training(model)
    for p in model.parameters():
        p.requires_grad_(False)
    params = list(trainable(model).values())
    for p in params:
        p.requires_grad_(True)
    model.g_s.train()
    meta = {"base": BASE, "step": 0, "elapsed": 0.0, "cpu_s": 0.0, "batch": batch, "lr": lr, "seed": seed}
    opt = torch.optim.Adam(params, lr=lr)
    if ckpt.exists():
        meta, w, opt_state = load_checkpoint(ckpt)
        apply_weights(model, w)
        sd = opt.state_dict()
        sd["state"] = opt_state
        opt.load_state_dict(sd)
    data = load_cache(cache)
    n = data["x"].shape[0]
    lams = torch.tensor([lam(model, float(q)) for q in data["q"]])
    print(f"{n} cached crops, {sum(p.numel() for p in params)} trainable parameters", flush=True)
    gen = torch.Generator().manual_seed(seed + meta["step"])
    t0, c0 = time.time(), time.process_time()
    start_elapsed, start_cpu = meta["elapsed"], meta["cpu_s"]
    # each run plans its own schedule: constant lr, then cosine decay to 5 % over the last 30 % of
    # the time from the first run's start to this run's end (as train_context)
    total_s = start_elapsed + seconds
    meta["total_seconds"], meta["lr"] = total_s, lr
    ref = load_base()  # the frozen base decoder: every 25th batch is scored by both
    log: list[tuple[float, float]] = []
    gains: list[float] = []
    while meta["step"] < steps and time.time() - t0 < seconds:
        idx = torch.randint(0, n, (batch,), generator=gen)
        x = data["x"][idx].float().div_(255.0)
        qs = data["q"][idx].tolist()
        ys_hat = data["ys_hat_fx"][idx].float().div_(FX)
        frac = min((start_elapsed + time.time() - t0) / max(total_s, 1.0), 1.0)
        cur = lr if frac < 0.7 else lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (frac - 0.7) / 0.3)))
        for g in opt.param_groups:
            g["lr"] = cur
        inp = (ys_hat * inv_gains(model, qs)).contiguous(memory_format=torch.channels_last)
        x_hat = model.g_s(inp)
        mse = (x_hat - x).square().flatten(1).mean(1)
        loss = (lams[idx] * 255**2 * mse).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        meta["step"] += 1
        psnr = -10 * torch.log10(mse.detach())
        log.append((float(loss.detach()), float(psnr.mean())))
        if meta["step"] % 25 == 0:
            with torch.no_grad():
                x0 = ref.g_s((ys_hat * inv_gains(ref, qs)).contiguous(memory_format=torch.channels_last))
                gains.append(float((psnr + 10 * torch.log10((x0 - x).square().flatten(1).mean(1))).mean()))
        if meta["step"] % 25 == 0:
            ls, ps = map(np.mean, zip(*log))
            el = start_elapsed + time.time() - t0
            print(
                f"step {meta['step']} loss {ls:.4f} psnr {ps:.3f} dpsnr(last 10 scored) "
                f"{np.mean(gains[-10:]):+.4f} lr {cur:.2e} {el:.0f} s",
                flush=True,
            )
            log = []
        if meta["step"] % 100 == 0 or meta["step"] % snapshot == 0:
            meta["elapsed"] = start_elapsed + time.time() - t0
            meta["cpu_s"] = start_cpu + time.process_time() - c0
            save_checkpoint(ckpt, model, opt, meta)
            if meta["step"] % snapshot == 0:
                save_checkpoint(out / f"step_{meta['step']:06d}.safetensors", model, None, meta)
    meta["elapsed"] = start_elapsed + time.time() - t0
    meta["cpu_s"] = start_cpu + time.process_time() - c0
    save_checkpoint(ckpt, model, opt, meta)
    print(
        f"saved {ckpt} at step {meta['step']} ({meta['elapsed']:.0f} s, {meta['cpu_s']:.0f} CPU-s)",
        flush=True,
    )
    return ckpt


# ---- measure and export ------------------------------------------------------------------


def _psnr8(x_hat: Tensor, x: Tensor) -> float:
    """PSNR-RGB of the 8-bit reconstruction (as a decoded PNG) against 8-bit ``x``."""
    xh = torch.round(x_hat.clamp(0, 1) * 255)
    mse = float((xh - torch.round(x * 255)).square().mean())
    return 10 * math.log10(255**2 / mse)


@torch.no_grad()
def measure(ckpts: list[Path], images: list[Path], qualities=MEASURE_QUALITIES) -> dict:
    """Per quality: payload bytes (once: the payload does not depend on the decoder) and mean
    PSNR-RGB over ``images`` for the base decoder and each checkpoint's, and each one's PSNR change
    at the same bytes (models sit below the evaluation, so a BD-rate over these curves is
    ``ncodec.eval.bdrate.bd_rate``'s to compute)."""
    from ncodec.models.train_context import load_image

    base = load_base()
    decoders = {"base": base}
    for p in ckpts:
        m = load_base()
        apply_weights(m, load_checkpoint(p)[1])
        decoders[str(p)] = m
    codec = base.latent_codec(threads=1)
    acc: dict = {}
    for path in images:
        x, (h, w) = load_image(path)
        y = base.analysis(x)
        for q in qualities:
            ys, z_hat = base.scale_latents(y, q)
            c = codec.compress(ys, z_hat)
            for name, m in decoders.items():
                d = acc.setdefault(name, {}).setdefault(q, {"bytes": 0, "pixels": 0, "psnr": []})
                d["bytes"] += len(c.payload)
                d["pixels"] += h * w
                d["psnr"].append(_psnr8(m.synthesize(c.ys_hat, q)[..., :h, :w], x[..., :h, :w]))
    out: dict = {}
    for name, per_q in acc.items():
        rows = {}
        for q, d in per_q.items():
            b = acc["base"][q]
            rows[q] = {
                "bpp": 8 * d["bytes"] / d["pixels"],
                "psnr": float(np.mean(d["psnr"])),
                "dpsnr": float(np.mean(d["psnr"]) - np.mean(b["psnr"])),
            }
        out[name] = {"per_quality": rows}
    return out


def export(ckpt: Path, dst: Path, model_id: str, card: dict | None = None):
    """``image-ctx-v2``'s weights file with ``ckpt``'s synthesis, as ``model_id``."""
    from ncodec.models.weights_io import weights_digest

    model = load_base()
    apply_weights(model, load_checkpoint(ckpt)[1])
    model.model_id = model_id
    model.save(dst, card)
    model.digest = weights_digest(model.tensors())
    print(f"{dst}: digest {model.digest[:16].hex()}")
    return model


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cache", help="build the cache of crops and decoded latents")
    c.add_argument("--crops", type=int, default=3000)
    c.add_argument("--seconds", type=float, default=float("inf"), help="stop after the chunk past this")
    c.add_argument("--out", type=Path, default=DEFAULT_CACHE)
    c.add_argument("--data", type=Path, default=Path("../shared/data/images/train"))
    t = sub.add_parser("train", help="train (or resume) the synthesis")
    t.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    t.add_argument("--out", type=Path, default=DEFAULT_OUT)
    t.add_argument("--seconds", type=float, default=600)
    t.add_argument("--steps", type=int, default=10**9)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--lr", type=float, default=5e-5)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--snapshot", type=int, default=500, help="weights snapshot every N steps")
    m = sub.add_parser("measure", help="held-in PSNR at equal bytes, base vs checkpoints")
    m.add_argument("ckpts", nargs="+", type=Path)
    m.add_argument("--qualities", type=str, default=",".join(str(int(q)) for q in MEASURE_QUALITIES))
    e = sub.add_parser("export", help="write the inference weights of a checkpoint")
    e.add_argument("ckpt", type=Path)
    e.add_argument("dst", type=Path)
    e.add_argument("--model-id", default="image-ctx-v3")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.cmd == "cache":
        build_cache(args.out, args.crops, args.data, args.seconds)
    elif args.cmd == "train":
        train(args.cache, args.out, args.seconds, args.steps, args.batch, args.lr, args.seed, args.snapshot)
    elif args.cmd == "measure":
        from ncodec.models.latent_cache import held_in_split

        qs = tuple(float(v) for v in args.qualities.split(","))
        print(json.dumps(measure(args.ckpts, held_in_split()[1], qs), indent=1))
    else:
        export(args.ckpt, args.dst, args.model_id)


if __name__ == "__main__":
    main()
