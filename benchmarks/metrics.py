"""Metrics from event logs (never from a planner's own claims) and an independent policy check.

Input: a store and a run id (any strategy's), and the request. Output: `RunMetrics`: whether the
goal was reached, cost of what ran, makespan, deadline miss, re-plans, and the hard policies the
executed steps broke, judged by evaluating each policy on the steps that actually succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from intento.evaluate import attr_lookup, evaluate, formula_holds
from intento.problem import policy_applies
from intento.solve import prepare
from intento.spec import Spec
from intento.syntax import ast


@dataclass
class RunMetrics:
    strategy: str
    success: bool
    cost: Decimal
    latency_ms: int
    deadline_missed: bool
    replans: int
    attempts: int
    failures: int
    violations: list[str] = field(default_factory=list)


def measure(store, run_id: str, strategy: str, spec: Spec, intent: str, given: dict) -> RunMetrics:
    events = store.events(run_id)
    start = events[0]["at"]
    end = events[-1]["at"]
    succeeded = [e["data"] for e in events if e["type"] == "step_succeeded" and not e["data"].get("compensation_for")]
    cost = sum((Decimal(d.get("cost", "0")) for d in succeeded), Decimal(0))
    success = events[-1]["type"] == "succeeded"
    deadline = spec.intents[intent].deadline_ms
    return RunMetrics(
        strategy=strategy,
        success=success,
        cost=cost,
        latency_ms=end - start,
        deadline_missed=deadline is not None and (not success or end - start > deadline),
        replans=max(0, sum(1 for e in events if e["type"] == "planned") - 1),
        attempts=sum(1 for e in events if e["type"] == "step_dispatched"),
        failures=sum(1 for e in events if e["type"] in ("step_failed", "step_timed_out")),
        violations=violations(spec, intent, given, [(d["action"], d["provider"]) for d in succeeded], cost),
    )


def violations(spec: Spec, intent: str, given: dict, executed: list[tuple[str, str]], cost: Decimal) -> list[str]:
    """Hard policies (and the budget) broken by the steps that ran, judged on those steps alone."""
    problem = prepare(spec, intent, given)
    ispec = spec.intents[intent]
    out = []
    attrs = {(a, p): problem.option(a, p).attrs for a, p in executed if problem.option(a, p) is not None}
    providers = {a: p for a, p in executed}
    for pol in spec.policies.values():
        if pol.soft is not None or not policy_applies(pol, ispec, problem.context):
            continue
        for st in pol.statements:
            bad = None
            match st:
                case ast.ForbidVia():
                    scope = None if st.actions is None else {x.name for x in st.actions}
                    bad = next((f"{a} via {p}" for (a, p), at in attrs.items() if (scope is None or a in scope) and evaluate(st.pred, attr_lookup(at))), None)
                case ast.RequireFor():
                    scope = {x.name for x in st.actions}
                    bad = next((f"{a} via {p}" for (a, p), at in attrs.items() if a in scope and not evaluate(st.pred, attr_lookup(at))), None)
                case ast.ForbidProvider():
                    bad = next((a for a, p in executed if p == st.provider.name), None)
                case ast.ForbidAction():
                    bad = st.action.name if st.action.name in providers else None
                case ast.Distinct():
                    used = [providers[x.name] for x in st.actions if x.name in providers]
                    bad = "same provider" if len(used) != len(set(used)) else None
                case ast.Limit() if st.metric.name == "cost":
                    from intento.evaluate import COMPARE

                    bad = None if COMPARE[st.op](cost, st.value.value.amount) else f"cost {cost}"
            if bad:
                out.append(f"{pol.name}: {bad}")
    if ispec.budget is not None and cost > ispec.budget:
        out.append(f"budget: {cost} > {ispec.budget}")
    return out


def goal_reached(spec: Spec, intent: str, facts: set[str]) -> bool:
    return formula_holds(spec.intents[intent].goal, facts)
