"""Fleet planning: many intents planned together, sharing provider capacity.

Orders (EU and US, small and large) are planned as one batch with `plan_many`; warehouses and
payment providers have capacities, so the fleet competes for them. Reported per fleet size: wall
time, how many distinct request shapes were solved alone, model size, and for each objective
stage (cost, then latency) the gap between the plan found and the best lower bound known (the
sum of the requests' optima alone, or CP-SAT's bound on the joint model, whichever is higher),
with a 1% relative-gap stop, a time limit, and no tie-break stages (they change no objective
term).
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
        gaps = {name: _gap(log.get(name, {})) for name in ("cost", "latency")}
        cost = log.get("cost", {})
        rows.append(
            {
                "intents": n,
                "distinct": stats.get("distinct"),
                "planned": sum(p.feasible for p in plans),
                "wall_s": wall,
                "build_s": stats.get("build_s"),
                "variables": stats.get("variables"),
                "gap_vs_bound": gaps["cost"],
                "latency_gap_vs_bound": gaps["latency"],
                "cost_stage_status": cost.get("status"),
                "cost_done_s": cost.get("elapsed_s"),
                "stages": {k: {"status": v["status"], "by": v.get("by"), "elapsed_s": round(v["elapsed_s"], 3)} for k, v in log.items()},
            }
        )
        gap = gaps["cost"]
        shown = "n/a" if gap is None else f"{gap:.2%}"
        lat = "n/a" if gaps["latency"] is None else f"{gaps['latency']:.2%}"
        progress(f"  fleet of {n}: cost stage done at {cost.get('elapsed_s') or 0:.1f} s (gap {shown}), all stages {wall:.1f} s (latency gap {lat})")
    return rows


def _gap(stage: dict) -> float | None:
    """(found - bound) / found for a minimised stage; None when the stage found nothing."""
    obj, bound = stage.get("objective"), stage.get("bound")
    if obj is None or bound is None:
        return None
    return (obj - bound) / obj if obj else 0.0


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| intents | shapes solved alone | planned | cost stage done s | cost gap to bound | latency gap to bound | all stages s | variables | last stage |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        gap = "n/a" if r["gap_vs_bound"] is None else f"{r['gap_vs_bound']:.2%}"
        lgap = "n/a" if r.get("latency_gap_vs_bound") is None else f"{r['latency_gap_vs_bound']:.2%}"
        stages = r["stages"]
        last = f"{list(stages)[-1]} ({list(stages.values())[-1]['status']}, {list(stages.values())[-1]['by']})" if stages else "-"
        lines.append(f"| {r['intents']} | {r['distinct']} | {r['planned']} | {r['cost_done_s'] or 0:.2f} | {gap} | {lgap} | {r['wall_s']:.2f} | {r['variables']} | {last} |")
    return lines
