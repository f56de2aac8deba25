"""Drift: providers that no longer do what the project declares (issue 16, learned figures).

    python -m benchmarks.drift             # 40 orders in a row, side by side
    python -m benchmarks.drift --quick     # 12 orders

The order example, US orders one after another in one store, in a world where two providers
drifted from their declarations: stripe fails 35% of its charges (declared reliability 0.995)
and postnl takes 2.5 times its declared 55 minutes to ship (past the intent's 2 h deadline).
Strategies, each on the same orders and the same simulated worlds (seed per order):

* ``static``: the hand-written path (`benchmarks.baselines`), retried;
* ``static+fallback``: the same with one fallback per step;
* ``intento``: plans with the declared figures, re-plans on failure;
* ``intento+learn``: the same, planning with what the store observed so far (`--learn`: the
  p90 latency once an option has 10 successful steps, the success rate with the declared
  reliability as the prior).

Figures per strategy: success, deadline misses, mean cost, mean step attempts and failures per
order, over every order and over the orders after the first ten (once there is something to
learn from). Nothing here asserts timings or outcomes; tests assert correctness.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
STRATEGIES = ("static", "static+fallback", "intento", "intento+learn")
DRIFT = {"stripe": {"failure_rate": 0.35}, "postnl": {"spikes": [{"from": 0, "factor": 2.5}]}}
WARM_UP = 10


def scenario(i: int):
    from intento.execute import Scenario

    return Scenario.model_validate({"seed": 1000 + i, "providers": DRIFT})


def run(orders: int) -> dict:
    import intento
    from benchmarks.baselines import Request, run_strategy
    from benchmarks.metrics import measure
    from intento.execute import Executor, SimEnvironment, Store
    from intento.learn import Learning

    spec = intento.load(ROOT / "examples" / "order_fulfilment", ROOT / "policies").spec
    per: dict[str, list] = {s: [] for s in STRATEGIES}
    with tempfile.TemporaryDirectory() as d:
        shared = {s: Store(Path(d) / f"{s}.db") for s in ("intento", "intento+learn")}
        for i in range(orders):
            given = {"customer.region": "us", "order.amount": "80 USD", "customer.email": f"drift{i}@example.com"}
            rid = f"order-{i}"
            for s in STRATEGIES:
                if s in shared:
                    store = shared[s]
                    ex = Executor(spec, store, SimEnvironment(scenario(i)), new_id=lambda rid=rid: rid, time_limit_s=5.0,
                                  learning=Learning(min_samples=WARM_UP) if s == "intento+learn" else None)
                    ex.drive(ex.start("fulfil_order", given, key=rid))
                else:
                    store = Store(Path(d) / f"{s}-{i}.db")
                    run_strategy(s, Request(spec, "fulfil_order", given, rid), scenario(i), store)
                per[s].append(measure(store, rid, s, spec, "fulfil_order", given))
                if s not in shared:
                    store.close()
        for st in shared.values():
            st.close()
    return {s: {"all": _summary(ms), "after warm-up": _summary(ms[WARM_UP:])} for s, ms in per.items()}


def _summary(ms: list) -> dict:
    if not ms:
        return {}
    ok = [m for m in ms if m.success]
    return {
        "orders": len(ms),
        "success": round(len(ok) / len(ms), 4),
        "deadline_misses": sum(1 for m in ms if m.deadline_missed),
        "mean_cost": str(round(sum((m.cost for m in ok), Decimal(0)) / len(ok), 3)) if ok else None,
        "mean_attempts": round(statistics.mean(m.attempts for m in ms), 2),
        "mean_failures": round(statistics.mean(m.failures for m in ms), 2),
    }


def table(rows: dict) -> list[str]:
    out = ["| strategy | orders | success | deadline misses | mean cost | step attempts / order | failures / order |", "|---|---:|---:|---:|---:|---:|---:|"]
    for part in ("all", "after warm-up"):
        for s, r in rows.items():
            x = r[part]
            if x:
                out.append(f"| {s} ({part}) | {x['orders']} | {x['success']:.0%} | {x['deadline_misses']} | {x['mean_cost']} | {x['mean_attempts']} | {x['mean_failures']} |")
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.drift", description=__doc__.split("\n\n")[0])
    ap.add_argument("--orders", type=int, default=40, help="orders in a row (default 40)")
    ap.add_argument("--quick", action="store_true", help="12 orders")
    args = ap.parse_args(argv)
    n = 12 if args.quick else args.orders
    t0 = time.perf_counter()
    rows = run(n)
    print("\n".join(table(rows)))
    RESULTS.mkdir(exist_ok=True)
    out = {"machine": f"{platform.machine()}, Python {platform.python_version()}", "orders": n, "drift": DRIFT, "warm_up": WARM_UP, "rows": rows}
    (RESULTS / "drift.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS / 'drift.json'} ({time.perf_counter() - t0:.1f} s)")
    return out


if __name__ == "__main__":
    main()
