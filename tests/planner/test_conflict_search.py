"""The minimal-conflict search (explain.minimal_conflict): whichever way it runs (CP-SAT's core
then a core-guided deletion, divide and conquer, or full solves where a latency floor meets a
capacity), its answer is verified here by solving the plain model independently (relaxing every
other member, no assumptions): the conflict admits no plan, and without any one of its members
the rest does."""

from __future__ import annotations

import pytest

from benchmarks.conflicts import infeasible_estate
from intento import explain
from intento.backends import cpsat
from intento.check import check_sources
from intento.diagnostics import Source
from intento.backends import SolveOptions
from intento.solve import prepare, solve_problem, to_plan


def _problem(size: int, seed: int):
    case = infeasible_estate(size, seed)
    assert 20 <= case.policies <= 27
    result = check_sources([Source(f"c{seed}.intent", case.source)])
    assert result.ok, result.diagnostics
    return prepare(result.spec, case.intent, {"request.region": case.region}, None)


def _feasible(problem, relax: frozenset[str]) -> bool:
    status = cpsat.solve(problem, relax=relax, tiebreak=False).status
    assert status != "unknown"
    return status in ("optimal", "feasible")


def _assert_minimal(problem, conflict) -> None:
    ids = {m.id for m in conflict}
    everything_else = frozenset(m.id for m in problem.members) - ids
    assert not _feasible(problem, everything_else), "the conflict alone must admit no plan"
    for mid in ids:
        assert _feasible(problem, everything_else | {mid}), f"{mid} is not needed in the conflict"


CASES = [(20, s) for s in range(4)] + [(50, 1), (50, 2)]


@pytest.mark.parametrize("size,seed", CASES)
def test_conflicts_of_generated_infeasible_estates_are_minimal(size, seed):
    problem = _problem(size, seed)
    conflict = explain.minimal_conflict(problem, time_limit_s=600.0)
    assert conflict, "an infeasible estate has a conflict"
    _assert_minimal(problem, conflict)


@pytest.mark.parametrize("size,seed", [(20, 0), (20, 2), (50, 1)])
def test_divide_and_conquer_finds_a_minimal_conflict_too(size, seed, monkeypatch):
    # Every core counts as large, so the divide-and-conquer search runs on it.
    monkeypatch.setattr(explain, "QUICKXPLAIN_FROM", 0)
    problem = _problem(size, seed)
    conflict = explain.minimal_conflict(problem, time_limit_s=600.0)
    assert conflict
    _assert_minimal(problem, conflict)


def test_divide_and_conquer_from_every_member_is_minimal():
    # Without the solver's core: QuickXplain over all members (the worst case it exists for).
    problem = _problem(20, 1)
    c = explain.compile_problem(problem, literals=True)
    members = [m for m in problem.members if m.id in c.literals]
    oracle = explain._Oracle(c, {m.id: c.literals[m.id] for m in members}, cpsat.clock() + 600.0)
    found = explain._quickxplain(oracle, [m.id for m in members])
    assert found
    _assert_minimal(problem, [m for m in members if m.id in found])


def test_kept_members_stay_in_the_conflict_where_they_can():
    # The base request is infeasible on its own (every provider of its last action banned); a
    # further ban, on an action the request needs, is in a second conflict. Asked to keep it, the
    # search returns the conflict holding it; either way the answer is minimal.
    problem = _problem(20, 0)
    plain = explain.minimal_conflict(problem, time_limit_s=600.0)
    assert plain
    _assert_minimal(problem, plain)
    outside = [m for m in problem.members if m.id not in {x.id for x in plain}]
    assert outside
    for m in outside[:4]:
        kept = explain.minimal_conflict(problem, time_limit_s=600.0, keep=frozenset({m.id}))
        assert kept
        _assert_minimal(problem, kept)


def test_a_spent_budget_gives_no_conflict_and_a_truncated_explanation():
    problem = _problem(50, 1)
    assert explain.minimal_conflict(problem, time_limit_s=600.0, deadline=cpsat.clock() - 1) is None
    # Through the planner: an infeasibility proved, then a request's budget already spent when
    # the conflict search would start, gives an explanation marked incomplete, never a wrong one.
    options = SolveOptions(time_limit_s=600.0)
    sol = solve_problem(problem, "cpsat", options)
    assert sol.status == "infeasible"
    p = to_plan(problem, sol, SolveOptions(time_limit_s=600.0, deadline=cpsat.clock() - 1))
    assert p.status == "infeasible" and not p.explanation.complete and not p.explanation.conflict
    full = to_plan(problem, sol, options)
    assert full.explanation.complete and full.explanation.conflict
