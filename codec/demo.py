"""``make demo``: encodes and decodes the bundled samples with the shipped weights, prints a table.

Columns: file, rate setting (quality, or audio target kbps), stream bytes, rate (bpp of the whole
stream for images, kbps for audio and video), quality in dB (RGB PSNR for images and video,
waveform SNR for audio), encode and decode time (s).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image

from ncodec.codec import api

SAMPLES = Path(__file__).resolve().parents[1] / "tests" / "data"


def _row(name: str, setting: str, nbytes: int, rate: str, psnr: float, te: float, td: float) -> str:
    return f"{name:<36}{setting:>9}{nbytes:>8}{rate:>13}{psnr:>9.2f}{te:>8.2f}{td:>8.2f}"


def _psnr(ref: np.ndarray, out: np.ndarray, peak: float) -> float:
    mse = float(np.mean((out.astype(np.float64) - ref.astype(np.float64)) ** 2))
    return 10 * np.log10(peak**2 / mse) if mse else float("inf")


def main() -> int:
    images = sorted(SAMPLES.glob("*.png"))
    sounds = sorted(SAMPLES.glob("*.flac"))
    if not images and not sounds:
        print(f"no samples in {SAMPLES}")
        return 1
    print(f"{'file':<36}{'setting':>9}{'bytes':>8}{'rate':>13}{'dB':>9}{'enc s':>8}{'dec s':>8}")
    for f in images:
        img = Image.open(f).convert("RGB")
        for q in (10.0, 50.0, 90.0):
            t0 = time.perf_counter()
            data = api.encode(img, quality=q)
            t1 = time.perf_counter()
            out = api.decode(data)
            t2 = time.perf_counter()
            bpp = len(data) * 8 / (img.size[0] * img.size[1])
            psnr = _psnr(np.asarray(img), np.asarray(out), 255.0)
            print(_row(f.name, f"q={q:.0f}", len(data), f"{bpp:.3f} bpp", psnr, t1 - t0, t2 - t1))
    from ncodec.codec.audio_io import read_audio

    for f in sounds:
        x, sr = read_audio(f)
        for kbps in (6.0, 12.0, 24.0):
            t0 = time.perf_counter()
            data = api.encode((x, sr), target_kbps=kbps)
            t1 = time.perf_counter()
            y, _ = api.decode(data)
            t2 = time.perf_counter()
            rate = len(data) * 8 / (x.shape[1] / sr) / 1000
            err = float(np.mean((y[:, : x.shape[1]].astype(np.float64) - x) ** 2))
            psnr = 10 * np.log10(float(np.mean(x.astype(np.float64) ** 2)) / err)  # SNR for audio
            print(_row(f.name, f"{kbps:.0f}kbps", len(data), f"{rate:.2f} kbps", psnr, t1 - t0, t2 - t1))
    _video_rows()
    return 0


def _video_rows() -> None:
    """A synthetic panning clip (256x144, 8 frames at 25 fps: no video sample is bundled), coded
    through the streaming video path in memory; PSNR-RGB over all frames."""
    import io
    from fractions import Fraction

    from ncodec.bitstream import StreamReader
    from ncodec.bitstream.params import VideoParams
    from ncodec.codec import video
    from ncodec.codec.bench_video import synthetic_clip
    from ncodec.models.registry import DEFAULT_MODEL, load_model

    clip = synthetic_clip(256, 144, 8)
    m = load_model(DEFAULT_MODEL["video"])
    for q in (30.0, 70.0):
        buf = io.BytesIO()
        t0 = time.perf_counter()
        st = video.encode_frames(m, iter(clip), buf, n_frames=len(clip), fps=Fraction(25), quality=q, gop=4)
        t1 = time.perf_counter()
        r = StreamReader(io.BytesIO(buf.getvalue()))
        out = list(video.decode_frames(m, VideoParams.from_bytes(r.header.params), r.segments()))
        t2 = time.perf_counter()
        psnr = _psnr(np.stack(clip), np.stack(out), 255.0)
        print(
            _row(
                "synthetic-pan-256x144x8.video",
                f"q={q:.0f}",
                st.bytes,
                f"{st.kbps:.1f} kbps",
                psnr,
                t1 - t0,
                t2 - t1,
            )
        )


if __name__ == "__main__":
    raise SystemExit(main())
