"""The embedding API: caching, async planning, hints, thread safety, typed exceptions, OpenAPI."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import intento
from intento.service import create_app

ROOT = Path(__file__).resolve().parents[2]
US = {"customer.region": "us", "order.amount": "80 USD", "customer.email": "a@example.com"}


@pytest.fixture
def project():
    return intento.load(ROOT / "examples" / "order_fulfilment", ROOT / "policies")


def test_repeated_requests_are_served_from_the_cache(project):
    first = project.plan("fulfil_order", US)
    again = project.plan("fulfil_order", US)
    # A hit is the cached plan itself, frozen: no copy, and the cache cannot be corrupted.
    assert project.cache_hits == 1 and again is first and first.frozen
    steps = first.to_json()
    for change in (lambda: again.steps.clear(), lambda: again.steps[0].achieves.append("x"), lambda: setattr(again, "cost", "0"),
                   lambda: setattr(again.steps[0], "provider", "x"), lambda: again.explanation.steps.pop()):
        with pytest.raises(intento.FrozenError):
            change()
    assert project.plan("fulfil_order", US).to_json() == steps
    # A copy to change is asked for, and equals the plan until it is changed.
    mine = again.editable()
    assert mine == again and not mine.frozen
    mine.steps.clear()
    assert mine != again and project.plan("fulfil_order", US).to_json() == steps
    # A plan that is never cached (timings) is frozen as well: the same code works on both.
    assert project.plan("fulfil_order", US, include_timings=True).frozen
    # Maps too (a full explanation's deltas), and every way of changing a list or a map.
    full = project.plan("fulfil_order", US, explain="full")
    delta = next(a.delta for s in full.explanation.steps for a in s.alternatives if a.delta)
    steps = full.steps
    for change in (lambda: delta.update(cost="0"), lambda: delta.__setitem__("cost", "0"), lambda: delta.pop("cost"), lambda: delta.clear(),
                   lambda: steps.__setitem__(0, steps[1]), lambda: steps.sort(key=str), lambda: steps.extend([]), lambda: steps.insert(0, steps[0]),
                   lambda: steps.reverse(), lambda: steps.remove(steps[0]), lambda: steps.__delitem__(0)):
        with pytest.raises(intento.FrozenError):
            change()
    assert full.to_json() == project.plan("fulfil_order", US, explain="full").to_json()
    other = project.plan("fulfil_order", US, {"providers": {"stripe": {"status": "down"}}})
    assert other.step("charge_payment").provider != first.step("charge_payment").provider
    timed = project.plan("fulfil_order", US, include_timings=True)
    assert timed.solver.wall_ms is not None and project.cache_hits == 4


def test_async_and_threads_give_the_same_plan(project):
    async def many():
        return await asyncio.gather(*(project.aplan("fulfil_order", dict(US, **{"customer.email": f"{i}@x"})) for i in range(6)))

    plans = asyncio.run(many())
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda i: project.plan("fulfil_order", dict(US, **{"customer.email": f"t{i}@x"})), range(6)))
    assert len({json.dumps([(s.action, s.provider) for s in p.steps]) for p in plans + threaded}) == 1


def test_hint_never_changes_the_answer(project):
    base = project.plan("fulfil_order", US, explain="none")
    wrong_hint = intento.Plan.model_validate(base.model_dump())
    for s in wrong_hint.steps:
        s.provider = "braintree" if s.action == "charge_payment" else s.provider
    hinted = intento.load(ROOT / "examples" / "order_fulfilment", ROOT / "policies").plan("fulfil_order", US, explain="none", hint=wrong_hint)
    assert hinted.steps == base.steps


def test_typed_exceptions(tmp_path, project):
    bad = tmp_path / "bad.intent"
    bad.write_text("intent x { }")
    with pytest.raises(intento.ProjectError) as e:
        intento.load(bad)
    assert e.value.diagnostics[0].code == "E017"
    with pytest.raises(intento.RequestError):
        project.plan("fulfil_order", {})
    assert issubclass(intento.RequestError, intento.IntentoError)


def test_committed_openapi_matches_the_app(project, tmp_path):
    app = create_app(project.spec, tmp_path / "o.db")
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert app.openapi() == committed
    assert committed["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer", "description": "INTENTO_TOKEN (docs/api.md)"}
    assert committed["paths"]["/healthz"]["get"]["security"] == [] and committed["security"] == [{"bearer": []}]
    cancel = committed["paths"]["/v1/runs/{run_id}/cancel"]["post"]["responses"]
    assert {"401", "404", "409", "422"} <= set(cancel) and "application/problem+json" in cancel["409"]["content"]
    assert "HTTPValidationError" not in committed["components"]["schemas"]
    paths = set(committed["paths"])
    assert {"/v1/plan", "/v1/explain", "/v1/check", "/v1/runs", "/v1/runs/{run_id}", "/v1/runs/{run_id}/observations", "/v1/audit", "/v1/audit/verify", "/healthz", "/metrics"} <= paths


def test_built_problems_are_shared_by_requests_that_shape_the_model_alike(project):
    from intento.solve import _PROBLEMS, PROBLEM_CACHE_STATS, prepare

    _PROBLEMS.clear()  # the cache is process-wide: start from empty
    a = prepare(project.spec, "fulfil_order", dict(US, **{"customer.email": "one@x"}))
    hits = PROBLEM_CACHE_STATS["hits"]
    b = prepare(project.spec, "fulfil_order", dict(US, **{"customer.email": "two@x", "order.amount": "90 USD"}))
    assert PROBLEM_CACHE_STATS["hits"] == hits + 1  # no guard changed: the same model
    assert b.context["customer.email"] == "two@x" and a.context["customer.email"] == "one@x"
    c = prepare(project.spec, "fulfil_order", dict(US, **{"order.amount": "1500 USD"}))  # fraud_check_large now applies
    assert PROBLEM_CACHE_STATS["hits"] == hits + 1 and {p.name for p in c.applicable} - {p.name for p in a.applicable} == {"fraud_check_large"}
