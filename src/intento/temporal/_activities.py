"""Temporal activities: planning and steps, run by an `intento worker`.

Input: plain JSON dicts from the workflow. Output: plain JSON dicts. Planning is an activity so
that the workflow stays deterministic on replay while the plan adapts (a re-plan's answer is
recorded in the workflow history, so a replay reads it instead of solving again).

Given values travel as the JSON a request carries (`values.to_json`: a number as its exact
decimal string, money as "4.50 USD", a duration in milliseconds); each activity reads them back
with their declared types (`request.typed_context`), so a handler receives what the embedded
executor would give it, and the audit records are the ones the embedded executor writes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from intento.audit import AuditLog, read_records
from intento.audit import secret_key as audit_secret_key
from intento.evaluate import formula_facts, formula_json
from intento.execute.environment import Scenario, StepRequest, _ms, _rng, simulate_step
from intento.execute.handlers import PermanentError, Registry, RetryableError, StepContext
from intento.execute.store import Store
from intento.learn import Learning, figures as learned_figures, used as learned_used
from intento.plan import LearnedFigure
from intento.request import typed_context
from intento.semantics import requirement
from intento.solve import plan_problem, prepare
from intento.spec import Spec
from intento.temporal._capacity import DEFAULT_CHECK_S, DEFAULT_HISTORY_LIMIT, semaphore_id
from intento.temporal._capacity import WORKFLOW as CAPACITY_WORKFLOW
from intento.temporal._secrets import SecretUnreadable, unseal
from intento.values import Duration

#: A running step activity heartbeats this often (the SDK batches them to its heartbeat timeout).
HEARTBEAT_EVERY_S = 1.0
#: How long the plan activity waits for a semaphore's `slots` query before planning without it.
BUSY_QUERY_TIMEOUT = timedelta(seconds=5)
#: The error type of a step that failed (or timed out, in simulation): a failed activity in
#: Temporal's terms, never retried by Temporal (the workflow re-plans); its details carry the
#: outcome as the workflow reads it (`_workflow.IntentRun._outcome_of`).
STEP_FAILED = "StepFailed"


def step_failure(out: dict[str, Any]) -> ApplicationError:
    # Benign: a provider failing is the run's business (it re-plans), not the worker's; the SDK
    # then logs it at debug level instead of a warning with a traceback per failed step.
    return ApplicationError(out.get("error") or "the step failed", out, type=STEP_FAILED, non_retryable=True, category=ApplicationErrorCategory.BENIGN)


def remaining_problem(spec: Spec, req: dict[str, Any], given: dict[str, Any], busy: dict[str, list[str]] | None = None, learned: dict[str, dict] | None = None):
    """The planning problem of a run's plan request (`IntentRun`'s, or its `remaining` query's)
    under ``spec``, with its observed state: what a re-plan solves, and what `intento policy
    impact --engine temporal` solves under the current and the new policies."""
    providers = {p: dict(v) for p, v in (req.get("providers") or {}).items()}
    for p, held in (busy or {}).items():
        providers.setdefault(p, {})["busy"] = held
    state = {"facts": req["facts"], "providers": providers}
    excluded = {(a, p): why for a, p, why in req.get("excluded", [])}
    budget = Decimal(req["budget_left"]) if req.get("budget_left") is not None else "declared"
    # `given` is the workflow's JSON context; `prepare` types it again (a number from "0.1").
    problem = prepare(spec, req["intent"], given, state, deadline_ms=req.get("deadline_left", "declared"), budget=budget, excluded=excluded, done=req.get("done") or {}, learned=learned)
    return problem, state


class Activities:
    def __init__(
        self,
        spec: Spec,
        scenario: Scenario | None = None,
        registry: Registry | None = None,
        audit: AuditLog | None = None,
        time_scale: float = 0.0,
        secret_key: bytes | None = None,
        capacity_check_s: float = DEFAULT_CHECK_S,
        capacity_history_limit: int = DEFAULT_HISTORY_LIMIT,
        learning: Learning | None = None,
        samples: Store | None = None,
    ):
        self.spec = spec
        #: Learned figures (`intento worker --learn`): this worker's steps are kept as samples in
        #: ``samples`` (its store), and its plans use the figures observed there (`intento.learn`).
        self.learning, self.samples = learning, samples
        if learning is not None and samples is None:
            raise ValueError("learned figures need a store for the samples")
        #: The semaphores this worker starts (`intento.temporal._capacity`): how often they ask
        #: whether their holders still run while others wait, and when they continue as new.
        self.capacity_check_s = capacity_check_s
        self.capacity_history_limit = capacity_history_limit
        #: Opens sealed secret givens: this key, else the audit log's (``INTENTO_SECRET_KEY`` or
        #: the key file beside the log), else ``INTENTO_SECRET_KEY``.
        self._secret_key = secret_key
        self.scenario = scenario
        self.registry = registry or Registry()
        self.audit = audit
        #: Simulation: seconds slept per simulated millisecond (0: answer at once).
        self.time_scale = time_scale
        #: The hash of the policies this worker judges by (a plan says which version judged it).
        from intento.audit import sources_of

        self.policy_set = sources_of(spec, sorted(spec.policies)).policy_set

    def _key(self) -> bytes:
        if self._secret_key is None:
            import os

            if self.audit is not None:
                self._secret_key = audit_secret_key(self.audit.path)
            else:
                self._secret_key = os.environ.get("INTENTO_SECRET_KEY", "").encode()
        return self._secret_key

    def _given(self, given: dict[str, Any]) -> dict[str, Any]:
        """The run's given values (JSON) with sealed secrets opened."""
        return unseal(given, self._key())

    @activity.defn(name="intento.plan")
    async def plan(self, req: dict[str, Any]) -> dict[str, Any]:
        """A plan (or a hold's or switch time's check) from the run's state, with the slots
        other runs hold on providers with a `capacity` (their semaphores' `slots` query) as the
        observed state's `busy`; the solve runs in a thread."""
        busy = await self._busy(req)
        return await asyncio.to_thread(self._plan, req, busy)

    async def _busy(self, req: dict[str, Any]) -> dict[str, list[str]]:
        """The slots other runs hold, per provider with a `capacity`, each as the time until it is
        expected back (its grant plus its option's latency; one past that is back any moment:
        1 ms), at most `capacity` of them, as the embedded executor's `_busy`. A semaphore that
        does not exist holds nothing; one that does not answer in time is left out (its slots
        are still enforced when the run asks for one)."""
        caps = {p: pv.capacity for p, pv in sorted(self.spec.providers.items()) if pv.capacity}
        if not caps:
            return {}
        from temporalio.client import Client

        try:
            client: Client = activity.client()
            # The run's main queue (a plan runs on its version's queue, `<queue>@<version>`).
            queue = req.get("task_queue") or activity.info().task_queue
        except RuntimeError:  # outside a worker (a test calling the activity directly)
            return {}
        now = int(time.time() * 1000)

        async def held(p: str) -> tuple[str, list[int]]:
            try:
                view = await client.get_workflow_handle(semaphore_id(p, queue)).query("slots", rpc_timeout=BUSY_QUERY_TIMEOUT)
            except Exception:  # noqa: BLE001 - no semaphore yet (not found), or no answer in time
                return p, []
            return p, [max(1, int(h["until_ms"]) - now) for h in view.get("holders", []) if h.get("run") != req["run"]]

        out = {}
        for p, ms in await asyncio.gather(*(held(p) for p in caps)):
            if ms:
                out[p] = [f"{x}ms" for x in sorted(ms, reverse=True)[: caps[p]]]
        return out

    def _plan(self, req: dict[str, Any], busy: dict[str, list[str]] | None = None) -> dict[str, Any]:
        spec = self.spec
        try:
            given = self._given(req["given"])
        except SecretUnreadable as e:  # a worker's configuration: no retry opens it
            raise ApplicationError(str(e), type="SecretUnreadable", non_retryable=True) from None
        learned = learned_figures(spec, self.samples.step_stats(), self.learning) if self.learning is not None and self.samples is not None else None
        problem, state = remaining_problem(spec, req, given, busy, learned)
        deadline = req.get("deadline_left", "declared")
        force = req.get("force") or None
        time_limit = req.get("time_limit_s", 10.0)
        if req.get("check"):
            # A hold's question (is there a plan once a cool-down ends?): no decision, so no
            # audit record and no explanation, as the embedded executor asks it.
            # Or a switch time's (the best route around an awaited step: its latency and steps).
            found = plan_problem(problem, time_limit_s=time_limit, explain="none", force=force if req.get("switch") else None)
            if not req.get("switch"):
                return {"status": found.status}
            return {"status": found.status, "latency_ms": found.latency_ms, "steps": [[x.action, x.provider] for x in found.steps]}
        plan = plan_problem(problem, time_limit_s=time_limit, force=force)
        unforced = False
        if not plan.feasible and force:
            plan = plan_problem(problem, time_limit_s=time_limit)
            unforced = True
        figures = learned_used(learned, plan)
        if figures:
            # Which observed figures the decision used, and where they came from (as the embedded engine).
            plan.explanation.figures = [LearnedFigure(**f) for f in figures]
        if self.audit is not None:
            # The JSON context, as the embedded executor records it: secret values are replaced by
            # the same keyed hash, every other value is written as a request would carry it.
            inputs = {
                "state": state,
                "deadline_ms": None if deadline == "declared" else deadline,
                "budget": req.get("budget_left"),
                "excluded": sorted(req.get("excluded", [])),
                "done": req.get("done") or {},
                "running": dict(force or {}),
                "force": dict(force or {}),
                "at": req.get("at"),
                "time_limit_s": time_limit,
                "backend": "cpsat",
                "unforced": unforced,
            } | ({"learned": learned} if learned is not None else {})
            self.audit.append(spec, req["intent"], given, state, plan, kind="replan" if req.get("plans") else "plan", run=req["run"], reason=req.get("reason"), inputs=inputs,
                              decision=f"{req['run']}/plan-{req.get('plans', 0) + 1}")
        steps = []
        for s in plan.steps:
            a = spec.actions[s.action]
            act = next(x for x in problem.actions if x.name == s.action)
            steps.append(
                {
                    "action": s.action,
                    "provider": s.provider,
                    "requirement": formula_json(requirement(problem, act)),
                    "latency_ms": s.latency_ms,
                    # When the plan starts it (after slots other runs hold, when it must wait for one).
                    "start_ms": s.start_ms,
                    "timeout_ms": a.timeout_ms,
                    "idempotent": a.idempotent,
                    "external": a.external,
                    "cost": s.cost,
                    "achieves": list(a.achieves),
                    "undo": self._undo(a.undo),
                    # A provider's `capacity`: the run takes one of its slots before the step.
                    "capacity": spec.providers[s.provider].capacity,
                    **({"lands_after_ms": self._lands_after(req["run"], s.action, s.provider, s.latency_ms, a.achieves)} if a.external and self.scenario is not None else {}),
                }
            )
        return {
            "status": plan.status,
            "steps": steps,
            # What must hold for the run to succeed: the goal and every hard `require` of the
            # policies that apply (as the embedded executor's `_end`).
            "goal": {"and": [formula_json(problem.intent.goal)] + [formula_json(r[1]) for _, r in problem.rules if r[0] == "require"]},
            "deadline": self._deadline(req["intent"]),
            "cost": plan.cost,
            "latency_ms": plan.latency_ms,
            "conflict": [r.model_dump() for r in (plan.explanation.conflict or [])],
            "summary": plan.explanation.summary,
            "explanation": plan.explanation.model_dump(mode="json"),
            # Which project decided (a worker started with changed sources decides with them).
            "project": spec.fingerprint,
            "policy_set": self.policy_set,
            # The slots other runs held when it was planned (the observed state's `busy`).
            **({"busy": busy} if busy else {}),
            # The learned figures it used (`intento worker --learn`).
            **({"figures": figures} if figures else {}),
        }

    def _lands_after(self, run: str, action: str, provider: str, latency_ms: int, achieves) -> int | None:
        """Simulation: how long after it is awaited an external step's facts land, as the
        embedded simulator draws it (its latency with the provider's jitter); None when the
        scenario schedules them itself (at a time, or never)."""
        if any(f in self.scenario.facts for f in achieves):
            return None
        prov = self.scenario.providers.get(provider, self.scenario.default)
        rng = _rng(self.scenario.seed, f"{run}/{action}/{provider}", "external")
        return max(1, int(round(latency_ms * rng.lognormvariate(0, prov.latency_sigma))))

    @activity.defn(name="intento.simulation")
    def simulation(self, req: dict[str, Any]) -> list[list] | None:
        """Simulation: the scenario's feed (facts landing at their times, provider status changes
        and facts observed at given times) as [ms since the run started, observation], in time
        order; None when this worker runs real handlers."""
        if self.scenario is None:
            return None
        feed: list[list] = []
        for fact, f in self.scenario.facts.items():
            if f.at is not None:
                feed.append([_ms(f.at), {"fact": fact, "source": "simulation"}])
        for ob in self.scenario.observations:
            data = {k: v for k, v in ob.model_dump(exclude_none=True).items() if k != "at"}
            if "latency" in data:
                data["latency"] = _ms(data["latency"])
            feed.append([_ms(ob.at), data | {"source": "simulation"}])
        # As the embedded simulator: what happens after the run started (a time of 0 is before it).
        return sorted((x for x in feed if x[0] > 0), key=lambda x: x[0])

    def _undo(self, name: str | None) -> dict | None:
        """How a step is compensated: its undo action, with each provider's latency (the workflow
        uses the step's own provider when the undo offers it, as the embedded executor does)."""
        if name is None:
            return None
        u = self.spec.actions[name]
        return {"action": name, "timeout_ms": u.timeout_ms, "options": [[o.provider, o.latency_ms] for o in u.options]}

    def _deadline(self, intent: str) -> dict | None:
        """The intent's deadline as a run that misses it names it: the same conflict (deadline and
        goal, located) as the embedded executor's outcome."""
        i = self.spec.intents[intent]
        if i.deadline_ms is None:
            return None
        text = f"deadline {Duration(i.deadline_ms)}"
        return {
            "text": text,
            "goal_facts": sorted(formula_facts(i.goal)),
            "conflict": [
                {"policy": "deadline", "statement": text, "kind": "deadline", "location": i.deadline_span.location if i.deadline_span else None},
                {"policy": "goal", "statement": "goal", "kind": "goal", "location": i.goal_span.location if i.goal_span else None},
            ],
        }

    def _context(self, req: dict[str, Any]) -> dict[str, Any]:
        """The step's given values typed (Decimal, Money, Duration, bool, str), as handlers get them."""
        context = self._given(req.get("context") or {})
        return typed_context(self.spec, req["intent"], context) if req.get("intent") else dict(context)

    @activity.defn(name="intento.step")
    def step(self, req: dict[str, Any]) -> dict[str, Any]:
        """One step. The step runs in a thread of its own while this activity heartbeats, so a
        worker that dies mid-step is noticed within the heartbeat timeout (a lost step, to
        reconcile), apart from the step overrunning its own `timeout` (the activity's limit)."""
        box: dict[str, Any] = {}
        finished = threading.Event()

        def work() -> None:
            try:
                box["out"] = self._step(req)
            except BaseException as e:  # noqa: BLE001 - handed back to the activity thread
                box["error"] = e
            finally:
                finished.set()

        # A daemon thread: a step abandoned after its timeout never holds the worker's exit.
        threading.Thread(target=work, name=f"intento-step-{req['action']}", daemon=True).start()
        while not finished.wait(HEARTBEAT_EVERY_S):
            activity.heartbeat()
        if "error" in box:
            raise box["error"]
        out = box["out"]
        self._sample(req, out)
        if out["kind"] != "succeeded":
            raise step_failure(out)
        return out

    def _sample(self, req: dict[str, Any], out: dict[str, Any]) -> None:
        """Keep a step's outcome as a sample when this worker learns (an undo is not one)."""
        if self.samples is None or "/undo/" in req["key"] or out["kind"] not in ("succeeded", "failed"):
            return
        try:
            self.samples.add_sample(req["provider"], req["action"], out["kind"], int(out.get("latency_ms") or 0), int(time.time() * 1000), req["run"])
        except Exception as e:  # noqa: BLE001 - a sample lost is no reason to fail the step
            activity.logger.warning("intento: could not keep a sample of %s via %s: %s", req["action"], req["provider"], e)

    def _step(self, req: dict[str, Any]) -> dict[str, Any]:
        try:
            context = self._context(req)
        except SecretUnreadable as e:
            return {"kind": "failed", "latency_ms": 0, "error": str(e), "retryable": False}
        r = StepRequest(req["run"], req["action"], req["provider"], req["attempt"], req["key"], req["latency_ms"], req.get("timeout_ms"), req["idempotent"], context)
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
        try:
            context = self._context(req)
        except SecretUnreadable as e:
            raise ApplicationError(str(e), type="SecretUnreadable", non_retryable=True) from None
        return bool(fn(StepContext(req["run"], req["action"], req["provider"], req["attempt"], req["key"], context)))

    @activity.defn(name="intento.cancelled")
    def cancelled(self, req: dict[str, Any]) -> None:
        """A run's cancellation as a record of the audit chain, as the embedded executor writes
        it (kind `cancel`: who asked, why, and the plan it stopped); nothing without an audit log."""
        if self.audit is None:
            return
        try:
            given = self._given(req.get("given") or {})
        except SecretUnreadable as e:
            raise ApplicationError(str(e), type="SecretUnreadable", non_retryable=True) from None
        decision = f"{req['run']}/cancel"
        if self.audit.path.exists() and any(r.get("decision") == decision for r in read_records(self.audit.path)[0]):
            return  # written by an attempt whose answer was lost: once only
        self.audit.write(self.audit.draft_cancel(self.spec, req["intent"], given, {"facts": req.get("facts", [])}, run=req["run"], decision=decision, cancelled=req["cancelled"]))

    @activity.defn(name="intento.escalate")
    def escalate(self, req: dict[str, Any]) -> str | None:
        """Tell the registered escalation handler (`on_escalation`) that a run escalated, as the
        embedded executor does; its failure is returned (and recorded by the workflow), never raised."""
        fn = self.registry.escalation
        if fn is None:
            return None
        try:
            fn(req["run"], req.get("conflict", []), req.get("summary") or req.get("reason") or "")
        except Exception as e:  # the run is escalated whatever the handler does
            return f"the escalation handler failed: {e}"
        return None

    # ---- capacity across runs (intento.temporal._capacity) ------------------------------------
    @activity.defn(name="intento.capacity.acquire")
    async def acquire_slot(self, req: dict[str, Any]) -> None:
        """Ask a provider's semaphore for a slot: signal-with-start, so the semaphore workflow is
        started on demand (on the run's task queue) and gets the request either way. The grant
        comes to the run as its `slot_granted` signal; a request sent twice is asked once."""
        client = activity.client()
        await client.start_workflow(
            CAPACITY_WORKFLOW,
            {"provider": req["provider"], "capacity": req.get("capacity"), "check_s": self.capacity_check_s, "history_limit": self.capacity_history_limit},
            id=req["semaphore"],
            task_queue=req.get("task_queue") or activity.info().task_queue,
            start_signal="acquire",
            start_signal_args=[req],
            static_summary=f"capacity of {req['provider']}",
            memo={"provider": req["provider"], "capacity": req.get("capacity")},
        )

    @activity.defn(name="intento.capacity.check")
    async def check_holders(self, req: dict[str, Any]) -> list[list[str]]:
        """Which of a semaphore's holders ([workflow id, run id]) are no longer running: ended,
        terminated, timed out, or unknown to Temporal. One that cannot be asked now is not
        named (asked again at the next check)."""
        from temporalio.client import WorkflowExecutionStatus
        from temporalio.service import RPCError, RPCStatusCode

        client = activity.client()
        gone = []
        for wid, run_id in req.get("holders", []):
            try:
                desc = await client.get_workflow_handle(wid, run_id=run_id).describe()
            except RPCError as e:
                if e.status == RPCStatusCode.NOT_FOUND:
                    gone.append([wid, run_id])
                continue
            if desc.status != WorkflowExecutionStatus.RUNNING:
                gone.append([wid, run_id])
        return gone
