"""Explanation cost by level: planning time with --explain none, basic and full.

    python -m benchmarks.explain_overhead [--sizes 5 20 50] [--requests 10]

Every measured request is cold: the built-problem cache (`intento.solve`) is emptied before it,
so no level profits from another having built the problem first. The levels run in a rotating
order, request by request, so that none is always first. Prints a Markdown table and writes
benchmarks/results/explain_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.plan_latency import pct
from benchmarks.scenarios import estate
from intento.check import check_sources
from intento.diagnostics import Source
from intento.solve import _PROBLEMS, plan

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[5, 20, 50])
    ap.add_argument("--requests", type=int, default=10)
    ap.add_argument("--out", default="explain_overhead.json", help="file name under benchmarks/results/")
    args = ap.parse_args(argv)
    rows = []
    print("| actions | level | p50 ms | p95 ms | solves added |")
    print("|---:|---|---:|---:|---|")
    for size in args.sizes:
        specs = []
        for seed in range(args.requests):
            e = estate(size, seed=seed)
            specs.append((check_sources([Source(f"e{seed}", e.source)]).spec, e))
        levels = ("none", "basic", "full")
        times: dict[str, list[float]] = {level: [] for level in levels}
        for i, (spec, e) in enumerate(specs):
            for level in levels[i % 3:] + levels[: i % 3]:
                _PROBLEMS.clear()
                t0 = time.perf_counter()
                plan(spec, e.intent, e.given("eu" if i % 2 == 0 else "us"), None, explain=level)
                times[level].append((time.perf_counter() - t0) * 1000)
        for level in levels:
            added = {"none": "-", "basic": "conflict only when infeasible", "full": "one per alternative, per unused action and per hard policy"}[level]
            t = times[level]
            rows.append({"actions": size, "level": level, "p50_ms": pct(t, 0.5), "p95_ms": pct(t, 0.95)})
            print(f"| {size} | {level} | {pct(t, 0.5):.1f} | {pct(t, 0.95):.1f} | {added} |", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
