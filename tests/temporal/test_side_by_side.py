"""Issue 14's parity suite: each scenario of its "Checked by" list is written once and run on both
engines, side by side, with the same real handlers: the embedded engine (an `Executor` on a
SQLite store, handlers in its thread pool) and Temporal (the real dev server, a worker in this
process). For each scenario the suite compares what the two engines did:

- the outcome (`succeeded`, `escalated`, `cancelled`; what was undone, which undo failed);
- the decisions, engine-neutral: the run's events that are decisions (plans, dispatches, step
  outcomes, holds, switches, reconciliations, give-ups, compensations), each with its action and
  provider, in order;
- the effects per idempotency key: every call of a handler, by its key (less the run id, which
  each engine names its own way), with what it did, in order.

The scenarios: an outage re-routed, a hold then success, a late external fact (switched away
from in time, and one that lands before its switch time), compensation with a failing undo,
a cancellation mid-run, a deadline passing mid-step, a request submitted again after its run
completed, and a 10-minute step whose process is killed mid-step (a `kill -9` of `intento run`
then `intento resume` on the embedded engine, of `intento worker` on Temporal). Every Temporal
history recorded here replays with Temporal's `Replayer`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

temporalio = pytest.importorskip("temporalio")
from temporalio.client import Client  # noqa: E402
from temporalio.worker import Replayer  # noqa: E402

from intento.check import check_sources  # noqa: E402
from intento.diagnostics import Source  # noqa: E402
from intento.execute import Executor, PermanentError, RealEnvironment, Registry, RetryableError, Store  # noqa: E402
from intento.execute.store import post  # noqa: E402
from intento.temporal import Activities, IntentRun, run_request, worker  # noqa: E402
from intento.temporal._commands import outcome, start_or_join, workflow_id  # noqa: E402

from .conftest import INTENTO, until, wait_for  # noqa: E402

#: The events that are decisions; the rest is each engine's bookkeeping.
DECISIONS = (
    "planned", "holding", "step_dispatched", "step_failed", "step_succeeded", "step_timed_out", "step_switched",
    "needs_reconciliation", "reconciled", "giving_up", "compensating", "compensated", "compensation_failed",
    "succeeded", "escalated", "cancelled",
)
#: How long any one run may take here (seconds): a bound on waiting, not a timing assertion.
BOUND = 90


def _spec(text: str):
    result = check_sources([Source("p.intent", text)])
    assert result.spec is not None, result.diagnostics
    return result.spec


def decisions(events: list[dict]) -> list[tuple]:
    """A run's decisions, engine-neutral. An undo's own step events are left out (the embedded
    engine logs them besides `compensating`/`compensated`/`compensation_failed`, which both
    engines log), and so is the embedded engine's plan on taking a run over after its process
    died (reason `resumed`): a Temporal workflow never stops when a worker dies, so it has no
    such point to re-plan at (the steps' decisions that follow are compared)."""
    out = []
    for e in events:
        if e["type"] not in DECISIONS or e.get("compensation_for") or (e["type"] == "planned" and e.get("reason") == "resumed"):
            continue
        if e["type"] == "planned":
            out.append(("planned", e.get("status") or "feasible"))
        else:
            out.append((e["type"], e.get("action"), e.get("provider")))
    return out


# ---- the handlers: a script per (action, provider), every call recorded by its key ------------


@dataclass
class Script:
    """What each handler does, call after call: ``ok``, ``retry`` (a retryable failure),
    ``permanent``, or ``gate`` (in flight until `open`, then ok). A call past the end of its list
    repeats the last entry; an action not named is always ok. Every call is recorded under its
    idempotency key less the run id."""

    plan: dict[str, list[str]] = field(default_factory=dict)
    calls: dict[str, list[str]] = field(default_factory=dict)
    gate: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def registry(self, spec) -> Registry:
        reg = Registry()
        for name in spec.actions:
            reg.handler(name)(self._handler)
        return reg

    def _handler(self, ctx) -> None:
        where = f"{ctx.action} via {ctx.provider}"
        with self.lock:
            done = self.calls.setdefault(ctx.idempotency_key.split("/", 1)[1], [])
            todo = self.plan.get(where) or self.plan.get(ctx.action) or ["ok"]
            what = todo[min(len(done), len(todo) - 1)]
            done.append(what)
        if what == "gate":
            assert self.gate.wait(BOUND), f"{where} was never released"
        elif what == "retry":
            raise RetryableError(f"{ctx.provider} is unavailable")
        elif what == "permanent":
            raise PermanentError(f"{ctx.provider} refuses {ctx.action}")

    def open(self) -> None:
        self.gate.set()


# ---- the two engines, behind one small interface ---------------------------------------------


class Embedded:
    """The embedded engine: an executor driving the run in a thread of its own; observations and
    cancellations go through the store's inbox, as `intento observe`/`cancel` send them."""

    name = "embedded"

    def __init__(self, spec, tmp_path: Path, script: Script, switch_margin: float | None = None, **_):
        self.spec, self.script, self.switch_margin = spec, script, switch_margin
        self.path = tmp_path / f"embedded-{uuid.uuid4().hex[:6]}.db"
        self.store = Store(self.path)
        self.run: str | None = None
        self.final = None
        self.driver: threading.Thread | None = None

    def start(self, intent: str, given: dict | None = None, key: str | None = None) -> str:
        reg = self.script.registry(self.spec)
        ex = Executor(self.spec, Store(self.path), RealEnvironment(reg, poll_s=0.01), reg, switch_margin=self.switch_margin)
        run, created = ex.create(intent, given or {}, key=key)
        if created or self.run is None:
            self.run = run

            def drive():
                try:
                    self.final = ex.drive(run)
                finally:
                    ex.env.close()

            self.driver = threading.Thread(target=drive, daemon=True)
            self.driver.start()
        return "started" if created else "ended"

    def events(self) -> list[dict]:
        return _relative(Store(self.path).events(self.run))

    def status(self) -> str:
        return Store(self.path).run(self.run)["status"]

    def observe(self, data: dict) -> None:
        post(Store(self.path), self.run, data)

    def cancel(self, reason: str) -> None:
        post(Store(self.path), self.run, {"cancel": {"reason": reason, "by": "the parity suite"}})

    def result(self) -> dict:
        self.driver.join(BOUND)
        assert not self.driver.is_alive(), "the embedded run did not end in time"
        run = Store(self.path).run(self.run)
        events = self.events()
        last = events[-1]
        return {"status": run["status"], "outcome": last, "events": events}

    def close(self) -> None:
        self.script.open()


class OnTemporal:
    """Temporal: a worker in this process on a task queue of its own; the run started as `intento
    run --engine temporal` starts it (one workflow per request), observed through the validated
    update and cancelled as `intento cancel --engine temporal` does."""

    name = "temporal"

    def __init__(self, spec, tmp_path: Path, script: Script, address: str, **req_extra):
        self.spec, self.script, self.extra = spec, script, req_extra
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.queue = f"side-{uuid.uuid4().hex[:8]}"
        self.client = self._do(Client.connect(address))
        self.worker = None

        async def serve():  # a worker is made inside the loop it runs on
            self.worker = worker(self.client, self.queue, Activities(spec, registry=script.registry(spec)))
            await self.worker.__aenter__()

        self._do(serve())
        self.handle = None

    def _do(self, coro, timeout: float = BOUND):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self, intent: str, given: dict | None = None, key: str | None = None) -> str:
        req = run_request(self.spec, intent, given or {}) | self.extra
        wid = workflow_id(intent, key or uuid.uuid4().hex[:8], req)
        self.handle, how = self._do(start_or_join(self.client, req, wid, self.queue))
        return how

    def _view(self) -> dict:
        return self._do(self.handle.query(IntentRun.status))

    def events(self) -> list[dict]:
        return self._view()["events"]

    def status(self) -> str:
        return self._view()["status"]

    def observe(self, data: dict) -> None:
        self._do(self.handle.execute_update(IntentRun.observe, data))

    def cancel(self, reason: str) -> None:
        self._do(self.handle.signal("cancel_reason", {"reason": reason, "by": "the parity suite"}))
        self._do(self.handle.cancel(reason=reason))

    def result(self) -> dict:
        got = self._do(outcome(self.handle))
        self._do(Replayer(workflows=[IntentRun]).replay_workflow(self._do(self.handle.fetch_history())))
        return {"status": got["status"], "outcome": got, "events": got["events"]}

    def close(self) -> None:
        self.script.open()
        try:
            self._do(self.worker.__aexit__(None, None, None), timeout=60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def _relative(events: list[dict]) -> list[dict]:
    """The embedded store's events as Temporal's read: data inline, `at` in ms since the start."""
    start = events[0]["at"] if events else 0
    return [{"type": e["type"], **e["data"], "at": e["at"] - start} for e in events]


ENGINES = {"embedded": Embedded, "temporal": OnTemporal}


def side_by_side(text: str, temporal_address: str, tmp_path: Path, play: Callable[[Any, Script], dict], plan: dict | None = None, **temporal_req) -> dict[str, dict]:
    """Play the scenario on each engine with a fresh script; return per engine its result (status,
    outcome, events), its decisions and its effects per key. ``temporal_req``: extra fields of the
    workflow's request (``switch_margin`` is given to the embedded executor too)."""
    spec = _spec(text)
    seen = {}
    for name, make in ENGINES.items():
        script = Script(plan=dict(plan or {}))
        engine = make(spec, tmp_path, script, address=temporal_address, **(temporal_req if name == "temporal" else {k: v for k, v in temporal_req.items() if k == "switch_margin"}))
        try:
            result = play(engine, script)
        finally:
            engine.close()
        seen[name] = result | {"decisions": decisions(result["events"]), "effects": script.calls}
    return seen


def same(seen: dict[str, dict], *keys: str) -> None:
    for k in keys:
        assert seen["embedded"][k] == seen["temporal"][k], f"{k} differ:\n  embedded: {seen['embedded'][k]}\n  temporal: {seen['temporal'][k]}"


def _in_flight(engine, action: str) -> bool:
    open_ = {}
    for e in engine.events():
        if e.get("action") == action and not e.get("compensation_for"):
            if e["type"] == "step_dispatched":
                open_[action] = True
            elif e["type"] in ("step_succeeded", "step_failed", "step_timed_out"):
                open_[action] = False
    return open_.get(action, False)


def _bounded(check, what: str):
    return wait_for(check, what, timeout=BOUND)


def _undo_failed(events: list[dict]) -> list[tuple]:
    return [(e["action"], e["for"]) for e in events if e["type"] == "compensation_failed"]


# ---- the scenarios ------------------------------------------------------------------------------

BOOKING = """
provider hotel { region "eu" }
provider backup { region "eu" }
provider desk { region "eu" }
provider bank { region "eu" }
action hold_room { achieves room.held; undo release_room; via hotel { cost 1 USD; latency 10ms } via backup { cost 3 USD; latency 10ms } }
action release_room { achieves room.released; via hotel { latency 10ms } via backup { latency 10ms } }
action take_deposit { requires room.held; achieves deposit.taken; undo refund; via bank { cost 1 USD; latency 10ms } }
action refund { achieves deposit.refunded; via bank { latency 10ms } }
action confirm { requires deposit.taken; achieves booking.confirmed; via desk { cost 1 USD; latency 10ms } }
intent book { goal booking.confirmed; minimize cost }
intent book_quickly { goal booking.confirmed; deadline 5s; minimize cost }
"""


def _start_and_finish(intent: str = "book"):
    def play(engine, script):
        engine.start(intent)
        return engine.result()

    return play


def test_an_outage_is_rerouted_the_same_way(temporal_address, tmp_path):
    # The hotel is down for holding rooms: twice on it (one failure degrades it, the second marks
    # it down), then the backup, on both engines.
    seen = side_by_side(BOOKING, temporal_address, tmp_path, _start_and_finish(), plan={"hold_room via hotel": ["retry"]})
    same(seen, "status", "decisions", "effects")
    assert seen["temporal"]["status"] == "succeeded"
    assert seen["temporal"]["effects"]["hold_room/hotel"] == ["retry", "retry"] and seen["temporal"]["effects"]["hold_room/backup"] == ["ok"]


def test_compensation_with_a_failing_undo_is_the_same(temporal_address, tmp_path):
    # The desk refuses to confirm, for good: no plan is left, so both engines escalate and undo
    # in reverse order: the refund works, releasing the room fails and is reported, not dropped.
    plan = {"confirm": ["permanent"], "release_room": ["retry"]}
    seen = side_by_side(BOOKING, temporal_address, tmp_path, _start_and_finish(), plan=plan)
    same(seen, "status", "decisions", "effects")
    assert seen["temporal"]["status"] == "escalated"
    for r in seen.values():
        assert r["outcome"]["compensated"] == ["take_deposit"]
        assert _undo_failed(r["events"]) == [("release_room", "hold_room")]
    assert seen["temporal"]["effects"]["undo/take_deposit"] == ["ok"] and seen["temporal"]["effects"]["undo/hold_room"] == ["retry"]


def test_a_cancellation_mid_run_compensates_the_same_way(temporal_address, tmp_path):
    # Cancelled while `confirm` is in flight: the step is awaited, then the completed steps are
    # undone in reverse order (releasing the room fails, and says so), and the run ends cancelled.
    def play(engine, script):
        engine.start("book")
        _bounded(lambda: _in_flight(engine, "confirm"), "`confirm` to be in flight")
        engine.cancel("the guest changed their mind")
        _bounded(lambda: any(e["type"] == "giving_up" for e in engine.events()), "the run to give up")
        script.open()
        return engine.result()

    seen = side_by_side(BOOKING, temporal_address, tmp_path, play, plan={"confirm": ["gate"], "release_room": ["retry"]})
    same(seen, "status", "decisions", "effects")
    assert seen["temporal"]["status"] == "cancelled"
    for r in seen.values():
        assert r["outcome"]["compensated"] == ["take_deposit"]  # `confirm` has no undo; `hold_room`'s failed
        assert _undo_failed(r["events"]) == [("release_room", "hold_room")]
        assert r["outcome"]["reason"] == "cancelled by the parity suite: the guest changed their mind"
        assert r["outcome"]["cancelled"]["by"] == "the parity suite" and r["outcome"]["cancelled"]["at"] > 0


def test_a_deadline_passing_mid_step_gives_up_the_same_way(temporal_address, tmp_path):
    # `confirm` is still in flight when the 5 s deadline passes (5 s: room for a loaded machine
    # to reach `confirm` first): both engines give up once, naming the step, and undo what was done.
    def play(engine, script):
        engine.start("book_quickly")
        _bounded(lambda: any(e["type"] == "giving_up" for e in engine.events()), "the deadline to pass")
        script.open()
        return engine.result()

    seen = side_by_side(BOOKING, temporal_address, tmp_path, play, plan={"confirm": ["gate"]})
    same(seen, "status", "decisions", "effects")
    assert seen["temporal"]["status"] == "escalated"
    for r in seen.values():
        assert r["outcome"]["reason"] == "the deadline passed" and r["outcome"]["compensated"] == ["take_deposit", "hold_room"]
        assert [d for d in r["decisions"] if d[0] == "giving_up"] == [("giving_up", None, None)]


def test_a_request_submitted_again_after_its_run_completed_is_answered_not_run(temporal_address, tmp_path):
    key = f"order-{uuid.uuid4().hex[:8]}"  # the dev server is shared by the package's tests

    def play(engine, script):
        assert engine.start("book", key=key) == "started"
        first = engine.result()
        assert engine.start("book", key=key) == "ended"
        again = engine.result()
        assert again["status"] == first["status"] and decisions(again["events"]) == decisions(first["events"])
        return again

    seen = side_by_side(BOOKING, temporal_address, tmp_path, play)
    same(seen, "status", "decisions", "effects")
    # Each step ran once, on each engine.
    assert seen["temporal"]["effects"] == {"hold_room/hotel": ["ok"], "take_deposit/bank": ["ok"], "confirm/desk": ["ok"]}


HOLDING = """
provider slow { region "eu" }
action make { achieves thing.made; via slow { latency 2s } }
intent build { goal thing.made }
"""


def test_a_hold_then_success_is_the_same(temporal_address, tmp_path):
    # The step's provider is reported down while it runs: no plan without it, but it may still
    # land, so both engines hold (rather than escalate), and succeed when it does.
    def play(engine, script):
        engine.start("build")
        _bounded(lambda: _in_flight(engine, "make"), "`make` to be in flight")
        engine.observe({"provider": "slow", "status": "down"})
        _bounded(lambda: any(e["type"] == "holding" for e in engine.events()), "the run to hold")
        script.open()
        return engine.result()

    seen = side_by_side(HOLDING, temporal_address, tmp_path, play, plan={"make": ["gate"]})
    same(seen, "status", "decisions", "effects")
    assert seen["temporal"]["status"] == "succeeded"
    assert ("holding", None, None) in seen["temporal"]["decisions"]


SWITCH = """
provider bank { region "eu" }
provider desk { region "eu" }
action lands { external; achieves file.received; timeout 8s; via bank { latency 2s } }
action fetch { achieves file.received; via desk { cost 5 USD; latency 1s } }
action post { requires file.received; achieves file.posted; via bank { latency 100ms } }
intent settle { goal file.posted; deadline 5s }
"""


def test_a_late_external_fact_is_switched_away_from_the_same_way(temporal_address, tmp_path):
    # The file never lands: at its switch time (the deadline less the route around it, with a
    # margin) both engines give up waiting and fetch it by hand, in time.
    seen = side_by_side(SWITCH, temporal_address, tmp_path, _start_and_finish("settle"))
    same(seen, "status", "decisions", "effects")
    assert seen["temporal"]["status"] == "succeeded"
    assert seen["temporal"]["effects"] == {"fetch/desk": ["ok"], "post/bank": ["ok"]}
    for r in seen.values():
        switched = next(e for e in r["events"] if e["type"] == "step_switched")
        assert switched["action"] == "lands" and switched["at"] < 5000


def test_a_wider_switch_margin_switches_at_the_same_earlier_moment_on_both_engines(temporal_address, tmp_path):
    # `--switch-margin 1`: room for the route around the file twice (fetch 1 s, post 100 ms):
    # the switch comes at 5 s less 2.2 s on both engines.
    seen = side_by_side(SWITCH, temporal_address, tmp_path, _start_and_finish("settle"), switch_margin=1.0)
    same(seen, "status", "decisions", "effects")
    for r in seen.values():
        switched = next(e for e in r["events"] if e["type"] == "step_switched")
        assert 5000 - 2 * 1100 <= switched["at"] < 5000 - 1100 - 220, switched


def test_an_external_fact_that_lands_before_its_switch_time_is_not_switched_away_from(temporal_address, tmp_path):
    def play(engine, script):
        engine.start("settle")
        _bounded(lambda: _in_flight(engine, "lands") or any(e["type"] == "step_dispatched" and e.get("action") == "lands" for e in engine.events()), "the file to be awaited")
        engine.observe({"fact": "file.received"})
        return engine.result()

    seen = side_by_side(SWITCH, temporal_address, tmp_path, play)
    same(seen, "status", "decisions", "effects")
    assert seen["temporal"]["status"] == "succeeded" and seen["temporal"]["effects"] == {"post/bank": ["ok"]}
    assert not any(d[0] == "step_switched" for d in seen["temporal"]["decisions"])


# ---- a 10-minute step whose process is killed mid-step -----------------------------------------

from .test_promises import CRASH  # noqa: E402  (a 10-minute charge, then an idempotent notify)

#: The handlers both engines' processes load: every call appended to $CALLS (its key less the
#: run id); `charge` hangs in the first process (which is killed), and the reconciler of the
#: next one finds that it went through.
CRASH_HANDLERS = '''
import json, os, threading
from intento.execute import Registry

registry = Registry()


def _record(ctx, what):
    with open(os.environ["CALLS"], "a") as f:
        f.write(json.dumps([ctx.idempotency_key.split("/", 1)[1], what]) + "\\n")


@registry.handler("charge")
def charge(ctx):
    _record(ctx, "hang")
    threading.Event().wait(600)


@registry.handler("notify")
def notify(ctx):
    _record(ctx, "ok")


@registry.reconciler("charge")
def charged(ctx):
    _record(ctx, "reconciled")
    return True
'''


def _calls(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        key, what = json.loads(line)
        out.setdefault(key, []).append(what)
    return out


def _charging(path: Path) -> bool:
    return "charge/psp" in _calls(path)


def test_a_ten_minute_step_whose_process_is_killed_mid_step_is_reconciled_the_same_way(temporal_address, tmp_path):
    project = tmp_path / "pay.intent"
    project.write_text(CRASH)
    (tmp_path / "crash_side_handlers.py").write_text(CRASH_HANDLERS)
    env = lambda calls: dict(os.environ, CALLS=str(calls), PYTHONPATH=str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", ""))  # noqa: E731
    seen = {}

    # Embedded: `intento run` killed with SIGKILL while `charge` is in flight, then `intento resume`.
    calls, store = tmp_path / "embedded.calls", tmp_path / "pay.db"
    run = [INTENTO, "run", str(project), "-i", "pay", "--store", str(store), "--handlers", "crash_side_handlers:registry", "--quiet"]
    doomed = subprocess.Popen(run, env=env(calls), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _bounded(lambda: _charging(calls), "`charge` to be in flight")
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
    resumed = subprocess.run([INTENTO, "resume", str(project), "--store", str(store), "--handlers", "crash_side_handlers:registry", "--quiet"], env=env(calls), capture_output=True, text=True, timeout=BOUND)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    st = Store(store)
    rid = st.runs()[0]["id"]
    events = _relative(st.events(rid))
    seen["embedded"] = {"status": st.run(rid)["status"], "events": events, "effects": _calls(calls)}

    # Temporal: `intento worker` killed with SIGKILL while `charge` is in flight; the heartbeat
    # timeout (2 s here, far below the step's 10 minutes) hands the step to the next worker.
    calls, queue = tmp_path / "temporal.calls", f"side-{uuid.uuid4().hex[:8]}"
    spec = _spec(CRASH)
    wcmd = [INTENTO, "worker", str(project), "--temporal", temporal_address, "--task-queue", queue, "--handlers", "crash_side_handlers:registry", "--store", str(tmp_path / "w.db")]

    async def on_temporal():
        client = await Client.connect(temporal_address)
        doomed = subprocess.Popen(wcmd, env=env(calls), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        req = run_request(spec, "pay", {}) | {"heartbeat_s": 2}
        handle, _ = await start_or_join(client, req, workflow_id("pay", uuid.uuid4().hex[:8], req), queue)
        try:
            await until(lambda: asyncio.sleep(0, _charging(calls)), "`charge` to be in flight", timeout=BOUND)
        finally:
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(timeout=30)
        nxt = subprocess.Popen(wcmd, env=env(calls), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            got = await asyncio.wait_for(outcome(handle), BOUND)
        finally:
            nxt.terminate()
            nxt.wait(timeout=30)
        await Replayer(workflows=[IntentRun]).replay_workflow(await handle.fetch_history())
        return got

    got = asyncio.run(on_temporal())
    seen["temporal"] = {"status": got["status"], "events": got["events"], "effects": _calls(calls)}
    for r in seen.values():
        r["decisions"] = decisions(r["events"])
    same(seen, "status", "decisions", "effects")
    assert seen["temporal"]["status"] == "succeeded"
    # Charged once (by the killed process), never again: the next one asked the reconciler.
    assert seen["temporal"]["effects"] == {"charge/psp": ["hang", "reconciled"], "notify/mail": ["ok"]}
    assert ("reconciled", "charge", "psp") in seen["temporal"]["decisions"]
