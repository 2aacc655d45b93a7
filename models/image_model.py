"""The shipped, inference-time image model: float transforms + exact integer table selection.

An :class:`ImageModel` is what a weights file holds: the float analysis/synthesis transforms and
gains of a trained :class:`~ncodec.models.image.ImageHyperprior`, its hyper-synthesis as exact
integers (:mod:`ncodec.models.int_hyper`) and the integer probability tables. Entropy coding and
the container are the codec's job (``ncodec.codec.image``); this class maps pixels to integer
symbols with their table indexes and back.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ncodec.entropy.tables import TableSet, from_pmfs, gaussian_scale_table, gaussian_tables
from ncodec.models import layers
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

KIND = "image-hyperprior"
QUALITY_MIN_LEVEL = -2.5
DOWNSAMPLE = 64  # total stride of g_a (16) times h_a (4): inputs are padded to this multiple


@register_architecture(KIND)
class ImageModel(HyperpriorWeights, nn.Module):
    """Inference model. ``quality`` is a float in ``[0, 100]`` mapped linearly onto the rate levels
    (see :meth:`level`).

    Shapes: images ``[1,3,H,W]`` in ``[0,1]`` with H, W multiples of 64; y ``[1,M,H/16,W/16]``;
    z ``[1,N,H/64,W/64]``.
    """

    KIND = KIND

    def __init__(self, config: dict, model_id: str):
        super().__init__()
        self.config = dict(config)
        self.model_id = model_id
        n, m, levels = config["n"], config["m"], len(config["lambdas"])
        self.g_a, self.g_s = layers.analysis(n, m), layers.synthesis(n, m)
        self.h_a = layers.hyper_analysis(n, m)
        self.log_gain = nn.Parameter(torch.zeros(levels, m))
        self.log_inv_gain = nn.Parameter(torch.zeros(levels, m))
        self.h_s_int: IntHyperSynthesis | None = None
        self.z_tables: TableSet | None = None
        self.y_tables: TableSet | None = None
        self.y_thresholds: Tensor | None = None
        self.digest = b""

    @property
    def levels(self) -> int:
        return int(self.log_gain.shape[0])

    def level(self, quality: float) -> float:
        """Rate level for ``quality`` in [0, 100]: linear from ``QUALITY_MIN_LEVEL`` (below the lowest
        trained level, reached by extrapolating the log-gains, so the range starts near 0.1 bpp) up
        to the highest trained level ``L - 1``."""
        q = min(max(float(quality), 0.0), 100.0) / 100.0
        lo = float(self.config.get("quality_min_level", QUALITY_MIN_LEVEL))
        return lo + q * (self.levels - 1 - lo)

    def _gain(self, table: Tensor, quality: float) -> Tensor:
        """Per-channel gain ``[1, M, 1, 1]`` at ``quality``: log-linear between (or beyond) levels."""
        q = self.level(quality)
        lo = min(max(math.floor(q), 0), self.levels - 2)
        t = q - lo
        return ((1 - t) * table[lo] + t * table[lo + 1]).exp()[None, :, None, None]

    @torch.no_grad()
    def analysis(self, x: Tensor) -> Tensor:
        """``g_a``: image ``[1,3,H,W]`` -> latents ``y`` ``[1,M,H/16,W/16]`` (contiguous NCHW).

        The transforms run channels-last, which oneDNN and cuDNN convolve faster (about 1.6x for
        ``g_s`` on a CPU); only the float rounding differs."""
        return self.g_a(x.contiguous(memory_format=torch.channels_last)).contiguous()

    @torch.no_grad()
    def analyze(self, x: Tensor, quality: float) -> tuple[Tensor, Tensor]:
        """Encoder side: returns scaled latents ``ys`` (float) and hyper-latents ``z_hat`` (int64)."""
        return self.scale_latents(self.analysis(x), quality)

    @torch.no_grad()
    def scale_latents(self, y: Tensor, quality: float) -> tuple[Tensor, Tensor]:
        """``g_a`` output ``y`` -> (``ys = y * gain(quality)``, ``z_hat = round(h_a(ys))`` int64, clamped
        to ``+-Z_LIMIT``); split from :meth:`analyze` so rate control can reuse ``y``."""
        ys = y * self._gain(self.log_gain, quality).to(y.device)
        z_hat = torch.round(self.h_a(ys)).clamp(-Z_LIMIT, Z_LIMIT).to(torch.int64)
        return ys, z_hat

    @torch.no_grad()
    def hyper(self, z_hat: Tensor, y_shape: tuple[int, ...] | None = None) -> tuple[Tensor, Tensor]:
        """Exact: ``z_hat`` int ``[B,N,h,w]`` -> (mean ``mu`` float64, Gaussian table index int64),
        both ``[B,M,4h,4w]`` (``y_shape``, when given, must be that). ``mu`` is a multiple of
        ``2**-8``, exactly representable."""
        mu_fx, sigma_fx = self.h_s_int(z_hat.cpu())
        if y_shape is not None and tuple(mu_fx.shape) != tuple(y_shape):
            raise ValueError(f"latents {tuple(y_shape)} do not match hyper-latents {tuple(z_hat.shape)}")
        idx = table_indexes(sigma_fx, self.y_thresholds)
        return mu_fx.to(torch.float64) / (1 << OUT_FRAC_BITS), idx

    @staticmethod
    def dequantize(sym: Tensor, mu: Tensor) -> Tensor:
        """Decoded residuals and means -> ``ys_hat = sym + mu`` (float64, exact)."""
        return sym.to(torch.float64) + mu

    def unit_shape(self, w: int, h: int) -> UnitShape:
        """Latent and hyper-latent shapes of a ``w x h`` tile (padded to multiples of 64)."""
        hz, wz = -(-h // DOWNSAMPLE), -(-w // DOWNSAMPLE)
        return UnitShape(y=(1, self.config["m"], 4 * hz, 4 * wz), z=(1, self.config["n"], hz, wz))

    def latent_codec(self, threads: int | None = None) -> LatentCodec:
        """How this architecture codes a tile's latents: the two-part hyperprior codec."""
        return HyperpriorCodec(self, threads)

    @torch.no_grad()
    def synthesize(self, ys_hat: Tensor, quality: float, half: bool | None = None) -> Tensor:
        """Decoder side: dequantised scaled latents -> image ``[1,3,H,W]`` clamped to ``[0,1]``.

        ``half`` (default: on CUDA) runs ``g_s`` under float16 autocast; the symbols and tables are
        already fixed, so this only moves pixels by rounding. A non-finite result (activations
        beyond float16's range) is recomputed in float32.
        """
        dev = next(self.g_s.parameters()).device
        ys_hat = ys_hat.to(device=dev, dtype=torch.float32) * self._gain(self.log_inv_gain, quality).to(dev)
        ys_hat = ys_hat.contiguous(memory_format=torch.channels_last)
        if half is None:
            half = dev.type == "cuda"
        if half and dev.type == "cuda":
            with torch.autocast("cuda", dtype=torch.float16):
                x = self.g_s(ys_hat).float()
            if torch.isfinite(x).all():
                return x.contiguous().clamp_(0, 1)
        return self.g_s(ys_hat).contiguous().clamp_(0, 1)

    def z_indexes(self, shape: tuple[int, ...]) -> np.ndarray:
        """Factorized-table index of every hyper-latent: its channel. int32, flattened NCHW."""
        b, c, h, w = shape
        return np.broadcast_to(np.arange(c, dtype=np.int32)[None, :, None, None], shape).reshape(-1)

    # ---- files -------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> ImageModel:
        """Loads a weights file written by :meth:`save` (of this class's ``KIND``).

        Raises:
            ModelFileError: not an ncodec weights file of this kind, or missing/ill-shaped tensors.
        """
        path = Path(path)
        meta, t = read_weights(path, cls.KIND)
        try:
            model = cls(json.loads(meta["config"]), meta["model_id"])
            state = {k[6:]: v for k, v in t.items() if k.startswith("float.")}
            model.load_state_dict(state, strict=True)
            model.load_entropy(t)
            model.load_extra(t)
        except (KeyError, ValueError, RuntimeError, TypeError) as e:
            raise ModelFileError(f"{path}: inconsistent weights file ({e})") from None
        model.eval()
        model.g_a.to(memory_format=torch.channels_last)  # see analysis()
        model.g_s.to(memory_format=torch.channels_last)
        model.digest = weights_digest(t)
        return model

    def load_extra(self, t: dict[str, Tensor]) -> None:
        """Architectures built on this one load their own networks here (none for this one)."""


# ---- export ------------------------------------------------------------------------------


@torch.no_grad()
def factorized_tables(model, tail_mass: float = 1e-9) -> TableSet:
    """Per-channel tables for ``round(z)`` from the trained EntropyBottleneck's density."""
    eb = model.entropy_bottleneck
    q = eb.quantiles.detach()[:, 0, :]  # [C, 3]: lower, median, upper
    lo = torch.floor(q[:, 0]).clamp(min=-1000).long()
    hi = torch.ceil(q[:, 2]).clamp(max=1000).long()
    glo, ghi = int(lo.min()), max(int(hi.max()), int(lo.min()) + 1)
    v = torch.arange(glo, ghi + 1, dtype=torch.float32)
    x = v[None, None, :].repeat(q.shape[0], 1, 1)  # [C, 1, V], EntropyBottleneck's layout
    lik = eb._likelihood(x)[0][:, 0].double().clamp_min(0)
    pmfs, offsets = [], []
    for c in range(q.shape[0]):
        lo_c, hi_c = int(lo[c]), max(int(hi[c]), int(lo[c]) + 1)
        p = lik[c, lo_c - glo : hi_c - glo + 1].numpy()
        tail = max(1.0 - p.sum(), tail_mass)
        pmfs.append(np.concatenate([p, [tail]]))
        offsets.append(lo_c)
    return from_pmfs(pmfs, offsets)


@torch.no_grad()
def export(model, calib: Tensor, model_id: str) -> ImageModel:
    """Turns a trained float model into an :class:`ImageModel`.

    Args:
        model: the trained :class:`~ncodec.models.image.ImageHyperprior` (CPU).
        calib: training images ``[B,3,H,W]`` (multiples of 64) used to size integer activations.
    """
    model = model.cpu().eval()
    config = {"n": model.n, "m": model.m, "lambdas": [float(v) for v in model.lambdas]}
    out = ImageModel(config, model_id)
    state = {}
    for name in ("g_a", "g_s", "h_a"):
        for i, mod in enumerate(getattr(model, name)):
            if hasattr(mod, "beta_reparam"):  # CompressAI GDN: store the effective parameters
                c = mod.beta.numel()
                state[f"{name}.{i}.beta"] = mod.beta_reparam(mod.beta).detach()
                state[f"{name}.{i}.gamma"] = mod.gamma_reparam(mod.gamma).detach().reshape(c, c)
            else:
                for k, v in mod.state_dict().items():
                    state[f"{name}.{i}.{k}"] = v
    state["log_gain"], state["log_inv_gain"] = model.log_gain.detach(), model.log_inv_gain.detach()
    out.load_state_dict(state, strict=True)
    zs = []
    for i in range(calib.shape[0]):
        for qual in (0.0, 50.0, 100.0):
            _, z = out.analyze(calib[i : i + 1], qual)
            zs.append(z)
    out.h_s_int = quantize_hyper_synthesis(model.h_s, torch.cat(zs))
    out.z_tables = factorized_tables(model)
    scales = gaussian_scale_table()
    out.y_tables = gaussian_tables(scales)
    out.y_thresholds = torch.from_numpy(scale_thresholds(scales))
    out.digest = weights_digest(out.tensors())
    return out.eval()
