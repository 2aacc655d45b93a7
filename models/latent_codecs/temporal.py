"""Temporal latent codec for video P-frames (issue 17): the hyperprior codec's two parts, with the
latents' means and table indexes (and the hyper-latents') predicted from the previous decoded
frame(s) as well::

    z_hat --factorized tables, or Gaussian around zpred--> part 0 = mode byte + rANS payload
    z_hat --h_s (exact integers)--> mu0, sigma0, idx0          (the intra prediction)
    (mu0, sigma0, idx0, previous ys_hat) --temporal network (exact integers)--> mu, idx
    sym = clamp(round(ys - mu)) --Gaussian tables[idx]--> part 1 = mode byte + rANS payload
    ys_hat = sym + mu                                          (a multiple of 2**-8)

Part 0 starts with one byte, the hyper-latents' prediction mode: ``MODE_INTRA`` (0), factorized
tables as format 1, or ``MODE_TEMPORAL`` (1): ``z - zpred`` under the Gaussian table of its
channel and quality bin, where ``zpred`` is the exact integer twin of the image model's ``h_a``
applied to the previous frame's decoded latents (``VideoTemporalModel.predict_z``).
Part 1 starts with one byte, the frame's prediction mode: ``MODE_TEMPORAL`` (1) as above, or
``MODE_INTRA`` (0), where ``(mu, idx) = (mu0, idx0)`` as for an I-frame. With ``mode="auto"`` (the
default) the encoder takes whichever of the two codes the frame's latents in fewer bits (ideal
code lengths, computed before coding), so a P-frame never costs more than intra coding plus a byte
(a scene cut, a frame the model predicts badly).

``context`` is the :class:`~ncodec.models.video_model.TemporalContext` (this frame's quality, the
previous decoded frame's ``ys_hat`` and quality, optionally the one before), a
:class:`~ncodec.models.video_model.FrameRef`, a bare ``ys_hat`` tensor of the previous frame
(one frame back, same quality, taken as quality 0: pass a ``TemporalContext`` to use the
hyper-latent tables of the frame's quality), or ``None`` (intra mode only).

``skip`` (an encoder-only choice, the decoder does not know it): a residual whose magnitude is
below ``0.5 + skip`` is coded as 0, so the latent keeps its predicted value (where the temporal
model trusts the previous frame, the previous value). It saves rate at some distortion; 0 is the
plain nearest rounding.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ncodec import entropy
from ncodec.bitstream.errors import CorruptStreamError
from ncodec.models.int_hyper import Z_LIMIT
from ncodec.models.latent_codecs.base import Coded, UnitShape
from ncodec.models.latent_codecs.hyperprior import Y_LIMIT
from ncodec.models.video_model import FX, FrameRef, TemporalContext, VideoTemporalModel, hyper_fx

MODE_INTRA = 0
MODE_TEMPORAL = 1
"""First byte of part 1: the frame's latents are predicted by the hyperprior alone (as an I-frame's)
or by the temporal model."""


def as_context(context: object | None) -> TemporalContext | None:
    """Normalises what a caller passes as ``context`` (see the module docstring)."""
    if context is None or isinstance(context, TemporalContext):
        return context
    if isinstance(context, Tensor):
        return TemporalContext(0.0, FrameRef(context, 0.0))
    if isinstance(context, FrameRef):
        return TemporalContext(context.quality, context)
    raise TypeError(f"context must be a TemporalContext, a FrameRef, a tensor or None, not {type(context)}")


class TemporalCodec:
    """Two-part P-frame codec of a :class:`~ncodec.models.video_model.VideoTemporalModel` and the
    ``ImageModel`` it was trained against (checked by digest). ``threads``: the rANS coder's;
    ``skip``: the encoder's deadzone (module docstring); ``mode``: ``"auto"`` (per frame, the
    cheaper prediction), ``"temporal"`` or ``"intra"`` (always that one; for measuring)."""

    parts = 2

    def __init__(
        self,
        model: VideoTemporalModel,
        image_model,
        threads: int | None = None,
        skip: float = 0.0,
        mode: str = "auto",
    ):
        model.check_image_model(image_model)
        if mode not in ("auto", "temporal", "intra"):
            raise ValueError(f"mode must be 'auto', 'temporal' or 'intra', not {mode!r}")
        self.model = model
        self.image_model = image_model
        self.threads = threads
        self.skip = float(skip)
        self.mode = mode

    def make_context(self, quality: float, refs: list[tuple[Tensor, float]]) -> TemporalContext:
        """The ``context`` of a frame at ``quality`` from the decoded ``(ys_hat, quality)`` of the
        previous frames, newest first (at most two are used)."""
        prev2 = FrameRef(*refs[1]) if len(refs) > 1 else None
        return TemporalContext(quality, FrameRef(*refs[0]), prev2)

    def _hyper(self, z_hat: Tensor, y_shape: tuple[int, ...]) -> tuple[Tensor, Tensor, Tensor]:
        mu0, s0, idx0 = hyper_fx(self.image_model, z_hat)
        if tuple(mu0.shape) != tuple(y_shape):
            raise ValueError(
                f"hyper-latents {tuple(z_hat.shape)} do not give latents of shape {tuple(y_shape)}"
            )
        return mu0, s0, idx0

    def _symbols(self, ys: Tensor, mu_fx: Tensor) -> Tensor:
        r = ys - mu_fx.double() / FX
        sym = torch.round(r)
        if self.skip > 0:
            sym = torch.where(r.abs() < 0.5 + self.skip, torch.zeros_like(sym), sym)
        return sym.clamp(-Y_LIMIT, Y_LIMIT).to(torch.int64)

    def _code_z(self, z_hat: Tensor, ctx: TemporalContext | None) -> bytes:
        """Part 0: the z-mode byte, then the hyper-latents, factorized (as format 1) or as the
        residual from their temporal prediction, whichever ``mode`` asks for (auto: the cheaper)."""
        im, model = self.image_model, self.model
        z_sym, z_idx, tables = z_hat, torch.from_numpy(im.z_indexes(tuple(z_hat.shape))), im.z_tables
        mode = MODE_INTRA
        if ctx is not None and model.predicts_z and self.mode != "intra":
            zp, idx_t = model.predict_z(ctx, tuple(z_hat.shape))
            sym_t = z_hat - zp
            keep = self.mode == "temporal"
            if not keep:
                bits_t = im.y_tables.ideal_bits(sym_t.numpy(), idx_t.numpy())
                keep = bits_t <= im.z_tables.ideal_bits(z_hat.numpy(), z_idx.numpy())
            if keep:
                z_sym, z_idx, tables, mode = sym_t, idx_t, im.y_tables, MODE_TEMPORAL
        data = entropy.encode(
            z_sym.to(torch.int32).numpy().reshape(-1),
            z_idx.to(torch.int32).numpy().reshape(-1),
            tables,
            threads=self.threads,
        )
        return bytes([mode]) + data

    def _decode_z(self, part: bytes, z_shape: tuple[int, ...], ctx: TemporalContext | None) -> Tensor:
        im = self.image_model
        if not part or part[0] not in (MODE_INTRA, MODE_TEMPORAL):
            raise CorruptStreamError("a P-frame's hyper-latent part lacks a valid prediction mode")
        if part[0] == MODE_INTRA:
            z = entropy.decode(part[1:], im.z_indexes(z_shape), im.z_tables, threads=self.threads)
            return torch.from_numpy(z.astype(np.int64)).view(z_shape)
        if ctx is None or not self.model.predicts_z:
            raise CorruptStreamError("temporally predicted hyper-latents without a reference frame")
        try:
            zp, idx = self.model.predict_z(ctx, z_shape)
        except ValueError as e:
            raise CorruptStreamError(str(e)) from None
        sym = entropy.decode(
            part[1:], idx.to(torch.int32).numpy().reshape(-1), im.y_tables, threads=self.threads
        )
        z = torch.from_numpy(sym.astype(np.int64)).view(z_shape) + zp
        if z.numel() and int(z.abs().max()) > Z_LIMIT:  # the encoder never writes such values
            raise CorruptStreamError(f"decoded hyper-latent beyond the +-{Z_LIMIT} the encoder writes")
        return z

    def compress(self, ys: Tensor, z_hat: Tensor, context: object | None = None) -> Coded:
        im = self.image_model
        z_hat = z_hat.cpu().to(torch.int64)
        ys = ys.cpu().double()
        ctx = as_context(context)
        mu0, s0, idx0 = self._hyper(z_hat, tuple(ys.shape))
        mode, mu_fx, idx = MODE_INTRA, mu0, idx0
        sym = self._symbols(ys, mu0)
        if ctx is not None and self.mode != "intra":
            mu_t, idx_t = self.model.predict(mu0, s0, idx0, ctx, len(im.y_tables))
            sym_t = self._symbols(ys, mu_t)
            keep = self.mode == "temporal"
            if not keep:  # the cheaper prediction for this frame (ideal code lengths)
                bits_t = im.y_tables.ideal_bits(sym_t.numpy(), idx_t.numpy())
                keep = bits_t <= im.y_tables.ideal_bits(sym.numpy(), idx0.numpy())
            if keep:
                mode, mu_fx, idx, sym = MODE_TEMPORAL, mu_t, idx_t, sym_t
        z_part = self._code_z(z_hat, ctx)
        y_data = entropy.encode(
            sym.to(torch.int32).numpy().reshape(-1),
            idx.to(torch.int32).numpy().reshape(-1),
            im.y_tables,
            threads=self.threads,
        )
        return Coded([z_part, bytes([mode]) + y_data], (sym * FX + mu_fx).double() / FX)

    def decompress(self, parts: list[bytes], shape: UnitShape, context: object | None = None) -> Tensor:
        im = self.image_model
        if len(parts) != self.parts:
            raise CorruptStreamError(f"a P-frame payload has {self.parts} parts, not {len(parts)}")
        if not parts[1] or parts[1][0] not in (MODE_INTRA, MODE_TEMPORAL):
            raise CorruptStreamError("a P-frame's latent part lacks a valid prediction mode")
        mode = parts[1][0]
        ctx = as_context(context)
        if ctx is not None:
            for ref in (ctx.prev, ctx.prev2):
                if ref is not None and tuple(ref.ys_hat.shape) != tuple(shape.y):
                    raise CorruptStreamError(
                        f"reference latents {tuple(ref.ys_hat.shape)} do not match {tuple(shape.y)}"
                    )
        z_hat = self._decode_z(parts[0], tuple(shape.z), ctx)
        try:
            mu_fx, s0, idx = self._hyper(z_hat, shape.y)
        except ValueError as e:
            raise CorruptStreamError(str(e)) from None
        if mode == MODE_TEMPORAL:
            if ctx is None:
                raise CorruptStreamError("a temporally predicted frame without a reference frame")
            mu_fx, idx = self.model.predict(mu_fx, s0, idx, ctx, len(im.y_tables))
        sym = entropy.decode(
            parts[1][1:], idx.to(torch.int32).numpy().reshape(-1), im.y_tables, threads=self.threads
        )
        if sym.size and int(np.abs(sym).max()) > Y_LIMIT:  # the encoder never writes such values
            raise CorruptStreamError(f"decoded latent beyond the +-{Y_LIMIT} the encoder writes")
        sym_t = torch.from_numpy(sym.astype(np.int64)).view(mu_fx.shape)
        return (sym_t * FX + mu_fx).double() / FX
