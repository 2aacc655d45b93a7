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
from ncodec.models.latent_codecs.base import Coded, UnitShape
from ncodec.models.latent_codecs.hyperprior import Y_LIMIT


class ContextCodec:
    """The ``1 + passes`` part codec of an ``ImageContextModel`` (see the module docstring)."""

    def __init__(self, model, threads: int | None = None):
        self.model = model
        self.threads = threads
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

    def compress(self, ys: Tensor, z_hat: Tensor, context: object | None = None) -> Coded:
        m = self.model
        z_hat = z_hat.cpu().to(torch.int64)
        mu_h, t_h = m.hyper_fx(z_hat)
        ys = ys.cpu().double()
        parts = [
            entropy.encode(
                z_hat.to(torch.int32).numpy().reshape(-1),
                m.z_indexes(tuple(z_hat.shape)),
                m.z_tables,
                threads=self.threads,
            )
        ]

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

        ys_hat_fx = self._run(mu_h, t_h, code)
        return Coded(parts, ys_hat_fx.double() / FX)

    def decompress(self, parts: list[bytes], shape: UnitShape, context: object | None = None) -> Tensor:
        m = self.model
        if len(parts) != self.parts:
            raise CorruptStreamError(f"context payload of {len(parts)} parts, expected {self.parts}")
        z = entropy.decode(parts[0], m.z_indexes(shape.z), m.z_tables, threads=self.threads)
        mu_h, t_h = m.hyper_fx(torch.from_numpy(z.astype(np.int64)).view(shape.z))
        if tuple(mu_h.shape) != tuple(shape.y):
            raise CorruptStreamError("latent shape does not match the hyper-latents")

        def code(k, mu_fx, t, mask, c0, c1):
            idx = t[..., mask].to(torch.int32).numpy().reshape(-1)
            s = entropy.decode(parts[1 + k], idx, m.y_tables, threads=self.threads)
            if s.size and int(np.abs(s).max()) > Y_LIMIT:  # the encoder never writes such values
                raise CorruptStreamError(f"decoded latent beyond the +-{Y_LIMIT} the encoder writes")
            out = torch.zeros(t.shape, dtype=torch.int64)
            out[..., mask] = torch.from_numpy(s.astype(np.int64)).view(*t.shape[:2], -1)
            return out

        return self._run(mu_h, t_h, code).double() / FX
