"""``audio-ctx-v1``: audio-pd-v1 with a context entropy model over its latents (issue 19).

The encoder, the decoded latents and the decoder are ``audio-pd-v1``'s (and so ``audio-hp-v1``'s
symbols): a chunk still carries ``q = round(ys - mu_h)`` for every latent and decodes to the same
``ys_hat``. Only the Gaussian table each symbol is coded under changes, so the saving is pure rate
and the distortion at a given rate field is audio-pd-v1's.

The ``M x t`` latents of a chunk are coded in passes (``config["context"]["pattern"]``):

* ``"checker"`` (shipped): a checkerboard over (channel, frame): pass 0 codes the latents with
  ``c + t`` even, pass 1 the others, which see their decoded neighbours in frequency and in time;
* ``"time"``: even frames, then odd frames; ``"quad"``: the four (channel, frame) parity classes;
* ``"groups"``: channel groups (``groups``: channel counts, low to high frequency), each conditioned
  on the decoded groups below it.

Every pass runs one small network over the whole chunk (parallel along time)::

    x = [u, |u|] of latents decoded in earlier passes (0 elsewhere), t_h / 16, frame parity
    dt = conv1(relu(conv1(relu(conv_k(x)))))      (k frames, all channels dense)
    table = clamp(t_h + round(dt), 0, T - 1)       coded: q under Gaussian tables[table]

with ``u = q / scale[t_h]`` (the symbol over the hyperprior's scale) and ``t_h`` the hyperprior's
table index. Pass 0's network sees only the hyperprior's tables (of every channel, +-k frames): it
recalibrates them without context. No mean is predicted: on held-out latents an integer mean shift
saved nothing (MDCT-domain signs are unpredictable), so the symbols keep their zero-mean tables.
At inference the networks are exact integer twins (fixed point, ``2**-8`` units,
:mod:`ncodec.models.int_hyper` layers) fed with integers computed from decoded symbols and table
indexes only, so decoding is bit-exact on every machine and thread count. The last layer starts at
zero: an untrained model codes exactly as the hyperprior.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ncodec.entropy.tables import gaussian_scale_table
from ncodec.models.audio import AudioTransforms
from ncodec.models.audio_model import AudioModel
from ncodec.models.audio_pd import AudioPDModel
from ncodec.models.int_hyper import (
    ACT_BITS,
    OUT_FRAC_BITS,
    OUT_LIMIT,
    WEIGHT_BITS,
    IntHyperSynthesis,
    IntLayer,
    quantize_conv,
)
from ncodec.models.registry import register_architecture
from ncodec.models.weights_io import weights_digest

KIND = "audio-context"
FX = 1 << OUT_FRAC_BITS  # fixed-point unit of every network input and output: 2**-8
IN_LIMIT = 1 << 20
"""Network inputs are clamped to ``+-IN_LIMIT`` fixed-point units (``+-4096`` real): with 13-bit
weights and a first-layer fan-in below ``2**14`` every accumulator stays below ``2**47`` (exact in
float64) and its requantisation product below ``2**63``."""
BIAS_LIMIT = 1 << 46
MAX_FAN_IN = 1 << 14
T_SCALE = 16  # the table index enters as t_h / 16 (t_h * 16 fixed-point units)

DEFAULT_CONTEXT = {"pattern": "checker", "hidden": 128, "k": 3}

__all__ = [
    "AudioContextModel",
    "ContextNets",
    "DEFAULT_CONTEXT",
    "KIND",
    "color_map",
    "n_passes",
    "rate_bits",
]


# ---- pass structure ------------------------------------------------------------------------


def n_passes(cfg: dict) -> int:
    """Number of coding passes of a context configuration."""
    return {"checker": 2, "time": 2, "quad": 4}.get(cfg["pattern"]) or len(cfg["groups"])


def color_map(cfg: dict, m: int, frames: int) -> Tensor:
    """int64 ``[m, frames]``: the pass that codes each latent."""
    c = torch.arange(m)[:, None]
    t = torch.arange(frames)[None, :]
    if cfg["pattern"] == "checker":
        return ((c + t) % 2).expand(m, frames).clone()
    if cfg["pattern"] == "time":
        return (t % 2).expand(m, frames).clone()
    if cfg["pattern"] == "quad":  # (c, t) parities (0,0), (1,1), (0,1), (1,0), in that order
        order = torch.tensor([[0, 2], [3, 1]])  # [c parity, t parity] -> pass
        return order[c % 2, t % 2]
    if cfg["pattern"] == "groups":
        bounds = np.cumsum(cfg["groups"])
        if bounds[-1] != m:
            raise ValueError(f"channel groups cover {bounds[-1]} channels, not {m}")
        g = torch.from_numpy(np.searchsorted(bounds, np.arange(m), side="right")).long()
        return g[:, None].expand(m, frames).clone()
    raise ValueError(f"unknown context pattern {cfg['pattern']!r}")


def parity(frames: int) -> Tensor:
    """float ``[1, 1, frames]``: 1 at odd frames (the checkerboard's phase)."""
    return (torch.arange(frames) % 2).to(torch.float32)[None, None]


# ---- float networks (training) ---------------------------------------------------------------


class PassNet(nn.Module):
    """Float network of one pass: ``[u, |u|, t_h/16, parity]`` ``[B, 3M+1, t]`` -> table offset
    ``dt`` ``[B, M, t]``."""

    def __init__(self, m: int, hidden: int, k: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(3 * m + 1, hidden, k, padding=k // 2),
            nn.ReLU(),
            nn.Conv1d(hidden, hidden, 1),
            nn.ReLU(),
            nn.Conv1d(hidden, m, 1),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ContextNets(nn.Module):
    """One :class:`PassNet` per pass."""

    def __init__(self, cfg: dict, m: int):
        super().__init__()
        self.cfg = dict(cfg)
        self.m = m
        self.nets = nn.ModuleList(PassNet(m, cfg["hidden"], cfg["k"]) for _ in range(n_passes(cfg)))


def log_scales(n_tables: int = 64) -> Tensor:
    """``log`` of the Gaussian table scales (float32 ``[T]``)."""
    return torch.from_numpy(np.log(gaussian_scale_table(levels=n_tables))).float()


def gaussian_bits(sym: Tensor, mean: Tensor, scale: Tensor) -> Tensor:
    """Bits of integer ``sym`` under a Gaussian of ``mean``, ``scale`` quantised to unit bins."""
    scale = scale.clamp_min(0.11)
    d = (sym - mean).abs()  # symmetric: use the upper tail for accuracy
    p = torch.special.ndtr((0.5 - d) / scale) - torch.special.ndtr((-0.5 - d) / scale)
    return -torch.log2(p.clamp_min(2.0**-16))


def net_input(u: Tensor, t_h: Tensor) -> Tensor:
    """Real-valued network input ``[B, 3M+1, t]`` from the decoded ``u`` (0 where not decoded yet)
    and the hyperprior's table indexes (float)."""
    lim = IN_LIMIT / FX
    uc = u.clamp(-lim, lim)
    par = parity(u.shape[-1]).to(u.device).expand(u.shape[0], 1, -1)
    return torch.cat([uc, uc.abs(), t_h / T_SCALE, par], dim=1)


def rate_bits(nets: ContextNets, sym: Tensor, t_h: Tensor, ste: bool = True) -> dict[str, Tensor]:
    """Float model's code length of a batch of symbols.

    Args:
        sym: the hyperprior's residual symbols ``q`` ``[B, M, t]`` (float of integers).
        t_h: the hyperprior's table indexes (float of integers), same shape.
        ste: training (straight-through table rounding) or evaluation (rounded tables, as coded).

    Returns:
        ``bits`` ``[B]`` (sum over the batch item) and ``bits_h``, the hyperprior's own (same formula).
    """
    cfg = nets.cfg
    b, m, t = sym.shape
    ls = log_scales().to(sym.device)
    last = ls.numel() - 1
    step = float(ls[1] - ls[0])
    scale_h = torch.exp(ls[t_h.long()])
    u_all = sym / scale_h
    colors = color_map(cfg, m, t).to(sym.device)
    u = torch.zeros_like(sym)
    bits = torch.zeros(b, device=sym.device)
    for p, net in enumerate(nets.nets):
        mask = colors == p
        dt = net(net_input(u, t_h))
        t_c = (t_h + dt).clamp(0, last)
        t_q = torch.round(t_c).detach()
        if ste:
            s_c = torch.exp(ls[0] + step * t_c)
            s_q = torch.exp(ls[t_q.long()])
            scale = s_c + (s_q - s_c).detach()
        else:
            scale = torch.exp(ls[t_q.long()])
        bits = bits + (gaussian_bits(sym, torch.zeros_like(sym), scale) * mask).flatten(1).sum(1)
        u = torch.where(mask, u_all, u)
    bits_h = gaussian_bits(sym, torch.zeros_like(sym), scale_h).flatten(1).sum(1)
    return {"bits": bits, "bits_h": bits_h}


# ---- integer twin --------------------------------------------------------------------------


class IntPassNet:
    """Exact integer twin of :class:`PassNet`: three :class:`~ncodec.models.int_hyper.IntLayer`
    (the first a ``k``-frame convolution over all inputs, then two 1x1). ``__call__`` takes the
    fixed-point input (int64 ``[B, 3M+1, t]``, units of ``2**-8``) and returns the table offsets
    ``dt_fx`` (int64 ``[B, M, t]``, units of ``2**-8``)."""

    def __init__(self, layers: list[IntLayer]):
        self.layers = layers
        self._tails: dict[int, IntLayer] = {}

    def __call__(self, x: Tensor) -> Tensor:
        """``x`` may hold only the last input channels (the others then count as zeros, exactly:
        the first pass has no decoded symbols and skips their share of the convolution)."""
        x = x.to(torch.int64).clamp(-IN_LIMIT, IN_LIMIT).to(torch.float64)
        first, n = self.layers[0], x.shape[1]
        if n != first.weight.shape[1]:
            if n not in self._tails:
                self._tails[n] = dataclasses.replace(first, weight=first.weight[:, -n:].contiguous())
            first = self._tails[n]
        for layer in (first, *self.layers[1:]):
            x = layer(x)
        return x.to(torch.int64)

    def state_tensors(self, prefix: str) -> dict[str, Tensor]:
        return IntHyperSynthesis(self.layers).state_tensors(prefix)

    @classmethod
    def from_state_tensors(cls, t: dict[str, Tensor], prefix: str, m: int) -> IntPassNet:
        """Loads and checks one pass network (``ValueError``/``KeyError`` if out of range)."""
        layers = IntHyperSynthesis.from_state_tensors(t, prefix).layers
        if len(layers) != 3:
            raise ValueError(f"{prefix}: {len(layers)} layers, expected 3")
        cin = 3 * m + 1
        for i, L in enumerate(layers):
            k = L.weight.shape[-1]
            if L.transposed or L.weight.dim() != 3 or L.weight.shape[1] != cin or L.stride != 1:
                raise ValueError(f"{prefix}: layer {i} of shape {tuple(L.weight.shape)}")
            if k % 2 != 1 or L.padding != k // 2 or (i > 0 and k != 1):
                raise ValueError(f"{prefix}: layer {i} kernel {k}, padding {L.padding}")
            if L.weight[0].numel() >= MAX_FAN_IN or (L.bias.abs() >= BIAS_LIMIT).any():
                raise ValueError(f"{prefix}: layer {i} out of the exact range")
            if L.relu != (i < 2):
                raise ValueError(f"{prefix}: layer {i} non-linearity")
            cin = L.weight.shape[0]
        if cin != m:
            raise ValueError(f"{prefix}: {cin} outputs, expected {m}")
        return cls(layers)


@torch.no_grad()
def quantize_pass_net(net: PassNet, x: Tensor) -> IntPassNet:
    """Integer twin of a trained :class:`PassNet`, activations sized on real inputs ``x``."""
    layers, in_scale = [], 1.0 / FX
    convs = [mod for mod in net.net if isinstance(mod, nn.Conv1d)]
    h = x.double()
    for i, conv in enumerate(convs):
        last = i == len(convs) - 1
        y = F.conv1d(h, conv.weight.double(), conv.bias.double(), padding=conv.padding[0])
        layer, h, in_scale = quantize_conv(conv, in_scale, y, 1.0 / FX if last else None)
        layers.append(layer)
    return IntPassNet(layers)


def inv_scale_lut(n_tables: int) -> Tensor:
    """int64 ``round(2**16 / scale[t])`` of the Gaussian table scales; stored with the weights, so
    decoding reads integers only."""
    s = gaussian_scale_table(levels=n_tables)
    return torch.from_numpy(np.round(65536.0 / s).astype(np.int64))


def int_input(u_fx: Tensor | None, t_h: Tensor) -> Tensor:
    """The integer twin's input (int64 ``[B, 3M+1, t]``, units of ``2**-8``): decoded normalised
    symbols ``u_fx`` (0 where not decoded yet), their magnitude, ``t_h * 16`` and the parity;
    without ``u_fx`` (nothing decoded yet) only the last ``M + 1`` channels."""
    par = (torch.arange(t_h.shape[-1]) % 2 * FX).to(torch.int64)[None, None].expand(t_h.shape[0], 1, -1)
    tail = [t_h * (FX // T_SCALE), par]
    if u_fx is None:
        return torch.cat(tail, dim=1)
    u = u_fx.clamp(-IN_LIMIT, IN_LIMIT)
    return torch.cat([u, u.abs(), *tail], dim=1)


def pass_tables(model: AudioContextModel, p: int, u_fx: Tensor, t_h: Tensor) -> Tensor:
    """Exact Gaussian table index (int64) of every latent in pass ``p``, computed at all positions
    (the caller keeps the pass's): ``clamp(t_h + round(dt))``."""
    dt = model.ctx_int[p](int_input(u_fx if p else None, t_h))  # pass 0: nothing decoded yet
    return (t_h + ((dt + FX // 2) >> OUT_FRAC_BITS)).clamp(0, len(model.y_tables) - 1)


# ---- the inference model -------------------------------------------------------------------


@register_architecture(KIND)
class AudioContextModel(AudioPDModel):
    """``audio-pd-v1`` (encoder, hyperprior, decoder) plus exact integer context networks
    (``ctx_int``, one per pass); ``config["context"]`` describes the passes.

    Above ``config["hp_above"]`` kbit/s nominal the decoder is ``audio-hp-v1``'s (``hp``, its float
    transforms, of which only the synthesis runs), which is better there than audio-pd-v1's: the
    payload differs from audio-hp-v1's, so that model cannot decode these streams itself.
    """

    KIND = KIND

    def __init__(self, config: dict, model_id: str):
        super().__init__(config, model_id)
        self.hp = AudioTransforms(config["c"], config["m"], config["n"], len(config["rates"]))
        self.ctx_int: list[IntPassNet] = []
        self.ctx_inv: Tensor | None = None  # int64 [T]: round(2**16 / scale[t])

    @property
    def context(self) -> dict:
        return self.config["context"]

    def latent_codec(self, threads: int | None = None):
        from ncodec.models.latent_codecs.audio_context import AudioContextCodec

        return AudioContextCodec(self, threads)

    @torch.no_grad()
    def decode_latents(self, ys_hat: Tensor, kbps: float) -> Tensor:
        """``[ys_hat, index, mu]`` ``[B,3M,t]`` -> waveform (float32): audio-pd-v1's synthesis, or
        above ``hp_above`` kbit/s audio-hp-v1's."""
        if kbps <= self.config["hp_above"]:
            return super().decode_latents(ys_hat, kbps)
        y = ys_hat[:, : self.m].to(device=self.hp.log_inv_gain.device, dtype=torch.float32)
        return self.hp.synthesize(y * self._gain(self.hp.log_inv_gain, kbps))

    def tensors(self) -> dict[str, Tensor]:
        t = super().tensors()
        t["ctx.inv_scale"] = self.ctx_inv
        for p, net in enumerate(self.ctx_int):
            t.update(net.state_tensors(f"ctx.p{p}"))
        return t

    def load_entropy(self, t: dict[str, Tensor]) -> None:
        """The hyperprior's entropy tensors plus the context networks and their integer tables."""
        super().load_entropy(t)
        cfg = self.context
        color_map(cfg, self.m, 2)  # checks the pattern
        n_tables = len(self.y_tables)
        self.ctx_inv = t["ctx.inv_scale"].to(torch.int64)
        if self.ctx_inv.shape != (n_tables,) or (self.ctx_inv <= 0).any() or (self.ctx_inv > 1 << 20).any():
            raise ValueError("context scale table of the wrong size or range")
        self.ctx_int = [IntPassNet.from_state_tensors(t, f"ctx.p{p}", self.m) for p in range(n_passes(cfg))]

    @classmethod
    def from_base(
        cls,
        base: AudioPDModel,
        hp: AudioModel,
        nets: ContextNets,
        calib: list[Tensor],
        model_id: str,
        hp_above: float = 32.0,
    ) -> AudioContextModel:
        """``base``'s weights (audio-pd-v1), ``hp``'s float transforms (audio-hp-v1, the decoder above
        ``hp_above`` kbit/s) and the integer twins of ``nets``, calibrated on ``calib[p]``, real
        inputs of pass ``p`` (:func:`net_input`)."""
        if hp.h_s_int.state_tensors().keys() != base.h_s_int.state_tensors().keys():
            raise ValueError("the two base models do not share a hyperprior")
        config = dict(base.config, context=dict(nets.cfg), hp_above=float(hp_above))
        out = cls(config, model_id)
        state = dict(base.state_dict())
        state.update({f"hp.{k}": v for k, v in hp.state_dict().items()})
        out.load_state_dict(state, strict=True)
        out.h_s_int, out.z_tables, out.y_tables = base.h_s_int, base.z_tables, base.y_tables
        out.y_thresholds = base.y_thresholds
        out.ctx_inv = inv_scale_lut(len(base.y_tables))
        out.ctx_int = [quantize_pass_net(net, x) for net, x in zip(nets.nets, calib, strict=True)]
        out.digest = weights_digest(out.tensors())
        return out.eval()


def _check_limits() -> None:  # the exactness argument above, as arithmetic
    assert (1 << (WEIGHT_BITS - 1)) * IN_LIMIT * MAX_FAN_IN < 1 << 53
    assert ACT_BITS < 20 and OUT_LIMIT < 1 << 25


_check_limits()
