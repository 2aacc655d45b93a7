"""Context latent codec of :class:`~ncodec.models.audio_context.AudioContextModel`: the hyperprior's
symbols, coded in passes under tables the context networks pick, one payload part per pass::

    part 0:        z_hat under per-channel factorized tables              (audio-hp-v1's)
    z_hat --h_s (exact integers)--> mu_h, t_h;  q = clamp(round(ys - mu_h))   (audio-hp-v1's symbols)
    for each pass p (colour map over channel x frame):
        table = clamp(t_h + IntPassNet[p](u of the latents decoded so far, t_h))   (exact integers)
        part 1 + p: q at the pass's positions, Gaussian tables[table]
        u = (q * INV[t_h] + 128) >> 8         (normalised symbols, fixed point)
    ys_hat = audio-hp-v1's dequantisation of q

The decoded ``q`` and ``ys_hat`` are exactly audio-hp-v1's, so :class:`~ncodec.models.audio_pd.
AudioPDModel`'s synthesis applies unchanged; the decoder gets ``[ys_hat, t_h, mu_h]`` as from
:class:`~ncodec.models.audio_pd.SideInfoCodec`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ncodec import entropy
from ncodec.bitstream.errors import CorruptStreamError
from ncodec.models.audio_context import FX, color_map, n_passes, pass_tables
from ncodec.models.audio_pd import stack_side
from ncodec.models.latent_codecs.base import Coded, UnitShape
from ncodec.models.latent_codecs.hyperprior import Y_LIMIT, HyperpriorCodec


class AudioContextCodec:
    """The ``1 + passes`` part codec of an ``AudioContextModel`` (see the module docstring)."""

    def __init__(self, model, threads: int | None = None):
        self.model = model
        self.threads = threads
        self._hyper = HyperpriorCodec(model, threads)  # part 0 and the prior are the hyperprior's
        self.cfg = model.context
        self.parts = 1 + n_passes(self.cfg)

    def _run(self, mu: Tensor, t_h: Tensor, code) -> Tensor:
        """The pass loop shared by both sides; ``code(p, table, mask)`` returns the symbols
        ``q`` (int64, ``t_h``'s shape, meaningful at ``mask``). Returns ``[ys_hat, t_h, mu]``."""
        b, m, t = t_h.shape
        colors = color_map(self.cfg, m, t)
        q = torch.zeros_like(t_h)
        u_fx = torch.zeros_like(t_h)
        inv = self.model.ctx_inv[t_h]
        for p in range(self.parts - 1):
            mask = colors == p
            table = pass_tables(self.model, p, u_fx, t_h)
            q = torch.where(mask, code(p, table, mask), q)
            u_fx = torch.where(mask, (q * inv + FX // 2) >> 8, u_fx)
        return stack_side(self.model.dequantize(q, mu), t_h, mu)

    def compress(self, ys: Tensor, z_hat: Tensor, context: object | None = None) -> Coded:
        z_hat = z_hat.cpu().to(torch.int64)
        mu, t_h = self._hyper.prior(z_hat, tuple(ys.shape))
        sym = torch.round(ys.cpu().double() - mu).clamp(-Y_LIMIT, Y_LIMIT).to(torch.int64)
        parts = [self._hyper.code_hyper(z_hat)]

        def code(p: int, table: Tensor, mask: Tensor) -> Tensor:
            parts.append(
                entropy.encode(
                    sym[..., mask].to(torch.int32).numpy().reshape(-1),
                    table[..., mask].to(torch.int32).numpy().reshape(-1),
                    self.model.y_tables,
                    threads=self.threads,
                )
            )
            return sym

        side = self._run(mu, t_h, code)
        return Coded(parts, side)

    def decompress(self, parts: list[bytes], shape: UnitShape, context: object | None = None) -> Tensor:
        """Payload parts -> ``[ys_hat, t_h, mu]`` ``[B, 3M, t]`` (float64, exact).

        Raises:
            CorruptStreamError: wrong part count, geometry or a damaged payload.
        """
        if len(parts) != self.parts:
            raise CorruptStreamError(f"payload of {len(parts)} parts, expected {self.parts}")
        z = self._hyper.decode_hyper(parts[0], shape.z)
        try:
            mu, t_h = self._hyper.prior(z, shape.y)
        except RuntimeError as e:  # geometry disagrees with the hyper-latents
            raise CorruptStreamError(str(e)) from None
        if tuple(mu.shape) != tuple(shape.y):
            raise CorruptStreamError("latent shape does not match the hyper-latents")

        def code(p: int, table: Tensor, mask: Tensor) -> Tensor:
            idx = table[..., mask].to(torch.int32).numpy().reshape(-1)
            s = entropy.decode(parts[1 + p], idx, self.model.y_tables, threads=self.threads)
            out = torch.zeros(table.shape, dtype=torch.int64)
            if s.size and int(np.abs(s).max()) > Y_LIMIT:  # the encoder never writes such values
                raise CorruptStreamError(f"decoded latent beyond the +-{Y_LIMIT} the encoder writes")
            out[..., mask] = torch.from_numpy(s.astype(np.int64)).view(*table.shape[:1], -1)
            return out

        return self._run(mu, t_h, code)
