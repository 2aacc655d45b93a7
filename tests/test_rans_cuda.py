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


@needs_cuda
@pytest.mark.parametrize("seed,n,lanes,seg", [(10, 0, 0, 65536), (11, 50_000, 0, 4096), (12, 3000, 5, 7)])
def test_cuda_decodes_a_device_resident_payload(seed: int, n: int, lanes: int, seg: int) -> None:
    tables, sym, idx = _case(seed, n, 0.01)
    cpu = coder.encode(sym, idx, tables, lanes=lanes, segment_symbols=seg, backend="cpp")
    payload = torch.frombuffer(bytearray(cpu), dtype=torch.uint8).cuda()
    out = coder.decode(payload, torch.from_numpy(idx).cuda(), tables)
    assert out.is_cuda
    np.testing.assert_array_equal(out.cpu().numpy(), sym)
    # A CUDA payload with host indexes decodes on the GPU too; the CPU backend takes it to the host.
    np.testing.assert_array_equal(coder.decode(payload, idx, tables).cpu().numpy(), sym)
    np.testing.assert_array_equal(coder.decode(payload, idx, tables, backend="cpp"), sym)


def _cpp_verdict(data: bytes, idx: np.ndarray, tables) -> tuple[str, str]:
    try:
        coder.decode(data, idx, tables, backend="cpp")
    except (CorruptStreamError, ValueError) as e:
        return type(e).__name__, str(e)
    return "ok", ""


@needs_cuda
def test_cuda_framing_errors_match_the_cpu_decoder() -> None:
    """The GPU parses the framing on the device: every hostile stream gets the CPU decoder's error
    class, and its message when the framing (not a lane) is at fault, from bytes or device data."""
    rng = np.random.default_rng(13)
    tables, sym, idx = _case(13, 20_000, 0.01)
    good = coder.encode(sym, idx, tables, segment_symbols=1000, backend="cpp")
    di = torch.from_numpy(idx).cuda()
    for trial in range(300):
        bad = bytearray(good)
        kind = trial % 4
        if kind == 0:
            bad = bad[: int(rng.integers(0, len(bad)))]
        elif kind == 1:
            for pos in rng.integers(0, min(len(bad), 200), int(rng.integers(1, 4))):
                bad[pos] = int(rng.integers(0, 256))
        elif kind == 2:
            pos = int(rng.integers(0, len(bad)))
            bad[pos : pos + 1] = b""
        else:
            bad[int(rng.integers(0, len(bad)))] ^= 1 << int(rng.integers(0, 8))
        want_kind, want_msg = _cpp_verdict(bytes(bad), idx, tables)
        on_gpu = torch.tensor(list(bad), dtype=torch.uint8, device="cuda")
        for data in (bytes(bad), on_gpu):
            try:
                out = coder.decode(data, di, tables, backend="cuda")
                got_kind, got_msg = "ok", ""
            except (CorruptStreamError, ValueError) as e:
                got_kind, got_msg, out = type(e).__name__, str(e), None
            assert got_kind == want_kind, (trial, got_msg, want_msg)
            if want_kind == "ok":
                want = coder.decode(bytes(bad), idx, tables, backend="cpp")
                np.testing.assert_array_equal(out.cpu().numpy(), want)
            elif "lane" not in want_msg and "escape" not in want_msg:
                assert got_msg == want_msg, trial
