"""Policy tests: the `test` blocks of a project, planned and judged.

Input: a `Spec` (its `tests`). Output: one `TestResult` per test: passed or failed, and for a
failure what was expected and what the plan was. `intento test` prints them like a unit-test
runner and can write JUnit XML for CI systems.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from intento.diagnostics import IntentoError
from intento.evaluate import COMPARE, attr_lookup, evaluate
from intento.plan import Plan
from intento.solve import plan_problem, prepare
from intento.spec import Spec, TestSpec
from intento.syntax import ast
from intento.syntax._format import _test_item as render_expect
from intento.values import to_json


@dataclass
class TestResult:
    name: str
    location: str
    passed: bool
    failures: list[str] = field(default_factory=list)
    plan_summary: str = ""
    seconds: float = 0.0
    error: str | None = None


def _state(observe: tuple[ast.Observation, ...] | None) -> dict[str, Any]:
    facts, providers = [], {}
    for ob in observe or ():
        if ob.subject.name == "fact" and ob.word.name not in ("up", "down", "degraded"):
            facts.append(ob.word.name)
            continue
        entry: dict[str, Any] = {"status": ob.word.name}
        for a in ob.attrs or ():
            v = a.value.value
            entry[a.name.name] = v if isinstance(v, Decimal) else to_json(v)
        providers[ob.subject.name] = entry
    return {"facts": facts, "providers": providers}


def _given(step: ast.PlanStep) -> dict[str, Any]:
    # Numbers stay Decimal: a request's JSON numbers are read exactly as Decimal too.
    return {gv.name.name: (gv.value.value if isinstance(gv.value.value, Decimal) else to_json(gv.value.value)) for gv in step.given or ()}


def summarize(p: Plan) -> str:
    if not p.feasible:
        conflict = ", ".join(r.policy for r in (p.explanation.conflict or []))
        return f"{p.status}" + (f" (conflict: {conflict})" if conflict else "")
    steps = ", ".join(f"{s.action} via {s.provider}" for s in p.steps)
    return f"{p.status}: {steps}; cost {p.cost} {p.currency}, latency {p.latency_ms}ms, reliability {p.reliability:.6g}"


def run_test(spec: Spec, test: TestSpec, time_limit_s: float = 10.0) -> TestResult:
    t0 = time.perf_counter()
    where = test.span.location
    step = test.plan
    assert step is not None  # INVARIANT: the checker rejects a test without `plan`
    try:
        problem = prepare(spec, step.intent.name, _given(step), _state(step.observe))
    except IntentoError as e:
        return TestResult(test.name, where, False, error="; ".join(d.message for d in e.diagnostics), seconds=time.perf_counter() - t0)
    p = plan_problem(problem, time_limit_s=time_limit_s, explain="basic")
    failures = [f for ex in test.expects if (f := _judge(problem, p, ex))]
    return TestResult(test.name, where, not failures, failures, summarize(p), time.perf_counter() - t0)


def _judge(problem, p: Plan, ex: ast.Expectation) -> str | None:
    """None when the expectation holds, else a sentence saying what was expected and what came."""
    want = render_expect(ex)
    where = ex.span.location if ex.span else ""
    match ex:
        case ast.ExpectFeasible():
            return None if p.feasible else f"{where}: {want}, but the request is {p.status}"
        case ast.ExpectInfeasible():
            if p.feasible:
                return f"{where}: {want}, but a plan exists"
            names = {r.policy for r in (p.explanation.conflict or [])}
            missing = [n.name for n in ex.because if n.name not in names]
            if missing:
                return f"{where}: {want}, but the minimal conflict is {{{', '.join(sorted(names))}}}, without {', '.join(missing)}"
            return None
    if not p.feasible:
        return f"{where}: {want}, but the request is {p.status}"
    match ex:
        case ast.ExpectVia():
            s = p.step(ex.action.name)
            if s is None:
                return f"{where}: {want}, but the plan has no step {ex.action.name}"
            return None if s.provider == ex.provider.name else f"{where}: {want}, but {ex.action.name} runs via {s.provider}"
        case ast.ExpectNoVia():
            scope = None if ex.actions is None else {a.name for a in ex.actions}
            offending = []
            for s in p.steps:
                if scope is not None and s.action not in scope:
                    continue
                opt = problem.option(s.action, s.provider)
                if opt is not None and evaluate(ex.pred, attr_lookup(opt.attrs)):
                    offending.append(f"{s.action} via {s.provider}")
            return f"{where}: {want}, but the plan has {', '.join(offending)}" if offending else None
        case ast.ExpectStep():
            has = p.step(ex.action.name) is not None
            if has == ex.present:
                return None
            return f"{where}: {want}, but the plan {'has no' if ex.present else 'has a'} step {ex.action.name}"
        case ast.ExpectMetric():
            v = ex.value.value
            m = ex.metric.name
            if m == "cost":
                actual, bound, shown = Decimal(p.cost), v.amount, f"{p.cost} {p.currency}"
            elif m == "latency":
                actual, bound, shown = p.latency_ms, v.ms, f"{p.latency_ms}ms"
            else:
                actual, bound, shown = Decimal(repr(p.reliability)), v, f"{p.reliability:.6g}"
            return None if COMPARE[ex.op](actual, bound) else f"{where}: {want}, but the plan's {m} is {shown}"
        case ast.ExpectBroken():
            broken = {b.policy for b in p.broken}
            return None if ex.policy.name in broken else f"{where}: {want}, but the plan breaks {sorted(broken) or 'no soft policy'}"
    raise AssertionError(f"unknown expectation {ex!r}")


def run_tests(spec: Spec, name_filter: str | None = None, time_limit_s: float = 10.0) -> list[TestResult]:
    return [run_test(spec, t, time_limit_s) for t in spec.tests if not name_filter or name_filter in t.name]


def junit_xml(results: list[TestResult], suite: str = "intento") -> str:
    failures = sum(1 for r in results if not r.passed and r.error is None)
    errors = sum(1 for r in results if r.error is not None)
    root = ET.Element("testsuite", name=suite, tests=str(len(results)), failures=str(failures), errors=str(errors), time=f"{sum(r.seconds for r in results):.3f}")
    for r in results:
        case = ET.SubElement(root, "testcase", classname=r.location.rsplit(":", 2)[0], name=r.name, time=f"{r.seconds:.3f}")
        if r.error is not None:
            ET.SubElement(case, "error", message=r.error).text = r.error
        elif not r.passed:
            text = "\n".join(r.failures) + f"\nplan: {r.plan_summary}"
            ET.SubElement(case, "failure", message=r.failures[0]).text = text
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
