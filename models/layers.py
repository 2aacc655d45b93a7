"""Plain layers shared by training and inference (no CompressAI import, so the CLI starts fast)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def conv(cin: int, cout: int, k: int = 5, s: int = 2) -> nn.Conv2d:
    """``k x k`` convolution with stride ``s`` and 'same' padding: ``[B,cin,H,W] -> [B,cout,H/s,W/s]``."""
    return nn.Conv2d(cin, cout, k, stride=s, padding=k // 2)


def deconv(cin: int, cout: int, k: int = 5, s: int = 2) -> nn.ConvTranspose2d:
    """Transposed convolution, the inverse shape map of :func:`conv`: ``[B,cin,H,W] -> [B,cout,sH,sW]``."""
    return nn.ConvTranspose2d(cin, cout, k, stride=s, padding=k // 2, output_padding=s - 1)


class GDN(nn.Module):
    """Generalized divisive normalization with plain (already re-parametrized) parameters:
    ``y = x / sqrt(beta + conv1x1(x**2, gamma))``, or ``x * sqrt(...)`` if ``inverse``.

    The training model uses CompressAI's GDN (with its non-negative re-parametrization); export
    stores the effective ``beta`` ``[C]`` and ``gamma`` ``[C, C]`` for this layer.
    """

    def __init__(self, channels: int, inverse: bool = False):
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(0.1 * torch.eye(channels))

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[1]
        norm = F.conv2d(x * x, self.gamma.view(c, c, 1, 1), self.beta)
        return x * (torch.sqrt(norm) if self.inverse else torch.rsqrt(norm))


def analysis(n: int, m: int, gdn=GDN) -> nn.Sequential:
    """``g_a``: image ``[B,3,H,W]`` -> latents ``[B,M,H/16,W/16]``."""
    return nn.Sequential(conv(3, n), gdn(n), conv(n, n), gdn(n), conv(n, n), gdn(n), conv(n, m))


def synthesis(n: int, m: int, gdn=GDN) -> nn.Sequential:
    """``g_s``: latents ``[B,M,h,w]`` -> image ``[B,3,16h,16w]``."""
    return nn.Sequential(
        deconv(m, n),
        gdn(n, inverse=True),
        deconv(n, n),
        gdn(n, inverse=True),
        deconv(n, n),
        gdn(n, inverse=True),
        deconv(n, 3),
    )


def hyper_analysis(n: int, m: int) -> nn.Sequential:
    """``h_a``: scaled latents ``[B,M,h,w]`` -> hyper-latents ``[B,N,h/4,w/4]``."""
    return nn.Sequential(
        conv(m, n, 3, 1), nn.LeakyReLU(inplace=True), conv(n, n), nn.LeakyReLU(inplace=True), conv(n, n)
    )


def hyper_synthesis(n: int, m: int) -> nn.Sequential:
    """``h_s``: z_hat ``[B,N,h,w]`` -> ``[B,2M,4h,4w]`` (means then scales). ReLU only, so that it
    has an exact integer twin (:mod:`ncodec.models.int_hyper`)."""
    return nn.Sequential(
        deconv(n, m), nn.ReLU(), deconv(m, m * 3 // 2), nn.ReLU(), conv(m * 3 // 2, m * 2, 3, 1)
    )
