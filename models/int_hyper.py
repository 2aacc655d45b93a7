"""Exact integer hyper-synthesis: the part of the decoder that selects probability tables.

CompressAI's float hyper-decoder picks tables from float scales; a last-bit difference between two
machines picks a different table and the decode falls apart (CompressAI issues #279, #309, #320).
Here ``h_s`` runs on integers only:

* weights are integers (per-output-channel scale, at most ``WEIGHT_BITS`` bits), biases int64;
* activations are integers in ``[0, 2**ACT_BITS)`` (after ReLU);
* each convolution runs in float64 on integer values: every product and partial sum is an integer
  below ``2**53``, so the result is exact in any summation order, on any BLAS, thread count or GPU;
* requantisation is an int64 multiply, add and arithmetic shift: ``(acc * mult + 2**(shift-1)) >> shift``.

The last layer yields means and scales in fixed point with ``OUT_FRAC_BITS`` fractional bits; a
scale picks its Gaussian table by integer comparison with stored thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

WEIGHT_BITS = 14
ACT_BITS = 18
OUT_FRAC_BITS = 8
OUT_LIMIT = 1 << 24
Z_LIMIT = 1 << 12
"""Decoded hyper-latents are clamped to ``+-Z_LIMIT`` (the encoder clamps first), which keeps every
accumulator far below ``2**53`` even for a hostile stream."""
MULT_BITS = 15


@dataclass
class IntLayer:
    """One integer convolution ``y = requant(conv(x, weight) + bias)``.

    Attributes:
        transposed: ConvTranspose2d/1d if True, else Conv2d/1d.
        weight: float64 tensor of integers, PyTorch layout; 4-D for 2-D layers (images), 3-D for
            1-D layers (audio): the dimensionality is read from the weight, the stored format is the same.
        bias: int64 ``[Cout]`` in accumulator units.
        mult, shift: int64 ``[Cout]`` requantisation ``(acc * mult + 2**(shift-1)) >> shift``.
        relu: clamp to ``[0, 2**ACT_BITS - 1]`` if True, else to ``+-OUT_LIMIT``.
    """

    transposed: bool
    stride: int
    padding: int
    output_padding: int
    weight: Tensor
    bias: Tensor
    mult: Tensor
    shift: Tensor
    relu: bool

    def __call__(self, x: Tensor) -> Tensor:
        w = self.weight.to(x.device)
        one_d = w.dim() == 3
        with torch.backends.cudnn.flags(enabled=False):  # no Winograd/FFT: plain exact GEMM
            if self.transposed:
                conv_t = F.conv_transpose1d if one_d else F.conv_transpose2d
                acc = conv_t(
                    x, w, stride=self.stride, padding=self.padding, output_padding=self.output_padding
                )
            else:
                acc = (F.conv1d if one_d else F.conv2d)(x, w, stride=self.stride, padding=self.padding)
        view = (1, -1, 1) if one_d else (1, -1, 1, 1)
        acc = torch.round(acc).to(torch.int64) + self.bias.to(x.device).view(view)
        mult = self.mult.to(x.device).view(view)
        shift = self.shift.to(x.device).view(view)
        y = (acc * mult + (1 << (shift - 1))) >> shift
        y = y.clamp(0, (1 << ACT_BITS) - 1) if self.relu else y.clamp(-OUT_LIMIT, OUT_LIMIT)
        return y.to(torch.float64)


class IntHyperSynthesis:
    """Integer twin of :func:`ncodec.models.image.hyper_synthesis` (or of the 1-D
    :func:`ncodec.models.audio.hyper_synthesis`).

    ``__call__(z_hat)`` maps int hyper-latents ``[B,N,h,w]`` to ``(mu_fx, sigma_fx)``, int64
    ``[B,M,4h,4w]`` in units of ``2**-OUT_FRAC_BITS`` (1-D: ``[B,N,h]`` to ``[B,M,4h]``).
    """

    def __init__(self, layers: list[IntLayer]):
        self.layers = layers

    def __call__(self, z_hat: Tensor) -> tuple[Tensor, Tensor]:
        x = z_hat.to(torch.int64).clamp(-Z_LIMIT, Z_LIMIT).to(torch.float64)
        for layer in self.layers:
            x = layer(x)
        mu, sigma = x.to(torch.int64).chunk(2, dim=1)
        return mu, sigma

    def state_tensors(self, prefix: str = "h_s_int") -> dict[str, Tensor]:
        out = {}
        for i, L in enumerate(self.layers):
            out[f"{prefix}.{i}.weight"] = L.weight.to(torch.int16)  # |w| < 2**13
            out[f"{prefix}.{i}.bias"] = L.bias
            out[f"{prefix}.{i}.mult"] = L.mult
            out[f"{prefix}.{i}.shift"] = L.shift
            out[f"{prefix}.{i}.config"] = torch.tensor(
                [int(L.transposed), L.stride, L.padding, L.output_padding, int(L.relu)], dtype=torch.int64
            )
        return out

    @classmethod
    def from_state_tensors(cls, t: dict[str, Tensor], prefix: str = "h_s_int") -> IntHyperSynthesis:
        layers, i = [], 0
        while f"{prefix}.{i}.weight" in t:
            tr, stride, pad, opad, relu = (int(v) for v in t[f"{prefix}.{i}.config"])
            w = t[f"{prefix}.{i}.weight"]
            bias, mult, shift = (t[f"{prefix}.{i}.{k}"].to(torch.int64) for k in ("bias", "mult", "shift"))
            cout = w.shape[1] if tr else w.shape[0]
            if not (bias.shape == mult.shape == shift.shape == (cout,)):
                raise ValueError(f"integer hyper-synthesis layer {i}: inconsistent shapes")
            if w.abs().max() >= 1 << (WEIGHT_BITS - 1) or (mult <= 0).any() or (mult >= 1 << MULT_BITS).any():
                raise ValueError(f"integer hyper-synthesis layer {i}: values out of range")
            if (shift < 1).any() or (shift > 62).any():
                raise ValueError(f"integer hyper-synthesis layer {i}: shift out of range")
            layers.append(
                IntLayer(bool(tr), stride, pad, opad, w.to(torch.float64), bias, mult, shift, bool(relu))
            )
            i += 1
        if not layers:
            raise ValueError("weights hold no integer hyper-synthesis")
        return cls(layers)


def dequantize_into(int_hs: IntHyperSynthesis, h_s: nn.Module) -> None:
    """Loads the real-valued twin of an integer hyper-synthesis into a float ``h_s`` of the same
    structure (to resume training from a shipped weights file).

    ReLU is positively homogeneous, so the real value of one intermediate integer unit is free; it is
    set to ``2**(3 - ACT_BITS)`` (activations up to about 8, a range a float network trains well in),
    which with ``M = mult / 2**shift`` gives, for the first, middle and last layers,
    ``(w, b) = (w_int*M*u, b_int*M*u)``, ``(w_int*M, b_int*M*u)``, ``(w_int*M*2**-OUT_FRAC_BITS/u,
    b_int*M*2**-OUT_FRAC_BITS)``: the integer network's function, without its rounding.
    """
    convs = [
        m
        for m in h_s.modules()
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Conv1d | nn.ConvTranspose1d)
    ]
    if len(convs) != len(int_hs.layers):
        raise ValueError(f"h_s has {len(convs)} convolutions, the integer twin {len(int_hs.layers)}")
    unit = 2.0 ** (3 - ACT_BITS)
    for i, (m, L) in enumerate(zip(convs, int_hs.layers)):
        if tuple(m.weight.shape) != tuple(L.weight.shape):
            raise ValueError(f"h_s layer {i}: shape {tuple(m.weight.shape)} != {tuple(L.weight.shape)}")
        ratio = L.mult.double() / torch.exp2(L.shift.double())
        in_unit = 1.0 if i == 0 else unit
        out_unit = 2.0**-OUT_FRAC_BITS if i == len(convs) - 1 else unit
        shape = [1, -1] if L.transposed else [-1, 1]
        shape += [1] * (L.weight.dim() - 2)
        with torch.no_grad():
            m.weight.copy_((L.weight * (ratio * out_unit / in_unit).view(shape)).to(m.weight.dtype))
            m.bias.copy_((L.bias.double() * ratio * out_unit).to(m.bias.dtype))


def _requant(ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer ``mult / 2**shift`` approximations of positive ratios, ``mult`` in ``[2**14, 2**15)``."""
    e = np.floor(np.log2(ratio)).astype(np.int64)
    shift = (MULT_BITS - 1) - e
    mult = np.round(ratio * np.exp2(shift.astype(np.float64))).astype(np.int64)
    over = mult >= 1 << MULT_BITS
    mult[over] >>= 1
    shift[over] -= 1
    if (shift < 1).any() or (shift > 62).any():
        raise ValueError("requantisation ratio out of the representable range")
    return mult, shift


def quantize_conv(
    m: nn.Module, in_scale: float, y: Tensor, out_scale: Tensor | float | None
) -> tuple[IntLayer, Tensor, Tensor | float]:
    """One float convolution ``m`` as an :class:`IntLayer`: weights per output channel in
    ``WEIGHT_BITS``, bias in accumulator units, requantisation to ``out_scale``.

    Args:
        in_scale: real value of one input integer unit.
        y: the float layer's output on the calibration input (the caller computes it).
        out_scale: real value of one output unit (the last layer's, fixed by the format), or
            ``None`` for a hidden layer: ReLU, scale calibrated on ``y`` (:func:`activation_scale`).

    Returns:
        the layer, the calibration output (clamped at 0 for a hidden layer) and the output scale.
    """
    transposed = isinstance(m, nn.ConvTranspose2d | nn.ConvTranspose1d)
    w = m.weight.detach().double()
    oc_dim = 1 if transposed else 0
    wmax = w.abs().amax(dim=[d for d in range(w.dim()) if d != oc_dim]).clamp_min(1e-12)
    s_w = wmax / ((1 << (WEIGHT_BITS - 1)) - 1)  # per output channel
    shape = [1, -1] if transposed else [-1, 1]
    shape += [1] * (w.dim() - 2)
    w_int = torch.round(w / s_w.view(shape))
    acc_scale = s_w * in_scale  # real value of one accumulator unit, per channel
    bias = torch.round(m.bias.detach().double() / acc_scale).to(torch.int64)
    relu = out_scale is None
    if relu:
        y = y.clamp_min(0)
        out_scale = activation_scale(y)
    mult, shift = _requant((acc_scale / out_scale).numpy())
    layer = IntLayer(
        transposed,
        m.stride[0],
        m.padding[0],
        m.output_padding[0] if transposed else 0,
        w_int,
        bias,
        torch.from_numpy(mult),
        torch.from_numpy(shift),
        relu=relu,
    )
    return layer, y, out_scale


def quantize_hyper_synthesis(h_s: nn.Sequential, calib_z: Tensor) -> IntHyperSynthesis:
    """Builds the integer twin of a trained float ``h_s`` (conv/deconv layers with ReLU between).

    Args:
        h_s: the float hyper-synthesis.
        calib_z: rounded hyper-latents ``[B,N,h,w]`` from training images, to size the activations.
    """
    convs = [m for m in h_s if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Conv1d | nn.ConvTranspose1d)]
    x_float = calib_z.double()
    in_scale = 1.0
    layers = []
    for i, m in enumerate(convs):
        last = i == len(convs) - 1
        y = m(x_float.float()).double()  # float reference output for calibration
        layer, x_float, in_scale = quantize_conv(m, in_scale, y, 2.0**-OUT_FRAC_BITS if last else None)
        layers.append(layer)
    return IntHyperSynthesis(layers)


def activation_scale(y: Tensor) -> float:
    """The real value of one integer activation step for calibration outputs ``y`` (after the
    non-linearity, non-negative): the 99.999th percentile (on at most ~10**6 samples), with 25 %
    headroom, maps onto ``2**ACT_BITS - 1``."""
    q = float(torch.quantile(y.flatten()[:: max(1, y.numel() // 1_000_000)], 0.99999)) * 1.25
    return max(q, 1e-6) / ((1 << ACT_BITS) - 1)


def scale_thresholds(scale_table: np.ndarray) -> np.ndarray:
    """int64 thresholds: a fixed-point scale ``s_fx`` takes table ``#{j : thr[j] < s_fx}``, which is
    the first table whose scale is at least ``s_fx * 2**-OUT_FRAC_BITS`` (CompressAI's rule)."""
    return np.floor(np.asarray(scale_table[:-1], dtype=np.float64) * (1 << OUT_FRAC_BITS)).astype(np.int64)


def table_indexes(sigma_fx: Tensor, thresholds: Tensor) -> Tensor:
    """Gaussian table index per element (int64, same shape), by integer comparison only."""
    return torch.bucketize(sigma_fx.contiguous(), thresholds.to(sigma_fx.device), right=False)
