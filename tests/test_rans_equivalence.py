"""The C++ rANS coder against the Python reference: identical bytes, exact round trips."""

from __future__ import annotations

import numpy as np
import pytest

from ncodec.bitstream.errors import CorruptStreamError
from ncodec.entropy import coder, rans_ref
from ncodec.entropy.constants import MAX_SYMBOL_MAGNITUDE, PREC
from ncodec.entropy.tables import TableSet, from_pmfs, gaussian_scale_table, gaussian_tables

_rans = pytest.importorskip("ncodec.entropy._rans")


def random_tables(rng: np.random.Generator, t: int | None = None, max_size: int = 40) -> TableSet:
    t = t or int(rng.integers(1, 6))
    pmfs, offsets = [], []
    for _ in range(t):
        n = int(rng.integers(2, max_size + 1))
        kind = rng.integers(0, 3)
        if kind == 0:
            p = rng.random(n)
        elif kind == 1:  # peaked, with tiny tails (frequencies of 1)
            p = np.exp(-0.5 * ((np.arange(n) - n / 2) / max(0.3, rng.random() * n / 6)) ** 2)
        else:
            p = rng.random(n) ** 8
        pmfs.append(p)
        offsets.append(int(rng.integers(-(1 << 20), 1 << 20)) if rng.random() < 0.2 else -n // 2)
    return from_pmfs(pmfs, offsets)


def random_symbols(rng: np.random.Generator, tables: TableSet, n: int, escape_rate: float):
    idx = rng.integers(0, len(tables), n).astype(np.int32)
    off = tables.offsets[idx].astype(np.int64)
    size = tables.sizes[idx].astype(np.int64)
    sym = off + (rng.random(n) * (size - 1)).astype(np.int64)
    esc = rng.random(n) < escape_rate
    kinds = rng.integers(0, 4, n)
    near = np.where(kinds == 0, off - 1 - rng.integers(0, 40, n), off + size - 1 + rng.integers(0, 40, n))
    huge = np.where(kinds == 2, MAX_SYMBOL_MAGNITUDE, -MAX_SYMBOL_MAGNITUDE) - rng.integers(
        -3, 1, n
    ) * np.where(kinds == 2, 1, -1)
    wide = rng.integers(-MAX_SYMBOL_MAGNITUDE, MAX_SYMBOL_MAGNITUDE + 1, n)
    alt = np.where(kinds < 2, near, np.where(rng.random(n) < 0.5, huge, wide))
    sym = np.where(esc, alt, sym)
    sym = np.clip(sym, -MAX_SYMBOL_MAGNITUDE, MAX_SYMBOL_MAGNITUDE)
    return sym.astype(np.int32), idx


CASES = [
    # (seed, n, lanes, segment_symbols, escape_rate)
    (0, 0, 0, 65536, 0.0),
    (1, 1, 0, 65536, 0.0),
    (2, 1, 5, 1, 1.0),
    (3, 7, 7, 3, 0.5),
    (4, 1000, 0, 65536, 0.0),
    (5, 1000, 1, 100, 0.05),
    (6, 3000, 7, 1000, 0.02),
    (7, 4000, 32, 4000, 0.3),
    (8, 5000, 1024, 5000, 0.01),
    (9, 2500, 1024, 700, 0.0),
    (10, 20000, 0, 65536, 0.001),
    (11, 20000, 0, 3000, 0.0),
    (12, 333, 3, 1, 0.1),
    (13, 600, 0, 17, 1.0),
]


@pytest.mark.parametrize("seed,n,lanes,seg,esc", CASES)
def test_cpp_bytes_match_reference(seed: int, n: int, lanes: int, seg: int, esc: float) -> None:
    rng = np.random.default_rng(seed)
    tables = random_tables(rng)
    sym, idx = random_symbols(rng, tables, n, esc)
    ref = rans_ref.encode(sym, idx, tables, lanes=lanes, segment_symbols=seg)
    got = coder.encode(sym, idx, tables, lanes=lanes, segment_symbols=seg, backend="cpp")
    assert got == ref
    out = coder.decode(got, idx, tables, backend="cpp")
    assert out.dtype == np.int32 and out.shape == (n,)
    np.testing.assert_array_equal(out, sym)
    if n <= 5000:
        np.testing.assert_array_equal(rans_ref.decode(got, idx, tables), sym)


def test_random_cases_many() -> None:
    rng = np.random.default_rng(1234)
    for _ in range(60):
        tables = random_tables(rng, max_size=int(rng.choice([3, 20, 300])))
        n = int(rng.integers(0, 600))
        sym, idx = random_symbols(rng, tables, n, float(rng.choice([0.0, 0.01, 0.2, 1.0])))
        lanes = int(rng.choice([0, 0, 1, 2, 7, 32, 1024]))
        seg = int(rng.choice([1, 5, 64, 250, 65536]))
        ref = rans_ref.encode(sym, idx, tables, lanes=lanes, segment_symbols=seg)
        assert coder.encode(sym, idx, tables, lanes=lanes, segment_symbols=seg, backend="cpp") == ref
        np.testing.assert_array_equal(coder.decode(ref, idx, tables, backend="cpp"), sym)


def test_large_tables_and_gaussian() -> None:
    rng = np.random.default_rng(5)
    tables = gaussian_tables(gaussian_scale_table())
    n = 30000
    idx = rng.integers(0, len(tables), n).astype(np.int32)
    sym = np.round(rng.normal(0, gaussian_scale_table()[idx] * 1.5)).astype(np.int32)
    ref = rans_ref.encode(sym, idx, tables)
    assert coder.encode(sym, idx, tables, backend="cpp") == ref
    big = random_tables(rng, t=2, max_size=4096)
    s2, i2 = random_symbols(rng, big, 5000, 0.01)
    assert coder.encode(s2, i2, big, lanes=16, backend="cpp") == rans_ref.encode(s2, i2, big, lanes=16)


def test_extreme_frequencies() -> None:
    # frequency 1 entries (bias trick), 65535 (largest), and all-uniform tables.
    cdf = np.array([[0, 1, 2, 1 << PREC], [0, 65535, 1 << PREC, 1 << PREC], [0, 16384, 32768, 1 << PREC]])
    tables = TableSet(cdf.astype(np.int32), np.array([3, 2, 3], np.int32), np.array([0, 5, -1], np.int32))
    rng = np.random.default_rng(9)
    for lanes in (0, 1, 3):
        idx = rng.integers(0, 3, 5000).astype(np.int32)
        sym = rng.integers(-3, 8, 5000).astype(np.int32)
        ref = rans_ref.encode(sym, idx, tables, lanes=lanes)
        assert coder.encode(sym, idx, tables, lanes=lanes, backend="cpp") == ref
        np.testing.assert_array_equal(coder.decode(ref, idx, tables, backend="cpp"), sym)


def test_thread_count_invariance() -> None:
    rng = np.random.default_rng(3)
    tables = gaussian_tables(gaussian_scale_table())
    n = 200_000
    idx = rng.integers(0, 40, n).astype(np.int32)
    sym = np.round(rng.normal(0, gaussian_scale_table()[idx])).astype(np.int32)
    outs = {
        t: coder.encode(sym, idx, tables, threads=t, segment_symbols=10_000, backend="cpp")
        for t in (1, 2, 3, 8)
    }
    assert len(set(outs.values())) == 1
    for t in (1, 2, 5):
        np.testing.assert_array_equal(coder.decode(outs[1], idx, tables, threads=t, backend="cpp"), sym)


def test_input_types_and_errors() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    tables = random_tables(rng, t=3)
    sym, idx = random_symbols(rng, tables, 500, 0.05)
    ref = rans_ref.encode(sym, idx, tables)
    assert coder.encode(torch.from_numpy(sym), torch.from_numpy(idx).long(), tables) == ref
    assert coder.encode(sym.astype(np.int64).reshape(5, 100), idx.astype(np.uint8), tables) == ref
    np.testing.assert_array_equal(coder.decode(bytearray(ref), torch.from_numpy(idx), tables), sym)
    with pytest.raises(ValueError):
        coder.encode(sym, idx[:-1], tables)
    with pytest.raises(ValueError):
        coder.encode(sym, np.full_like(idx, 3), tables)
    with pytest.raises(ValueError):
        coder.encode(np.full(3, 1 << 31, np.int64), idx[:3], tables)
    with pytest.raises(ValueError):
        coder.encode(np.full(3, MAX_SYMBOL_MAGNITUDE + 1, np.int32), idx[:3], tables, backend="cpp")
    with pytest.raises(ValueError):
        coder.encode(sym, idx, tables, lanes=1025)
    with pytest.raises(ValueError):
        coder.decode(ref, np.full_like(idx, -1), tables)
    with pytest.raises(CorruptStreamError):
        coder.decode(ref, idx[:-1], tables)
    with pytest.raises(ValueError):
        _rans.Tables(np.zeros((1, 3), np.int32), np.array([2], np.int32), np.array([0], np.int32))


def test_vector_rows_match_scalar_rows() -> None:
    """The AVX2 code (where the CPU has it) encodes the same bytes, and decodes the same symbols with
    the same errors, as the scalar code: lane counts it takes (multiples of 8) and others, escapes,
    corruption, bad indexes and symbols."""
    rng = np.random.default_rng(21)
    for trial in range(40):
        tables = random_tables(rng)
        n = int(rng.integers(0, 5000))
        sym, idx = random_symbols(rng, tables, n, float(rng.choice([0.0, 0.01, 0.3])))
        lanes = int(rng.choice([0, 8, 16, 24, 32, 7]))
        seg = int(rng.choice([64, 1000, 65536]))
        data = coder.encode(sym, idx, tables, lanes=lanes, segment_symbols=seg, backend="cpp")
        prep = coder.prepared_tables(tables, "cpp")
        assert _rans.encode(prep, sym, idx, lanes, seg, 1, False) == data
        for threads in (1, 2):
            np.testing.assert_array_equal(_rans.decode(prep, data, idx, threads, True), sym)
        bad = bytearray(data)
        for pos in rng.integers(0, max(1, len(bad)), 3):
            if bad:
                bad[int(pos)] ^= 1 << int(rng.integers(0, 8))
        verdicts = []
        for vector in (False, True):
            try:
                verdicts.append(_rans.decode(prep, bytes(bad), idx, 1, vector).tolist())
            except ValueError as e:  # CorruptError / TruncatedError
                verdicts.append(f"{type(e).__name__}: {e}")
        assert verdicts[0] == verdicts[1], trial

    tables = random_tables(rng, 3)
    sym, idx = random_symbols(rng, tables, 1000, 0.0)
    prep = coder.prepared_tables(tables, "cpp")
    for vector in (False, True):
        bad_idx = idx.copy()
        bad_idx[517] = len(tables)
        with pytest.raises(ValueError, match="table index"):
            _rans.encode(prep, sym, bad_idx, 8, 65536, 1, vector)
        with pytest.raises(ValueError, match="table index"):
            _rans.decode(prep, _rans.encode(prep, sym, idx, 8, 65536, 1, vector), bad_idx, 1, vector)
        bad_sym = sym.copy()
        bad_sym[3] = MAX_SYMBOL_MAGNITUDE + 1
        with pytest.raises(ValueError, match="magnitude"):
            _rans.encode(prep, bad_sym, idx, 8, 65536, 1, vector)
