"""Temporal entropy model for P-frame latents (issue 17): means and Gaussian table indexes of a
frame's latents predicted from the previously decoded frame's latents and this frame's hyperprior.

Every frame goes through the image model's frozen analysis ``g_a``, so the latents of all frames
are identically distributed (*Spatiotemporal Entropy Model is All You Need for Learned Video
Compression*). An I-frame is coded as an image tile; a P-frame's scaled latents ``ys`` are coded as
``round(ys - mu)`` under the Gaussian table ``idx``, where ``mu`` and ``idx`` come from

* the hyperprior's prediction ``(M0, S0)``: the image model's exact integer hyper-synthesis of this
  frame's ``z_hat`` (the intra prediction, table index ``idx0``);
* the previously decoded latents ``P1`` (one frame back) and ``P2`` (two back; ``P1`` again when
  there is none), rescaled exactly to this frame's quality (:func:`gain_ratio_q30`).

Network (float twin :class:`TemporalNet` for training; exact integer twin :class:`IntTemporalNet`)::

    x = [P1 - M0, P2 - P1, S0, cost_k]                  3M + K channels, units 2**-8, where
                                                         cost_k = sum_c |C_k - M0| / 128 (below)
    h = ReLU(conv1x1) -> ReLU(conv3x3) -> ReLU(conv3x3)  hidden channels
    alpha, beta, b, ds = conv1x1(h)                      alpha: K = (2R+1)**2 + 1 motion weights,
                                                         beta, b, ds: M channels each
    T   = sum_k alpha_k * C_k,  C_k = shift_k(P1) - M0 (k over the (2R+1)**2 offsets), C_K = P2 - M0
    mu  = M0 + beta * T + b
    idx = clamp(idx0 + round(ds), 0, tables - 1)         (float: sigma = scale[idx0] * exp(ds * step))

``alpha`` is shared by all channels at a position (a motion-compensation kernel), ``beta`` is a
per-channel reliability gate. At initialisation ``beta = b = ds = 0``, so ``mu = M0`` and
``idx = idx0``: untrained, the model codes exactly as intra coding does. Receptive field: 5x5 of
the network plus the +-R offsets, i.e. motion of up to R latent pixels (16 R image pixels).

Exactness: the integer twin runs on integers only (previous latents times 256, hyperprior means
and scales in ``2**-8`` units): convolutions in float64 on integer values with every partial sum
below ``2**53`` (``IntLayer``), int64 products and arithmetic shifts for the motion and gate terms,
and an integer comparison for the table. Nothing depends on decoded pixels.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ncodec.models.int_hyper import (
    ACT_BITS,
    OUT_FRAC_BITS,
    WEIGHT_BITS,
    IntHyperSynthesis,
    IntLayer,
    _requant,
    activation_scale,
    quantize_conv,
    table_indexes,
)
from ncodec.models.registry import register_architecture
from ncodec.models.weights_io import ModelFileError, read_weights, save_weights, weights_digest

KIND = "video-temporal"
IN_LIMIT = 1 << 20
"""Network inputs (``2**-8`` units) are clamped to ``+-IN_LIMIT`` (+-4096 in latent units), which
bounds the first layer's accumulators by ``2**20 * 2**13 * 3M`` (below ``2**44``)."""
CAND_LIMIT = 1 << 21
T_LIMIT = 1 << 24
MU_LIMIT = 1 << 28
GATE_FRAC = 12
"""alpha and beta leave the network in units of ``2**-GATE_FRAC``."""
DS_FRAC = 8
"""ds (table steps) leaves the network in units of ``2**-DS_FRAC``."""
LG_FRAC = 16
EXP_FRAC = 30
EXP_STEPS = 256
MAX_LOG2_RATIO = 16
FX = 1 << OUT_FRAC_BITS


@dataclass(frozen=True)
class FrameRef:
    """A decoded frame's latents as the decoder has them: ``ys_hat`` (float64, exact multiples of
    ``2**-8``, ``[1, M, h, w]``) and the quality (0..100, as the decoder reads it from the stream)
    they were dequantised at."""

    ys_hat: Tensor
    quality: float


@dataclass(frozen=True)
class TemporalContext:
    """What a P-frame is coded against: its own ``quality``, the previous decoded frame ``prev``
    and optionally the one before it ``prev2``."""

    quality: float
    prev: FrameRef
    prev2: FrameRef | None = None


# ---- exact quality rescaling -------------------------------------------------------------------


def gain_tables(image_model) -> tuple[Tensor, Tensor, int]:
    """Integer tables for :func:`gain_ratio_q30`, derived once (at export) from the image model:
    log2-gains ``[L, M]`` in ``2**-LG_FRAC`` units, ``2**(i/EXP_STEPS)`` for ``i = 0..EXP_STEPS`` in
    ``2**-EXP_FRAC`` units, and the lowest quality level in ``2**-LG_FRAC`` units."""
    lg = torch.round(image_model.log_gain.detach().double() / math.log(2) * (1 << LG_FRAC)).to(torch.int64)
    e = torch.round(
        torch.exp2(torch.arange(EXP_STEPS + 1, dtype=torch.float64) / EXP_STEPS) * (1 << EXP_FRAC)
    )
    lo = float(image_model.config.get("quality_min_level", -2.5))
    return lg, e.to(torch.int64), int(round(lo * (1 << LG_FRAC)))


def log2_gain_q16(lg: Tensor, lo_level: int, quality: float) -> Tensor:
    """Per-channel log2 gain at ``quality`` (int64 ``[M]``, ``2**-LG_FRAC`` units), integers only:
    the quality is read as centi-quality, as the stream stores it."""
    levels = lg.shape[0]
    c = min(max(int(round(float(quality) * 100)), 0), 10000)
    top = (levels - 1) << LG_FRAC
    level = lo_level + (c * (top - lo_level)) // 10000
    i = min(max(level >> LG_FRAC, 0), levels - 2)
    t = level - (i << LG_FRAC)
    return lg[i] + (((lg[i + 1] - lg[i]) * t) >> LG_FRAC)


def gain_ratio_q30(lg: Tensor, exp_table: Tensor, lo_level: int, q_from: float, q_to: float) -> Tensor:
    """``gain(q_to) / gain(q_from)`` per channel as ``(mantissa int64 [M] in 2**-EXP_FRAC units,
    exponent int64 [M])``, packed as ``[2, M]``; integers only, so every machine rescales alike."""
    d = log2_gain_q16(lg, lo_level, q_to) - log2_gain_q16(lg, lo_level, q_from)
    d = d.clamp(-MAX_LOG2_RATIO << LG_FRAC, MAX_LOG2_RATIO << LG_FRAC)
    e = d >> LG_FRAC
    f = d - (e << LG_FRAC)
    j = f >> (LG_FRAC - 8)  # EXP_STEPS == 256
    r = f - (j << (LG_FRAC - 8))
    mant = exp_table[j] + (((exp_table[j + 1] - exp_table[j]) * r) >> (LG_FRAC - 8))
    return torch.stack([mant, e])


def rescale_fx(p_fx: Tensor, ratio: Tensor) -> Tensor:
    """Fixed-point latents ``[B, M, h, w]`` (int64) times a :func:`gain_ratio_q30` ratio, rounded."""
    p_fx = p_fx.clamp(-MU_LIMIT, MU_LIMIT)
    mant, e = ratio[0].view(1, -1, 1, 1), ratio[1].view(1, -1, 1, 1)
    s = EXP_FRAC - e  # in [EXP_FRAC - 16, EXP_FRAC + 16]
    return (p_fx * mant + (1 << (s - 1))) >> s


# ---- float twin ----------------------------------------------------------------------------------


def shifts(x: Tensor, radius: int) -> list[Tensor]:
    """The ``(2R+1)**2`` copies of ``x`` shifted by ``-R..R`` in each axis (edge-replicated)."""
    h, w = x.shape[-2:]
    xp = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    n = 2 * radius + 1
    return [xp[..., i : i + h, j : j + w] for i in range(n) for j in range(n)]


COST_SHIFT = 7
"""Matching costs are channel sums of absolute differences divided by ``2**COST_SHIFT``."""


@torch.no_grad()
def match_costs(p1: Tensor, p2: Tensor, m0: Tensor, radius: int) -> Tensor:
    """How well each candidate matches the hyperprior's mean: ``sum_c |C_k - M0| / 2**COST_SHIFT``
    for the ``K`` candidates (shifted ``p1``, then ``p2``), ``[B, K, h, w]``. Decoder-side motion
    search: ``M0`` is known to the decoder, so the network can pick the offset that matches it."""
    out = [(s - m0).abs().sum(1, keepdim=True) for s in shifts(p1, radius)]
    out.append((p2 - m0).abs().sum(1, keepdim=True))
    return torch.cat(out, 1) / (1 << COST_SHIFT)


def int_match_costs(p1: Tensor, p2: Tensor, m0: Tensor, radius: int) -> Tensor:
    """Integer twin of :func:`match_costs` on ``2**-8`` fixed point (int64, rounded, clamped)."""
    lim, half = CAND_LIMIT, 1 << (COST_SHIFT - 1)
    out = [
        (s.to(torch.int64) - m0).clamp(-lim, lim).abs().sum(1, keepdim=True)
        for s in shifts(p1.to(torch.float64), radius)
    ]
    out.append((p2 - m0).clamp(-lim, lim).abs().sum(1, keepdim=True))
    return ((torch.cat(out, 1) + half) >> COST_SHIFT).clamp(0, IN_LIMIT)


class TemporalNet(nn.Module):
    """Training-side float network (see the module docstring). Inputs in latent units (float)."""

    def __init__(self, m: int = 192, hidden: int = 128, radius: int = 2, step: float = 0.12):
        super().__init__()
        self.m, self.hidden, self.radius, self.step = m, hidden, radius, step
        self.k = (2 * radius + 1) ** 2 + 1
        self.convs = nn.ModuleList(
            [
                nn.Conv2d(3 * m + self.k, hidden, 1),
                nn.Conv2d(hidden, hidden, 3, padding=1),
                nn.Conv2d(hidden, hidden, 3, padding=1),
                nn.Conv2d(hidden, self.k + 3 * m, 1),
            ]
        )
        last = self.convs[-1]
        with torch.no_grad():
            last.weight.zero_()
            last.bias.zero_()
            last.bias[(self.k - 1) // 2] = 1.0  # alpha: the unshifted previous latent
            # small random motion/gate weights so that the gate gets gradients from the start
            last.weight[: self.k].normal_(0, 1e-3)

    def config(self) -> dict:
        return {"m": self.m, "hidden": self.hidden, "radius": self.radius, "step": self.step}

    def forward(self, p1: Tensor, p2: Tensor, m0: Tensor, s0: Tensor) -> tuple[Tensor, Tensor]:
        """``(mu, ds)``: means (latent units) and the log-scale shift in table steps."""
        x = torch.cat([p1 - m0, p2 - p1, s0, match_costs(p1, p2, m0, self.radius)], 1)
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < len(self.convs) - 1:
                x = F.relu(x)
        k, m = self.k, self.m
        alpha, beta, b, ds = x[:, :k], x[:, k : k + m], x[:, k + m : k + 2 * m], x[:, k + 2 * m :]
        # sum_k alpha_k (shift_k(p1) - m0) + alpha_K (p2 - m0)
        t = alpha[:, -1:] * (p2 - m0) - m0 * alpha[:, :-1].sum(1, keepdim=True)
        for i, s in enumerate(shifts(p1, self.radius)):
            t = t + alpha[:, i : i + 1] * s
        return m0 + beta * t + b, ds


# ---- integer twin --------------------------------------------------------------------------------


class IntTemporalNet:
    """Exact integer twin of :class:`TemporalNet`. ``__call__(p1, p2, m0, s0, idx0, tables)`` takes
    int64 tensors in ``2**-8`` units (and the hyperprior table indexes) and returns ``(mu_fx int64,
    idx int64)``."""

    def __init__(self, layers: list[IntLayer], m: int, radius: int):
        self.layers, self.m, self.radius = layers, m, radius
        self.k = (2 * radius + 1) ** 2 + 1

    def __call__(
        self, p1: Tensor, p2: Tensor, m0: Tensor, s0: Tensor, idx0: Tensor, n_tables: int
    ) -> tuple[Tensor, Tensor]:
        lim = IN_LIMIT
        x = torch.cat(
            [
                (p1 - m0).clamp(-lim, lim),
                (p2 - p1).clamp(-lim, lim),
                s0.clamp(-lim, lim),
                int_match_costs(p1, p2, m0, self.radius),
            ],
            1,
        )
        x = x.to(torch.float64)
        for layer in self.layers:
            x = layer(x)
        x = x.to(torch.int64)
        k, m = self.k, self.m
        alpha, beta, b, ds = x[:, :k], x[:, k : k + m], x[:, k + m : k + 2 * m], x[:, k + 2 * m :]
        half = 1 << (GATE_FRAC - 1)
        t = alpha[:, -1:] * (p2 - m0).clamp(-CAND_LIMIT, CAND_LIMIT)
        for i, s in enumerate(shifts(p1.to(torch.float64), self.radius)):
            t += alpha[:, i : i + 1] * (s.to(torch.int64) - m0).clamp(-CAND_LIMIT, CAND_LIMIT)
        t = ((t + half) >> GATE_FRAC).clamp(-T_LIMIT, T_LIMIT)
        mu = m0 + ((beta * t + half) >> GATE_FRAC) + b
        idx = idx0 + ((ds + (1 << (DS_FRAC - 1))) >> DS_FRAC)
        return mu.clamp(-MU_LIMIT, MU_LIMIT), idx.clamp(0, n_tables - 1)


def quantize_temporal(net: TemporalNet, calib: tuple[Tensor, Tensor, Tensor, Tensor]) -> IntTemporalNet:
    """Builds the integer twin of ``net`` (the same rule as ``quantize_hyper_synthesis``: 14-bit
    per-channel weights, activations sized on ``calib`` = (p1, p2, m0, s0) in latent units, int64
    requantisation), with the last layer's outputs in fixed point: alpha and beta in
    ``2**-GATE_FRAC``, b in ``2**-8``, ds in ``2**-DS_FRAC`` units."""
    net = net.eval()
    p1, p2, m0, s0 = (v.double() for v in calib)
    x_float = torch.cat([p1 - m0, p2 - p1, s0, match_costs(p1, p2, m0, net.radius)], 1)
    k, m = net.k, net.m
    out_last = torch.cat(
        [
            torch.full((k + m,), 2.0**-GATE_FRAC, dtype=torch.float64),
            torch.full((m,), 1.0 / FX, dtype=torch.float64),
            torch.full((m,), 2.0**-DS_FRAC, dtype=torch.float64),
        ]
    )
    layers = []
    in_scale = 1.0 / FX  # uniform over the input channels
    for i, conv in enumerate(net.convs):
        last = i == len(net.convs) - 1
        with torch.no_grad():
            y = F.conv2d(
                x_float, conv.weight.detach().double(), conv.bias.detach().double(), padding=conv.padding
            )
        layer, x_float, scale = quantize_conv(conv, in_scale, y, out_last if last else None)
        layers.append(layer)
        if not last:
            in_scale = float(scale)  # a hidden layer's scale is one for all its channels
    return IntTemporalNet(layers, m, net.radius)


def dequantize_temporal(int_net: IntTemporalNet, net: TemporalNet) -> None:
    """Loads the real-valued function of ``int_net`` into ``net`` (weights and biases, without the
    integer rounding): the inverse of :func:`quantize_temporal` up to that rounding, for tests and
    warm starts from a shipped file that holds no float twin."""
    unit = 2.0 ** (3 - ACT_BITS)
    k, m = int_net.k, int_net.m
    out_last = torch.cat(
        [
            torch.full((k + m,), 2.0**-GATE_FRAC, dtype=torch.float64),
            torch.full((m,), 1.0 / FX, dtype=torch.float64),
            torch.full((m,), 2.0**-DS_FRAC, dtype=torch.float64),
        ]
    )
    n = len(int_net.layers)
    for i, (conv, L) in enumerate(zip(net.convs, int_net.layers)):
        ratio = L.mult.double() / torch.exp2(L.shift.double())
        in_unit = 1.0 / FX if i == 0 else unit
        out_unit = out_last if i == n - 1 else torch.full_like(ratio, unit)
        with torch.no_grad():
            conv.weight.copy_((L.weight * (ratio * out_unit / in_unit).view(-1, 1, 1, 1)).float())
            conv.bias.copy_((L.bias.double() * ratio * out_unit).float())


# ---- hyper-latent prediction ---------------------------------------------------------------------

Z_BINS = 5
"""Quality bins (centi-quality ``c`` in bin ``min(c * Z_BINS // 10001, Z_BINS - 1)``) of the
per-channel table indexes of the hyper-latents' temporal prediction."""
LEAK_SLOPE = 0.01


class IntHyperAnalysis:
    """Exact integer twin of the image model's ``h_a`` (convolutions with LeakyReLU between),
    applied to the previous frame's decoded latents to predict this frame's hyper-latents.
    ``__call__(ys_fx)`` (int64, ``2**-8`` units) -> predicted ``z`` in ``2**-8`` units (int64).

    LeakyReLU is positively homogeneous like ReLU, so the same per-channel requantisation applies;
    the negative side is ``(x * leak_mult) >> leak_shift``. Activations stay within ``+-OUT_LIMIT``
    (``IntLayer`` without ReLU), which keeps the next layer's sums below ``2**53``."""

    def __init__(self, layers: list[IntLayer], leak_mult: int, leak_shift: int):
        self.layers, self.leak_mult, self.leak_shift = layers, int(leak_mult), int(leak_shift)

    def __call__(self, ys_fx: Tensor) -> Tensor:
        x = ys_fx.clamp(-IN_LIMIT, IN_LIMIT).to(torch.float64)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                xi = x.to(torch.int64)
                xi = torch.where(xi >= 0, xi, (xi * self.leak_mult) >> self.leak_shift)
                # within +-2**ACT_BITS, as calibrated: the next layer's acc * mult stays below 2**63
                x = xi.clamp(-(1 << ACT_BITS), (1 << ACT_BITS) - 1).to(torch.float64)
        return x.to(torch.int64)


def quantize_hyper_analysis(h_a: nn.Sequential, calib_ys: Tensor) -> IntHyperAnalysis:
    """Integer twin of ``h_a`` sized on ``calib_ys`` (scaled latents, latent units): 14-bit
    per-channel weights, hidden activations scaled so that their 99.999 % quantile (times 1.25)
    is ``2**ACT_BITS``, outputs in ``2**-8`` units."""
    convs = [m for m in h_a if isinstance(m, nn.Conv2d)]
    x_float = calib_ys.double()
    in_scale = 1.0 / FX
    layers = []
    for i, conv in enumerate(convs):
        last = i == len(convs) - 1
        w = conv.weight.detach().double()
        s_w = w.abs().amax(dim=(1, 2, 3)).clamp_min(1e-12) / ((1 << (WEIGHT_BITS - 1)) - 1)
        w_int = torch.round(w / s_w.view(-1, 1, 1, 1))
        acc_scale = s_w * in_scale
        bias = torch.round(conv.bias.detach().double() / acc_scale).to(torch.int64)
        y = F.conv2d(x_float, w, conv.bias.detach().double(), stride=conv.stride, padding=conv.padding)
        if last:
            out_scale = torch.full((y.shape[1],), 1.0 / FX, dtype=torch.float64)
        else:
            out_scale = torch.full((y.shape[1],), activation_scale(y.abs()), dtype=torch.float64)
            y = F.leaky_relu(y, LEAK_SLOPE)
        mult, shift = _requant((acc_scale / out_scale).numpy())
        layers.append(
            IntLayer(
                False,
                conv.stride[0],
                conv.padding[0],
                0,
                w_int,
                bias,
                torch.from_numpy(mult),
                torch.from_numpy(shift),
                relu=False,
            )
        )
        x_float = y
        in_scale = float(out_scale[0])
    lm, ls = _requant(np.array([LEAK_SLOPE]))
    return IntHyperAnalysis(layers, int(lm[0]), int(ls[0]))


def z_bin(quality: float) -> int:
    c = min(max(int(round(float(quality) * 100)), 0), 10000)
    return min(c * Z_BINS // 10001, Z_BINS - 1)


# ---- the shipped model ---------------------------------------------------------------------------


@register_architecture(KIND)
class VideoTemporalModel:
    """The shipped temporal entropy model: the integer network, the integer gain tables for
    rescaling previous latents to this frame's quality, and the name and digest of the image model
    it was trained against (its transforms, hyper-synthesis and tables are not duplicated here).

    :meth:`predict` is the whole decoder-side computation of a P-frame's means and table indexes.
    """

    def __init__(
        self,
        config: dict,
        model_id: str,
        int_net: IntTemporalNet,
        lg: Tensor,
        exp_table: Tensor,
        lo_level: int,
        float_state: dict[str, Tensor] | None = None,
        ha_int: IntHyperAnalysis | None = None,
        z_idx: Tensor | None = None,
    ):
        self.config = dict(config)
        self.model_id = model_id
        self.int_net = int_net
        self.lg, self.exp_table, self.lo_level = lg, exp_table, lo_level
        self.float_state = float_state
        self.ha_int = ha_int
        self.z_idx = z_idx
        self.digest = b""

    @property
    def image_model_id(self) -> str:
        return self.config["image_model"]

    @property
    def image_model_digest(self) -> str:
        return self.config["image_model_digest"]

    def check_image_model(self, image_model) -> None:
        """Raises ``ModelFileError`` unless ``image_model`` is the one this model was trained against."""
        if image_model.digest.hex() != self.image_model_digest:
            raise ModelFileError(
                f"temporal model {self.model_id} was trained against {self.image_model_id} "
                f"({self.image_model_digest[:12]}), not weights {image_model.digest.hex()[:12]}"
            )

    def float_net(self) -> TemporalNet:
        """The float twin (the stored one if the file holds it, else the integer network's function)."""
        c = self.config
        net = TemporalNet(c["m"], c["hidden"], c["radius"], c["step"])
        if self.float_state is not None:
            net.load_state_dict(self.float_state)
        else:
            dequantize_temporal(self.int_net, net)
        return net.eval()

    def to_current_units(self, ref: FrameRef, quality: float) -> Tensor:
        """A reference frame's latents in this frame's scaled units, int64 fixed point (``2**-8``)."""
        fx = torch.round(ref.ys_hat.double() * FX)  # exact: ys_hat is a multiple of 2**-8
        fx = fx.clamp(-MU_LIMIT, MU_LIMIT).to(torch.int64)
        if int(round(float(ref.quality) * 100)) == int(round(float(quality) * 100)):
            return fx
        ratio = gain_ratio_q30(self.lg, self.exp_table, self.lo_level, ref.quality, quality)
        return rescale_fx(fx, ratio)

    @torch.no_grad()
    def predict(
        self, mu0_fx: Tensor, sigma0_fx: Tensor, idx0: Tensor, ctx: TemporalContext, n_tables: int
    ) -> tuple[Tensor, Tensor]:
        """Exact: the hyperprior's ``(mu0_fx, sigma0_fx, idx0)`` of this frame (int64, ``[1, M, h, w]``)
        and the context -> ``(mu_fx int64, idx int64)``."""
        p1 = self.to_current_units(ctx.prev, ctx.quality)
        p2 = p1 if ctx.prev2 is None else self.to_current_units(ctx.prev2, ctx.quality)
        if p1.shape != mu0_fx.shape or p2.shape != mu0_fx.shape:
            raise ValueError(f"reference latents {tuple(p1.shape)} do not match {tuple(mu0_fx.shape)}")
        return self.int_net(p1, p2, mu0_fx, sigma0_fx, idx0, n_tables)

    @property
    def predicts_z(self) -> bool:
        return self.ha_int is not None

    @torch.no_grad()
    def predict_z(self, ctx: TemporalContext, z_shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        """Exact: the previous frame's latents -> (predicted hyper-latents ``z`` rounded to integers,
        Gaussian table index per element), both int64 of ``z_shape``, for coding ``z - zpred``."""
        p1 = self.to_current_units(ctx.prev, ctx.quality)
        zp = (self.ha_int(p1) + (FX // 2)) >> OUT_FRAC_BITS
        if tuple(zp.shape) != tuple(z_shape):
            raise ValueError(f"reference latents give hyper-latents {tuple(zp.shape)}, not {tuple(z_shape)}")
        idx = self.z_idx[z_bin(ctx.quality)].view(1, -1, 1, 1).expand(z_shape)
        return zp, idx.contiguous()

    # ---- files -----------------------------------------------------------------------------------

    def tensors(self) -> dict[str, Tensor]:
        t = IntHyperSynthesis(self.int_net.layers).state_tensors("t_int")
        if self.ha_int is not None:
            t.update(IntHyperSynthesis(self.ha_int.layers).state_tensors("ha_int"))
            t["ha_int.leak"] = torch.tensor(
                [self.ha_int.leak_mult, self.ha_int.leak_shift], dtype=torch.int64
            )
            t["z_idx"] = self.z_idx.to(torch.int64)
        t["gain.log2"] = self.lg
        t["gain.exp2"] = self.exp_table
        t["gain.lo_level"] = torch.tensor([self.lo_level], dtype=torch.int64)
        if self.float_state is not None:
            t.update({f"float.{k}": v.detach().float().contiguous() for k, v in self.float_state.items()})
        return t

    def save(self, path: Path, card: dict | None = None) -> None:
        meta = {
            "config": json.dumps(self.config),
            "image_model": self.image_model_id,
            "image_model_digest": self.image_model_digest,
        }
        if card:
            meta["card"] = json.dumps(card)
        save_weights(path, self.tensors(), KIND, self.model_id, meta)

    @classmethod
    def load(cls, path: Path) -> VideoTemporalModel:
        """Loads a weights file written by :meth:`save`.

        Raises:
            ModelFileError: not an ncodec video-temporal weights file, or inconsistent tensors.
        """
        path = Path(path)
        meta, t = read_weights(path, KIND)
        try:
            config = json.loads(meta["config"])
            config["image_model"] = meta["image_model"]
            config["image_model_digest"] = meta["image_model_digest"]
            m, hidden, radius = int(config["m"]), int(config["hidden"]), int(config["radius"])
            layers = IntHyperSynthesis.from_state_tensors(t, "t_int").layers
            k = (2 * radius + 1) ** 2 + 1
            shapes = [
                (hidden, 3 * m + k, 1, 1),
                (hidden, hidden, 3, 3),
                (hidden, hidden, 3, 3),
                (k + 3 * m, hidden, 1, 1),
            ]
            if [tuple(L.weight.shape) for L in layers] != shapes or any(
                L.transposed or L.stride != 1 for L in layers
            ):
                raise ValueError("temporal network layers have unexpected shapes")
            lg, e = t["gain.log2"].to(torch.int64), t["gain.exp2"].to(torch.int64)
            if lg.dim() != 2 or lg.shape[1] != m or lg.shape[0] < 2 or e.shape != (EXP_STEPS + 1,):
                raise ValueError("gain tables have unexpected shapes")
            if (
                lg.abs().max() > (MAX_LOG2_RATIO << LG_FRAC)
                or (e <= 0).any()
                or e.max() > (1 << (EXP_FRAC + 1))
            ):
                raise ValueError("gain tables out of range")
            lo = int(t["gain.lo_level"][0])
            fs = {k[6:]: v for k, v in t.items() if k.startswith("float.")} or None
            ha, z_idx = None, None
            if "ha_int.0.weight" in t:
                ha_layers = IntHyperSynthesis.from_state_tensors(t, "ha_int").layers
                lm, ls = (int(v) for v in t["ha_int.leak"])
                if len(ha_layers) != 3 or ha_layers[0].weight.shape[1] != m or not (0 < lm < 1 << 15):
                    raise ValueError("hyper-analysis layers have unexpected shapes")
                if not 1 <= ls <= 62 or any(L.transposed or L.relu for L in ha_layers):
                    raise ValueError("hyper-analysis layers out of range")
                ha = IntHyperAnalysis(ha_layers, lm, ls)
                z_idx = t["z_idx"].to(torch.int64)
                n_z = ha_layers[-1].weight.shape[0]
                if z_idx.shape != (Z_BINS, n_z) or z_idx.min() < 0 or z_idx.max() > 63:
                    raise ValueError("hyper-latent table indexes have unexpected shape or values")
            model = cls(config, meta["model_id"], IntTemporalNet(layers, m, radius), lg, e, lo, fs, ha, z_idx)
            if fs is not None:
                model.float_net()  # validates the float twin's shapes
        except (KeyError, ValueError, RuntimeError, TypeError) as err:
            raise ModelFileError(f"{path}: inconsistent weights file ({err})") from None
        model.digest = weights_digest(t)
        return model


def build(net: TemporalNet, image_model, calib, model_id: str, ha_int=None, z_idx=None) -> VideoTemporalModel:
    """Exports a trained float :class:`TemporalNet` against ``image_model`` (an ``ImageModel``),
    with optionally the hyper-latent predictor (:func:`quantize_hyper_analysis` and its tables)."""
    int_net = quantize_temporal(net, calib)
    lg, e, lo = gain_tables(image_model)
    config = dict(net.config())
    config["image_model"] = image_model.model_id
    config["image_model_digest"] = image_model.digest.hex()
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    out = VideoTemporalModel(config, model_id, int_net, lg, e, lo, state, ha_int, z_idx)
    out.digest = weights_digest(out.tensors())
    return out


def hyper_fx(image_model, z_hat: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The image model's exact hyperprior prediction: ``(mu0_fx, sigma0_fx, idx0)``, int64."""
    mu_fx, sigma_fx = image_model.h_s_int(z_hat.cpu())
    return mu_fx, sigma_fx, table_indexes(sigma_fx, image_model.y_thresholds)


def table_scales(n_tables: int = 64) -> np.ndarray:
    """The Gaussian scales of the image model's tables (``entropy.gaussian_scale_table``)."""
    from ncodec.entropy.tables import gaussian_scale_table

    return gaussian_scale_table(levels=n_tables)
