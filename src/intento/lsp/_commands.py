"""The commands behind the code lenses: run one policy test, plan an intent with a test's givens.

Input: a project's files (open documents' text included), a test name (and an intent). Output:
a JSON-able dict that `workspace/executeCommand` returns, with ``ok`` and a one-line
``message`` that the server also shows. Both need a project that checks (a `Spec`); if it does
not, the answer says how many errors it has and the first one.

Run on the server's worker thread: solving may take up to the time limit.
"""

from __future__ import annotations

from typing import Any

from intento.diagnostics import IntentoError
from intento.lsp._project import CheckResult
from intento.values import render_value


def _spec_or_message(result: CheckResult) -> tuple[Any, str | None]:
    if result.spec is not None:
        return result.spec, None
    errors = [d for diags in result.by_key.values() for d in diags if d.is_error] + [d for d in result.unlocated if d.is_error]
    first = errors[0].one_line() if errors else "the project does not check"
    return None, f"the project has {len(errors)} error{'s' * (len(errors) != 1)}; fix them first: {first}"


def _find_test(spec, name: str):
    return next((t for t in spec.tests if t.name == name), None)


def run_test(result: CheckResult, name: str, time_limit_s: float) -> dict[str, Any]:
    from intento.policytest import run_test as run

    spec, problem = _spec_or_message(result)
    if spec is None:
        return {"ok": False, "name": name, "passed": False, "message": problem}
    test = _find_test(spec, name)
    if test is None:
        return {"ok": False, "name": name, "passed": False, "message": f"no test {render_value(name)} in the project"}
    r = run(spec, test, time_limit_s)
    shown = render_value(name)
    if r.passed:
        message = f"PASS test {shown} ({r.seconds * 1000:.0f} ms): {r.plan_summary}"
    elif r.error:
        message = f"ERROR test {shown}: {r.error}"
    else:
        message = f"FAIL test {shown}: expected " + "; expected ".join(r.failures) + (f" (plan: {r.plan_summary})" if r.plan_summary else "")
    return {
        "ok": True,
        "name": r.name,
        "passed": r.passed,
        "failures": list(r.failures),
        "error": r.error,
        "plan": r.plan_summary,
        "seconds": round(r.seconds, 3),
        "location": r.location,
        "message": message,
    }


def plan_intent(result: CheckResult, intent: str, test_name: str, time_limit_s: float) -> dict[str, Any]:
    """Plan ``intent`` with the `given` values and the observations of test ``test_name``."""
    from intento.policytest import _given, _state, summarize
    from intento.solve import plan_problem, prepare

    spec, problem = _spec_or_message(result)
    base = {"intent": intent, "test": test_name}
    if spec is None:
        return {"ok": False, **base, "message": problem}
    test = _find_test(spec, test_name)
    if test is None or test.plan is None:
        return {"ok": False, **base, "message": f"no test {render_value(test_name)} with a `plan` in the project"}
    try:
        prepared = prepare(spec, intent, _given(test.plan), _state(test.plan.observe))
    except IntentoError as e:
        return {"ok": False, **base, "message": "cannot plan: " + "; ".join(d.message for d in e.diagnostics)}
    p = plan_problem(prepared, time_limit_s=time_limit_s, explain="basic")
    summary = summarize(p)
    return {
        "ok": True,
        **base,
        "status": p.status,
        "feasible": p.feasible,
        "summary": summary,
        "steps": [{"action": s.action, "provider": s.provider, "start_ms": s.start_ms, "end_ms": s.end_ms} for s in p.steps] if p.feasible else [],
        "cost": p.cost if p.feasible else None,
        "latency_ms": p.latency_ms if p.feasible else None,
        "message": f"plan {intent} with the givens of test {render_value(test_name)}: {summary}",
    }
