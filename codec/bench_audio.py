"""Audio codec speed (``ncodec bench audio``): real-time factors of encoding and decoding.

The real-time factor is audio duration / wall time (``> 1`` is faster than real time). The signal is
synthetic (harmonics, a chirp and noise), so no data set is needed; a file can be given instead.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np


def synthetic_audio(seconds: float, sample_rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Deterministic test signal ``[channels, T]``: harmonics with vibrato, a chirp and noise bursts."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 160 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    x = sum(0.15 / k * np.sin(k * phase) for k in range(1, 12))
    x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 1.3 * t) ** 2)
    x += 0.05 * np.sin(2 * np.pi * (300 + 900 * t / max(seconds, 1e-3)) * t)
    x += 0.02 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 0.5 * t) > 0.6)
    out = np.stack([np.roll(x, 37 * c) * (1 - 0.2 * c) for c in range(channels)])
    return out.astype(np.float32)


def run_audio_bench(
    seconds: float = 20.0,
    sample_rate: int = 16000,
    channels: int = 1,
    kbps: float | None = None,
    quality: float = 50.0,
    threads: int = 1,
    device: str = "cpu",
    model: str | None = None,
    input: str | Path | None = None,
    as_json: bool = False,
    repeat: int = 2,
) -> dict:
    """Times encode (fixed quality, or ``kbps`` with the rate search) and decode; prints and returns
    the real-time factors. ``threads`` sets ``torch.set_num_threads`` (1 = one CPU core)."""
    import torch

    import ncodec.codec as nc

    torch.set_num_threads(threads)
    if input is not None:
        from ncodec.codec.audio_io import read_audio

        x, sample_rate = read_audio(input)
    else:
        x = synthetic_audio(seconds, sample_rate, channels)
    dur = x.shape[1] / sample_rate
    kw = {"target_kbps": kbps} if kbps else {"quality": quality}
    nc.decode(
        nc.encode((x[:, : sample_rate // 2], sample_rate), quality=50, model=model, device=device)
    )  # warm up
    enc, dec = [], []
    data = b""
    for _ in range(repeat):
        t0 = time.perf_counter()
        data = nc.encode((x, sample_rate), model=model, device=device, **kw)
        enc.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        nc.decode(data, device=device)
        dec.append(time.perf_counter() - t0)
    opus = _opus_times(x, sample_rate, kbps or len(data) * 8 / dur / 1000, repeat)
    res = {
        "seconds": dur,
        "sample_rate": sample_rate,
        "channels": int(x.shape[0]),
        "threads": threads,
        "device": device,
        "kbps": len(data) * 8 / dur / 1000,
        "encode_s": min(enc),
        "decode_s": min(dec),
        "encode_rtf": dur / min(enc),
        "decode_rtf": dur / min(dec),
        "mode": f"target {kbps} kbps (rate search)" if kbps else f"quality {quality}",
        "model": model or "default",
        **opus,
    }
    if as_json:
        print(json.dumps(res))
    else:
        print(
            f"audio {dur:.1f} s, {sample_rate} Hz, {x.shape[0]} ch, {res['mode']}, "
            f"{threads} thread(s), {device}: "
            f"{res['kbps']:.1f} kbps; encode {res['encode_s']:.2f} s ({res['encode_rtf']:.1f}x real time), "
            f"decode {res['decode_s']:.2f} s ({res['decode_rtf']:.1f}x real time)"
        )
        if "opus_decode_rtf" in res:
            print(
                f"opus (libopus through PyAV, same signal, {res['opus_kbps']:.1f} kbps): "
                f"encode {res['opus_encode_rtf']:.1f}x, decode {res['opus_decode_rtf']:.1f}x real time"
            )
    return res


def _opus_times(x: np.ndarray, sample_rate: int, kbps: float, repeat: int) -> dict:
    """Opus (libopus through PyAV, Ogg) on the same signal at about the same rate, timed the same
    way; empty when PyAV has no Opus encoder."""
    import io

    from ncodec.codec.audio_io import AudioWriter, read_audio

    def encode() -> bytes:
        buf = io.BytesIO()
        w = AudioWriter(buf, "ogg", sample_rate, x.shape[0], kbps=kbps)
        w.write(x)
        w.close()
        return buf.getvalue()

    try:
        data = encode()
    except Exception:  # noqa: BLE001 - Opus is a reference only: no libopus, no row
        return {}
    dur = x.shape[1] / sample_rate
    enc, dec = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        data = encode()
        enc.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        read_audio(io.BytesIO(data))
        dec.append(time.perf_counter() - t0)
    return {
        "opus_kbps": len(data) * 8 / dur / 1000,
        "opus_encode_rtf": dur / min(enc),
        "opus_decode_rtf": dur / min(dec),
    }


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="ncodec bench audio", description=__doc__)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--kbps", type=float, default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--input", default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--model", default=None, help="audio model (default: the default audio model)")
    a = p.parse_args(argv)
    run_audio_bench(
        a.seconds,
        a.sample_rate,
        a.channels,
        a.kbps,
        threads=a.threads,
        device=a.device,
        input=a.input,
        model=a.model,
        as_json=a.json,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
