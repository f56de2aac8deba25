"""Adaptivity: the same requests and fault schedules under every strategy, measured from event logs.

`run`: for each outage rate, each scenario draws which providers are out (each provider with that
probability, unavailable from the start of the run for its whole duration, which no strategy is
told in advance) and other noise (a 1% error rate on every step, latency spread). Requests come
from the order-fulfilment example (EU/US, small/large orders) and from generated estates.
Reported per strategy: goal success rate (over all scenarios, and over those a clairvoyant plan
could still complete), cost, makespan, deadline misses, policy violations, re-plans, and
intento's cost against the hindsight optimum (the optimal plan computed knowing in advance which
providers are out).

`run_faults`: the same measures under the other fault schedules of `benchmarks.faults` (outage
windows with start and end, latency spikes, error bursts, late external events), each with its
own scenarios. No hindsight plan is computed there (a clairvoyant plan would have to schedule
around windows); "possible" means a compliant plan exists in a healthy world, and intento's cost
is compared with that healthy-world optimum.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import intento
from benchmarks import faults
from benchmarks.baselines import STRATEGIES, Request, TooLarge, run_strategy
from benchmarks.metrics import RunMetrics, measure
from benchmarks.scenarios import estate
from intento.check import check_sources
from intento.diagnostics import Source
from intento.execute import Scenario, Store
from intento.solve import plan

ROOT = Path(__file__).resolve().parents[1]


def _requests(n: int, rng: random.Random, timeouts: bool = False):
    orders = intento.load(ROOT / "examples" / "order_fulfilment", ROOT / "policies").spec
    estates = [check_sources([Source(f"estate{i}", estate(rng.choice([8, 12, 20]), seed=100 + i, timeouts=timeouts).source)]).spec for i in range(4)]
    for i in range(n):
        if i % 2 == 0:
            region = rng.choice(["eu", "us"])
            amount = rng.choice(["80 USD", "450 USD", "1500 USD"])
            yield orders, "fulfil_order", {"customer.region": region, "order.amount": amount, "customer.email": f"c{i}@example.com"}
        else:
            yield estates[i % 4], "job", {"request.region": rng.choice(["eu", "us"])}


def _settlements(n: int, rng: random.Random):
    """Requests whose goal waits on an external fact (the bank's settlement file)."""
    spec = intento.load(ROOT / "examples" / "settlement").spec
    for i in range(n):
        yield spec, "settle_daily", {"customer.region": "eu", "settlement.date": f"2026-11-{1 + i % 28:02d}", "settlement.expected_total": f"{rng.randint(1, 900) * 1000} USD"}


def _scenario(spec, rate: float, rng: random.Random) -> tuple[Scenario, list[str]]:
    return faults.schedule("outages", spec, 1, rate, rng)


def _run_case(spec, intent, given, scenario: Scenario, run_id: str, per: dict, wall: dict, d: str) -> dict:
    """Every strategy on one request in one world; each one's metrics appended to ``per`` (None
    where the exhaustive strategy would not enumerate the model)."""
    out = {}
    for s in STRATEGIES:
        store = Store(Path(d) / f"{s}.db")
        t0 = time.perf_counter()
        try:
            rid = run_strategy(s, Request(spec, intent, given, run_id), scenario, store)
        except TooLarge:
            per[s].append(None)
            store.close()
            continue
        wall[s] += time.perf_counter() - t0
        out[s] = measure(store, rid, s, spec, intent, given)
        per[s].append(out[s])
        store.close()
    return out


@dataclass
class _Tally:
    """Every strategy's runs over one row group's scenarios, and intento's against references."""

    per: dict[str, list[RunMetrics | None]] = field(default_factory=lambda: {s: [] for s in STRATEGIES})
    wall: dict[str, float] = field(default_factory=lambda: {s: 0.0 for s in STRATEGIES})
    feasible: list[bool] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    agree: list[bool | None] = field(default_factory=list)
    ratios: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: {s: [] for s in STRATEGIES})

    def add(self, spec, intent, given, scenario: Scenario, run_id: str, reference, healthy) -> None:
        """Run one scenario. ``reference``: the plan whose feasibility says "possible" and whose
        cost intento's is compared with; ``healthy``: the healthy-world plan (for the ratios)."""
        self.feasible.append(reference.feasible)
        with tempfile.TemporaryDirectory() as d:
            case = _run_case(spec, intent, given, scenario, run_id, self.per, self.wall, d)
        self.agree.append(_agree(case))
        _ratios(case, healthy, self.ratios)
        m = case["intento"]
        if m.success and reference.feasible:
            self.gaps.append(float(m.cost / Decimal(reference.cost) - 1) if Decimal(reference.cost) else 0.0)

    def summary(self) -> dict:
        return _summarize(self.per, self.feasible, self.gaps, self.agree, self.wall, self.ratios)


def run(rates=(0.1, 0.2, 0.3), scenarios: int = 20, seed: int = 0, progress=print) -> dict:
    rng = random.Random(seed)
    rows = {}
    for rate in rates:
        tally = _Tally()
        for i, (spec, intent, given) in enumerate(_requests(scenarios, rng)):
            scenario, down = _scenario(spec, rate, rng)
            hindsight = plan(spec, intent, given, {"providers": {p: {"status": "down"} for p in down}}, explain="none")
            tally.add(spec, intent, given, scenario, f"run-{rate}-{i}", hindsight, plan(spec, intent, given, None, explain="none"))
        rows[rate] = tally.summary()
        progress(f"  outage rate {rate:.0%}: done ({scenarios} scenarios)")
    return rows


def run_faults(kinds=faults.KINDS, rate: float = 0.2, scenarios: int = 20, seed: int = 0, progress=print) -> dict:
    """Every strategy under each kind of fault schedule (``rate``: the chance that a provider, or
    an external fact, is hit)."""
    rows = {}
    for kind in kinds:
        rng = random.Random(f"{seed}/{kind}")
        tally = _Tally()
        requests = _settlements(scenarios, rng) if kind == "late events" else _requests(scenarios, rng, timeouts=True)
        for i, (spec, intent, given) in enumerate(requests):
            healthy = plan(spec, intent, given, None, explain="none")
            scenario, _ = faults.schedule(kind, spec, healthy.latency_ms or 1, rate, rng)
            tally.add(spec, intent, given, scenario, f"run-{kind}-{i}", healthy, healthy)
        rows[kind] = tally.summary()
        progress(f"  {kind}: done ({scenarios} scenarios)")
    return rows


def _ratios(case: dict[str, RunMetrics], healthy, into: dict[str, list[tuple[float, float]]]) -> None:
    """Each successful run's cost and makespan over the healthy-world plan's (for distributions
    across requests of different sizes)."""
    if not healthy.feasible:
        return
    cost, latency = float(Decimal(healthy.cost)), healthy.latency_ms
    for s, m in case.items():
        if m.success and cost and latency:
            into[s].append((round(float(m.cost) / cost, 4), round(m.latency_ms / latency, 4)))


def _agree(case: dict[str, RunMetrics]) -> bool | None:
    """Whether intento's run reached what the exhaustive re-planner's did (same outcome, same
    cost); None when the exhaustive strategy did not run."""
    if "exhaustive" not in case:
        return None
    a, b = case["exhaustive"], case["intento"]
    return (a.success, a.cost) == (b.success, b.cost)


def _summarize(per: dict[str, list[RunMetrics | None]], feasible_flags, gaps, agree, wall, ratios=None) -> dict:
    out = {}
    for s, all_ms in per.items():
        # The runs this strategy made (the exhaustive one skips models it would not enumerate).
        pairs = [(m, f) for m, f in zip(all_ms, feasible_flags) if m is not None]
        ms = [m for m, _ in pairs]
        if not ms:
            out[s] = {"runs": 0}
            continue
        ok = [m for m in ms if m.success]
        n_feasible = sum(f for _, f in pairs)
        out[s] = {
            "runs": len(ms),
            "success_rate": len(ok) / len(ms),
            "compliant_success_rate": sum(1 for m in ms if m.success and not m.violations) / len(ms),
            "success_rate_when_possible": sum(1 for m, f in pairs if f and m.success and not m.violations) / n_feasible if n_feasible else None,
            "mean_cost_when_succeeded": float(statistics.mean(m.cost for m in ok)) if ok else None,
            "p50_latency_s": statistics.median(m.latency_ms for m in ok) / 1000 if ok else None,
            "deadline_misses": sum(m.deadline_missed for m in ms),
            "runs_with_violations": sum(1 for m in ms if m.violations),
            "violations": sum(len(m.violations) for m in ms),
            "mean_replans": statistics.mean(m.replans for m in ms),
            "wall_s": wall[s],
            "cost_ratios": [c for c, _ in (ratios or {}).get(s, [])],
            "makespan_ratios": [m for _, m in (ratios or {}).get(s, [])],
        }
    out["intento"]["cost_gap_vs_hindsight_mean"] = statistics.mean(gaps) if gaps else None
    out["intento"]["cost_gap_vs_hindsight_max"] = max(gaps) if gaps else None
    out["intento"]["same_as_exhaustive"] = sum(1 for x in agree if x)
    out["intento"]["compared_with_exhaustive"] = sum(1 for x in agree if x is not None)
    out["_hindsight_feasible"] = sum(feasible_flags)
    out["_scenarios"] = len(feasible_flags)
    return out


def table(rows: dict, label: str = "outage rate", baseline: str = "the hindsight optimum") -> list[str]:
    """Markdown rows: one per (schedule, strategy); ``label`` names the schedule column."""
    key = (lambda k: f"{k:.0%}") if label == "outage rate" else str
    f = lambda v, fmt: "-" if v is None else format(v, fmt)
    lines = [
        f"| {label} | strategy | runs | success | compliant success | success when possible | mean cost | p50 latency s | deadline misses | runs with violations | re-plans |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for k, r in rows.items():
        for s in STRATEGIES:
            x = r[s]
            if not x["runs"]:
                lines.append(f"| {key(k)} | {s} | 0 | - | - | - | - | - | - | - | - |")
                continue
            lines.append(
                f"| {key(k)} | {s} | {x['runs']} | {x['success_rate']:.0%} | {x['compliant_success_rate']:.0%} | {f(x['success_rate_when_possible'], '.0%')} | "
                f"{f(x['mean_cost_when_succeeded'], '.3f')} | {f(x['p50_latency_s'], '.1f')} | {x['deadline_misses']} | {x['runs_with_violations']} | {x['mean_replans']:.1f} |"
            )
    lines.append("")
    for k, r in rows.items():
        g = r["intento"]
        text = f"- {label} {key(k)}: "
        if g["cost_gap_vs_hindsight_mean"] is not None:
            text += f"intento's cost vs {baseline}: mean {g['cost_gap_vs_hindsight_mean']:+.2%}, worst {g['cost_gap_vs_hindsight_max']:+.2%} ({r['_hindsight_feasible']} of {r['_scenarios']} scenarios possible at all); "
        text += f"intento reached the exhaustive re-planner's outcome and cost in {g['same_as_exhaustive']} of the {g['compared_with_exhaustive']} runs it could enumerate"
        lines.append(text)
    return lines
