"""``audio-pd-v1``: audio-hp-v1's encoder and entropy model with a perceptually trained decoder.

The analysis transform, the gains, the hyperprior and its exact integer table selection are
``audio-hp-v1``'s, frozen, so the payload of a chunk is coded exactly as ``audio-hp-v1`` codes it
(the stream names this model, whose weights hold the same entropy tensors). Only the synthesis is
new: today's linear map and post-filter on the filterbank frames, then a residual frame-rate
*enhancer* that also sees what the decoder already knows besides the latents, the hyperprior's
prediction of every latent (its Gaussian scale and mean), so it can fill the spectral holes left by
coefficients quantised to zero with energy at the predicted level::

    ys_hat --* inv_gain--> g_s --+post--> F [B,160,t]
    (table index, mu) --> log scale, mean of zeroed latents (unscaled) [B,320,t], level q [B,1,t]
    F + enh([F, side, q]) --fb^T--> x_hat

The enhancer is a 1-D convolution stack at 100 frames/s (kernel 3, dilations ``enh_dil``, width
``enh_c``, last layer zero-initialised: it starts as ``audio-hp-v1``). It looks at most
``1 + sum(enh_dil) + 1`` frames to each side; chunks are decoded on their own as before, so a
streaming decode equals a whole decode.

The latent codec hands the decoder ``[ys_hat, table index, mu]`` stacked on the channel axis
(``[B, 3M, t]`` float64), all exact.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ncodec import entropy
from ncodec.bitstream.errors import CorruptStreamError
from ncodec.entropy.tables import gaussian_scale_table
from ncodec.models.audio import HOP
from ncodec.models.audio_model import AudioModel
from ncodec.models.latent_codecs import Y_LIMIT, Coded, UnitShape
from ncodec.models.registry import register_architecture
from ncodec.models.weights_io import weights_digest

KIND = "audio-perceptual"

__all__ = ["AudioPDModel", "Enhancer", "KIND", "side_features", "inv_gain_at"]


class Enhancer(nn.Module):
    """Residual frame-rate network on filterbank frames: ``F [B,HOP,t], side [B,S,t] -> F'``."""

    def __init__(self, side: int, c: int = 192, dil: tuple[int, ...] = (1, 2, 2)):
        super().__init__()
        self.inp = nn.Conv1d(HOP + side, c, 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LeakyReLU(0.1),
                nn.Conv1d(c, c, 3, padding=d, dilation=d),
                nn.LeakyReLU(0.1),
                nn.Conv1d(c, c, 1),
            )
            for d in dil
        )
        self.out = nn.Conv1d(c, HOP, 3, padding=1)
        with torch.no_grad():
            self.out.weight.zero_()
            self.out.bias.zero_()

    def forward(self, f: Tensor, side: Tensor) -> Tensor:
        h = self.inp(torch.cat([f, side], dim=1))
        for b in self.blocks:
            h = h + b(h)
        return f + self.out(nn.functional.leaky_relu(h, 0.1))


_LOG_SCALES = torch.from_numpy(gaussian_scale_table()).log().float()


def inv_gain_at(log_inv_gain: Tensor, q: Tensor) -> Tensor:
    """Inverse gains ``[B,M,1]`` at continuous levels ``q`` ``[B]`` exactly as the decoder derives
    them (:meth:`AudioModel._gain`: linear in log, extrapolated outside the trained levels)."""
    levels = log_inv_gain.shape[0]
    lo = q.floor().long().clamp(0, levels - 2)
    t = (q - lo.to(q.dtype))[:, None].to(log_inv_gain.dtype)
    return ((1 - t) * log_inv_gain[lo] + t * log_inv_gain[lo + 1]).exp()[:, :, None]


def side_features(ys_hat: Tensor, idx: Tensor, mu: Tensor, inv_gain: Tensor, q: Tensor) -> Tensor:
    """The enhancer's side input ``[B, 2M+1, t]``: log of the predicted scale in the unscaled
    domain, the predicted mean where nothing was coded (unscaled), and the level ``q / 8``, each
    scaled to about unit spread on the training corpus."""
    log_inv = inv_gain.log()
    ls = (_LOG_SCALES.to(ys_hat.device)[idx.long()] + log_inv + 3.0) / 1.5  # about zero mean, unit
    mz = torch.where(ys_hat == 0, mu, torch.zeros_like(mu)) * inv_gain * 20.0
    qc = (q.to(ys_hat.dtype) / 8)[:, None, None].expand(-1, 1, ys_hat.shape[-1])
    return torch.cat([ls, mz, qc], dim=1)


class SideInfoCodec:
    """The two-part hyperprior codec of ``audio-hp-v1`` (same parts, same bytes: hyper-latents under
    factorized tables, then ``round(ys - mu)`` under the Gaussian table each scale selects), whose
    decoded latents also carry the hyperprior's table index and mean: ``[B, 3M, t]`` =
    ``[ys_hat, index, mu]`` (float64, all exact)."""

    parts = 2

    def __init__(self, model: AudioModel, threads: int | None = None):
        self.model = model
        self.threads = threads

    def compress(self, ys: Tensor, z_hat: Tensor, context: object | None = None) -> Coded:
        m = self.model
        z_hat = z_hat.cpu().to(torch.int64)
        mu, idx = m.hyper(z_hat, tuple(ys.shape))
        sym = torch.round(ys.cpu().double() - mu).clamp(-Y_LIMIT, Y_LIMIT).to(torch.int32)
        z_data = entropy.encode(
            z_hat.to(torch.int32).numpy().reshape(-1),
            m.z_indexes(tuple(z_hat.shape)),
            m.z_tables,
            threads=self.threads,
        )
        y_data = entropy.encode(
            sym.numpy().reshape(-1), idx.to(torch.int32).numpy().reshape(-1), m.y_tables, threads=self.threads
        )
        return Coded([z_data, y_data], stack_side(m.dequantize(sym, mu), idx, mu))

    def decompress(self, parts: list[bytes], shape: UnitShape, context: object | None = None) -> Tensor:
        m = self.model
        if len(parts) != self.parts:
            raise CorruptStreamError(f"payload of {len(parts)} parts, expected {self.parts}")
        z = entropy.decode(parts[0], m.z_indexes(shape.z), m.z_tables, threads=self.threads)
        try:
            mu, idx = m.hyper(torch.from_numpy(z.astype(np.int64)).view(shape.z), shape.y)
        except (ValueError, RuntimeError) as e:  # geometry disagrees with the hyper-latents
            raise CorruptStreamError(str(e)) from None
        sym = entropy.decode(
            parts[1], idx.to(torch.int32).numpy().reshape(-1), m.y_tables, threads=self.threads
        )
        if sym.size and int(np.abs(sym).max()) > Y_LIMIT:  # the encoder never writes such values
            raise CorruptStreamError(f"decoded latent beyond the +-{Y_LIMIT} the encoder writes")
        return stack_side(m.dequantize(torch.from_numpy(sym).view(mu.shape), mu), idx, mu)


def stack_side(ys_hat: Tensor, idx: Tensor, mu: Tensor) -> Tensor:
    """``[ys_hat, index, mu]`` on the channel axis, float64."""
    return torch.cat([ys_hat, idx.to(torch.float64), mu.to(torch.float64)], dim=1)


@register_architecture(KIND)
class AudioPDModel(AudioModel):
    """Inference model: :class:`~ncodec.models.audio_model.AudioModel` plus the enhancer."""

    KIND = KIND

    def __init__(self, config: dict, model_id: str):
        super().__init__(config, model_id)
        self.enh = Enhancer(2 * self.m + 1, config["enh_c"], tuple(config["enh_dil"]))

    def latent_codec(self, threads: int | None = None) -> SideInfoCodec:
        return SideInfoCodec(self, threads)

    def synthesize_side(self, ys_hat: Tensor, idx: Tensor, mu: Tensor, inv_gain: Tensor, q: Tensor) -> Tensor:
        """Training and inference synthesis (float32): scaled latents, their table indexes and means
        ``[B,M,t]``, inverse gains ``[B,M,1]`` and levels ``[B]`` -> waveform ``[B,1,t*FRAME]``."""
        f = self.g_s(ys_hat * inv_gain)
        f = f + self.post(f)
        f = self.enh(f, side_features(ys_hat, idx, mu, inv_gain, q))
        return self.ifb(f)

    @torch.no_grad()
    def decode_latents(self, ys_hat: Tensor, kbps: float) -> Tensor:
        """``[ys_hat, index, mu]`` ``[B,3M,t]`` (from :class:`SideInfoCodec`) -> waveform (float32)."""
        dev = self.log_inv_gain.device
        y, idx, mu = ys_hat.to(device=dev, dtype=torch.float32).split(self.m, dim=1)
        inv = self._gain(self.log_inv_gain, kbps)
        q = torch.full((y.shape[0],), self.level(kbps), device=dev)
        return self.synthesize_side(y, idx, mu, inv, q)


@torch.no_grad()
def export(
    base: AudioModel, synth_state: dict[str, Tensor], model_id: str, enh_c: int, enh_dil
) -> AudioPDModel:
    """``base`` (audio-hp-v1, whose encoder and entropy model are kept) with the trained synthesis
    (``g_s``, ``post``, ``ifb``, ``log_inv_gain``, ``enh`` tensors) -> an :class:`AudioPDModel`."""
    config = dict(base.config, enh_c=int(enh_c), enh_dil=[int(d) for d in enh_dil])
    out = AudioPDModel(config, model_id)
    state = {k: v for k, v in base.state_dict().items()}
    state.update({k: v.detach().float().cpu() for k, v in synth_state.items()})
    out.load_state_dict(state, strict=True)
    out.h_s_int, out.z_tables, out.y_tables = base.h_s_int, base.z_tables, base.y_tables
    out.y_thresholds = base.y_thresholds
    out.digest = weights_digest(out.tensors())
    return out.eval()


def frames_reach(dil) -> int:
    """Frames the enhancer looks at on each side."""
    return 2 + int(sum(dil))
