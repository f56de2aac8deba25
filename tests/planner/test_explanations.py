"""Explanations are the solver's own: minimal conflicts are minimal and conflicting (verified by
re-solving), and every counterfactual delta equals the optimum re-solved with that option forced
(by the exhaustive back-end, independently of CP-SAT)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, assume, given, settings

from intento.backends import constraint
from intento.backends import cpsat
from intento.check import check_sources
from intento.diagnostics import Source
from intento.explain import objective_terms
from intento.semantics import evaluate_choice
from intento.solve import plan, prepare
from tests.planner.generate import planning_case

EXAMPLES = int(os.environ.get("INTENTO_DIFF_EXAMPLES", "200")) // 2


def _spec(text):
    result = check_sources([Source("gen.intent", text)])
    assert result.ok
    return result.spec


def _feasible(problem, relax=frozenset()):
    return cpsat.solve(problem, relax=relax, tiebreak=False).status in ("optimal", "feasible")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(planning_case())
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


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(planning_case())
def test_every_delta_is_the_forced_optimum(case):
    text, context, state = case
    spec = _spec(text)
    p = plan(spec, "job", context, state, explain="full")
    assume(p.status == "optimal")
    problem = prepare(spec, "job", context, state)
    base = {k: v for k, v in objective_terms(problem, evaluate_choice(problem, {s.action: s.provider for s in p.steps}, {s.action: float(s.start_ms) for s in p.steps})).items()}
    for step in p.explanation.steps:
        for alt in step.alternatives:
            forced = constraint.solve(problem, force={step.action: alt.provider})
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
