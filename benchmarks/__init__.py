"""Runnable benchmarks (they print tables; nothing here is a test)."""

from __future__ import annotations

import time
from contextlib import contextmanager


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
