"""Mean-scale hyperprior latent codec (format 1): part 0 is the hyper-latents ``z_hat`` under
per-channel factorized tables, part 1 the latents' residuals ``round(ys - mu)`` under the Gaussian
table each scale selects, with ``mu`` and the table index from the model's exact integer
hyper-synthesis::

    z_hat --factorized tables--> part 0
    z_hat --h_s (exact integers)--> mu, table index
    sym = clamp(round(ys - mu)) --Gaussian tables[index]--> part 1
    ys_hat = model.dequantize(sym, mu)
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from ncodec import entropy
from ncodec.bitstream.errors import CorruptStreamError
from ncodec.entropy.tables import TableSet
from ncodec.models.latent_codecs.base import Coded, StagedCodec

Y_LIMIT = 1 << 20
"""The encoder clamps latent residuals to ``+-Y_LIMIT``; the decoder refuses larger values."""


class HyperpriorModel(Protocol):
    """What a model gives the hyperprior codec (image and audio models both do)."""

    z_tables: TableSet
    y_tables: TableSet

    def z_indexes(self, shape: tuple[int, ...]) -> np.ndarray:
        """Factorized-table index of every hyper-latent (int32, flattened)."""
        ...

    def hyper(self, z_hat: Tensor, y_shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        """Exact: ``z_hat`` -> (mean float64, table index int64), both of ``y_shape``."""
        ...

    def dequantize(self, sym: Tensor, mu: Tensor) -> Tensor:
        """Decoded residuals (int) and means -> ``ys_hat`` float64."""
        ...


class HyperpriorCodec(StagedCodec):
    """The z -> y two-part codec of a :class:`HyperpriorModel` (see the module docstring). Its
    prior is ``(mu, index)``: the means (float64) and Gaussian table indexes (int64)."""

    parts = 2

    def __init__(self, model: HyperpriorModel, threads: int | None = None):
        self.model = model
        self.threads = threads

    def symbols(self, ys: Tensor, z_hat: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """What the coder sees: residual symbols ``round(ys - mu)`` (int32, clamped), their table
        indexes (int32) and the means ``mu`` (float64), all of ``ys``'s shape."""
        mu, idx = self.prior(z_hat, tuple(ys.shape))
        return self._residuals(ys, mu), idx.to(torch.int32), mu

    @staticmethod
    def _residuals(ys: Tensor, mu: Tensor) -> Tensor:
        return torch.round(ys.cpu().double() - mu).clamp(-Y_LIMIT, Y_LIMIT).to(torch.int32)

    def code_hyper(self, z_hat: Tensor) -> bytes:
        m = self.model
        z_hat = z_hat.cpu()
        sym = z_hat.to(torch.int32).numpy().reshape(-1)
        return entropy.encode(sym, m.z_indexes(tuple(z_hat.shape)), m.z_tables, threads=self.threads)

    def decode_hyper(self, part: bytes, z_shape: tuple[int, ...]) -> Tensor:
        m = self.model
        z = entropy.decode(part, m.z_indexes(z_shape), m.z_tables, threads=self.threads)
        return torch.from_numpy(z.astype(np.int64)).view(z_shape)

    def prior(self, z_hat: Tensor, y_shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        try:
            return self.model.hyper(z_hat.cpu(), y_shape)
        except ValueError as e:  # the stream's geometry disagrees with its hyper-latents
            raise CorruptStreamError(str(e)) from None

    def compress_latents(self, ys: Tensor, prior: tuple[Tensor, ...]) -> Coded:
        m = self.model
        mu, idx = prior
        sym = self._residuals(ys, mu)
        y_data = entropy.encode(
            sym.numpy().reshape(-1), idx.to(torch.int32).numpy().reshape(-1), m.y_tables, threads=self.threads
        )
        return Coded([y_data], m.dequantize(sym, mu))

    def decompress_latents(self, parts: list[bytes], prior: tuple[Tensor, ...]) -> Tensor:
        m = self.model
        mu, idx = prior
        idx32 = idx.to(torch.int32).numpy().reshape(-1)
        sym = entropy.decode(parts[0], idx32, m.y_tables, threads=self.threads)
        if sym.size and int(np.abs(sym).max()) > Y_LIMIT:  # the encoder never writes such values
            raise CorruptStreamError(f"decoded latent beyond the +-{Y_LIMIT} the encoder writes")
        return m.dequantize(torch.from_numpy(sym).view(mu.shape), mu)
