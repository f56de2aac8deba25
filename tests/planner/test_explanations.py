"""Explanations are the solver's own: minimal conflicts are minimal and conflicting (verified by
re-solving), and every counterfactual delta equals the optimum re-solved with that option forced
(by the exhaustive back-end, independently of CP-SAT)."""

from __future__ import annotations

import os
from decimal import Decimal

from hypothesis import HealthCheck, assume, example, given, settings

from intento.backends import SolveOptions, constraint
from intento.backends import cpsat
from intento.check import check_sources
from intento.diagnostics import Source
from intento.explain import objective_terms
from intento.semantics import evaluate_choice
from intento.solve import plan, prepare
from tests.planner.generate import planning_case

EXAMPLES = int(os.environ.get("INTENTO_DIFF_EXAMPLES", "200")) // 2

#: Found by hypothesis: with a latency floor and a capacity, a counterfactual that relaxes a hard
#: `require F before A` (a policy's price, a conflict's deletion pass) was checked against a
#: schedule that still waited for F. F never held, the step "never started", and keying that
#: choice by its objective raised OverflowError (an infinite makespan).
RELAXED_BEFORE = """
provider p0 { capacity 1 }
provider p1 { region "eu" }
action a1 { achieves f1; via p0 { cost 1 USD; latency 5ms } }
action a2 { achieves f2; via p1 { cost 2 USD; latency 5ms } }
intent job { given region: string; goal f1%s }
policy q0 { require f2 before a1 }
policy q1 { limit latency >= 1ms }
"""
#: Feasible: prices relax `q0`.
RELAXED_BEFORE_PRICED = (RELAXED_BEFORE % "", {"region": "eu"}, {})
#: Infeasible (f2 then f1 takes 10ms): the deletion pass relaxes `q0`.
RELAXED_BEFORE_CONFLICT = (RELAXED_BEFORE % "; deadline 7ms", {"region": "eu"}, {})


def _spec(text):
    result = check_sources([Source("gen.intent", text)])
    assert result.ok
    return result.spec


def _feasible(problem, relax=frozenset()):
    return cpsat.solve(problem, relax=relax, tiebreak=False).status in ("optimal", "feasible")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(planning_case())
@example(RELAXED_BEFORE_CONFLICT)
def test_minimal_conflicts_are_minimal_and_conflicting(case):
    text, context, state = case
    spec = _spec(text)
    p = plan(spec, "job", context, state)
    assume(p.status == "infeasible")
    problem = prepare(spec, "job", context, state)
    conflict = p.explanation.conflict
    assert conflict, "an infeasible plan names its conflict"
    ids_by_ref = {(m.name, m.text): m.id for m in problem.members}
    conflict_ids = {ids_by_ref[(r.policy, r.statement)] for r in conflict}
    everything_else = frozenset(m.id for m in problem.members) - conflict_ids
    # The set alone admits no plan ...
    assert not _feasible(problem, relax=everything_else)
    # ... and without any one member, the rest of it does.
    for mid in conflict_ids:
        assert _feasible(problem, relax=everything_else | {mid}), f"{mid} is not needed in the conflict"


#: Seconds any one solve of these tests may take: far beyond what they need, so that a loaded
#: machine can never turn a proof into a time-limited answer.
LIMIT_S = 600.0


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(planning_case())
@example(RELAXED_BEFORE_PRICED)
def test_every_delta_is_the_forced_optimum(case):
    text, context, state = case
    spec = _spec(text)
    # Generous limits: the property is about the answers, never about how fast a loaded machine is.
    p = plan(spec, "job", context, state, explain="full", time_limit_s=LIMIT_S)
    assume(p.status == "optimal")
    assert p.explanation.complete, "the time budget was spent: raise LIMIT_S"
    problem = prepare(spec, "job", context, state)
    base = {k: v for k, v in objective_terms(problem, evaluate_choice(problem, {s.action: s.provider for s in p.steps}, {s.action: float(s.start_ms) for s in p.steps})).items()}
    for step in p.explanation.steps:
        for alt in step.alternatives:
            forced = constraint.solve(problem, SolveOptions(time_limit_s=LIMIT_S), force={step.action: alt.provider})
            if alt.reason in ("worse", "tied"):
                assert forced.status == "optimal"
                terms = objective_terms(problem, evaluate_choice(problem, forced.choice, {a: float(t) for a, t in forced.starts.items()}))
                for k, d in alt.delta.items():
                    assert terms[k] - base[k] == type(terms[k])(d), (k, d, terms, base, text)
                assert (alt.reason == "tied") == all(terms[k] == base[k] for k in alt.delta)
            else:
                assert forced.status == "infeasible", (alt, text)


def test_prices_name_the_binding_policy():
    src = """
    provider cheap { region "us" } provider local { region "eu" }
    action a { achieves x; via cheap { cost 1 USD; latency 1ms }; via local { cost 3 USD; latency 1ms } }
    intent job { given r: string; goal x }
    policy stay_local { when r == "eu"; forbid via where region != "eu" }
    policy loose { limit cost <= 100 USD }
    """
    spec = _spec(src)
    p = plan(spec, "job", {"r": "eu"}, None, explain="full")
    prices = {pr.policy: pr for pr in p.explanation.prices}
    assert prices["stay_local"].binding and prices["stay_local"].price["cost"] == "+2"
    assert not prices["loose"].binding and prices["loose"].price["cost"] == "+0"
    assert p.explanation.level == "full"


def test_the_price_of_a_before_policy_is_the_optimum_without_it():
    text, context, state = RELAXED_BEFORE_PRICED
    with_it = plan(_spec(text), "job", context, state, explain="full")
    without = plan(_spec(text.replace("policy q0 { require f2 before a1 }", "")), "job", context, state)
    assert with_it.status == without.status == "optimal"
    price = {pr.policy: pr for pr in with_it.explanation.prices}["q0"]
    assert price.binding
    assert Decimal(price.price["cost"]) == Decimal(with_it.cost) - Decimal(without.cost)
    assert int(price.price["latency_ms"]) == with_it.latency_ms - without.latency_ms


def test_a_conflict_found_by_relaxing_a_before_is_the_true_one():
    text, context, state = RELAXED_BEFORE_CONFLICT
    p = plan(_spec(text), "job", context, state)
    assert p.status == "infeasible"
    assert {r.policy for r in p.explanation.conflict} == {"goal", "deadline", "q0"}


def _answered(e) -> int:
    """How many counterfactual answers an explanation holds (deltas, forbidden-by sets, prices)."""
    alts = sum(1 for s in e.steps for a in s.alternatives if a.delta is not None or (a.reason == "forbidden" and a.by))
    unused = sum(1 for u in e.unused if u.delta is not None or u.impossible)
    return alts + unused + len(e.prices)


def test_max_questions_bounds_the_counterfactuals_and_says_so():
    import intento
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    project = intento.load(root / "examples" / "order_fulfilment", root / "policies")
    given = {"customer.region": "us", "order.amount": "80 USD", "customer.email": "q@example.com"}
    whole = project.plan("fulfil_order", given, explain="full").explanation
    asked = _answered(whole)
    assert whole.complete and whole.truncated_reason is None and asked >= 3
    for k in (0, 1, asked - 1):
        part = project.plan("fulfil_order", given, explain="full", max_questions=k).explanation
        assert not part.complete and part.truncated_reason == "max_questions"
        assert _answered(part) <= k
        # What is there is what the whole explanation says (answered in the same order).
        for s, w in zip(part.steps, whole.steps):
            for a, b in zip(s.alternatives, w.alternatives):
                if a.delta is not None:
                    assert a.delta == b.delta
    assert project.plan("fulfil_order", given, explain="full", max_questions=asked + 5).explanation == whole
