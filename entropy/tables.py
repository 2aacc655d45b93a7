"""Integer probability tables: quantised CDFs that the rANS coders share.

A :class:`TableSet` holds ``T`` tables. Table ``t`` codes the values
``offsets[t] .. offsets[t] + sizes[t] - 2``; its last entry (index ``sizes[t] - 1``) is the escape
that every other value takes, followed by bypass bits. ``cdf[t, :sizes[t] + 1]`` rises strictly from
0 to ``2**PREC``; entries past ``sizes[t]`` are padding (repeat ``2**PREC``).

Tables are built once, in float64, when a model is exported, and stored as integers with the
weights; decoding only ever reads the integers, so it cannot drift between machines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ncodec.entropy.constants import MAX_TABLE_OFFSET, MAX_TABLE_SIZE, PREC


@dataclass(frozen=True)
class TableSet:
    """``T`` quantised CDFs.

    Attributes:
        cdf: int32 ``[T, W]`` with ``W >= max(sizes) + 1``; ``cdf[t, 0] == 0``,
            ``cdf[t, sizes[t]] == 2**PREC``, strictly increasing in between.
        sizes: int32 ``[T]``, entries per table including the escape, ``2..MAX_TABLE_SIZE``.
        offsets: int32 ``[T]``, the value coded by entry 0.
    """

    cdf: np.ndarray
    sizes: np.ndarray
    offsets: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "cdf", np.ascontiguousarray(self.cdf, dtype=np.int32))
        object.__setattr__(self, "sizes", np.ascontiguousarray(self.sizes, dtype=np.int32))
        object.__setattr__(self, "offsets", np.ascontiguousarray(self.offsets, dtype=np.int32))
        self.validate()

    def __len__(self) -> int:
        return int(self.sizes.size)

    def validate(self) -> None:
        """Checks every invariant; tables may come from an untrusted file.

        Raises:
            ValueError: naming the first table that breaks an invariant.
        """
        cdf, sizes, offsets = self.cdf, self.sizes, self.offsets
        if cdf.ndim != 2 or sizes.ndim != 1 or offsets.ndim != 1:
            raise ValueError("tables: cdf must be 2-D, sizes and offsets 1-D")
        t = sizes.size
        if t == 0 or cdf.shape[0] != t or offsets.size != t:
            raise ValueError(f"tables: {cdf.shape[0]} CDFs, {t} sizes, {offsets.size} offsets")
        if sizes.min() < 2 or sizes.max() > MAX_TABLE_SIZE or cdf.shape[1] < sizes.max() + 1:
            raise ValueError(f"tables: sizes must be in 2..{MAX_TABLE_SIZE} and fit the CDF width")
        if np.abs(offsets.astype(np.int64)).max() > MAX_TABLE_OFFSET:
            raise ValueError(f"tables: offsets must be within +-{MAX_TABLE_OFFSET}")
        cols = np.arange(cdf.shape[1])[None, :]
        inside = cols <= sizes[:, None]
        if (cdf[:, 0] != 0).any() or (cdf[np.arange(t), sizes] != 1 << PREC).any():
            raise ValueError(f"tables: every CDF must run from 0 to 2**{PREC}")
        steps = np.diff(cdf.astype(np.int64), axis=1)
        if ((steps <= 0) & inside[:, 1:]).any():
            bad = int(np.nonzero(((steps <= 0) & inside[:, 1:]).any(axis=1))[0][0])
            raise ValueError(f"tables: CDF {bad} is not strictly increasing (a zero frequency)")

    def ideal_bits(self, symbols: np.ndarray, indexes: np.ndarray) -> float:
        """Code length in bits under the quantised tables; an out-of-support symbol is charged its escape
        entry only (not its bypass bits)."""
        sym = np.asarray(symbols).reshape(-1).astype(np.int64)
        idx = np.asarray(indexes).reshape(-1).astype(np.int64)
        i = sym - self.offsets[idx]
        ok = (i >= 0) & (i < self.sizes[idx] - 1)
        i = np.where(ok, i, self.sizes[idx] - 1)
        freq = self.cdf[idx, i + 1].astype(np.int64) - self.cdf[idx, i]
        return float(-np.log2(freq / (1 << PREC)).sum())


def quantize_pmf(pmf: np.ndarray, prec: int = PREC) -> np.ndarray:
    """Turns a probability vector (its last entry the escape mass) into a quantised CDF.

    Every entry gets a frequency of at least 1 and the frequencies sum to exactly ``2**prec``;
    rounding error is moved to (or taken from) the most probable entries. Deterministic for a
    given float64 input.

    Args:
        pmf: float ``[n]``, non-negative, ``2 <= n <= MAX_TABLE_SIZE``.

    Returns:
        int64 ``[n + 1]`` CDF.
    """
    p = np.asarray(pmf, dtype=np.float64)
    if p.ndim != 1 or not 2 <= p.size <= MAX_TABLE_SIZE or not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("pmf must be a finite, non-negative vector of 2..MAX_TABLE_SIZE entries")
    total = 1 << prec
    if p.size > total:
        raise ValueError("more entries than quantisation levels")
    s = p.sum()
    p = p / s if s > 0 else np.full(p.size, 1.0 / p.size)
    freq = np.maximum(1, np.floor(p * (total - p.size) + 0.5).astype(np.int64) + 0)
    diff = total - int(freq.sum())
    order = np.argsort(-p, kind="stable")
    i = 0
    while diff != 0:
        j = order[i % p.size]
        if diff > 0:
            freq[j] += 1
            diff -= 1
        elif freq[j] > 1:
            freq[j] -= 1
            diff += 1
        i += 1
    return np.concatenate([[0], np.cumsum(freq)])


def from_pmfs(pmfs: list[np.ndarray], offsets: list[int] | np.ndarray) -> TableSet:
    """Builds a :class:`TableSet` from per-table probability vectors (escape mass last)."""
    cdfs = [quantize_pmf(p) for p in pmfs]
    width = max(c.size for c in cdfs)
    cdf = np.full((len(cdfs), width), 1 << PREC, dtype=np.int64)
    for t, c in enumerate(cdfs):
        cdf[t, : c.size] = c
    sizes = np.array([c.size - 1 for c in cdfs], dtype=np.int32)
    return TableSet(cdf.astype(np.int32), sizes, np.asarray(offsets, dtype=np.int32))


def gaussian_scale_table(min_scale: float = 0.11, max_scale: float = 256.0, levels: int = 64) -> np.ndarray:
    """Log-spaced Gaussian scales (float64 ``[levels]``), as in CompressAI's default table."""
    return np.exp(np.linspace(np.log(min_scale), np.log(max_scale), levels))


def scale_indexes(scales: Any, scale_table: np.ndarray | None = None) -> Any:
    """The table index of every scale: the first table whose scale is >= it, clamped to the last
    (CompressAI's ``GaussianConditional.build_indexes``).

    Args:
        scales: predicted scales, any shape; a numpy array or a torch tensor (CPU or CUDA).
        scale_table: the scales of the tables, increasing (default :func:`gaussian_scale_table`).

    Returns:
        int32 indexes of the same shape and kind (a tensor stays on its device).

    A float comparison: a scale within rounding of a table boundary can pick a different table on
    another machine, and the decoder then decodes garbage. Compute ``scales`` exactly (as ncodec's
    codecs do, with integer hyper-synthesis), or send the indexes instead of recomputing them.
    """
    table = gaussian_scale_table() if scale_table is None else np.asarray(scale_table, dtype=np.float64)
    if table.ndim != 1 or table.size == 0 or np.any(np.diff(table) <= 0):
        raise ValueError("scale_table must be a non-empty, strictly increasing 1-D array")
    if type(scales).__module__.split(".")[0] == "torch":
        import torch

        bounds = torch.as_tensor(table, dtype=torch.float64, device=scales.device)
        i = torch.searchsorted(bounds, scales.detach().to(torch.float64).contiguous(), right=False)
        return i.clamp_(max=table.size - 1).to(torch.int32)
    i = np.searchsorted(table, np.asarray(scales, dtype=np.float64), side="left")
    return np.minimum(i, table.size - 1).astype(np.int32)


def gaussian_tables(scales: np.ndarray, tail_mass: float = 1e-9, mean_offset: float = 0.0) -> TableSet:
    """Tables for zero-mean Gaussians of the given scales, quantised to unit bins.

    Table ``t`` covers ``-K_t .. K_t`` with ``K_t = ceil(scale_t * Phi^-1(1 - tail_mass / 2))``;
    the tails' mass goes to the escape entry.
    """
    from scipy.stats import norm

    pmfs, offsets = [], []
    for s in np.asarray(scales, dtype=np.float64):
        k = int(np.ceil(s * norm.ppf(1 - tail_mass / 2)))
        k = min(max(k, 1), (MAX_TABLE_SIZE - 2) // 2)
        v = np.arange(-k, k + 1, dtype=np.float64) - mean_offset
        upper = norm.cdf((v + 0.5) / s)
        lower = norm.cdf((v - 0.5) / s)
        pmf = upper - lower
        tail = max(1.0 - pmf.sum(), 0.0)
        pmfs.append(np.concatenate([pmf, [tail]]))
        offsets.append(-k)
    return from_pmfs(pmfs, offsets)
