"""One time budget per request (issue 20): the main solve, the minimal-conflict search and every
counterfactual of a full explanation share the request's `time_limit_s`.

No wall clock: `cpsat.clock` is replaced by a fake one that each CP-SAT solve advances by a fixed
step, as if every solve took that long, and every time limit handed to CP-SAT is recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
from ortools.sat.python import cp_model

import intento
from intento.backends import cpsat
from intento.solve import plan

ROOT = Path(__file__).resolve().parents[2]
US = {"customer.region": "us", "order.amount": "80 USD", "customer.email": "a@example.com"}
EU = dict(US, **{"customer.region": "eu"})
ADYEN_DOWN = {"providers": {"adyen": {"status": "down"}}}


@pytest.fixture(scope="module")
def spec():
    return intento.load(ROOT / "examples" / "order_fulfilment", ROOT / "policies").spec


class Recorder:
    """A fake clock, advanced by ``step`` seconds by every CP-SAT solve; records (clock at the
    call, time limit given) of each solve."""

    def __init__(self, monkeypatch, step: float):
        self.t = 0.0
        self.calls: list[tuple[float, float]] = []
        real = cp_model.CpSolver.solve
        rec = self

        def solve(solver, model, *args, **kwargs):
            limit = solver.parameters.max_time_in_seconds
            rec.calls.append((rec.t, limit))
            result = real(solver, model, *args, **kwargs)
            rec.t += min(limit, step)
            return result

        monkeypatch.setattr(cp_model.CpSolver, "solve", solve)
        monkeypatch.setattr(cpsat, "clock", lambda: rec.t)

    def within(self, budget: float) -> bool:
        """Every solve was given at most what was left of the budget when it started."""
        return all(t + limit <= budget + 1e-9 for t, limit in self.calls)


def test_full_explanation_shares_the_time_limit(monkeypatch, spec):
    rec = Recorder(monkeypatch, step=0.125)
    p = plan(spec, "fulfil_order", US, explain="full", time_limit_s=1.0)
    assert p.status == "optimal"
    # Eight steps of 0.125 s fit in the budget; without one budget, each of the dozens of
    # counterfactual solves got the whole second.
    assert len(rec.calls) <= 8 and rec.within(1.0), rec.calls
    assert rec.t <= 1.0 + 1e-9
    assert p.explanation.level == "full"
    assert p.explanation.complete is False and p.explanation.truncated_reason == "time_limit"


def test_conflict_search_shares_the_time_limit(monkeypatch, spec):
    rec = Recorder(monkeypatch, step=0.125)
    p = plan(spec, "fulfil_order", EU, ADYEN_DOWN, explain="basic", time_limit_s=0.5)
    assert p.status == "infeasible"
    assert len(rec.calls) <= 4 and rec.within(0.5), rec.calls
    assert p.explanation.conflict is None
    assert p.explanation.complete is False and p.explanation.truncated_reason == "time_limit"


def test_each_sub_solve_gets_what_is_left(monkeypatch, spec):
    # A budget large enough for everything: the explanation is complete, and every solve was
    # still given only what was left, never the whole limit again.
    rec = Recorder(monkeypatch, step=0.0078125)
    p = plan(spec, "fulfil_order", US, explain="full", time_limit_s=100.0)
    assert p.explanation.complete is True and p.explanation.truncated_reason is None
    assert len(rec.calls) > 10 and rec.within(100.0)
    assert [limit for _, limit in rec.calls] == sorted((limit for _, limit in rec.calls), reverse=True)


def test_unspent_budget_gives_the_same_answer(monkeypatch, spec):
    # When the budget is not hit, the shared budget changes nothing: the same plan and the same
    # explanation as solves that each get a fresh limit (a clock that never moves).
    free = plan(spec, "fulfil_order", US, explain="full", time_limit_s=30.0)
    Recorder(monkeypatch, step=0.0)
    again = plan(spec, "fulfil_order", US, explain="full", time_limit_s=30.0)
    assert again.to_json() == free.to_json() and free.explanation.complete
    infeasible = plan(spec, "fulfil_order", EU, ADYEN_DOWN, time_limit_s=30.0)
    assert infeasible.explanation.complete and {c.policy for c in infeasible.explanation.conflict} == {"goal", "adyen", "eu_data_residency"}
