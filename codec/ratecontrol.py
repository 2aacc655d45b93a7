"""Rate control: one search over a monotone predicate, shared by every medium.

A medium's :class:`~ncodec.codec.medium.Target` measures a coded stream (bits per pixel, kbit/s,
PSNR); the measure grows with the medium's rate parameter. :func:`search` bisects the parameter's
domain for the boundary where the measure crosses the goal and returns the stream the target asks
for: the highest rate whose measure stays at most the goal (``at_most``: bpp), the lowest whose
measure reaches it (``at_least``: PSNR), or the nearer of the two around the goal (``nearest``:
kbps). When the goal lies outside what the domain reaches, the nearest end is returned with
``clamped`` set, so callers can say so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class SearchResult(Generic[T]):
    """The chosen stream (``item``), its rate parameter, its measure, whether the goal was out of
    reach (``clamped``) and how many rates were coded (``tries``)."""

    item: T
    rate: float
    value: float
    clamped: bool
    tries: int


def search(
    code_at: Callable[[float], T],
    measure: Callable[[T], float],
    goal: float,
    lo: int,
    hi: int,
    *,
    mode: str = "at_most",
    scale: float = 1.0,
    geometric: bool = False,
    max_tries: int = 16,
    tolerance: float = 0.02,
    progress: Callable[[float, float], None] | None = None,
    guess: int | None = None,
) -> SearchResult[T]:
    """Searches the integer rate domain ``lo..hi`` (the rate is ``k / scale``).

    Args:
        code_at: codes at a rate, returns whatever ``measure`` reads (a stream, an Encoded).
        measure: the targeted quantity of a coded item, non-decreasing in the rate.
        goal: the target value, in ``measure``'s unit.
        mode: ``at_most``, ``at_least`` or ``nearest`` (see the module docstring).
        geometric: bisect in log space (rates spanning decades, such as kbit/s).
        tolerance: ``nearest`` stops early within this relative distance of the goal.
        progress: called with (rate, value) after every try.
        guess: a rate (in ``lo..hi``) expected near the answer, e.g. from a search over cheap
            draft encodes: it is coded first and the bracket grows from it (steps of 10 % of the
            rate, or 0.5 % of the domain, doubling), so a good guess costs a few tries, not a
            bisection of the whole domain.
    """
    if mode not in ("at_most", "at_least", "nearest"):
        raise ValueError(f"unknown search mode {mode!r}")
    tried: dict[int, tuple[T, float]] = {}

    def at(k: int) -> float:
        if k not in tried:
            item = code_at(k / scale)
            tried[k] = (item, float(measure(item)))
            if progress is not None:
                progress(k / scale, tried[k][1])
        return tried[k][1]

    def result(k: int, clamped: bool) -> SearchResult[T]:
        item, value = tried[k]
        return SearchResult(item, k / scale, value, clamped, len(tried))

    def within(k: int) -> bool:
        v = at(k)
        return goal > 0 and v > 0 and abs(v / goal - 1) <= tolerance

    def close(k: int) -> bool:
        return mode == "nearest" and within(k)

    # below: highest k with value <= goal; above: lowest k with value > goal (or >= for at_least)
    def passes(k: int) -> bool:
        v = at(k)
        return v < goal if mode == "at_least" else v <= goal

    if guess is not None:
        bracket = _gallop(min(max(guess, lo), hi), lo, hi, passes, close, geometric)
        if isinstance(bracket, int):
            return result(bracket, False)
        below, above = bracket
        if above is None:  # passes at hi
            return result(hi, not within(hi))
        if below is None:  # fails at lo
            return result(lo, not within(lo))
    else:
        # the goal beyond an end of the domain: that end, clamped unless it is within tolerance
        if not passes(lo):
            return result(lo, not within(lo))
        if passes(hi):
            return result(hi, not within(hi))
        below, above = lo, hi
    while above - below > 1 and len(tried) < max_tries:
        mid = int(round(math.sqrt(below * above))) if geometric and below > 0 else (below + above) // 2
        mid = min(max(mid, below + 1), above - 1)
        if close(mid):
            return result(mid, False)
        if passes(mid):
            below = mid
        else:
            above = mid
    if mode == "at_most":
        return result(below, False)
    if mode == "at_least":
        return result(above, False)
    vb, va = at(below), at(above)
    near = below if abs(math.log(max(vb, 1e-12) / goal)) <= abs(math.log(va / goal)) else above
    return result(near, False)


def _gallop(
    g: int, lo: int, hi: int, passes: Callable[[int], bool], close: Callable[[int], bool], geometric: bool
) -> int | tuple[int | None, int | None]:
    """From ``g``, steps away (doubling) until ``passes`` changes: the rate if one is close enough,
    else ``(below, above)``, with ``above`` None when even ``hi`` passes and ``below`` None when
    even ``lo`` fails."""
    if close(g):
        return g
    up = passes(g)
    k, step = g, 1.0
    while True:
        if geometric and k > 0:
            delta = max(1, int(round(k * (1.1**step - 1))))
        else:
            delta = max(1, int(round((hi - lo) * 0.005 * step)))
        nxt = min(k + delta, hi) if up else max(k - delta, lo)
        if nxt == k:  # at the domain's end
            return (k, None) if up else (None, k)
        if close(nxt):
            return nxt
        if passes(nxt) != up:
            return (k, nxt) if up else (nxt, k)
        k, step = nxt, step * 2
