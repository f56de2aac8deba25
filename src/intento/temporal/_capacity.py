"""A provider's `capacity` across every live run on Temporal: one semaphore workflow per provider.

The workflow ``intento.capacity`` (id `semaphore_id`: ``intento-capacity-<provider>@<task
queue>``) holds who has a slot of the provider and who waits for one. A run workflow asks for a
slot through the ``intento.capacity.acquire`` activity (signal-with-start: the semaphore is
started on demand, on the run's task queue) and waits, durably, for the ``slot_granted`` signal
the semaphore sends it; it gives the slot back with the ``release`` signal once the step's
outcome is known, and gives back every slot it holds or waits for when it ends.

* **FIFO, never more than the capacity**: requests are granted in the order they arrived, each
  only while fewer than its capacity (the project's, carried by the request) are held.
* **A holder that dies without releasing** (a terminated run workflow, a run reset away) does not
  block the others: while someone waits and slots are held, every `check_s` seconds the
  ``intento.capacity.check`` activity asks Temporal whether each holder's run (its workflow id
  *and* run id) is still running (`describe`, strongly consistent), and the slots of runs that
  are not are taken back. A grant that cannot be delivered (the run ended) frees its slot at once.
* **Continue-as-new** once the history reaches `history_limit` events (or Temporal suggests it),
  carrying holders, waiters and counters as the next run's input.
* The ``slots`` query returns the holders, each with when it is expected back (grant time plus
  the option's latency), and the waiters: the plan activity reads it before every plan, so the
  planner sees the slots other runs hold (the observed state's `busy`).

Everything here is workflow code: no I/O, no wall clock (``workflow.now()``), no randomness.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, FailureError

WORKFLOW = "intento.capacity"
#: How often, while someone waits and slots are held, the semaphore asks whether the holders'
#: runs are still running (`check_s` in its input).
DEFAULT_CHECK_S = 10.0
#: The semaphore continues as new once its history has this many events (`history_limit`).
DEFAULT_HISTORY_LIMIT = 2000


def semaphore_id(provider: str, task_queue: str) -> str:
    """The workflow id of a provider's semaphore: one per provider and task queue (the runs of a
    task queue share its slots, and its workers serve the semaphore)."""
    return f"intento-capacity-{provider}@{task_queue}"


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S")


@workflow.defn(name=WORKFLOW)
class ProviderCapacity:
    """The slots of one provider's `capacity`, across every run of a task queue."""

    @workflow.init
    def __init__(self, state: dict[str, Any]) -> None:
        # Loaded here, not in `run`: a signal delivered with the start (signal-with-start, or one
        # arriving right after a continue-as-new) is handled before `run` begins.
        self.provider: str = state["provider"]
        self.capacity: int | None = state.get("capacity")
        #: Slots held, in grant order: {ticket, run, run_id, action, capacity, latency_ms, asked_ms, since_ms, until_ms}.
        self.holders: list[dict] = [dict(h) for h in state.get("holders", [])]
        #: Requests waiting, first come first served: {ticket, run, run_id, action, capacity, latency_ms, asked_ms}.
        self.waiting: list[dict] = [dict(w) for w in state.get("waiting", [])]
        self.check_s = float(state.get("check_s") or DEFAULT_CHECK_S)
        self.history_limit = int(state.get("history_limit") or DEFAULT_HISTORY_LIMIT)
        #: Counters across continue-as-new: slots granted, and slots taken back from runs that ended
        #: without giving them back.
        self.granted = int(state.get("granted", 0))
        self.recovered = int(state.get("recovered", 0))
        self.changed = True

    # ---- what runs send ---------------------------------------------------------------------
    @workflow.signal(name="acquire", description="Ask for a slot: {ticket, run, run_id, action, capacity, latency_ms}. The run is sent `slot_granted` {ticket} when it has it.")
    def acquire(self, req: dict) -> None:
        if not isinstance(req, dict) or not req.get("ticket") or not req.get("run") or not req.get("run_id"):
            return
        key = (req["run_id"], req["ticket"])
        if any((x["run_id"], x["ticket"]) == key for x in self.holders + self.waiting):
            return  # the same request again (a retried activity): asked once
        cap = req.get("capacity")
        if isinstance(cap, int) and not isinstance(cap, bool) and cap >= 1:
            self.capacity = cap  # the project's, as the latest request says (shown in the UI)
        self.waiting.append({
            "ticket": req["ticket"], "run": req["run"], "run_id": req["run_id"], "action": req.get("action"),
            # each request is granted within its own project's capacity, as the embedded store checks it
            "capacity": cap if isinstance(cap, int) and not isinstance(cap, bool) and cap >= 1 else (self.capacity or 1),
            "latency_ms": int(req.get("latency_ms") or 0), "asked_ms": _ms(workflow.now()),
        })
        self.changed = True

    @workflow.signal(name="release", description="Give slots back (or stop waiting for them): {run_id, tickets} or {run_id, all: true}.")
    def release(self, req: dict) -> None:
        if not isinstance(req, dict) or not req.get("run_id"):
            return
        every = bool(req.get("all"))
        tickets = set(req.get("tickets") or ())

        def mine(x: dict) -> bool:
            return x["run_id"] == req["run_id"] and (every or x["ticket"] in tickets)

        before = len(self.holders) + len(self.waiting)
        self.holders = [x for x in self.holders if not mine(x)]
        self.waiting = [x for x in self.waiting if not mine(x)]
        self.changed = self.changed or before != len(self.holders) + len(self.waiting)

    @workflow.query(name="slots", description="The provider's slots: capacity, holders (with since_ms and until_ms, when each is expected back), waiting requests, counters.")
    def slots(self) -> dict:
        return {
            "provider": self.provider,
            "capacity": self.capacity,
            "holders": [dict(h) for h in self.holders],
            "waiting": [dict(w) for w in self.waiting],
            "granted": self.granted,
            "recovered": self.recovered,
        }

    # ---- the semaphore ------------------------------------------------------------------------
    @workflow.run
    async def run(self, state: dict[str, Any]) -> None:
        next_check: float | None = None
        while True:
            await self._grant()
            self._show()
            info = workflow.info()
            if info.get_current_history_length() >= self.history_limit or info.is_continue_as_new_suggested():
                # Signals handled so far are in the state carried over; one arriving meanwhile
                # makes Temporal retry this task with it, so none is lost.
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._state())
            now = workflow.time()
            if self.holders and self.waiting:
                next_check = now + self.check_s if next_check is None else next_check
                if now >= next_check:
                    await self._check()
                    next_check = workflow.time() + self.check_s
                    continue
            else:
                next_check = None
            self.changed = False
            try:
                await workflow.wait_condition(lambda: self.changed, timeout=None if next_check is None else timedelta(seconds=max(0.001, next_check - now)))
            except TimeoutError:
                pass

    async def _grant(self) -> None:
        """Grant the waiting requests in order while slots are free; a grant its run cannot
        receive (it has ended) frees the slot again at once."""
        while True:
            batch = []
            while self.waiting and len(self.holders) < int(self.waiting[0].get("capacity") or self.capacity or 1):
                w = self.waiting.pop(0)
                now = _ms(workflow.now())
                h = dict(w, since_ms=now, until_ms=now + int(w.get("latency_ms") or 0))
                self.holders.append(h)
                batch.append(h)
            if not batch:
                return
            sent = await asyncio.gather(
                *(workflow.get_external_workflow_handle(h["run"], run_id=h["run_id"]).signal("slot_granted", {"ticket": h["ticket"], "provider": self.provider}) for h in batch),
                return_exceptions=True,
            )
            for h, result in zip(batch, sent):
                if isinstance(result, BaseException):
                    if not isinstance(result, FailureError):
                        raise result
                    self.holders = [x for x in self.holders if (x["run_id"], x["ticket"]) != (h["run_id"], h["ticket"])]
                else:
                    self.granted += 1

    async def _check(self) -> None:
        """Take back the slots of runs that are no longer running (terminated, reset, timed out):
        an activity asks Temporal, so the answer is in this workflow's history."""
        runs = sorted({(h["run"], h["run_id"]) for h in self.holders})
        try:
            gone = await workflow.execute_activity(
                "intento.capacity.check",
                {"holders": [list(r) for r in runs]},
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=3),
                summary=f"are the {len(runs)} runs holding {self.provider} still running?",
            )
        except ActivityError:
            return  # asked again at the next check
        dead = {r[1] for r in gone or []}
        if dead:
            self.recovered += sum(1 for h in self.holders if h["run_id"] in dead)
            self.holders = [h for h in self.holders if h["run_id"] not in dead]
            self.waiting = [w for w in self.waiting if w["run_id"] not in dead]

    def _state(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "capacity": self.capacity,
            "holders": self.holders,
            "waiting": self.waiting,
            "check_s": self.check_s,
            "history_limit": self.history_limit,
            "granted": self.granted,
            "recovered": self.recovered,
        }

    def _show(self) -> None:
        """What Temporal's UI shows of the semaphore: who holds a slot, who waits."""
        lines = [f"**{self.provider}**: capacity {self.capacity}, {len(self.holders)} held, {len(self.waiting)} waiting ({self.granted} granted, {self.recovered} taken back from runs that ended holding them)"]
        if self.holders:
            lines.append("held:\n" + "\n".join(f"- {h['action']} for {h['run']} since {_when(h['since_ms'])} UTC, expected back by {_when(h['until_ms'])}" for h in self.holders))
        if self.waiting:
            lines.append("waiting:\n" + "\n".join(f"- {w['action']} for {w['run']} since {_when(w['asked_ms'])} UTC" for w in self.waiting))
        workflow.set_current_details("\n\n".join(lines))
