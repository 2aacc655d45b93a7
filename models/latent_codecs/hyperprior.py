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
from ncodec.models.latent_codecs.base import Coded, UnitShape

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


class HyperpriorCodec:
    """The z -> y two-part codec of a :class:`HyperpriorModel` (see the module docstring)."""

    parts = 2

    def __init__(self, model: HyperpriorModel, threads: int | None = None):
        self.model = model
        self.threads = threads

    def symbols(self, ys: Tensor, z_hat: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """What the coder sees: residual symbols ``round(ys - mu)`` (int32, clamped), their table
        indexes (int32) and the means ``mu`` (float64), all of ``ys``'s shape."""
        mu, idx = self.model.hyper(z_hat.cpu(), tuple(ys.shape))
        sym = torch.round(ys.cpu().double() - mu).clamp(-Y_LIMIT, Y_LIMIT).to(torch.int32)
        return sym, idx.to(torch.int32), mu

    def compress(self, ys: Tensor, z_hat: Tensor, context: object | None = None) -> Coded:
        m = self.model
        z_hat = z_hat.cpu()
        sym, idx, mu = self.symbols(ys, z_hat)
        z_data = entropy.encode(
            z_hat.to(torch.int32).numpy().reshape(-1),
            m.z_indexes(tuple(z_hat.shape)),
            m.z_tables,
            threads=self.threads,
        )
        y_data = entropy.encode(
            sym.numpy().reshape(-1), idx.numpy().reshape(-1), m.y_tables, threads=self.threads
        )
        return Coded([z_data, y_data], m.dequantize(sym, mu))

    def decompress(self, parts: list[bytes], shape: UnitShape, context: object | None = None) -> Tensor:
        m = self.model
        z = entropy.decode(parts[0], m.z_indexes(shape.z), m.z_tables, threads=self.threads)
        mu, idx = m.hyper(torch.from_numpy(z.astype(np.int64)).view(shape.z), shape.y)
        sym = entropy.decode(
            parts[1], idx.to(torch.int32).numpy().reshape(-1), m.y_tables, threads=self.threads
        )
        if sym.size and int(np.abs(sym).max()) > Y_LIMIT:  # the encoder never writes such values
            raise CorruptStreamError(f"decoded latent beyond the +-{Y_LIMIT} the encoder writes")
        return m.dequantize(torch.from_numpy(sym).view(mu.shape), mu)
