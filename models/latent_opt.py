"""Encoder-side latent optimisation: spend encode time, not training time.

At ``--effort 0`` the encoder codes ``round(ys - mu)``. Higher efforts search for residual symbols
with a lower rate-distortion cost ``bits / pixels + lambda * 255^2 * MSE`` (the training objective,
``lambda`` of the quality's level) through the frozen synthesis, by stochastic Gumbel annealing
(Yang, Bamler & Mandt 2020, "Improving inference for neural image compression"): each residual is
relaxed to a random mix of its floor and ceiling whose odds sharpen as a temperature anneals, so
the optimiser may move a symbol to either neighbouring integer and see the effect on both terms.

The hyper-latents ``z_hat`` stay as analysed, so the means and table indexes the decoder derives
from them (exactly) do not change; only the residual symbols do. The stream format, the decoder
and its speed are untouched, and the result is deterministic for a given image, quality and
effort (seeded noise, one thread's float order aside).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ncodec.entropy.tables import gaussian_scale_table

__all__ = ["Schedule", "EFFORTS", "refine_residuals", "rd_lambda"]


@dataclass(frozen=True)
class Schedule:
    """An effort level: ``iters`` Adam steps at learning rate ``lr`` (in symbol units), the
    temperature annealed from ``tau0`` to ``tau1`` (geometrically)."""

    iters: int
    lr: float = 0.02
    tau0: float = 0.5
    tau1: float = 0.05


EFFORTS: dict[int, Schedule | None] = {
    0: None,
    1: Schedule(iters=12),
    2: Schedule(iters=64),
    3: Schedule(iters=512, lr=0.01),
}
"""``--effort`` levels. Level 0 is a single pass; the iteration counts aim at about 10 s, 1 min and
10 min per Kodak image on a 2-core machine. The learning rate was picked on 256x256 crops of two
training images (lr 0.1 and 0.05 overshoot in few steps; 0.02 keeps most of the gain in 16):
see the image model card for the measured gains."""


def rd_lambda(lambdas: list[float] | tuple[float, ...], level: float) -> float:
    """The rate-distortion trade-off at a continuous rate level: log-linear between the trained
    levels' lambdas, extrapolated below level 0 as the gains are."""
    ll = np.log(np.asarray(lambdas, dtype=np.float64))
    lo = min(max(math.floor(level), 0), len(ll) - 2)
    t = level - lo
    return float(np.exp((1 - t) * ll[lo] + t * ll[lo + 1]))


def _bits(r: Tensor, sigma: Tensor) -> Tensor:
    """Bits of integer-or-relaxed residuals ``r`` under zero-mean Gaussians of scale ``sigma``
    (probability of the unit interval around ``r``), summed."""
    # by symmetry, on the lower tail, where ndtr keeps its precision far from the mean
    z = -r.abs() / sigma
    half = 0.5 / sigma
    p = torch.special.ndtr(z + half) - torch.special.ndtr(z - half)
    return -torch.log2(p.clamp_min(1e-12)).sum()


def refine_residuals(
    model,
    x: Tensor,
    ys: Tensor,
    z_hat: Tensor,
    quality: float,
    schedule: Schedule,
    seed: int = 0,
    progress=None,
    prior: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Optimised scaled latents for one tile.

    Args:
        model: an :class:`~ncodec.models.image_model.ImageModel` (frozen).
        x: the tile's pixels ``[1, 3, h, w]`` in [0, 1], unpadded (the padding the synthesis also
            produces costs nothing).
        ys: the scaled latents ``[1, M, H/16, W/16]`` from the analysis at ``quality``.
        z_hat: the hyper-latents coded with them (kept).
        quality: 0..100.
        schedule: iterations, learning rate and temperatures.
        progress: called with the iteration number after each step.
        prior: the hyperprior's ``(mu, table index)`` of ``ys``, when the caller has it (a segment
            of a picture: the crop of the whole picture's prior); else computed from ``z_hat``.

    Returns:
        float64 latents ``ys'`` such that ``round(ys' - mu)`` are the chosen residual symbols (for
        the latent codec's ``compress(ys', z_hat)``).
    """
    mu, idx = prior if prior is not None else model.hyper(z_hat.cpu(), tuple(ys.shape))
    scales = torch.from_numpy(gaussian_scale_table()).to(torch.float32)
    sigma = scales[idx.clamp(0, scales.numel() - 1)]
    dev = next(model.g_s.parameters()).device
    with torch.no_grad():
        inv_gain = model._gain(model.log_inv_gain, quality).to(dev)
    lam = rd_lambda(model.config["lambdas"], model.level(quality))
    h, w = x.shape[-2:]
    pixels = h * w
    mu32 = mu.to(torch.float32)
    u = (ys.cpu().double() - mu).to(torch.float32).clone().requires_grad_(True)
    start = torch.round(u.detach())
    opt = torch.optim.Adam([u], lr=schedule.lr)
    gen = torch.Generator().manual_seed(seed)
    best, best_loss = start, _cost(model, start, mu32, sigma, inv_gain, x, lam, pixels, dev)
    ratio = (schedule.tau1 / schedule.tau0) ** (1.0 / max(schedule.iters - 1, 1))
    for it in range(schedule.iters):
        tau = schedule.tau0 * ratio**it
        fl = torch.floor(u)
        d = (u - fl).clamp(1e-4, 1 - 1e-4)
        # odds of rounding down vs up, sharpening as tau falls (SGA's atanh relaxation)
        logits = torch.stack([-torch.atanh(d) / tau, -torch.atanh(1 - d) / tau], dim=0)
        g = -torch.log(-torch.log(torch.rand(logits.shape, generator=gen).clamp(1e-9, 1 - 1e-9)))
        w = F.softmax(logits + g, dim=0)
        r = fl + w[1]
        loss = _loss(model, r, mu32, sigma, inv_gain, x, lam, pixels, dev)
        opt.zero_grad(set_to_none=True)
        loss.backward(inputs=[u])  # the latents only: the weights stay frozen and gradient-free
        opt.step()
        if progress is not None:
            progress(it)
        if it % 8 == 7 or it == schedule.iters - 1:
            cand = torch.round(u.detach())
            c = _cost(model, cand, mu32, sigma, inv_gain, x, lam, pixels, dev)
            if c < best_loss:
                best, best_loss = cand, c
    return best.double() + mu


def _loss(model, r, mu, sigma, inv_gain, x, lam, pixels, dev, clamp: bool = False) -> Tensor:
    """``bits / pixels + lam * 255^2 * MSE`` of residuals ``r`` (relaxed or whole) over means ``mu``;
    ``clamp`` clips the synthesis to [0, 1] as the decoder does (not differentiable at the clip)."""
    x_hat = model.g_s(((r + mu).to(dev) * inv_gain).contiguous(memory_format=torch.channels_last))
    x_hat = x_hat[..., : x.shape[-2], : x.shape[-1]].float()
    mse = F.mse_loss(x_hat.clamp(0, 1) if clamp else x_hat, x)
    return _bits(r, sigma) / pixels + lam * 255**2 * mse


@torch.no_grad()
def _cost(model, r, mu, sigma, inv_gain, x, lam, pixels, dev) -> float:
    """The true objective of integer residuals (the synthesis output clamped as decoded)."""
    return float(_loss(model, r, mu, sigma, inv_gain, x, lam, pixels, dev, clamp=True))
