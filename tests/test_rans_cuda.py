"""The CUDA rANS coder: bytes and symbols identical to the C++ coder (skipped without a CUDA device)."""

from __future__ import annotations

import numpy as np
import pytest

from ncodec.bitstream.errors import CorruptStreamError
from ncodec.entropy import coder, rans_ref
from ncodec.entropy.constants import MAX_SYMBOL_MAGNITUDE
from ncodec.entropy.tables import from_pmfs, gaussian_scale_table, gaussian_tables

torch = pytest.importorskip("torch")
pytest.importorskip("ncodec.entropy._rans")


def test_cuda_module_imports_without_device() -> None:
    mod = pytest.importorskip("ncodec.entropy._rans_cuda")
    assert mod.device_count() >= 0
    if mod.device_count() == 0:
        with pytest.raises(RuntimeError, match="no CUDA device"):
            mod.Tables(
                np.array([[0, 1, 1 << 16]], np.int32), np.array([2], np.int32), np.array([0], np.int32)
            )


needs_cuda = pytest.mark.skipif(
    not (torch.cuda.is_available() and coder.cuda_available()), reason="needs a CUDA device and _rans_cuda"
)


def _case(seed: int, n: int, esc: float):
    rng = np.random.default_rng(seed)
    pmfs = [rng.random(int(rng.integers(2, 30))) ** 4 for _ in range(4)]
    tables = from_pmfs(pmfs, [-3, 0, 7, -(1 << 19)])
    idx = rng.integers(0, 4, n).astype(np.int32)
    sym = (tables.offsets[idx] + (rng.random(n) * (tables.sizes[idx] - 1)).astype(np.int64)).astype(np.int64)
    mask = rng.random(n) < esc
    sym[mask] = rng.integers(-MAX_SYMBOL_MAGNITUDE, MAX_SYMBOL_MAGNITUDE + 1, int(mask.sum()))
    return tables, sym.astype(np.int32), idx


@needs_cuda
@pytest.mark.parametrize(
    "seed,n,lanes,seg,esc",
    [
        (0, 0, 0, 65536, 0.0),
        (1, 1, 0, 65536, 0.0),
        (2, 5000, 0, 1000, 0.01),
        (3, 4000, 7, 333, 0.2),
        (4, 3000, 1024, 3000, 0.0),
        (5, 100_000, 0, 65536, 0.001),
        (6, 777, 1, 1, 1.0),
    ],
)
def test_cuda_matches_cpu(seed: int, n: int, lanes: int, seg: int, esc: float) -> None:
    tables, sym, idx = _case(seed, n, esc)
    cpu = coder.encode(sym, idx, tables, lanes=lanes, segment_symbols=seg, backend="cpp")
    if n <= 5000:
        assert cpu == rans_ref.encode(sym, idx, tables, lanes=lanes, segment_symbols=seg)
    ds, di = torch.from_numpy(sym).cuda(), torch.from_numpy(idx).cuda()
    gpu = coder.encode(ds, di, tables, lanes=lanes, segment_symbols=seg, backend="cuda")
    assert gpu == cpu
    out = coder.decode(cpu, di, tables, backend="cuda")
    assert out.is_cuda and out.dtype == torch.int32
    np.testing.assert_array_equal(out.cpu().numpy(), sym)


@needs_cuda
def test_cuda_gaussian_large_and_errors() -> None:
    rng = np.random.default_rng(7)
    tables = gaussian_tables(gaussian_scale_table())
    n = 1_000_000
    idx = rng.integers(0, 64, n).astype(np.int32)
    sym = np.round(rng.normal(0, gaussian_scale_table()[idx])).astype(np.int32)
    cpu = coder.encode(sym, idx, tables, backend="cpp")
    di = torch.from_numpy(idx).cuda()
    assert coder.encode(torch.from_numpy(sym).cuda(), di, tables, backend="cuda") == cpu
    assert torch.equal(coder.decode(cpu, di, tables).cpu(), torch.from_numpy(sym))
    bad = bytearray(cpu)
    for pos in rng.integers(20, len(bad), 50):
        bad[pos] ^= 0x5A
    try:
        out = coder.decode(bytes(bad), di, tables, backend="cuda")
        assert out.shape == (n,)
    except CorruptStreamError:
        pass
    for cut in (0, 1, 5, len(cpu) // 2, len(cpu) - 1):
        with pytest.raises(CorruptStreamError):
            coder.decode(cpu[:cut], di, tables, backend="cuda")
    with pytest.raises(ValueError):
        coder.decode(cpu, torch.full_like(di, 64), tables, backend="cuda")
