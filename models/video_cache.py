"""Cache of frozen ``g_a`` latents for training the temporal entropy model (issue 17).

``python -m ncodec.models.video_cache [--out runs/cache/video] [--seconds S]``

Every record is a *run*: ``T`` consecutive frames (stride 1 or 2) of one crop window from a training
clip of ``../shared/data/video/train`` (never the test sequences ``../shared/data/video/*.mkv``), or
``T`` frames of synthetic motion made from one still training image (global pans at several speeds,
zooms, small rotations, a second image's crop moving across as a foreground object). Each record
holds, per frame:

* ``y``: the image model's frozen analysis ``g_a`` output (unscaled, float16);
* ``q``: the frame's quality (usually one per run; some runs vary it from frame to frame);
* ``mu``, ``sig``: the exact integer hyperprior prediction of ``ys = y * gain(q)`` (``2**-8`` units);
* ``yhat``: the frame's latents decoded as intra coding would (``round(ys - mu) * 256 + mu``).

Records are written atomically one by one under ``runs/cache/video/train`` (a run that exists is
skipped, so an interrupted cache resumes); the held-out clips (``HOLDOUT``: training clips never
trained on, used for measuring) are cached whole-frame under ``runs/cache/video/eval``. Every
run's crop, stride, qualities and motion come from a seed fixed by its name.
"""

from __future__ import annotations

import argparse
import math
import random
import time
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

VIDEO_DIR = Path("../shared/data/video/train")
IMAGE_DIR = Path("../shared/data/images/train")
OUT_DIR = Path("runs/cache/video")
HOLDOUT = ("davis2016_dog_854x480", "davis2016_kite-surf_854x480", "cityscapes_seq0005_1024x512")
"""Training clips kept out of training and used to measure P-frame bits against intra coding."""
T = 6
CROP_H, CROP_W = 256, 384
EVAL_FRAMES = 12


def read_clip(path: Path) -> list[np.ndarray]:
    """Every frame of a clip as uint8 RGB ``[H, W, 3]`` (PyAV)."""
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 ``[H, W, 3]`` -> float ``[1, 3, H', W']`` in [0, 1], edge-padded to multiples of 64."""
    h, w = rgb.shape[:2]
    a = np.pad(rgb, ((0, (-h) % 64), (0, (-w) % 64), (0, 0)), mode="edge")
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float().div_(255.0)


def gain(image_model, quality: float) -> torch.Tensor:
    return image_model._gain(image_model.log_gain, quality)


@torch.no_grad()
def derive(image_model, y: torch.Tensor, q: list[float]) -> dict[str, np.ndarray]:
    """Per-frame hyperprior prediction and intra-decoded latents of ``y`` ``[T, M, h, w]`` (float16
    values) at the qualities ``q``."""
    from ncodec.models.image_model import Z_LIMIT

    mus, sigs, yhats = [], [], []
    for t in range(y.shape[0]):
        ys = y[t : t + 1].float() * gain(image_model, q[t])
        z = torch.round(image_model.h_a(ys)).clamp(-Z_LIMIT, Z_LIMIT).to(torch.int64)
        mu, sig = image_model.h_s_int(z)
        sym = torch.round(ys.double() - mu.double() / 256).clamp(-(1 << 20), 1 << 20).to(torch.int64)
        mus.append(mu[0].to(torch.int32))
        sigs.append(sig[0].to(torch.int32))
        yhats.append((sym * 256 + mu)[0].to(torch.int32))
    return {
        "mu": torch.stack(mus).numpy(),
        "sig": torch.stack(sigs).numpy(),
        "yhat": torch.stack(yhats).numpy(),
    }


@torch.no_grad()
def analyse(image_model, frames: list[np.ndarray]) -> torch.Tensor:
    """``g_a`` of each frame, float16 ``[T, M, h, w]``."""
    return torch.cat([image_model.analysis(to_tensor(f)) for f in frames]).half()


def qualities(rng: random.Random) -> list[float]:
    """A run's per-frame qualities: one uniform quality, or (30 %) a different one on some frames."""
    base = rng.uniform(0.0, 100.0)
    if rng.random() < 0.3:
        return [
            min(100.0, max(0.0, base + (rng.uniform(-25, 25) if rng.random() < 0.5 else 0.0)))
            for _ in range(T)
        ]
    return [base] * T


def save(path: Path, rec: dict[str, np.ndarray]) -> None:
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **rec)
    tmp.replace(path)


# ---- synthetic motion ----------------------------------------------------------------------------


def warp_sequence(img: np.ndarray, fg: np.ndarray | None, rng: random.Random) -> list[np.ndarray]:
    """``T`` frames of ``CROP_H x CROP_W`` of ``img`` under a smooth random camera motion (pan,
    zoom, rotation), with optionally a crop of ``fg`` moving on its own path in front."""
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255.0
    h, w = img.shape[:2]
    # image too small for the crop at scale 1: sample it magnified
    base = max(1.0, CROP_H / (h * 0.9), CROP_W / (w * 0.9))
    base *= rng.uniform(1.0, 1.6) if rng.random() < 0.5 else 1.0
    r = rng.random()
    speed = rng.uniform(0, 3) if r < 0.55 else (rng.uniform(3, 10) if r < 0.85 else rng.uniform(10, 28))
    ang = rng.uniform(0, 2 * math.pi)
    v = (speed * math.cos(ang), speed * math.sin(ang))  # output pixels per frame
    zoom = rng.uniform(-0.03, 0.03) if rng.random() < 0.4 else 0.0
    rot = math.radians(rng.uniform(-1.0, 1.0)) if rng.random() < 0.3 else 0.0
    cy = rng.uniform(0.35, 0.65) * (h - 1)
    cx = rng.uniform(0.35, 0.65) * (w - 1)
    vv, uu = torch.meshgrid(
        torch.arange(CROP_H, dtype=torch.float64) - (CROP_H - 1) / 2,
        torch.arange(CROP_W, dtype=torch.float64) - (CROP_W - 1) / 2,
        indexing="ij",
    )
    fg_t = None
    if fg is not None:
        fh, fw = rng.randrange(64, 160), rng.randrange(64, 200)
        fh, fw = min(fh, fg.shape[0]), min(fg.shape[1], fw)
        oy, ox = rng.randrange(fg.shape[0] - fh + 1), rng.randrange(fg.shape[1] - fw + 1)
        fg_t = torch.from_numpy(fg[oy : oy + fh, ox : ox + fw].copy()).permute(2, 0, 1).float() / 255.0
        py, px = rng.uniform(0, CROP_H - fh), rng.uniform(0, CROP_W - fw)
        fs = rng.uniform(1, 12)
        fa = rng.uniform(0, 2 * math.pi)
        fv = (fs * math.sin(fa), fs * math.cos(fa))
    frames = []
    for t in range(T):
        s = (1.0 + zoom) ** t / base
        c, si = math.cos(rot * t), math.sin(rot * t)
        xs = cx + s * (c * uu - si * vv) + v[0] * t / base
        ys = cy + s * (si * uu + c * vv) + v[1] * t / base
        grid = torch.stack([2 * xs / (w - 1) - 1, 2 * ys / (h - 1) - 1], -1)[None].float()
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=True)[0]
        if fg_t is not None:
            y0 = int(round(min(max(py + fv[0] * t, 0), CROP_H - fg_t.shape[1])))
            x0 = int(round(min(max(px + fv[1] * t, 0), CROP_W - fg_t.shape[2])))
            out[:, y0 : y0 + fg_t.shape[1], x0 : x0 + fg_t.shape[2]] = fg_t
        frames.append((out.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy())
    return frames


def list_stills() -> list[Path]:
    exts = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
    files = sorted(p for p in IMAGE_DIR.rglob("*") if p.suffix.lower() in exts)
    if any("kodak" in p.as_posix().lower() for p in files):
        raise ValueError("refusing to train on Kodak")
    return files


def clips() -> list[Path]:
    return sorted(VIDEO_DIR.glob("*.mkv"))  # train/ only: the test sequences lie one folder up


def seed_of(name: str) -> int:
    return zlib.crc32(name.encode())


def video_jobs() -> list[tuple[str, Path, int, int, float]]:
    """(run name, clip, first frame, stride, downscale) of every video run."""
    jobs = []
    for clip in clips():
        if clip.stem in HOLDOUT:
            continue
        for s in (0, 6, 12, 18, 24):
            jobs.append((f"v_{clip.stem}_s{s}_d1", clip, s, 1, 1.0))
        for s in (0, 12):
            jobs.append((f"v_{clip.stem}_s{s}_d2", clip, s, 2, 1.0))
        if clip.stem.startswith("cityscapes"):
            for s in (0, 12, 24):
                jobs.append((f"v_{clip.stem}_s{s}_d1_half", clip, s, 1, 0.5))
    return jobs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=OUT_DIR)
    p.add_argument("--synthetic", type=int, default=150, help="runs of synthetic motion from stills")
    p.add_argument("--seconds", type=float, default=float("inf"), help="stop after this long (resumable)")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    from ncodec.models.image_model import ImageModel
    from ncodec.models.registry import SHIPPED

    image_model = ImageModel.load(SHIPPED["image-hp-v1"].weights_path)
    t0 = time.monotonic()
    (a.out / "train").mkdir(parents=True, exist_ok=True)
    (a.out / "eval").mkdir(parents=True, exist_ok=True)

    def out_of_time() -> bool:
        return time.monotonic() - t0 > a.seconds

    # held-out clips: whole frames, y only (qualities are chosen at measuring time)
    for clip in clips():
        if clip.stem not in HOLDOUT:
            continue
        path = a.out / "eval" / f"{clip.stem}.npz"
        if path.exists() or out_of_time():
            continue
        frames = read_clip(clip)[:EVAL_FRAMES]
        save(path, {"y": analyse(image_model, frames).numpy(), "size": np.array(frames[0].shape[:2])})
        print(f"eval {clip.stem}: {len(frames)} frames", flush=True)

    done = 0
    cache: dict[Path, list[np.ndarray]] = {}
    for name, clip, start, stride, scale in video_jobs():
        path = a.out / "train" / f"{name}.npz"
        if path.exists():
            continue
        if out_of_time():
            break
        if clip not in cache:
            cache.clear()
            cache[clip] = read_clip(clip)
        frames = cache[clip][start : start + stride * T : stride]
        if len(frames) < T:
            continue
        rng = random.Random(seed_of(name))
        if scale != 1.0:
            frames = [
                F.interpolate(
                    torch.from_numpy(f).permute(2, 0, 1)[None].float(), scale_factor=scale, mode="area"
                )[0]
                .round()
                .byte()
                .permute(1, 2, 0)
                .numpy()
                for f in frames
            ]
        h, w = frames[0].shape[:2]
        ch, cw = min(CROP_H, h // 64 * 64), min(CROP_W, w // 64 * 64)
        y0, x0 = rng.randrange(h - ch + 1), rng.randrange(w - cw + 1)
        frames = [f[y0 : y0 + ch, x0 : x0 + cw] for f in frames]
        if rng.random() < 0.5:
            frames = [np.ascontiguousarray(f[:, ::-1]) for f in frames]
        q = qualities(rng)
        y = analyse(image_model, frames)
        save(path, {"y": y.numpy(), "q": np.array(q), **derive(image_model, y, q)})
        done += 1
    cache.clear()
    print(f"video runs: {done} new, {time.monotonic() - t0:.0f} s", flush=True)

    stills = list_stills()
    done = 0
    for i in range(a.synthetic):
        name = f"s_{i:04d}"
        path = a.out / "train" / f"{name}.npz"
        if path.exists():
            continue
        if out_of_time():
            break
        from PIL import Image

        rng = random.Random(seed_of(name))
        img = np.asarray(Image.open(stills[rng.randrange(len(stills))]).convert("RGB"))
        fg = None
        if rng.random() < 0.3:
            fg = np.asarray(Image.open(stills[rng.randrange(len(stills))]).convert("RGB"))
        frames = warp_sequence(img, fg, rng)
        q = qualities(rng)
        y = analyse(image_model, frames)
        save(path, {"y": y.numpy(), "q": np.array(q), **derive(image_model, y, q)})
        done += 1
    print(f"synthetic runs: {done} new, total {time.monotonic() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
