"""The shipped, inference-time audio model: float transforms + exact integer table selection.

An :class:`AudioModel` is what an audio weights file holds: the float filterbank, analysis and
synthesis transforms and gains of a trained :class:`~ncodec.models.audio.AudioHyperprior`, its
hyper-synthesis as exact integers (:mod:`ncodec.models.int_hyper`, 1-D layers) and the integer
probability tables. It maps 16 kHz mono waveforms to integer symbols with their table indexes and
back; resampling, channels, chunking and entropy coding are the codec's job (``ncodec.codec.audio``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ncodec.entropy.tables import TableSet, gaussian_scale_table, gaussian_tables
from ncodec.models.audio import FRAME, HYPER, RATES_KBPS, SAMPLE_RATE, AudioTransforms, rate_to_level
from ncodec.models.image_model import factorized_tables
from ncodec.models.int_hyper import (
    OUT_FRAC_BITS,
    Z_LIMIT,
    IntHyperSynthesis,
    quantize_hyper_synthesis,
    scale_thresholds,
    table_indexes,
)
from ncodec.models.latent_codecs import HyperpriorCodec, LatentCodec, UnitShape
from ncodec.models.registry import register_architecture
from ncodec.models.weights_io import (
    HyperpriorWeights,
    ModelFileError,
    read_weights,
    weights_digest,
)

KIND = "audio-hyperprior"

__all__ = ["AudioModel", "ModelFileError", "export", "KIND", "SAMPLE_RATE", "FRAME", "HYPER"]


@register_architecture(KIND)
class AudioModel(HyperpriorWeights, AudioTransforms):
    """Inference model. The rate parameter is a nominal bitrate in kbit/s (mono, 16 kHz), mapped to a
    continuous level by :func:`ncodec.models.audio.rate_to_level` over ``config["rates"]``.

    Shapes: waveforms ``[B,1,T]`` at 16 kHz with T a multiple of ``FRAME`` (160); y ``[B,M,T/160]``;
    z ``[B,N,ceil(T/640)]``.
    """

    KIND = KIND

    def __init__(self, config: dict, model_id: str):
        super().__init__(config["c"], config["m"], config["n"], len(config["rates"]))
        self.config = dict(config)
        self.model_id = model_id
        self.h_s_int: IntHyperSynthesis | None = None
        self.z_tables: TableSet | None = None
        self.y_tables: TableSet | None = None
        self.y_thresholds: Tensor | None = None
        self.digest = b""

    def level(self, kbps: float) -> float:
        return rate_to_level(kbps, tuple(self.config["rates"]))

    def _gain(self, table: Tensor, kbps: float) -> Tensor:
        q = self.level(kbps)  # may lie a little outside [0, L-1]: the gains are then extrapolated
        lo = min(max(math.floor(q), 0), self.levels - 2)
        t = q - lo
        return ((1 - t) * table[lo] + t * table[lo + 1]).exp()[None, :, None]

    @torch.no_grad()
    def scale(self, y: Tensor, kbps: float) -> tuple[Tensor, Tensor]:
        """Encoder side: latents ``y`` -> scaled latents ``ys`` (float), hyper-latents ``z_hat`` (int64)."""
        ys = y * self._gain(self.log_gain, kbps).to(y.device)
        z_hat = torch.round(self.hyper_in(ys)).clamp(-Z_LIMIT, Z_LIMIT).to(torch.int64)
        return ys, z_hat

    @torch.no_grad()
    def hyper(self, z_hat: Tensor, y_shape: tuple[int, ...] | int) -> tuple[Tensor, Tensor]:
        """Exact: ``z_hat`` int ``[B,N,h]`` -> (mean ``mu`` float64, Gaussian table index int64), both
        ``[B,M,frames]`` with ``frames`` the last entry of ``y_shape`` (or ``y_shape`` itself),
        ``frames <= 4h``. ``mu`` is a multiple of ``2**-8``, exactly representable."""
        frames = y_shape if isinstance(y_shape, int) else y_shape[-1]
        mu_fx, sigma_fx = self.h_s_int(z_hat.cpu())
        mu_fx, sigma_fx = mu_fx[..., :frames], sigma_fx[..., :frames]
        idx = table_indexes(sigma_fx, self.y_thresholds)
        return mu_fx.to(torch.float64) / (1 << OUT_FRAC_BITS), idx

    @staticmethod
    def dequantize(sym: Tensor, mu: Tensor) -> Tensor:
        """Decoded residuals and means -> ``ys_hat`` (float64). Zero residuals reconstruct to 0, not
        to the predicted mean: MDCT-domain means are weak predictions, and adding them where nothing
        was coded adds audible noise in quiet passages."""
        sym = sym.to(torch.float64)
        return torch.where(sym == 0, torch.zeros_like(mu), sym + mu)

    def unit_shape(self, channels: int, frames: int) -> UnitShape:
        """Latent and hyper-latent shapes of a chunk of ``frames`` frames of ``channels`` signals."""
        return UnitShape(y=(channels, self.m, frames), z=(channels, self.n, -(-frames // HYPER)))

    def latent_codec(self, threads: int | None = None) -> LatentCodec:
        """How this architecture codes a chunk's latents: the two-part hyperprior codec."""
        return HyperpriorCodec(self, threads)

    @torch.no_grad()
    def decode_latents(self, ys_hat: Tensor, kbps: float) -> Tensor:
        """Decoder side: dequantised scaled latents ``[B,M,t]`` -> waveform ``[B,1,t*FRAME]`` (float32)."""
        dev = self.log_inv_gain.device
        ys_hat = ys_hat.to(device=dev, dtype=torch.float32)
        return self.synthesize(ys_hat * self._gain(self.log_inv_gain, kbps))

    def z_indexes(self, shape: tuple[int, ...]) -> np.ndarray:
        """Factorized-table index of every hyper-latent: its channel. int32, flattened ``[B,N,h]``."""
        b, c, h = shape
        return np.broadcast_to(np.arange(c, dtype=np.int32)[None, :, None], shape).reshape(-1)

    # ---- files -------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> AudioModel:
        """Loads a weights file written by :meth:`save`.

        Raises:
            ModelFileError: not an ncodec audio weights file, or missing/ill-shaped tensors.
        """
        path = Path(path)
        meta, t = read_weights(path, cls.KIND)  # subclasses load their own kind
        try:
            config = json.loads(meta["config"])
            if config.get("sample_rate") != SAMPLE_RATE or config.get("frame") != FRAME:
                raise ValueError("model rate or frame size differs from this ncodec")
            model = cls(config, meta["model_id"])
            state = {k[6:]: v for k, v in t.items() if k.startswith("float.")}
            model.load_state_dict(state, strict=True)
            model.load_entropy(t)
            if any(layer.weight.dim() != 3 for layer in model.h_s_int.layers):
                raise ValueError("integer hyper-synthesis is not 1-D")
        except (KeyError, ValueError, RuntimeError, TypeError, json.JSONDecodeError) as e:
            raise ModelFileError(f"{path}: inconsistent weights file ({e})") from None
        model.eval()
        model.digest = weights_digest(t)
        return model


@torch.no_grad()
def export(model, calib: Tensor, model_id: str) -> AudioModel:
    """Turns a trained float :class:`~ncodec.models.audio.AudioHyperprior` into an :class:`AudioModel`.

    Args:
        model: the trained model (moved to CPU).
        calib: training segments ``[B,1,T]`` (T a multiple of FRAME*HYPER) to size integer activations.
    """
    model = model.cpu().eval()
    rates = [float(v) for v in model.rates] if hasattr(model, "rates") else list(RATES_KBPS)
    config = {
        "c": model.c,
        "m": model.m,
        "n": model.n,
        "rates": rates,
        "sample_rate": SAMPLE_RATE,
        "frame": FRAME,
        "mu": [float(v) for v in model.log_mu.exp()],
    }
    out = AudioModel(config, model_id)
    own = set(out.state_dict())
    out.load_state_dict({k: v for k, v in model.state_dict().items() if k in own}, strict=True)
    zs = []
    for i in range(calib.shape[0]):
        y = out.analyze(calib[i : i + 1])
        for kbps in (rates[0], rates[len(rates) // 2], rates[-1]):
            zs.append(out.scale(y, kbps)[1])
    out.h_s_int = quantize_hyper_synthesis(model.h_s, torch.cat(zs))
    out.z_tables = factorized_tables(model)
    scales = gaussian_scale_table()
    out.y_tables = gaussian_tables(scales)
    out.y_thresholds = torch.from_numpy(scale_thresholds(scales))
    out.digest = weights_digest(out.tensors())
    return out.eval()
