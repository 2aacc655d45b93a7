"""Training of the variable-rate image codec (``ncodec train image``).

Random crops from ``../shared/data/images/train`` (never Kodak), a rate-distortion loss at a
random quality per crop, Adam, and resumable checkpoints in safetensors (model, optimiser moments
and step in one file; no pickle). Runs on CPU or CUDA (TF32 on CUDA).
"""

from __future__ import annotations

import json
import math
import platform
import random
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def list_images(root: Path) -> list[Path]:
    """Every image under ``root``, sorted; refuses a Kodak folder (evaluation only)."""
    files = sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in IMAGE_EXTS)
    if any("kodak" in p.parts for p in files):
        raise ValueError("refusing to train on Kodak: it is the evaluation set")
    return files


def compact_copy(src: Path, dst: Path, scale: float = 0.8, quality: int = 90, min_side: int = 256) -> int:
    """Writes every training image under ``src`` to ``dst`` resized by ``scale`` (Lanczos, never
    below ``min_side``) as JPEG ``quality`` 4:4:4: a copy small enough (about 28 MB for the shared
    600 images) to travel with a GPU run. Returns the bytes written."""
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    total = 0
    for f in list_images(Path(src)):
        im = Image.open(f).convert("RGB")
        w, h = im.size
        size = (max(min_side, round(w * scale)), max(min_side, round(h * scale)))
        out = dst / f"{f.parent.name}_{f.stem}.jpg"
        im.resize(size, Image.LANCZOS).save(out, quality=quality, subsampling=0)
        total += out.stat().st_size
    return total


class CropSampler:
    """Random ``crop x crop`` patches from images held in memory as uint8 ``[H, W, 3]`` arrays.

    Images smaller than the crop are upscaled; crops are randomly flipped. ``downscale`` adds a
    random 0.5–1x resize first, so the model also sees sharper (downsampled) content.
    """

    def __init__(self, files: list[Path], crop: int, seed: int = 0, downscale: bool = True):
        self.crop = crop
        self.rng = random.Random(seed)
        self.downscale = downscale
        self.images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
        if not self.images:
            raise ValueError("no training images found")

    def batch(self, size: int) -> torch.Tensor:
        out = np.empty((size, self.crop, self.crop, 3), dtype=np.uint8)
        for i in range(size):
            img = self.images[self.rng.randrange(len(self.images))]
            h, w = img.shape[:2]
            scale = self.rng.uniform(0.5, 1.0) if self.downscale else 1.0
            scale = max(scale, self.crop / min(h, w))
            if scale != 1.0:
                nh, nw = max(self.crop, round(h * scale)), max(self.crop, round(w * scale))
                img = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BICUBIC))
                h, w = nh, nw
            y, x = self.rng.randrange(h - self.crop + 1), self.rng.randrange(w - self.crop + 1)
            c = img[y : y + self.crop, x : x + self.crop]
            if self.rng.random() < 0.5:
                c = c[:, ::-1]
            out[i] = c
        return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)


class _CropStream(torch.utils.data.IterableDataset):
    """Endless batches from a :class:`CropSampler`, one differently seeded sampler per worker."""

    def __init__(self, sampler: CropSampler, batch: int, seed: int):
        self.sampler, self.size, self.seed = sampler, batch, seed

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        self.sampler.rng = random.Random(self.seed * 1000 + (info.id if info else 0))
        while True:
            yield self.sampler.batch(self.size)


def crop_batches(sampler: CropSampler, batch: int, workers: int, seed: int):
    """Iterator of ``[batch,3,crop,crop]`` tensors; ``workers`` > 0 crops in background processes."""
    if workers <= 0:
        while True:
            yield sampler.batch(batch)
    loader = torch.utils.data.DataLoader(
        _CropStream(sampler, batch, seed),
        batch_size=None,
        num_workers=workers,
        pin_memory=True,
        prefetch_factor=4,
        persistent_workers=True,
    )
    yield from loader


def save_checkpoint(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, meta: dict) -> None:
    """Model weights, Adam moments and ``meta`` (JSON) in one safetensors file, written atomically."""
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p)
            if st:
                tensors[f"opt.exp_avg.{names[id(p)]}"] = st["exp_avg"].contiguous().cpu()
                tensors[f"opt.exp_avg_sq.{names[id(p)]}"] = st["exp_avg_sq"].contiguous().cpu()
                meta.setdefault("opt_step", {})[names[id(p)]] = float(st["step"])
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"meta": json.dumps(meta)})
    tmp.replace(path)


def load_checkpoint(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer | None) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["meta"])
    tensors = load_file(str(path))
    state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(state)
    if opt is not None:
        params = dict(model.named_parameters())
        for name, step in meta.get("opt_step", {}).items():
            p = params[name]
            opt.state[p] = {
                "step": torch.tensor(step),
                "exp_avg": tensors[f"opt.exp_avg.{name}"].to(p.device),
                "exp_avg_sq": tensors[f"opt.exp_avg_sq.{name}"].to(p.device),
            }
    return meta


class RunClock:
    """When a resumable run stops and how far through its plan it is.

    ``steps``: planned total steps; ``seconds``: wall time of this run; ``budget``: planned wall
    time across every resumed run (``spent`` of it already used by earlier runs).
    """

    def __init__(self, steps: int, seconds: float | None, budget: float | None, spent: float):
        self.steps, self.seconds, self.budget, self.spent = steps, seconds, budget, spent
        self.t0 = time.time()

    def now(self) -> float:
        """Seconds of this run so far."""
        return time.time() - self.t0

    def running(self, step: int) -> bool:
        now = self.now()
        return (
            step < self.steps
            and (self.seconds is None or now < self.seconds)
            and (self.budget is None or self.spent + now < self.budget)
        )

    def fraction(self, step: int) -> float:
        """Progress through the plan (0..1): steps, or the wall-time budget if that is further."""
        frac = step / max(self.steps, 1)
        if self.budget:
            return max(frac, (self.spent + self.now()) / self.budget)
        if self.seconds:
            return max(frac, self.now() / self.seconds)
        return frac


def scheduled_lr(lr: float, frac: float, step: int, warmup_until: int | None = None) -> float:
    """Learning rate at ``frac`` (0..1) of the planned run: constant, then a cosine decay to 10 %
    over the last 20 %; after a warm start (``warmup_until``: the step where the prior-only phase
    ends), a linear ramp over 500 steps, since fresh Adam moments meet trained weights."""
    cur = lr if frac < 0.8 else lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (frac - 0.8) / 0.2)))
    if warmup_until is not None:
        cur *= min(1.0, max(0.0, (step - warmup_until + 1) / 500))
    return cur


def warm_start(model: torch.nn.Module, weights: Path, kind: str = "image-hyperprior") -> int:
    """Starts a training model from a shipped weights file: the float transforms and gains as
    stored (GDN parameters through CompressAI's re-parametrisation), the hyper-synthesis from its
    integer twin (:func:`~ncodec.models.int_hyper.dequantize_into`); the factorized prior of z is
    learned afresh. Returns how many tensors were set.

    Raises:
        ModelFileError: not a weights file of ``kind``, or one whose shapes do not fit ``model``.
    """
    from ncodec.models.int_hyper import IntHyperSynthesis, dequantize_into
    from ncodec.models.weights_io import ModelFileError, read_weights

    _, stored = read_weights(Path(weights), kind)
    own = model.state_dict()  # shares storage with the parameters
    modules = dict(model.named_modules())
    n = 0
    with torch.no_grad():
        for key, value in stored.items():
            if not key.startswith("float."):
                continue
            key = key[len("float.") :]
            parent, _, attr = key.rpartition(".")
            mod = modules.get(parent)
            if attr in ("beta", "gamma") and hasattr(mod, f"{attr}_reparam"):
                param = getattr(mod, attr)
                param.copy_(getattr(mod, f"{attr}_reparam").init(value.reshape(param.shape)))
            elif key in own and own[key].shape == value.shape:
                own[key].copy_(value)
            else:
                continue
            n += 1
    try:
        int_hs = IntHyperSynthesis.from_state_tensors(stored)
        dequantize_into(int_hs, model.h_s)
    except ValueError as e:
        raise ModelFileError(f"{weights}: does not fit this model ({e})") from None
    return n + len(int_hs.layers)


def split_checkpoint(ckpt: Path, out_dir: Path, max_bytes: int = 15 << 20) -> list[Path]:
    """Writes the model part of a checkpoint (no optimiser moments) as safetensors shards of at
    most about ``max_bytes`` each, for transports with a per-file size limit."""
    from safetensors import safe_open

    with safe_open(str(ckpt), "pt") as f:
        meta = f.metadata()["meta"]
    tensors = {k: v for k, v in load_file(str(ckpt)).items() if k.startswith("model.")}
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for k, v in tensors.items():
        nbytes = v.numel() * v.element_size()
        if shards[-1] and size + nbytes > max_bytes:
            shards.append({})
            size = 0
        shards[-1][k] = v
        size += nbytes
    out = []
    for i, part in enumerate(shards):
        path = Path(out_dir) / f"model-{i:02d}-of-{len(shards):02d}.safetensors"
        save_file(part, str(path), metadata={"meta": meta})
        out.append(path)
    return out


def merge_checkpoint(parts: list[Path], out: Path) -> Path:
    """Joins :func:`split_checkpoint` shards into one checkpoint (model only; Adam restarts)."""
    from safetensors import safe_open

    tensors: dict[str, torch.Tensor] = {}
    for part in parts:
        tensors.update(load_file(str(part)))
    with safe_open(str(parts[0]), "pt") as f:
        meta = json.loads(f.metadata()["meta"])
    meta.pop("opt_step", None)
    save_file(tensors, str(out), metadata={"meta": json.dumps(meta)})
    return Path(out)


class RDOptimizers:
    """The optimisers of a hyperprior model: Adam on the model (parameters named ``log_*gain*`` at
    ``gain_lr_scale`` times the rate), Adam on the prior alone for a warm start's warm-up, and Adam
    on the entropy bottleneck's quantiles (its aux loss)."""

    def __init__(self, model: torch.nn.Module, lr: float, gain_lr_scale: float = 1.0):
        named = list(model.named_parameters())
        self.main_params = [p for k, p in named if not k.endswith(".quantiles")]
        gains = [p for k, p in named if "log_" in k and "gain" in k]
        if gain_lr_scale == 1.0 or not gains:
            groups: list = self.main_params
        else:
            other = [p for p in self.main_params if all(p is not g for g in gains)]
            groups = [{"params": other}, {"params": gains, "lr_scale": gain_lr_scale}]
        self.main = torch.optim.Adam(groups, lr=lr)
        main_set = set(self.main_params)
        self.prior = torch.optim.Adam(
            [p for k, p in named if k.startswith("entropy_bottleneck.") and p in main_set], lr=1e-3
        )
        self.aux = torch.optim.Adam([p for k, p in named if k.endswith(".quantiles")], lr=1e-3)

    def set_lr(self, lr: float) -> None:
        for g in self.main.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)

    def step(self, model: torch.nn.Module, loss: torch.Tensor, warming: bool) -> torch.Tensor:
        """One update from ``loss`` (only the prior's while ``warming``), then one of the quantiles;
        returns the aux loss."""
        self.main.zero_grad(set_to_none=True)
        self.prior.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.main_params, 1.0)
        (self.prior if warming else self.main).step()
        aux = model.aux_loss()
        self.aux.zero_grad(set_to_none=True)
        aux.backward()
        self.aux.step()
        return aux.detach()


def start_run(model, opt: RDOptimizers, ckpt: Path, meta: dict, init: Path | None, warmup: int, warm) -> dict:
    """Resumes from ``ckpt`` if it exists, else warm-starts from the weights file ``init`` with
    ``warm(model, init)`` (the prior then trains alone for ``warmup`` steps); returns the run's meta."""
    if ckpt.exists():
        meta = load_checkpoint(ckpt, model, opt.main)
        print(f"resumed at step {meta['step']}", flush=True)
    elif init is not None:
        meta["init"] = str(init)
        print(f"warm start from {init}: {warm(model, Path(init))} tensors", flush=True)
        meta["warmup_until"] = warmup
    return meta


def log_record(meta: dict, acc: dict[str, float], count: int, **extra) -> None:
    """Appends the means of ``acc`` over ``count`` steps (plus ``extra``) to the history and prints it."""
    rec = {k: round(v / count, 4) for k, v in acc.items()}
    rec.update(extra)
    meta["history"].append(rec)
    print(json.dumps(rec), flush=True)


def train(
    data: Path,
    out_dir: Path,
    *,
    steps: int,
    crop: int = 256,
    batch: int = 8,
    lr: float = 1e-4,
    n: int = 128,
    m: int = 192,
    device: str = "cpu",
    seconds: float | None = None,
    budget: float | None = None,
    workers: int = 0,
    init: Path | None = None,
    warmup: int = 600,
    log_every: int = 50,
    ckpt_every: int = 200,
    seed: int = 0,
) -> Path:
    """Trains (or resumes) until ``steps`` total steps or ``seconds`` of wall time in this run;
    returns the checkpoint path (``out_dir/checkpoint.safetensors``).

    ``budget`` is the planned total wall time in seconds across every resumed run: the learning
    rate decays over its last 20 % and training stops when it is spent (for chunked GPU runs).
    ``init``: a shipped weights file that starts a new run (see :func:`warm_start`); its first
    ``warmup`` steps train only the hyper-latent prior (learned afresh), then the learning rate of
    the rest ramps up over 500 steps (fresh Adam moments on trained weights).
    """
    from ncodec.models.image import ImageHyperprior, rd_loss

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    model = ImageHyperprior(n, m).to(device)
    opt = RDOptimizers(model, lr)
    ckpt = out_dir / "checkpoint.safetensors"
    meta = {"step": 0, "seconds": 0.0, "n": n, "m": m, "crop": crop, "batch": batch, "history": []}
    meta = start_run(model, opt, ckpt, meta, init, warmup, warm_start)
    sampler = CropSampler(list_images(data), crop, seed=seed + meta["step"])
    batches = crop_batches(sampler, batch, workers, seed + meta["step"])
    meta["data"] = str(data)
    gpu = f" ({torch.cuda.get_device_name()})" if device.startswith("cuda") else ""
    meta["hardware"] = f"{platform.machine()} {device}{gpu} {torch.get_num_threads()} threads"
    clock = RunClock(steps, seconds, budget, float(meta.get("seconds", 0.0)))
    acc: dict[str, float] = {}
    while clock.running(meta["step"]):
        step = meta["step"]
        # Cosine decay over the last 20% of the planned steps (or of the wall-time budget).
        frac = clock.fraction(step)
        cur_lr = scheduled_lr(lr, frac, step, meta.get("warmup_until"))
        opt.set_lr(cur_lr)
        x = next(batches).to(device, non_blocking=True)
        q = torch.rand(batch, device=device) * (model.levels - 1)
        out = model(x, q)
        losses = rd_loss(model, out, x, q)
        aux = opt.step(model, losses["loss"], warming=step < meta.get("warmup_until", 0))
        for k, v in losses.items():
            acc[k] = acc.get(k, 0.0) + float(v.detach())
        meta["step"] = step + 1
        if meta["step"] % log_every == 0:
            log_record(
                meta,
                acc,
                log_every,
                step=meta["step"],
                lr=cur_lr,
                aux=round(float(aux), 2),
                elapsed=round(meta["seconds"] + clock.now(), 1),
            )
            acc = {}
        if meta["step"] % ckpt_every == 0:
            save_checkpoint(ckpt, model, opt.main, dict(meta, seconds=meta["seconds"] + clock.now()))
    meta["seconds"] += clock.now()
    save_checkpoint(ckpt, model, opt.main, meta)
    return ckpt


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="ncodec train image", description=__doc__)
    add_train_args(p)
    return run_train(p.parse_args(argv))


def add_train_args(p) -> None:
    default_data = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images" / "train"
    p.add_argument("--data", type=Path, default=default_data, help="folder of training images")
    p.add_argument("--out", type=Path, default=Path("runs/image"), help="checkpoint folder")
    p.add_argument("--steps", type=int, default=100000)
    p.add_argument("--seconds", type=float, default=None, help="stop after this much wall time")
    p.add_argument(
        "--budget", type=float, default=None, help="planned total seconds across resumed runs (LR decay)"
    )
    p.add_argument("--workers", type=int, default=0, help="background cropping processes")
    p.add_argument("--ckpt-every", type=int, default=200, help="steps between checkpoints")
    p.add_argument("--init", type=Path, default=None, help="start a new run from a shipped weights file")
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument(
        "--compact-to",
        type=Path,
        default=None,
        help="only write a compact copy of --data here (0.8x, JPEG q90)",
    )
    p.add_argument("--n", type=int, default=128)
    p.add_argument("--m", type=int, default=192)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")


def run_train(args) -> int:
    if args.compact_to is not None:
        size = compact_copy(args.data, args.compact_to)
        print(f"{args.compact_to}: {size / 2**20:.1f} MiB")
        return 0
    ckpt = train(
        args.data,
        args.out,
        steps=args.steps,
        crop=args.crop,
        batch=args.batch,
        lr=args.lr,
        n=args.n,
        m=args.m,
        device=args.device,
        seconds=args.seconds,
        budget=args.budget,
        workers=args.workers,
        ckpt_every=args.ckpt_every,
        init=args.init,
    )
    print(f"checkpoint: {ckpt}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def export_weights(
    ckpt: Path, out: Path, data: Path, model_id: str = "image-hp-v1", card: dict | None = None
) -> Path:
    """Exports a training checkpoint to a shipped weights file (integer hyper-synthesis and
    tables included), calibrating integer activations on 16 training crops (never Kodak)."""
    from safetensors import safe_open

    from ncodec.models.image import ImageHyperprior
    from ncodec.models.image_model import export

    with safe_open(str(ckpt), "pt") as f:
        meta = json.loads(f.metadata()["meta"])
    model = ImageHyperprior(meta["n"], meta["m"])
    load_checkpoint(Path(ckpt), model, None)
    calib = CropSampler(list_images(data), 256, seed=1234, downscale=False).batch(16)
    exported = export(model, calib, model_id)
    exported.save(Path(out), card=card)
    return Path(out)
