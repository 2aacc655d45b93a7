"""Encoder-side latent optimisation: spend encode time, not training time.

At ``--effort 0`` the encoder codes ``round(ys - mu)``. Higher efforts search for residual symbols
with a lower rate-distortion cost ``bits / pixels + lambda * 255^2 * MSE`` (the training objective,
``lambda`` of the quality's level) through the frozen synthesis, by stochastic Gumbel annealing
(Yang, Bamler & Mandt 2020, "Improving inference for neural image compression"): each residual is
relaxed to a random mix of its floor and ceiling whose odds sharpen as a temperature anneals, so
the optimiser may move a symbol to either neighbouring integer and see the effect on both terms.

The hyper-latents ``z_hat`` stay as analysed; only the latent symbols change. Two variants, after
the latent codec that will code them:

* hyperprior models (:func:`refine_residuals`): the means and tables are the hyperprior's, fixed
  by ``z_hat``, so the residuals over those means are optimised directly;
* context models (:func:`refine_context`, ``image-ctx-*``): each channel slice's means and tables
  come from the context networks over the symbols of earlier slices, so the rate term runs those
  networks (a float twin of the exact integer ones) over the relaxed symbols, and each slice is
  rounded around its own context mean. Optimising against the hyperprior's means instead (what
  every model did before) *raised* the RD cost of ``image-ctx-v2`` by 6-7 % of the rate: the
  context codec re-rounds the chosen latents around different means.

The stream format, the decoder and its speed are untouched, and the result is deterministic for a
given image, quality and effort (seeded noise, one thread's float order aside).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ncodec.entropy.tables import gaussian_scale_table

__all__ = ["Schedule", "EFFORTS", "anneal", "refine_context", "refine_residuals", "rd_lambda"]


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
    1: Schedule(iters=8),
    2: Schedule(iters=48),
    3: Schedule(iters=480, lr=0.01),
}
"""``--effort`` levels. Level 0 is a single pass; the iteration counts aim at about 10 s, 1 min and
10 min per 768x512 image on the shared 2-core machine (about 1.2 CPU-s per iteration with
``image-ctx-v2``, one thread). Picked on two 768x512 composites of held-in/training images at
quality 35 (never Kodak), as the RD cost saved in % of the rate: 6 its 5.3/3.8 %, 12 its
8.4/6.5 %, 32 its 11.2/8.9 %, 64 its 12.2/9.7 % at lr 0.02; lr 0.05 overshoots (6 its: no gain,
48 its: 9.5 % against 12.0 %), lr 0.01 does better over 64 its (12.9 %), hence level 3's. Kodak,
BD-rate PSNR-RGB against effort 0 (``models/weights/image-ctx-v2.md``): level 1 -5.3 % (all 24
images, about 15 s an encode on the loaded machine), level 2 -9.6 % (kodim01-06, about 76 s),
level 3 -12.7 % (kodim01 at quality 10 and 60 only, about 625 s)."""


def rd_lambda(lambdas: list[float] | tuple[float, ...], level: float) -> float:
    """The rate-distortion trade-off at a continuous rate level: log-linear between the trained
    levels' lambdas, extrapolated below level 0 as the gains are."""
    ll = np.log(np.asarray(lambdas, dtype=np.float64))
    lo = min(max(math.floor(level), 0), len(ll) - 2)
    t = level - lo
    return float(np.exp((1 - t) * ll[lo] + t * ll[lo + 1]))


def _sga(u: Tensor, tau: float, gen: torch.Generator) -> Tensor:
    """A random mix of ``floor(u)`` and ``ceil(u)`` (stochastic Gumbel annealing): the odds of
    rounding down vs up follow SGA's atanh relaxation and sharpen as ``tau`` falls."""
    fl = torch.floor(u)
    d = (u - fl).clamp(1e-4, 1 - 1e-4)
    logits = torch.stack([-torch.atanh(d) / tau, -torch.atanh(1 - d) / tau], dim=0)
    g = -torch.log(-torch.log(torch.rand(logits.shape, generator=gen).clamp(1e-9, 1 - 1e-9)))
    return fl + F.softmax(logits + g, dim=0)[1]


def anneal(
    v: Tensor,
    schedule: Schedule,
    seed: int,
    loss_at: Callable[[Tensor, float, torch.Generator], Tensor],
    score: Callable[[Tensor], tuple[float, Any]],
    progress: Callable[[int], None] | None = None,
) -> Any:
    """The SGA optimisation shared by every refinement: Adam on the leaf ``v`` against
    ``loss_at(v, tau, gen)`` (the relaxed objective) as the temperature anneals geometrically from
    ``tau0`` to ``tau1``; every 8 steps and at the end ``score(v)`` gives the true objective of what
    would be coded and that candidate. Returns the best candidate, the starting point's included."""
    best_cost, best = score(v.detach())
    opt = torch.optim.Adam([v], lr=schedule.lr)
    gen = torch.Generator().manual_seed(seed)
    ratio = (schedule.tau1 / schedule.tau0) ** (1.0 / max(schedule.iters - 1, 1))
    for it in range(schedule.iters):
        loss = loss_at(v, schedule.tau0 * ratio**it, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward(inputs=[v])  # the latents only: the weights stay frozen and gradient-free
        opt.step()
        if progress is not None:
            progress(it)
        if it % 8 == 7 or it == schedule.iters - 1:
            c, cand = score(v.detach())
            if c < best_cost:
                best_cost, best = c, cand
    return best


def _bit_map(r: Tensor, sigma: Tensor) -> Tensor:
    """Bits of each integer-or-relaxed residual ``r`` under a zero-mean Gaussian of scale ``sigma``
    (probability of the unit interval around ``r``)."""
    # by symmetry, on the lower tail, where ndtr keeps its precision far from the mean
    z = -r.abs() / sigma
    half = 0.5 / sigma
    p = torch.special.ndtr(z + half) - torch.special.ndtr(z - half)
    return -torch.log2(p.clamp_min(1e-12))


def _bits(r: Tensor, sigma: Tensor) -> Tensor:
    """:func:`_bit_map`, summed."""
    return _bit_map(r, sigma).sum()


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

    def loss_at(u: Tensor, tau: float, gen: torch.Generator) -> Tensor:
        return _loss(model, _sga(u, tau, gen), mu32, sigma, inv_gain, x, lam, pixels, dev)

    def score(u: Tensor) -> tuple[float, Tensor]:
        cand = torch.round(u)
        return _cost(model, cand, mu32, sigma, inv_gain, x, lam, pixels, dev), cand

    return anneal(u, schedule, seed, loss_at, score, progress).double() + mu


def refine_context(
    model,
    codec,
    x: Tensor,
    ys: Tensor,
    prior: tuple[Tensor, Tensor],
    quality: float,
    schedule: Schedule,
    seed: int = 0,
    progress=None,
) -> Tensor:
    """Optimised latents of one segment for a context model (``ImageContextModel``).

    The rate is the one its :class:`~ncodec.models.latent_codecs.checkerboard.ContextCodec`
    pays: each pass's means and tables come from the context networks over the (relaxed) symbols of
    earlier passes, through the networks' float twins (:meth:`IntPassNet.relaxed`), so a change of
    an early slice is charged for what it does to the later slices' means and tables too. The
    optimisation variable is the latents themselves; each pass rounds them (relaxed by SGA) around
    its own mean. Candidates are scored as coded: through the exact codec's quantisation
    (:meth:`ContextCodec.quantize_latents`), its means and tables.

    Args:
        model: an ``ImageContextModel`` (frozen). codec: its latent codec.
        x: the segment's pixels ``[1, 3, h, w]`` in [0, 1], unpadded.
        ys: the scaled latents of the segment at ``quality``.
        prior: the codec's ``(mu_h, t_h)`` of the segment (fixed point means, table indexes), as
            :meth:`ContextCodec.compress_latents` gets it.
        quality, schedule, seed, progress: as :func:`refine_residuals`.

    Returns:
        float64 ``ys_hat`` of the best candidate (exact fixed point), which
        ``codec.compress_latents(ys_hat, prior)`` codes as the very symbols chosen here.
    """
    from ncodec.models.image_context import FX, T_SCALE, has_net, pass_mask, passes, slice_bounds

    cfg = model.context
    mu_h_fx, t_h = prior
    n_tables = len(model.y_tables)
    scales = torch.from_numpy(gaussian_scale_table(levels=n_tables)).to(torch.float32)
    log_s0, step = math.log(float(scales[0])), math.log(float(scales[1] / scales[0]))
    inv, sq = model.ctx_inv.to(torch.float32), model.ctx_scale.to(torch.float32)
    dev = next(model.g_s.parameters()).device
    with torch.no_grad():
        inv_gain = model._gain(model.log_inv_gain, quality).to(dev)
    lam = rd_lambda(model.config["lambdas"], model.level(quality))
    h_px, w_px = x.shape[-2:]
    pixels = h_px * w_px
    _, _, h, w = ys.shape
    mu_h = mu_h_fx.to(torch.float32) / FX
    hy_all = t_h.to(torch.float32) * (FX * T_SCALE)
    mask_a = pass_mask(dict(cfg, checkerboard=True), 0, h, w)
    bounds = slice_bounds(cfg)
    plan = [(g, p, pass_mask(cfg, p, h, w)) for g, p in passes(cfg)]

    def relaxed(v: Tensor, tau: float, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """``(ys_hat, bits)`` of latents ``v`` with SGA-relaxed symbols, pass by pass."""
        u_fx = torch.zeros_like(v)  # normalised residuals of the passes so far, units of 2**-8
        yh = torch.zeros_like(v)
        bits = v.new_zeros(())
        for g, p, mask in plan:
            c0, c1 = bounds[g]
            mu_g, t_g = mu_h[:, c0:c1], t_h[:, c0:c1]
            if has_net(cfg, g, p):
                sp = None
                if p == 1:
                    ua = u_fx[:, c0:c1] * mask_a
                    sp = torch.cat([ua, ua.abs()], 1)
                ch = torch.cat([u_fx[:, :c0], u_fx[:, :c0].abs()], 1) if c0 else None
                dm, dt = model.ctx_int[(g, p)].relaxed(sp, ch, hy_all[:, c0:c1])
                mu = mu_g + dm * sq[t_g] / (FX * FX)
                t_cont = (t_g + dt / FX).clamp(0, n_tables - 1)
                t_q = (t_g + torch.floor(dt.detach() / FX + 0.5).long()).clamp(0, n_tables - 1)
                # the table as coded; its gradient (towards the next or previous table) as trained
                s_c = torch.exp(log_s0 + step * t_cont)
                scale = scales[t_q] + (s_c - s_c.detach())
            else:
                mu, t_q, scale = mu_g, t_g, scales[t_g]
            r = _sga(v[:, c0:c1] - mu, tau, gen)
            bits = bits + (_bit_map(r, scale) * mask).sum()
            yh = torch.cat([yh[:, :c0], torch.where(mask, r + mu, yh[:, c0:c1]), yh[:, c1:]], 1)
            u_new = torch.where(mask, r * inv[t_q] / FX, u_fx[:, c0:c1])
            u_fx = torch.cat([u_fx[:, :c0], u_new, u_fx[:, c1:]], 1)
        return yh, bits

    def distortion(yh: Tensor, clamp: bool) -> Tensor:
        x_hat = model.g_s((yh.to(dev) * inv_gain).contiguous(memory_format=torch.channels_last))
        x_hat = x_hat[..., :h_px, :w_px].float()
        return F.mse_loss(x_hat.clamp(0, 1) if clamp else x_hat, x)

    @torch.no_grad()
    def cost(v: Tensor) -> tuple[float, Tensor]:
        """The true objective of the symbols the codec would write for ``v``, and its ``ys_hat``."""
        sym, tab, yh = codec.quantize_latents(v, prior)
        bits = _bit_map(sym.to(torch.float32), scales[tab]).sum()
        return float(bits / pixels + lam * 255**2 * distortion(yh.to(torch.float32), True)), yh

    def loss_at(v: Tensor, tau: float, gen: torch.Generator) -> Tensor:
        yh, bits = relaxed(v, tau, gen)
        return bits / pixels + lam * 255**2 * distortion(yh, False)

    v = ys.detach().cpu().to(torch.float32).clone().requires_grad_(True)
    return anneal(v, schedule, seed, loss_at, cost, progress)


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
