"""Distortion metrics for images, audio and video.

Conventions
-----------
* Images are ``numpy.ndarray`` of shape ``[H, W, 3]``, dtype ``uint8`` (8-bit RGB), or ``PIL.Image.Image``.
  PSNR uses peak 255 and is returned in dB; callers average PSNR *per image* (not per pixel).
* Audio is ``numpy.ndarray`` float32 of shape ``[C, T]`` (or ``[T]``) in ``[-1, 1]`` with a sample rate
  in Hz. SI-SDR and PESQ are in dB / MOS-LQO, STOI in ``[0, 1]``, mel distance is the mean absolute
  difference of natural-log mel spectrograms (nats, lower is better).
* Video frames are YUV 4:2:0 planes (``Y [H, W]``, ``U, V [H/2, W/2]``, uint8) or RGB ``[H, W, 3]`` uint8.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
from PIL import Image

__all__ = [
    "psnr",
    "psnr_rgb",
    "psnr_y",
    "rgb_to_y_bt601",
    "ms_ssim_rgb",
    "ms_ssim_db",
    "si_sdr",
    "mel_distance",
    "stoi",
    "pesq_wb",
    "visqol",
    "visqol_available",
    "log_mel_db",
    "psnr_yuv420",
    "yuv420_to_rgb",
    "MS_SSIM_MIN_SIDE",
]

#: pytorch-msssim asserts ``min(H, W) > (win_size - 1) * 2**4`` = 160 for the default 11-tap window.
MS_SSIM_MIN_SIDE = 161


@contextmanager
def _torch_single_thread():
    """Run small torch ops single-threaded: OpenMP threads contend badly on busy machines (100x slower)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _as_array(img: np.ndarray | Image.Image) -> np.ndarray:
    if isinstance(img, Image.Image):
        img = np.asarray(img.convert("RGB"))
    return np.asarray(img)


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB between two arrays of equal shape (any layout), ``peak`` is the signal maximum.

    Returns ``inf`` for identical inputs.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


def psnr_rgb(ref: np.ndarray | Image.Image, dec: np.ndarray | Image.Image) -> float:
    """PSNR (dB) over all RGB samples of one 8-bit image (peak 255), as CompressAI's ``psnr-rgb``."""
    return psnr(_as_array(ref), _as_array(dec), 255.0)


def rgb_to_y_bt601(rgb: np.ndarray) -> np.ndarray:
    """Full-range BT.601 luma ``Y = 0.299 R + 0.587 G + 0.114 B`` (float64, range 0..255) of ``[H, W, 3]``.

    This is the luma used by CompressAI (``rgb2ycbcr``) and by BPG's default YCbCr (JPEG) colour space.
    """
    x = np.asarray(rgb, dtype=np.float64)
    return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]


def psnr_y(ref: np.ndarray | Image.Image, dec: np.ndarray | Image.Image) -> float:
    """PSNR (dB, peak 255) of the full-range BT.601 luma of two 8-bit RGB images (unrounded luma)."""
    return psnr(rgb_to_y_bt601(_as_array(ref)), rgb_to_y_bt601(_as_array(dec)), 255.0)


def ms_ssim_rgb(ref: np.ndarray | Image.Image, dec: np.ndarray | Image.Image) -> float:
    """MS-SSIM in ``[0, 1]`` of two 8-bit RGB images (pytorch-msssim, ``data_range=255``, 5 scales).

    Returns ``nan`` when the smaller side is below :data:`MS_SSIM_MIN_SIDE` pixels (MS-SSIM undefined).
    """
    import torch
    from pytorch_msssim import ms_ssim

    a = _as_array(ref)
    b = _as_array(dec)
    if min(a.shape[0], a.shape[1]) < MS_SSIM_MIN_SIDE:
        return math.nan
    ta = torch.from_numpy(np.array(a, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0)
    tb = torch.from_numpy(np.array(b, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0)
    with torch.no_grad(), _torch_single_thread():
        return float(ms_ssim(ta, tb, data_range=255.0).item())


def ms_ssim_db(value: float) -> float:
    """MS-SSIM expressed in dB: ``-10 log10(1 - ms_ssim)`` (``inf`` for 1.0)."""
    if value >= 1.0:
        return math.inf
    return -10.0 * math.log10(1.0 - value)


# --------------------------------------------------------------------------------------------- audio


def _as_ct(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"audio must be [T] or [C, T], got shape {x.shape}")
    return x


def _mono(x: np.ndarray) -> np.ndarray:
    return _as_ct(x).mean(axis=0)


def si_sdr(ref: np.ndarray, est: np.ndarray, eps: float = 1e-12) -> float:
    """Scale-invariant SDR in dB (Le Roux et al. 2019), zero-mean, averaged over channels.

    ``ref``/``est``: ``[C, T]`` or ``[T]`` float arrays of equal shape. A scaled copy of ``ref`` gives
    ``+inf`` (in practice a very large value); ``est = ref + n`` gives ``10 log10(|ref|^2 / |n|^2)`` for
    ``n`` orthogonal to ``ref``.
    """
    r = _as_ct(ref)
    e = _as_ct(est)
    if r.shape != e.shape:
        raise ValueError(f"shape mismatch: {r.shape} vs {e.shape}")
    vals = []
    for rc, ec in zip(r, e):
        rc = rc - rc.mean()
        ec = ec - ec.mean()
        alpha = float(np.dot(ec, rc) / (np.dot(rc, rc) + eps))
        target = alpha * rc
        noise = ec - target
        vals.append(10.0 * math.log10((np.dot(target, target) + eps) / (np.dot(noise, noise) + eps)))
    return float(np.mean(vals))


@lru_cache(maxsize=8)
def _mel_transform(sample_rate: int, n_fft: int, hop: int, n_mels: int):
    import torchaudio

    return torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=n_fft, hop_length=hop, n_mels=n_mels, power=1.0
    )


def mel_distance(ref: np.ndarray, est: np.ndarray, sample_rate: int, n_mels: int = 80) -> float:
    """Log-mel spectral L1 distance (nats; lower is better), mean over channels, frames and bands.

    Magnitude mel spectrogram (``torchaudio.transforms.MelSpectrogram``, power 1, window ``n_fft`` =
    ~64 ms rounded to a power of two, hop = ``n_fft / 4``), ``log(max(mel, 1e-5))``.
    """
    import torch

    r = _as_ct(ref)
    e = _as_ct(est)
    if r.shape != e.shape:
        raise ValueError(f"shape mismatch: {r.shape} vs {e.shape}")
    n_fft = 1 << max(8, int(round(math.log2(0.064 * sample_rate))))
    mel = _mel_transform(int(sample_rate), n_fft, n_fft // 4, n_mels)
    with torch.no_grad(), _torch_single_thread():
        mr = mel(torch.from_numpy(r).float()).clamp_min(1e-5).log()
        me = mel(torch.from_numpy(e).float()).clamp_min(1e-5).log()
    return float((mr - me).abs().mean().item())


def stoi(ref: np.ndarray, est: np.ndarray, sample_rate: int, extended: bool = False) -> float:
    """STOI (``[0, 1]``, pystoi) of the mono mix-downs; pystoi resamples to 10 kHz internally."""
    from pystoi import stoi as _stoi

    return float(_stoi(_mono(ref), _mono(est), int(sample_rate), extended=extended))


def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return x
    import torch
    import torchaudio.functional as AF

    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    with _torch_single_thread():
        return AF.resample(t, int(sr_in), int(sr_out)).numpy().astype(np.float64)


def pesq_wb(ref: np.ndarray, est: np.ndarray, sample_rate: int) -> float:
    """Wide-band PESQ (MOS-LQO, ~1.0..4.64) of the mono mix-downs resampled to 16 kHz.

    Resampling uses ``torchaudio.functional.resample``. Returns ``nan`` if PESQ fails (e.g. no
    utterance detected in silence).
    """
    from pesq import pesq as _pesq

    r = _resample(_mono(ref), sample_rate, 16000)
    e = _resample(_mono(est), sample_rate, 16000)
    try:
        return float(_pesq(16000, r, e, "wb"))
    except Exception:  # noqa: BLE001 - pesq raises its own exception types on silent input
        return math.nan


def visqol_available() -> bool:
    """Whether ViSQOL (the optional ``visqol-python`` package, module ``visqol``) can be imported.

    It is not in ``uv.lock``: see ``eval/README.md`` (its required ``libsvm-official`` ships no wheels).
    """
    import importlib.util

    return importlib.util.find_spec("visqol") is not None


@lru_cache(maxsize=2)
def _visqol_api(mode: str):
    from visqol import VisqolApi

    api = VisqolApi()
    # speech: the polynomial mapper, the one visqol-python has without its optional TFLite runtime
    api.create(mode=mode, **({"use_lattice_model": False} if mode == "speech" else {}))
    return api


def visqol(ref: np.ndarray, est: np.ndarray, sample_rate: int) -> float:
    """ViSQOL v3 MOS-LQO (1..5) of the mono mix-downs, from the optional ``visqol-python`` package.

    Speech mode (signal resampled to 16 kHz, polynomial MOS mapper) for inputs at 16 kHz or below,
    audio mode (48 kHz, SVR mapper) above. Returns ``nan`` if the package is not installed or fails.
    """
    if not visqol_available():
        return math.nan
    mode, sr = ("speech", 16000) if sample_rate <= 16000 else ("audio", 48000)
    r = np.asarray(_resample(_mono(ref), sample_rate, sr), dtype=np.float64)
    e = np.asarray(_resample(_mono(est), sample_rate, sr), dtype=np.float64)
    try:
        return float(_visqol_api(mode).measure_from_arrays(r, e, sr).moslqo)
    except Exception:  # noqa: BLE001 - e.g. too short or silent input
        return math.nan


def log_mel_db(x: np.ndarray, sample_rate: int, n_mels: int = 80) -> np.ndarray:
    """Log-mel power spectrogram (``[n_mels, frames]``, dB, floor -100 dB) of the mono mix-down, with the
    window of :func:`mel_distance` (~64 ms, hop a quarter of it)."""
    import torch

    n_fft = 1 << max(8, int(round(math.log2(0.064 * sample_rate))))
    mel = _mel_transform(int(sample_rate), n_fft, n_fft // 4, n_mels)
    m = np.ascontiguousarray(_mono(x), dtype=np.float32)
    with torch.no_grad(), _torch_single_thread():
        s = mel(torch.from_numpy(m)).numpy()
    return 20.0 * np.log10(np.maximum(s, 1e-5))


# --------------------------------------------------------------------------------------------- video


def psnr_yuv420(
    ref: tuple[np.ndarray, np.ndarray, np.ndarray], dec: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> dict[str, float]:
    """PSNR (dB, peak 255) per plane of one 8-bit YUV 4:2:0 frame and the weighted ``(6 Y + U + V) / 8``.

    Returns ``{"psnr-y", "psnr-u", "psnr-v", "psnr-yuv"}``. Identical planes are capped at 100 dB so the
    weighted mean stays finite.
    """
    out = {}
    for name, a, b in zip(("y", "u", "v"), ref, dec):
        out[f"psnr-{name}"] = min(psnr(a, b), 100.0)
    out["psnr-yuv"] = (6.0 * out["psnr-y"] + out["psnr-u"] + out["psnr-v"]) / 8.0
    return out


def yuv420_to_rgb(
    y: np.ndarray, u: np.ndarray, v: np.ndarray, matrix: str = "bt709", full_range: bool = False
) -> np.ndarray:
    """Convert 8-bit YUV 4:2:0 planes to RGB ``[H, W, 3]`` uint8 (nearest chroma upsampling).

    ``matrix`` is ``"bt709"`` or ``"bt601"``; limited range (16..235/240) unless ``full_range``.
    """
    kr, kb = (0.2126, 0.0722) if matrix == "bt709" else (0.299, 0.114)
    kg = 1.0 - kr - kb
    h, w = y.shape
    uu = np.repeat(np.repeat(u, 2, axis=0), 2, axis=1)[:h, :w].astype(np.float64)
    vv = np.repeat(np.repeat(v, 2, axis=0), 2, axis=1)[:h, :w].astype(np.float64)
    yy = y.astype(np.float64)
    if full_range:
        yn, cb, cr = yy / 255.0, (uu - 128.0) / 255.0, (vv - 128.0) / 255.0
    else:
        yn, cb, cr = (yy - 16.0) / 219.0, (uu - 128.0) / 224.0, (vv - 128.0) / 224.0
    r = yn + 2.0 * (1.0 - kr) * cr
    b = yn + 2.0 * (1.0 - kb) * cb
    g = (yn - kr * r - kb * b) / kg
    rgb = np.stack([r, g, b], axis=-1) * 255.0
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
