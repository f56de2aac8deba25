"""A run's state, rebuilt from its event log (the executor keeps no other memory).

Input: the run's events, in order. Output: `RunState`: facts, each step's status, provider
health, the latest plan, what has been spent, and the outcome. `fold` is pure: the same events
always give the same state, which is what makes a run resumable after a crash.
"""

from __future__ import annotations

from intento.errors import OperationalError

from dataclasses import dataclass, field
from decimal import Decimal

#: Failures of one provider within this window that mark it down (a single one marks it degraded).
HEALTH_WINDOW_MS = 60_000
HEALTH_DOWN_AFTER = 2
#: How long a provider marked down by failures stays down before it is tried again.
COOL_DOWN_MS = 300_000

EVENT_TYPES = (
    "run_started",
    "planned",
    "step_dispatched",
    "step_succeeded",
    "step_failed",
    "step_timed_out",
    "step_switched",
    "wait_dropped",
    "needs_reconciliation",
    "reconciled",
    "observation",
    "giving_up",
    "compensating",
    "compensated",
    "compensation_failed",
    "escalated",
    "succeeded",
    "failed",
    "cancelled",
    "policy_migrated",
    "policy_kept",
)


@dataclass
class StepState:
    action: str
    provider: str
    status: str  # running | succeeded | failed | timed_out | needs_reconciliation | dropped
    attempt: int
    key: str
    since: int
    compensation_for: str | None = None
    error: str | None = None
    #: An external action: never dispatched, its facts are awaited.
    external: bool = False
    #: When the step times out (virtual or wall ms, the run's clock); None: no timeout.
    due: int | None = None
    #: An external step: the facts it awaits.
    awaits: tuple[str, ...] = ()
    #: The latest time to stop counting on this step and still meet the deadline by another
    #: route (a durable timer, like `due`); None: no such time, or no other route.
    switch_at: int | None = None
    #: The route the run would take at `switch_at` ((action, provider) pairs, as then planned).
    switch_to: tuple = ()
    #: Passed its switch time: the run planned around it (it is still awaited; a late result
    #: is recorded).
    switched: bool = False


@dataclass
class RunState:
    run: str = ""
    intent: str = ""
    context: dict = field(default_factory=dict)
    started_at: int = 0
    deadline_at: int | None = None
    budget: Decimal | None = None
    facts: set[str] = field(default_factory=set)
    steps: dict[str, StepState] = field(default_factory=dict)
    compensations: dict[str, StepState] = field(default_factory=dict)
    completed: list[str] = field(default_factory=list)
    spent: Decimal = Decimal(0)
    failures: dict[str, list[int]] = field(default_factory=dict)
    observed: dict[str, dict] = field(default_factory=dict)  # provider -> {"status", attrs..., "at"}
    excluded: dict[tuple[str, str], str] = field(default_factory=dict)
    plan: dict | None = None
    plans: int = 0
    last_reason: str | None = None
    status: str = "running"  # running | giving_up | succeeded | escalated | failed | cancelled
    outcome: dict | None = None
    next_seq: int = 1
    last_at: int = 0
    attempts: dict[str, int] = field(default_factory=dict)
    #: No plan from here, but maybe soon: re-plan at `hold_until` (None: on the next outcome).
    holding: dict | None = None
    cooldown_holds: int = 0
    #: The run's clock: `wall` (ms since the epoch) or `virtual` (a simulation's).
    clock: str = "wall"
    #: The version (project fingerprint) that judges the run's decisions, its policy set's hash
    #: and label; the last rollout the run has taken into account; its migrations, in order.
    version: str | None = None
    policy_set: str | None = None
    version_label: str | None = None
    rollout_seen: int = 0
    migrations: list[dict] = field(default_factory=list)

    @property
    def hold_until(self) -> int | None:
        """When a hold for a cool-down ends (None: not holding, or holding for an outcome)."""
        return self.holding.get("until") if self.holding and self.status == "running" else None

    @property
    def terminal(self) -> bool:
        return self.status in ("succeeded", "escalated", "failed", "cancelled")

    def running(self) -> list[StepState]:
        return [s for s in self.steps.values() if s.status == "running"] + [s for s in self.compensations.values() if s.status == "running"]

    def awaiting(self) -> list[StepState]:
        """External steps whose facts are awaited (each until its `due` time)."""
        return [s for s in self.steps.values() if s.status == "running" and s.external]

    def timers(self) -> list[int]:
        """Every durable timer of the run, derived from its events: step timeouts, switch times,
        the deadline (while running) and the end of a hold."""
        out = [s.due for s in self.running() if s.due is not None]
        out += [s.switch_at for s in self.running() if s.switch_at is not None and not s.switched]
        if self.deadline_at is not None and self.status == "running":
            out.append(self.deadline_at)
        if self.hold_until is not None:
            out.append(self.hold_until)
        return out

    def provider_status(self, provider: str, now: int) -> str:
        obs = self.observed.get(provider)
        if obs and obs.get("status") in ("down", "degraded"):
            return obs["status"]
        recent = [t for t in self.failures.get(provider, []) if now - t <= HEALTH_WINDOW_MS]
        last = max(self.failures.get(provider, [0]) or [0])
        if len(recent) >= HEALTH_DOWN_AFTER and now - last < COOL_DOWN_MS:
            return "down"
        if recent:
            return "degraded"
        return "up"


class UnreadableEvent(OperationalError):
    """An event the fold cannot read: written by hand or by another tool (a key missing, a value
    of the wrong type). The message names the run, the event and what is wrong."""


def _unreadable(st: RunState, ev, e: Exception) -> UnreadableEvent:
    what = f"its data has no `{e.args[0]}`" if isinstance(e, KeyError) and e.args else f"{type(e).__name__}: {e}"
    where = f"event {ev.get('seq')} ({ev.get('type')})" if isinstance(ev, dict) else "an event"
    return UnreadableEvent(f"run {st.run or '?'}: {where} cannot be read ({what}); the store was written by hand or by another tool")


#: What `apply` raises on an event it cannot read (turned into `UnreadableEvent`).
_APPLY_ERRORS = (KeyError, TypeError, ValueError, ArithmeticError, AttributeError)


def fold(events: list[dict]) -> RunState:
    st = RunState()
    for ev in events:
        try:
            apply(st, ev)
        except _APPLY_ERRORS as e:
            raise _unreadable(st, ev, e) from None
    return st


def fold_on(st: RunState, events: list[dict]) -> RunState:
    """``st`` (the fold of a log's first events) advanced by the events that follow them, as a
    new state: ``fold_on(fold(a), b) == fold(a + b)``, and ``st`` itself is left as it was (a
    state once handed out never changes under its holder). ``st`` when there is nothing new."""
    if not events:
        return st
    new = snapshot(st)
    for ev in events:
        try:
            apply(new, ev)
        except _APPLY_ERRORS as e:
            raise _unreadable(new, ev, e) from None
    return new


def _copy(obj):
    """A shallow copy of a dataclass instance (its fields' values shared)."""
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__)
    return new


def snapshot(st: RunState) -> RunState:
    """A copy of ``st`` that `apply` can advance without touching ``st``: every container and
    step `apply` changes in place is copied; what it only ever replaces (the plan, the outcome,
    an observation, the context) is shared."""
    new = _copy(st)
    new.facts = set(st.facts)
    new.steps = {a: _copy(s) for a, s in st.steps.items()}
    new.compensations = {a: _copy(s) for a, s in st.compensations.items()}
    new.completed = list(st.completed)
    new.failures = {p: list(ts) for p, ts in st.failures.items()}
    new.observed = dict(st.observed)
    new.excluded = dict(st.excluded)
    new.attempts = dict(st.attempts)
    new.migrations = list(st.migrations)
    return new


def apply(st: RunState, ev: dict) -> None:
    t, at, d = ev["type"], ev["at"], ev["data"]
    st.next_seq = ev["seq"] + 1
    st.last_at = at
    if t == "run_started":
        st.run, st.intent, st.context = d["run"], d["intent"], d["context"]
        st.clock = d.get("clock", "wall")
        st.version, st.policy_set, st.version_label = d.get("version") or d.get("project"), d.get("policy_set"), d.get("label")
        st.rollout_seen = d.get("rollout", 0)
        st.started_at = at
        st.deadline_at = at + d["deadline_ms"] if d.get("deadline_ms") is not None else None
        st.budget = Decimal(d["budget"]) if d.get("budget") is not None else None
        st.facts |= set(d.get("facts", []))
        for p, obs in d.get("providers", {}).items():
            st.observed[p] = dict(obs, at=at)
    elif t == "planned":
        st.plan = d
        st.plans += 1
        st.last_reason = d.get("reason")
        st.holding = None
        for w in d.get("switches", ()):
            # A plan's switch time for a step already awaited (the same one, unless the run
            # migrated to another policy set since: then measured again).
            s = st.steps.get(w["action"])
            if s is not None and s.status == "running" and s.provider == w["provider"] and not s.switched:
                s.switch_at, s.switch_to = w["switch_at"], tuple(tuple(x) for x in w["switch_to"])
    elif t == "holding":
        st.holding = d
        st.cooldown_holds += 1 if d.get("until") is not None else 0
    elif t == "step_dispatched":
        s = StepState(d["action"], d["provider"], "running", d["attempt"], d["key"], at, d.get("compensation_for"), external=bool(d.get("external")), due=d.get("due"), awaits=tuple(d.get("awaits", ())), switch_at=d.get("switch_at"), switch_to=tuple(tuple(x) for x in d.get("switch_to", ())))
        st.attempts[d["action"]] = d["attempt"]
        if s.compensation_for:
            st.compensations[s.compensation_for] = s
        else:
            st.steps[d["action"]] = s
    elif t in ("step_succeeded", "step_failed", "step_timed_out"):
        target = st.compensations.get(d["compensation_for"]) if d.get("compensation_for") else st.steps.get(d["action"])
        if target is None:
            return
        target.status = {"step_succeeded": "succeeded", "step_failed": "failed", "step_timed_out": "timed_out"}[t]
        target.since = at
        target.error = d.get("error")
        if t == "step_succeeded":
            if not d.get("compensation_for"):
                st.facts |= set(d.get("facts", []))
                st.completed.append(d["action"])
                st.spent += Decimal(d.get("cost", "0"))
        else:
            st.failures.setdefault(d["provider"], []).append(at)
            if t == "step_timed_out" and d.get("external"):
                st.excluded[(d["action"], d["provider"])] = "the external fact did not arrive in time"
            elif t == "step_failed" and not d.get("retryable", True):
                st.excluded[(d["action"], d["provider"])] = d.get("error") or "failed permanently"
    elif t == "step_switched":
        s = st.steps.get(d["action"])
        if s is not None and s.status == "running":
            s.switched = True
            st.excluded[(d["action"], d["provider"])] = d.get("reason") or "waiting longer would miss the deadline"
    elif t == "wait_dropped":
        s = st.steps.get(d["action"])
        if s is not None and s.status == "running":
            s.status = "dropped"
            s.since = at
    elif t == "needs_reconciliation":
        s = st.steps.get(d["action"])
        if s:
            s.status = "needs_reconciliation"
            s.since = at
    elif t == "reconciled":
        pass  # followed by step_succeeded or a new dispatch
    elif t == "observation":
        if d.get("fact"):
            st.facts.add(d["fact"])
        if d.get("provider"):
            st.observed[d["provider"]] = {k: v for k, v in d.items() if k not in ("provider", "source")} | {"at": at}
    elif t == "giving_up":
        st.status = "giving_up"
        st.outcome = d
    elif t == "escalated":
        st.status = "escalated"
        st.outcome = d
    elif t == "succeeded":
        st.status = "succeeded"
        st.outcome = d
    elif t == "failed":
        st.status = "failed"
        st.outcome = d
    elif t == "cancelled":
        st.status = "cancelled"
        st.outcome = d
    elif t == "policy_migrated":
        st.version, st.policy_set, st.version_label = d["to"], d.get("policy_set"), d.get("to_label")
        st.rollout_seen = max(st.rollout_seen, d.get("rollout", 0))
        st.migrations.append(dict(d, at=at, kind="migrated"))
    elif t == "policy_kept":
        st.rollout_seen = max(st.rollout_seen, d.get("rollout", 0))
        st.migrations.append(dict(d, at=at, kind="kept"))
