"""Temporal activities: planning and steps, run by an `intento worker`.

Input: plain JSON dicts from the workflow. Output: plain JSON dicts. Planning is an activity so
that the workflow stays deterministic on replay while the plan adapts (a re-plan's answer is
recorded in the workflow history, so a replay reads it instead of solving again).
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from temporalio import activity

from intento.audit import AuditLog
from intento.evaluate import formula_json
from intento.execute.environment import Scenario, StepRequest, simulate_step
from intento.execute.handlers import PermanentError, Registry, RetryableError, StepContext
from intento.solve import plan_problem, prepare
from intento.spec import Spec


class Activities:
    def __init__(self, spec: Spec, scenario: Scenario | None = None, registry: Registry | None = None, audit: AuditLog | None = None, time_scale: float = 0.0):
        self.spec = spec
        self.scenario = scenario
        self.registry = registry or Registry()
        self.audit = audit
        #: Simulation: seconds slept per simulated millisecond (0: answer at once).
        self.time_scale = time_scale

    @activity.defn(name="intento.plan")
    def plan(self, req: dict[str, Any]) -> dict[str, Any]:
        spec = self.spec
        state = {"facts": req["facts"], "providers": req["providers"]}
        excluded = {(a, p): why for a, p, why in req.get("excluded", [])}
        budget = Decimal(req["budget_left"]) if req.get("budget_left") is not None else "declared"
        deadline = req.get("deadline_left", "declared")
        problem = prepare(spec, req["intent"], req["given"], state, deadline_ms=deadline, budget=budget, excluded=excluded, done=req.get("done") or {})
        plan = plan_problem(problem, time_limit_s=req.get("time_limit_s", 10.0), force=req.get("force") or None)
        if not plan.feasible and req.get("force"):
            plan = plan_problem(problem, time_limit_s=req.get("time_limit_s", 10.0))
        if self.audit is not None:
            self.audit.append(spec, req["intent"], dict(problem.context), state, plan, kind="replan" if req.get("plans") else "plan", run=req["run"], reason=req.get("reason"))
        steps = []
        for s in plan.steps:
            a = spec.actions[s.action]
            act = next(x for x in problem.actions if x.name == s.action)
            from intento.semantics import requirement

            steps.append(
                {
                    "action": s.action,
                    "provider": s.provider,
                    "requirement": formula_json(requirement(problem, act)),
                    "latency_ms": s.latency_ms,
                    "timeout_ms": a.timeout_ms,
                    "idempotent": a.idempotent,
                    "external": a.external,
                    "cost": s.cost,
                    "achieves": list(a.achieves),
                    "undo": a.undo,
                }
            )
        return {
            "status": plan.status,
            "steps": steps,
            "goal": formula_json(spec.intents[req["intent"]].goal),
            "cost": plan.cost,
            "latency_ms": plan.latency_ms,
            "conflict": [r.model_dump() for r in (plan.explanation.conflict or [])],
            "summary": plan.explanation.summary,
            "explanation": plan.explanation.model_dump(mode="json"),
        }

    @activity.defn(name="intento.step")
    def step(self, req: dict[str, Any]) -> dict[str, Any]:
        r = StepRequest(req["run"], req["action"], req["provider"], req["attempt"], req["key"], req["latency_ms"], req.get("timeout_ms"), req["idempotent"], req.get("context", {}))
        if self.scenario is not None:
            kind, duration, error = simulate_step(self.scenario, r, req.get("now_ms", 0))
            if self.time_scale:
                time.sleep(duration * self.time_scale)
            return {"kind": kind, "latency_ms": duration, "error": error, "retryable": True}
        fn = self.registry.find(r.action, r.provider)
        t0 = time.perf_counter()
        try:
            if fn is None:
                raise PermanentError(f"no handler registered for `{r.action}` via `{r.provider}`")
            result = fn(StepContext(r.run, r.action, r.provider, r.attempt, r.key, r.context)) or {}
            return {"kind": "succeeded", "latency_ms": int(result.get("latency_ms", (time.perf_counter() - t0) * 1000)), "facts": list(result.get("facts", [])), "error": None, "retryable": True}
        except PermanentError as e:
            return {"kind": "failed", "latency_ms": 0, "error": str(e), "retryable": False}
        except Exception as e:  # RetryableError or a handler bug: a failure of the step
            return {"kind": "failed", "latency_ms": 0, "error": f"{type(e).__name__}: {e}" if not isinstance(e, RetryableError) else str(e), "retryable": True}

    @activity.defn(name="intento.reconcile")
    def reconcile(self, req: dict[str, Any]) -> bool | None:
        """Did a lost step take effect? The registered reconciler answers; None: nobody can tell."""
        fn = self.registry.reconcilers.get(req["action"])
        if fn is None:
            return None
        return bool(fn(StepContext(req["run"], req["action"], req["provider"], req["attempt"], req["key"], req.get("context", {}))))
