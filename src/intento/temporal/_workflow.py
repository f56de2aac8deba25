"""The Temporal workflow of one run: the embedded executor's semantics, deterministically.

Input: the request of `intento.temporal.run_request`. Output: the run's outcome (status, steps
done, facts, compensations, the conflict and summary of an escalation, and its events).

State lives in the workflow (rebuilt by Temporal from its history); every plan comes from the
``intento.plan`` activity and every step is an ``intento.step`` activity that Temporal does not
retry by itself (retries and fallbacks come from re-planning, as in the embedded executor).
A step's activity is limited to its action's `timeout`: overrunning it is the step timing out
(a failure of that provider, then a re-plan); a step whose worker stops heartbeating is lost
(its effect is unknown: reconciled). The run's deadline is one durable timer: when it fires
before the goal holds, the run gives up once (steps in flight end, completed ones are undone)
naming the deadline. A failed step is a failed activity (error type ``StepFailed``, its outcome
in the failure's details), which Temporal never retries: the workflow re-plans. A cancellation
(`temporal workflow cancel`, `intento cancel --engine temporal`) is the run giving up: steps in
flight end, completed ones are undone in reverse order, and the workflow ends cancelled. An
escalated run calls the worker's `on_escalation` handler (``intento.escalate``). A step on a
provider with a `capacity` starts only once that provider's semaphore workflow
(`intento.temporal._capacity`) has granted the run a slot (the ``slot_granted`` signal); the slot
goes back with the step's outcome, and every slot left goes back when the run ends.

Observations arrive as the ``observe`` update (validated: an unknown fact, provider or status is
refused at the call) or, fire-and-forget, as the ``observe`` signal; ``status`` and
``explanation`` are queries. Each activity carries a summary (``charge_payment via stripe``);
the workflow's current details say what it runs and waits for, and its memo holds the intent,
status, project and policy-set fingerprints, cost so far and deadline.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, FailureError, TimeoutType
from temporalio.exceptions import CancelledError as TemporalCancelled
from temporalio.exceptions import TimeoutError as TemporalTimeout

#: The search attributes a run keeps current when its namespace has them (Keyword; `intento
#: run --engine temporal` registers them where it may): `temporal workflow list --query
#: "IntentoWaitsOn = 'waiting for settlement.received'"`.
INTENT_KEY = SearchAttributeKey.for_keyword("IntentoIntent")
STATUS_KEY = SearchAttributeKey.for_keyword("IntentoStatus")
WAITS_KEY = SearchAttributeKey.for_keyword("IntentoWaitsOn")

with workflow.unsafe.imports_passed_through():
    from intento.diagnostics import did_you_mean
    from intento.evaluate import holds_json
    from intento.execute.observe import validate_observation
    from intento.execute.executor import switch_moment
    from intento.versions import changes_phrase
    from intento.render import _dur
    from intento.temporal._capacity import semaphore_id
    from intento.values import format_ms

#: Same health rule as the embedded executor (intento.execute.state).
HEALTH_WINDOW_MS = 60_000
HEALTH_DOWN_AFTER = 2
COOL_DOWN_MS = 300_000
MAX_PLANS = 200
#: As the embedded executor: at most this many holds for a cool-down per run.
MAX_COOLDOWN_HOLDS = 3
ONCE = RetryPolicy(maximum_attempts=1)
#: The activity limit of a step whose action declares no `timeout` (`step_timeout_s` in the
#: request overrides it): a day. Such an action promises no answer time; a dead worker is
#: noticed by the heartbeat timeout long before, and past this limit its effect is unknown (it
#: is reconciled like a step whose worker died).
DEFAULT_STEP_LIMIT_S = 86_400
#: A step activity heartbeats while it runs; none for this long means its worker is gone
#: (`heartbeat_s` in the request overrides it).
DEFAULT_HEARTBEAT_S = 20
#: A plan sent to its version's queue that has not come back after this long (the request's
#: `version_notice_s` overrides it; default: its solve time limit and five seconds) makes the run
#: say it waits for a worker of that version.
VERSION_NOTICE_MARGIN_S = 5.0


def version_queue(task_queue: str, version: str) -> str:
    """The task queue of a project version: ``<task_queue>@<its first 16 digits>``. Every worker
    polls the one of the version it was started with, besides its main queue; a run pinned to a
    version sends its plans there, so only workers of that version judge it."""
    return f"{task_queue}@{version[:16]}"


@workflow.defn(name="intento.run")
class IntentRun:
    def __init__(self) -> None:
        self.inbox: list[dict] = []
        self.events: list[dict] = []
        self.state: str = "running"
        self.plan: dict | None = None
        self.facts: set[str] = set()
        self.done: dict[str, str] = {}
        #: Steps in flight: action -> (provider, attempt, activity handle, the step as planned).
        self.running: dict[str, tuple[str, int, Any, dict]] = {}
        #: External steps awaited: action -> (provider, due ms, the step as planned).
        self.awaiting: dict[str, tuple[str, int, dict]] = {}
        #: Completed steps in order: (action, provider, the step as planned), for compensation.
        self.completed: list[tuple[str, str, dict]] = []
        self.failures: dict[str, list[int]] = {}
        self.deadline_passed = False
        #: A cancellation asked for while the run was already ending (noted, honoured at its end).
        self.cancel_requested = False
        #: The run's outcome once it ended (read by the `status` query after a cancellation).
        self.outcome: dict | None = None
        #: Undos that failed: {"action", "for", "error"}, reported in the outcome.
        self.undo_failed: list[dict] = []
        self.spent = Decimal(0)
        #: The hold the run is in (no plan yet, the world may change soon), as its `holding` event.
        self.hold: dict | None = None
        self.cooldown_holds = 0
        self.plans = 0
        #: Runs started before holding (and the cancel's audit record) existed give up at once on
        #: no plan, and re-plan before succeeding, as they did then (a replay must do the same).
        self.holds = True
        #: Who asked for the cancellation and why (the `cancel_reason` signal), for its audit record.
        self.cancelled_by: dict | None = None
        #: When the cancel request reached the run (ms since it started).
        self.cancel_at: int | None = None
        #: The last plan request (its remaining work then; the `remaining` query brings it up to date).
        self._plan_req: dict | None = None
        self._memo: dict[str, Any] = {}
        self.legible = True
        self.where = self.searchable = False
        self.switching = False
        #: Awaited external steps' switch times: action -> (ms since the start, route), and
        #: the ones passed (planned around, still awaited).
        self.switch_at: dict[str, tuple[int, list]] = {}
        self.switched: set[str] = set()
        #: The project fingerprint of the worker that planned last, when it differs from the
        #: run's (`project_changed`).
        self.decided_by: str | None = None
        #: Simulation: observations due at given times (ms since the start), in time order.
        self.feed: list[list] = []
        self.start = None
        self.req: dict[str, Any] = {}
        #: Capacity slots (a provider's semaphore, `intento.temporal._capacity`): ticket ->
        #: {action, provider, state: waiting | held, asked (ms since the start)}.
        self.tickets: dict[str, dict] = {}
        #: Grants received (the `slot_granted` signal), not yet taken in: (ticket, provider).
        self.grants: list[tuple[str, str]] = []
        #: Slots to give back (or stop waiting for), per provider: sent before the run next waits.
        self.unreleased: dict[str, list[str]] = {}
        self.slot_seq = 0
        #: Whether steps take capacity slots (None: not asked yet). Runs started before replay
        #: without them (the `intento-capacity` workflow patch).
        self.capacity: bool | None = None
        #: The version the run is pinned to (its plans go to that version's queue), None for a
        #: run started before version queues (the `intento-version-queue` patch): it plans on
        #: whichever worker serves it.
        self.version: str | None = None
        self.policy_set: str | None = None
        #: A migration asked for (the `migrate` update), applied at the next decision point.
        self.migration: dict | None = None
        #: The version whose worker a plan waits for (said in the details and memo meanwhile).
        self.waits_for_version: str | None = None

    @workflow.signal(name="observe", description="Fire-and-forget observation: {fact} or {provider, status[, latency]} (not checked; use the update to be told).")
    def observe_signal(self, data: dict) -> None:
        self.inbox.append(data)

    @workflow.signal(name="cancel_reason", description="Who cancels the run and why: {reason, by}. `intento cancel` sends it with Temporal's cancel request (which alone cancels); the run's audit record names them.")
    def cancel_reason(self, data: dict) -> None:
        if isinstance(data, dict):
            self.cancelled_by = {"reason": str(data.get("reason") or "")[:500], "by": str(data.get("by") or "")[:200]}

    @workflow.signal(name="slot_granted", description="From a provider's semaphore (the `intento.capacity` workflow): the slot asked for with {ticket} is this run's.")
    def slot_granted(self, data: dict) -> None:
        if isinstance(data, dict) and isinstance(data.get("ticket"), str) and isinstance(data.get("provider"), str):
            self.grants.append((data["ticket"], data["provider"]))

    @workflow.update(name="observe", description="An observation, checked at the call: {fact} or {provider, status[, latency ms]}; answers `queued`.")
    def observe(self, data: dict) -> str:
        self.inbox.append(data)
        return "queued"

    @observe.validator
    def _check_observation(self, data: dict) -> None:
        if not isinstance(data, dict):
            raise ApplicationError("an observation is an object: {fact} or {provider, status}", type="InvalidObservation")
        problem = validate_observation(data, {"id": workflow.info().workflow_id, "status": self.state})
        if problem is None:
            names = self.req.get("names") or {}
            fact, provider = data.get("fact"), data.get("provider")
            if fact is not None and "facts" in names and fact not in names["facts"]:
                problem = f"no action or goal of the project names fact `{fact}`; " + (did_you_mean(str(fact), names["facts"]) or "name a fact some action `achieves`")
            elif provider is not None and "providers" in names and provider not in names["providers"]:
                problem = f"unknown provider `{provider}`; " + (did_you_mean(str(provider), names["providers"]) or "name a provider the project declares")
        else:
            problem = problem.one_line()
        if problem:
            raise ApplicationError(problem, type="InvalidObservation")

    @workflow.update(name="migrate", description="Switch the run to another project version at its next decision point: {to, by, reason, label, impact}; it records `policy_migrated` (with the version's label and what the rollout said would change) and re-plans on that version's workers.")
    def migrate(self, data: dict) -> dict:
        self.migration = {"to": data["to"], "by": str(data.get("by") or "")[:200], "reason": str(data.get("reason") or "")[:500]}
        if data.get("label"):  # the new version's human name, and what the rollout said would change
            self.migration["label"] = str(data["label"])[:200]
        if isinstance(data.get("impact"), dict):
            self.migration["impact"] = data["impact"]
        for k in ("added", "removed", "changed"):  # the policies the move adds, removes and changes
            if isinstance(data.get(k), list):
                self.migration[k] = [str(x)[:200] for x in data[k][:500]]
        return {"from": self.version, "to": data["to"], "status": "queued"}

    @migrate.validator
    def _check_migration(self, data: dict) -> None:
        if not isinstance(data, dict) or not isinstance(data.get("to"), str) or not data["to"].strip() or len(data["to"]) > 200 or any(c.isspace() for c in data["to"]):
            raise ApplicationError("a migration names the version to switch to: {to: fingerprint, by, reason}", type="InvalidMigration")
        if self.state not in ("running", "holding"):
            raise ApplicationError(f"the run is {self.state.replace('_', ' ')}: it plans nothing more", type="InvalidMigration")
        if self.version is None:
            raise ApplicationError("the run was started before version queues: it plans on whichever worker serves it", type="InvalidMigration")
        if self.version[:16] == data["to"][:16] and self.migration is None:
            raise ApplicationError(f"the run is already on version {self.version[:12]}", type="AlreadyOnVersion")

    @workflow.query(name="remaining", description="The plan request of the run's remaining work as of now (what its next re-plan would solve) and its version; None once it plans nothing more. Read by `intento policy impact/rollout --engine temporal`.")
    def remaining(self) -> dict | None:
        if self.state not in ("running", "holding") or self._plan_req is None:
            return None
        now = self._now()
        deadline, budget = self.req.get("deadline_ms"), self.req.get("budget")
        return dict(
            self._plan_req,
            facts=sorted(self.facts),
            done=dict(self.done),
            force={a: r[0] for a, r in self.running.items()},
            deadline_left=None if deadline is None else max(0, deadline - now),
            budget_left=None if budget is None else str(max(Decimal(0), Decimal(str(budget)) - self.spent)),
            at=now,
            check=False,
            version=self.version,
            migrating_to=(self.migration or {}).get("to"),
        )

    @workflow.query(description="The run as it stands: status, facts, steps done, running and awaited, its events.")
    def status(self) -> dict:
        return {
            "status": self.state,
            "facts": sorted(self.facts),
            "done": dict(self.done),
            "running": sorted(self.running),
            "awaiting": sorted(self.awaiting),
            "deadline_passed": self.deadline_passed,
            "cost": str(self.spent),
            "version": self.version,
            "policy_set": self.policy_set,
            "waits_for_version": self.waits_for_version,
            "undo_failed": list(self.undo_failed),
            # Capacity slots: held (for a step in flight or about to start) and waited for, action -> provider.
            "slots": {state: {x["action"]: x["provider"] for x in self.tickets.values() if x["state"] == state} for state in ("held", "waiting")},
            "outcome": {k: v for k, v in (self.outcome or {}).items() if k != "events"} or None,
            "events": list(self.events),
        }

    @workflow.query(description="The solver's explanation of the current plan.")
    def explanation(self) -> dict | None:
        return (self.plan or {}).get("explanation")

    # ---- helpers --------------------------------------------------------------------------------
    def _cancel_asked(self) -> None:
        """Temporal's cancel request reached the run: noted (with when) and honoured at its end."""
        if not self.cancel_requested:
            self.cancel_requested = True
            self.cancel_at = self._now()

    def _now(self) -> int:
        return int((workflow.now() - self.start).total_seconds() * 1000)

    def _event(self, type_: str, **data) -> None:
        self.events.append({"type": type_, "at": self._now(), **data})

    def _health(self, observed: dict[str, dict], now: int) -> dict[str, dict]:
        out = {}
        for p in sorted(set(self.failures) | set(observed)):
            obs = observed.get(p)
            if obs and obs.get("status") in ("down", "degraded"):
                out[p] = {k: v for k, v in obs.items() if k in ("status", "latency", "cost", "reliability")}
                continue
            recent = [t for t in self.failures.get(p, []) if now - t <= HEALTH_WINDOW_MS]
            last = max(self.failures.get(p, [0]) or [0])
            if len(recent) >= HEALTH_DOWN_AFTER and now - last < self._cool_down():
                out[p] = {"status": "down"}
            elif recent:
                out[p] = {"status": "degraded"}
        return out

    def _cool_down(self) -> int:
        """How long a provider presumed down from its own failures stays down (`cool_down_ms` in
        the request overrides the embedded executor's five minutes)."""
        return int(self.req.get("cool_down_ms", COOL_DOWN_MS))

    def _goal_holds(self) -> bool:
        return self.plan is not None and holds_json(self.plan["goal"], self.facts)

    def _step_args(self, action: str, provider: str, attempt: int, key: str, latency_ms: int, timeout_ms: int | None, idempotent: bool) -> dict:
        return {
            "run": workflow.info().workflow_id,
            "intent": self.req["intent"],
            "action": action,
            "provider": provider,
            "attempt": attempt,
            "key": key,
            "latency_ms": latency_ms,
            "timeout_ms": timeout_ms,
            "idempotent": idempotent,
            "context": self.req["given"],
            "now_ms": self._now(),
        }

    def _limit(self, timeout_ms: int | None) -> timedelta:
        """A step activity's start-to-close limit: its action's `timeout`, else the default."""
        if timeout_ms is not None:
            return timedelta(milliseconds=max(1, timeout_ms))
        return timedelta(seconds=self.req.get("step_timeout_s", DEFAULT_STEP_LIMIT_S))

    def _start_step(self, args: dict, retry: RetryPolicy = ONCE, summary: str | None = None):
        return workflow.start_activity(
            "intento.step",
            args,
            start_to_close_timeout=self._limit(args["timeout_ms"]),
            heartbeat_timeout=timedelta(seconds=self.req.get("heartbeat_s", DEFAULT_HEARTBEAT_S)),
            retry_policy=retry,
            summary=summary or f"{args['action']} via {args['provider']}",
        )

    @staticmethod
    def _outcome_of(err: ActivityError, step: dict) -> dict | None:
        """The outcome of a step whose activity failed: a step that failed (its outcome is the
        failure's details), or one that overran its action's declared `timeout` (it timed out: a
        failure of its provider). None when the step was lost (its worker died, or it outlived
        the default limit): its effect is unknown."""
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type == "StepFailed":
            details = cause.details[0] if cause.details else None
            if isinstance(details, dict) and "kind" in details:
                return details
            return {"kind": "failed", "latency_ms": 0, "error": cause.message, "retryable": not cause.non_retryable}
        if isinstance(cause, TemporalTimeout) and cause.type == TimeoutType.START_TO_CLOSE and step.get("timeout_ms") is not None:
            return {"kind": "timed_out", "latency_ms": step["timeout_ms"], "error": f"no answer within its timeout ({format_ms(step['timeout_ms'])})", "retryable": True}
        return None

    async def _settle(self, task):
        """Await an activity to its end even through a cancellation request, which is noted and
        honoured when the run ends (a run already ending finishes its undos first)."""
        while True:
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                if task.done():
                    raise
                self._cancel_asked()

    # ---- capacity slots (intento.temporal._capacity) ---------------------------------------------
    def _capacity_on(self) -> bool:
        """Whether steps take capacity slots: asked once, where the first step on a provider
        with a `capacity` would start, so runs started before replay as they ran."""
        if self.capacity is None:
            self.capacity = workflow.patched("intento-capacity")
        return self.capacity

    def _ticket(self, action: str) -> str | None:
        return next((t for t, x in self.tickets.items() if x["action"] == action), None)

    async def _ask_slot(self, s: dict) -> None:
        """Ask the provider's semaphore for a slot for step ``s`` (signal-with-start, through an
        activity: a workflow cannot start another one that it does not own); the grant comes
        back as the `slot_granted` signal."""
        self.slot_seq += 1
        info = workflow.info()
        a, p = s["action"], s["provider"]
        ticket = f"{info.workflow_id}/{a}/{p}#{self.slot_seq}"
        self.tickets[ticket] = {"action": a, "provider": p, "state": "waiting", "asked": self._now()}
        self._event("slot_requested", action=a, provider=p, capacity=s["capacity"])
        await workflow.execute_activity(
            "intento.capacity.acquire",
            {"semaphore": semaphore_id(p, info.task_queue), "task_queue": info.task_queue, "provider": p, "capacity": s["capacity"],
             "ticket": ticket, "run": info.workflow_id, "run_id": info.run_id, "action": a, "latency_ms": s.get("latency_ms") or 0},
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
            summary=f"a slot of {p} for {a}",
        )

    def _take_grants(self) -> None:
        """Slots granted since the last look: a step waiting for one may start. A grant for a
        slot the run no longer waits for (its plan moved on) goes straight back."""
        for ticket, provider in self.grants:
            x = self.tickets.get(ticket)
            if x is None or x["state"] != "waiting":
                if x is None:
                    self.unreleased.setdefault(provider, []).append(ticket)
                continue
            x["state"] = "held"
            self._event("slot_granted", action=x["action"], provider=x["provider"], waited_ms=self._now() - x["asked"])
        self.grants.clear()

    def _give_back(self, ticket: str) -> None:
        x = self.tickets.pop(ticket)
        self.unreleased.setdefault(x["provider"], []).append(ticket)

    def _release_step(self, action: str) -> None:
        """The step's outcome is known: its slot goes back (sent before the run next waits)."""
        t = self._ticket(action)
        if t is not None:
            self._give_back(t)

    def _withdraw_stale(self, everything: bool = False) -> None:
        """Slots asked for, or granted but not used, for steps the current plan no longer runs on
        that provider (or at all): given back. Steps in flight keep theirs until their outcome."""
        planned = {s["action"]: s["provider"] for s in (self.plan or {}).get("steps", [])} if (self.plan or {}).get("status") in ("optimal", "feasible") else {}
        for t, x in list(self.tickets.items()):
            a = x["action"]
            if a in self.running or a in self.awaiting:
                continue
            if everything or a in self.done or planned.get(a) != x["provider"]:
                self._give_back(t)

    async def _signal_semaphore(self, provider: str, data: dict, shielded: bool) -> None:
        handle = workflow.get_external_workflow_handle(semaphore_id(provider, workflow.info().task_queue))
        try:
            if shielded:  # while giving up or ending: a cancellation does not cut it short
                await self._settle(asyncio.ensure_future(handle.signal("release", data)))
            else:
                await handle.signal("release", data)
        except FailureError:
            pass  # no such semaphore any more (an operator ended it): it holds nothing of this run

    async def _flush_releases(self, shielded: bool = False) -> None:
        """Send the slots to give back, one signal per provider."""
        pending, self.unreleased = self.unreleased, {}
        for provider, tickets in sorted(pending.items()):
            await self._signal_semaphore(provider, {"run_id": workflow.info().run_id, "tickets": tickets}, shielded)

    async def _release_all(self) -> None:
        """The run ends: every slot it holds or waits for goes back."""
        # (a grant that arrived after the run stopped looking is given back with the rest)
        providers = sorted({x["provider"] for x in self.tickets.values()} | set(self.unreleased) | {p for _, p in self.grants})
        self.tickets.clear()
        self.unreleased.clear()
        self.grants.clear()
        for provider in providers:
            await self._signal_semaphore(provider, {"run_id": workflow.info().run_id, "all": True}, shielded=True)

    def _show(self, waiting: str | None = None) -> None:
        """What Temporal's UI shows of the run now: its current details (the plan, what runs, what
        it waits for) and its memo (intent, status, fingerprints, cost so far, deadline)."""
        lines = [f"**{self.req['intent']}**: {self.state}"]
        if self.decided_by is not None:
            lines.append(f"planned by project {self.decided_by[:12]}, not the {str(self.req.get('project'))[:12]} it started with")
        if self.plan is not None:
            lines.append("plan: " + (", ".join(f"{s['action']} via {s['provider']}" for s in self.plan["steps"]) or "nothing left to do"))
        if self.running:
            lines.append("running: " + ", ".join(f"{a} via {p}" for a, (p, _, _, _) in sorted(self.running.items())))
        if self.awaiting:
            lines.append("waiting for: " + ", ".join(f"{', '.join(st['achieves'])} (from {a})" for a, (_, _, st) in sorted(self.awaiting.items())))
        slots = sorted((x["action"], x["provider"]) for x in self.tickets.values() if x["state"] == "waiting")
        if slots:
            lines.append("waiting for a slot: " + ", ".join(f"{a} via {p}" for a, p in slots))
        if waiting:
            lines.append(waiting)
        if self.waits_for_version is not None:
            lines.append(f"waiting for a worker of version {self.waits_for_version[:12]} (task queue {version_queue(workflow.info().task_queue, self.waits_for_version)})")
        workflow.set_current_details("\n\n".join(lines))
        memo: dict[str, Any] = {"intent": self.req["intent"], "status": self.state, "cost": str(self.spent)}
        for k in ("project", "policy_set", "deadline_ms"):
            if self.req.get(k) is not None:
                memo[k] = self.req[k]
        if self.version is not None and self.version != self.req.get("project"):
            memo["project"] = self.version  # migrated: the version it runs on now
            memo["policy_set"] = self.policy_set
        if self.where:
            memo["waits_on"] = self._waits_on()
        if self.legible and memo != self._memo:  # each change is an event of the history: only when it changes
            workflow.upsert_memo({k: v for k, v in memo.items() if self._memo.get(k) != v})
            if self.searchable and (memo["status"], memo.get("waits_on")) != (self._memo.get("status"), self._memo.get("waits_on")):
                waits = memo.get("waits_on")
                workflow.upsert_search_attributes([STATUS_KEY.value_set(memo["status"]), WAITS_KEY.value_set(waits) if waits else WAITS_KEY.value_unset()])
            self._memo = memo

    def _waits_on(self) -> str | None:
        """Where the run is, in the words of the embedded engine's `waits_on` (runs are grouped
        by it): an awaited fact first, then a step in flight, a hold, giving up; None once ended."""
        if self.state not in ("running", "holding", "giving_up"):
            return None
        if self.state == "giving_up":
            return "giving up"
        if self.waits_for_version is not None:
            return f"waiting for a worker of version {self.waits_for_version[:12]}"
        waits = [v[2] for k, v in self.awaiting.items() if k not in self.switched]
        if waits:
            return "waiting for " + ", ".join(waits[0]["achieves"])
        if self.running:
            a, (provider, *_) = next(iter(self.running.items()))
            return f"running {a} via {provider}"
        slots = sorted(x["provider"] for x in self.tickets.values() if x["state"] == "waiting")
        if slots:
            return f"waiting for a slot of {slots[0]}"
        if self.state == "holding":
            return "holding for a cool-down" if self.hold is not None and self.hold.get("until") is not None else "holding for an outcome"
        return "planning"

    async def _deadline_timer(self, ms: int) -> None:
        # A durable timer in the workflow's history: it fires at the deadline even if every
        # worker was down meanwhile, and a replay reads it back.
        await asyncio.sleep(ms / 1000)
        self.deadline_passed = True

    # ---- the run --------------------------------------------------------------------------------
    @workflow.run
    async def run(self, req: dict[str, Any]) -> dict[str, Any]:
        self.start = workflow.now()
        self.req = req
        self.facts = set(req.get("facts", []))
        deadline = req.get("deadline_ms")
        timer = asyncio.ensure_future(self._deadline_timer(deadline)) if deadline is not None else None
        self._event("run_started", intent=req["intent"])
        # Runs started before the memo and the simulation feed existed replay without them.
        self.legible = workflow.patched("intento-simulation-feed")
        self.holds = workflow.patched("intento-holding-and-cancel-record")
        # Where the run waits, in its memo (and, when the run was started with intento's search
        # attributes, in those too): runs started before replay without these upserts.
        self.where = workflow.patched("intento-waits-on")
        self.searchable = self.where and workflow.info().typed_search_attributes.get(INTENT_KEY) is not None
        # Switch times for awaited external steps (as the embedded engine): older runs wait out
        # the timeout, and replay so.
        self.switching = workflow.patched("intento-switch-times")
        # Plans go to the queue of the run's version, so that a worker started with other
        # sources never judges it (runs started before plan wherever they are served).
        if workflow.patched("intento-version-queue") and req.get("project"):
            self.version = req["project"]
            self.policy_set = req.get("policy_set")
        self._show()
        if self.legible:
            self.feed = await workflow.execute_activity("intento.simulation", {"run": workflow.info().workflow_id}, start_to_close_timeout=timedelta(seconds=60), summary="simulation feed") or []
        evicted = False
        try:
            try:
                result = await self._drive(req)
            except GeneratorExit:
                # The worker dropped this workflow from its cache (it is stopping, or needs the
                # room): the run is not over, it goes on from its history wherever it is served
                # next, and no workflow call may run here (outside the workflow's event loop).
                evicted = True
                raise
            except (asyncio.CancelledError, ActivityError) as err:
                if isinstance(err, ActivityError) and not isinstance(err.cause, TemporalCancelled):
                    raise
                # Cancelled (`temporal workflow cancel`, `intento cancel`): the run gives up as
                # it would escalate, then ends cancelled.
                self._cancel_asked()
                result = await self._give_up({"reason": "cancelled", "conflict": [], "summary": "the run was cancelled"})
        finally:
            if not evicted:
                if timer is not None and not timer.done():
                    timer.cancel()
                # Every capacity slot the run still holds or waits for goes back, however it ends
                # (a run terminated by Temporal runs no code: its semaphore takes the slots back).
                await self._release_all()
        if result.get("status") == "cancelled":
            # Ends in Temporal's own Canceled state; the outcome stays readable by the `status` query.
            raise asyncio.CancelledError("the run was cancelled")
        return result

    async def _drive(self, req: dict[str, Any]) -> dict[str, Any]:
        run_id = workflow.info().workflow_id
        observed: dict[str, dict] = dict(req.get("providers", {}))
        excluded: list[list[str]] = []
        attempts: dict[str, int] = {}
        deadline = req.get("deadline_ms")
        budget = req.get("budget")
        reason: str | None = "run started"
        while True:
            await self._flush_releases()  # slots given back since the last wait, before planning
            now = self._now()
            while self.feed and self.feed[0][0] <= now:
                self.inbox.append(self.feed.pop(0)[1])
            for ob in self.inbox:
                if ob.get("fact"):
                    self.facts.add(ob["fact"])
                    self._complete_awaited()
                if ob.get("provider"):
                    observed[ob["provider"]] = ob
                self._event("observation", **ob)
                reason = "observation"
            self.inbox.clear()
            if self.migration is not None:
                reason = self._migrate()
            if self.deadline_passed and not self._goal_holds():
                # Checked before any re-plan: past the deadline re-planning cannot help.
                return await self._give_up(self._deadline_outcome())
            if reason is not None and self.holds and self._goal_holds() and not self.running:
                # As the embedded executor: a goal that holds needs no re-plan (runs started
                # before this change re-planned first, and replay so).
                return self._succeed()
            if reason is not None:
                now = self._now()
                self.plans += 1
                if self.plans > MAX_PLANS:
                    return await self._give_up({"reason": "too many re-plans", "conflict": [], "summary": None})
                force = {a: p for a, (p, _, _, _) in self.running.items()}
                plan_req = {
                    "run": run_id,
                    "intent": req["intent"],
                    "given": req["given"],
                    "facts": sorted(self.facts),
                    "providers": self._health(observed, now),
                    "excluded": excluded,
                    "done": dict(self.done),
                    "force": force,
                    "deadline_left": None if deadline is None else max(0, deadline - now),
                    "budget_left": None if budget is None else str(max(Decimal(0), Decimal(str(budget)) - self.spent)),
                    "reason": reason,
                    "plans": self.plans - 1,
                    "at": now,
                    "time_limit_s": req.get("time_limit_s", 10.0),
                }
                self._plan_req = plan_req
                self.plan = await self._planning(plan_req, f"plan {self.plans}: {reason}")
                self._note_project(self.plan.get("project"))
                if self.version is not None and self.plan.get("policy_set"):
                    self.policy_set = self.plan["policy_set"]
                busy = self.plan.get("busy") or {}
                # Planned with slots other runs hold: which, and when the plan starts its steps on those providers.
                seen = {"busy": busy, "starts_ms": {s["action"]: s.get("start_ms") for s in self.plan["steps"] if s["provider"] in busy}} if busy else {}
                pinned = {"version": self.plan.get("project"), "policy_set": self.plan.get("policy_set")} if self.version is not None else {}
                learned = {"figures": self.plan["figures"]} if self.plan.get("figures") else {}
                self._event("planned", reason=plan_req["reason"], status=self.plan["status"], steps=[[s["action"], s["provider"]] for s in self.plan["steps"]], **seen, **pinned, **learned)
                reason = None
                if self.plan["status"] in ("optimal", "feasible"):
                    if self.hold is not None:
                        self.hold, self.state = None, "running"
                else:
                    self.hold = await self._hold(plan_req, observed) if self.holds else None
                    if self.hold is None:
                        return await self._give_up({"reason": "no plan from here", "conflict": self.plan["conflict"], "summary": self.plan["summary"]})
                    self.state = "holding"
                    self._event("holding", **self.hold)
            if self._goal_holds() and not self.running:
                return self._succeed()
            self._take_grants()
            self._withdraw_stale()
            for s in self.plan["steps"]:
                a = s["action"]
                if a in self.done or a in self.running or a in self.awaiting or not holds_json(s["requirement"], self.facts):
                    continue
                if s.get("capacity") and self._capacity_on():
                    # A provider's `capacity` holds across every run: the step starts once its
                    # semaphore grants it a slot (the run waits durably for the signal).
                    t = self._ticket(a)
                    if t is None:
                        await self._ask_slot(s)
                        continue
                    if self.tickets[t]["state"] != "held":
                        continue
                if s["external"]:
                    # Never dispatched: its facts are awaited (signals) until its timeout.
                    timeout = s["timeout_ms"] if s["timeout_ms"] is not None else 3 * s["latency_ms"]
                    self.awaiting[a] = (s["provider"], self._now() + timeout, s)
                    if self.switching and deadline is not None:
                        await self._switch_time(a, s["provider"], self._now() + timeout, deadline, excluded)
                    if s.get("lands_after_ms") is not None:  # simulation: when its facts land
                        self.feed.extend([self._now() + s["lands_after_ms"], {"fact": f, "source": "simulation"}] for f in s["achieves"])
                        self.feed.sort(key=lambda x: x[0])
                    self._event("step_dispatched", action=a, provider=s["provider"], external=True)
                    continue
                attempts[a] = attempts.get(a, 0) + 1
                self._event("step_dispatched", action=a, provider=s["provider"], attempt=attempts[a])
                args = self._step_args(a, s["provider"], attempts[a], f"{run_id}/{a}/{s['provider']}", s["latency_ms"], s["timeout_ms"], s["idempotent"])
                self.running[a] = (s["provider"], attempts[a], self._start_step(args), s)
            self._show()
            await self._flush_releases()
            hold_until = [self.hold["until"]] if self.hold is not None and self.hold.get("until") is not None else []
            switches = [t for a, (t, _) in self.switch_at.items() if a in self.awaiting and a not in self.switched]
            due = min([d for _, d, _ in self.awaiting.values()] + [t for t, _ in self.feed[:1]] + hold_until + switches, default=None)
            wait_for = None if due is None else timedelta(milliseconds=max(1, due - self._now()))
            try:
                # Without a step in flight, an awaited fact or the deadline, only a signal moves the run.
                # (Once the goal holds the deadline no longer matters: steps in flight end the wait.)
                await workflow.wait_condition(lambda: bool(self.inbox) or bool(self.grants) or self.migration is not None or (self.deadline_passed and not self._goal_holds()) or any(h.done() for _, _, h, _ in self.running.values()), timeout=wait_for)
            except asyncio.TimeoutError:
                pass
            now = self._now()
            # Simulated facts that landed before an awaited step's timeout count first, even
            # when one wake-up finds both due (a timer may fire late).
            for t, ob in [x for x in self.feed if x[0] <= now and x[1].get("fact")]:
                for a, (p, d, step) in list(self.awaiting.items()):
                    if t <= d and ob["fact"] in step["achieves"]:
                        self.feed.remove([t, ob])
                        self.inbox.append(ob)
                        self.facts.add(ob["fact"])
                        self._complete_awaited(only=a)
                        break
            if hold_until and hold_until[0] <= now and self.hold is not None:
                reason = "a cool-down ended: " + ", ".join(f"`{p}`" for p in self.hold.get("providers", [])) + " may be back"
            for a, (p, d, _) in list(self.awaiting.items()):
                at = self.switch_at.get(a, (None,))[0]
                if at is not None and a not in self.switched and at <= now < d:
                    # Its last moment for another route: plan around it (it is still awaited).
                    self.switched.add(a)
                    facts = ", ".join(self.awaiting[a][2]["achieves"]) or a
                    why = f"waiting for {facts} past {_dur(at)} after the start would miss the deadline"
                    excluded.append([a, p, why])
                    self._event("step_switched", action=a, provider=p, external=True, reason=why)
                    reason = f"switching away from `{a}` via `{p}`: {why}"
            for a, (p, d, _) in list(self.awaiting.items()):
                if d <= now:
                    del self.awaiting[a]
                    self._release_step(a)
                    self.failures.setdefault(p, []).append(now)
                    self._event("step_timed_out", action=a, provider=p, external=True)
                    if a in self.switched:  # planned around already
                        continue
                    excluded.append([a, p, "the external fact did not arrive in time"])
                    reason = f"the external fact of `{a}` did not arrive in time"
            for a in [a for a, (_, _, h, _) in self.running.items() if h.done()]:
                provider, attempt, handle, step = self.running.pop(a)
                try:
                    out = handle.result()
                except ActivityError as err:
                    out = self._outcome_of(err, step)
                    if out is None:
                        # Lost (its worker died, or it outlived the default limit): effect unknown.
                        out = await self._reconcile(a, provider, attempt, step, err)
                # Its outcome is known (succeeded, failed, timed out, or unknown for good): its slot goes back.
                self._release_step(a)
                if out is None:
                    return await self._give_up({"reason": f"`{a}` was lost in flight, is not idempotent, and no reconciler can tell whether it took effect", "conflict": [], "summary": None})
                if out["kind"] == "succeeded":
                    self._succeeded(a, provider, attempt, step, out)
                    self.spent += Decimal(str(step.get("cost") or 0))
                    planned = {s["action"]: s["provider"] for s in self.plan["steps"]}
                    if planned.get(a) != provider:
                        reason = f"`{a}` finished outside the current plan"
                else:
                    self.failures.setdefault(provider, []).append(self._now())
                    if not out.get("retryable", True):
                        excluded.append([a, provider, out.get("error") or "failed permanently"])
                    self._event("step_failed" if out["kind"] == "failed" else "step_timed_out", action=a, provider=provider, attempt=attempt, error=out.get("error"))
                    reason = f"`{a}` via `{provider}` timed out" if out["kind"] == "timed_out" else f"`{a}` via `{provider}` failed: {out.get('error')}"

    def _succeed(self) -> dict:
        self.state = "succeeded"
        self._event("succeeded")
        self._show()
        return {"status": "succeeded", "done": dict(self.done), "facts": sorted(self.facts), "cost": str(self.spent), "events": self.events}

    async def _planning(self, plan_req: dict, summary: str) -> dict:
        if self.version is None:  # started before version queues
            return await workflow.execute_activity(
                "intento.plan", plan_req, start_to_close_timeout=timedelta(seconds=120), retry_policy=RetryPolicy(maximum_attempts=3), summary=summary[:200]
            )
        while True:
            # On the version's queue: only a worker of that version plans it; without one the plan
            # waits there (no schedule-to-start limit), and the run says so.
            handle = workflow.start_activity(
                "intento.plan", dict(plan_req, task_queue=workflow.info().task_queue), task_queue=version_queue(workflow.info().task_queue, self.version),
                start_to_close_timeout=timedelta(seconds=120), retry_policy=RetryPolicy(maximum_attempts=3), summary=f"{summary} (version {self.version[:12]})"[:200],
            )
            notice = float(self.req.get("version_notice_s", float(plan_req.get("time_limit_s") or 10.0) + VERSION_NOTICE_MARGIN_S))
            try:
                try:
                    await workflow.wait_condition(lambda: handle.done() or self.migration is not None, timeout=timedelta(seconds=notice))
                except asyncio.TimeoutError:
                    self.waits_for_version = self.version
                    self._show()
                    await workflow.wait_condition(lambda: handle.done() or self.migration is not None)
            finally:
                if not handle.done():
                    handle.cancel()
            if self.waits_for_version is not None:
                self.waits_for_version = None
                self._show()
            if self.migration is None or handle.done() and not handle.cancelled() and handle.exception() is None:
                return await handle
            # A migration while this plan waited (for a worker of the old version, or its answer):
            # the plan is asked of the new version instead.
            # (awaited without taking its error: a cancellation of the run itself still propagates)
            await workflow.wait([handle])
            if not handle.cancelled():
                handle.exception()
            why = self._migrate()
            if not plan_req.get("check"):
                plan_req["reason"] = why  # the re-plan's reason (its `planned` event says it)
                summary = f"plan {self.plans}: {why}"

    def _migrate(self) -> str:
        """Apply the migration asked for: the run's version changes, said in its events."""
        m, self.migration = self.migration, None
        old, self.version = self.version, m["to"]
        self.decided_by = None
        self._event("policy_migrated", **{"from": old, "to": m["to"], "by": m["by"], "reason": m["reason"]}, **{k: m[k] for k in ("label", "impact", "added", "removed", "changed") if k in m})
        self._show()
        what = changes_phrase(m)
        return f"policy migrated from {old[:12]} to {m['to'][:12]}" + (f" ({m['reason']})" if m["reason"] else "") + (f": {what}" if what else "")

    async def _hold(self, plan_req: dict, observed: dict[str, dict]) -> dict | None:
        """No plan from here, but the world may change soon: wait instead of giving up, as the
        embedded executor does, when steps are still running (their outcome may be what is
        missing), or when providers presumed down only from their own failures (no status
        observation) would admit a plan once their cool-down ends, before the deadline, at most
        `MAX_COOLDOWN_HOLDS` times. None: give up."""
        if self.running:
            return {"until": None, "reason": "no plan without the steps still running: waiting for their outcome", "running": sorted(self.running)}
        health = plan_req["providers"]
        presumed = {p: max(self.failures[p]) + self._cool_down() for p, h in health.items() if h.get("status") == "down" and observed.get(p, {}).get("status") != "down" and self.failures.get(p)}
        if not presumed or self.cooldown_holds >= MAX_COOLDOWN_HOLDS:
            return None
        until = min(presumed.values())
        deadline = self.req.get("deadline_ms")
        if deadline is not None and until >= deadline:
            return None
        check = dict(plan_req, providers={p: h for p, h in health.items() if p not in presumed}, deadline_left=None if deadline is None else deadline - until, check=True)
        answer = await self._planning(check, "is there a plan once the cool-down ends?")
        if answer["status"] not in ("optimal", "feasible"):
            return None
        self.cooldown_holds += 1
        return {"until": until, "reason": f"no plan while {', '.join(f'`{p}`' for p in sorted(presumed))} presumed down after failing; re-planning when the first cool-down ends", "providers": sorted(presumed)}

    def _note_project(self, decided_by: str | None) -> None:
        """A worker whose project differs from the one the run started with planned this run:
        said in the run's events and its current details, never silently. Only runs started
        before version queues can see it (a pinned run is planned by its version's workers)."""
        started = self.req.get("project") if self.version is None else self.version
        if decided_by is None or started is None or decided_by[:16] == started[:16] or decided_by == self.decided_by:
            return
        self.decided_by = decided_by
        self._event("project_changed", started_with=started, planned_by=decided_by,
                    note="a worker with other project sources planned this run; its later decisions follow those sources")

    async def _switch_time(self, action: str, provider: str, due: int, deadline: int, excluded: list) -> None:
        """An awaited external step's switch time, as the embedded engine computes it
        (`Executor._switch_time`): `switch_moment` of the best other route, when that is before
        the step's timeout."""
        now = self._now()
        check = dict(self._plan_req, excluded=excluded + [[action, provider, "counted out, to find the route around it"]],
                     force={a: p for a, (p, _, _, _) in self.running.items() if a != action}, deadline_left=max(0, deadline - now),
                     at=now, check=True, switch=True)
        answer = await self._planning(check, f"the route around {action} via {provider}, for its switch time")
        if answer.get("status") not in ("optimal", "feasible") or answer.get("latency_ms") is None:
            return
        at = switch_moment(deadline, answer["latency_ms"], self.req.get("switch_margin"))
        if now < at < due:
            self.switch_at[action] = (at, answer.get("steps") or [])

    def _complete_awaited(self, only: str | None = None) -> None:
        """Awaited external steps (or just ``only``) whose facts all hold now are done."""
        for a, (p, _, step) in list(self.awaiting.items()):
            if (only is None or a == only) and set(step["achieves"]) <= self.facts:
                del self.awaiting[a]
                self._release_step(a)
                self.done[a] = p
                self.completed.append((a, p, step))
                self._event("step_succeeded", action=a, provider=p, external=True)

    def _succeeded(self, action: str, provider: str, attempt: int, step: dict, out: dict) -> None:
        self.facts |= set(step.get("achieves", [])) | set(out.get("facts", []))
        self.done[action] = provider
        self.completed.append((action, provider, step))
        self._event("step_succeeded", action=action, provider=provider, attempt=attempt, **({"reconciled": True} if out.get("reconciled") else {}))

    def _deadline_outcome(self) -> dict:
        """Why the run gives up at its deadline, worded as the embedded executor words it."""
        d = (self.plan or {}).get("deadline") or {}
        text = d.get("text") or f"deadline {format_ms(self.req['deadline_ms'])}"
        missing = sorted(set(d.get("goal_facts", [])) - self.facts)
        waiting = sorted(set(self.running) | set(self.awaiting))
        summary = f"the {text} of `{self.req['intent']}` passed before the goal held"
        if missing:
            summary += f" (still missing: {', '.join(f'`{f}`' for f in missing)})"
        if waiting:
            summary += f"; in flight or awaited then: {', '.join(f'`{a}`' for a in waiting)}"
        return {"reason": "the deadline passed", "conflict": d.get("conflict", []), "summary": summary, "deadline_at": self.req["deadline_ms"], "at": self._now()}

    async def _reconcile(self, action: str, provider: str, attempt: int, step: dict, err: ActivityError) -> dict | None:
        """A lost step: idempotent ones are sent again with the same key; a non-idempotent one only
        after the reconciler says its effect did not happen (None: nobody can tell)."""
        self._event("needs_reconciliation", action=action, provider=provider, attempt=attempt, error=str(err.cause or err))
        args = self._step_args(action, provider, attempt, f"{workflow.info().workflow_id}/{action}/{provider}", step.get("latency_ms", 1), step.get("timeout_ms"), bool(step.get("idempotent")))
        if not step.get("idempotent"):
            happened = await self._ask_reconciler(args)
            if happened is None:
                return None
            if happened:
                return {"kind": "succeeded", "latency_ms": 0, "facts": [], "reconciled": True}
        try:
            return await self._settle(self._start_step(args))
        except ActivityError as again:
            return self._outcome_of(again, step) or {"kind": "failed", "latency_ms": 0, "error": f"lost again: {again.cause or again}", "retryable": True}

    async def _ask_reconciler(self, args: dict) -> bool | None:
        happened = await self._settle(
            workflow.start_activity(
                "intento.reconcile", args, start_to_close_timeout=timedelta(seconds=60), retry_policy=RetryPolicy(maximum_attempts=3), summary=f"did {args['action']} via {args['provider']} take effect?"
            )
        )
        self._event("reconciled", action=args["action"], provider=args["provider"], happened=happened)
        return happened

    async def _give_up(self, outcome: dict) -> dict:
        """Give up once: steps in flight end (each within its activity's limit) and one that took
        effect is undone with the rest; awaited facts are no longer waited for; completed steps
        are compensated in reverse order; the run escalates with ``outcome`` (and the worker's
        `on_escalation` handler is told), or, when it was cancelled, ends cancelled. A
        cancellation that arrives meanwhile does not cut the undos short: the run ends cancelled
        once they are done, as with the embedded executor."""
        self.state = "giving_up"
        self._event("giving_up", **{k: v for k, v in outcome.items() if k != "conflict"})
        self._show()
        self._take_grants()
        self._withdraw_stale(everything=True)  # slots waited for, or granted and unused: back at once
        await self._flush_releases(shielded=True)
        unknown = []
        for a, (provider, attempt, handle, step) in list(self.running.items()):
            try:
                out = await self._settle(handle)
            except ActivityError as err:
                out = self._outcome_of(err, step)
                if out is None:
                    self._event("needs_reconciliation", action=a, provider=provider, attempt=attempt, error=str(err.cause or err))
                    happened = await self._ask_reconciler(self._step_args(a, provider, attempt, f"{workflow.info().workflow_id}/{a}/{provider}", step.get("latency_ms", 1), step.get("timeout_ms"), bool(step.get("idempotent"))))
                    if happened is None:
                        unknown.append(a)
                    out = {"kind": "succeeded", "reconciled": True} if happened else None
            del self.running[a]
            self._release_step(a)
            if out is None:
                continue
            if out["kind"] == "succeeded":
                self._succeeded(a, provider, attempt, step, out)
                self.spent += Decimal(str(step.get("cost") or 0))
            else:
                self._event("step_failed" if out["kind"] == "failed" else "step_timed_out", action=a, provider=provider, attempt=attempt, error=out.get("error"))
        for a, (provider, _, _) in sorted(self.awaiting.items()):
            self._event("wait_dropped", action=a, provider=provider, reason="the run is giving up")
            self._release_step(a)
        self.awaiting.clear()
        await self._flush_releases(shielded=True)  # before the undos, which take no slots
        compensated = await self._compensate()
        status = "cancelled" if self.cancel_requested else "escalated"
        who = self.cancelled_by or {"reason": "cancelled through Temporal", "by": "temporal"}
        if status == "cancelled":
            # Who asked and why, as the embedded engine's outcome says it (the `cancel_reason`
            # signal has arrived by now when it was sent before Temporal's cancel request).
            said = f"cancelled by {who['by']}: {who['reason']}"
            if outcome.get("reason") == "cancelled":
                outcome = {**outcome, "reason": said}
            else:
                outcome = {**outcome, "reason": f"{said} (while giving up: {outcome.get('reason')})", "summary": f"the run was cancelled while giving up ({outcome.get('reason')})"}
        result = {
            "status": status,
            "reason": outcome.get("reason"),
            "done": dict(self.done),
            "facts": sorted(self.facts),
            "compensated": compensated,
            "undo_failed": list(self.undo_failed),
            "conflict": outcome.get("conflict", []),
            "summary": outcome.get("summary"),
            "cost": str(self.spent),
            "events": self.events,
        }
        if unknown:
            result["unknown"] = unknown
        if status == "cancelled":
            result["cancelled"] = dict(who, at=self.cancel_at)
        if status == "cancelled" and self.holds:
            # The cancellation is a decision (a person's): the audit chain records it, as on the
            # embedded engine.
            await self._settle(
                workflow.start_activity(
                    "intento.cancelled",
                    {"run": workflow.info().workflow_id, "intent": self.req["intent"], "given": self.req["given"], "facts": sorted(self.facts),
                     "cancelled": dict(who, plan=f"{workflow.info().workflow_id}/plan-{self.plans}" if self.plans else None)},
                    start_to_close_timeout=timedelta(seconds=60),
                    retry_policy=RetryPolicy(maximum_attempts=3),
                    summary="audit: cancelled",
                )
            )
        if status == "escalated":
            told = await self._settle(
                workflow.start_activity(
                    "intento.escalate",
                    {"run": workflow.info().workflow_id, "conflict": result["conflict"], "summary": result["summary"], "reason": result["reason"]},
                    start_to_close_timeout=timedelta(seconds=60),
                    retry_policy=RetryPolicy(maximum_attempts=3),
                    summary="on_escalation",
                )
            )
            if told:  # the handler failed: recorded, the run is escalated all the same
                self._event("observation", source="escalation", error=told)
        self.state = status
        self._event(status)
        self.outcome = result
        self._show()
        return result

    async def _compensate(self) -> list[str]:
        compensated = []
        run_id = workflow.info().workflow_id
        down = {p for p, h in self._health({}, self._now()).items() if h.get("status") == "down"}
        for a, provider, step in reversed(self.completed):
            undo = step.get("undo")
            if not undo:
                continue
            if isinstance(undo, str):  # a plan recorded before undo options were part of it
                undo = {"action": undo, "timeout_ms": None, "options": [[provider, 1000]]}
            options = dict((p, ms) for p, ms in undo["options"])
            via = provider if provider in options else next((p for p, _ in undo["options"] if p not in down), None)
            if via is None:
                self._undo_failed(undo["action"], a, "no usable option")
                continue
            args = self._step_args(undo["action"], via, 1, f"{run_id}/undo/{a}", options[via], undo.get("timeout_ms"), True)
            self._event("compensating", action=undo["action"], provider=via, **{"for": a})
            self._show()
            try:
                # Temporal retries only a lost undo (same key); a failed one is final, as in the embedded engine.
                out = await self._settle(self._start_step(args, retry=RetryPolicy(maximum_attempts=3), summary=f"undo {a}: {undo['action']} via {via}"))
            except ActivityError as err:
                out = self._outcome_of(err, {"timeout_ms": undo.get("timeout_ms")}) or {"kind": "failed", "error": f"lost: {err.cause or err}"}
            if out["kind"] == "succeeded":
                compensated.append(a)
                self._event("compensated", action=undo["action"], **{"for": a})
            else:
                self._undo_failed(undo["action"], a, out.get("error") or "failed")
        return compensated

    def _undo_failed(self, undo: str, for_: str, error: str) -> None:
        self.undo_failed.append({"action": undo, "for": for_, "error": error})
        self._event("compensation_failed", action=undo, **{"for": for_}, error=error)
