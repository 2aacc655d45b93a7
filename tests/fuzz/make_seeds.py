"""Writes the fuzzer's seeds (tests/fuzz/seeds/): real streams of every medium and model, small.

python tests/fuzz/make_seeds.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    import ncodec.codec as nc

    out = HERE / "seeds"
    out.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(128, 50, (96, 128, 3)), 0, 255).astype(np.uint8)
    seeds = {
        # version 3 pictures (the committed image_rgb_2tiles/gray/rgba seeds are version 2 tiles)
        "image_v3_rgb_4segments.ncb": nc.encode(img, quality=20, tile=64),
        "image_v3_ctx_4segments.ncb": nc.encode(img, quality=40, tile=64, model="image-ctx-v1"),
        "image_v3_gray.ncb": nc.encode(img[:64, :64, 0], quality=60),
        "image_v3_rgba_2segments.ncb": nc.encode(np.dstack([img[:64], img[:64, :, 1]]), quality=5, tile=64),
    }
    t = np.arange(16000 * 3) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    seeds["audio_mono_2chunks.ncb"] = nc.encode((tone[: 16000 * 3], 16000), quality=10)
    seeds["audio_stereo_48k.ncb"] = nc.encode((np.stack([tone, -tone])[:, :24000], 48000), quality=30)
    seeds["audio_3ch.ncb"] = nc.encode((np.stack([tone, tone * 0.5, -tone])[:, :8000], 16000), quality=0)
    try:  # video, where this ncodec codes it
        frames = np.clip(rng.normal(128, 40, (3, 64, 64, 3)), 0, 255).astype(np.uint8)
        from ncodec.codec.api import encode_obj
        from ncodec.codec.medium import MEDIA_VIDEO, codec_for

        seeds["video_3frames.ncb"] = encode_obj(codec_for(MEDIA_VIDEO), list(frames), quality=20).data
    except Exception as e:  # noqa: BLE001
        print(f"no video seed: {type(e).__name__}: {e}")
    for name, data in seeds.items():
        (out / name).write_bytes(data)
    for golden in (HERE.parent / "golden").glob("*_v[0-9].ncb"):
        shutil.copy(golden, out / f"golden_{golden.name}")
    for p in sorted(out.iterdir()):
        print(f"{p.name}: {p.stat().st_size} bytes")


if __name__ == "__main__":
    main()
