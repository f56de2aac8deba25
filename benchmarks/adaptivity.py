"""Adaptivity: the same requests and fault schedules under every strategy, measured from event logs.

For each outage rate, each scenario draws which providers are out (each provider with that
probability, unavailable from the start of the run for its whole duration, which no strategy is
told in advance) and other noise (a 1% error rate on every step, latency spread). Requests come from the order-fulfilment example
(EU/US, small/large orders) and from generated estates. Reported per strategy: goal success
rate (over all scenarios, and over those a clairvoyant plan could still complete), cost,
makespan, deadline misses, policy violations, re-plans, and intento's cost against the
hindsight optimum (the optimal plan computed knowing in advance which providers are out).
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import intento
from benchmarks.baselines import STRATEGIES, Request, run_strategy
from benchmarks.metrics import measure
from benchmarks.scenarios import estate
from intento.check import check_sources
from intento.diagnostics import Source
from intento.execute import Scenario, Store
from intento.solve import plan

ROOT = Path(__file__).resolve().parents[1]


def _requests(n: int, rng: random.Random):
    orders = intento.load(ROOT / "examples" / "order_fulfilment", ROOT / "policies").spec
    estates = [check_sources([Source(f"estate{i}", estate(rng.choice([8, 12, 20]), seed=100 + i).source)]).spec for i in range(4)]
    for i in range(n):
        if i % 2 == 0:
            region = rng.choice(["eu", "us"])
            amount = rng.choice(["80 USD", "450 USD", "1500 USD"])
            yield orders, "fulfil_order", {"customer.region": region, "order.amount": amount, "customer.email": f"c{i}@example.com"}
        else:
            yield estates[i % 4], "job", {"request.region": rng.choice(["eu", "us"])}


def _scenario(spec, rate: float, rng: random.Random) -> tuple[Scenario, list[str]]:
    down = [p for p in spec.providers if rng.random() < rate]
    providers = {p: {"outages": [{"from": 0}]} for p in down}
    return Scenario.model_validate({"seed": rng.randrange(10**6), "default": {"failure_rate": 0.01, "latency_sigma": 0.2}, "providers": providers}), down


def run(rates=(0.1, 0.2, 0.3), scenarios: int = 20, seed: int = 0, progress=print) -> dict:
    rng = random.Random(seed)
    rows = {}
    for rate in rates:
        per = {s: [] for s in STRATEGIES}
        gaps, feasible_flags, wall = [], [], {s: 0.0 for s in STRATEGIES}
        for i, (spec, intent, given) in enumerate(_requests(scenarios, rng)):
            scenario, down = _scenario(spec, rate, rng)
            hindsight = plan(spec, intent, given, {"providers": {p: {"status": "down"} for p in down}}, explain="none")
            feasible_flags.append(hindsight.feasible)
            with tempfile.TemporaryDirectory() as d:
                for s in STRATEGIES:
                    store = Store(Path(d) / f"{s}.db")
                    t0 = time.perf_counter()
                    rid = run_strategy(s, Request(spec, intent, given, f"run-{rate}-{i}"), scenario, store)
                    wall[s] += time.perf_counter() - t0
                    m = measure(store, rid, s, spec, intent, given)
                    per[s].append(m)
                    if s == "intento" and m.success and hindsight.feasible:
                        gaps.append(float(m.cost / Decimal(hindsight.cost) - 1) if Decimal(hindsight.cost) else 0.0)
                    store.close()
        rows[rate] = _summarize(per, feasible_flags, gaps, wall)
        progress(f"  outage rate {rate:.0%}: done ({scenarios} scenarios)")
    return rows


def _summarize(per, feasible_flags, gaps, wall) -> dict:
    out = {}
    n_feasible = sum(feasible_flags)
    for s, ms in per.items():
        ok = [m for m in ms if m.success]
        ok_feasible = [m for m, f in zip(ms, feasible_flags) if f and m.success and not m.violations]
        out[s] = {
            "runs": len(ms),
            "success_rate": len(ok) / len(ms),
            "compliant_success_rate": sum(1 for m in ms if m.success and not m.violations) / len(ms),
            "success_rate_when_possible": len(ok_feasible) / n_feasible if n_feasible else None,
            "mean_cost_when_succeeded": float(statistics.mean(m.cost for m in ok)) if ok else None,
            "p50_latency_s": statistics.median(m.latency_ms for m in ok) / 1000 if ok else None,
            "deadline_misses": sum(m.deadline_missed for m in ms),
            "runs_with_violations": sum(1 for m in ms if m.violations),
            "violations": sum(len(m.violations) for m in ms),
            "mean_replans": statistics.mean(m.replans for m in ms),
            "wall_s": wall[s],
        }
    out["intento"]["cost_gap_vs_hindsight_mean"] = statistics.mean(gaps) if gaps else None
    out["intento"]["cost_gap_vs_hindsight_max"] = max(gaps) if gaps else None
    out["_hindsight_feasible"] = n_feasible
    return out


def table(rows: dict) -> list[str]:
    lines = [
        "| outage rate | strategy | success | compliant success | success when possible | mean cost | p50 latency s | deadline misses | runs with violations | re-plans |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rate, r in rows.items():
        for s in STRATEGIES:
            x = r[s]
            f = lambda v, fmt: "-" if v is None else format(v, fmt)
            lines.append(
                f"| {rate:.0%} | {s} | {x['success_rate']:.0%} | {x['compliant_success_rate']:.0%} | {f(x['success_rate_when_possible'], '.0%')} | "
                f"{f(x['mean_cost_when_succeeded'], '.3f')} | {f(x['p50_latency_s'], '.0f')} | {x['deadline_misses']} | {x['runs_with_violations']} | {x['mean_replans']:.1f} |"
            )
    lines.append("")
    for rate, r in rows.items():
        g = r["intento"]
        if g["cost_gap_vs_hindsight_mean"] is not None:
            lines.append(f"- outage rate {rate:.0%}: intento's cost vs the hindsight optimum: mean {g['cost_gap_vs_hindsight_mean']:+.2%}, worst {g['cost_gap_vs_hindsight_max']:+.2%} ({r['_hindsight_feasible']} of {g['runs']} scenarios could be completed at all)")
    return lines
