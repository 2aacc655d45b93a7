"""Entropy-coder benchmark: ncodec's rANS (C++ / CUDA) against constriction and CompressAI.

Synthetic Gaussian-conditional latents, as a hyperprior model produces them: per-symbol scales are
log-normal (mostly 0.1..10), symbols are ``round(N(0, scale))``, and each scale selects one of 64
log-spaced Gaussian tables the way CompressAI's ``GaussianConditional`` does. Every coder codes the
same symbols in the same run; speeds are the best of ``repeat`` runs in million symbols per second.

Run ``python -m ncodec.entropy.bench [--json] [--threads N] [--large] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ncodec.entropy import coder, rans_ref
from ncodec.entropy.tables import gaussian_scale_table, gaussian_tables

DEFAULT_SHAPE = (192, 48, 64)
LARGE_SYMBOLS = 10_000_000
REF_SUBSET = 20_000


def make_latents(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Synthetic latents: ``symbols`` (int32 [n]), ``scales`` (float64 [n]), ``indexes`` (int32 [n])."""
    rng = np.random.default_rng(seed)
    scale_table = gaussian_scale_table()
    scales = np.exp(rng.normal(np.log(0.9), 1.1, n)).clip(scale_table[0], scale_table[-1])
    symbols = np.round(rng.normal(0.0, scales)).astype(np.int32)
    # CompressAI's build_indexes: the first table whose scale is >= the symbol's scale.
    indexes = np.searchsorted(scale_table, scales, side="left").clip(0, scale_table.size - 1).astype(np.int32)
    return {"symbols": symbols, "scales": scales, "indexes": indexes}


def ideal_bits(symbols: np.ndarray, scales: np.ndarray) -> float:
    """Total -log2 p of the symbols under their continuous Gaussian bin probabilities."""
    from scipy.special import ndtr

    y = np.abs(symbols.astype(np.float64))
    # upper-tail form keeps precision far from the mean
    p = ndtr(-(y - 0.5) / scales) - ndtr(-(y + 0.5) / scales)
    return float(-np.log2(np.maximum(p, 1e-300)).sum())


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _entry(n: int, t_enc: float, t_dec: float, nbytes: int, **extra: Any) -> dict[str, Any]:
    d = {
        "encode_msym_s": n / t_enc / 1e6,
        "decode_msym_s": n / t_dec / 1e6,
        "bits_per_symbol": 8.0 * nbytes / n,
    }
    d.update(extra)
    return d


def _bench_ncodec(lat, tables, threads: int | None, repeat: int, backend: str) -> dict[str, Any]:
    sym, idx = lat["symbols"], lat["indexes"]
    t_enc, data = _best(lambda: coder.encode(sym, idx, tables, threads=threads, backend=backend), repeat)
    t_dec, out = _best(lambda: coder.decode(data, idx, tables, threads=threads, backend=backend), repeat)
    if not np.array_equal(out, sym):
        raise AssertionError(f"{backend} round trip failed")
    return _entry(sym.size, t_enc, t_dec, len(data), threads=threads or os.cpu_count())


def _bench_cuda(lat, tables, repeat: int) -> dict[str, Any]:
    import torch

    sym = torch.from_numpy(lat["symbols"]).cuda()
    idx = torch.from_numpy(lat["indexes"]).cuda()

    def enc():
        return coder.encode(sym, idx, tables, backend="cuda")

    def dec():
        out = coder.decode(data, idx, tables, backend="cuda")
        torch.cuda.synchronize()
        return out

    data = enc()
    t_enc, data = _best(enc, repeat)
    t_dec, out = _best(dec, repeat)
    if data != coder.encode(lat["symbols"], lat["indexes"], tables, backend="cpp"):
        raise AssertionError("CUDA bytes differ from the C++ coder's")
    if not torch.equal(out, sym):
        raise AssertionError("CUDA round trip failed")
    return _entry(sym.numel(), t_enc, t_dec, len(data), device=torch.cuda.get_device_name())


def _bench_ref(lat, tables, repeat: int) -> dict[str, Any]:
    n = min(REF_SUBSET, lat["symbols"].size)
    sym, idx = lat["symbols"][:n], lat["indexes"][:n]
    t_enc, data = _best(lambda: rans_ref.encode(sym, idx, tables), 1)
    t_dec, out = _best(lambda: rans_ref.decode(data, idx, tables), 1)
    assert np.array_equal(out, sym)
    return _entry(n, t_enc, t_dec, len(data), subset_symbols=n)


def _bench_constriction_gaussian(lat, repeat: int, queue: bool) -> dict[str, Any]:
    import constriction

    sym = lat["symbols"]
    stds = lat["scales"].astype(np.float64)
    means = np.zeros_like(stds)
    lim = int(np.abs(sym).max()) + 1
    model = constriction.stream.model.QuantizedGaussian(-lim, lim)

    if queue:

        def enc():
            e = constriction.stream.queue.RangeEncoder()
            e.encode(sym, model, means, stds)
            return e.get_compressed()

        def dec():
            return constriction.stream.queue.RangeDecoder(comp).decode(model, means, stds)
    else:

        def enc():
            e = constriction.stream.stack.AnsCoder()
            e.encode_reverse(sym, model, means, stds)
            return e.get_compressed()

        def dec():
            return constriction.stream.stack.AnsCoder(comp).decode(model, means, stds)

    t_enc, comp = _best(enc, repeat)
    t_dec, out = _best(dec, repeat)
    assert np.array_equal(out, sym)
    return _entry(sym.size, t_enc, t_dec, comp.nbytes)


def _bench_constriction_categorical(lat, tables, repeat: int) -> dict[str, Any]:
    """constriction's ANS with ncodec's own quantised tables, one fixed Categorical per table
    (symbols grouped by table; values outside a table's support are clamped to its range)."""
    import constriction

    sym, idx = lat["symbols"], lat["indexes"]
    groups = []
    for t in np.unique(idx):
        sel = np.nonzero(idx == t)[0]
        n_t, off = int(tables.sizes[t]) - 1, int(tables.offsets[t])
        freq = np.diff(tables.cdf[t, : n_t + 1].astype(np.float64))
        model = constriction.stream.model.Categorical(freq / freq.sum(), perfect=False)
        groups.append((model, np.clip(sym[sel] - off, 0, n_t - 1).astype(np.int32)))

    def enc():
        e = constriction.stream.stack.AnsCoder()
        for model, data in reversed(groups):
            e.encode_reverse(data, model)
        return e.get_compressed()

    def dec():
        d = constriction.stream.stack.AnsCoder(comp)
        return [d.decode(model, data.size) for model, data in groups]

    t_enc, comp = _best(enc, repeat)
    t_dec, out = _best(dec, repeat)
    assert all(np.array_equal(o, g[1]) for o, g in zip(out, groups))
    return _entry(sym.size, t_enc, t_dec, comp.nbytes)


def _bench_compressai(lat, repeat: int) -> dict[str, Any]:
    import torch
    from compressai.entropy_models import GaussianConditional

    scale_table = gaussian_scale_table().tolist()
    gc = GaussianConditional(scale_table)
    gc.update_scale_table(scale_table)
    gc.update()
    n = lat["symbols"].size
    y = torch.from_numpy(lat["symbols"].astype(np.float32)).reshape(1, 1, 1, n)
    indexes = torch.from_numpy(lat["indexes"]).reshape(1, 1, 1, n)
    t_enc, strings = _best(lambda: gc.compress(y, indexes), repeat)
    t_dec, out = _best(lambda: gc.decompress(strings, indexes), repeat)
    assert torch.equal(out.reshape(-1).to(torch.int32), torch.from_numpy(lat["symbols"]))
    return _entry(n, t_enc, t_dec, sum(len(s) for s in strings))


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "load_avg_1m": load}


def run_entropy_bench(
    n_symbols: int | None = None,
    threads: int | None = None,
    repeat: int = 3,
    as_json: bool = False,
    *,
    seed: int = 0,
    print_results: bool = True,
) -> dict[str, Any]:
    """Benchmarks every available coder on the same synthetic latents.

    Args:
        n_symbols: symbols to code (default ``192*48*64``).
        threads: threads of the multi-threaded C++ run (default: all cores).
        repeat: timed repetitions; the best is reported.
        as_json: print one JSON object instead of a table.
        seed: random seed of the latents.
        print_results: print the results (table or JSON).

    Returns:
        ``{"coders": {name: {"encode_msym_s", "decode_msym_s", "bits_per_symbol", ...}},
        "ratios": {...}, "ideal_bits_per_symbol", "table_ideal_bits_per_symbol", "n_symbols",
        "machine"}``. Ratios compare the single-threaded C++ coder (``ncodec_cpp_1t``) with the
        others (speed ratios > 1 mean ncodec is faster).
    """
    n = int(n_symbols or np.prod(DEFAULT_SHAPE))
    lat = make_latents(n, seed)
    tables = gaussian_tables(gaussian_scale_table())
    coders: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}

    def attempt(name: str, fn: Callable[[], dict[str, Any]]) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                coders[name] = fn()
        except Exception as e:  # a missing optional coder must not stop the benchmark
            errors[name] = f"{type(e).__name__}: {e}"

    attempt("ncodec_ref_subset", lambda: _bench_ref(lat, tables, repeat))
    if "cpp" in coder.available_backends():
        attempt("ncodec_cpp_1t", lambda: _bench_ncodec(lat, tables, 1, repeat, "cpp"))
        attempt("ncodec_cpp_mt", lambda: _bench_ncodec(lat, tables, threads, repeat, "cpp"))
    if coder.cuda_available():
        attempt("ncodec_cuda", lambda: _bench_cuda(lat, tables, repeat))
    attempt("constriction_ans_gaussian", lambda: _bench_constriction_gaussian(lat, repeat, queue=False))
    attempt("constriction_range_gaussian", lambda: _bench_constriction_gaussian(lat, repeat, queue=True))
    attempt("constriction_ans_categorical", lambda: _bench_constriction_categorical(lat, tables, repeat))
    attempt("compressai_ans", lambda: _bench_compressai(lat, repeat))

    ideal = ideal_bits(lat["symbols"], lat["scales"]) / n
    table_ideal = tables.ideal_bits(lat["symbols"], lat["indexes"]) / n
    for c in coders.values():
        c["overhead_vs_ideal"] = c["bits_per_symbol"] / ideal - 1.0
    ratios: dict[str, float] = {}
    ours = coders.get("ncodec_cpp_1t")
    if ours:
        ours["overhead_vs_table_ideal"] = ours["bits_per_symbol"] / table_ideal - 1.0
        for key, other in (("compressai", "compressai_ans"), ("constriction", "constriction_ans_gaussian")):
            if other in coders:
                for op in ("decode", "encode"):
                    ratios[f"{op}_vs_{key}"] = ours[f"{op}_msym_s"] / coders[other][f"{op}_msym_s"]
        if "ncodec_cpp_mt" in coders:
            mt = coders["ncodec_cpp_mt"]
            ratios["threads_scaling"] = mt["decode_msym_s"] / ours["decode_msym_s"]
            ratios["threads_scaling_encode"] = mt["encode_msym_s"] / ours["encode_msym_s"]
        ratios["size_vs_ideal"] = ours["bits_per_symbol"] / ideal
        ratios["size_vs_table_ideal"] = ours["bits_per_symbol"] / table_ideal
    result: dict[str, Any] = {
        "coders": coders,
        "ratios": ratios,
        "ideal_bits_per_symbol": ideal,
        "table_ideal_bits_per_symbol": table_ideal,
        "n_symbols": n,
        "machine": _machine(),
    }
    if errors:
        result["skipped"] = errors
    if print_results:
        if as_json:
            print(json.dumps(result, indent=2))
        else:
            print(format_table(result))
    return result


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table of :func:`run_entropy_bench`'s result."""
    lines = [
        f"entropy coders on {result['n_symbols']:,} Gaussian-conditional symbols "
        f"({result['machine']['cpu']}, {result['machine']['cores']} cores)",
        f"ideal {result['ideal_bits_per_symbol']:.4f} bits/symbol (continuous Gaussian bins), "
        f"{result['table_ideal_bits_per_symbol']:.4f} under ncodec's 64 quantised tables",
        f"{'coder':32s} {'encode Msym/s':>14s} {'decode Msym/s':>14s} {'bits/sym':>9s} {'vs ideal':>9s}",
    ]
    for name, c in result["coders"].items():
        label = name + (f" ({c['subset_symbols']:,} symbols)" if "subset_symbols" in c else "")
        if "threads" in c:
            label += f" [{c['threads']} thr]"
        lines.append(
            f"{label:32s} {c['encode_msym_s']:14.2f} {c['decode_msym_s']:14.2f} "
            f"{c['bits_per_symbol']:9.4f} {100 * c['overhead_vs_ideal']:+8.2f}%"
        )
    if result["ratios"]:
        lines.append("ratios (ncodec C++ single thread vs ...): " + ", ".join(
            f"{k} {v:.2f}" for k, v in result["ratios"].items()
        ))
    for name, why in result.get("skipped", {}).items():
        lines.append(f"skipped {name}: {why}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ncodec.entropy.bench", description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--threads", type=int, default=None, help="threads of the multi-threaded run (default: all)")
    p.add_argument("--large", action="store_true", help=f"code {LARGE_SYMBOLS:,} symbols")
    p.add_argument("--symbols", type=int, default=None, help="number of symbols")
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args(argv)
    n = a.symbols or (LARGE_SYMBOLS if a.large else None)
    run_entropy_bench(n, a.threads, a.repeat, a.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
