"""Full explanations give a counterfactual for every route the plan does not take (issue 16):
an action left out because it is not needed gets the delta of the best plan that uses it, the
same answer as asking `--why-not "use ACTION"`, or, when no plan can use it, the minimal
conflict that forbids it."""

from __future__ import annotations

from pathlib import Path

import pytest

import intento
from benchmarks.scenarios import estate
from intento.check import check_sources
from intento.diagnostics import Source
from intento.render import explanation_markdown, plan_text
from intento.solve import plan, plan_problem, prepare
from intento.whynot import answer, parse_questions

ROOT = Path(__file__).resolve().parents[2]
SETTLE_GIVEN = {"customer.region": "eu", "settlement.date": "2026-11-24", "settlement.expected_total": "1200000 USD"}

BUDGET = """
provider p { region "eu" }
action main { achieves job.done; via p { cost 1 USD; latency 1s } }
action extra { achieves side.done; via p { cost 5 USD; latency 1s } }
intent job { goal job.done; budget 3 USD }
"""


def _unused(p, action):
    return next(u for u in p.explanation.unused if u.action == action)


def test_the_manual_fetch_is_priced_as_a_route_not_taken():
    spec = intento.load(ROOT / "examples" / "settlement", ROOT / "policies" / "common").spec
    problem = prepare(spec, "settle_daily", SETTLE_GIVEN, None)
    p = plan_problem(problem, explain="full")
    u = _unused(p, "fetch_file_manually")
    assert u.reason == "not_needed" and not u.impossible and u.via == "ops_desk"
    asked = answer(problem, p, parse_questions(problem, ["use fetch_file_manually"]))
    assert asked.feasible and u.delta == asked.delta  # the same counterfactual as asking for it
    assert u.delta["cost"] == "+25"
    assert "fetch_file_manually: not used: not needed; using it (via ops_desk) would be +25 USD" in plan_text(p)
    assert "## Routes not taken" in explanation_markdown(p, spec, SETTLE_GIVEN)


def test_a_route_no_plan_can_take_names_what_forbids_it():
    spec = check_sources([Source("b.intent", BUDGET)]).spec
    p = plan(spec, "job", {}, None, explain="full")
    u = _unused(p, "extra")
    assert u.reason == "not_needed" and u.impossible and u.delta is None
    assert [r.kind for r in u.by] == ["budget"] and u.by[0].location.startswith("b.intent:")
    assert "extra: not used: not needed, and no plan could use it: budget" in plan_text(p)
    basic = plan(spec, "job", {}, None, explain="basic")
    assert _unused(basic, "extra").delta is None and not _unused(basic, "extra").impossible  # only full explanations compute them


@pytest.mark.parametrize("seed", range(4))
def test_routes_not_taken_match_the_exhaustive_back_end(seed):
    e = estate(6, n_providers=6, seed=100 + seed, options=(2, 3))
    spec = check_sources([Source(f"e{seed}", e.source)]).spec
    problem = prepare(spec, e.intent, e.given("eu" if seed % 2 else "us"), None)
    p = plan_problem(problem, explain="full")
    if not p.feasible:
        pytest.skip("this generated estate has no plan")
    checked = 0
    for u in p.explanation.unused:
        if u.reason != "not_needed":
            continue
        slow = answer(problem, plan_problem(problem, backend="constraint", explain="none"), parse_questions(problem, [f"use {u.action}"]), backend="constraint")
        assert slow.feasible == (not u.impossible)
        if slow.feasible:
            assert slow.delta == u.delta
        checked += 1
    assert checked or not [u for u in p.explanation.unused if u.reason == "not_needed"]
