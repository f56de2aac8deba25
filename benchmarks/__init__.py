"""Runnable benchmarks (they print tables; nothing here is a test)."""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager


def cpu_time(fn) -> tuple[float, object]:
    """(CPU seconds of this process spent in ``fn()``, what it returned)."""
    t = time.process_time()
    out = fn()
    return time.process_time() - t, out


def median_wall(fn, repeat: int, warmup: bool = True) -> float:
    """The median wall time of ``repeat`` calls of ``fn()``, after one call not counted (unless
    ``warmup`` is false)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@contextmanager
def planning_timed():
    """Within the block, the executor's planning calls are timed: yields a one-item list holding
    the seconds spent planning so far, so a measure of the executor can leave planning out."""
    import intento.execute.executor as ex_mod

    spent = [0.0]
    original = ex_mod.plan_problem

    def timed(*a, **k):
        t = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            spent[0] += time.perf_counter() - t

    ex_mod.plan_problem = timed
    try:
        yield spent
    finally:
        ex_mod.plan_problem = original
