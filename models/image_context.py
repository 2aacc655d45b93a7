"""Image model with a checkerboard / channel-slice context entropy model on frozen transforms.

The transforms (``g_a``, ``g_s``, ``h_a``, gains) and the hyper-synthesis are ``image-hp-v1``'s,
unchanged. What is added is a set of small *context networks* that refine the hyperprior's mean
and Gaussian table per latent from latents already decoded (issue 22):

* **channel slices** (Minnen & Singh 2020): the ``M`` latent channels are split into groups
  (``config["context"]["slices"]``, uneven as in ELIC); slice ``g`` is conditioned on the decoded
  latents of slices ``< g`` (a ``k_ch x k_ch`` convolution);
* **checkerboard** (He et al. 2021): within a slice, the *anchors* (``(i + j)`` even) are coded
  first, then the *non-anchors*, conditioned on the decoded anchors (a ``k_sp x k_sp``
  convolution over the anchor map, whose non-anchor positions are zero, so it is causal).

The networks see *normalised residuals* ``u = sym / scale[t]`` (the decoded residual over the
scale of the table it was coded with; ``|u|`` too), which makes their inputs alike at every
quality. Each pass ``(g, p)`` that has any context runs one network::

    first = relu(conv_sp([u, |u|] of the slice's anchors) + conv_ch([u, |u|] of slices < g)
                 + conv_1x1(t_h / 16))
    dm, dt = conv_1x1(relu(conv_1x1(first)))
    mu = mu_h + dm * scale[t_h],   table = clamp(t_h + round(dt), 0, T - 1)

``mu_h`` and ``t_h`` are the hyperprior's mean and table index; the last layer starts at zero, so
an untrained model codes exactly as ``image-hp-v1``. At inference every such network runs in exact
integer arithmetic (:class:`IntPassNet`, built like :mod:`ncodec.models.int_hyper`): its inputs are
integers in units of ``2**-8`` computed from decoded integers only (``u_fx = (sym * INV[t] + 128)
>> 8`` with the stored integer table ``INV[t] = round(2**16 / scale[t])``, and ``t_h * 16``),
clamped to ``+-IN_LIMIT``; its outputs are fixed point with 8 fractional bits, and the mean
offset is ``(dm_fx * SCALE[t_h] + 128) >> 8`` with ``SCALE[t] = round(256 * scale[t])``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ncodec.models.image_model import ImageModel
from ncodec.models.int_hyper import (
    ACT_BITS,
    MULT_BITS,
    OUT_FRAC_BITS,
    OUT_LIMIT,
    WEIGHT_BITS,
    IntHyperSynthesis,
    IntLayer,
    _requant,
    activation_scale,
    table_indexes,
)
from ncodec.models.registry import register_architecture
from ncodec.models.weights_io import weights_digest

KIND = "image-context"
FX = 1 << OUT_FRAC_BITS  # fixed-point unit of every context input and output: 2**-8
IN_LIMIT = 1 << 20
"""Context inputs are clamped to ``+-IN_LIMIT`` fixed-point units (``+-4096`` real): with 13-bit
weights and a fan-in below ``2**14`` every first-layer accumulator stays below ``2**47`` (exact in
float64), and with a bias below ``2**46`` its requantisation product below ``2**63``."""
BIAS_LIMIT = 1 << 46
T_SCALE = 1 / 16
"""The table index enters the networks as ``t_h / 16`` (``t_h * 16`` fixed-point units), a range
like the latents'."""

DEFAULT_CONTEXT = {"slices": [16, 16, 32, 64, 64], "checkerboard": True, "hidden": 96, "k_sp": 5, "k_ch": 3}


# ---- pass structure -----------------------------------------------------------------------


def slice_bounds(cfg: dict) -> list[tuple[int, int]]:
    out, c0 = [], 0
    for c in cfg["slices"]:
        out.append((c0, c0 + c))
        c0 += c
    return out


def passes(cfg: dict) -> list[tuple[int, int]]:
    """Coding passes in order: ``(slice, p)`` with ``p`` 0 = anchors (or all positions without the
    checkerboard), 1 = non-anchors."""
    ps = (0, 1) if cfg["checkerboard"] else (0,)
    return [(g, p) for g in range(len(cfg["slices"])) for p in ps]


def has_net(cfg: dict, g: int, p: int) -> bool:
    """Whether pass ``(g, p)`` has any context (the first pass of slice 0 has none)."""
    return g > 0 or p == 1


def anchor_mask(h: int, w: int) -> Tensor:
    """bool ``[h, w]``: True at anchors, ``(i + j)`` even."""
    i = torch.arange(h)[:, None]
    j = torch.arange(w)[None, :]
    return (i + j) % 2 == 0


def pass_mask(cfg: dict, p: int, h: int, w: int) -> Tensor:
    if not cfg["checkerboard"]:
        return torch.ones(h, w, dtype=torch.bool)
    a = anchor_mask(h, w)
    return a if p == 0 else ~a


# ---- float networks (training) --------------------------------------------------------------


class PassNet(nn.Module):
    """Float context network of one pass (see the module docstring); integer twin :class:`IntPassNet`."""

    def __init__(self, c: int, c_prev: int, spatial: bool, hidden: int, k_sp: int, k_ch: int):
        super().__init__()
        self.sp = nn.Conv2d(2 * c, hidden, k_sp, padding=k_sp // 2, bias=False) if spatial else None
        self.ch = nn.Conv2d(2 * c_prev, hidden, k_ch, padding=k_ch // 2, bias=False) if c_prev else None
        self.hy = nn.Conv2d(c, hidden, 1)
        self.mid = nn.Conv2d(hidden, hidden, 1)
        self.out = nn.Conv2d(hidden, 2 * c, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def first(self, sp: Tensor | None, ch: Tensor | None, hy: Tensor) -> Tensor:
        x = self.hy(hy)
        if self.sp is not None:
            x = x + self.sp(sp)
        if self.ch is not None:
            x = x + self.ch(ch)
        return x

    def forward(self, sp: Tensor | None, ch: Tensor | None, hy: Tensor) -> tuple[Tensor, Tensor]:
        x = F.relu(self.first(sp, ch, hy))
        x = F.relu(self.mid(x))
        dmu, dt = self.out(x).chunk(2, dim=1)
        return dmu, dt


class ContextNets(nn.Module):
    """All pass networks of a context configuration, keyed ``g{g}p{p}``."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = dict(cfg)
        bounds = slice_bounds(cfg)
        self.nets = nn.ModuleDict()
        for g, p in passes(cfg):
            if has_net(cfg, g, p):
                c0, c1 = bounds[g]
                self.nets[f"g{g}p{p}"] = PassNet(c1 - c0, c0, p == 1, cfg["hidden"], cfg["k_sp"], cfg["k_ch"])


def _clampr(x: Tensor) -> Tensor:
    """The integer twin's input clamp, in real units."""
    lim = IN_LIMIT / FX
    return x.clamp(-lim, lim)


def pass_inputs(
    u_a: Tensor | None, u_prev: Tensor | None, t_h: Tensor
) -> tuple[Tensor | None, Tensor | None, Tensor]:
    """Real-valued (float) network inputs of one pass; the integer twin gets these times 256."""
    sp = None if u_a is None else _clampr(torch.cat([u_a, u_a.abs()], 1))
    ch = None if u_prev is None else _clampr(torch.cat([u_prev, u_prev.abs()], 1))
    return sp, ch, t_h * T_SCALE


def scale_luts(n_tables: int) -> tuple[Tensor, Tensor]:
    """int64 ``(INV, SCALE)``: ``round(2**16 / scale[t])`` and ``round(256 * scale[t])`` of the
    Gaussian table scales; stored with the weights, so decoding reads integers only."""
    from ncodec.entropy.tables import gaussian_scale_table

    s = gaussian_scale_table(levels=n_tables)
    return torch.from_numpy(np.round(65536.0 / s).astype(np.int64)), torch.from_numpy(
        np.round(256.0 * s).astype(np.int64)
    )


def gaussian_bits(sym: Tensor, scale: Tensor) -> Tensor:
    """Bits of integer ``sym`` under a zero-mean Gaussian quantised to unit bins (differentiable)."""
    scale = scale.clamp_min(0.11)
    half = torch.tensor(0.5, dtype=sym.dtype, device=sym.device)
    s = sym.abs()
    # upper tail symmetric form for numerical accuracy: P = Phi((0.5 - |s|)/sigma) - Phi((-0.5 - |s|)/sigma)
    upper = torch.special.ndtr((half - s) / scale)
    lower = torch.special.ndtr((-half - s) / scale)
    return -torch.log2((upper - lower).clamp_min(1e-9))


def rate_forward(
    nets: ContextNets,
    ys: Tensor,
    mu_h: Tensor,
    t_h: Tensor,
    log_scales: Tensor,
    ste: bool = True,
    collect: dict | None = None,
) -> dict:
    """Training / evaluation pass of the float model over a batch.

    Args:
        ys: scaled latents ``[B, M, h, w]`` (float32).
        mu_h, t_h: hyperprior mean (float, exact multiples of 2**-8) and table index (float of ints).
        log_scales: ``log`` of the Gaussian table scales ``[T]``.
        collect: if given, receives each network's inputs ``(sp, ch, hy)`` under ``(g, p)``.

    Returns ``bits`` (per pass, each ``[B]``), ``ys_hat``, the residual ``sym`` and the table index
    ``t`` per latent.
    """
    cfg = nets.cfg
    b, m, h, w = ys.shape
    last = log_scales.numel() - 1
    step = float(log_scales[1] - log_scales[0])
    inv, sq = (v.to(ys.device, torch.float32) for v in scale_luts(last + 1))
    bits, u_prev = {}, []
    ys_hat_all, t_all, sym_all = torch.zeros_like(ys), torch.zeros_like(ys), torch.zeros_like(ys)
    for g, (c0, c1) in enumerate(slice_bounds(cfg)):
        ys_g, mu_g, t_g = ys[:, c0:c1], mu_h[:, c0:c1], t_h[:, c0:c1]
        prev_t = torch.cat(u_prev, 1) if u_prev else None
        ys_hat_g, u_g = torch.zeros_like(ys_g), torch.zeros_like(ys_g)
        for p in (0, 1) if cfg["checkerboard"] else (0,):
            mask = pass_mask(cfg, p, h, w).to(ys.device)
            if has_net(cfg, g, p):
                sp, ch, hy = pass_inputs(u_g if p == 1 else None, prev_t, t_g)
                if collect is not None:
                    collect[(g, p)] = (sp, ch, hy)
                dm, dt = nets.nets[f"g{g}p{p}"](sp, ch, hy)
            else:
                dm = dt = torch.zeros_like(ys_g)
            mu = mu_g + dm * sq[t_g.long()] / FX
            t_cont = (t_g + dt).clamp(0, last)
            t_q = torch.round(t_cont).detach()
            r = ys_g - mu
            # training: additive uniform noise for the rate (a gradient for the mean even where the
            # rounded residual is 0); evaluation: the rounded residual the coder writes
            sym = r + torch.rand_like(r) - 0.5 if ste else torch.round(r)
            if ste:
                scale_c = torch.exp(log_scales[0] + step * t_cont)
                scale_q = torch.exp(log_scales[t_q.long()])
                scale = scale_c + (scale_q - scale_c).detach()
            else:
                scale = torch.exp(log_scales[t_q.long()])
            bits[(g, p)] = (gaussian_bits(sym, scale) * mask).flatten(1).sum(1)
            s_r = torch.round(r).detach()
            ys_hat_g = torch.where(mask, (s_r + mu).detach(), ys_hat_g)
            u_g = torch.where(mask, s_r * inv[t_q.long()] / 65536.0, u_g)
            t_all[:, c0:c1] = torch.where(mask, t_q, t_all[:, c0:c1])
            sym_all[:, c0:c1] = torch.where(mask, s_r, sym_all[:, c0:c1])
        u_prev.append(u_g)
        ys_hat_all[:, c0:c1] = ys_hat_g
    return {"bits": bits, "ys_hat": ys_hat_all, "t": t_all, "sym": sym_all}


# ---- integer twin ------------------------------------------------------------------------


def _requantize(acc: Tensor, bias: Tensor, mult: Tensor, shift: Tensor, relu: bool) -> Tensor:
    view = (1, -1, 1, 1)
    acc = torch.round(acc).to(torch.int64) + bias.view(view)
    y = (acc * mult.view(view) + (1 << (shift.view(view) - 1))) >> shift.view(view)
    return y.clamp(0, (1 << ACT_BITS) - 1) if relu else y.clamp(-OUT_LIMIT, OUT_LIMIT)


def _ratio(mult: Tensor, shift: Tensor) -> Tensor:
    """float32 ``mult / 2**shift``: the real factor a requantisation applies."""
    return (mult.to(torch.float64) * torch.exp2(-shift.to(torch.float64))).to(torch.float32)


class IntPassNet:
    """Exact integer twin of :class:`PassNet`.

    The first layer sums up to three integer convolutions (spatial, channel, hyper inputs; float64
    on integers, exact since every partial sum stays below ``2**53``), adds an int64 bias and
    requantises as :class:`~ncodec.models.int_hyper.IntLayer` does; the 1x1 layers after it are
    ``IntLayer``s. ``__call__`` takes the fixed-point inputs (int64 tensors, units of ``2**-8``)
    and returns ``(dmu_fx, dt_fx)`` int64, units of ``2**-8``.
    """

    GROUPS = ("sp", "ch", "hy")

    def __init__(
        self, first: dict[str, Tensor], bias: Tensor, mult: Tensor, shift: Tensor, rest: list[IntLayer]
    ):
        self.first, self.bias, self.mult, self.shift, self.rest = first, bias, mult, shift, rest

    def __call__(self, sp: Tensor | None, ch: Tensor | None, hy: Tensor) -> tuple[Tensor, Tensor]:
        acc = None
        for name, x in zip(self.GROUPS, (sp, ch, hy)):
            w = self.first.get(name)
            if w is None:
                continue
            x = x.to(torch.int64).clamp(-IN_LIMIT, IN_LIMIT).to(torch.float64)
            y = F.conv2d(x, w, padding=w.shape[-1] // 2)
            acc = y if acc is None else acc + y
        x = _requantize(acc, self.bias, self.mult, self.shift, relu=True).to(torch.float64)
        for layer in self.rest:
            x = layer(x)
        dmu, dt = x.to(torch.int64).chunk(2, dim=1)
        return dmu, dt

    def relaxed(self, sp: Tensor | None, ch: Tensor | None, hy: Tensor) -> tuple[Tensor, Tensor]:
        """Differentiable float32 twin of :meth:`__call__` (the encoder's latent optimisation): the
        same integer weights and requantisation ratios without the roundings, so it follows the
        exact network to within them. Inputs and outputs are float, in fixed-point units."""
        f = self.__dict__.get("_f32")
        if f is None:  # float32 copies, made once: float64 convolutions are several times slower
            first = {k: w.to(torch.float32) for k, w in self.first.items()}
            rest = [
                (L.weight.to(torch.float32), L.bias.to(torch.float32), _ratio(L.mult, L.shift), L)
                for L in self.rest
            ]
            f = self._f32 = (first, self.bias.to(torch.float32), _ratio(self.mult, self.shift), rest)
        first, bias, ratio, rest = f
        acc = None
        for name, x in zip(self.GROUPS, (sp, ch, hy)):
            w = first.get(name)
            if w is None:
                continue
            y = F.conv2d(x.clamp(-IN_LIMIT, IN_LIMIT), w, padding=w.shape[-1] // 2)
            acc = y if acc is None else acc + y
        view = (1, -1, 1, 1)
        x = ((acc + bias.view(view)) * ratio.view(view)).clamp(0, (1 << ACT_BITS) - 1)
        for w, b, r, L in rest:
            y = (F.conv2d(x, w, stride=L.stride, padding=L.padding) + b.view(view)) * r.view(view)
            x = y.clamp(0, (1 << ACT_BITS) - 1) if L.relu else y.clamp(-OUT_LIMIT, OUT_LIMIT)
        dmu, dt = x.chunk(2, dim=1)
        return dmu, dt

    def state_tensors(self, prefix: str) -> dict[str, Tensor]:
        out = {f"{prefix}.first.{k}": w.to(torch.int16) for k, w in self.first.items()}
        out[f"{prefix}.first.bias"] = self.bias
        out[f"{prefix}.first.mult"] = self.mult
        out[f"{prefix}.first.shift"] = self.shift
        out.update(IntHyperSynthesis(self.rest).state_tensors(f"{prefix}.rest"))
        return out

    @classmethod
    def from_state_tensors(
        cls, t: dict[str, Tensor], prefix: str, c: int, c_prev: int, spatial: bool
    ) -> IntPassNet:
        first = {}
        expect = {"sp": 2 * c if spatial else 0, "ch": 2 * c_prev, "hy": c}
        for k, cin in expect.items():
            key = f"{prefix}.first.{k}"
            if cin == 0:
                if key in t:
                    raise ValueError(f"{prefix}: unexpected {k} weights")
                continue
            w = t[key]
            if w.dim() != 4 or w.shape[1] != cin or w.shape[2] != w.shape[3] or w.shape[2] % 2 != 1:
                raise ValueError(f"{prefix}: {k} weights of shape {tuple(w.shape)}")
            first[k] = w.to(torch.float64)
        hidden = {w.shape[0] for w in first.values()}
        bias, mult, shift = (t[f"{prefix}.first.{k}"].to(torch.int64) for k in ("bias", "mult", "shift"))
        if len(hidden) != 1 or not (bias.shape == mult.shape == shift.shape == (hidden.pop(),)):
            raise ValueError(f"{prefix}: inconsistent first-layer shapes")
        fan_in = sum(w[0].numel() for w in first.values())
        if fan_in >= 1 << 14 or any(w.abs().max() >= 1 << (WEIGHT_BITS - 1) for w in first.values()):
            raise ValueError(f"{prefix}: first layer out of the exact range")
        if (bias.abs() >= BIAS_LIMIT).any() or (mult <= 0).any() or (mult >= 1 << MULT_BITS).any():
            raise ValueError(f"{prefix}: first layer values out of range")
        if (shift < 1).any() or (shift > 62).any():
            raise ValueError(f"{prefix}: shift out of range")
        rest = IntHyperSynthesis.from_state_tensors(t, f"{prefix}.rest").layers
        cin = bias.shape[0]
        for i, L in enumerate(rest):
            if L.transposed or L.weight.shape[1] != cin or L.weight.shape[2:] != (1, 1):
                raise ValueError(f"{prefix}: layer {i + 1} of shape {tuple(L.weight.shape)}")
            if (L.bias.abs() >= BIAS_LIMIT).any() or L.relu != (i < len(rest) - 1):
                raise ValueError(f"{prefix}: layer {i + 1} out of range")
            cin = L.weight.shape[0]
        if cin != 2 * c:
            raise ValueError(f"{prefix}: {cin} outputs, expected {2 * c}")
        return cls(first, bias, mult, shift, rest)


def _act_scale(y: Tensor) -> float:
    return activation_scale(y.clamp_min(0))


@torch.no_grad()
def quantize_pass_net(net: PassNet, sp: Tensor | None, ch: Tensor | None, hy: Tensor) -> IntPassNet:
    """Integer twin of a trained :class:`PassNet`; ``sp``, ``ch``, ``hy`` are real-valued calibration
    inputs (as :func:`pass_inputs` gives them) that size the activations."""
    in_scale = 1.0 / FX
    convs = {"sp": net.sp, "ch": net.ch, "hy": net.hy}
    ws = {k: m.weight.detach().double() * in_scale for k, m in convs.items() if m is not None}
    wmax = torch.stack([w.abs().amax(dim=(1, 2, 3)) for w in ws.values()]).amax(0).clamp_min(1e-12)
    s_w = wmax / ((1 << (WEIGHT_BITS - 1)) - 1)
    first = {k: torch.round(w / s_w.view(-1, 1, 1, 1)) for k, w in ws.items()}
    bias = torch.round(net.hy.bias.detach().double() / s_w).to(torch.int64)
    y = net.first(sp, ch, hy).double()
    out_scale = _act_scale(y)
    mult, shift = _requant((s_w / out_scale).numpy())
    x, in_scale, rest = F.relu(y), out_scale, []
    for i, m in enumerate((net.mid, net.out)):
        last = i == 1
        w = m.weight.detach().double()
        wmax = w.abs().amax(dim=(1, 2, 3)).clamp_min(1e-12)
        s = wmax / ((1 << (WEIGHT_BITS - 1)) - 1)
        w_int = torch.round(w / s.view(-1, 1, 1, 1))
        acc_scale = s * in_scale
        b = torch.round(m.bias.detach().double() / acc_scale).to(torch.int64)
        y = F.conv2d(x, w, m.bias.detach().double())
        o = 1.0 / FX if last else _act_scale(y)
        mu, sh = _requant((acc_scale / o).numpy())
        rest.append(
            IntLayer(False, 1, 0, 0, w_int, b, torch.from_numpy(mu), torch.from_numpy(sh), relu=not last)
        )
        x, in_scale = F.relu(y), o
    return IntPassNet(first, bias, torch.from_numpy(mult), torch.from_numpy(shift), rest)


# ---- the inference model -------------------------------------------------------------------


@register_architecture(KIND)
class ImageContextModel(ImageModel):
    """``image-hp-v1``'s transforms and hyperprior plus exact integer context networks
    (``ctx_int``, keyed ``(g, p)``); ``config["context"]`` describes the passes."""

    KIND = KIND

    def __init__(self, config: dict, model_id: str):
        super().__init__(config, model_id)
        self.ctx_int: dict[tuple[int, int], IntPassNet] = {}
        self.ctx_inv: Tensor | None = None  # int64 [T]: round(2**16 / scale[t])
        self.ctx_scale: Tensor | None = None  # int64 [T]: round(256 * scale[t])

    @property
    def context(self) -> dict:
        return self.config["context"]

    def latent_codec(self, threads: int | None = None):
        from ncodec.models.latent_codecs.checkerboard import ContextCodec

        return ContextCodec(self, threads=threads)

    @torch.no_grad()
    def hyper_fx(self, z_hat: Tensor) -> tuple[Tensor, Tensor]:
        """Exact: ``z_hat`` -> (``mu_h`` int64 in units of ``2**-8``, table index int64)."""
        mu_fx, sigma_fx = self.h_s_int(z_hat.cpu())
        return mu_fx, table_indexes(sigma_fx, self.y_thresholds)

    def dequantize(self, sym: Tensor, mu: Tensor) -> Tensor:
        return sym.to(torch.float64) + mu

    def tensors(self) -> dict[str, Tensor]:
        t = super().tensors()
        t["ctx.inv_scale"], t["ctx.scale"] = self.ctx_inv, self.ctx_scale
        for (g, p), net in self.ctx_int.items():
            t.update(net.state_tensors(f"ctx.g{g}p{p}"))
        return t

    def _load_context(self, t: dict[str, Tensor]) -> None:
        cfg = self.context
        bounds = slice_bounds(cfg)
        if bounds[-1][1] != self.config["m"] or min(cfg["slices"]) < 1:
            raise ValueError("context slices do not cover the latent channels")
        n_tables = len(self.y_tables)
        self.ctx_inv, self.ctx_scale = t["ctx.inv_scale"].to(torch.int64), t["ctx.scale"].to(torch.int64)
        for v, hi in ((self.ctx_inv, 1 << 20), (self.ctx_scale, 1 << 16)):
            if v.shape != (n_tables,) or (v <= 0).any() or (v > hi).any():
                raise ValueError("context scale tables of the wrong size or range")
        self.ctx_int = {}
        for g, p in passes(cfg):
            if has_net(cfg, g, p):
                c0, c1 = bounds[g]
                self.ctx_int[(g, p)] = IntPassNet.from_state_tensors(t, f"ctx.g{g}p{p}", c1 - c0, c0, p == 1)

    def load_extra(self, t: dict[str, Tensor]) -> None:
        """The context networks and their integer tables (``ImageModel.load`` does the rest)."""
        self._load_context(t)

    @classmethod
    def from_hyperprior(
        cls, base: ImageModel, nets: ContextNets, calib: dict, model_id: str
    ) -> ImageContextModel:
        """Builds the inference model: ``base``'s transforms, hyperprior and tables, plus the integer
        twins of ``nets`` calibrated on ``calib[(g, p)] = (sp, ch, hy)`` real-valued inputs."""
        config = dict(base.config, context=dict(nets.cfg))
        out = cls(config, model_id)
        out.load_state_dict(base.state_dict(), strict=True)
        out.h_s_int, out.z_tables, out.y_tables = base.h_s_int, base.z_tables, base.y_tables
        out.y_thresholds = base.y_thresholds
        out.ctx_inv, out.ctx_scale = scale_luts(len(base.y_tables))
        for key, net in nets.nets.items():
            g, p = int(key[1 : key.index("p")]), int(key[key.index("p") + 1 :])
            out.ctx_int[(g, p)] = quantize_pass_net(net, *calib[(g, p)])
        out.g_a.to(memory_format=torch.channels_last)
        out.g_s.to(memory_format=torch.channels_last)
        out.digest = weights_digest(out.tensors())
        return out.eval()


def log_scale_table(model: ImageModel) -> Tensor:
    """``log`` of the model's Gaussian table scales (the thresholds are their fixed-point floors;
    the tables themselves were built from :func:`~ncodec.entropy.tables.gaussian_scale_table`)."""
    from ncodec.entropy.tables import gaussian_scale_table

    s = gaussian_scale_table(levels=len(model.y_tables))
    return torch.from_numpy(np.log(s)).float()
