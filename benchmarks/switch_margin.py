"""Late external events against the switch margin (issue 16, switch times).

    python -m benchmarks.switch_margin            # 40 settlements, side by side
    python -m benchmarks.switch_margin --quick    # 12

The settlement example under the fault-schedule table's "late events" worlds (the same generator
and seed: the bank's file lands on time, late or never, late and never each with probability
0.2; every step fails 1% of the time and its latency spreads lognormally, sigma 0.2). intento
with switch margins from 0 to 1 (`--switch-margin`: how much room the switch time leaves besides
the route around the file, as a share of that route's latency), next to `static` and
`static+fallback`, each on the same requests in the same worlds.

Figures per strategy: success, deadline misses (among runs that finished, late or not, and runs
that gave up past the deadline), mean cost of the successful runs, and how many runs fetched the
file by hand. Nothing here asserts timings or outcomes; tests assert correctness.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
MARGINS = (0.0, 0.2, 0.5, 1.0)
BASELINES = ("static", "static+fallback")


def run(scenarios: int, margins=MARGINS, seed: int = 1, rate: float = 0.2) -> dict:
    from benchmarks import adaptivity, faults
    from benchmarks.baselines import Request, run_strategy
    from benchmarks.metrics import measure
    from intento.execute import Executor, SimEnvironment, Store
    from intento.solve import plan

    rng = random.Random(f"{seed}/late events")  # as `adaptivity.run_faults`
    strategies = list(BASELINES) + [f"intento, margin {m:g}" for m in margins]
    per: dict[str, list] = {s: [] for s in strategies}
    with tempfile.TemporaryDirectory() as d:
        for i, (spec, intent, given) in enumerate(adaptivity._settlements(scenarios, rng)):
            healthy = plan(spec, intent, given, None, explain="none")
            scenario, _ = faults.schedule("late events", spec, healthy.latency_ms or 1, rate, rng)
            rid = f"run-late events-{i}"
            for s in strategies:
                store = Store(Path(d) / f"{i}-{s}.db")
                if s in BASELINES:
                    rid_s = run_strategy(s, Request(spec, intent, given, rid), scenario, store)
                else:
                    margin = float(s.rsplit(" ", 1)[1])
                    ex = Executor(spec, store, SimEnvironment(scenario), new_id=lambda: rid, time_limit_s=5.0, switch_margin=margin)
                    rid_s = ex.start(intent, given, key=f"{rid}/{s}")
                    ex.drive(rid_s)
                m = measure(store, rid_s, s, spec, intent, given)
                fetched = any(e["type"] == "step_succeeded" and e["data"].get("action") == "fetch_file_manually" for e in store.events(rid_s))
                per[s].append((m, fetched))
                store.close()
    return {s: _summary(rows) for s, rows in per.items()}


def _summary(rows: list) -> dict:
    ms = [m for m, _ in rows]
    ok = [m for m in ms if m.success]
    return {
        "runs": len(ms),
        "success": round(len(ok) / len(ms), 4),
        "deadline_misses": sum(1 for m in ms if m.deadline_missed),
        "mean_cost": round(float(statistics.mean(m.cost for m in ok)), 2) if ok else None,
        "fetched_by_hand": sum(1 for _, f in rows if f),
    }


def table(rows: dict) -> list[str]:
    out = ["| strategy | runs | success | deadline misses | mean cost | fetched by hand |", "|---|---:|---:|---:|---:|---:|"]
    for s, x in rows.items():
        out.append(f"| {s} | {x['runs']} | {x['success']:.0%} | {x['deadline_misses']} | {x['mean_cost']} | {x['fetched_by_hand']} |")
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.switch_margin", description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenarios", type=int, default=40, help="settlements (default 40)")
    ap.add_argument("--quick", action="store_true", help="12 settlements")
    args = ap.parse_args(argv)
    n = 12 if args.quick else args.scenarios
    t0 = time.perf_counter()
    rows = run(n)
    print("\n".join(table(rows)))
    RESULTS.mkdir(exist_ok=True)
    out = {"machine": f"{platform.machine()}, Python {platform.python_version()}", "scenarios": n, "margins": list(MARGINS), "rows": rows}
    (RESULTS / "switch_margin.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS / 'switch_margin.json'} ({time.perf_counter() - t0:.1f} s)")
    return out


if __name__ == "__main__":
    main()
