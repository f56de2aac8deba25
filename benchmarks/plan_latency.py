"""Planner latency: plan and re-plan time percentiles by intent size, split into model building and solving.

    python -m benchmarks.plan_latency [--sizes 5 20 50 200] [--requests 20] [--workers 1]

A re-plan is what the executor asks for mid-run: the first half of the plan's steps (by start)
are done, so their facts hold, and the provider of the next step still to run went down; the
previous plan is the hint.

Prints a Markdown table and writes benchmarks/results/plan_latency.json. Nothing is asserted:
tests assert correctness; this measures speed so later work can drive it down.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

from benchmarks.scenarios import estate
from intento.check import check_sources
from intento.diagnostics import Source
from intento.solve import plan

RESULTS = Path(__file__).resolve().parent / "results"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def replan_state(spec, p) -> dict | None:
    """The observed state after the first half of plan ``p`` ran and the next step's provider went down."""
    steps = sorted(p.steps, key=lambda s: (s.start_ms, s.action))
    done, rest = steps[: len(steps) // 2], steps[len(steps) // 2 :]
    if not rest:
        return None
    facts = sorted({f for s in done for f in spec.actions[s.action].achieves})
    return {"facts": facts, "providers": {rest[0].provider: {"status": "down"}}}


def measure(size: int, requests: int, workers: int, time_limit: float) -> dict:
    build, solve, total, statuses, steps = [], [], [], {}, []
    replan, replan_statuses = [], {}
    for seed in range(requests):
        e = estate(size, seed=seed)
        spec = check_sources([Source(f"estate{size}_{seed}", e.source)]).spec
        region = "eu" if seed % 2 == 0 else "us"
        t0 = time.perf_counter()
        p = plan(spec, e.intent, e.given(region), None, include_timings=True, num_workers=workers, time_limit_s=time_limit, explain="none")
        total.append((time.perf_counter() - t0) * 1000)
        build.append(p.solver.build_ms or 0.0)
        solve.append(p.solver.wall_ms or 0.0)
        statuses[p.status] = statuses.get(p.status, 0) + 1
        steps.append(len(p.steps))
        state = replan_state(spec, p) if p.status in ("optimal", "feasible") else None
        if state is not None:
            t0 = time.perf_counter()
            q = plan(spec, e.intent, e.given(region), state, num_workers=workers, time_limit_s=time_limit, explain="none", hint=p)
            replan.append((time.perf_counter() - t0) * 1000)
            replan_statuses[q.status] = replan_statuses.get(q.status, 0) + 1
    return {
        "actions": size,
        "requests": requests,
        "statuses": statuses,
        "mean_steps": statistics.mean(steps),
        "build_ms": {"p50": pct(build, 0.5), "p95": pct(build, 0.95)},
        "solve_ms": {"p50": pct(solve, 0.5), "p95": pct(solve, 0.95)},
        "total_ms": {"p50": pct(total, 0.5), "p95": pct(total, 0.95), "p99": pct(total, 0.99)},
        "replans": len(replan),
        "replan_statuses": replan_statuses,
        "replan_ms": {"p50": pct(replan, 0.5), "p95": pct(replan, 0.95), "p99": pct(replan, 0.99)} if replan else None,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[5, 20, 50, 200])
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--time-limit", type=float, default=10.0)
    args = ap.parse_args(argv)
    rows = []
    print(f"planner latency ({platform.processor() or platform.machine()}, workers={args.workers})\n")
    print("| actions | requests | statuses | mean steps | build p50 / p95 ms | solve p50 / p95 ms | plan p50 / p95 / p99 ms | re-plans | re-plan p50 / p95 / p99 ms |")
    print("|---:|---:|---|---:|---:|---:|---:|---|---:|")
    for size in args.sizes:
        r = measure(size, args.requests, args.workers, args.time_limit)
        rows.append(r)
        st = ", ".join(f"{k} {v}" for k, v in sorted(r["statuses"].items()))
        rst = ", ".join(f"{k} {v}" for k, v in sorted(r["replan_statuses"].items())) or "none"
        rp = r["replan_ms"]
        rp_txt = f"{rp['p50']:.1f} / {rp['p95']:.1f} / {rp['p99']:.1f}" if rp else "-"
        print(
            f"| {size} | {r['requests']} | {st} | {r['mean_steps']:.1f} | {r['build_ms']['p50']:.1f} / {r['build_ms']['p95']:.1f} | "
            f"{r['solve_ms']['p50']:.1f} / {r['solve_ms']['p95']:.1f} | {r['total_ms']['p50']:.1f} / {r['total_ms']['p95']:.1f} / {r['total_ms']['p99']:.1f} | "
            f"{rst} | {rp_txt} |",
            flush=True,
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "plan_latency.json").write_text(json.dumps({"workers": args.workers, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
