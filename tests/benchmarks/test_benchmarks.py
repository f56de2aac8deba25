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
