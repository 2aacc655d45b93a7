"""Public rANS coding API: the fast C++ / CUDA coders behind one interface, bit-exact with the reference.

Every backend produces and accepts exactly the bytes of :mod:`ncodec.entropy.rans_ref` (the format's
definition):

* ``"cpp"``: the C++ extension ``ncodec.entropy._rans`` (multi-threaded over segments, interleaved
  lanes within a segment, AVX2 where the CPU has it: the same bytes and symbols either way);
* ``"cuda"``: the CUDA extension ``ncodec.entropy._rans_cuda`` (one GPU thread per lane);
* ``"ref"``: the pure-Python reference (slow; for tests);
* ``"auto"``: ``"cuda"`` for CUDA tensors when the CUDA module and a device are there, else
  ``"cpp"``, else the reference with a :class:`RuntimeWarning`.

Arrays may be numpy arrays or torch tensors. CPU tensors are viewed as numpy without a copy. CUDA
tensors go to the CUDA backend through DLPack and :func:`decode` then returns a tensor on that device.
"""

from __future__ import annotations

import threading
import warnings
import weakref
from typing import Any, Literal

import numpy as np

from ncodec.bitstream.errors import CorruptStreamError, TruncatedStreamError
from ncodec.entropy import rans_ref
from ncodec.entropy.constants import DEFAULT_SEGMENT_SYMBOLS, MAX_LANES, MAX_SYMBOL_MAGNITUDE
from ncodec.entropy.tables import TableSet

try:
    from ncodec.entropy import _rans  # type: ignore[attr-defined]

    _RANS_IMPORT_ERROR: BaseException | None = None
except ImportError as exc:  # pragma: no cover - depends on the build
    _rans = None
    _RANS_IMPORT_ERROR = exc

Backend = Literal["auto", "ref", "cpp", "cuda"]

__all__ = [
    "Backend",
    "available_backends",
    "cuda_available",
    "decode",
    "encode",
    "prepared_tables",
]

_lock = threading.Lock()
_prepared: dict[tuple[str, int, int], tuple[weakref.ref, Any]] = {}
_warned_fallback = False
_cuda_module: Any = None
_cuda_checked = False


# --------------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------------


def _cuda() -> Any:
    """The CUDA module if it imports and sees a device, else ``None`` (checked once)."""
    global _cuda_module, _cuda_checked
    if not _cuda_checked:
        with _lock:
            if not _cuda_checked:
                try:
                    from ncodec.entropy import _rans_cuda  # type: ignore[attr-defined]

                    _cuda_module = _rans_cuda if _rans_cuda.device_count() > 0 else None
                except ImportError:
                    _cuda_module = None
                _cuda_checked = True
    return _cuda_module


def cuda_available() -> bool:
    """Whether the CUDA backend can run here (module built and a CUDA device present)."""
    return _cuda() is not None


def available_backends() -> list[str]:
    """The backends usable on this machine, fastest first."""
    out = []
    if cuda_available():
        out.append("cuda")
    if _rans is not None:
        out.append("cpp")
    out.append("ref")
    return out


def _require_cpp() -> Any:
    if _rans is None:
        raise ImportError(
            "the C++ rANS extension ncodec.entropy._rans is not built; reinstall ncodec "
            f"(pip install -e .) with a C++17 compiler ({_RANS_IMPORT_ERROR})"
        )
    return _rans


def _require_cuda() -> Any:
    mod = _cuda()
    if mod is None:
        raise RuntimeError(
            "the CUDA rANS backend is unavailable: ncodec.entropy._rans_cuda is not built or no CUDA "
            "device is present"
        )
    return mod


def _resolve(backend: str, on_cuda: bool) -> str:
    global _warned_fallback
    if backend not in ("auto", "ref", "cpp", "cuda"):
        raise ValueError(f"unknown backend {backend!r}; use 'auto', 'ref', 'cpp' or 'cuda'")
    if backend != "auto":
        return backend
    if on_cuda and cuda_available():
        return "cuda"
    if _rans is not None:
        return "cpp"
    if not _warned_fallback:
        warnings.warn(
            "ncodec.entropy._rans is not built: falling back to the (very slow) Python reference coder",
            RuntimeWarning,
            stacklevel=3,
        )
        _warned_fallback = True
    return "ref"


def prepared_tables(tables: TableSet, backend: Literal["cpp", "cuda"] = "cpp", device: int = 0) -> Any:
    """The backend's prepared form of ``tables``, built once per :class:`TableSet` object (and CUDA
    device) and cached while that object lives (a TableSet's arrays must not change after first use)."""
    key = (backend, id(tables), device if backend == "cuda" else 0)
    hit = _prepared.get(key)
    if hit is not None and hit[0]() is tables:
        return hit[1]
    mod = _require_cpp() if backend == "cpp" else _require_cuda()
    prep = mod.Tables(tables.cdf, tables.sizes, tables.offsets)
    with _lock:
        _prepared[key] = (weakref.ref(tables), prep)
    weakref.finalize(tables, _prepared.pop, key, None)
    return prep


# --------------------------------------------------------------------------------------------------
# Array plumbing
# --------------------------------------------------------------------------------------------------


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def _is_cuda_tensor(x: Any) -> bool:
    return _is_torch(x) and x.device.type == "cuda"


def _as_int32(x: Any, what: str, lo: int, hi: int) -> np.ndarray:
    """Flat, C-contiguous int32 view/copy of ``x``; values outside ``[lo, hi]`` raise ValueError
    (checked before narrowing so wide integers cannot wrap)."""
    if _is_torch(x):
        x = x.detach()
        if x.device.type != "cpu":
            x = x.cpu()
        x = x.numpy()
    a = np.asarray(x)
    if a.dtype != np.int32:
        if a.dtype.kind == "f":
            _check_integral(a, what)
        if a.dtype.kind not in "iub":
            a = a.astype(np.int64)
        if a.size and a.dtype.itemsize >= 4 and a.dtype != np.int32:
            mn, mx = int(a.min()), int(a.max())
            if mn < lo or mx > hi:
                raise ValueError(f"{what} out of range {lo}..{hi}")
        a = a.astype(np.int32)
    return np.ascontiguousarray(a.reshape(-1))


def _check_integral(a: Any, what: str) -> None:
    """Floating-point symbols or indexes must hold whole numbers: truncating 1.5 to 1 would code
    something other than what the caller has (round latents before coding them)."""
    if isinstance(a, np.ndarray):
        bad = ~np.isfinite(a) | (a != np.round(a))
    else:  # a torch tensor
        bad = ~a.isfinite() | (a != a.round())
    if bool(bad.any()):
        raise ValueError(f"{what} values must be whole numbers: got a fractional or non-finite one")


def _threads(threads: int | None) -> int:
    if threads is None:
        return 0
    if threads < 0:
        raise ValueError(f"threads must be >= 0 (0 or None = all cores), got {threads}")
    return int(threads)


# --------------------------------------------------------------------------------------------------
# API
# --------------------------------------------------------------------------------------------------


def encode(
    symbols: Any,
    indexes: Any,
    tables: TableSet,
    *,
    lanes: int = 0,
    segment_symbols: int = DEFAULT_SEGMENT_SYMBOLS,
    threads: int | None = None,
    backend: Backend = "auto",
) -> bytes:
    """Encodes integer symbols, each with the probability table its index selects.

    Args:
        symbols: integer array or tensor, any shape, ``N`` elements; values in ``[-2**30, 2**30]``
            (values outside a table's support are escaped, at a cost of extra bypass bits). A
            floating-point array is taken if it holds whole numbers only (round latents first).
        indexes: integer array or tensor of ``N`` elements, ``0 <= indexes < len(tables)``.
        tables: the probability tables (:class:`~ncodec.entropy.tables.TableSet`).
        lanes: interleaved lanes per segment, ``1..MAX_LANES``; 0 picks them from the estimated
            size (``auto_lanes``), the default.
        segment_symbols: symbols per independently decodable segment (>= 1); segments are the unit
            of multi-threading.
        threads: CPU threads for the C++ backend; ``None`` or 0 = all cores. The bytes do not depend
            on it.
        backend: ``"auto"``, ``"cpp"``, ``"cuda"`` or ``"ref"``.

    Returns:
        The rANS payload (``bytes``), identical for every backend and thread count.

    Raises:
        ValueError: sizes differ, an index or symbol is out of range or not a whole number, or a
            bad parameter.
        ImportError: ``backend="cpp"`` but the extension is not built.
        RuntimeError: ``backend="cuda"`` but no CUDA module or device.
    """
    if not 0 <= lanes <= MAX_LANES:
        raise ValueError(f"lanes must be in 0..{MAX_LANES}, got {lanes}")
    if segment_symbols < 1:
        raise ValueError(f"segment_symbols must be >= 1, got {segment_symbols}")
    on_cuda = _is_cuda_tensor(symbols) or _is_cuda_tensor(indexes)
    which = _resolve(backend, on_cuda)
    if which == "cuda":
        return _encode_cuda(symbols, indexes, tables, lanes, segment_symbols)
    big = MAX_SYMBOL_MAGNITUDE
    sym = _as_int32(symbols, "symbol", -big, big)
    idx = _as_int32(indexes, "table index", 0, len(tables) - 1)
    if which == "ref":
        return rans_ref.encode(sym, idx, tables, lanes=lanes, segment_symbols=segment_symbols)
    mod = _require_cpp()
    return mod.encode(prepared_tables(tables, "cpp"), sym, idx, lanes, segment_symbols, _threads(threads))


def decode(
    data: bytes | bytearray | memoryview | Any,
    indexes: Any,
    tables: TableSet,
    *,
    threads: int | None = None,
    backend: Backend = "auto",
    device: Any = None,
) -> Any:
    """Decodes a payload made by :func:`encode` (any backend) with the same indexes and tables.

    Args:
        data: the rANS payload: bytes-like, or a 1-D uint8 torch tensor. A CUDA tensor stays on
            the device with the CUDA backend (only its head, a few bytes per segment, is read by
            the host); the other backends copy it to the host.
        indexes: integer array or tensor with the table index of every symbol, as given to the
            encoder; its size ``N`` is the number of symbols expected.
        tables: the tables the encoder used.
        threads: CPU threads (C++ backend); ``None`` or 0 = all cores.
        backend: ``"auto"``, ``"cpp"``, ``"cuda"`` or ``"ref"``.
        device: for the CUDA backend, the torch device of the result (default: that of ``indexes``
            when it is a CUDA tensor, else ``"cuda"``).

    Returns:
        The symbols, int32, shape ``(N,)``: a numpy array, or a torch tensor on the CUDA device when
        the CUDA backend decoded (or when ``indexes`` is a CUDA tensor).

    Raises:
        TruncatedStreamError: the payload ends early.
        CorruptStreamError: the payload is inconsistent (sizes, states, words, escaped values).
        ValueError: an index is out of range.
        TypeError: a payload tensor that is not uint8.
    """
    on_cuda = (
        _is_cuda_tensor(indexes)
        or _is_cuda_tensor(data)
        or (device is not None and str(device).startswith("cuda"))
    )
    which = _resolve(backend, on_cuda)
    data = _payload(data, keep_cuda=which == "cuda")
    if which == "cuda":
        return _decode_cuda(data, indexes, tables, device)
    idx = _as_int32(indexes, "table index", 0, len(tables) - 1)
    if which == "ref":
        out = rans_ref.decode(data, idx, tables)
    else:
        mod = _require_cpp()
        try:
            out = mod.decode(prepared_tables(tables, "cpp"), data, idx, _threads(threads))
        except mod.TruncatedError as e:
            raise TruncatedStreamError(str(e)) from None
        except mod.CorruptError as e:
            raise CorruptStreamError(str(e)) from None
    if _is_cuda_tensor(indexes):
        import torch

        return torch.from_numpy(out).to(indexes.device)
    return out


# --------------------------------------------------------------------------------------------------
# CUDA plumbing
# --------------------------------------------------------------------------------------------------


def _payload(data: Any, keep_cuda: bool) -> Any:
    """The payload as bytes, or as a flat contiguous uint8 CUDA tensor when ``keep_cuda``."""
    if isinstance(data, bytes):
        return data
    if _is_torch(data):
        import torch

        if data.dtype != torch.uint8:
            raise TypeError(f"a payload tensor must be uint8, got {data.dtype}")
        data = data.detach().reshape(-1)
        if keep_cuda and data.device.type == "cuda":
            return data.contiguous()
        return data.cpu().numpy().tobytes()
    return bytes(data)


def _cuda_int32(x: Any, device: Any, what: str, lo: int, hi: int) -> Any:
    """``x`` as a flat int32 tensor on ``device``. An int32 CUDA tensor is taken as it is (the
    kernels check every index and symbol); a wider one is range-checked before it is narrowed."""
    import torch

    if not _is_torch(x):
        x = torch.from_numpy(_as_int32(x, what, lo, hi))
    elif x.numel() and not (x.dtype == torch.int32 and x.device.type == "cuda"):
        if x.dtype.is_floating_point:
            _check_integral(x, what)
            x = x.long()
        mn, mx = int(x.min()), int(x.max())
        if mn < lo or mx > hi:
            raise ValueError(f"{what} out of range {lo}..{hi}")
    return x.reshape(-1).to(device=device, dtype=torch.int32).contiguous()


def _encode_cuda(symbols: Any, indexes: Any, tables: TableSet, lanes: int, segment_symbols: int) -> bytes:
    import torch

    mod = _require_cuda()
    dev = next((x.device for x in (symbols, indexes) if _is_cuda_tensor(x)), torch.device("cuda"))
    big = MAX_SYMBOL_MAGNITUDE
    sym = _cuda_int32(symbols, dev, "symbol", -big, big)
    idx = _cuda_int32(indexes, dev, "table index", 0, len(tables) - 1)
    if sym.numel() != idx.numel():
        raise ValueError(f"symbols ({sym.numel()}) and indexes ({idx.numel()}) differ in size")
    with torch.cuda.device(dev):
        stream = torch.cuda.current_stream(dev).cuda_stream
        prep = prepared_tables(tables, "cuda", sym.device.index or 0)
        return mod.encode(prep, sym, idx, lanes, segment_symbols, stream)


def _decode_cuda(data: Any, indexes: Any, tables: TableSet, device: Any) -> Any:
    import torch

    mod = _require_cuda()
    if device is None:
        on = next((x.device for x in (indexes, data) if _is_cuda_tensor(x)), None)
        device = on if on is not None else torch.device("cuda")
    device = torch.device(device)
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    idx = _cuda_int32(indexes, device, "table index", 0, len(tables) - 1)
    out = torch.empty(idx.numel(), dtype=torch.int32, device=device)
    if _is_cuda_tensor(data) and data.device != device:
        data = data.to(device)
    with torch.cuda.device(device):
        stream = torch.cuda.current_stream(device).cuda_stream
        try:
            mod.decode(prepared_tables(tables, "cuda", idx.device.index or 0), data, idx, out, stream)
        except mod.TruncatedError as e:
            raise TruncatedStreamError(str(e)) from None
        except mod.CorruptError as e:
            raise CorruptStreamError(str(e)) from None
    return out
