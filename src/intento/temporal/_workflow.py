"""The Temporal workflow of one run: the embedded executor's semantics, deterministically.

State lives in the workflow (rebuilt by Temporal from its history); every plan comes from the
``intento.plan`` activity and every step is an ``intento.step`` activity that Temporal does not
retry by itself (retries and fallbacks come from re-planning, as in the embedded executor).
Observations arrive as the ``observe`` signal; ``status`` and ``explanation`` are queries.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from intento.evaluate import holds_json

#: Same health rule as the embedded executor (intento.execute.state).
HEALTH_WINDOW_MS = 60_000
HEALTH_DOWN_AFTER = 2
COOL_DOWN_MS = 300_000
MAX_PLANS = 200
ONCE = RetryPolicy(maximum_attempts=1)


@workflow.defn(name="intento.run")
class IntentRun:
    def __init__(self) -> None:
        self.inbox: list[dict] = []
        self.events: list[dict] = []
        self.state: str = "running"
        self.plan: dict | None = None
        self.facts: set[str] = set()
        self.done: dict[str, str] = {}

    @workflow.signal
    def observe(self, data: dict) -> None:
        self.inbox.append(data)

    @workflow.query
    def status(self) -> dict:
        return {"status": self.state, "facts": sorted(self.facts), "done": dict(self.done), "events": list(self.events)}

    @workflow.query
    def explanation(self) -> dict | None:
        return (self.plan or {}).get("explanation")

    def _now(self, start) -> int:
        return int((workflow.now() - start).total_seconds() * 1000)

    def _event(self, start, type_: str, **data) -> None:
        self.events.append({"type": type_, "at": self._now(start), **data})

    def _health(self, failures: dict[str, list[int]], observed: dict[str, dict], now: int) -> dict[str, dict]:
        out = {}
        providers = set(failures) | set(observed)
        for p in sorted(providers):
            obs = observed.get(p)
            if obs and obs.get("status") in ("down", "degraded"):
                out[p] = {k: v for k, v in obs.items() if k in ("status", "latency", "cost", "reliability")}
                continue
            recent = [t for t in failures.get(p, []) if now - t <= HEALTH_WINDOW_MS]
            last = max(failures.get(p, [0]) or [0])
            if len(recent) >= HEALTH_DOWN_AFTER and now - last < COOL_DOWN_MS:
                out[p] = {"status": "down"}
            elif recent:
                out[p] = {"status": "degraded"}
        return out

    @workflow.run
    async def run(self, req: dict[str, Any]) -> dict[str, Any]:
        start = workflow.now()
        run_id = workflow.info().workflow_id
        self.facts = set(req.get("facts", []))
        failures: dict[str, list[int]] = {}
        observed: dict[str, dict] = dict(req.get("providers", {}))
        excluded: list[list[str]] = []
        attempts: dict[str, int] = {}
        completed: list[tuple[str, str, dict]] = []
        running: dict[str, tuple[str, int, Any]] = {}
        spent = 0.0
        deadline = req.get("deadline_ms")
        budget = req.get("budget")
        reason: str | None = "run started"
        plans = 0
        self._event(start, "run_started", intent=req["intent"])
        while True:
            for ob in self.inbox:
                if ob.get("fact"):
                    self.facts.add(ob["fact"])
                if ob.get("provider"):
                    observed[ob["provider"]] = ob
                self._event(start, "observation", **ob)
                reason = "observation"
            self.inbox.clear()
            if reason is not None:
                now = self._now(start)
                plans += 1
                if plans > MAX_PLANS:
                    return await self._give_up(start, req, completed, {"reason": "too many re-plans"})
                force = {a: p for a, (p, _, _) in running.items()}
                self.plan = await workflow.execute_activity(
                    "intento.plan",
                    {
                        "run": run_id,
                        "intent": req["intent"],
                        "given": req["given"],
                        "facts": sorted(self.facts),
                        "providers": self._health(failures, observed, now),
                        "excluded": excluded,
                        "done": dict(self.done),
                        "force": force,
                        "deadline_left": None if deadline is None else max(0, deadline - now),
                        "budget_left": None if budget is None else str(max(0.0, float(budget) - spent)),
                        "reason": reason,
                        "plans": plans - 1,
                        "time_limit_s": req.get("time_limit_s", 10.0),
                    },
                    start_to_close_timeout=timedelta(seconds=120),
                    retry_policy=RetryPolicy(maximum_attempts=3),
                )
                self._event(start, "planned", reason=reason, status=self.plan["status"], steps=[[s["action"], s["provider"]] for s in self.plan["steps"]])
                reason = None
                if self.plan["status"] not in ("optimal", "feasible"):
                    for _, (_, _, handle) in list(running.items()):
                        await handle
                    return await self._give_up(start, req, completed, {"reason": "no plan from here", "conflict": self.plan["conflict"], "summary": self.plan["summary"]})
            if holds_json(self.plan["goal"], self.facts) and not running:
                self.state = "succeeded"
                self._event(start, "succeeded")
                return {"status": "succeeded", "done": dict(self.done), "facts": sorted(self.facts), "events": self.events}
            for s in self.plan["steps"]:
                a = s["action"]
                if a in self.done or a in running or s["external"] or not holds_json(s["requirement"], self.facts):
                    continue
                attempts[a] = attempts.get(a, 0) + 1
                key = f"{run_id}/{a}/{s['provider']}"
                self._event(start, "step_dispatched", action=a, provider=s["provider"], attempt=attempts[a])
                handle = workflow.start_activity(
                    "intento.step",
                    {"run": run_id, "action": a, "provider": s["provider"], "attempt": attempts[a], "key": key, "latency_ms": s["latency_ms"], "timeout_ms": s["timeout_ms"], "idempotent": s["idempotent"], "context": req["given"], "now_ms": self._now(start)},
                    start_to_close_timeout=timedelta(seconds=300),
                    retry_policy=ONCE,
                )
                running[a] = (s["provider"], attempts[a], handle)
            if not running and not self.inbox:
                # Nothing can start and nothing is running: wait for an observation.
                await workflow.wait_condition(lambda: bool(self.inbox))
                continue
            await workflow.wait_condition(lambda: bool(self.inbox) or any(h.done() for _, _, h in running.values()))
            for a in [a for a, (_, _, h) in running.items() if h.done()]:
                provider, attempt, handle = running.pop(a)
                out = handle.result()
                step = next((s for s in self.plan["steps"] if s["action"] == a), None)
                if out["kind"] == "succeeded":
                    achieves = step["achieves"] if step else []
                    self.facts |= set(achieves) | set(out.get("facts", []))
                    self.done[a] = provider
                    completed.append((a, provider, step or {}))
                    spent += float(step["cost"]) if step else 0.0
                    self._event(start, "step_succeeded", action=a, provider=provider, attempt=attempt)
                    if not step or step["provider"] != provider:
                        reason = f"`{a}` finished outside the current plan"
                else:
                    failures.setdefault(provider, []).append(self._now(start))
                    if not out.get("retryable", True):
                        excluded.append([a, provider, out.get("error") or "failed permanently"])
                    self._event(start, "step_failed" if out["kind"] == "failed" else "step_timed_out", action=a, provider=provider, attempt=attempt, error=out.get("error"))
                    reason = f"`{a}` via `{provider}` failed: {out.get('error')}"

    async def _give_up(self, start, req, completed, outcome: dict) -> dict:
        self.state = "giving_up"
        self._event(start, "giving_up", **{k: v for k, v in outcome.items() if k != "conflict"})
        compensated = []
        for a, provider, step in reversed(completed):
            undo = step.get("undo")
            if not undo:
                continue
            out = await workflow.execute_activity(
                "intento.step",
                {"run": workflow.info().workflow_id, "action": undo, "provider": provider, "attempt": 1, "key": f"{workflow.info().workflow_id}/undo/{a}", "latency_ms": 1000, "timeout_ms": None, "idempotent": True, "context": req["given"], "now_ms": self._now(start)},
                start_to_close_timeout=timedelta(seconds=300),
                retry_policy=RetryPolicy(maximum_attempts=3),
            )
            if out["kind"] == "succeeded":
                compensated.append(a)
                self._event(start, "compensated", action=undo, **{"for": a})
        self.state = "escalated"
        self._event(start, "escalated")
        return {"status": "escalated", "done": dict(self.done), "facts": sorted(self.facts), "compensated": compensated, "conflict": outcome.get("conflict", []), "summary": outcome.get("summary"), "events": self.events}
