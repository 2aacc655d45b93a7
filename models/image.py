"""The learned image transform codec: a variable-rate mean-scale hyperprior (Minnen et al. 2018).

Training side (float, differentiable)::

    x [B,3,H,W] in [0,1] --g_a--> y [B,M,H/16,W/16] --* gain(q)--> ys --h_a--> z [B,N,H/64,W/64]
    z --round--> z_hat --h_s--> (mu, sigma) for ys
    ys_hat = round(ys - mu) + mu --* inv_gain(q)--> g_s --> x_hat

One weight file covers the whole rate range: per-channel gain vectors for ``L`` trained rate levels
(Cui et al. 2021) are interpolated geometrically for a continuous quality ``q in [0, L-1]``.
At inference the hyper-synthesis ``h_s`` runs in exact integer arithmetic (see
:mod:`ncodec.models.int_hyper`), so the tables the decoder picks never depend on the machine.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import GDN
from torch import Tensor, nn

from ncodec.models.layers import analysis, hyper_analysis, hyper_synthesis, synthesis

# CompressAI's MSE lambdas for qualities 1..8 (distortion term uses 255**2 * MSE on [0,1] images).
DEFAULT_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)


class ImageHyperprior(nn.Module):
    """Variable-rate mean-scale hyperprior.

    Args:
        n: channels of the transforms and of z.
        m: channels of y.
        lambdas: rate-distortion trade-offs of the ``L`` trained levels, increasing.
    """

    def __init__(self, n: int = 128, m: int = 192, lambdas: tuple[float, ...] = DEFAULT_LAMBDAS):
        super().__init__()
        self.n, self.m = n, m
        self.register_buffer("lambdas", torch.tensor(lambdas, dtype=torch.float64))
        levels = len(lambdas)
        self.g_a = analysis(n, m, GDN)
        self.g_s = synthesis(n, m, GDN)
        self.h_a = hyper_analysis(n, m)
        self.h_s = hyper_synthesis(n, m)
        # log-gains: level l multiplies y by exp(log_gain[l]); start spread so levels differ at once.
        init = torch.linspace(-1.0, 1.0, levels)[:, None].repeat(1, m)
        self.log_gain = nn.Parameter(init.clone())
        self.log_inv_gain = nn.Parameter(-init.clone())
        self.entropy_bottleneck = EntropyBottleneck(n)
        self.gaussian_conditional = GaussianConditional(None)

    @property
    def levels(self) -> int:
        return int(self.lambdas.numel())

    def gains(self, q: Tensor) -> tuple[Tensor, Tensor]:
        """Per-channel gain and inverse gain for qualities ``q`` (float ``[B]`` in ``[0, L-1]``).

        Returns two ``[B, M, 1, 1]`` tensors (geometric interpolation between trained levels).
        """
        q = q.clamp(0, self.levels - 1)
        lo = q.floor().long().clamp(max=self.levels - 2)
        t = (q - lo.to(q.dtype))[:, None]
        g = (1 - t) * self.log_gain[lo] + t * self.log_gain[lo + 1]
        ig = (1 - t) * self.log_inv_gain[lo] + t * self.log_inv_gain[lo + 1]
        return g.exp()[:, :, None, None], ig.exp()[:, :, None, None]

    def lmbda(self, q: Tensor) -> Tensor:
        """Rate-distortion trade-off at quality ``q`` (log-linear between levels), ``[B]``."""
        q = q.clamp(0, self.levels - 1).to(torch.float64)
        lo = q.floor().long().clamp(max=self.levels - 2)
        t = q - lo
        ll = self.lambdas.log()
        return ((1 - t) * ll[lo] + t * ll[lo + 1]).exp().float()

    def forward(self, x: Tensor, q: Tensor) -> dict[str, Tensor]:
        """Training pass on ``x`` [B,3,H,W] in [0,1] (H, W multiples of 64) at qualities ``q`` [B].

        Returns ``x_hat`` and the likelihoods of y and z (for the rate term, in nats per element).
        """
        gain, inv_gain = self.gains(q)
        ys = self.g_a(x) * gain
        z = self.h_a(ys)
        z_hat, z_lik = self.entropy_bottleneck(z)
        mu, sigma = self.h_s(z_hat).chunk(2, dim=1)
        _, y_lik = self.gaussian_conditional(ys, sigma, means=mu)
        # Distortion through the rounding the decoder will do (straight-through), rate with noise.
        ys_hat = ys + (torch.round(ys - mu) + mu - ys).detach()
        x_hat = self.g_s(ys_hat * inv_gain)
        return {"x_hat": x_hat, "y_likelihoods": y_lik, "z_likelihoods": z_lik}

    def aux_loss(self) -> Tensor:
        return self.entropy_bottleneck.loss()


def rd_loss(model: ImageHyperprior, out: dict[str, Tensor], x: Tensor, q: Tensor) -> dict[str, Tensor]:
    """Rate-distortion loss ``lambda(q) * 255^2 * MSE + bpp``, averaged over the batch."""
    b, _, h, w = x.shape
    pixels = h * w
    bits = [
        (-torch.log2(out[k].clamp_min(1e-9))).flatten(1).sum(1) for k in ("y_likelihoods", "z_likelihoods")
    ]
    bpp = (bits[0] + bits[1]) / pixels
    mse = F.mse_loss(out["x_hat"], x, reduction="none").flatten(1).mean(1)
    lam = model.lmbda(q)
    loss = (lam * 255**2 * mse + bpp).mean()
    psnr = -10 * torch.log10(mse.clamp_min(1e-10)).mean()
    return {"loss": loss, "bpp": bpp.mean(), "mse": mse.mean(), "psnr": psnr}
