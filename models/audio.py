"""The learned audio transform codec: a variable-rate mean-scale hyperprior over 1-D convolutions.

Everything runs at the model rate ``SAMPLE_RATE`` (16 kHz, mono; the codec resamples and splits
channels). Training side (float, differentiable)::

    x [B,1,T] --fb--> X [B,160,T/160]  (learned filterbank, initialised as an MDCT with a sine window)
      --g_a--> y [B,M,T/160] --* gain(q)--> ys --h_a--> z [B,N,ceil(T/640)]
    z --round--> z_hat --h_s--> (mu, sigma) for ys
    ys_hat = round(ys - mu) + mu --* inv_gain(q)--> g_s --> X_hat --fb^T--> x_hat [B,1,T]

One weight file covers the rate range ~6-64 kbit/s: per-channel gain vectors for ``L`` trained rate
levels are interpolated geometrically for a continuous level ``q in [0, L-1]``, as in
:class:`ncodec.models.image.ImageHyperprior`. Each level ``l`` is trained towards the bitrate
``RATES_KBPS[l]`` by a Lagrange multiplier adapted during training (dual ascent), so the level of a
nominal bitrate is known: see :func:`rate_to_level`.

``h_s`` uses ReLU only, so it has an exact integer twin (:mod:`ncodec.models.int_hyper`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

SAMPLE_RATE = 16000
HOP = 160  # filterbank hop (10 ms); window 2 * HOP
FRAME = 160  # samples per latent frame (g_a stride): chunks are padded to this multiple
HYPER = 4  # latent frames per hyper-latent frame
RATES_KBPS = (6.0, 9.0, 13.0, 19.0, 28.0, 42.0, 64.0)
"""Nominal bitrate (kbit/s, mono at the model rate) each trained level aims at."""


def rate_to_level(kbps: float, rates: tuple[float, ...] = RATES_KBPS) -> float:
    """Continuous level for a nominal rate: piecewise log-linear between the trained rates, extended
    linearly (in log rate) outside them, within levels ``[-2, L + 2]``: the transforms are nearly
    linear, so gains extrapolate sensibly past the top trained rate; below level 0 only a little
    (further down the hyperprior stops predicting well and the rate rises again)."""
    lr = np.log(np.asarray(rates, dtype=np.float64))
    x = math.log(max(float(kbps), 1e-3))
    i = int(np.clip(np.searchsorted(lr, x, side="right") - 1, 0, len(rates) - 2))
    q = i + (x - lr[i]) / (lr[i + 1] - lr[i])
    return float(min(max(q, -2.0), len(rates) + 2.0))


def mdct_basis(n: int) -> Tensor:
    """MDCT analysis basis ``[n, 1, 2n]`` with a sine window (orthonormal TDAC pair with its transpose)."""
    t = torch.arange(2 * n, dtype=torch.float64)
    k = torch.arange(n, dtype=torch.float64)
    win = torch.sin(math.pi * (t + 0.5) / (2 * n))
    basis = torch.cos(math.pi / n * (t[None, :] + 0.5 + n / 2) * (k[:, None] + 0.5))
    return (basis * win[None, :] * math.sqrt(2.0 / n)).float()[:, None, :]


def conv1(cin: int, cout: int, k: int = 3, s: int = 1) -> nn.Conv1d:
    """'same'-padded 1-D convolution: ``[B,cin,T] -> [B,cout,T/s]`` (``T`` a multiple of ``s``)."""
    return nn.Conv1d(cin, cout, k, stride=s, padding=(k - s + 1) // 2)


def deconv1(cin: int, cout: int, k: int = 4, s: int = 2) -> nn.ConvTranspose1d:
    """Transposed convolution, inverse shape map of :func:`conv1`: ``[B,cin,T] -> [B,cout,sT]``."""
    return nn.ConvTranspose1d(cin, cout, k, stride=s, padding=(k - s) // 2)


def analysis(c: int, m: int) -> nn.Sequential:
    """``g_a``: filterbank frames ``[B,HOP,T/HOP]`` -> latents ``[B,M,T/FRAME]``: a learned linear
    map per frame (initialised to the identity when ``m == HOP``), so the coder keeps the filterbank's
    perfect reconstruction at high rates (``c`` is the post-filter width, see :func:`postfilter`)."""
    layer = nn.Conv1d(HOP, m, 1)
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()
        layer.weight[: min(m, HOP), : min(m, HOP), 0] = torch.eye(min(m, HOP))
    return nn.Sequential(layer)


def synthesis(c: int, m: int) -> nn.Sequential:
    """``g_s``: latents ``[B,M,t]`` -> filterbank frames ``[B,HOP,t]`` (linear, identity-initialised)."""
    layer = nn.Conv1d(m, HOP, 1)
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()
        layer.weight[: min(m, HOP), : min(m, HOP), 0] = torch.eye(min(m, HOP))
    return nn.Sequential(layer)


def postfilter(c: int) -> nn.Sequential:
    """Residual decoder post-filter ``[B,HOP,t] -> [B,HOP,t]`` (two convolutions over 5 frames); its
    last layer starts at zero so the codec starts as the plain linear transform coder."""
    last = nn.Conv1d(c, HOP, 5, padding=2)
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    return nn.Sequential(nn.Conv1d(HOP, c, 5, padding=2), nn.LeakyReLU(0.1), last)


def hyper_analysis(n: int, m: int) -> nn.Sequential:
    """``h_a``: scaled latents ``[B,M,t]`` (``t`` a multiple of 4) -> hyper-latents ``[B,N,t/4]``."""
    return nn.Sequential(
        conv1(m, n, 3, 1),
        nn.LeakyReLU(inplace=True),
        conv1(n, n, 4, 2),
        nn.LeakyReLU(inplace=True),
        conv1(n, n, 4, 2),
    )


def hyper_synthesis(n: int, m: int) -> nn.Sequential:
    """``h_s``: z_hat ``[B,N,h]`` -> ``[B,2M,4h]`` (means then scales). ReLU only (integer twin)."""
    return nn.Sequential(
        deconv1(n, m, 4, 2), nn.ReLU(), deconv1(m, m, 4, 2), nn.ReLU(), conv1(m, 2 * m, 3, 1)
    )


class AudioTransforms(nn.Module):
    """The float parts shared by training and inference: filterbank, ``g_a``, ``g_s``, ``h_a`` and the
    per-level log-gains."""

    def __init__(self, c: int = 192, m: int = HOP, n: int = 32, levels: int = len(RATES_KBPS)):
        super().__init__()
        self.c, self.m, self.n = c, m, n
        basis = mdct_basis(HOP)
        self.fb = nn.Conv1d(1, HOP, 2 * HOP, stride=HOP, padding=HOP // 2, bias=False)
        self.ifb = nn.ConvTranspose1d(HOP, 1, 2 * HOP, stride=HOP, padding=HOP // 2, bias=False)
        with torch.no_grad():
            self.fb.weight.copy_(basis * 8.0)  # scaled so coefficients of speech are O(1)
            self.ifb.weight.copy_(basis / 8.0)
        self.g_a = analysis(c, m)
        self.g_s = synthesis(c, m)
        # decoder post-filter on the filterbank frames (residual, starts as the identity)
        self.post = postfilter(c) if c > 0 else None
        self.h_a = hyper_analysis(n, m)
        # Each doubling of the gains adds about one bit per latent (M * 50 latents per second):
        # spread the initial levels so their rates start near RATES_KBPS.
        r = torch.tensor(RATES_KBPS[:levels] if levels == len(RATES_KBPS) else torch.linspace(6, 64, levels))
        init = (math.log(2) * (r - r[0]) / (m * SAMPLE_RATE / FRAME / 1000) - 1.0)[:, None].repeat(1, m)
        self.log_gain = nn.Parameter(init.clone())
        self.log_inv_gain = nn.Parameter(-init.clone())

    @property
    def levels(self) -> int:
        return int(self.log_gain.shape[0])

    def gains(self, q: Tensor) -> tuple[Tensor, Tensor]:
        """Gain and inverse gain ``[B,M,1]`` for float levels ``q`` ``[B]`` (geometric interpolation)."""
        q = q.clamp(0, self.levels - 1)
        lo = q.floor().long().clamp(max=self.levels - 2)
        t = (q - lo.to(q.dtype))[:, None].to(self.log_gain.dtype)
        g = (1 - t) * self.log_gain[lo] + t * self.log_gain[lo + 1]
        ig = (1 - t) * self.log_inv_gain[lo] + t * self.log_inv_gain[lo + 1]
        return g.exp()[:, :, None], ig.exp()[:, :, None]

    def analyze(self, x: Tensor) -> Tensor:
        """``x`` ``[B,1,T]`` (T a multiple of FRAME) -> unscaled latents ``y`` ``[B,M,T/FRAME]``."""
        return self.g_a(self.fb(x))

    def synthesize(self, y_hat: Tensor) -> Tensor:
        """Unscaled dequantised latents ``[B,M,t]`` -> waveform ``[B,1,t*FRAME]``."""
        f = self.g_s(y_hat)
        if self.post is not None:
            f = f + self.post(f)
        return self.ifb(f)

    def hyper_in(self, ys: Tensor) -> Tensor:
        """``h_a`` on ``ys`` zero-padded to a multiple of HYPER frames."""
        pad = (-ys.shape[-1]) % HYPER
        return self.h_a(F.pad(ys, (0, pad)) if pad else ys)


class AudioHyperprior(AudioTransforms):
    """Training model: :class:`AudioTransforms` plus ``h_s`` and the entropy models."""

    def __init__(self, c: int = 192, m: int = HOP, n: int = 32, rates: tuple[float, ...] = RATES_KBPS):
        super().__init__(c, m, n, len(rates))
        from compressai.entropy_models import EntropyBottleneck, GaussianConditional

        self.register_buffer("rates", torch.tensor(rates, dtype=torch.float64))
        # log Lagrange multipliers (rate weight per kbit/s), adapted by dual ascent
        self.register_buffer("log_mu", torch.full((len(rates),), math.log(0.02), dtype=torch.float64))
        self.h_s = hyper_synthesis(n, m)
        self.entropy_bottleneck = EntropyBottleneck(n)
        self.gaussian_conditional = GaussianConditional(None)

    def forward(self, x: Tensor, q: Tensor) -> dict[str, Tensor]:
        """Training pass on ``x`` ``[B,1,T]`` (T a multiple of FRAME*HYPER) at levels ``q`` ``[B]``."""
        gain, inv_gain = self.gains(q)
        ys = self.analyze(x) * gain
        z = self.hyper_in(ys)
        z_hat, z_lik = self.entropy_bottleneck(z)
        mu, sigma = self.h_s(z_hat)[..., : ys.shape[-1]].chunk(2, dim=1)
        _, y_lik = self.gaussian_conditional(ys, sigma, means=mu)
        ys_hat = ys + (torch.round(ys - mu) + mu - ys).detach()
        x_hat = self.synthesize(ys_hat * inv_gain)
        return {"x_hat": x_hat, "y_likelihoods": y_lik, "z_likelihoods": z_lik}

    def mu(self, q: Tensor) -> Tensor:
        """Rate weight at level ``q`` (log-linear between levels), ``[B]``."""
        q = q.clamp(0, self.levels - 1).to(torch.float64)
        lo = q.floor().long().clamp(max=self.levels - 2)
        t = q - lo
        return ((1 - t) * self.log_mu[lo] + t * self.log_mu[lo + 1]).exp().float()

    def target_kbps(self, q: Tensor) -> Tensor:
        q = q.clamp(0, self.levels - 1).to(torch.float64)
        lo = q.floor().long().clamp(max=self.levels - 2)
        t = q - lo
        lr = self.rates.log()
        return ((1 - t) * lr[lo] + t * lr[lo + 1]).exp().float()

    def aux_loss(self) -> Tensor:
        return self.entropy_bottleneck.loss()


# ---- losses ----------------------------------------------------------------------------------

_WINDOWS: dict = {}


def _stft_mag(x: Tensor, n_fft: int, hop: int) -> Tensor:
    key = (n_fft, x.device)
    if key not in _WINDOWS:
        _WINDOWS[key] = torch.hann_window(n_fft, device=x.device)
    s = torch.stft(x, n_fft, hop, window=_WINDOWS[key], return_complex=True)
    return s.abs()


_MEL: dict = {}


def _mel_fb(n_fft: int, n_mels: int, device) -> Tensor:
    key = (n_fft, n_mels, device)
    if key not in _MEL:
        import torchaudio.functional as AF

        _MEL[key] = AF.melscale_fbanks(n_fft // 2 + 1, 0.0, SAMPLE_RATE / 2, n_mels, SAMPLE_RATE).to(device)
    return _MEL[key]


def spectral_loss(x_hat: Tensor, x: Tensor) -> dict[str, Tensor]:
    """Per-item distortion ``[B]``: multi-resolution log-STFT L1 + log-mel L1 (as the evaluation's
    mel distance: 1024-point window, hop 256, 80 bands) + a small time-domain L1."""
    a, b = x_hat[:, 0], x[:, 0]
    stft = 0.0
    for n_fft in (256, 512, 2048):
        ma, mb = _stft_mag(a, n_fft, n_fft // 4), _stft_mag(b, n_fft, n_fft // 4)
        log_l1 = (torch.log(ma + 1e-5) - torch.log(mb + 1e-5)).abs().mean(dim=(1, 2))
        sc = (ma - mb).norm(dim=(1, 2)) / mb.norm(dim=(1, 2)).clamp_min(1e-5)
        stft = stft + log_l1 + sc
    fb = _mel_fb(1024, 80, x.device)
    ma = _stft_mag(a, 1024, 256).transpose(1, 2) @ fb
    mb = _stft_mag(b, 1024, 256).transpose(1, 2) @ fb
    mel = (ma.clamp_min(1e-5).log() - mb.clamp_min(1e-5).log()).abs().mean(dim=(1, 2))
    l1 = (a - b).abs().mean(dim=1) / b.abs().mean(dim=1).clamp_min(1e-3)
    return {"dist": stft / 3 + mel + 0.5 * l1, "mel": mel}


def rd_loss(model: AudioHyperprior, out: dict[str, Tensor], x: Tensor, q: Tensor) -> dict[str, Tensor]:
    """``dist + mu(q) * kbps``, averaged over the batch; ``kbps`` from the likelihoods."""
    seconds = x.shape[-1] / SAMPLE_RATE
    bits = [
        (-torch.log2(out[k].clamp_min(1e-9))).flatten(1).sum(1) for k in ("y_likelihoods", "z_likelihoods")
    ]
    kbps = (bits[0] + bits[1]) / seconds / 1000
    d = spectral_loss(out["x_hat"], x)
    loss = (d["dist"] + model.mu(q) * kbps).mean()
    return {"loss": loss, "kbps": kbps, "dist": d["dist"].mean(), "mel": d["mel"].mean()}
