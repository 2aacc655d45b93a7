"""Entropy-coder benchmark: ncodec's rANS (C++ / CUDA) against constriction and CompressAI.

Synthetic Gaussian-conditional latents, as a hyperprior model produces them: per-symbol scales are
log-normal (mostly 0.1..10), symbols are ``round(N(0, scale))``, and each scale selects one of 64
log-spaced Gaussian tables the way CompressAI's ``GaussianConditional`` does. Every coder codes the
same symbols in the same run; speeds are in million symbols per second, the best of ``repeat``
rounds. Like ``timeit``, a round makes one untimed warm-up call, then calls a coder back to back
until it has run ``MIN_SAMPLE_S`` seconds and divides by the number of calls, so a 2 ms call is not
timed once, cold, after a peer's 100 ms call has evicted its caches: every coder is measured in
steady state.

Run ``python -m ncodec.entropy.bench [--json] [--threads N] [--large] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ncodec.entropy import coder, rans_ref
from ncodec.entropy import constants as coder_constants
from ncodec.entropy.tables import gaussian_scale_table, gaussian_tables, scale_indexes

DEFAULT_SHAPE = (192, 48, 64)
LARGE_SYMBOLS = 10_000_000
REF_SUBSET = 20_000
MIN_SAMPLE_S = 0.1  # shortest timed sample; fast calls repeat until it is reached


def make_latents(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Synthetic latents: ``symbols`` (int32 [n]), ``scales`` (float64 [n]), ``indexes`` (int32 [n])."""
    rng = np.random.default_rng(seed)
    scale_table = gaussian_scale_table()
    scales = np.exp(rng.normal(np.log(0.9), 1.1, n)).clip(scale_table[0], scale_table[-1])
    symbols = np.round(rng.normal(0.0, scales)).astype(np.int32)
    indexes = scale_indexes(scales, scale_table)  # as CompressAI's build_indexes
    return {"symbols": symbols, "scales": scales, "indexes": indexes}


def ideal_bits(symbols: np.ndarray, scales: np.ndarray) -> float:
    """Total -log2 p of the symbols under their continuous Gaussian bin probabilities."""
    from scipy.special import ndtr

    y = np.abs(symbols.astype(np.float64))
    # upper-tail form keeps precision far from the mean
    p = ndtr(-(y - 0.5) / scales) - ndtr(-(y + 0.5) / scales)
    return float(-np.log2(np.maximum(p, 1e-300)).sum())


@dataclass
class _Coder:
    """One coder under test: ``enc()`` returns a payload, ``dec(payload)`` the decoded symbols."""

    n: int
    enc: Callable[[], Any]
    dec: Callable[[Any], Any]
    check: Callable[[Any], bool]
    size: Callable[[Any], int]
    extra: dict[str, Any] = field(default_factory=dict)
    rounds: int | None = None  # None: every round
    stage: Callable[[Any], Any] | None = None  # payload -> decoder input, untimed (e.g. onto the GPU)

    def dec_input(self, payload: Any) -> Any:
        return self.stage(payload) if self.stage else payload


def _setup_ncodec(lat, tables, threads: int | None, backend: str, lanes: int = 0) -> _Coder:
    sym, idx = lat["symbols"], lat["indexes"]
    return _Coder(
        n=sym.size,
        enc=lambda: coder.encode(sym, idx, tables, threads=threads, backend=backend, lanes=lanes),
        dec=lambda data: coder.decode(data, idx, tables, threads=threads, backend=backend),
        check=lambda out: np.array_equal(out, sym),
        size=len,
        extra={"threads": threads or os.cpu_count()},
    )


def _setup_cuda(lat, tables, lanes: int = 0, resident: bool = False) -> _Coder:
    """The CUDA coder on device symbols and indexes; the payload is host bytes, or with
    ``resident`` is moved to the GPU before decoding (untimed), as when it was read or made there."""
    import torch

    sym = torch.from_numpy(lat["symbols"]).cuda()
    idx = torch.from_numpy(lat["indexes"]).cuda()
    cpu_bytes = coder.encode(lat["symbols"], lat["indexes"], tables, backend="cpp", lanes=lanes)

    def dec(data):
        out = coder.decode(data, idx, tables, backend="cuda")
        torch.cuda.synchronize()
        return out

    def check(out) -> bool:
        if coder.encode(sym, idx, tables, backend="cuda", lanes=lanes) != cpu_bytes:
            raise AssertionError("CUDA bytes differ from the C++ coder's")
        return bool(torch.equal(out, sym))

    def to_device(data: bytes):
        return torch.frombuffer(bytearray(data), dtype=torch.uint8).cuda()

    return _Coder(
        n=sym.numel(),
        enc=lambda: coder.encode(sym, idx, tables, backend="cuda", lanes=lanes),
        dec=dec,
        check=check,
        size=len,
        extra={"device": torch.cuda.get_device_name(), "payload": "device" if resident else "host"},
        stage=to_device if resident else None,
    )


def _setup_ref(lat, tables) -> _Coder:
    n = min(REF_SUBSET, lat["symbols"].size)
    sym, idx = lat["symbols"][:n], lat["indexes"][:n]
    return _Coder(
        n=n,
        enc=lambda: rans_ref.encode(sym, idx, tables),
        dec=lambda data: rans_ref.decode(data, idx, tables),
        check=lambda out: np.array_equal(out, sym),
        size=len,
        extra={"subset_symbols": n},
        rounds=1,
    )


def _setup_constriction_gaussian(lat, queue: bool) -> _Coder:
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

        def dec(comp):
            return constriction.stream.queue.RangeDecoder(comp).decode(model, means, stds)
    else:

        def enc():
            e = constriction.stream.stack.AnsCoder()
            e.encode_reverse(sym, model, means, stds)
            return e.get_compressed()

        def dec(comp):
            return constriction.stream.stack.AnsCoder(comp).decode(model, means, stds)

    return _Coder(sym.size, enc, dec, lambda out: np.array_equal(out, sym), lambda c: c.nbytes)


def _setup_constriction_categorical(lat, tables) -> _Coder:
    """constriction's ANS with ncodec's own quantised tables, one fixed Categorical per table
    (symbols grouped by table; values outside a table's support are clamped to it)."""
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

    def dec(comp):
        d = constriction.stream.stack.AnsCoder(comp)
        return [d.decode(model, data.size) for model, data in groups]

    def check(out) -> bool:
        return all(np.array_equal(o, g[1]) for o, g in zip(out, groups))

    return _Coder(sym.size, enc, dec, check, lambda c: c.nbytes, {"grouped_by_table": True})


def _setup_compressai(lat) -> _Coder:
    import torch
    from compressai.entropy_models import GaussianConditional

    scale_table = gaussian_scale_table().tolist()
    gc = GaussianConditional(scale_table)
    gc.update_scale_table(scale_table)
    gc.update()
    n = lat["symbols"].size
    y = torch.from_numpy(lat["symbols"].astype(np.float32)).reshape(1, 1, 1, n)
    indexes = torch.from_numpy(lat["indexes"]).reshape(1, 1, 1, n)
    ref = torch.from_numpy(lat["symbols"])
    return _Coder(
        n=n,
        enc=lambda: gc.compress(y, indexes),
        dec=lambda strings: gc.decompress(strings, indexes),
        check=lambda out: bool(torch.equal(out.reshape(-1).to(torch.int32), ref)),
        size=lambda strings: sum(len(s) for s in strings),
    )


def _per_call(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds per call of ``fn``, after one untimed warm-up call, called back to back until
    ``MIN_SAMPLE_S`` has passed; and its last result."""
    fn()
    calls, t0 = 0, time.perf_counter()
    while True:
        out = fn()
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= MIN_SAMPLE_S:
            return elapsed / calls, out


def _run_coders(
    setups: dict[str, Callable[[], _Coder]], repeat: int, errors: dict[str, str]
) -> dict[str, Any]:
    """Times every coder round-robin (so load changes on a shared machine hit all of them alike);
    reports the best encode and decode time of each."""
    coders: dict[str, _Coder] = {}
    payloads: dict[str, Any] = {}
    for name, setup in setups.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                c = setup()
                payloads[name] = c.enc()
                if not c.check(c.dec(c.dec_input(payloads[name]))):
                    raise AssertionError(f"{name}: round trip failed")
            coders[name] = c
        except Exception as e:  # a missing optional coder must not stop the benchmark
            errors[name] = f"{type(e).__name__}: {e}"
    best = {name: [float("inf"), float("inf")] for name in coders}
    for r in range(max(1, repeat)):
        for name, c in coders.items():
            if c.rounds is not None and r >= c.rounds:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t_enc, payloads[name] = _per_call(c.enc)
                staged = c.dec_input(payloads[name])
                t_dec, _ = _per_call(functools.partial(c.dec, staged))
            best[name][0] = min(best[name][0], t_enc)
            best[name][1] = min(best[name][1], t_dec)
    out = {}
    for name, c in coders.items():
        t_enc, t_dec = best[name]
        out[name] = {
            "encode_msym_s": c.n / t_enc / 1e6,
            "decode_msym_s": c.n / t_dec / 1e6,
            "bits_per_symbol": 8.0 * c.size(payloads[name]) / c.n,
            **c.extra,
        }
    return out


def _peer_ratios(coders: dict[str, Any], peers: dict[str, str]) -> dict[str, float]:
    """``{op}_vs_{key}``: ncodec's single-threaded C++ speed over peer ``peers[key]``'s, for encode and
    decode, for the peers that ran (none without ``ncodec_cpp_1t``)."""
    ours = coders.get("ncodec_cpp_1t")
    ratios: dict[str, float] = {}
    for key, other in peers.items():
        if ours and other in coders:
            for op in ("decode", "encode"):
                ratios[f"{op}_vs_{key}"] = ours[f"{op}_msym_s"] / coders[other][f"{op}_msym_s"]
    return ratios


def compare_on_symbols(
    symbols: np.ndarray, indexes: np.ndarray, tables: Any, repeat: int = 3
) -> dict[str, Any]:
    """ncodec's C++ coder on one thread and CompressAI's ``ans`` on the same symbols, timed alike.

    For latents of a real model (``ncodec bench image`` passes the image model's): ``indexes``
    select ``tables`` for ncodec and, for CompressAI, its own tables of the same scales, so they
    must index :func:`~ncodec.entropy.tables.gaussian_scale_table` as the image model's do.

    Returns:
        ``{"coders": {name: {"encode_msym_s", "decode_msym_s", "bits_per_symbol"}}, "ratios":
        {"decode_vs_compressai", "encode_vs_compressai"}}`` (a coder that cannot run is left out,
        with its reason under ``"skipped"``).
    """
    lat = {
        "symbols": np.ascontiguousarray(symbols, np.int32).reshape(-1),
        "indexes": np.ascontiguousarray(indexes, np.int32).reshape(-1),
    }
    errors: dict[str, str] = {}
    coders = _run_coders(
        {
            "ncodec_cpp_1t": lambda: _setup_ncodec(lat, tables, 1, "cpp"),
            "compressai_ans": lambda: _setup_compressai(lat),
        },
        repeat,
        errors,
    )
    ratios = _peer_ratios(coders, {"compressai": "compressai_ans"})
    return {"coders": coders, "ratios": ratios, **({"skipped": errors} if errors else {})}


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
    large: bool = False,
    seed: int = 0,
    print_results: bool = True,
    only: list[str] | None = None,
    lanes: int = 0,
) -> dict[str, Any]:
    """Benchmarks every available coder on the same synthetic latents.

    Args:
        n_symbols: symbols to code (default ``192*48*64``, or 10**7 with ``large``).
        threads: threads of the multi-threaded C++ run (default: all cores).
        repeat: timed repetitions; the best is reported.
        as_json: print one JSON object instead of a table.
        large: code ``LARGE_SYMBOLS`` (10**7) symbols unless ``n_symbols`` is given.
        seed: random seed of the latents.
        print_results: print the results (table or JSON).
        only: run just these coders (names as in the result), e.g. the fast ones on 10**8 symbols.
        lanes: lanes per segment of ncodec's coders (0: the format's auto policy); more lanes give
            the GPU decoder more threads at a small size cost.

    Returns:
        ``{"coders": {name: {"encode_msym_s", "decode_msym_s", "bits_per_symbol", ...}},
        "ratios": {...}, "ideal_bits_per_symbol", "table_ideal_bits_per_symbol", "n_symbols",
        "machine"}``. Ratios compare the single-threaded C++ coder (``ncodec_cpp_1t``) with the
        others (speed ratios > 1 mean ncodec is faster).
    """
    n = int(n_symbols or (LARGE_SYMBOLS if large else np.prod(DEFAULT_SHAPE)))
    lat = make_latents(n, seed)
    tables = gaussian_tables(gaussian_scale_table())
    errors: dict[str, str] = {}
    setups: dict[str, Callable[[], _Coder]] = {"ncodec_ref_subset": lambda: _setup_ref(lat, tables)}
    if "cpp" in coder.available_backends():
        setups["ncodec_cpp_1t"] = lambda: _setup_ncodec(lat, tables, 1, "cpp", lanes)
        setups["ncodec_cpp_mt"] = lambda: _setup_ncodec(lat, tables, threads, "cpp", lanes)
    if coder.cuda_available():
        setups["ncodec_cuda"] = lambda: _setup_cuda(lat, tables, lanes)
        setups["ncodec_cuda_resident"] = lambda: _setup_cuda(lat, tables, lanes, resident=True)
    setups["constriction_ans_gaussian"] = lambda: _setup_constriction_gaussian(lat, queue=False)
    setups["constriction_range_gaussian"] = lambda: _setup_constriction_gaussian(lat, queue=True)
    setups["constriction_ans_categorical"] = lambda: _setup_constriction_categorical(lat, tables)
    setups["compressai_ans"] = lambda: _setup_compressai(lat)
    if only is not None:
        unknown = sorted(set(only) - set(setups))
        if unknown:
            raise ValueError(f"unknown or unavailable coders {unknown}; choose from {sorted(setups)}")
        setups = {k: v for k, v in setups.items() if k in only}
    coders = _run_coders(setups, repeat, errors)

    n_segments = -(-n // coder_constants.DEFAULT_SEGMENT_SYMBOLS)
    ideal = ideal_bits(lat["symbols"], lat["scales"]) / n
    table_ideal = tables.ideal_bits(lat["symbols"], lat["indexes"]) / n
    for c in coders.values():
        c["overhead_vs_ideal"] = c["bits_per_symbol"] / ideal - 1.0
    ratios: dict[str, float] = {}
    ours = coders.get("ncodec_cpp_1t")
    if ours:
        ours["overhead_vs_table_ideal"] = ours["bits_per_symbol"] / table_ideal - 1.0
        peers = {"compressai": "compressai_ans", "constriction": "constriction_ans_gaussian"}
        ratios.update(_peer_ratios(coders, peers))
        if "ncodec_cpp_mt" in coders:
            mt = coders["ncodec_cpp_mt"]
            ratios["threads_scaling"] = mt["decode_msym_s"] / ours["decode_msym_s"]
            ratios["threads_scaling_encode"] = mt["encode_msym_s"] / ours["encode_msym_s"]
            # Segments are the unit of parallelism: the busiest thread codes ceil(segments / threads)
            # of them (9 segments on 2 cores: 5, so at most 1.8x).
            workers = min(mt["threads"], os.cpu_count() or 1)
            ratios["threads_scaling_bound"] = n_segments / -(-n_segments // workers)
        ratios["size_vs_ideal"] = ours["bits_per_symbol"] / ideal
        ratios["size_vs_table_ideal"] = ours["bits_per_symbol"] / table_ideal
    result: dict[str, Any] = {
        "coders": coders,
        "ratios": ratios,
        "ideal_bits_per_symbol": ideal,
        "table_ideal_bits_per_symbol": table_ideal,
        "n_symbols": n,
        "n_segments": n_segments,
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
        f"entropy coders on {result['n_symbols']:,} Gaussian-conditional symbols in "
        f"{result['n_segments']:,} segments ({result['machine']['cpu']}, {result['machine']['cores']} cores)",
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
        lines.append(
            "ratios (ncodec C++ single thread vs ...): "
            + ", ".join(f"{k} {v:.2f}" for k, v in result["ratios"].items())
        )
    for name, why in result.get("skipped", {}).items():
        lines.append(f"skipped {name}: {why}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ncodec.entropy.bench", description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--threads", type=int, default=None, help="threads of the multi-threaded run (default: all)"
    )
    p.add_argument("--large", action="store_true", help=f"code {LARGE_SYMBOLS:,} symbols")
    p.add_argument("--symbols", type=int, default=None, help="number of symbols")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--only", default=None, help="comma-separated coder names to run (default: all)")
    p.add_argument("--lanes", type=int, default=0, help="lanes per segment for ncodec (0: auto)")
    a = p.parse_args(argv)
    only = a.only.split(",") if a.only else None
    run_entropy_bench(a.symbols, a.threads, a.repeat, a.json, large=a.large, only=only, lanes=a.lanes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
