"""``make demo``: encodes and decodes the bundled samples with the shipped weights, prints a table.

Columns: file, quality, stream bytes, bpp (whole stream), RGB PSNR (dB), encode and decode time (s).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image

from ncodec.codec import api

SAMPLES = Path(__file__).resolve().parents[1] / "tests" / "data"


def main() -> int:
    files = sorted(SAMPLES.glob("*.png"))
    if not files:
        print(f"no samples in {SAMPLES}")
        return 1
    print(f"{'file':<30}{'quality':>8}{'bytes':>8}{'bpp':>8}{'PSNR dB':>9}{'enc s':>8}{'dec s':>8}")
    for f in files:
        img = Image.open(f).convert("RGB")
        ref = np.asarray(img, dtype=np.float64)
        for q in (10.0, 50.0, 90.0):
            t0 = time.perf_counter()
            data = api.encode(img, quality=q)
            t1 = time.perf_counter()
            out = api.decode(data)
            t2 = time.perf_counter()
            mse = np.mean((np.asarray(out, dtype=np.float64) - ref) ** 2)
            psnr = 10 * np.log10(255**2 / mse) if mse else float("inf")
            bpp = len(data) * 8 / (img.size[0] * img.size[1])
            print(f"{f.name:<30}{q:>8.0f}{len(data):>8}{bpp:>8.3f}{psnr:>9.2f}{t1 - t0:>8.2f}{t2 - t1:>8.2f}")
    print("media so far: image (audio and video codecs are not built yet)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
