"""Context latent codec of :class:`~ncodec.models.image_context.ImageContextModel`: channel slices,
each coded in two checkerboard passes (anchors, then non-anchors), one payload part per pass::

    part 0:            z_hat under per-channel factorized tables
    z_hat --h_s (exact integers)--> mu_h, t_h
    for each slice g, for each pass p (anchors, non-anchors; or all positions without checkerboard):
        dm, dt = IntPassNet[g, p](u of the decoded anchors of g, u of slices < g, t_h)   (exact)
        mu = mu_h + dm * scale[t_h],  table = clamp(t_h + round(dt))
        part 1 + pass: sym = clamp(round(ys - mu)) at the pass's positions, Gaussian tables[table]
        u = sym / scale[table]   (fixed point, through the model's stored integer tables)

Everything that selects a table or a mean comes from exactly decoded integers through exact integer
networks; ``ys_hat = sym + mu`` is held in fixed point (``ys_hat * 256`` is an integer), so encoder
and decoder agree bit for bit on any machine and thread count.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ncodec import entropy
from ncodec.bitstream.errors import CorruptStreamError
from ncodec.models.image_context import FX, T_SCALE, has_net, pass_mask, passes, slice_bounds
from ncodec.models.latent_codecs.base import Coded, StagedCodec
from ncodec.models.latent_codecs.hyperprior import Y_LIMIT, HyperpriorCodec


class ContextCodec(StagedCodec):
    """The ``1 + passes`` part codec of an ``ImageContextModel`` (see the module docstring). Its
    prior is the hyperprior's ``(mu_h, t_h)``; the context networks refine it pass by pass."""

    def __init__(self, model, threads: int | None = None):
        self.model = model
        self.threads = threads
        self._hyper = HyperpriorCodec(model, threads)  # part 0 is the hyperprior's
        self.cfg = model.context
        self.passes = passes(self.cfg)
        self.parts = 1 + len(self.passes)

    def _params(self, g: int, p: int, mu_h: Tensor, t_h: Tensor, u_fx: Tensor, mask_a: Tensor):
        """Exact mean (fixed point) and table index of slice ``g``, pass ``p`` (all positions)."""
        m = self.model
        c0, c1 = slice_bounds(self.cfg)[g]
        mu_g, t_g = mu_h[:, c0:c1], t_h[:, c0:c1]
        if not has_net(self.cfg, g, p):
            return mu_g, t_g
        sp = None
        if p == 1:
            ua = u_fx[:, c0:c1] * mask_a
            sp = torch.cat([ua, ua.abs()], 1)
        ch = torch.cat([u_fx[:, :c0], u_fx[:, :c0].abs()], 1) if c0 else None
        hy = t_g * round(FX * T_SCALE)
        dm, dt = m.ctx_int[(g, p)](sp, ch, hy)
        last = len(m.y_tables) - 1
        mu = mu_g + ((dm * m.ctx_scale[t_g] + FX // 2) >> 8)
        return mu, (t_g + ((dt + FX // 2) >> 8)).clamp(0, last)

    def _run(self, mu_h: Tensor, t_h: Tensor, code) -> Tensor:
        """The pass loop shared by both sides; ``code(k, mu_fx, t, mask, c0, c1)`` returns the pass's
        residuals (int64, the slice's shape, meaningful at ``mask``). Returns ``ys_hat * 256``."""
        b, m, h, w = mu_h.shape
        ys_hat_fx = torch.zeros_like(mu_h)
        u_fx = torch.zeros_like(mu_h)  # normalised residuals, units of 2**-8
        mask_a = pass_mask(dict(self.cfg, checkerboard=True), 0, h, w).to(torch.int64)
        bounds = slice_bounds(self.cfg)
        inv = self.model.ctx_inv
        for k, (g, p) in enumerate(self.passes):
            c0, c1 = bounds[g]
            mu_fx, t = self._params(g, p, mu_h, t_h, u_fx, mask_a)
            mask = pass_mask(self.cfg, p, h, w)
            s = code(k, mu_fx, t, mask, c0, c1)
            ys_hat_fx[:, c0:c1] = torch.where(mask, s * FX + mu_fx, ys_hat_fx[:, c0:c1])
            u_fx[:, c0:c1] = torch.where(mask, (s * inv[t] + FX // 2) >> 8, u_fx[:, c0:c1])
        return ys_hat_fx

    def code_hyper(self, z_hat: Tensor) -> bytes:
        return self._hyper.code_hyper(z_hat)

    def decode_hyper(self, part: bytes, z_shape: tuple[int, ...]) -> Tensor:
        return self._hyper.decode_hyper(part, z_shape)

    def prior(self, z_hat: Tensor, y_shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        """``(mu_h, t_h)``: the hyperprior's means (int64, units of ``2**-8``) and table indexes."""
        mu_h, t_h = self.model.hyper_fx(z_hat.cpu().to(torch.int64))
        if tuple(mu_h.shape) != tuple(y_shape):
            raise CorruptStreamError("latent shape does not match the hyper-latents")
        return mu_h, t_h

    def compress_latents(self, ys: Tensor, prior: tuple[Tensor, ...]) -> Coded:
        m = self.model
        ys = ys.cpu().double()
        parts: list[bytes] = []

        def code(k, mu_fx, t, mask, c0, c1):
            s = torch.round(ys[:, c0:c1] - mu_fx.double() / FX).clamp(-Y_LIMIT, Y_LIMIT).to(torch.int64)
            parts.append(
                entropy.encode(
                    s[..., mask].to(torch.int32).numpy().reshape(-1),
                    t[..., mask].to(torch.int32).numpy().reshape(-1),
                    m.y_tables,
                    threads=self.threads,
                )
            )
            return s

        ys_hat_fx = self._run(*prior, code)
        return Coded(parts, ys_hat_fx.double() / FX)

    def quantize_latents(self, ys: Tensor, prior: tuple[Tensor, ...]) -> tuple[Tensor, Tensor, Tensor]:
        """What :meth:`compress_latents` would code, without coding it: the residual symbols and
        table indexes (int64, the latents' shape) and ``ys_hat`` (float64). ``ys_hat`` is exact
        (fixed point), so ``compress_latents(ys_hat, prior)`` writes these same symbols: the
        encoder's latent optimisation hands its choice to the coder that way."""
        ys = ys.cpu().double()
        sym = torch.zeros(ys.shape, dtype=torch.int64)
        tab = torch.zeros(ys.shape, dtype=torch.int64)

        def code(k, mu_fx, t, mask, c0, c1):
            s = torch.round(ys[:, c0:c1] - mu_fx.double() / FX).clamp(-Y_LIMIT, Y_LIMIT).to(torch.int64)
            sym[:, c0:c1] = torch.where(mask, s, sym[:, c0:c1])
            tab[:, c0:c1] = torch.where(mask, t, tab[:, c0:c1])
            return s

        ys_hat_fx = self._run(*prior, code)
        return sym, tab, ys_hat_fx.double() / FX

    def decompress_latents(self, parts: list[bytes], prior: tuple[Tensor, ...]) -> Tensor:
        m = self.model
        if len(parts) != len(self.passes):
            raise CorruptStreamError(f"context payload of {len(parts) + 1} parts, expected {self.parts}")

        def code(k, mu_fx, t, mask, c0, c1):
            idx = t[..., mask].to(torch.int32).numpy().reshape(-1)
            s = entropy.decode(parts[k], idx, m.y_tables, threads=self.threads)
            if s.size and int(np.abs(s).max()) > Y_LIMIT:  # the encoder never writes such values
                raise CorruptStreamError(f"decoded latent beyond the +-{Y_LIMIT} the encoder writes")
            out = torch.zeros(t.shape, dtype=torch.int64)
            out[..., mask] = torch.from_numpy(s.astype(np.int64)).view(*t.shape[:2], -1)
            return out

        return self._run(*prior, code).double() / FX
