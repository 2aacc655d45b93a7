"""rANS golden stream, hostile input (truncations, bit flips, garbage), sanitizers and fuzzing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ncodec.bitstream.errors import CorruptStreamError, TruncatedStreamError
from ncodec.entropy import coder, rans_ref
from ncodec.entropy.constants import MAX_SYMBOL_MAGNITUDE
from ncodec.entropy.tables import TableSet, from_pmfs, gaussian_scale_table, gaussian_tables

_rans = pytest.importorskip("ncodec.entropy._rans")

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"
CSRC = ROOT / "entropy" / "csrc"


# --------------------------------------------------------------------------------------------------
# Golden stream
# --------------------------------------------------------------------------------------------------


def _golden_case() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20240601)
    g = gaussian_tables(gaussian_scale_table()[[0, 10, 25, 40]])
    extra = from_pmfs([np.array([0.5, 0.25, 0.125, 0.125]), rng.random(9) ** 3], [5, -1000])
    width = max(g.cdf.shape[1], extra.cdf.shape[1])
    pad = lambda c: np.pad(c, ((0, 0), (0, width - c.shape[1])), constant_values=1 << 16)  # noqa: E731
    cdf = np.concatenate([pad(g.cdf), pad(extra.cdf)])
    sizes = np.concatenate([g.sizes, extra.sizes])
    offsets = np.concatenate([g.offsets, extra.offsets])
    n = 3000
    idx = rng.integers(0, cdf.shape[0], n).astype(np.int32)
    sym = np.round(rng.normal(0, 3, n)).astype(np.int64) + offsets[idx] + sizes[idx] // 2
    sym[::97] = rng.integers(-MAX_SYMBOL_MAGNITUDE, MAX_SYMBOL_MAGNITUDE + 1, sym[::97].size)
    sym[5] = MAX_SYMBOL_MAGNITUDE
    sym[6] = -MAX_SYMBOL_MAGNITUDE
    return {
        "symbols": sym.astype(np.int32),
        "indexes": idx,
        "cdf": cdf.astype(np.int32),
        "sizes": sizes.astype(np.int32),
        "offsets": offsets.astype(np.int32),
        "lanes": np.array(5, np.int32),
        "segment_symbols": np.array(1100, np.int32),
    }


def test_golden_stream() -> None:
    bin_path, npz_path = GOLDEN / "rans_v1.bin", GOLDEN / "rans_v1.npz"
    if os.environ.get("NCODEC_REGEN_GOLDEN") == "1":
        case = _golden_case()
        tables = TableSet(case["cdf"], case["sizes"], case["offsets"])
        data = rans_ref.encode(
            case["symbols"],
            case["indexes"],
            tables,
            lanes=int(case["lanes"]),
            segment_symbols=int(case["segment_symbols"]),
        )
        GOLDEN.mkdir(exist_ok=True)
        np.savez(npz_path, **case)
        bin_path.write_bytes(data)
    case = dict(np.load(npz_path, allow_pickle=False))
    data = bin_path.read_bytes()
    tables = TableSet(case["cdf"], case["sizes"], case["offsets"])
    sym, idx = case["symbols"], case["indexes"]
    kw = {"lanes": int(case["lanes"]), "segment_symbols": int(case["segment_symbols"])}
    np.testing.assert_array_equal(rans_ref.decode(data, idx, tables), sym)
    np.testing.assert_array_equal(coder.decode(data, idx, tables, backend="cpp"), sym)
    assert rans_ref.encode(sym, idx, tables, **kw) == data
    assert coder.encode(sym, idx, tables, backend="cpp", **kw) == data


# --------------------------------------------------------------------------------------------------
# Hostile input: the C++ decoder raises exactly the reference's error type (or decodes garbage)
# --------------------------------------------------------------------------------------------------


def _outcome(fn):
    try:
        return ("ok", fn())
    except TruncatedStreamError:
        return ("truncated", None)
    except CorruptStreamError:
        return ("corrupt", None)


def _real_stream(n: int = 700, seed: int = 0):
    rng = np.random.default_rng(seed)
    tables = from_pmfs([rng.random(12) ** 4, rng.random(5)], [-6, 0])
    idx = rng.integers(0, 2, n).astype(np.int32)
    sym = (tables.offsets[idx] + rng.integers(0, 11, n)).astype(np.int32)
    sym[::50] = 12345
    return tables, sym, idx, coder.encode(sym, idx, tables, lanes=3, segment_symbols=300, backend="cpp")


def test_every_truncation() -> None:
    tables, sym, idx, data = _real_stream()
    for cut in range(len(data)):
        got = _outcome(lambda c=cut: coder.decode(data[:c], idx, tables, backend="cpp"))
        assert got[0] != "ok"
        if cut % 7 == 0 or cut < 40:
            assert got[0] == _outcome(lambda c=cut: rans_ref.decode(data[:c], idx, tables))[0]


def test_bit_flips_and_garbage_match_reference() -> None:
    tables, sym, idx, data = _real_stream(300, 1)
    rng = np.random.default_rng(2)
    for trial in range(300):
        bad = bytearray(data)
        if trial % 3 == 2:
            bad = bytearray(rng.integers(0, 256, int(rng.integers(0, 200)), dtype=np.uint8).tobytes())
            if len(bad) > 3:
                bad[0], bad[1] = 0xAC, 0x02  # n = 300
        else:
            for _ in range(int(rng.integers(1, 4))):
                pos = int(rng.integers(0, len(bad)))
                bad[pos] ^= 1 << int(rng.integers(0, 8))
        ours = _outcome(lambda b=bytes(bad): coder.decode(b, idx, tables, backend="cpp"))
        ref = _outcome(lambda b=bytes(bad): rans_ref.decode(b, idx, tables))
        assert ours[0] == ref[0], trial
        if ours[0] == "ok":
            np.testing.assert_array_equal(ours[1], ref[1])


def test_wrong_sizes_and_empty() -> None:
    tables, sym, idx, data = _real_stream(10, 3)
    with pytest.raises(TruncatedStreamError):
        coder.decode(b"", idx, tables, backend="cpp")
    with pytest.raises(CorruptStreamError):
        coder.decode(data + b"\0", idx, tables, backend="cpp")
    with pytest.raises(CorruptStreamError):
        coder.decode(b"\xff\xff\xff\xff\xff\xff", idx, tables, backend="cpp")
    empty = coder.encode(np.zeros(0, np.int32), np.zeros(0, np.int32), tables, backend="cpp")
    assert empty == rans_ref.encode(np.zeros(0), np.zeros(0), tables)
    assert coder.decode(empty, np.zeros(0, np.int32), tables, backend="cpp").shape == (0,)


# --------------------------------------------------------------------------------------------------
# Sanitizers and fuzzing (subprocesses, bounded time)
# --------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("portable", [False, True], ids=["native", "no-avx2"])
def test_fuzz_driver_under_asan_ubsan(tmp_path: Path, portable: bool) -> None:
    """Hostile streams under ASan/UBSan; `no-avx2` builds the portable code only (as on non-x86)."""
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ not found")
    exe = tmp_path / "fuzz_driver"
    cmd = [
        gxx,
        *(["-DNCODEC_NO_AVX2"] if portable else []),
        "-std=c++17",
        "-O1",
        "-g",
        "-fsanitize=address,undefined",
        "-fno-sanitize-recover=all",
        "-fno-omit-frame-pointer",
        f"-I{CSRC / 'emu'}",  # the CPU stand-in for the CUDA runtime: rans_cuda.cu runs in the driver
        f"-I{CSRC}",
        str(CSRC / "fuzz_driver.cpp"),
        "-o",
        str(exe),
        "-lpthread",
    ]
    build = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    if build.returncode != 0 and "sanitize" in build.stderr and "cannot find" in build.stderr:
        pytest.skip("sanitizer runtime libraries are not installed")
    assert build.returncode == 0, build.stderr[-3000:]
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1")
    run = subprocess.run([str(exe), "600", "7"], capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert "ERROR: AddressSanitizer" not in run.stderr and "runtime error" not in run.stderr
    assert run.stdout.startswith("ok:")


@pytest.mark.slow
def test_worker_pool_and_parallel_coding_under_tsan(tmp_path: Path) -> None:
    """The worker pool (polling, parked, concurrent callers, fork) and whole payloads coded from
    several callers at once, under ThreadSanitizer."""
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ not found")
    exe = tmp_path / "pool_stress"
    cmd = [gxx, "-std=c++17", "-O1", "-g", "-fsanitize=thread", f"-I{CSRC}", str(CSRC / "pool_stress.cpp")]
    build = subprocess.run([*cmd, "-o", str(exe), "-lpthread"], capture_output=True, text=True, timeout=240)
    if build.returncode != 0 and "tsan" in build.stderr.lower() and "cannot find" in build.stderr:
        pytest.skip("ThreadSanitizer runtime is not installed")
    assert build.returncode == 0, build.stderr[-3000:]
    env = dict(os.environ, TSAN_OPTIONS="die_after_fork=0 halt_on_error=1")
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0 and run.stdout.strip() == "ok", (run.stdout + run.stderr)[-3000:]
    assert "ThreadSanitizer" not in run.stderr, run.stderr[-3000:]


_ATHERIS_HARNESS = textwrap.dedent(
    """
    import sys
    import atheris
    import numpy as np

    with atheris.instrument_imports():
        from ncodec.bitstream.errors import CorruptStreamError
        from ncodec.entropy import coder
        from ncodec.entropy.tables import from_pmfs

    tables = from_pmfs([np.array([0.6, 0.2, 0.1, 0.05, 0.05]), np.array([0.3, 0.7])], [-2, 0])
    rng = np.random.default_rng(0)
    seed_idx = rng.integers(0, 2, 200).astype(np.int32)
    seed_sym = rng.integers(-3, 4, 200).astype(np.int32)
    seed = coder.encode(seed_sym, seed_idx, tables, lanes=3, segment_symbols=64, backend="cpp")

    def one(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        n = fdp.ConsumeIntInRange(0, 300)
        idx = np.array(fdp.ConsumeIntListInRange(n, 0, 1), dtype=np.int32)
        if idx.size < n:
            idx = np.resize(seed_idx, n)
        payload = fdp.ConsumeBytes(fdp.remaining_bytes())
        if n == 200 and len(payload) > 8:
            payload = seed[: len(payload)] + payload[len(seed):]
        try:
            out = coder.decode(payload, idx, tables, backend="cpp", threads=1)
            assert out.shape == (n,) and out.dtype == np.int32
        except CorruptStreamError:
            pass

    atheris.Setup([sys.argv[0], "-runs=%d" % int(sys.argv[1]), "-max_total_time=20", "-seed=1"], one)
    atheris.Fuzz()
    """
)


@pytest.mark.slow
def test_atheris_decode_fuzz(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    script = tmp_path / "fuzz_decode.py"
    script.write_text(_ATHERIS_HARNESS)
    run = subprocess.run(
        [sys.executable, str(script), "20000"], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
