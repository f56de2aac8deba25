"""The benchmark code is itself correct: metrics come from event logs, baselines either respect
the policies or have their violations reported, and intento never violates one."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import intento
from benchmarks.adaptivity import _scenario
from benchmarks.baselines import STRATEGIES, Request, run_strategy
from benchmarks.metrics import measure, violations
from intento.execute import Scenario, Store

ROOT = Path(__file__).resolve().parents[2]
LARGE_EU = {"customer.region": "eu", "order.amount": "1500 USD", "customer.email": "b@example.com"}


@pytest.fixture(scope="module")
def spec():
    return intento.load(ROOT / "examples" / "order_fulfilment", ROOT / "policies").spec


def test_metrics_are_read_from_the_event_log(spec, tmp_path):
    store = Store(tmp_path / "m.db")
    first = {"run": "r", "intent": "fulfil_order", "context": {}, "facts": [], "providers": {}}
    store.create_run("r", "k", "fulfil_order", "p", 1000, {}, first)
    events = [
        ("planned", {"steps": []}),
        ("step_dispatched", {"action": "charge_payment", "provider": "adyen", "attempt": 1}),
        ("step_failed", {"action": "charge_payment", "provider": "adyen", "attempt": 1, "error": "x"}),
        ("planned", {"steps": []}),
        ("step_dispatched", {"action": "charge_payment", "provider": "stripe", "attempt": 2}),
        ("step_succeeded", {"action": "charge_payment", "provider": "stripe", "attempt": 2, "cost": "0.35"}),
        ("succeeded", {}),
    ]
    for i, (t, d) in enumerate(events, start=2):
        store.append("r", i, t, 1000 + 100 * i, d)
    m = measure(store, "r", "x", spec, "fulfil_order", LARGE_EU)
    assert m.success and str(m.cost) == "0.35" and m.latency_ms == 800 and m.replans == 1 and m.attempts == 2 and m.failures == 1
    # Charging an EU customer through stripe breaks data residency: reported from what ran.
    assert any(v.startswith("eu_data_residency") for v in m.violations)


def test_independent_violation_check(spec):
    assert violations(spec, "fulfil_order", LARGE_EU, [("fraud_check", "adyen"), ("charge_payment", "adyen")], 0) == ["separation_of_duties: same provider"]
    assert violations(spec, "fulfil_order", LARGE_EU, [("fraud_check", "riskified"), ("charge_payment", "adyen")], 0) == []


def test_greedy_reports_the_violation_it_commits(spec, tmp_path):
    scenario = Scenario.model_validate({"seed": 4, "providers": {"riskified": {"outages": [{"from": 0}]}}})
    results = {}
    for s in STRATEGIES:
        store = Store(tmp_path / f"{s}.db")
        rid = run_strategy(s, Request(spec, "fulfil_order", LARGE_EU, "run-g"), scenario, store)
        results[s] = measure(store, rid, s, spec, "fulfil_order", LARGE_EU)
    assert results["greedy"].success and results["greedy"].violations == ["separation_of_duties: same provider"]
    for s in ("static", "static+fallback", "intento"):
        assert results[s].violations == [], s


def test_strategies_never_violate_except_greedy_under_random_outages(spec, tmp_path):
    rng = random.Random(3)
    for i in range(6):
        given = {"customer.region": rng.choice(["eu", "us"]), "order.amount": rng.choice(["80 USD", "1500 USD"]), "customer.email": f"r{i}@example.com"}
        scenario, _ = _scenario(spec, 0.25, rng)
        for s in ("static", "static+fallback", "intento"):
            store = Store(tmp_path / f"{s}{i}.db")
            rid = run_strategy(s, Request(spec, "fulfil_order", given, f"run-{i}"), scenario, store)
            assert measure(store, rid, s, spec, "fulfil_order", given).violations == [], (s, i)


def test_a_replan_starts_from_half_done_with_the_next_provider_down():
    from benchmarks.plan_latency import replan_state
    from benchmarks.scenarios import estate
    from intento.check import check_sources
    from intento.diagnostics import Source

    e = estate(20, seed=3)
    spec = check_sources([Source("e", e.source)]).spec
    p = intento.Project(spec).plan(e.intent, e.given("eu"), explain="none")
    assert p.status == "optimal"
    steps = sorted(p.steps, key=lambda s: (s.start_ms, s.action))
    half = len(steps) // 2
    state = replan_state(spec, p)
    assert set(state["facts"]) == {f for s in steps[:half] for f in spec.actions[s.action].achieves}
    assert state["providers"] == {steps[half].provider: {"status": "down"}}
    q = intento.Project(spec).plan(e.intent, e.given("eu"), state, hint=p, explain="none")
    assert q.status in ("optimal", "infeasible")
    assert all(s.provider != steps[half].provider for s in q.steps)


def test_fleet_gaps_are_measured_against_a_bound():
    from benchmarks import fleet

    rows = fleet.run(sizes=(30,), time_limit_s=20.0, workers=1, progress=lambda _: None)
    r = rows[0]
    assert r["planned"] == 30 and r["distinct"] <= 6
    assert r["gap_vs_bound"] == 0.0 and 0.0 <= r["latency_gap_vs_bound"] <= 0.01
    assert fleet._gap({"objective": 110.0, "bound": 99.0}) == pytest.approx(0.1) and fleet._gap({"objective": None, "bound": 1}) is None


# ---- fault schedules -----------------------------------------------------------------------------


def test_fault_schedules_are_seeded_and_draw_what_their_kind_says(spec):
    from benchmarks import faults
    from intento.execute.environment import _ms

    horizon = 60_000
    for kind in ("outages",) + faults.KINDS:
        a, down_a = faults.schedule(kind, spec, horizon, 0.5, random.Random(7))
        b, down_b = faults.schedule(kind, spec, horizon, 0.5, random.Random(7))
        assert a == b and down_a == down_b, kind
    outages, down = faults.schedule("outages", spec, horizon, 1.0, random.Random(1))
    assert sorted(down) == sorted(spec.providers) and all(p.outages[0].end is None for p in outages.providers.values())
    windows, down = faults.schedule("outage windows", spec, horizon, 1.0, random.Random(1))
    assert down == [] and set(windows.providers) == set(spec.providers)
    for name, p in windows.providers.items():
        (w,) = p.outages
        assert 0 <= _ms(w.start) <= 1.5 * horizon < _ms(w.start) + 10 * horizon and _ms(w.end) > _ms(w.start)
        assert p.failure_rate == 0.01  # the background noise stays
    # Every other window is announced on the status feed, once down and once up again.
    announced = {o.provider for o in windows.observations}
    assert len(announced) == (len(spec.providers) + 1) // 2
    assert sorted(o.status for o in windows.observations) == ["down"] * len(announced) + ["up"] * len(announced)
    spikes, _ = faults.schedule("latency spikes", spec, horizon, 1.0, random.Random(1))
    assert all(p.spikes[0].factor in (5, 20, 100) for p in spikes.providers.values())
    bursts, _ = faults.schedule("error bursts", spec, horizon, 1.0, random.Random(1))
    assert all(0.5 <= p.bursts[0].failure_rate <= 0.95 for p in bursts.providers.values())
    none, _ = faults.schedule("latency spikes", spec, horizon, 0.0, random.Random(1))
    assert none.providers == {}
    with pytest.raises(ValueError, match="unknown fault kind"):
        faults.schedule("meteor", spec, horizon, 0.5, random.Random(1))


@pytest.fixture(scope="module")
def settlement():
    return intento.load(ROOT / "examples" / "settlement").spec


SETTLE = {"customer.region": "eu", "settlement.date": "2026-11-24", "settlement.expected_total": "1000 USD"}


def test_late_event_schedules_land_on_time_late_or_never(settlement):
    from benchmarks import faults
    from intento.execute.environment import _ms

    seen = {"never": 0, "late": 0, "on time": 0}
    for seed in range(60):
        sc, _ = faults.schedule("late events", settlement, 1, 0.3, random.Random(seed))
        at = sc.facts["settlement.received"].at
        seen["never" if at is None else "late" if _ms(at) >= 8 * 3600_000 else "on time"] += 1
    assert all(seen.values()) and seen["on time"] > seen["never"]


def _run_all(spec, intent, given, scenario, tmp_path, strategies=STRATEGIES, name=""):
    out = {}
    for s in strategies:
        store = Store(tmp_path / f"{name}{s}.db")
        rid = run_strategy(s, Request(spec, intent, given, "run-x"), scenario, store)
        out[s] = (measure(store, rid, s, spec, intent, given), store.events(rid))
    return out


def test_a_file_that_never_lands_is_fetched_by_hand_by_intento_in_time_and_by_the_baselines_late(settlement, tmp_path):
    scenario = Scenario.model_validate({"seed": 1, "facts": {"settlement.received": {"at": None}}})
    runs = _run_all(settlement, "settle_daily", SETTLE, scenario, tmp_path)
    static, events = runs["static"]
    assert not static.success and [e["type"] for e in events][-2:] == ["step_timed_out", "failed"]
    assert events[-2]["at"] - events[0]["at"] == 8 * 3600_000  # the wait's timer: the action's timeout
    for s in ("static+fallback", "greedy"):
        m, events = runs[s]
        done = [e["data"]["action"] for e in events if e["type"] == "step_succeeded"]
        assert m.success and done[0] == "fetch_file_manually" and m.deadline_missed and m.violations == [], s
    # intento does not wait the 8 h out: at the file's switch time (the last moment the manual
    # fetch still meets the 9 h deadline) it fetches the file by hand, and finishes in time.
    m, events = runs["intento"]
    done = [e["data"]["action"] for e in events if e["type"] == "step_succeeded"]
    assert m.success and not m.deadline_missed and done[0] == "fetch_file_manually" and m.violations == []
    switched = next(e for e in events if e["type"] == "step_switched")
    assert switched["at"] - events[0]["at"] < 8 * 3600_000


def test_a_file_that_lands_in_time_is_used_by_every_strategy(settlement, tmp_path):
    scenario = Scenario.model_validate({"seed": 1, "facts": {"settlement.received": {"at": "5h"}}})
    for s, (m, events) in _run_all(settlement, "settle_daily", SETTLE, scenario, tmp_path).items():
        assert m.success and str(m.cost) == "3.50" and not m.deadline_missed, s
        waited = next(e for e in events if e["type"] == "step_succeeded")
        assert waited["data"]["action"] == "settlement_file_lands" and waited["at"] - events[0]["at"] == 5 * 3600_000, s


def test_exhaustive_strategy_declines_large_models_and_matches_intento_on_small_ones(spec, tmp_path):
    from benchmarks.baselines import TooLarge
    from benchmarks.scenarios import estate
    from intento.check import check_sources
    from intento.diagnostics import Source

    big = estate(40, seed=2)
    big_spec = check_sources([Source("big", big.source)]).spec
    with pytest.raises(TooLarge):
        run_strategy("exhaustive", Request(big_spec, big.intent, big.given(), "run-big"), Scenario(), Store(tmp_path / "big.db"))
    rng = random.Random(5)
    for i in range(4):
        scenario, _ = _scenario(spec, 0.3, rng)
        runs = _run_all(spec, "fulfil_order", LARGE_EU if i % 2 else dict(LARGE_EU, **{"customer.region": "us"}), scenario, tmp_path, ("exhaustive", "intento"), name=str(i))
        (a, ea), (b, eb) = runs["exhaustive"], runs["intento"]
        assert (a.success, a.cost, a.violations) == (b.success, b.cost, []), i
        # The same plans, step for step: the two back-ends share the optimum and the tie-break.
        steps = lambda evs: [(e["type"], e["data"].get("action"), e["data"].get("provider")) for e in evs if e["type"].startswith("step_")]
        assert steps(ea) == steps(eb), i


def test_summary_counts_only_the_runs_a_strategy_made():
    from benchmarks.adaptivity import _summarize
    from benchmarks.metrics import RunMetrics
    from decimal import Decimal

    ok = lambda cost: RunMetrics("x", True, Decimal(cost), 1000, False, 1, 1, 0)
    bad = RunMetrics("x", False, Decimal(0), 1000, True, 0, 1, 1)
    per = {s: [ok("1"), bad, ok("3")] for s in STRATEGIES}
    per["exhaustive"] = [None, bad, ok("3")]
    r = _summarize(per, [True, False, True], [0.0, 0.1], [None, True, False], {s: 0.0 for s in STRATEGIES})
    assert r["static"]["runs"] == 3 and r["static"]["success_rate"] == pytest.approx(2 / 3) and r["static"]["success_rate_when_possible"] == 1.0
    assert r["exhaustive"]["runs"] == 2 and r["exhaustive"]["success_rate"] == 0.5 and r["exhaustive"]["success_rate_when_possible"] == 1.0
    assert r["exhaustive"]["mean_cost_when_succeeded"] == 3.0 and r["exhaustive"]["deadline_misses"] == 1
    assert r["intento"]["same_as_exhaustive"] == 1 and r["intento"]["compared_with_exhaustive"] == 2
    assert r["intento"]["cost_gap_vs_hindsight_max"] == 0.1 and r["_scenarios"] == 3 and r["_hindsight_feasible"] == 2


def test_the_drift_benchmark_measures_every_strategy_on_the_same_orders():
    from benchmarks import drift

    rows = drift.run(2)
    assert set(rows) == set(drift.STRATEGIES)
    for r in rows.values():
        assert r["all"]["orders"] == 2 and 0 <= r["all"]["success"] <= 1
    assert any(line.startswith("| intento+learn (all) | 2 |") for line in drift.table(rows))


def test_the_switch_margin_benchmark_runs_every_margin_on_the_same_settlements():
    from benchmarks import switch_margin

    rows = switch_margin.run(2, margins=(0.2, 1.0))
    assert list(rows) == ["static", "static+fallback", "intento, margin 0.2", "intento, margin 1"]
    for r in rows.values():
        assert r["runs"] == 2 and 0 <= r["success"] <= 1 and 0 <= r["fetched_by_hand"] <= 2
    # A wider margin never fetches by hand less often than a narrower one on the same worlds.
    assert rows["intento, margin 1"]["fetched_by_hand"] >= rows["intento, margin 0.2"]["fetched_by_hand"]
    assert switch_margin.table(rows)[2].startswith("| static | 2 |")


@pytest.mark.parametrize("form", ["cost then latency", "2 * cost + 0.5 * latency"])
def test_the_stage_and_plain_reference_benchmarks_run_and_agree_with_the_planner(form):
    """benchmarks.stages and benchmarks.plain_reference build and solve models of their own (the
    tables `Checked by` re-runs): they run on a small estate, each single solve proves an
    optimum, and the plain encoding's optimum is the planner's."""
    from benchmarks import plain_reference, stages

    stage = stages.measure(20, 1, form)
    assert stage["cases"] == 1 and stage["tiebreak_over_objective"][0] > 0
    plain = plain_reference.measure(20, 1, form, time_limit=20.0)
    assert plain["cases"] == 1 and plain["plain_optimal"] == 1
    assert plain["same"] == 1 and plain["mismatches"] == 0
