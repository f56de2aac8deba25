"""Fleet planning: many intents planned together in one model, sharing provider capacity.

Orders (EU and US, small and large) are planned as one batch with `plan_many`; warehouses and
payment providers have capacities, so the fleet competes for them. Reported per fleet size:
wall time, model size, and the gap of the cost stage to CP-SAT's best bound (how far the found
plan could at most be from the optimum), with a 1% relative-gap stop, a time limit, and no
tie-break stages (they change no objective term).
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import intento
from intento.batch import plan_many

ROOT = Path(__file__).resolve().parents[1]


def run(sizes=(1, 10, 100), time_limit_s: float = 10.0, workers: int = 2, seed: int = 0, progress=print) -> list[dict]:
    spec = intento.load(ROOT / "examples" / "order_fulfilment", ROOT / "policies").spec
    rng = random.Random(seed)
    rows = []
    for n in sizes:
        requests = [
            {"intent": "fulfil_order", "given": {"customer.region": rng.choice(["eu", "us"]), "order.amount": rng.choice(["80 USD", "450 USD", "1500 USD"]), "customer.email": f"f{i}@example.com"}}
            for i in range(n)
        ]
        stats: dict = {}
        t0 = time.perf_counter()
        plans = plan_many(spec, requests, time_limit_s=time_limit_s, num_workers=workers, relative_gap=0.01, explain="none", stats_out=stats, tiebreak=False)
        wall = time.perf_counter() - t0
        log = {st["stage"]: st for st in stats.get("stage_log", [])}
        cost = log.get("cost", {})
        obj, bound = cost.get("objective"), cost.get("bound")
        gap = (obj - bound) / obj if obj else (0.0 if obj == 0 else None)
        rows.append(
            {
                "intents": n,
                "planned": sum(p.feasible for p in plans),
                "wall_s": wall,
                "build_s": stats.get("build_s"),
                "variables": stats.get("variables"),
                "gap_vs_bound": gap,
                "cost_stage_status": cost.get("status"),
                "cost_done_s": cost.get("elapsed_s"),
                "stages": {k: {"status": v["status"], "elapsed_s": round(v["elapsed_s"], 3)} for k, v in log.items()},
            }
        )
        shown = "n/a" if gap is None else f"{gap:.2%}"
        progress(f"  fleet of {n}: cost stage done at {cost.get('elapsed_s') or 0:.1f} s (gap {shown}), all stages {wall:.1f} s")
    return rows


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| intents | planned | cost stage done s | cost gap to bound | all stages s | build s | variables | last stage reached |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        gap = "n/a" if r["gap_vs_bound"] is None else f"{r['gap_vs_bound']:.2%}"
        last = list(r["stages"])[-1] + f" ({list(r['stages'].values())[-1]['status']})" if r["stages"] else "-"
        lines.append(f"| {r['intents']} | {r['planned']} | {r['cost_done_s'] or 0:.2f} | {gap} | {r['wall_s']:.2f} | {r['build_s']:.2f} | {r['variables']} | {last} |")
    return lines
