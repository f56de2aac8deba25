"""Batch planning: the decomposition (plans made alone, held stages, one joint model only where
capacity binds) reaches the same optimum as minimising every stage in one joint model, never
overruns a shared capacity, and keeps infeasible requests from sinking the rest."""

from __future__ import annotations

import os
from types import SimpleNamespace

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import intento
from intento.backends import Solution, constraint, cpsat
from intento.batch import _aligned_key, _layout, _list_schedule, _padded, plan_many
from intento.check import check_sources
from intento.diagnostics import Source
from intento.semantics import evaluate_choice
from intento.solve import prepare
from tests.planner.validator import check_plan
from tests.planner.generate import planning_case

EXAMPLES = int(os.environ.get("INTENTO_DIFF_EXAMPLES", "200")) // 4


def _spec(text):
    result = check_sources([Source("gen.intent", text)])
    assert result.ok
    return result.spec


def _stage_sums(spec, requests, plans, tiebreak=True):
    """Each batch stage's total, computed from the plans by the contract's evaluation."""
    problems = [prepare(spec, r["intent"], r.get("given"), r.get("state")) for r in requests]
    has_penalty, depth, names = _layout(problems, tiebreak)
    totals = [0] * len(names)
    for p, plan in zip(problems, plans):
        sol = Solution("optimal", {s.action: s.provider for s in plan.steps}, {s.action: s.start_ms for s in plan.steps})
        for k, v in enumerate(_padded(_aligned_key(p, sol), p, has_penalty, depth, tiebreak)):
            totals[k] += v
    return totals


def _capacity_overruns(spec, plans):
    """(provider, instant, steps running) wherever a provider runs more steps than its capacity."""
    runs: dict[str, list[tuple[int, int]]] = {}
    for plan in plans:
        for s in plan.steps:
            runs.setdefault(s.provider, []).append((s.start_ms, s.end_ms))
    bad = []
    for pv, rs in runs.items():
        cap = spec.providers[pv].capacity
        if cap is None:
            continue
        for t, _ in rs:
            n = sum(1 for a, b in rs if a <= t < b)
            if n > cap:
                bad.append((pv, t, n))
    return bad


@st.composite
def batch_case(draw):
    text, context, state = draw(planning_case(busy=False))
    n = draw(st.integers(2, 4))
    requests = []
    for _ in range(n):
        r = {"intent": "job", "given": {"region": draw(st.sampled_from(["eu", "us"]))}}
        if draw(st.booleans()):
            r["state"] = state
        requests.append(r)
    return text, requests


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(batch_case())
def test_decomposition_matches_the_joint_model(case):
    text, requests = case
    spec = _spec(text)
    plans = plan_many(spec, requests, explain="none")
    # Infeasible alone (checked by exhaustive enumeration): infeasible in the batch, and the
    # others are planned without it.
    alone_infeasible = [constraint.solve(prepare(spec, r["intent"], r.get("given"), r.get("state"))).status == "infeasible" for r in requests]
    for r, p, inf in zip(requests, plans, alone_infeasible):
        if inf:
            assert p.status == "infeasible", (r, p.status, text)
    ok = [i for i, inf in enumerate(alone_infeasible) if not inf]
    assume(ok)
    subset = [requests[i] for i in ok]
    joint = plan_many(spec, subset, explain="none", decompose=False)
    if any(plans[i].status == "infeasible" for i in ok):
        # Feasible alone, not together (deadlines, shared slots): then no joint plan exists at all.
        assert all(plans[i].status == "infeasible" for i in ok) and all(p.status == "infeasible" for p in joint), text
        return
    assume(all(plans[i].status == "optimal" for i in ok) and all(p.status == "optimal" for p in joint))
    for i in ok:
        r = requests[i]
        assert check_plan(spec, r["intent"], r.get("given"), r.get("state"), plans[i].model_dump(), batch=True) == [], text
    assert _capacity_overruns(spec, [plans[i] for i in ok]) == [], text
    assert _stage_sums(spec, subset, [plans[i] for i in ok]) == _stage_sums(spec, subset, joint), text


def test_capacity_that_binds_delays_the_fleet_and_keeps_each_cost():
    src = """
    provider wh { capacity 2 }
    provider pay { }
    provider far { }
    action pick { achieves picked; via wh { cost 1 USD; latency 10ms }; via far { cost 5 USD; latency 10ms } }
    action charge { achieves paid; via pay { cost 1 USD; latency 4ms } }
    intent job { goal picked and paid; minimize cost then latency }
    """
    spec = _spec(src)
    stats: dict = {}
    plans = plan_many(spec, [{"intent": "job"}] * 5, stats_out=stats, explain="none")
    assert all(p.status == "optimal" and p.step("pick").provider == "wh" for p in plans)
    assert sorted(p.step("pick").start_ms for p in plans) == [0, 0, 10, 10, 20]
    assert _capacity_overruns(spec, plans) == []
    by = {e["stage"]: e["by"] for e in stats["stage_log"]}
    assert by["cost"] == "alone" and by["latency"] == "joint" and stats["distinct"] == 1
    latency = next(e for e in stats["stage_log"] if e["stage"] == "latency")
    # Five makespans of 10, 10, 20, 20, 30 ms; alone each would take 10 ms.
    assert latency["objective"] == 90 and 50 <= latency["bound"] <= 90
    reference = plan_many(spec, [{"intent": "job"}] * 5, explain="none", decompose=False)
    assert _stage_sums(spec, [{"intent": "job"}] * 5, plans) == _stage_sums(spec, [{"intent": "job"}] * 5, reference)


def test_plans_that_fit_side_by_side_need_no_joint_model():
    src = """
    provider wh { capacity 3 }
    action pick { achieves picked; via wh { cost 1 USD; latency 10ms } }
    intent job { goal picked; minimize cost then latency }
    """
    spec = _spec(src)
    stats: dict = {}
    plans = plan_many(spec, [{"intent": "job"}] * 3, stats_out=stats)
    assert [p.step("pick").start_ms for p in plans] == [0, 0, 0]
    assert {e["by"] for e in stats["stage_log"]} == {"alone"} and stats["variables"] == 0


def test_an_infeasible_request_does_not_sink_the_batch():
    src = """
    provider eu_wh { region "eu"; capacity 1 }
    provider us_wh { region "us"; capacity 1 }
    action pick { achieves picked; via eu_wh { cost 1 USD; latency 10ms }; via us_wh { cost 1 USD; latency 10ms } }
    intent job { given region: string; goal picked; minimize cost then latency }
    policy stay { when region == "eu"; forbid via where region != "eu" }
    policy nowhere { when region == "mars"; forbid action pick }
    """
    project = intento.Project(_spec(src))
    plans = project.plan_many([{"intent": "job", "given": {"region": g}} for g in ("eu", "mars", "eu")])
    assert [p.status for p in plans] == ["optimal", "infeasible", "optimal"]
    assert sorted(p.step("pick").start_ms for p in (plans[0], plans[2])) == [0, 10]
    assert plans[1].explanation.conflict, "the infeasible request names its conflict"


def test_requests_feasible_alone_but_not_together_say_so():
    src = """
    provider wh { capacity 1 }
    action pick { achieves picked; via wh { cost 1 USD; latency 10ms } }
    intent job { goal picked; deadline 15ms }
    """
    project = intento.Project(_spec(src))
    assert project.plan("job").status == "optimal"
    plans = project.plan_many([{"intent": "job"}] * 2)
    assert [p.status for p in plans] == ["infeasible", "infeasible"]
    assert all("not together" in p.explanation.summary and "`wh`" in p.explanation.summary for p in plans)


def test_the_list_schedule_respects_requirements_and_capacity():

    src = """
    provider wh { capacity 2 }
    provider pay { }
    action charge { achieves paid; via pay { cost 1 USD; latency 4ms } }
    action pick { requires paid; achieves picked; via wh { cost 1 USD; latency 10ms } }
    action ship { requires picked or paid; achieves shipped; via wh { cost 1 USD; latency 3ms } }
    intent job { goal picked and shipped }
    """
    spec = _spec(src)
    problems = [prepare(spec, "job") for _ in range(4)]
    sols = [cpsat.solve(p) for p in problems]
    starts = _list_schedule(spec, list(zip(problems, sols)), {"wh"})
    plans = []
    for p, s, at in zip(problems, sols, starts):
        ev = evaluate_choice(p, s.choice, {a: float(t) for a, t in at.items()})
        assert ev.valid
        for a in s.choice:
            # Never before its requirement holds (the earliest schedule of its own choice).
            assert at[a] >= s.starts[a]
        plans.append(SimpleNamespace(steps=[SimpleNamespace(provider=s.choice[a], start_ms=at[a], end_ms=at[a] + p.option(a, s.choice[a]).latency_ms) for a in s.choice]))
    assert _capacity_overruns(spec, plans) == []
    assert max(at["pick"] for at in starts) > 4, "eight steps on two slots: some wait"


def test_a_latency_floor_request_keeps_its_plan_made_alone():
    # Alone, the contract serialises both steps on the one slot (29 ms), which meets the floor.
    src = """
    provider p0 { capacity 1 }
    action a { achieves x; via p0 { cost 0 USD; latency 12ms } }
    action b { achieves y; via p0 { cost 0 USD; latency 17ms } }
    intent job { goal x and y; minimize cost then latency }
    policy slow { soft 1; limit latency >= 28ms }
    """
    project = intento.Project(_spec(src))
    alone = project.plan("job")
    assert alone.latency_ms == 29 and not alone.broken
    for decompose in (True, False):
        (p,) = plan_many(project.spec, [{"intent": "job"}], decompose=decompose)
        assert p.status == "optimal" and [(s.action, s.start_ms) for s in p.steps] == [(s.action, s.start_ms) for s in alone.steps]
