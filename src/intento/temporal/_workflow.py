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
from temporalio.exceptions import ActivityError

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
        awaiting: dict[str, tuple[str, int]] = {}  # external action -> (provider, due ms)
        spent = 0.0
        step_timeout = timedelta(seconds=req.get("step_timeout_s", 300))
        deadline = req.get("deadline_ms")
        budget = req.get("budget")
        reason: str | None = "run started"
        plans = 0
        self._event(start, "run_started", intent=req["intent"])
        while True:
            for ob in self.inbox:
                if ob.get("fact"):
                    self.facts.add(ob["fact"])
                    for a, (p, _) in list(awaiting.items()):
                        step = next((x for x in self.plan["steps"] if x["action"] == a), None) if self.plan else None
                        if step and set(step["achieves"]) <= self.facts:
                            del awaiting[a]
                            self.done[a] = p
                            completed.append((a, p, step))
                            self._event(start, "step_succeeded", action=a, provider=p, external=True)
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
                if a in self.done or a in running or a in awaiting or not holds_json(s["requirement"], self.facts):
                    continue
                if s["external"]:
                    # Never dispatched: its facts are awaited (signals) until its timeout.
                    timeout = s["timeout_ms"] if s["timeout_ms"] is not None else 3 * s["latency_ms"]
                    awaiting[a] = (s["provider"], self._now(start) + timeout)
                    self._event(start, "step_dispatched", action=a, provider=s["provider"], external=True)
                    continue
                attempts[a] = attempts.get(a, 0) + 1
                key = f"{run_id}/{a}/{s['provider']}"
                self._event(start, "step_dispatched", action=a, provider=s["provider"], attempt=attempts[a])
                handle = workflow.start_activity(
                    "intento.step",
                    {"run": run_id, "action": a, "provider": s["provider"], "attempt": attempts[a], "key": key, "latency_ms": s["latency_ms"], "timeout_ms": s["timeout_ms"], "idempotent": s["idempotent"], "context": req["given"], "now_ms": self._now(start)},
                    start_to_close_timeout=step_timeout,
                    retry_policy=ONCE,
                )
                running[a] = (s["provider"], attempts[a], handle)
            due = min((d for _, d in awaiting.values()), default=None)
            wait_for = None if due is None else timedelta(milliseconds=max(1, due - self._now(start)))
            if not running and not self.inbox and due is None:
                # Nothing can start and nothing is running: wait for an observation.
                await workflow.wait_condition(lambda: bool(self.inbox))
                continue
            try:
                await workflow.wait_condition(lambda: bool(self.inbox) or any(h.done() for _, _, h in running.values()), timeout=wait_for)
            except TimeoutError:
                pass
            now = self._now(start)
            for a, (p, d) in list(awaiting.items()):
                if d <= now:
                    del awaiting[a]
                    failures.setdefault(p, []).append(now)
                    excluded.append([a, p, "the external fact did not arrive in time"])
                    self._event(start, "step_timed_out", action=a, provider=p, external=True)
                    reason = f"the external fact of `{a}` did not arrive in time"
            for a in [a for a, (_, _, h) in running.items() if h.done()]:
                provider, attempt, handle = running.pop(a)
                step = next((s for s in self.plan["steps"] if s["action"] == a), None)
                try:
                    out = handle.result()
                except ActivityError as err:
                    # The activity was lost (a worker crash, a timeout): its effect is unknown.
                    out = await self._reconcile(start, req, run_id, a, provider, attempt, step, err)
                    if out is None:
                        return await self._give_up(start, req, completed, {"reason": f"`{a}` was lost in flight, is not idempotent, and no reconciler can tell whether it took effect"})
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

    async def _reconcile(self, start, req, run_id, action, provider, attempt, step, err) -> dict | None:
        """A lost step: idempotent ones are sent again with the same key; a non-idempotent one only
        after the reconciler says its effect did not happen (None: nobody can tell)."""
        self._event(start, "needs_reconciliation", action=action, provider=provider, attempt=attempt, error=str(err.cause or err))
        args = {"run": run_id, "action": action, "provider": provider, "attempt": attempt, "key": f"{run_id}/{action}/{provider}", "latency_ms": step["latency_ms"] if step else 1, "timeout_ms": step["timeout_ms"] if step else None, "idempotent": bool(step and step["idempotent"]), "context": req["given"], "now_ms": self._now(start)}
        if not (step and step["idempotent"]):
            happened = await workflow.execute_activity("intento.reconcile", args, start_to_close_timeout=timedelta(seconds=60), retry_policy=RetryPolicy(maximum_attempts=3))
            self._event(start, "reconciled", action=action, provider=provider, happened=happened)
            if happened is None:
                return None
            if happened:
                return {"kind": "succeeded", "latency_ms": 0, "facts": [], "reconciled": True}
        try:
            return await workflow.execute_activity("intento.step", args, start_to_close_timeout=timedelta(seconds=req.get("step_timeout_s", 300)), retry_policy=ONCE)
        except ActivityError as again:
            return {"kind": "failed", "latency_ms": 0, "error": f"lost again: {again.cause or again}", "retryable": True}

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
