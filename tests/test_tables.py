"""Integer probability tables: quantisation, validation of untrusted tables, the escape path."""

from __future__ import annotations

import numpy as np
import pytest

from ncodec.entropy import rans_ref
from ncodec.entropy.constants import PREC, auto_lanes
from ncodec.entropy.tables import (
    TableSet,
    from_pmfs,
    gaussian_scale_table,
    gaussian_tables,
    quantize_pmf,
    scale_indexes,
)


def test_quantize_pmf_sums_and_keeps_every_symbol():
    rng = np.random.default_rng(0)
    for n in (2, 3, 17, 300, 4096):
        p = rng.random(n) ** 8
        p[rng.integers(n)] = 0.0
        cdf = quantize_pmf(p)
        f = np.diff(cdf)
        assert cdf[0] == 0 and cdf[-1] == 1 << PREC and (f >= 1).all()


def test_quantize_pmf_is_close_to_ideal():
    p = np.exp(-0.5 * np.arange(-20, 21) ** 2 / 9.0)
    p /= p.sum()
    f = np.diff(quantize_pmf(np.append(p, 1e-9))) / (1 << PREC)
    ideal = -(p * np.log2(p)).sum()
    actual = -(p * np.log2(f[:-1])).sum()
    assert actual <= ideal * 1.005


def test_validation_rejects_bad_tables():
    good = from_pmfs([np.array([0.5, 0.4, 0.1])], [0])
    with pytest.raises(ValueError, match="strictly increasing"):
        TableSet(np.array([[0, 100, 100, 65536]]), np.array([3]), np.array([0]))
    with pytest.raises(ValueError, match="0 to"):
        TableSet(np.array([[0, 100, 65535]]), np.array([2]), np.array([0]))
    with pytest.raises(ValueError):
        TableSet(good.cdf, np.array([1]), good.offsets)
    with pytest.raises(ValueError, match="offsets"):
        TableSet(good.cdf, good.sizes, np.array([1 << 21]))


def test_gaussian_tables_cover_escapes_both_sides():
    t = gaussian_tables(gaussian_scale_table())
    rng = np.random.default_rng(3)
    idx = rng.integers(0, len(t), 3000)
    sym = np.round(rng.standard_normal(3000) * gaussian_scale_table()[idx]).astype(np.int32)
    sym[::50] = rng.integers(-(1 << 30), 1 << 30, sym[::50].size)
    data = rans_ref.encode(sym, idx, t)
    assert np.array_equal(rans_ref.decode(data, idx, t), sym)


def test_auto_lanes_policy():
    assert [auto_lanes(b) for b in (0, 16383, 16384, 3 * 16384, 8 * 16384, 10**9)] == [1, 1, 1, 2, 8, 32]


def test_scale_indexes_match_compressai_build_indexes():
    torch = pytest.importorskip("torch")
    pytest.importorskip("compressai")
    from compressai.entropy_models import GaussianConditional

    table = gaussian_scale_table()
    gc = GaussianConditional(table.tolist())
    rng = np.random.default_rng(5)
    scales = np.concatenate([np.exp(rng.normal(0.0, 2.0, 5000)), table, [0.0, 1e-3, 1e9]])
    want = gc.build_indexes(gc.lower_bound_scale(torch.from_numpy(scales).float())).numpy()
    # CompressAI compares in float32: give both sides the same float32 scales.
    s32 = scales.astype(np.float32).astype(np.float64)
    got = scale_indexes(s32, table.astype(np.float32).astype(np.float64))
    assert got.dtype == np.int32 and np.array_equal(got, want)
    t = scale_indexes(torch.from_numpy(s32).reshape(3, -1), table.astype(np.float32).astype(np.float64))
    assert t.dtype == torch.int32 and t.shape == (3, len(scales) // 3)
    assert np.array_equal(t.reshape(-1).numpy(), want)
    with pytest.raises(ValueError):
        scale_indexes(scales, table[::-1])
