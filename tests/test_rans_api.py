"""ncodec.entropy's public API: exports, backends, and the fallback when the extension is missing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import ncodec.entropy as entropy
from ncodec.entropy import coder


def test_exports() -> None:
    for name in (
        "encode",
        "decode",
        "TableSet",
        "from_pmfs",
        "gaussian_tables",
        "gaussian_scale_table",
        "quantize_pmf",
        "PREC",
        "MAX_LANES",
        "DEFAULT_SEGMENT_SYMBOLS",
    ):
        assert hasattr(entropy, name), name
    assert "ref" in coder.available_backends()
    with pytest.raises(ValueError, match="unknown backend"):
        entropy.encode(np.zeros(1, np.int32), np.zeros(1, np.int32), _tables(), backend="gpu")


def _tables():
    return entropy.from_pmfs([np.array([0.7, 0.2, 0.1])], [0])


def test_backends_agree() -> None:
    pytest.importorskip("ncodec.entropy._rans")
    rng = np.random.default_rng(0)
    sym = rng.integers(-2, 4, 999).astype(np.int32)
    idx = np.zeros(999, np.int32)
    t = _tables()
    a = entropy.encode(sym, idx, t, backend="ref")
    assert entropy.encode(sym, idx, t, backend="cpp") == a == entropy.encode(sym, idx, t)
    np.testing.assert_array_equal(entropy.decode(a, idx, t, backend="ref"), sym)
    np.testing.assert_array_equal(entropy.decode(a, idx, t, threads=1), sym)
    # prepared tables are cached per TableSet object
    assert coder.prepared_tables(t) is coder.prepared_tables(t)


def test_float_inputs_must_be_whole_numbers() -> None:
    """Whole-number floats (rounded latents) code like integers; a fractional or non-finite value
    is refused instead of being truncated into a different symbol."""
    torch = pytest.importorskip("torch")
    t = _tables()
    sym = np.array([0.0, 2.0, -1.0, 7.0])
    idx = np.zeros(4)
    data = entropy.encode(sym, idx, t)
    assert data == entropy.encode(sym.astype(np.int32), idx.astype(np.int32), t)
    np.testing.assert_array_equal(entropy.decode(data, torch.zeros(4, dtype=torch.float64), t), sym)
    fractional, nan = np.array([0.0, 1.5, 0.0, 0.0]), np.array([0.0, np.nan, 0.0, 0.0])
    for bad in (fractional, nan, torch.tensor([0.0, 0.5, 0.0, 0.0])):
        with pytest.raises(ValueError, match="whole numbers"):
            entropy.encode(bad, idx, t)
    with pytest.raises(ValueError, match="whole numbers"):
        entropy.decode(data, np.array([0.0, 0.0, 0.25, 0.0]), t)


def test_fallback_without_extension() -> None:
    script = textwrap.dedent(
        """
        import sys, warnings
        import importlib.abc

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name in ("ncodec.entropy._rans", "ncodec.entropy._rans_cuda"):
                    raise ImportError("blocked for the test")
                return None

        sys.meta_path.insert(0, Block())
        import numpy as np
        import ncodec.entropy as e

        t = e.from_pmfs([np.array([0.5, 0.3, 0.2])], [0])
        sym = np.array([0, 1, 5, -3], np.int32)
        idx = np.zeros(4, np.int32)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            data = e.encode(sym, idx, t)
        assert any(issubclass(x.category, RuntimeWarning) for x in w), w
        assert (e.decode(data, idx, t) == sym).all()
        try:
            e.encode(sym, idx, t, backend="cpp")
        except ImportError as exc:
            assert "not built" in str(exc)
        else:
            raise AssertionError("expected ImportError")
        print("OK")
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "OK" in run.stdout, run.stderr[-2000:]


def test_entropy_bench_reports_every_coder_and_the_ratios() -> None:
    from ncodec.entropy.bench import run_entropy_bench

    only = ["ncodec_ref_subset", "ncodec_cpp_1t", "ncodec_cpp_mt", "compressai_ans"]
    r = run_entropy_bench(30_000, repeat=1, only=only, print_results=False)
    assert set(r["coders"]) == set(only), r.get("skipped")
    for c in r["coders"].values():
        assert c["encode_msym_s"] > 0 and c["decode_msym_s"] > 0 and c["bits_per_symbol"] > 0
    assert {"decode_vs_compressai", "encode_vs_compressai", "threads_scaling"} <= set(r["ratios"])
    assert r["n_segments"] == 1 and r["ratios"]["threads_scaling_bound"] == 1.0  # 30,000 symbols: one segment
    assert 1.0 <= r["ratios"]["size_vs_table_ideal"] < 1.02


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_worker_pool_survives_fork() -> None:
    """The C++ coder's parked worker threads do not exist in a forked child (as in DataLoader
    workers): the child must get a pool of its own instead of waiting on the parent's threads."""
    from ncodec.entropy.tables import gaussian_scale_table, gaussian_tables

    rng = np.random.default_rng(3)
    tables = gaussian_tables(gaussian_scale_table())
    idx = rng.integers(0, 64, 300_000).astype(np.int32)
    sym = np.round(rng.normal(0, gaussian_scale_table()[idx])).astype(np.int32)
    data = coder.encode(sym, idx, tables, threads=2, segment_symbols=4096)
    assert np.array_equal(coder.decode(data, idx, tables, threads=2), sym)  # the pool now exists
    pid = os.fork()
    if pid == 0:  # child: exit code 0 only if the threaded round trip works
        again = coder.encode(sym, idx, tables, threads=2)
        ok = np.array_equal(coder.decode(again, idx, tables, threads=2), sym)
        os._exit(0 if ok else 1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung in the C++ coder")


def test_bench_times_fast_calls_back_to_back() -> None:
    """A call far shorter than the minimum sample is repeated and the time divided per call, so
    a 2 ms coder is timed in steady state, not once and cold."""
    from ncodec.entropy import bench

    calls = []
    per_call, last = bench._per_call(lambda: calls.append(1) or len(calls))
    assert len(calls) > 10 and last == len(calls)  # the warm-up call is untimed
    assert per_call * (len(calls) - 1) >= bench.MIN_SAMPLE_S


def test_compare_on_symbols_times_both_coders_on_the_same_symbols() -> None:
    pytest.importorskip("compressai")
    pytest.importorskip("ncodec.entropy._rans")
    from ncodec.entropy.bench import compare_on_symbols

    rng = np.random.default_rng(2)
    scales = np.exp(rng.normal(-1.0, 1.0, 20_000))
    sym = np.round(rng.normal(0.0, scales)).astype(np.int32)
    tables = entropy.gaussian_tables(entropy.gaussian_scale_table())
    r = compare_on_symbols(sym, entropy.scale_indexes(scales), tables, repeat=1)
    assert set(r["coders"]) == {"ncodec_cpp_1t", "compressai_ans"}, r.get("skipped")
    assert set(r["ratios"]) == {"decode_vs_compressai", "encode_vs_compressai"}
    assert all(v > 0 for v in r["ratios"].values())
    idx2 = entropy.scale_indexes(scales).reshape(40, -1)
    r2 = compare_on_symbols(sym.reshape(40, -1), idx2, tables, repeat=1)
    assert set(r2["coders"]) == {"ncodec_cpp_1t", "compressai_ans"}, r2.get("skipped")  # any shape
