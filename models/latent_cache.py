"""Cached latents of the frozen ``image-hp-v1`` analysis transform, for training entropy models on a CPU.

``python -m ncodec.models.latent_cache [--crops N] [--out DIR]`` runs the shipped model's ``g_a``
once over random 256x256 crops of the training images (random 0.5-1x downscale and flips, as
``ncodec train image`` crops) and stores the unscaled latents ``y`` (float16, ``[n, M, 16, 16]``)
in chunks ``chunk_0000.safetensors``, ... under ``runs/cache/image-hp-v1/`` (git-ignored). Each
chunk is seeded by its index, so the cache is rebuildable and an interrupted run resumes at the
first missing chunk.

A few training images are never cached (:func:`held_in_split`): they measure rate savings on
images the context model never saw, without touching Kodak (evaluation only).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
DEFAULT_DATA = Path("../shared/data/images/train")
DEFAULT_OUT = Path("runs/cache/image-hp-v1")
CROP = 256
CHUNK = 200
HELD_IN_EVERY = 100  # every 100th training image (sorted), from the 50th: 6 of the 600


def list_images(root: Path) -> list[Path]:
    """Every image under ``root``, sorted; refuses a Kodak folder (evaluation only)."""
    files = sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in IMAGE_EXTS)
    if any("kodak" in p.parts for p in files):
        raise ValueError("refusing to train on Kodak: it is the evaluation set")
    return files


def held_in_split(root: Path = DEFAULT_DATA) -> tuple[list[Path], list[Path]]:
    """(training images that are cached, held-in images that are not)."""
    files = list_images(root)
    held = [f for i, f in enumerate(files) if i % HELD_IN_EVERY == HELD_IN_EVERY // 2]
    train = [f for i, f in enumerate(files) if i % HELD_IN_EVERY != HELD_IN_EVERY // 2]
    return train, held


def _crop(rng: random.Random, img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    scale = max(rng.uniform(0.5, 1.0), CROP / min(h, w))
    if scale != 1.0:
        nh, nw = max(CROP, round(h * scale)), max(CROP, round(w * scale))
        img = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BICUBIC))
        h, w = nh, nw
    y, x = rng.randrange(h - CROP + 1), rng.randrange(w - CROP + 1)
    c = img[y : y + CROP, x : x + CROP]
    return c[:, ::-1] if rng.random() < 0.5 else c


def crop_chunks(
    out: Path, crops: int, data: Path, model_name: str, digest: str, seed: int
) -> Iterator[tuple[int, int, Path, random.Random, np.ndarray]]:
    """Writes ``out/manifest.json`` and yields, for each of the ``ceil(crops / CHUNK)`` chunks not
    yet written, ``(k, n_chunks, path, rng, crops uint8 [CHUNK, CROP, CROP, 3])``; chunk ``k``'s
    crops and ``rng`` are seeded by ``seed + k``, so a cache is rebuildable and resumable."""
    out.mkdir(parents=True, exist_ok=True)
    train, held = held_in_split(data)
    manifest = {"model": model_name, "digest": digest, "crop": CROP, "train_images": len(train)}
    (out / "manifest.json").write_text(json.dumps({**manifest, "held_in": [str(f) for f in held]}, indent=1))
    images = [np.asarray(Image.open(f).convert("RGB")) for f in train]
    n_chunks = -(-crops // CHUNK)
    for k in range(n_chunks):
        path = out / f"chunk_{k:04d}.safetensors"
        if path.exists():
            continue
        rng = random.Random(seed + k)
        yield (
            k,
            n_chunks,
            path,
            rng,
            np.stack([_crop(rng, images[rng.randrange(len(images))]) for _ in range(CHUNK)]),
        )


def save_chunk(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Writes a chunk atomically (an interrupted build leaves no half chunk)."""
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(path)


def build(out: Path, crops: int, data: Path = DEFAULT_DATA, model_name: str = "image-hp-v1") -> None:
    """Writes (or completes) ``ceil(crops / CHUNK)`` chunks under ``out``."""
    from ncodec.models.registry import load_model

    model = load_model(model_name)
    t0 = time.time()
    for k, n_chunks, path, _, batch in crop_chunks(out, crops, data, model_name, model.digest.hex(), 1000):
        x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float().div_(255.0)
        ys = [model.analysis(x[i : i + 8]) for i in range(0, CHUNK, 8)]
        save_chunk(path, {"y": torch.cat(ys).to(torch.float16).contiguous()})
        print(f"chunk {k + 1}/{n_chunks} ({time.time() - t0:.0f} s)", flush=True)


def load(out: Path = DEFAULT_OUT) -> torch.Tensor:
    """All cached latents ``[n, M, 16, 16]`` float16."""
    files = sorted(Path(out).glob("chunk_*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no cached latents under {out}: run python -m ncodec.models.latent_cache")
    return torch.cat([load_file(str(f))["y"] for f in files])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--crops", type=int, default=2400)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    build(args.out, args.crops, args.data)


if __name__ == "__main__":
    main()
