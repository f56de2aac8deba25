"""What an infeasible answer costs: the minimal conflict against the proof of infeasibility alone,
and full explanations against basic ones.

    python -m benchmarks.conflicts [--sizes 20 50 200] [--requests 6] [--quick]

Cases (`infeasible_estate`): a generated estate (benchmarks/scenarios.py) with 20 to 27 policies:
its own five, then `forbid provider` rules for random providers, among them every provider of one
goal action (so no plan exists, and the minimal conflict is the goal with those rules), or, for
every third case, a cost ceiling below the cheapest plan (the conflict is the goal with the
ceiling, and whatever else the cheapest way around needs).

Every figure is CPU time of this process (`time.process_time`), measured side by side in one run:
for each case, the levels run in a rotating order on one prepared problem, so no level is always first
and cold. Ratios are per case, then their median and worst. Nothing is asserted here;
tests/planner/test_conflict_search.py asserts that the conflicts are minimal.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks import cpu_time
from benchmarks.scenarios import estate
from intento.check import check_sources
from intento.diagnostics import Source
from intento.solve import plan_problem, prepare

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Case:
    source: str
    intent: str
    region: str
    policies: int


def infeasible_estate(n_actions: int, seed: int) -> Case:
    """An estate that admits no plan, with 20 to 27 policies."""
    e = estate(n_actions, seed=seed)
    rng = random.Random(seed * 7919 + n_actions)
    lines = e.source.splitlines()
    last = next(ln for ln in lines if ln.startswith(f"action a{n_actions - 1} "))
    doomed = sorted(set(re.findall(r"via (prov\d+) \{", last)))
    base = sum(1 for ln in lines if ln.startswith("policy "))
    total = rng.randint(20, 27)
    extra: list[str] = []
    providers = [f"prov{i}" for i in range(e.providers)]
    if seed % 3 == 2:
        extra.append("policy tight { limit cost <= 0.01 USD }")
    else:
        extra.extend(f"policy no_{p} {{ forbid provider {p} }}" for p in doomed)
    # Sparse bans elsewhere: each bans one provider for one action only, so that together they
    # do not make the request infeasible on their own.
    pairs = sorted({(p, a) for p in providers for a in range(n_actions - 1)})
    rng.shuffle(pairs)
    for p, act in pairs[: max(0, total - base - len(extra))]:
        extra.append(f"policy ban_{p}_a{act} {{ forbid via [a{act}] where provider == \"{p}\" }}")
    return Case("\n".join(lines + extra) + "\n", e.intent, "eu" if seed % 2 else "us", base + len(extra))


def measure(size: int, requests: int, time_limit: float) -> dict:
    ratios, full_ratios, worst_over, rows = [], [], 0.0, []
    for seed in range(requests):
        case = infeasible_estate(size, seed)
        spec = check_sources([Source(f"c{seed}", case.source)]).spec
        problem = prepare(spec, case.intent, {"request.region": case.region}, None)
        levels = ["none", "basic"]
        order = levels[seed % 2:] + levels[: seed % 2]
        cpu: dict[str, float] = {}
        wall: dict[str, float] = {}
        for level in order:
            t0 = time.perf_counter()
            cpu[level], p = cpu_time(lambda: plan_problem(problem, explain=level, time_limit_s=time_limit))
            wall[level] = time.perf_counter() - t0
            if level == "basic":
                conflict = len(p.explanation.conflict) if p.explanation else 0
        worst_over = max(worst_over, wall["basic"] - time_limit)
        ratio = cpu["basic"] / max(cpu["none"], 1e-6)
        ratios.append(ratio)
        rows.append({"seed": seed, "policies": case.policies, "none_s": cpu["none"], "basic_s": cpu["basic"], "ratio": ratio, "conflict": conflict, "basic_wall_s": wall["basic"]})
    return {
        "actions": size,
        "cases": requests,
        "median_ratio": statistics.median(ratios),
        "worst_ratio": max(ratios),
        "median_none_s": statistics.median(r["none_s"] for r in rows),
        "median_basic_s": statistics.median(r["basic_s"] for r in rows),
        "past_limit_s": worst_over,
        "rows": rows,
        "full": full_ratios,
    }


def measure_full(size: int, requests: int, time_limit: float) -> dict:
    """`explain=full` against `basic` on feasible generated estates, side by side."""
    ratios = []
    for seed in range(requests):
        e = estate(size, seed=seed)
        spec = check_sources([Source(f"f{seed}", e.source)]).spec
        problem = prepare(spec, e.intent, e.given("eu" if seed % 2 == 0 else "us"), None)
        levels = ["basic", "full"]
        order = levels[seed % 2:] + levels[: seed % 2]
        cpu = {}
        for level in order:
            cpu[level], _ = cpu_time(lambda: plan_problem(problem, explain=level, time_limit_s=time_limit))
        ratios.append(cpu["full"] / max(cpu["basic"], 1e-6))
    return {"actions": size, "cases": requests, "median_ratio": statistics.median(ratios), "worst_ratio": max(ratios)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20, 50, 200])
    ap.add_argument("--requests", type=int, default=6)
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--quick", action="store_true", help="sizes 20 and 50, 3 cases each")
    ap.add_argument("--out", default="conflicts.json", help="file name under benchmarks/results/")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.requests, args.out = [20, 50], 3, "conflicts_quick.json"
    out = {"conflicts": [], "full": []}
    print("| actions | cases | proof of infeasibility (median CPU s) | minimal conflict (median CPU s) | conflict / proof, median | worst | most past the limit (s) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        r = measure(size, args.requests, args.time_limit)
        out["conflicts"].append(r)
        print(
            f"| {size} | {r['cases']} | {r['median_none_s']:.3f} | {r['median_basic_s']:.3f} | {r['median_ratio']:.2f}x | {r['worst_ratio']:.2f}x | {max(r['past_limit_s'], 0):.2f} |",
            flush=True,
        )
    print()
    print("| actions | cases | full / basic, median | worst |")
    print("|---:|---:|---:|---:|")
    for size in [s for s in args.sizes if s <= 50]:
        r = measure_full(size, args.requests, args.time_limit)
        out["full"].append(r)
        print(f"| {size} | {r['cases']} | {r['median_ratio']:.2f}x | {r['worst_ratio']:.2f}x |", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
