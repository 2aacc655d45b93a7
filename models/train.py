"""Training of the variable-rate image codec (``ncodec train image``).

Random crops from ``../shared/data/images/train`` (never Kodak), a rate-distortion loss at a
random quality per crop, and the common loop of :mod:`ncodec.models.train_core` (Adam, resumable
safetensors checkpoints, warm start, data-parallel under ``torchrun``). Runs on CPU or CUDA (TF32
on CUDA).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ncodec.models import train_core as core

# re-exported: .gpu/chunk.sh and tests import these from their old home
from ncodec.models.train_core import merge_checkpoint as merge_checkpoint
from ncodec.models.train_core import split_checkpoint as split_checkpoint
from ncodec.models.train_core import warm_start as warm_start

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


@dataclass
class ImageTrainer(core.Trainer):
    """An :class:`~ncodec.models.image.ImageHyperprior` (``n``, ``m`` channels) on random
    ``crop x crop`` crops of the images under ``data``, each at a random quality; ``workers`` > 0
    crops in background processes. Train it with :func:`~ncodec.models.train_core.fit`."""

    data: Path
    crop: int = 256
    n: int = 128
    m: int = 192
    workers: int = 0

    def build(self) -> torch.nn.Module:
        from ncodec.models.image import ImageHyperprior

        return ImageHyperprior(self.n, self.m)

    def sizes(self) -> dict:
        return {"n": self.n, "m": self.m, "crop": self.crop}

    def prepare(self, out_dir: Path, dist: core.Dist) -> dict:
        if dist.device.startswith("cuda"):
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        self.files = list_images(self.data)
        return {"data": str(self.data)}

    def batches(self, seed: int, size: int):
        """``[size, 3, crop, crop]`` tensors in [0, 1]."""
        return crop_batches(CropSampler(self.files, self.crop, seed=seed), size, self.workers, seed)

    def step(self, run: core.Run, x: torch.Tensor, s: core.Step) -> dict[str, torch.Tensor]:
        from ncodec.models.image import rd_loss

        model = run.model
        q = torch.rand(x.shape[0], device=x.device) * (model.levels - 1)
        losses = rd_loss(model, model(x, q), x, q)
        return {**losses, "aux": run.opt.step(model, losses["loss"], s.warming)}


def main(argv: list[str] | None = None) -> int:
    """``ncodec train image`` on its own: parses ``argv`` and runs it; returns the exit status."""
    return core.cli_main(argv, "ncodec train image", __doc__, add_train_args, run_train)


def add_train_args(p) -> None:
    """Adds the options of ``ncodec train image`` to an :class:`argparse.ArgumentParser`."""
    default_data = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images" / "train"
    p.add_argument("--data", type=Path, default=default_data, help="folder of training images")
    core.add_run_args(p, out=Path("runs/image"), steps=100000, lr=1e-4, log_every=50, ckpt_every=200)
    p.add_argument("--workers", type=int, default=0, help="background cropping processes")
    p.add_argument("--crop", type=int, default=256)
    p.add_argument(
        "--compact-to",
        type=Path,
        default=None,
        help="only write a compact copy of --data here (0.8x, JPEG q90)",
    )
    p.add_argument("--n", type=int, default=128)
    p.add_argument("--m", type=int, default=192)


def run_train(args) -> int:
    """Runs ``ncodec train image`` (or only ``--compact-to``); returns the exit status."""
    if args.compact_to is not None:
        print(f"{args.compact_to}: {compact_copy(args.data, args.compact_to) / 2**20:.1f} MiB")
        return 0
    trainer = ImageTrainer(args.data, crop=args.crop, n=args.n, m=args.m, workers=args.workers)
    return core.fit_from_args(trainer, args)


def export_weights(
    ckpt: Path, out: Path, data: Path, model_id: str = "image-hp-v1", card: dict | None = None
) -> Path:
    """Exports a training checkpoint to a shipped weights file (integer hyper-synthesis and
    tables included), calibrating integer activations on 16 training crops (never Kodak)."""
    from ncodec.models.image_model import export

    model = core.load_trained(ckpt, lambda meta: ImageTrainer(data, n=meta["n"], m=meta["m"]).build())
    calib = CropSampler(list_images(data), 256, seed=1234, downscale=False).batch(16)
    export(model, calib, model_id).save(Path(out), card=card)
    return Path(out)


if __name__ == "__main__":
    raise SystemExit(main())
