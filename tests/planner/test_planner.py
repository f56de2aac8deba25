"""Planner behaviour on the shipped examples and on targeted cases."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import intento
from intento.check import check_sources
from intento.diagnostics import IntentoError, Source
from intento.plan import Plan
from intento.request import State
from intento.backends import constraint, cpsat
from intento.solve import prepare
from tests.planner.validator import check_plan

ROOT = Path(__file__).resolve().parents[2]
EU = {"customer.region": "eu", "order.amount": "120 USD", "customer.email": "a@example.com"}
US = {"customer.region": "us", "order.amount": 80, "customer.email": "b@example.com"}
LARGE_US = {"customer.region": "us", "order.amount": "1500 USD", "customer.email": "c@example.com"}


@pytest.fixture(scope="module")
def orders():
    return intento.load(ROOT / "examples" / "order_fulfilment", ROOT / "policies")


def _valid(project, intent, given, state, plan):
    assert check_plan(project.spec, intent, given, state, plan.model_dump()) == []


def test_eu_order_stays_in_the_eu(orders):
    p = orders.plan("fulfil_order", EU)
    assert p.status == "optimal"
    for s in p.steps:
        assert orders.spec.providers[s.provider].attrs["region"] == "eu"
    assert {s.action for s in p.steps} >= {"charge_payment", "reserve_stock", "ship_order", "notify_customer"}
    _valid(orders, "fulfil_order", EU, None, p)


def test_outage_reroutes_payment(orders):
    state = {"providers": {"stripe": {"status": "down"}}}
    normal = orders.plan("fulfil_order", US)
    rerouted = orders.plan("fulfil_order", US, state)
    assert normal.step("charge_payment").provider == "stripe"
    assert rerouted.step("charge_payment").provider == "braintree"
    alt = next(a for st in rerouted.explanation.steps if st.action == "charge_payment" for a in st.alternatives if a.provider == "stripe")
    assert alt.reason == "unavailable"
    _valid(orders, "fulfil_order", US, state, rerouted)


def test_large_order_is_fraud_checked_first_by_another_provider(orders):
    p = orders.plan("fulfil_order", LARGE_US)
    fraud, charge = p.step("fraud_check"), p.step("charge_payment")
    assert fraud is not None and fraud.end_ms <= charge.start_ms
    assert fraud.provider != charge.provider
    _valid(orders, "fulfil_order", LARGE_US, None, p)


def test_no_compliant_provider_is_infeasible_with_a_minimal_conflict(orders):
    state = {"providers": {"adyen": {"status": "down"}}, "at": "2026-11-24T10:32:00Z"}
    p = orders.plan("fulfil_order", dict(EU, **{"order.amount": 80}), state)
    assert p.status == "infeasible" and p.steps == [] and p.cost is None
    names = {r.policy for r in p.explanation.conflict}
    assert names == {"goal", "adyen", "eu_data_residency"}
    assert "10:32" in p.explanation.summary


def test_degraded_provider_attributes_replace_declared_ones(orders):
    # Within `charge_payment`'s `timeout 30s`: a slower stripe could not be planned at all.
    state = {"providers": {"stripe": {"status": "degraded", "latency": "25s", "cost": "0.20 USD"}}}
    p = orders.plan("fulfil_order", US, state)
    s = p.step("charge_payment")
    assert (s.provider, s.latency_ms, s.cost) == ("stripe", 25_000, "0.20")
    _valid(orders, "fulfil_order", US, state, p)


def test_express_order_minimises_latency_first(orders):
    cheap = orders.plan("fulfil_order", US)
    fast = orders.plan("express_order", US)
    assert fast.latency_ms < cheap.latency_ms
    # Soft penalties come ahead of a lexicographic objective's first term (LANGUAGE.md, Plans 6):
    # the green preference outranks speed, so the fastest *green* carrier wins, not ups.
    assert fast.objective.order == ["penalty", "latency", "cost"]
    assert fast.step("ship_order").provider == "dhl" and fast.broken == []


def test_same_request_gives_byte_identical_json(orders):
    first = orders.plan("fulfil_order", LARGE_US).to_json()
    for _ in range(19):
        assert orders.plan("fulfil_order", LARGE_US).to_json() == first


def test_same_json_in_two_processes(tmp_path):
    exe = Path(sys.executable).parent / "intento"
    given = tmp_path / "g.json"
    given.write_text(json.dumps(LARGE_US))
    args = [str(exe), "plan", str(ROOT / "examples" / "order_fulfilment"), str(ROOT / "policies"), "--intent", "fulfil_order", "--given", str(given), "--format", "json"]
    outs = [subprocess.run(args, capture_output=True, text=True, check=True).stdout for _ in range(2)]
    assert outs[0] == outs[1]
    assert Plan.model_validate_json(outs[0]).status == "optimal"


def test_validator_catches_broken_plans(orders):
    p = orders.plan("fulfil_order", LARGE_US).model_dump()
    spec = orders.spec

    def broken(mutate):
        plan = json.loads(json.dumps(p))
        mutate(plan)
        return check_plan(spec, "fulfil_order", LARGE_US, None, plan)

    by = {s["action"]: s for s in p["steps"]}
    charge = [i for i, s in enumerate(p["steps"]) if s["action"] == "charge_payment"][0]
    assert broken(lambda q: q["steps"].pop(charge))  # goal no longer holds
    assert broken(lambda q: q["steps"][charge].update(start_ms=by["fraud_check"]["start_ms"], end_ms=by["fraud_check"]["start_ms"] + 800))
    assert broken(lambda q: q["steps"][charge].update(start_ms=q["steps"][charge]["start_ms"] + 5, end_ms=q["steps"][charge]["end_ms"] + 5))
    assert broken(lambda q: q.update(cost="0.01"))
    assert broken(lambda q: q["steps"][charge].update(provider="adyen", cost="0.40", latency_ms=600, end_ms=q["steps"][charge]["start_ms"] + 600))


def test_bad_requests_raise_located_errors(orders):
    with pytest.raises(IntentoError) as e:
        orders.plan("fulfil_ordr", US)
    assert e.value.diagnostics[0].code == "E102" and "fulfil_order" in e.value.diagnostics[0].help
    with pytest.raises(IntentoError) as e:
        orders.plan("fulfil_order", {"customer.region": 3, "order.amount": "x", "customer.emial": "a"})
    codes = sorted(d.code for d in e.value.diagnostics)
    assert codes == ["E103", "E104", "E104", "E105"]
    with pytest.raises(IntentoError) as e:
        orders.plan("fulfil_order", US, {"providers": {"strip": {"status": "down"}}})
    assert e.value.diagnostics[0].code == "E107" and "stripe" in e.value.diagnostics[0].help
    with pytest.raises(IntentoError) as e:
        orders.plan("fulfil_order", US, {"providers": {"stripe": {"status": "sideways"}}})
    assert e.value.diagnostics[0].code == "E106"
    with pytest.raises(IntentoError) as e:
        orders.plan("fulfil_order", US, {"providers": {"stripe": {"status": "degraded", "latency": "soon"}}})
    assert e.value.diagnostics[0].code == "E108"


def test_secret_given_values_never_appear_in_errors(orders):
    with pytest.raises(IntentoError) as e:
        orders.plan("fulfil_order", dict(US, **{"customer.email": 12345}))
    assert "12345" not in str(e.value) and "<secret>" in e.value.diagnostics[0].message


def test_exhaustive_backend_agrees_and_refuses_large_models(orders):
    fast = orders.plan("fulfil_order", LARGE_US)
    slow = orders.plan("fulfil_order", LARGE_US, backend="constraint")
    assert fast.steps == slow.steps and fast.cost == slow.cost
    big = "provider p {}\n" + "".join(f"action a{i} {{ achieves f{i}; via p {{ latency 1ms }}; via q {{ latency 2ms }} }}\n" for i in range(30))
    spec = check_sources([Source("big", "provider q {}\n" + big + "intent job { goal f0 }")]).spec
    with pytest.raises(IntentoError) as e:
        intento.Project(spec).plan("job", backend="constraint")
    assert e.value.diagnostics[0].code == "E110"


def test_time_limit_never_crashes(orders):
    p = orders.plan("fulfil_order", LARGE_US, time_limit_s=0.0001)
    assert p.status in ("optimal", "feasible", "unknown")


def test_weighted_objective_value_is_exact():
    src = """
    provider p {} provider q {}
    action a { achieves x; via p { cost 1.5 USD; latency 2s; reliability 1 }; via q { cost 1 USD; latency 10s; reliability 1 } }
    intent job { goal x; minimize 1 * cost + 0.25 * latency }
    """
    spec = check_sources([Source("w", src)]).spec
    p = intento.Project(spec).plan("job")
    # p: 1.5 + 0.25*2 = 2.0 ; q: 1 + 0.25*10 = 3.5
    assert p.step("a").provider == "p" and p.objective.value == "2"


def test_soft_policy_is_broken_only_when_it_pays(orders):
    src = """
    provider green { tags ["green"] } provider grey {}
    action ship { achieves shipped; via grey { cost 1 USD; latency 1s }; via green { cost 1.5 USD; latency 1s } }
    intent job { goal shipped; minimize 2 * cost }
    policy prefer_green { soft 0.5; require "green" in tags for ship }
    """
    spec = check_sources([Source("s", src)]).spec
    p = intento.Project(spec).plan("job")
    # grey: 2*1 + 0.5 = 2.5 < green: 2*1.5 = 3
    assert p.step("ship").provider == "grey"
    assert [b.policy for b in p.broken] == ["prefer_green"] and p.objective.value == "2.5"


def test_batch_shares_capacity():
    src = """
    provider solo { capacity 1 }
    action work { achieves done; via solo { cost 1 USD; latency 10ms } }
    intent job { goal done; minimize cost then latency }
    """
    project = intento.Project(check_sources([Source("b", src)]).spec)
    plans = project.plan_many([{"intent": "job"}] * 3)
    runs = sorted((p.step("work").start_ms, p.step("work").end_ms) for p in plans)
    assert runs == [(0, 10), (10, 20), (20, 30)]
    alone = project.plan("job")
    assert alone.step("work").start_ms == 0


def test_capacity_within_one_request_serialises_steps():
    src = """
    provider solo { capacity 1 }
    action a { achieves x; via solo { latency 10ms } }
    action b { achieves y; via solo { latency 5ms } }
    intent job { goal x and y; minimize latency }
    """
    spec = check_sources([Source("c", src)]).spec
    for backend in ("cpsat", "constraint"):
        p = intento.Project(spec).plan("job", backend=backend)
        assert p.latency_ms == 15
        assert check_plan(spec, "job", {}, None, p.model_dump()) == []


def test_schemas_are_generated():
    plan_schema = Plan.model_json_schema()
    assert {"steps", "cost", "latency_ms", "objective", "solver", "explanation"} <= set(plan_schema["properties"])
    state_schema = State.model_json_schema()
    assert set(state_schema["properties"]) == {"facts", "providers", "at"}


def test_numbers_in_strings_are_accepted_where_the_type_is_clear(orders):
    a = orders.plan("fulfil_order", dict(US, **{"order.amount": "80"}), {"providers": {"stripe": {"status": "degraded", "cost": "0.2", "latency": "900"}}})
    s = a.step("charge_payment")
    assert (s.provider, s.cost, s.latency_ms) == ("stripe", "0.2", 900)
    with pytest.raises(IntentoError):
        orders.plan("fulfil_order", dict(US, **{"order.amount": "eighty"}))


def test_a_latency_floor_met_only_by_idling_is_priced_not_forbidden():
    # The only plan runs a and b on one slot, 10 ms in all; the model could stretch it to
    # 15 ms by idling, which the contract never does: the plan pays the floor's penalty rather
    # than being reported impossible (a case the explanation property test found).
    src = """
    provider solo { capacity 1 }
    provider free { }
    action a { achieves x; via solo { cost 0 USD; latency 5ms } }
    action b { achieves y; via solo { cost 0 USD; latency 5ms } }
    action c { achieves z; via free { cost 0 USD; latency 6ms } }
    intent job { goal x and y and z }
    policy slow { soft 1; limit latency >= 15ms }
    """
    problem = prepare(check_sources([Source("floor", src)]).spec, "job")
    fast, slow = cpsat.solve(problem), constraint.solve(problem)
    assert fast.status == slow.status == "optimal"
    assert sorted(fast.starts.values()) == sorted(slow.starts.values()) == [0, 0, 5]


def test_a_queue_too_long_to_permute_still_waits_for_a_hard_before():
    # Nine steps on one slot: past the exact permutation search, so the contract's schedule comes
    # from a small CP-SAT model. It must keep `require f8 before a0`, or the only plan (a8 first)
    # fails the check against it and the request is reported infeasible.
    acts = "\n".join(f"action a{i} {{ achieves f{i}; via solo {{ cost 1 USD; latency 1ms }} }}" for i in range(9))
    src = f"""
    provider solo {{ capacity 1 }}
    {acts}
    intent job {{ goal {" and ".join(f"f{i}" for i in range(9))} }}
    policy order {{ require f8 before a0 }}
    policy floor {{ limit latency >= 1ms }}
    """
    spec = check_sources([Source("queue", src)]).spec
    p = intento.Project(spec).plan("job")
    assert p.status == "optimal"
    assert check_plan(spec, "job", {}, None, p.model_dump()) == []
    assert p.latency_ms == 9
    # Least makespan, then the earliest starts in declaration order: a0 right after a8.
    assert [(s.action, s.start_ms) for s in p.steps[:2]] == [("a8", 0), ("a0", 1)]


def test_the_exhaustive_backend_refuses_queues_it_cannot_schedule_exactly():
    # Nine steps for one slot: its exact queue search stops at eight steps, and the earliest
    # starts it fell back on ran all nine at once.
    acts = "\n".join(f"action a{i} {{ achieves f{i}; via solo {{ cost 1 USD; latency 1ms }} }}" for i in range(9))
    src = f"""
    provider solo {{ capacity 1 }}
    {acts}
    intent job {{ goal {" and ".join(f"f{i}" for i in range(9))} }}
    """
    spec = check_sources([Source("queue", src)]).spec
    assert not constraint.fits(prepare(spec, "job"))
    with pytest.raises(IntentoError, match="at most 8 steps"):
        intento.Project(spec).plan("job", backend="constraint", time_limit_s=2)
    p = intento.Project(spec).plan("job")
    assert p.status == "optimal" and p.latency_ms == 9
    assert check_plan(spec, "job", {}, None, p.model_dump()) == []


BUSY = """
provider one { region "eu"; capacity 1 }
provider two { region "eu" }

action work {
  achieves work.done
  via one { cost 1 USD; latency 1s }
  via two { cost 5 USD; latency 5s }
}

intent fast {
  goal work.done
  minimize latency
}
"""


def test_busy_slots_delay_a_step_or_send_it_elsewhere_and_bad_ones_are_located_errors(tmp_path):
    (tmp_path / "p.intent").write_text(BUSY)
    project = intento.load(tmp_path)
    free = project.plan("fast", {})
    assert [(s.provider, s.start_ms) for s in free.steps] == [("one", 0)]
    short = project.plan("fast", {}, {"providers": {"one": {"busy": ["2s"]}}})
    assert [(s.provider, s.start_ms) for s in short.steps] == [("one", 2000)] and short.latency_ms == 3000
    long = project.plan("fast", {}, {"providers": {"one": {"busy": [60000]}}})
    assert [(s.provider, s.start_ms) for s in long.steps] == [("two", 0)]
    for state, said in (
        ({"providers": {"two": {"busy": ["1s"]}}}, "has no `capacity`"),
        ({"providers": {"one": {"busy": ["1s", "2s"]}}}, "2 busy slots for provider `one`, whose capacity is 1"),
        ({"providers": {"one": {"busy": ["soon"]}}}, "not a duration of at least 1ms: `soon`"),
        ({"providers": {"one": {"busy": [0]}}}, "not a duration of at least 1ms: `0`"),
    ):
        with pytest.raises(IntentoError) as e:
            project.plan("fast", {}, state)
        assert e.value.diagnostics[0].code == "E108" and said in e.value.diagnostics[0].message, e.value.diagnostics[0].message
    with pytest.raises(IntentoError) as e:
        project.plan_many([{"intent": "fast", "given": {}, "state": {"providers": {"one": {"busy": ["1s"]}}}}])
    assert e.value.diagnostics[0].code == "E108" and "batch planning" in e.value.diagnostics[0].message
