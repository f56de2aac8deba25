"""Simulation: outages re-route, give-ups compensate in reverse order and escalate with the right
minimal set, late external facts time out, and the same seed gives the identical event log."""

from __future__ import annotations

from pathlib import Path

import pytest

import intento
from intento.check import check_sources
from intento.diagnostics import Source
from intento.execute import Executor, Scenario, SimEnvironment, Store
from intento.execute.handlers import Registry

ROOT = Path(__file__).resolve().parents[2]
US = {"customer.region": "us", "order.amount": "80 USD", "customer.email": "a@example.com"}
EU = {"customer.region": "eu", "order.amount": "80 USD", "customer.email": "b@example.com"}


@pytest.fixture(scope="module")
def orders():
    return intento.load(ROOT / "examples" / "order_fulfilment", ROOT / "policies").spec


def run(spec, tmp_path, intent, given, scenario: dict, name="s", registry=None, state=None, run_id=None):
    store = Store(tmp_path / f"{name}.db")
    env = SimEnvironment(Scenario.model_validate(scenario), journal=tmp_path / f"{name}.journal")
    ex = Executor(spec, store, env, registry, new_id=lambda: run_id or f"run-{name}")
    rid = ex.start(intent, given, state)
    final = ex.drive(rid)
    return final, store.events(rid), store


def types(events):
    return [e["type"] for e in events]


def test_outage_reroutes_to_the_next_compliant_option(orders, tmp_path):
    final, events, store = run(orders, tmp_path, "fulfil_order", US, {"seed": 3, "providers": {"stripe": {"outages": [{"from": 0, "to": "1d"}]}}})
    assert final.status == "succeeded"
    assert final.steps["charge_payment"].provider == "braintree"
    failed = [e for e in events if e["type"] == "step_failed"]
    assert failed and all(e["data"]["provider"] == "stripe" for e in failed)
    replans = [e for e in events if e["type"] == "planned"]
    assert any("charge_payment: stripe -> braintree" in e["data"]["changes"] for e in replans)
    assert store.integrity() == "ok"
    # Every step that ran obeys the policies: check the executed steps as a plan.
    steps = [{"action": s.action, "provider": s.provider} for s in final.steps.values() if s.status == "succeeded"]
    assert {s["provider"] for s in steps} & {"stripe"} == set()


def test_no_compliant_alternative_compensates_in_reverse_and_escalates(orders, tmp_path):
    # EU order: adyen is the only compliant payment provider, and it is out for the whole run.
    scenario = {"seed": 1, "providers": {"adyen": {"outages": [{"from": 0}]}, "wh_rotterdam": {"latency_sigma": 0}}}
    final, events, _ = run(orders, tmp_path, "fulfil_order", EU, scenario)
    assert final.status == "escalated"
    conflict = {m["policy"] for m in final.outcome["conflict"]}
    assert conflict == {"goal", "eu_data_residency", "adyen"}
    assert "adyen" in final.outcome["summary"] and "eu_data_residency" in final.outcome["summary"]
    # Stock was reserved before payment failed: it is released, then the run escalates.
    order = [e["data"]["for"] for e in events if e["type"] == "compensated"]
    assert order == ["reserve_stock"]
    assert types(events)[-1] == "escalated"


def test_compensation_runs_in_reverse_order_of_completion(tmp_path):
    src = """
    provider p {} provider q {}
    action a1 { achieves f1; undo u1; via p { latency 10ms } }
    action a2 { requires f1; achieves f2; undo u2; via p { latency 10ms } }
    action a3 { requires f2; achieves done; via q { latency 10ms } }
    action u1 { achieves x1; via p { latency 5ms } }
    action u2 { achieves x2; via p { latency 5ms } }
    intent job { goal done }
    """
    spec = check_sources([Source("c.intent", src)]).spec
    final, events, _ = run(spec, tmp_path, "job", {}, {"seed": 0, "providers": {"q": {"outages": [{"from": 0}]}}}, name="c")
    assert final.status == "escalated"
    undone = [(e["data"]["for"], e["data"]["action"]) for e in events if e["type"] == "compensated"]
    assert undone == [("a2", "u2"), ("a1", "u1")]
    assert {m["policy"] for m in final.outcome["conflict"]} >= {"q"}


def test_a_file_that_never_lands_is_fetched_by_hand_before_it_is_too_late(tmp_path):
    spec = intento.load(ROOT / "examples" / "settlement", ROOT / "policies" / "common").spec
    given = {"customer.region": "eu", "settlement.date": "2026-11-24", "settlement.expected_total": "1200 USD"}
    # The bank's file never lands. Waiting out its 8h timeout would leave 1h before the 9h
    # deadline, too little for the 2h manual fetch: the run switches at its switch time, before
    # the timeout, fetches the file by hand and posts in time (the timeout is still recorded).
    final, events, _ = run(spec, tmp_path, "settle_daily", given, {"seed": 2, "facts": {"settlement.received": {"at": None}}}, name="late")
    switched = [e for e in events if e["type"] == "step_switched"]
    assert switched and switched[0]["data"]["action"] == "settlement_file_lands" and switched[0]["at"] < 7 * 3_600_000
    fetch = [e for e in events if e["type"] == "step_dispatched" and e["data"]["action"] == "fetch_file_manually"]
    assert fetch and fetch[0]["at"] == switched[0]["at"]
    timeouts = [e for e in events if e["type"] == "step_timed_out"]
    assert timeouts and timeouts[0]["data"]["action"] == "settlement_file_lands" and timeouts[0]["at"] == 8 * 3_600_000
    assert final.status == "succeeded" and final.last_at <= final.deadline_at


def test_external_fact_landing_after_the_switch_time_is_recorded_and_used(tmp_path):
    spec = intento.load(ROOT / "examples" / "settlement", ROOT / "policies" / "common").spec
    given = {"customer.region": "eu", "settlement.date": "2026-11-24", "settlement.expected_total": "1200 USD"}
    final, events, _ = run(spec, tmp_path, "settle_daily", given, {"seed": 2, "facts": {"settlement.received": {"at": "7h"}}}, name="ontime")
    assert final.status == "succeeded" and final.last_at <= final.deadline_at
    # At 7h the file is past its switch time: the manual fetch was started (and is paid for),
    # and the file's late arrival is recorded as its step's success, which the run goes on from.
    switched = [e for e in events if e["type"] == "step_switched"]
    assert switched and switched[0]["at"] < 7 * 3_600_000 and "fetch_file_manually" in final.steps
    landed = [e for e in events if e["type"] == "observation" and e["data"].get("fact") == "settlement.received"]
    assert landed[0]["at"] == 7 * 3_600_000
    assert final.steps["settlement_file_lands"].status == "succeeded"
    verify = next(e for e in events if e["type"] == "step_dispatched" and e["data"]["action"] == "verify_file")
    assert verify["at"] < final.steps["fetch_file_manually"].since  # it did not wait for the manual fetch


def test_external_fact_observed_through_the_inbox(tmp_path):
    spec = intento.load(ROOT / "examples" / "settlement", ROOT / "policies" / "common").spec
    given = {"customer.region": "eu", "settlement.date": "2026-11-24", "settlement.expected_total": "1200 USD"}
    store = Store(tmp_path / "inbox.db")
    env = SimEnvironment(Scenario.model_validate({"facts": {"settlement.received": {"at": None}}}))
    ex = Executor(spec, store, env, new_id=lambda: "run-inbox")
    rid = ex.start("settle_daily", given)
    from intento.execute import post

    post(store, rid, {"fact": "settlement.received", "source": "test"})
    final = ex.drive(rid)
    assert final.status == "succeeded" and "fetch_file_manually" not in final.steps


def test_same_seed_same_event_log(orders, tmp_path):
    scenario = {"seed": 11, "default": {"failure_rate": 0.2}, "providers": {"stripe": {"outages": [{"from": "100ms", "to": "1h"}]}}}
    # Two stores, the same run id and seed: byte-identical logs.
    _, a, _ = run(orders, tmp_path, "fulfil_order", US, scenario, name="one", run_id="run-x")
    _, b, _ = run(orders, tmp_path, "fulfil_order", US, scenario, name="two", run_id="run-x")
    rows = lambda evs: [(e["seq"], e["type"], e["at"], e["data"]) for e in evs]
    assert len(a) > 5 and rows(a) == rows(b)
    _, c, _ = run(orders, tmp_path, "fulfil_order", US, dict(scenario, seed=12), name="three", run_id="run-x")
    assert rows(c) != rows(a)


def test_secrets_never_reach_the_event_log(orders, tmp_path):
    _, events, store = run(orders, tmp_path, "fulfil_order", US, {"seed": 0}, name="sec")
    text = str(events)
    assert "a@example.com" not in text and "hmac-sha256:" in text
    assert store.secrets("run-sec") == {"customer.email": "a@example.com"}


def test_escalation_handler_is_called(orders, tmp_path):
    reg = Registry()
    calls = []
    reg.on_escalation(lambda run_id, conflict, summary: calls.append((run_id, {m["policy"] for m in conflict})))
    run(orders, tmp_path, "fulfil_order", EU, {"seed": 1, "providers": {"adyen": {"outages": [{"from": 0}]}}}, name="esc", registry=reg)
    assert calls == [("run-esc", {"goal", "eu_data_residency", "adyen"})]


def test_a_torn_journal_line_is_ignored(orders, tmp_path):
    journal = tmp_path / "t.journal"
    journal.write_text('{"key": "run-t/validate_order/core", "action": "validate_order"}\n{"key": "run-t/charge')
    env = SimEnvironment(Scenario(), journal=journal)
    assert env._effects == {"run-t/validate_order/core": 1}


def test_policies_over_the_whole_plan_hold_across_re_plans(orders, tmp_path):
    # A large US order: the fraud check completes through adyen; then stripe and braintree both
    # fail for the payment. adyen is the only payment option left, but separation of duties
    # forbids it because the *completed* fraud check used adyen: the run must escalate, not
    # charge through adyen (re-plans keep completed steps as history for whole-plan rules).
    given = {"customer.region": "us", "order.amount": "1500 USD", "customer.email": "s@example.com"}
    scenario = {"seed": 4, "providers": {"stripe": {"outages": [{"from": 0}]}, "braintree": {"outages": [{"from": 0}]}}}
    final, events, _ = run(orders, tmp_path, "fulfil_order", given, scenario, name="sod")
    assert final.steps["fraud_check"].provider == "adyen" and final.steps["fraud_check"].status == "succeeded"
    assert all(e["data"]["provider"] != "adyen" for e in events if e["type"] == "step_dispatched" and e["data"]["action"] == "charge_payment")
    assert final.status == "escalated"
    assert "separation_of_duties" in {m["policy"] for m in final.outcome["conflict"]}


def _step(provider, latency_ms=800, timeout_ms=30_000, attempt=1):
    from intento.execute.environment import StepRequest

    return StepRequest("r", "charge_payment", provider, attempt, f"r/charge_payment/{provider}", latency_ms, timeout_ms, False, {})


def test_latency_spike_slows_steps_in_its_window_only():
    from intento.execute.environment import simulate_step

    calm = Scenario.model_validate({"seed": 2, "default": {"latency_sigma": 0}})
    spiky = Scenario.model_validate({"seed": 2, "default": {"latency_sigma": 0}, "providers": {"stripe": {"latency_sigma": 0, "spikes": [{"from": "1s", "to": "1m", "factor": 50}]}}})
    assert simulate_step(calm, _step("stripe"), 5_000) == ("succeeded", 800, None)
    assert simulate_step(spiky, _step("stripe"), 500) == ("succeeded", 800, None)  # before the window
    # In the window 800 ms x 50 = 40 s exceeds the 30 s timeout: the step times out.
    assert simulate_step(spiky, _step("stripe"), 5_000)[:2] == ("timed_out", 30_000)
    assert simulate_step(spiky, _step("stripe", timeout_ms=None), 5_000) == ("succeeded", 40_000, None)
    assert simulate_step(spiky, _step("stripe"), 60_000) == ("succeeded", 800, None)  # `to` is exclusive


def test_error_burst_fails_steps_in_its_window_only():
    from intento.execute.environment import simulate_step

    sc = Scenario.model_validate({"seed": 5, "providers": {"stripe": {"bursts": [{"from": "10s", "to": "20s", "failure_rate": 1.0}]}}})
    for attempt in range(1, 20):
        assert simulate_step(sc, _step("stripe", attempt=attempt), 15_000)[0] == "failed"
        assert simulate_step(sc, _step("stripe", attempt=attempt), 25_000)[0] == "succeeded"
    # A partial burst fails about its rate of steps, drawn per (seed, key, attempt).
    half = Scenario.model_validate({"seed": 5, "providers": {"stripe": {"bursts": [{"from": 0, "failure_rate": 0.5}]}}})
    failed = sum(simulate_step(half, _step("stripe", attempt=a), 100)[0] == "failed" for a in range(1, 401))
    assert 150 < failed < 250


def test_spike_makes_the_executor_time_out_and_re_route(orders, tmp_path):
    # stripe is 100x slower from the start: charge_payment (timeout 30s) times out and moves on.
    final, events, _ = run(orders, tmp_path, "fulfil_order", US, {"seed": 3, "providers": {"stripe": {"spikes": [{"from": 0, "factor": 100}]}}}, name="spike")
    assert final.status == "succeeded"
    assert final.steps["charge_payment"].provider != "stripe"
    assert any(e["type"] == "step_timed_out" and e["data"]["provider"] == "stripe" for e in events)


def test_bad_spike_and_burst_are_refused_with_the_field():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="factor"):
        Scenario.model_validate({"providers": {"p": {"spikes": [{"from": 0, "factor": 0.5}]}}})
    with pytest.raises(ValidationError, match="failure_rate"):
        Scenario.model_validate({"providers": {"p": {"bursts": [{"from": "1s", "failure_rate": 2}]}}})
    with pytest.raises(ValidationError, match="duration"):
        Scenario.model_validate({"providers": {"p": {"bursts": [{"from": "soon", "failure_rate": 0.5}]}}})


# ---- holding instead of giving up when the world may change soon ---------------------------------


def test_a_step_in_flight_when_its_provider_is_reported_down_is_waited_for(tmp_path):
    spec = check_sources([Source("h.intent", """
provider p { region "eu" }
action a { achieves x; via p { cost 1 USD; latency 1s } }
intent job { goal x }
""")]).spec
    # The status feed says `p` is down while its step is in flight; the step still lands.
    scenario = {"seed": 0, "default": {"latency_sigma": 0}, "observations": [{"at": 500, "provider": "p", "status": "down"}]}
    final, events, _ = run(spec, tmp_path, "job", {}, scenario, name="inflight")
    assert final.status == "succeeded", types(events)
    hold = next(e for e in events if e["type"] == "holding")
    assert hold["data"]["until"] is None and hold["data"]["running"] == ["a"] and hold["at"] == 500
    assert "giving_up" not in types(events)


def test_a_provider_presumed_down_is_retried_after_its_cool_down(orders, tmp_path):
    from intento.execute.state import COOL_DOWN_MS

    # EU orders can only notify through mailjet (residency); it is out until 62 minutes, after
    # shipping (55 minutes in) has begun notifying. Two failures presume it down; the
    # run holds for its cool-down instead of giving up, twice, then notifies.
    scenario = {"seed": 2, "default": {"latency_sigma": 0}, "providers": {"mailjet": {"latency_sigma": 0, "outages": [{"from": 0, "to": "62m"}]}}}
    final, events, _ = run(orders, tmp_path, "fulfil_order", EU, scenario, name="cool")
    assert final.status == "succeeded", [e["data"].get("reason") for e in events if e["type"] in ("planned", "holding", "giving_up")]
    holds = [e for e in events if e["type"] == "holding"]
    assert len(holds) == 2 and all(h["data"]["providers"] == ["mailjet"] for h in holds)
    for h in holds:
        last_failure = max(e["at"] for e in events if e["type"] == "step_failed" and e["at"] <= h["at"])
        assert h["data"]["until"] == last_failure + COOL_DOWN_MS
        replan = next(e for e in events if e["type"] == "planned" and e["at"] > h["at"])
        assert replan["at"] == h["data"]["until"] and "cool-down ended" in replan["data"]["reason"]
    assert final.steps["notify_customer"].provider == "mailjet"
    assert events[-1]["at"] - events[0]["at"] < 2 * 3600_000  # within the 2 h deadline
    # An operator asking mid-hold sees where the run stands and when it re-plans.
    from intento.execute.report import status_text

    cut = events.index(holds[0]) + 1
    text = status_text({"id": "run-cool"}, events[:cut])
    assert "stalled at: holding: no plan while `mailjet` presumed down" in text
    from intento.render import _dur

    assert f"(re-plan at {_dur(holds[0]['data']['until'] - events[0]['at'])})" in text


def test_a_provider_down_for_good_is_held_for_at_most_three_cool_downs(orders, tmp_path):
    from intento.execute.executor import MAX_COOLDOWN_HOLDS

    scenario = {"seed": 1, "providers": {"adyen": {"outages": [{"from": 0}]}}}
    final, events, _ = run(orders, tmp_path, "fulfil_order", EU, scenario, name="forever")
    assert final.status == "escalated"
    holds = [e["data"] for e in events if e["type"] == "holding"]
    assert sum(1 for h in holds if h["until"] is not None) == MAX_COOLDOWN_HOLDS == 3
    # The other holds waited for a step in flight (stock being reserved) when payment failed.
    assert all(h["running"] for h in holds if h["until"] is None)


def test_no_hold_past_the_deadline(orders, tmp_path):
    from intento.execute.executor import MAX_COOLDOWN_HOLDS

    # express_order has a 1 h deadline; mailjet (the only EU notifier) is out for 2 h. The run
    # holds while a cool-down ends before the deadline, then gives up rather than wait past it.
    scenario = {"seed": 2, "default": {"latency_sigma": 0}, "providers": {"mailjet": {"latency_sigma": 0, "outages": [{"from": 0, "to": "2h"}]}}}
    final, events, _ = run(orders, tmp_path, "express_order", EU, scenario, name="deadline")
    assert final.status == "escalated"
    deadline_at = events[0]["at"] + 3600_000
    holds = [e["data"]["until"] for e in events if e["type"] == "holding" and e["data"]["until"] is not None]
    assert 0 < len(holds) < MAX_COOLDOWN_HOLDS and all(u < deadline_at for u in holds)
    give_up = next(e for e in events if e["type"] == "giving_up")
    last_failure = max(e["at"] for e in events if e["type"] == "step_failed")
    assert give_up["at"] < deadline_at <= last_failure + 300_000  # the next cool-down would end too late
