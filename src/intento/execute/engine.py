"""The engine: one thread drives every run of a store, and a run that waits costs nothing.

Input: a store, a way to make a run's executor (`World`), and, for `intento serve`, a stop
signal. Output: every unfinished run driven to its outcome (or, with `until_idle`, until each is
finished or only waiting), across restarts and next to other engines on the same store.

Each run is a generator (`Executor.steps`) that yields the moment it next needs to wake (its
earliest durable timer, or None) and is sent what happened meanwhile (outcomes of its steps,
observations). A waiting run is therefore a suspended generator and an entry in a timer heap: no
thread, no polling of its own. The engine's loop:

- adopts runs: every unfinished run of the store that no live engine drives is claimed (a lease
  with a fencing token, `Store.claim`) and its generator started; it is recovered from its log;
- beats the leases of every run it drives, in one statement, every `HEARTBEAT_MS`, from a thread
  of its own (a long solve in the loop never lets a lease lapse);
- wakes runs: a step's outcome (handlers run in a shared thread pool and report to one queue), a
  timer that fell due, an observation or a cancellation in the store's inbox, a capacity slot
  that may have freed;
- advances each woken run until it yields again. A simulated run lives on its own virtual clock
  (its own `SimEnvironment`), so it never waits in wall time: it is advanced one event per pass,
  round-robin with the others.

A run that loses its lease (another engine took it over after this one stopped beating) is
dropped at its next append (`LeaseLost`); a run whose driving raises is logged and dropped, and
adopted again at a later scan; the engine itself never stops for one run.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Generator

from intento.execute.environment import RealEnvironment, SimEnvironment
from intento.execute.state import RunState
from intento.execute.store import HEARTBEAT_MS, LeaseLost, Store, driver_alive

log = logging.getLogger("intento.engine")

#: How often the engine looks at the inbox and at capacity (seconds), and for runs to adopt.
POLL_S = 0.2
SCAN_S = 1.0
#: A run whose driving failed is adopted again after this long (seconds).
RETRY_S = 30.0


@dataclass
class _Live:
    """One run the engine drives: its executor, its suspended generator, what it waits for."""

    run: str
    ex: Any
    gen: Generator
    sim: bool
    until: int | None = None
    inbox: list = field(default_factory=list)
    ready: bool = True
    started: bool = False
    #: Whether `until` is in the timer heap already (one entry per distinct wake-up time).
    started_timer: bool = False


class Engine:
    """Drive every unfinished run of a store concurrently, in one thread.

    ``executor_for(run_id, store)`` returns the executor for one run (a simulated run gets its
    own `SimEnvironment`; real runs share ``real_env``, whose handlers run in its pool)."""

    def __init__(
        self,
        store: Store,
        executor_for: Callable[[str, Store], Any],
        real_env: RealEnvironment | None = None,
        *,
        poll_s: float = POLL_S,
        scan_s: float = SCAN_S,
        owner: str | None = None,
        on_finish: Callable[[str, RunState], None] | None = None,
    ):
        self.store = store
        self.executor_for = executor_for
        self.real_env = real_env
        self.poll_s, self.scan_s = poll_s, scan_s
        from intento.execute.executor import new_owner

        self.owner = owner or new_owner()
        self.on_finish = on_finish
        self.live: dict[str, _Live] = {}
        self.timers: list[tuple[int, int, str]] = []
        self._order = 0
        self._rollout_seen = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._new: deque[str] = deque()
        self._new_lock = threading.Lock()
        self.finished: list[str] = []
        #: Every run this engine has driven (adopted), in order.
        self.adopted: list[str] = []
        self._adopted: set[str] = set()
        #: Runs no longer driven whose handlers are still running: their leases are kept (and
        #: beaten) until the handlers end, so no other engine sends those steps again meanwhile.
        self.parked: dict[str, Any] = {}
        #: Runs whose lease the heartbeat thread found taken over.
        self._lost: set[str] = set()
        self._lost_lock = threading.Lock()
        #: Runs whose driving failed: not adopted again before this (monotonic) time.
        self._retry_at: dict[str, float] = {}
        self.dropped: dict[str, str] = {}
        self._beat_stop = threading.Event()
        self._blocked_retried = False
        self._last_scan = float("-inf")
        self._last_poll = 0.0
        if real_env is not None:
            real_env.notify(self._wake)

    # ---- control --------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def notify_new(self, run_id: str) -> None:
        """A run was just created (by this process): adopt it at once, not at the next scan."""
        with self._new_lock:
            self._new.append(run_id)
        self._wake.set()

    # ---- the loop -------------------------------------------------------------------------------
    def run(self, until_idle: bool = False) -> list[str]:
        """Drive runs until stopped; with ``until_idle``, until every adoptable run is finished or
        only waiting (a timer, an external fact, a hold: nothing in flight). Returns the runs
        that reached an outcome here."""
        beater = threading.Thread(target=self._beat_loop, name="intento-leases", daemon=True)
        beater.start()
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now - self._last_scan >= self.scan_s:
                    self._last_scan = now
                    self._adopt_all()
                self._adopt_new()
                self._take_lost()
                self._unpark()
                if now - self._last_poll >= self.poll_s:
                    self._last_poll = now
                    self._poll_store()
                self._collect(0)
                self._fire_timers()
                ready = [lv for lv in self.live.values() if lv.ready]
                for lv in ready:
                    if self._stop.is_set():
                        break
                    self._advance(lv)
                if until_idle and self._idle():
                    break
                if not any(lv.ready for lv in self.live.values()):
                    self._sleep()
        finally:
            self._release_all()
            self._beat_stop.set()
            beater.join(timeout=10)
        return self.finished

    def _idle(self) -> bool:
        """Nothing left to do now: every run is finished, or waits with nothing in flight."""
        with self._new_lock:
            if self._new:
                return False
        if self.parked:
            return False
        blocked = []
        for lv in self.live.values():
            if lv.sim and lv.run in lv.ex.capacity_blocked and lv.ex.env.idle():
                blocked.append(lv)  # waits for a slot, with nothing of its own to happen
                continue
            if lv.ready or lv.sim:
                return False
            st = lv.ex.current(lv.run)
            if [s for s in st.running() if not s.external] or st.status == "giving_up":
                return False
        if blocked and not self._blocked_retried:
            # Only runs waiting for slots are left: try each once more (a slot may have been
            # given back since), and call it idle only if they are still blocked then.
            self._blocked_retried = True
            for lv in blocked:
                lv.ready = True
            return False
        return True

    def _sleep(self) -> None:
        """Wait for a handler's outcome, a new run, the next timer or the next poll."""
        timeout = self.poll_s
        if self.timers and self.real_env is not None:
            timeout = max(0.0, min(timeout, (self.timers[0][0] - self.real_env.now()) / 1000))
        self._wake.wait(timeout)
        self._wake.clear()

    # ---- adopting runs ----------------------------------------------------------------------------
    def _adopt_all(self) -> None:
        for run_id in self.store.unfinished_runs():
            if self._stop.is_set():
                return
            if run_id not in self.live:
                self._adopt(run_id)

    def _adopt_new(self) -> None:
        while True:
            with self._new_lock:
                if not self._new:
                    return
                run_id = self._new.popleft()
            if run_id not in self.live:
                self._adopt(run_id)

    def _adopt(self, run_id: str) -> None:
        if self._retry_at.get(run_id, 0) > time.monotonic() or run_id in self.parked:
            return
        try:
            d = self.store.driver(run_id)
            if d is not None and d["owner"] != self.owner and driver_alive(d):
                return  # another live engine drives it (checked cheaply, before any replay)
            ex = self.executor_for(run_id, self.store)
            if ex is None:
                return
            ex.owner = self.owner
            gen = ex.steps(run_id)
            if gen is None:
                return  # finished, or another live engine drives it
        except Exception as e:  # never stop the engine for one run
            self._drop(run_id, None, e)
            return
        self.live[run_id] = _Live(run_id, ex, gen, sim=isinstance(ex.env, SimEnvironment))
        if run_id not in self._adopted:
            self._adopted.add(run_id)
            self.adopted.append(run_id)

    # ---- waking runs --------------------------------------------------------------------------------
    def _beat_loop(self) -> None:
        """Beat every lease this engine holds, about every `HEARTBEAT_MS`, from a thread of its
        own with its own connection: a long solve, a slow reconciler or a pass over thousands of
        runs in the driving loop never lets a lease lapse."""
        store = None
        try:
            store = Store(self.store.path)
            while not self._beat_stop.wait(HEARTBEAT_MS / 1000):
                try:
                    runs = sorted(set(self.live) | set(self.parked))
                except RuntimeError:  # the driving loop changed them meanwhile: next beat
                    continue
                try:
                    lost = store.beat(self.owner, runs)
                except Exception as e:
                    log.warning("cannot beat the leases of %d runs: %s", len(runs), e)
                    continue
                if lost:
                    with self._lost_lock:
                        self._lost.update(lost)
                    self._wake.set()
        except Exception as e:
            log.error("the lease heartbeat stopped: %s", e)
        finally:
            if store is not None:
                store.close()

    def _take_lost(self) -> None:
        with self._lost_lock:
            lost, self._lost = self._lost, set()
        for run_id in lost:
            lv = self.live.get(run_id)
            if lv is not None:
                self._drop(run_id, lv, LeaseLost(run_id))
            self.parked.pop(run_id, None)

    def _unpark(self) -> None:
        """Give back the leases of parked runs whose handlers have all ended."""
        for run_id, ex in list(self.parked.items()):
            if self.real_env is None or not self.real_env.in_flight(run_id):
                del self.parked[run_id]
                try:
                    ex.release(run_id)
                except Exception as e:
                    log.warning("run %s: cannot release its lease: %s", run_id, e)

    def _poll_store(self) -> None:
        """Wake runs with something in the inbox, and runs waiting for a capacity slot."""
        if not self.live:
            return
        try:
            waiting = set(self.store.inbox_runs())
        except Exception as e:
            log.warning("cannot read the inbox: %s", e)
            return
        try:
            rollout = self.store.last_rollout_seq()
        except Exception as e:
            log.warning("cannot read the policy rollouts: %s", e)
            rollout = self._rollout_seen
        # A policy rollout is a decision point for every run this engine drives (docs/executor.md).
        new_rollout, self._rollout_seen = rollout != self._rollout_seen, rollout
        for run_id, lv in self.live.items():
            if run_id in waiting or run_id in lv.ex.capacity_blocked or new_rollout:
                lv.ready = True

    def _collect(self, timeout: float) -> None:
        if self.real_env is None:
            return
        for kind, item in self.real_env.collect(timeout):
            lv = self.live.get(item.request.run)
            if lv is not None:
                lv.inbox.append((kind, item))
                lv.ready = True

    def _fire_timers(self) -> None:
        if self.real_env is None:
            return
        now = self.real_env.now()
        while self.timers and self.timers[0][0] <= now:
            at, _, run_id = heapq.heappop(self.timers)
            lv = self.live.get(run_id)
            if lv is not None and lv.until == at:
                lv.started_timer = False
            if lv is not None and lv.until is not None and lv.until <= now:
                lv.ready = True

    def _advance(self, lv: _Live) -> None:
        """Send the run what happened since it yielded; it runs until it yields its next wake-up."""
        lv.ready = False
        try:
            if not lv.started:
                lv.started = True
                until = next(lv.gen)
            else:
                items, lv.inbox = lv.inbox, []
                if lv.sim and not (lv.run in lv.ex.capacity_blocked and lv.ex.env.idle()):
                    # (a run waiting for a capacity slot, with nothing of its own to happen,
                    # keeps its virtual clock where it is: the slot's holder has its own clock)
                    items = lv.ex.env.wait(lv.until)
                until = lv.gen.send(items)
        except StopIteration as done:
            self._finish(lv, done.value)
            return
        except Exception as e:
            self._drop(lv.run, lv, e)
            return
        pushed = lv.until == until and lv.started_timer
        lv.until = until
        if lv.run not in lv.ex.capacity_blocked:
            self._blocked_retried = False
        if lv.sim:
            # its own virtual clock: nothing to wait for in wall time, unless it waits for a
            # slot with nothing of its own to happen (then the store poll wakes it)
            lv.ready = not (lv.run in lv.ex.capacity_blocked and lv.ex.env.idle())
        elif until is not None and not pushed:
            lv.started_timer = True
            self._order += 1
            heapq.heappush(self.timers, (until, self._order, lv.run))
        if lv.inbox:
            lv.ready = True

    def _finish(self, lv: _Live, st: RunState | None) -> None:
        self.live.pop(lv.run, None)
        self._release(lv)
        if st is not None and st.terminal:
            self.finished.append(lv.run)
            if self.on_finish is not None:
                try:
                    self.on_finish(lv.run, st)
                except Exception as e:  # a metrics hook never stops the engine
                    log.warning("on_finish for run %s failed: %s", lv.run, e)

    def _drop(self, run_id: str, lv: _Live | None, e: BaseException) -> None:
        """Stop driving one run (it is adopted again at a later scan if it is still unfinished)."""
        self.dropped[run_id] = str(e)
        self._retry_at[run_id] = time.monotonic() + RETRY_S
        if isinstance(e, LeaseLost):
            log.warning("run %s: %s; this engine stops driving it", run_id, e)
        else:
            log.error("run %s: driving it failed; it will be adopted again", run_id, exc_info=e)
        if lv is not None:
            self.live.pop(run_id, None)
            try:
                lv.gen.close()
            except Exception:
                pass
            if not isinstance(e, LeaseLost):
                self._release_or_park(lv)

    def _release_or_park(self, lv: _Live) -> None:
        """Give the lease back, unless a handler of the run is still running: then keep it
        (beaten) until the handler ends, so that nobody sends the step again meanwhile."""
        if self.real_env is not None and self.real_env.in_flight(lv.run):
            self.parked[lv.run] = lv.ex
        else:
            self._release(lv)

    def _release(self, lv: _Live) -> None:
        try:
            lv.ex.release(lv.run)
        except Exception as e:
            log.warning("run %s: cannot release its lease: %s", lv.run, e)

    def _release_all(self) -> None:
        """On stop: give back every lease but those of runs whose handlers are still running.
        Those stay with this process, as after a crash: when it has exited (same host) or its
        lease expires (elsewhere), the next engine recovers them from their log (re-sent with
        the same key if idempotent, else reconciled), never while the handler still runs."""
        for lv in list(self.live.values()):
            try:
                lv.gen.close()
            except Exception:
                pass
            if self.real_env is not None and self.real_env.in_flight(lv.run):
                continue
            self._release(lv)
        self.live.clear()
