"""The executor: run a plan, observe, re-plan, compensate, escalate — and never lose a run.

Input: a checked project, a store, an environment (simulated or real) and a registry of handlers.
Output: runs driven to an outcome (``succeeded`` or ``escalated``), every change recorded as an
event *before* it takes effect, every plan and re-plan written to the audit log.

The loop: rebuild the run's state from its events; if the goal holds, succeed; if a (re-)plan is
due, ask the public planner (`intento.solve`) for the best plan from the current state (facts so
far, providers' observed health, options that failed for good, the deadline and budget left, the
steps still running kept in); dispatch every planned step whose requirement holds (capacity
respected); wait for the next outcome, observation or timeout; record it; repeat. Retries and
fallbacks are not written anywhere: a failure changes the observed state, and the re-plan picks
what is now best (the same provider again, another one, another route). When no plan remains,
completed steps are compensated in reverse order and the run escalates with the minimal conflict.

Crash safety: ``step_dispatched`` is durable before a handler runs. On restart, a step dispatched
without an outcome is re-sent with the same idempotency key if its action is ``idempotent``;
otherwise it is marked ``needs_reconciliation`` and re-sent only after a reconciler answers that
its effect did not happen (if it did, the step is recorded as succeeded; with no reconciler, the
run escalates). No non-idempotent step is ever executed twice automatically.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import socket
import time
import uuid
from decimal import Decimal
from typing import Any, Callable, Generator

from intento.audit import AuditLog
from intento.diagnostics import IntentoError
from intento.errors import OperationalError
from intento.evaluate import formula_facts, formula_holds
from intento.execute.environment import Environment, Outcome, RealEnvironment, SimEnvironment, StepRequest
from intento.execute.handlers import Registry
from intento.execute.state import COOL_DOWN_MS, RunState, fold, fold_on
from intento.execute.store import HEARTBEAT_MS, Store, mark_taken, take, wall_ms
from intento.plan import LearnedFigure, SwitchTime
from intento.learn import Learning, figures as learned_figures, used as learned_used
from intento.render import _dur
from intento.request import typed_context
from intento.semantics import requirement
from intento.solve import Backend, plan_problem, prepare
from intento.spec import Spec
from intento.values import Duration, format_decimal, to_json
from intento.versions import changes_phrase, kept_sources, policy_changes, policy_set_hash, short, spec_from_kept, version_of, with_policy_set

#: How many plans one run may make before it escalates (a guard against flapping).
MAX_PLANS = 200
#: An awaited external step's switch time comes this share of the other route's latency before
#: that route's very last moment (see `Executor._switch_time`); `--switch-margin` changes it.
SWITCH_MARGIN = 0.2
#: How many times a run with no plan waits for providers presumed down to cool down.
MAX_COOLDOWN_HOLDS = 3


class RunBusy(OperationalError):
    """Another live process drives this run (its `drivers` row still beats)."""

    def __init__(self, run_id: str, driver: dict):
        self.run_id, self.driver = run_id, driver
        super().__init__(f"run {run_id} is being driven by process {driver['pid']} on {driver['host']}; it will be driven on if that process stops")


class KeyReused(OperationalError):
    """An idempotency key already names a run started with a different request."""

    def __init__(self, key: str, run_id: str):
        self.key, self.run_id = key, run_id
        super().__init__(f"the idempotency key `{key}` already names run {run_id}, started with a different request; use a new key for a new request")


def new_owner() -> str:
    """A driver's name in the store: host, process and a random part (two engines in one
    process are two drivers)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _signature(inputs: dict) -> str:
    """What a plan is decided from, less the clock: two plans with the same signature would be
    the same plan (but for the deadline left, which only the deadline itself ends)."""
    keep = {k: v for k, v in inputs.items() if k in ("state", "budget", "excluded", "done", "running", "force")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


def route_around(spec: Spec, intent: str, context: dict, inputs: dict, action: str, provider: str, backend: Backend = "cpsat", time_limit_s: float = 10.0):
    """The best plan from a decision's ``inputs`` (`Executor._inputs`, as its audit record keeps
    them) with ``action`` via ``provider`` counted out: the route a switch time is measured by.
    None when there is none (or the request can no longer be planned)."""
    excluded = {(a, p): why for a, p, why in inputs["excluded"]} | {(action, provider): "counted out, to find the route around it"}
    force = {a: p for a, p in (inputs.get("force") or {}).items() if a != action}
    try:
        problem = prepare(spec, intent, context, inputs["state"], deadline_ms=inputs["deadline_ms"],
                          budget=None if inputs["budget"] is None else Decimal(inputs["budget"]), excluded=excluded, done=inputs["done"], learned=inputs.get("learned"))
        fallback = plan_problem(problem, backend=backend, time_limit_s=time_limit_s, force=force or None, explain="none")
    except IntentoError:
        return None
    return fallback if fallback.feasible and fallback.latency_ms is not None else None


def switch_moment(deadline_at: int, route_ms: int, margin: float | None = None) -> int:
    """The switch time: the deadline less the route's latency and ``margin`` of it (default
    `SWITCH_MARGIN`)."""
    return deadline_at - route_ms - int(route_ms * (SWITCH_MARGIN if margin is None else margin))


class Executor:
    def __init__(
        self,
        spec: Spec,
        store: Store,
        env: Environment,
        registry: Registry | None = None,
        audit: AuditLog | None = None,
        time_limit_s: float = 10.0,
        secret_key: bytes = b"intento",
        new_id: Callable[[], str] | None = None,
        progress: Callable[[str, RunState, dict], None] | None = None,
        backend: Backend = "cpsat",
        learning: Learning | None = None,
        version_label: str | None = None,
        switch_margin: float | None = None,
    ):
        """``backend``: the planner's back-end for every (re-)plan; `constraint` (exhaustive)
        refuses models it could not enumerate, and the run then gives up saying so.
        ``learning``: plan with the figures observed in the store (`intento.learn`).
        ``switch_margin``: the share of the other route's latency a switch time leaves besides
        it (default `SWITCH_MARGIN`; 1.0 leaves room for that route twice: a failure and a retry)."""
        self.spec = spec
        self.switch_margin = SWITCH_MARGIN if switch_margin is None else float(switch_margin)
        self.learning = learning
        self.backend = backend
        self.store = store
        self.env = env
        self.registry = registry or Registry()
        self.audit = audit
        self.time_limit_s = time_limit_s
        self.secret_key = secret_key
        self.new_id = new_id or (lambda: "run-" + uuid.uuid4().hex[:12])
        self.progress = progress
        #: Per run: the last planned problem (for each step's requirement) and the soft
        #: `before` statements the plan chose to break (rebuilt by the re-plan after a restart).
        self._problems: dict[str, Any] = {}
        self._skipped: dict[str, frozenset[str]] = {}
        #: This executor as a driver of runs (store `drivers` rows), and the runs it drives now.
        self.owner = new_owner()
        self._driving: set[str] = set()
        self._last_beat = 0.0
        #: The fencing token of each run this executor holds the lease of: every append
        #: carries it, and the store refuses it once another driver has taken the run over.
        self._tokens: dict[str, int] = {}
        #: Runs with a planned step that waits for a capacity slot other runs hold.
        self.capacity_blocked: set[str] = set()
        #: Called with (plan status, seconds) after every (re-)plan (metrics).
        self.plan_observer: Callable[[str, float], None] | None = None
        #: The label new runs record with this executor's version (default: `INTENTO_VERSION_LABEL`).
        self.version_label = version_label if version_label is not None else (os.environ.get("INTENTO_VERSION_LABEL") or None)
        #: Versions' Specs by fingerprint, each run's, and the last rollout's (`_new_run_spec`).
        self._versions: dict[str, Spec] = {spec.fingerprint: spec}
        self._run_specs: dict[str, Spec] = {}
        self._rolled: dict = {}
        self._rollout_checked: dict[str, int] = {}
        self._kept: set[str] = set()
        #: Per run: its state as of the last event folded (`_state`).
        self._folds: dict[str, RunState] = {}

    # ---- starting -------------------------------------------------------------------------
    def start(self, intent: str, given: dict[str, Any] | None, state: dict | None = None, key: str | None = None) -> str:
        """Create a run (validated like a planning request) and return its id; a run that already
        exists under ``key`` is returned instead, so starting twice never makes two runs."""
        return self.create(intent, given, state, key)[0]

    def create(self, intent: str, given: dict[str, Any] | None, state: dict | None = None, key: str | None = None) -> tuple[str, bool]:
        """Like `start`, and say whether this call created the run (only its creator drives it)."""
        spec, version = self._new_run_spec()
        problem = prepare(spec, intent, given, state)  # raises IntentoError on bad input
        ispec = spec.intents[intent]
        context = {k: to_json(v) for k, v in problem.context.items()}
        asked = hashlib.sha256(json.dumps([intent, context, state or {}], sort_keys=True, default=str).encode()).hexdigest()[:32]
        key = key or asked
        existing = self.store.run_by_key(key)
        if existing:
            if existing.get("request") not in (None, asked):
                raise KeyReused(key, existing["id"])
            return existing["id"], False
        run_id = self.new_id()
        secrets = {n: v for n, v in context.items() if ispec.given[n].secret}
        redacted = {n: (self._hash(v) if n in secrets else v) for n, v in context.items()}
        clock = "virtual" if isinstance(self.env, SimEnvironment) else "wall"
        now = self.env.now()
        providers = {p: {k: v for k, v in obs.model_dump(mode="json", exclude_none=True).items()} for p, obs in problem.state.model.providers.items()}
        first = {
            "run": run_id,
            "intent": intent,
            "context": redacted,
            "deadline_ms": ispec.deadline_ms,
            "budget": format_decimal(ispec.budget) if ispec.budget is not None else None,
            "facts": sorted(problem.state.facts),
            "providers": providers,
            "project": spec.fingerprint,
            "clock": clock,
        } | version
        # The version's texts are kept with the run that first names them (in its transaction:
        # one durable commit; once per version and executor).
        kept = None
        if version["version"] not in self._kept:
            kept = (version["version"], version["policy_set"], version["label"], json.dumps(kept_sources(spec), separators=(",", ":")), now)
        if not self.store.create_run(run_id, key, intent, spec.fingerprint, now, secrets, first, clock=clock, request=asked, version=kept):
            existing = self.store.run_by_key(key)
            if existing.get("request") not in (None, asked):
                raise KeyReused(key, existing["id"])
            return existing["id"], False
        self._kept.add(version["version"])
        if self.progress:
            self.progress("run_started", self._state(run_id), first)
        return run_id, True

    # ---- versions ---------------------------------------------------------------------------
    def _new_run_spec(self) -> tuple[Spec, dict]:
        """The Spec and version a new run starts on: this executor's, unless a policy set was
        rolled out on the store (`intento policy rollout`): then its project with that set."""
        seq = self.store.last_rollout_seq()
        if not seq:
            return self.spec, version_of(self.spec, self.version_label)
        if self._rolled.get("seq") != seq:
            r = self.store.rollout(seq)
            spec = with_policy_set(self.spec, r["policies"])
            self._rolled = {"seq": seq, "spec": spec, "version": version_of(spec, r["label"]) | {"rollout": seq}}
            self._versions[spec.fingerprint] = spec
            if policy_set_hash(spec) != policy_set_hash(self.spec):
                logging.getLogger("intento.run").warning("new runs start on the policy set of rollout %s (%s), not on this engine's policy files; "
                            "roll those out with `intento policy rollout` to use them", seq, r["label"] or r["policy_set"][:12])
        return self._rolled["spec"], dict(self._rolled["version"])

    def _spec(self, run_id: str) -> Spec:
        """The Spec of the version the run is on (`RunState.version`; runs are pinned to it,
        whatever sources this executor was started with)."""
        spec = self._run_specs.get(run_id)
        if spec is None:
            spec = self._run_specs[run_id] = self._version_spec(self._state(run_id).version)
        return spec

    def _version_spec(self, version: str | None) -> Spec:
        """A version's Spec, from its texts kept in the store. A run started before versions were
        kept (or one whose texts are gone) is judged by this executor's sources."""
        if not version or version == self.spec.fingerprint:
            return self.spec
        spec = self._versions.get(version)
        if spec is None:
            kept = self.store.version(version)
            if kept is None:
                return self.spec
            try:
                spec = spec_from_kept(kept["sources"])
            except IntentoError:
                return self.spec
            self._versions[version] = spec
        return spec

    def _hash(self, value: Any) -> str:
        return "hmac-sha256:" + hmac.new(self.secret_key, str(value).encode(), hashlib.sha256).hexdigest()

    # ---- the loop ---------------------------------------------------------------------------
    def drive(self, run_id: str) -> RunState:
        """Drive a run until it reaches an outcome (or, in a real environment, forever).

        Everything the loop waits for is derived from the run's events (`RunState.timers`:
        step timeouts, awaited external facts, the deadline, the end of a hold), so a run
        killed anywhere is driven on by the same command after a restart."""
        st = self._state(run_id)
        if st.terminal:
            return st
        gen = self.steps(run_id, busy=True)
        if gen is None:
            return self._state(run_id)
        try:
            try:
                until = next(gen)
                while True:
                    self._beat()
                    if run_id in self.capacity_blocked and isinstance(self.env, SimEnvironment):
                        # Waiting for a slot another run holds: poll the store, and keep this
                        # run's virtual clock where it is (the other run's time is its own).
                        time.sleep(0.05)
                        until = gen.send([])
                        continue
                    until = gen.send(self.env.wait(until))
            except StopIteration as done:
                return done.value
        finally:
            gen.close()
            self.release(run_id)

    def steps(self, run_id: str, busy: bool = False) -> Generator[int | None, list, RunState] | None:
        """Claim the run's lease and return its driving loop as a generator: it yields when the
        run next needs waking (its earliest timer, None: only on an outcome or observation) and
        is sent what happened meanwhile (`Environment.wait`'s items; [] when a timer fell due or
        the inbox may hold something). It returns the run's final state. None (nothing claimed)
        when the run has finished or another live driver holds it (`RunBusy` with ``busy``)."""
        st = self._state(run_id)
        if st.terminal:
            return None
        other, token = self.store.claim(run_id, self.owner)
        if other is not None:
            if busy:
                raise RunBusy(run_id, other)
            return None
        self._tokens[run_id] = token
        self._driving.add(run_id)
        if self._driving == {run_id}:
            self._last_beat = time.monotonic()  # the claim has just beaten the only run driven
        return self._drive(run_id, st)

    def release(self, run_id: str) -> None:
        """Give up the run's lease (after its outcome, or when this process stops)."""
        self._driving.discard(run_id)
        self.capacity_blocked.discard(run_id)
        self._tokens.pop(run_id, None)
        self._folds.pop(run_id, None)
        self.store.release(run_id, self.owner)

    def current(self, run_id: str) -> RunState:
        return self._state(run_id)

    def _flush_audit(self, run_id: str) -> None:
        """Write the audit records a crash left in the store's outbox (each once: a record the
        log already holds, written just before the crash, is not written again)."""
        for decision, draft in self.store.outbox(run_id):
            if self.audit is not None and not self.audit.has_decision(decision):
                self.audit.write(draft)
            self.store.outbox_done(decision)

    def _drive(self, run_id: str, st: RunState) -> Generator[int | None, list, RunState]:
        self._flush_audit(run_id)
        context = self._context(run_id, st)
        # What was queued while nobody drove the run comes first: a cancellation must be known
        # before recovery decides whether to send a step that was in flight at a crash again.
        early = self._drain_inbox(run_id)
        self._recover(run_id, self._state(run_id), context)
        need_plan = "run started" if st.plan is None else "resumed"
        if early and self._state(run_id).status != "giving_up" and st.plan is not None:
            need_plan = early
        while True:
            st = self._state(run_id)
            if st.terminal:
                return st
            self.capacity_blocked.discard(run_id)
            if st.status == "running":
                migrated = self._migrate_due(run_id, st)
                if migrated:
                    need_plan = migrated
            reason = self._drain_inbox(run_id)
            if reason and st.status != "giving_up":
                need_plan = reason
            st = self._state(run_id)
            if st.status == "giving_up":
                self._drop_waits(run_id, st, "the run is giving up")
                st = self._state(run_id)
                if not st.running():
                    yield from self._compensate(run_id, context)
                    return self._state(run_id)
            else:
                now = self.env.now()
                goal = all(formula_holds(f, st.facts) for f in self._end(run_id, st, context))
                if goal and not [s for s in st.running() if s.compensation_for is None and not s.switched]:
                    # Waits the run switched away from end with it: the goal holds without them.
                    for s in [s for s in st.awaiting() if s.switched]:
                        self._append(run_id, self._state(run_id).next_seq, "wait_dropped", now, {"action": s.action, "provider": s.provider, "reason": "the goal holds without it"})
                    st = self._state(run_id)
                    self._append(run_id, st.next_seq, "succeeded", now, {"facts": sorted(st.facts), "spent": format_decimal(st.spent)}, status="succeeded")
                    return self._state(run_id)
                if not goal and st.deadline_at is not None and now >= st.deadline_at:
                    # The deadline passed: give up once (steps in flight are awaited, then
                    # completed ones compensated); re-planning cannot help any more.
                    self._give_up(run_id, st, self._deadline_outcome(st, now))
                    continue
                if need_plan:
                    if self._plan(run_id, st, context, need_plan) is False:
                        continue
                    need_plan = None  # planned, or holding: the next outcome or timer re-plans
                    st = self._state(run_id)
                self._dispatch_ready(run_id, st, context)
                st = self._state(run_id)
            timers = st.timers()
            if st.status == "running" and st.deadline_at is not None and self.env.now() >= st.deadline_at:
                # Past the deadline and still running: the goal holds and a step is in flight
                # (else the run would be giving up). Its outcome is what is awaited, not the
                # deadline, which would wake the run again at once, forever.
                timers = [t for t in timers if t != st.deadline_at]
            until = min(timers, default=None)
            items = yield until
            if not items:
                reason = self._timers(run_id)
                if reason and self._state(run_id).status != "giving_up":
                    need_plan = reason
                elif not reason and isinstance(self.env, SimEnvironment) and self.env.idle() and until is None and not self._state(run_id).running() and run_id not in self.capacity_blocked:
                    self._stall(run_id)
                continue
            for kind, item in items:
                reason = self._record(run_id, kind, item)
                if reason and self._state(run_id).status != "giving_up":
                    need_plan = reason

    def _end(self, run_id: str, st: RunState, context: dict) -> list:
        """What must hold for the run to succeed: the goal, and every hard `require` of the
        policies that apply to it (a plan achieves those too; a run never ends before them)."""
        problem = self._problems.get(run_id)
        if problem is None:
            try:
                problem = prepare(self._spec(run_id), st.intent, context, {"facts": sorted(st.facts)})
            except IntentoError:
                return [self._spec(run_id).intents[st.intent].goal]
        return [problem.intent.goal] + [r[1] for _, r in problem.rules if r[0] == "require"]

    def _state(self, run_id: str) -> RunState:
        """The run's state as of its last event. Folded once, then advanced only by the events
        after the last one folded (`state.fold_on`): this executor's own appends come folded
        from the store (`Store.folded`, which folds each event it writes for the projection),
        and whatever another writer appended meanwhile is read with `events_after`, so a step
        costs the same however long the log is. Each state handed out is a snapshot: it never
        changes once returned."""
        st = self._folds.get(run_id)
        shared = self.store.folded(run_id) if hasattr(self.store, "folded") else None
        if shared is not None and (st is None or shared.st.next_seq > st.next_seq):
            st = shared.st  # the store's fold of this executor's last append (the same snapshot rules)
        st = fold(self.store.events(run_id)) if st is None else fold_on(st, self.store.events_after(run_id, st.next_seq - 1))
        self._folds[run_id] = st
        return st

    def _context(self, run_id: str, st: RunState) -> dict:
        """The run's given values as JSON (`values.to_json`), secret ones read back from the store."""
        return dict(st.context) | self.store.secrets(run_id)

    def _append(self, run_id: str, seq: int, type_: str, at: int, data: dict, status: str | None = None, outbox: tuple[str, dict] | None = None, slot: tuple | None = None) -> bool:
        if not self.store.append(run_id, seq, type_, at, data, status=status, outbox=outbox, lease=self._tokens.get(run_id), slot=slot, driver=self.owner):
            return False
        if self.progress:
            try:
                self.progress(type_, self._state(run_id), data)
            except Exception:  # a progress hook (logs, traces, a CLI's output) never stops a run
                logging.getLogger("intento.run").exception("the progress hook failed on %s of run %s", type_, run_id)
        return True

    # ---- driving many runs: who drives what ---------------------------------------------------
    def _beat(self, force: bool = False) -> None:
        """Beat the store's driver rows of the runs this executor drives, at most every
        `HEARTBEAT_MS`, from the driving loop itself (no thread: a process that forks, as the
        crash tests do, must not inherit a lock held by one). The loop never blocks longer than
        a wait's poll or one solve, both well inside `DRIVER_EXPIRY_MS`."""
        now = time.monotonic()
        if not force and now - self._last_beat < HEARTBEAT_MS / 1000:
            return
        self._last_beat = now
        self.store.beat(self.owner, sorted(self._driving))

    def close(self) -> None:
        """Nothing to stop: driver rows of runs no longer driven simply expire."""

    # ---- planning -----------------------------------------------------------------------------
    def _inputs(self, st: RunState, now: int) -> dict:
        """Everything a (re-)plan is decided from, as JSON: recorded in the `planned` event and
        the audit record, so `intento audit replay` re-solves exactly the same request."""
        providers = {}
        for p in self._spec(st.run).providers:
            status = st.provider_status(p, now)
            if status == "up":
                continue
            entry: dict = {"status": status}
            obs = st.observed.get(p, {})
            for k in ("latency", "cost", "reliability"):
                if obs.get(k) is not None:
                    entry[k] = obs[k]
            providers[p] = entry
        for p, held in self._busy(st.run).items():
            providers.setdefault(p, {})["busy"] = held
        # A step past its switch time is still awaited but no longer counted on: not kept.
        running = {s.action: s.provider for s in st.running() if s.compensation_for is None and not s.switched}
        force = {a: p for a, p in running.items() if providers.get(p, {}).get("status") != "down"}
        budget_left = None if st.budget is None else max(Decimal(0), st.budget - st.spent + sum(self._cost(a, p, st.run) for a, p in force.items()))
        return {
            "state": {"facts": sorted(st.facts), "providers": providers},
            "deadline_ms": None if st.deadline_at is None else max(0, st.deadline_at - now),
            "budget": None if budget_left is None else format_decimal(budget_left),
            "excluded": sorted([a, p, why] for (a, p), why in st.excluded.items()),
            "done": {a: st.steps[a].provider for a in st.completed},
            "running": running,
            "force": force,
            "hint": {x["action"]: x["provider"] for x in (st.plan or {}).get("steps", [])},
            "at": now - st.started_at,
            "time_limit_s": self.time_limit_s,
            "switch_margin": self.switch_margin,
            "backend": self.backend,
            "version": st.version,
        } | ({"learned": learned_figures(self._spec(st.run), self.store.step_stats(), self.learning)} if self.learning is not None else {})

    def _busy(self, run_id: str) -> dict[str, list[str]]:
        """The slots other runs hold on providers with a `capacity`, as the observed state's
        `busy`: the time until each is expected back. On the wall clock only (a simulated run's
        time is its own, so another run's slot has no time in it); a slot past its expected end
        is taken as back any moment (1 ms)."""
        if not isinstance(self.env, RealEnvironment) or not any(p.capacity for p in self._spec(run_id).providers.values()):
            return {}
        now = wall_ms()
        out: dict[str, list[int]] = {}
        for slot in self.store.slots():
            if slot["run"] == run_id or slot["provider"] not in self._spec(run_id).providers or self._spec(run_id).providers[slot["provider"]].capacity is None:
                continue
            out.setdefault(slot["provider"], []).append(max(1, (slot["until_ms"] or now) - now))
        return {p: [f"{ms}ms" for ms in sorted(v, reverse=True)[: self._spec(run_id).providers[p].capacity]] for p, v in sorted(out.items())}

    def _plan(self, run_id: str, st: RunState, context: dict, reason: str) -> bool | None:
        """Re-plan from the current state. True when planned; None when there is no plan yet but
        the run holds (see `_hold`); False when it starts giving up.

        A run re-plans only when what it plans from changed: the same observed state (facts,
        provider health, options ruled out, steps done and in flight, budget left) as the last
        plan keeps that plan, so no event can make a run plan in a loop."""
        now = self.env.now()
        if st.plans >= MAX_PLANS:
            self._give_up(run_id, st, {"reason": f"re-planned {MAX_PLANS} times without reaching the goal", "conflict": [], "summary": None})
            return False
        inputs = self._inputs(st, now)
        signature = _signature(inputs)
        if st.plan is not None and st.plan.get("signature") == signature and reason != "resumed":
            if st.plan.get("status") in ("optimal", "feasible"):
                return True
            if st.holding and (st.hold_until is None or now < st.hold_until):
                return None
            # INVARIANT: nothing observed changed since a plan that found nothing, and no hold is
            # pending: another solve would find nothing again, so give up rather than spin.
            self._give_up(run_id, st, {"reason": f"no plan from here ({st.plan.get('status')}), and nothing observed has changed since",
                                       "conflict": [], "summary": st.plan.get("summary")})
            return False
        state, running, done = inputs["state"], inputs["running"], inputs["done"]
        budget_left = None if inputs["budget"] is None else Decimal(inputs["budget"])
        try:
            t0 = time.perf_counter()
            problem, plan = remaining_plan(self._spec(run_id), st.intent, context, inputs, self.backend, self.time_limit_s)
            if self.plan_observer is not None:
                self.plan_observer(plan.status, time.perf_counter() - t0)
        except IntentoError as e:
            self._give_up(run_id, st, {"reason": "the request can no longer be planned: " + "; ".join(d.message for d in e.diagnostics), "conflict": [], "summary": None})
            return False
        self._problems[run_id] = problem
        broken = {b.statement for b in plan.broken}
        self._skipped[run_id] = frozenset(o.id for o, _, _ in problem.befores if not hasattr(o, "kind") and o.text in broken)
        old = {s["action"]: s["provider"] for s in (st.plan or {}).get("steps", [])}
        new = {s.action: s.provider for s in plan.steps}
        changes = step_moves(old, new, skip=st.completed)
        data = {
            "reason": reason,
            "status": plan.status,
            "steps": [{"action": s.action, "provider": s.provider, "start_ms": s.start_ms, "end_ms": s.end_ms} for s in plan.steps],
            "cost": plan.cost,
            "latency_ms": plan.latency_ms,
            "changes": changes,
            "summary": plan.explanation.summary,
            "why": _why(plan),
            "signature": signature,
            "version": st.version,
            "policy_set": st.policy_set,
        }
        figures = learned_used(inputs.get("learned"), plan)
        if figures:
            # Which observed figures the decision used, and where they came from.
            data["figures"] = figures
            plan.explanation.figures = [LearnedFigure(**f) for f in figures]
        switches = self._plan_switches(run_id, st, context, problem, plan, now, inputs) if plan.feasible else []
        if switches:
            # When each awaited external action stops being counted on, and what comes then:
            # part of the decision (its audit record), used when the step is dispatched.
            data["switches"] = switches
            planned = {(s.action, s.provider) for s in plan.steps}
            plan.explanation.switches = [SwitchTime(action=w["action"], provider=w["provider"], at_ms=w["switch_at"] - st.started_at,
                                                    then=[f"{a} via {p}" for a, p in w["switch_to"] if (a, p) not in planned]) for w in switches]
        decision = f"{run_id}/plan-{st.plans + 1}"
        data["decision"] = decision
        draft = None
        if self.audit is not None:
            draft = self.audit.draft(self._spec(run_id), st.intent, context, state, plan, kind="replan" if st.plans else "plan", run=run_id, reason=reason, inputs=inputs, decision=decision,
                                     label=st.version_label)
        # The audit record's draft is committed with the event (an outbox), then written: a
        # crash in between leaves it in the store, and the next drive writes it (`_flush_audit`).
        self._append(run_id, st.next_seq, "planned", now, data, outbox=(decision, draft) if draft is not None else None)
        if draft is not None:
            self.audit.write(draft)
            self.store.outbox_done(decision)
        if not plan.feasible:
            hold = self._hold(st, context, state, running, budget_left, done)
            if hold is not None:
                self._append(run_id, self._state(run_id).next_seq, "holding", now, hold)
                return None
            conflict = [r.model_dump() for r in (plan.explanation.conflict or [])]
            self._give_up(run_id, self._state(run_id), {"reason": f"no plan from here ({plan.status})", "conflict": conflict, "summary": plan.explanation.summary})
            return False
        return True

    def _migrate_due(self, run_id: str, st: RunState) -> str | None:
        """Take a policy rollout newer than the run knows into account (docs/executor.md,
        "Policy versions"): with `migrate`, switch the run to its project with the rolled-out
        policy set (`policy_migrated`) and return the re-plan's reason; with
        `migrate-if-feasible`, only when its remaining work has a plan under the new set (else
        `policy_kept`, saying why); `new-runs` leaves it on its version. Never retroactive:
        completed steps stay history, judged by the version that chose them."""
        seq = self.store.last_rollout_seq()
        if seq <= max(st.rollout_seen, self._rollout_checked.get(run_id, 0)):
            return None
        r = self.store.rollout(seq)
        self._rollout_checked[run_id] = seq
        if r is None or r["mode"] == "new-runs":
            return None
        now = self.env.now()
        old = self._spec(run_id)
        try:
            new = with_policy_set(old, r["policies"])
        except IntentoError as e:
            self._append(run_id, st.next_seq, "policy_kept", now, {"rollout": seq, "mode": r["mode"], "version": st.version,
                                                                  "reason": "the policy set does not check with this run's project: " + "; ".join(d.message for d in e.diagnostics[:3])})
            return None
        target = version_of(new, r["label"])
        if target["version"] == st.version:
            self._append(run_id, st.next_seq, "policy_kept", now, {"rollout": seq, "mode": r["mode"], "version": st.version, "reason": "already on this version"})
            return None
        context = self._context(run_id, st)
        if r["mode"] == "migrate-if-feasible":
            try:
                _, trial = remaining_plan(new, st.intent, context, self._inputs(st, now), self.backend, self.time_limit_s)
                why = None if trial.feasible else (trial.explanation.summary or f"no plan ({trial.status})")
            except IntentoError as e:
                why = "; ".join(d.message for d in e.diagnostics[:3])
            if why is not None:
                self._append(run_id, st.next_seq, "policy_kept", now, {"rollout": seq, "mode": r["mode"], "version": st.version,
                                                                      "reason": "its remaining work would have no plan under the new policy set: " + why})
                return None
        self.store.keep_version(target["version"], target["policy_set"], target["label"], kept_sources(new), now)
        data = {"rollout": seq, "mode": r["mode"], "from": st.version, "from_label": st.version_label, "to": target["version"],
                "to_label": target["label"], "policy_set": target["policy_set"]} | policy_changes(old, new)
        if not self._append(run_id, st.next_seq, "policy_migrated", now, data):
            return None
        self._run_specs[run_id] = new
        self._versions[new.fingerprint] = new
        self._problems.pop(run_id, None)
        what = changes_phrase(data)
        return f"policy migrated from {short(st.version, st.version_label)} to {short(target['version'], target['label'])} (rollout {seq}, {r['mode']})" + (f": {what}" if what else "")

    def _deadline_outcome(self, st: RunState, now: int) -> dict:
        """Why a run gives up at its deadline, with the deadline as the conflict (as the planner
        names it in a minimal conflict)."""
        intent = self._spec(st.run).intents[st.intent]
        text = f"deadline {Duration(intent.deadline_ms)}"
        ref = {"policy": "deadline", "statement": text, "kind": "deadline", "location": intent.deadline_span.location if intent.deadline_span else None}
        missing = sorted(formula_facts(intent.goal) - st.facts)
        waiting = sorted(s.action for s in st.running() if s.compensation_for is None)
        summary = f"the {text} of `{st.intent}` passed before the goal held" + (f" (still missing: {', '.join(f'`{f}`' for f in missing)})" if missing else "")
        if waiting:
            summary += f"; in flight or awaited then: {', '.join(f'`{a}`' for a in waiting)}"
        return {"reason": "the deadline passed", "conflict": [ref, {"policy": "goal", "statement": "goal", "kind": "goal", "location": intent.goal_span.location if intent.goal_span else None}], "summary": summary, "deadline_at": st.deadline_at - st.started_at, "at": now - st.started_at}

    def _hold(self, st: RunState, context: dict, state: dict, running: dict[str, str], budget_left: Decimal | None, done: dict[str, str]) -> dict | None:
        """No plan from here, but the world may change soon: wait instead of giving up when
        steps are still running (their outcome may be what is missing), or when providers
        presumed down only from their own failures (no status observation) would admit a plan
        once their cool-down ends, before the deadline, at most `MAX_COOLDOWN_HOLDS` times."""
        if running:
            return {"until": None, "reason": "no plan without the steps still running: waiting for their outcome", "running": sorted(running)}
        providers = state["providers"]
        presumed = {p: max(st.failures[p]) + COOL_DOWN_MS for p, e in providers.items()
                    if e["status"] == "down" and st.observed.get(p, {}).get("status") != "down" and st.failures.get(p)}
        if not presumed or st.cooldown_holds >= MAX_COOLDOWN_HOLDS:
            return None
        until = min(presumed.values())
        if st.deadline_at is not None and until >= st.deadline_at:
            return None
        up = {p: e for p, e in providers.items() if p not in presumed}
        deadline_then = None if st.deadline_at is None else st.deadline_at - until
        try:
            retry = prepare(self._spec(st.run), st.intent, context, dict(state, providers=up), deadline_ms=deadline_then,
                            budget=budget_left, excluded=st.excluded, done=done)
        except IntentoError:
            return None
        if not plan_problem(retry, backend=self.backend, time_limit_s=self.time_limit_s, explain="none").feasible:
            return None
        return {"until": until, "reason": f"no plan while {', '.join(f'`{p}`' for p in sorted(presumed))} presumed down after failing; re-planning when the first cool-down ends", "providers": sorted(presumed)}

    def _cost(self, action: str, provider: str, run_id: str) -> Decimal:
        opt = self._spec(run_id).actions[action].option(provider)
        return opt.cost if opt else Decimal(0)

    # ---- dispatching --------------------------------------------------------------------------
    def _request(self, st: RunState, action: str, provider: str, context: dict, compensation_for: str | None = None, attempt: int | None = None) -> StepRequest:
        """The request for one step; ``context`` is the run's JSON context, handed to handlers
        typed (`request.typed_context`)."""
        a = self._spec(st.run).actions[action]
        opt = a.option(provider)
        if attempt is None:
            attempt = st.attempts.get(action, 0) + 1 if compensation_for is None else 1
        override = st.observed.get(provider, {})
        latency = override.get("latency") if override.get("status") == "degraded" and override.get("latency") else opt.latency_ms
        timeout = a.timeout_ms if a.timeout_ms is not None else (3 * latency if a.external else None)
        key = f"{st.run}/{action}/{provider}"
        typed = typed_context(self._spec(st.run), st.intent, context) if context else {}
        return StepRequest(st.run, action, provider, attempt, key, int(latency), timeout, a.idempotent, typed, compensation_for)

    def _dispatch_ready(self, run_id: str, st: RunState, context: dict) -> None:
        """Start every planned step whose requirement holds. A provider's `capacity` holds
        across every run of the store: a step takes a slot in the same transaction as its
        `step_dispatched` event (and gives it back with its outcome); a step that finds every
        slot held by other runs waits, and the run is woken to try again."""
        self.capacity_blocked.discard(run_id)
        if not st.plan:
            return
        running_on: dict[str, int] = {}
        for s in st.running():
            running_on[s.provider] = running_on.get(s.provider, 0) + 1
        for step in st.plan.get("steps", []):
            action, provider = step["action"], step["provider"]
            if action in st.completed:
                continue
            current = st.steps.get(action)
            if current is not None and current.status in ("running", "needs_reconciliation"):
                continue
            a = self._spec(run_id).actions[action]
            problem = self._problems.get(run_id)
            act = next((x for x in problem.actions if x.name == action), None) if problem else None
            needed = requirement(problem, act, self._skipped.get(run_id, frozenset())) if act else a.requires
            if not formula_holds(needed, st.facts):
                continue
            cap = self._spec(run_id).providers[provider].capacity
            if cap is not None and running_on.get(provider, 0) >= cap:
                continue
            req = self._request(st, action, provider, context)
            now = self.env.now()
            data = {"action": action, "provider": provider, "attempt": req.attempt, "key": req.key}
            if req.timeout_ms is not None:
                data["due"] = now + req.timeout_ms
            slot = None
            if cap is not None:
                # (when it is expected back, for other runs' plans: on the wall clock only)
                slot = (provider, cap, wall_ms() + req.latency_ms) if isinstance(self.env, RealEnvironment) else (provider, cap)
            if a.external:
                # Never dispatched: its facts are awaited until `due` (a durable timer: the
                # event holds it, so a restart waits for the same moment), or, when another
                # route could still meet the deadline, until that route's last moment.
                known = next((w for w in (st.plan or {}).get("switches", []) if w["action"] == action and w["provider"] == provider), None)
                switch = {"switch_at": known["switch_at"], "switch_to": known["switch_to"]} if known is not None and known["switch_at"] > now else None
                if known is None:
                    switch = self._switch_time(st, action, provider, context, now, data.get("due"))
                if switch is not None:
                    data |= switch
                if not self._append(run_id, st.next_seq, "step_dispatched", now, data | {"external": True, "awaits": sorted(a.achieves)}, slot=slot):
                    self.capacity_blocked.add(run_id)
                    continue
                self.env.expect_external(req, list(a.achieves), now)
            else:
                if not self._append(run_id, st.next_seq, "step_dispatched", now, data, slot=slot):
                    self.capacity_blocked.add(run_id)
                    continue
                self.env.dispatch(req)
            running_on[provider] = running_on.get(provider, 0) + 1
            st = self._state(run_id)

    def _plan_switches(self, run_id: str, st: RunState, context: dict, problem, plan, now: int, inputs: dict) -> list[dict]:
        """The switch time of each external step of a new plan that is awaited from now: those
        already awaited keep theirs; those the plan awaits at once get one (`_switch_time`),
        measured from the decision's own ``inputs``."""
        if st.deadline_at is None:
            return []
        out = []
        for step in plan.steps:
            a = self._spec(run_id).actions[step.action]
            if not a.external or step.action in st.completed:
                continue
            current = st.steps.get(step.action)
            if current is not None and current.status == "running":
                if current.provider != step.provider or current.switched:
                    continue
                if any(m["kind"] == "migrated" and m["at"] >= current.since for m in st.migrations):
                    # The run moved to another policy set while it waited: the route around the
                    # step is measured again under it (the `planned` event moves the timer).
                    sw = self._switch_time(st, step.action, step.provider, context, now, current.due, inputs)
                    if sw is not None:
                        out.append({"action": step.action, "provider": step.provider} | sw)
                elif current.switch_at is not None:
                    out.append({"action": step.action, "provider": step.provider, "switch_at": current.switch_at, "switch_to": [list(x) for x in current.switch_to]})
                continue
            act = next((x for x in problem.actions if x.name == step.action), None)
            needed = requirement(problem, act, self._skipped.get(run_id, frozenset())) if act else a.requires
            if not formula_holds(needed, st.facts):
                continue  # awaited later, from a state not known yet: its switch time is set then
            req = self._request(st, step.action, step.provider, context)
            sw = self._switch_time(st, step.action, step.provider, context, now, now + req.timeout_ms if req.timeout_ms is not None else None, inputs)
            if sw is not None:
                out.append({"action": step.action, "provider": step.provider} | sw)
        return out

    def _switch_time(self, st: RunState, action: str, provider: str, context: dict, now: int, due: int | None, inputs: dict | None = None) -> dict | None:
        """When to stop counting on an awaited external step: the latest moment at which the
        best plan without it (from the state now, with every other step as planned) still meets
        the deadline, less `SWITCH_MARGIN` of that plan's latency (plans use declared
        latencies; a route started at the very last moment is late whenever a step is slower).
        None without a deadline, without another route, or when that moment is not before the
        step's own timeout. ``inputs``: the state it is measured from (default: now's)."""
        if st.deadline_at is None:
            return None
        fallback = route_around(self._spec(st.run), st.intent, context, inputs if inputs is not None else self._inputs(st, now), action, provider, self.backend, self.time_limit_s)
        if fallback is None:
            return None
        at = switch_moment(st.deadline_at, fallback.latency_ms, self.switch_margin)
        if at <= now or (due is not None and at >= due):
            return None
        return {"switch_at": at, "switch_to": [[s.action, s.provider] for s in fallback.steps]}

    # ---- waiting ------------------------------------------------------------------------------
    def _timers(self, run_id: str) -> str | None:
        """A timer fired: a step timed out (an external fact is late), or a hold ended. (The
        deadline is handled by the loop itself: the run gives up.)"""
        now = self.env.now()
        st = self._state(run_id)
        reason = None
        for s in list(st.running()):
            if s.compensation_for is not None or s.due is None or s.due > now:
                continue
            data = {"action": s.action, "provider": s.provider, "attempt": s.attempt}
            if s.external:
                self._append(run_id, st.next_seq, "step_timed_out", now, data | {"external": True})
                if not s.switched:  # (a switched step was planned around already)
                    reason = f"the external fact of `{s.action}` did not arrive in time"
            else:
                self._append(run_id, st.next_seq, "step_timed_out", now, data | {"error": f"no answer within its timeout ({Duration(s.due - s.since)})"})
                if hasattr(self.env, "abandon"):
                    self.env.abandon(self._request(st, s.action, s.provider, {}, attempt=s.attempt))
                reason = f"`{s.action}` via `{s.provider}` timed out"
            st = self._state(run_id)
        for s in list(st.awaiting()):
            if s.switched or s.switch_at is None or s.switch_at > now:
                continue
            # Its last moment for another route: plan around it (it is still awaited).
            why = f"waiting for {', '.join(s.awaits) or s.action} past {_dur(s.switch_at - st.started_at)} after the start would miss the deadline"
            self._append(run_id, st.next_seq, "step_switched", now, {"action": s.action, "provider": s.provider, "attempt": s.attempt, "external": True, "reason": why})
            reason = f"switching away from `{s.action}` via `{s.provider}`: {why}"
            st = self._state(run_id)
        if reason is None and st.hold_until is not None and now >= st.hold_until:
            reason = "a cool-down ended: " + ", ".join(f"`{p}`" for p in st.holding.get("providers", [])) + " may be back"
        return reason

    def _drop_waits(self, run_id: str, st: RunState, why: str) -> None:
        """A run that gives up stops waiting for external facts (there is nothing to undo)."""
        for s in st.awaiting():
            self._append(run_id, st.next_seq, "wait_dropped", self.env.now(), {"action": s.action, "provider": s.provider, "reason": why})
            st = self._state(run_id)

    def _record(self, run_id: str, kind: str, item: Any) -> str | None:
        """Record what happened; return why a re-plan is due (or None)."""
        st = self._state(run_id)
        now = self.env.now()
        if kind == "observation":
            data = dict(item)
            if data.get("fact"):
                if data["fact"] in st.facts:
                    return None
                self._append(run_id, st.next_seq, "observation", now, data)
                self._settle_awaited(run_id)
                return f"fact `{data['fact']}` observed"
            self._append(run_id, st.next_seq, "observation", now, data)
            return f"provider `{data.get('provider')}` observed {data.get('status')}"
        out: Outcome = item
        req = out.request
        comp = req.compensation_for
        current = st.compensations.get(comp) if comp else st.steps.get(req.action)
        if current is None or current.status != "running" or current.attempt != req.attempt:
            return None  # a late answer for a step already given up on
        base = {"action": req.action, "provider": req.provider, "attempt": req.attempt, "latency_ms": out.latency_ms}
        if comp:
            base["compensation_for"] = comp
        if out.kind == "succeeded":
            facts = sorted(set(self._spec(run_id).actions[req.action].achieves) | set(out.facts))
            self._append(run_id, st.next_seq, "step_succeeded", now, base | {"facts": facts, "cost": format_decimal(self._cost(req.action, req.provider, run_id))})
            planned = {s["action"]: s["provider"] for s in (st.plan or {}).get("steps", [])}
            return None if planned.get(req.action) == req.provider else f"`{req.action}` finished outside the current plan"
        if out.kind == "timed_out":
            self._append(run_id, st.next_seq, "step_timed_out", now, base | {"error": out.error})
            if hasattr(self.env, "abandon"):
                self.env.abandon(req)
            return f"`{req.action}` via `{req.provider}` timed out"
        self._append(run_id, st.next_seq, "step_failed", now, base | {"error": out.error, "retryable": out.retryable})
        return f"`{req.action}` via `{req.provider}` failed: {out.error}"

    def _settle_awaited(self, run_id: str) -> None:
        """An awaited external action whose facts have all arrived has succeeded (also after a
        crash between the fact's observation and this record)."""
        st = self._state(run_id)
        now = self.env.now()
        for s in st.awaiting():
            a = self._spec(run_id).actions[s.action]
            if set(a.achieves) <= st.facts:
                self._append(run_id, st.next_seq, "step_succeeded", now, {"action": s.action, "provider": s.provider, "attempt": s.attempt, "facts": list(a.achieves), "cost": "0", "latency_ms": now - s.since})
                st = self._state(run_id)

    def _drain_inbox(self, run_id: str) -> str | None:
        """Move observations other processes posted into this run's log; why to re-plan, if so."""
        items = take(self.store, run_id)
        reason = None
        for _, data in items:
            if "cancel" in data:
                self._cancel(run_id, data["cancel"])
                continue
            reason = self._record(run_id, "observation", data) or reason
        if items:
            mark_taken(self.store, [i for i, _ in items])
        return reason

    def _cancel(self, run_id: str, req: dict) -> None:
        """Someone asked to cancel the run: it gives up now (waits dropped at once, steps in
        flight awaited, completed steps compensated in reverse order) and ends `cancelled`."""
        st = self._state(run_id)
        now = self.env.now()
        who, why = str(req.get("by") or "unknown"), str(req.get("reason") or "no reason given")
        if st.terminal:
            return
        if st.status == "giving_up":
            if not (st.outcome or {}).get("cancelled"):
                # Already giving up (it would escalate): it is compensated all the same, and ends
                # `cancelled`, the earlier reason kept.
                outcome = dict(st.outcome or {}, cancelled={"by": who, "reason": why, "at": now - st.started_at})
                outcome["reason"] = f"cancelled by {who}: {why} (while giving up: {(st.outcome or {}).get('reason')})"
                self._give_up(run_id, st, outcome)
            return
        self._give_up(run_id, st, {"reason": f"cancelled by {who}: {why}", "cancelled": {"by": who, "reason": why, "at": now - st.started_at}, "conflict": [], "summary": None})

    # ---- recovery after a crash -----------------------------------------------------------------
    def _recover(self, run_id: str, st: RunState, context: dict) -> None:
        self._settle_awaited(run_id)
        st = self._state(run_id)
        for s in list(st.steps.values()):
            a = self._spec(run_id).actions[s.action]
            if a.external:
                if s.status == "running":
                    # Still awaited: its timer is in the log; a simulation schedules the fact again.
                    self.env.expect_external(self._request(st, s.action, s.provider, context, attempt=s.attempt), list(a.achieves), s.since)
                continue
            if s.status == "running" or s.status == "needs_reconciliation":
                req = self._request(st, s.action, s.provider, context)
                req.attempt = s.attempt  # same attempt, same key: the provider sees one request
                if a.idempotent:
                    self.env.dispatch(req)
                    continue
                if s.status == "running":
                    self._append(run_id, st.next_seq, "needs_reconciliation", self.env.now(), {"action": s.action, "provider": s.provider, "attempt": s.attempt, "key": s.key})
                    st = self._state(run_id)
                happened = self.env.reconcile(req)
                if happened is None and hasattr(self.registry, "reconcilers") and s.action in self.registry.reconcilers:
                    happened = self.registry.reconcilers[s.action](req)
                now = self.env.now()
                giving_up = st.status == "giving_up"
                if happened is None and giving_up:
                    # Giving up already (e.g. cancelled while nobody drove it): nothing is sent
                    # again; whether it took effect stays unknown, said in its log and outcome.
                    self._append(run_id, st.next_seq, "step_failed", now, {"action": s.action, "provider": s.provider, "attempt": s.attempt, "retryable": False,
                                 "error": "in flight at a crash, not idempotent, and no reconciler can tell whether it took effect: not sent again, not undone"})
                    st = self._state(run_id)
                    continue
                if happened is None:
                    self._give_up(run_id, st, {
                        "reason": f"`{s.action}` was in flight at a crash, is not idempotent, and no reconciler can tell whether it took effect",
                        "conflict": [],
                        "summary": None,
                    })
                    return
                self._append(run_id, st.next_seq, "reconciled", now, {"action": s.action, "provider": s.provider, "happened": happened})
                st = self._state(run_id)
                if happened:
                    facts = sorted(self._spec(run_id).actions[s.action].achieves)
                    self._append(run_id, st.next_seq, "step_succeeded", now, {"action": s.action, "provider": s.provider, "attempt": s.attempt, "facts": facts, "cost": format_decimal(self._cost(s.action, s.provider, run_id)), "latency_ms": 0, "reconciled": True})
                elif giving_up:
                    self._append(run_id, st.next_seq, "step_failed", now, {"action": s.action, "provider": s.provider, "attempt": s.attempt, "retryable": False,
                                 "error": "in flight at a crash; it did not take effect, and is not sent again: the run is giving up"})
                else:
                    # It did not happen: send it again, now safely (same key, new attempt).
                    req.attempt = s.attempt + 1
                    self._append(run_id, st.next_seq, "step_dispatched", now, {"action": s.action, "provider": s.provider, "attempt": req.attempt, "key": req.key})
                    self.env.dispatch(req)
                st = self._state(run_id)
        for comp, s in list(st.compensations.items()):
            if s.status == "running":
                req = self._request(st, s.action, s.provider, context, compensation_for=comp)
                self.env.dispatch(req)

    # ---- giving up safely ---------------------------------------------------------------------------
    def _give_up(self, run_id: str, st: RunState, outcome: dict) -> None:
        draft = None
        if outcome.get("cancelled") and self.audit is not None:
            # A cancellation is a decision too (a person's): it goes in the audit log, committed
            # with its event through the outbox like a plan.
            cancelled = dict(outcome["cancelled"], plan=f"{run_id}/plan-{st.plans}" if st.plans else None)
            draft = self.audit.draft_cancel(self._spec(run_id), st.intent, self._context(run_id, st), {"facts": sorted(st.facts)}, run=run_id,
                                            decision=f"{run_id}/cancel", cancelled=cancelled)
        self._append(run_id, st.next_seq, "giving_up", self.env.now(), outcome, status="giving_up", outbox=(f"{run_id}/cancel", draft) if draft else None)
        if draft is not None:
            self.audit.write(draft)

    def _compensate(self, run_id: str, context: dict) -> Generator[int | None, list, None]:
        """Undo completed steps in reverse order of completion, then escalate (or, for a
        cancelled run, end `cancelled`). Each undo's outcome is waited for by yielding, as the
        main loop does, so a compensating run holds no thread either."""
        st = self._state(run_id)
        for action in reversed(st.completed):
            undo = self._spec(run_id).actions[action].undo
            if undo is None or action in st.compensations and st.compensations[action].status == "succeeded":
                continue
            done = st.steps[action]
            ua = self._spec(run_id).actions[undo]
            opt = ua.option(done.provider) or next((o for o in ua.options if st.provider_status(o.provider, self.env.now()) != "down"), None)
            if opt is None:
                self._append(run_id, st.next_seq, "compensation_failed", self.env.now(), {"action": undo, "for": action, "error": "no usable option"})
                st = self._state(run_id)
                continue
            req = self._request(st, undo, opt.provider, context, compensation_for=action)
            req.key = f"{run_id}/undo/{action}"
            self._append(run_id, st.next_seq, "step_dispatched", self.env.now(), {"action": undo, "provider": opt.provider, "attempt": 1, "key": req.key, "compensation_for": action})
            self._append(run_id, self._state(run_id).next_seq, "compensating", self.env.now(), {"action": undo, "for": action, "provider": opt.provider})
            self.env.dispatch(req)
            while True:
                items = yield None
                self._drain_inbox(run_id)  # a cancellation (or an observation) now is recorded, not left queued
                if not items and isinstance(self.env, SimEnvironment) and self.env.idle():
                    break
                done_here = False
                for kind, item in items:
                    if kind == "outcome" and item.request.compensation_for == action:
                        self._record(run_id, kind, item)
                        done_here = True
                if done_here:
                    break
            st = self._state(run_id)
            result = st.compensations.get(action)
            if result and result.status == "succeeded":
                self._append(run_id, st.next_seq, "compensated", self.env.now(), {"action": undo, "for": action})
            else:
                self._append(run_id, st.next_seq, "compensation_failed", self.env.now(), {"action": undo, "for": action, "error": result.error if result else "no answer"})
            st = self._state(run_id)
        outcome = dict(st.outcome or {})
        outcome["compensated"] = [c for c, s in st.compensations.items() if s.status == "succeeded"]
        if outcome.get("cancelled"):
            self._append(run_id, st.next_seq, "cancelled", self.env.now(), outcome, status="cancelled")
            return
        self._append(run_id, st.next_seq, "escalated", self.env.now(), outcome, status="escalated")
        if self.registry.escalation is not None:
            try:
                self.registry.escalation(run_id, outcome.get("conflict", []), outcome.get("summary") or outcome.get("reason", ""))
            except Exception as e:  # the run is recorded as escalated whatever the handler does
                self._append(run_id, self._state(run_id).next_seq, "observation", self.env.now(), {"source": "escalation", "error": f"the escalation handler failed: {e}"})

    def _stall(self, run_id: str) -> None:
        st = self._state(run_id)
        waiting = [f"`{s.action}`" for s in st.steps.values() if s.status == "running"]
        self._give_up(run_id, st, {"reason": "nothing more can happen: " + (", ".join(waiting) + " will never answer" if waiting else "no step can start"), "conflict": [], "summary": None})


def step_moves(old: dict[str, str], new: dict[str, str], skip=()) -> list[str]:
    """``ACTION: OLD -> NEW`` (``-``: not in that plan) for each action whose provider differs
    between two plans' steps (action -> provider), in action order; ``skip``: actions left out."""
    return [f"{a}: {old.get(a, '-')} -> {new.get(a, '-')}" for a in sorted(set(old) | set(new)) if old.get(a) != new.get(a) and a not in skip]


def remaining_plan(spec: Spec, intent: str, context: dict, inputs: dict, backend: Backend = "cpsat", time_limit_s: float = 10.0):
    """The (problem, plan) of a run's remaining work from a decision's ``inputs``
    (`Executor._inputs`): completed steps are fixed history, steps still running are kept when a
    plan can keep them. Sets ``inputs["unforced"]``. What every re-plan, a migration's trial and
    `intento policy impact` solve, so their figures agree."""
    state, force, done = inputs["state"], inputs["force"], inputs["done"]
    excluded = {(a, p): why for a, p, why in inputs["excluded"]}
    budget_left = None if inputs["budget"] is None else Decimal(inputs["budget"])
    problem = prepare(spec, intent, context, state, deadline_ms=inputs["deadline_ms"], budget=budget_left, excluded=excluded, done=done, learned=inputs.get("learned"))
    plan = plan_problem(problem, backend=backend, time_limit_s=time_limit_s, force=force or None, hint=inputs["hint"] or None)
    inputs["unforced"] = False
    if not plan.feasible and force:
        # The steps still running may be what makes it infeasible: try without keeping them.
        plan = plan_problem(problem, backend=backend, time_limit_s=time_limit_s)
        inputs["unforced"] = True
    return problem, plan


def _why(plan) -> list[str]:
    out = []
    for st in plan.explanation.steps:
        for alt in st.alternatives:
            if alt.reason in ("unavailable", "forbidden"):
                by = ", ".join(r.policy for r in alt.by)
                out.append(f"{st.action}: not {alt.provider} ({alt.reason}: {by})")
            elif alt.reason == "too_slow" and alt.by:
                out.append(f"{st.action}: not {alt.provider} (too slow: {alt.by[0].statement.split(': ', 1)[-1]})")
    return out
