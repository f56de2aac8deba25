"""The promises a run makes hold on Temporal as on the embedded engine (issue 12): every given
type reaches the planner, the handlers and the audit log with its type; an action's `timeout` is
its activity's limit and overrunning it is a timeout (not a lost step), while a worker that dies
mid-step is noticed by its missing heartbeats; a run's deadline is a durable timer, and a run
past it gives up once, naming it. Real dev server, real workers; every wait is on a condition,
with a bound."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import uuid
from decimal import Decimal

import pytest

temporalio = pytest.importorskip("temporalio")
from temporalio.client import Client  # noqa: E402
from temporalio.worker import Replayer  # noqa: E402
from temporalio.api.enums.v1 import TimeoutType  # noqa: E402

import intento  # noqa: E402
from intento.audit import AuditLog, verify  # noqa: E402
from intento.check import check_sources  # noqa: E402
from intento.diagnostics import Source  # noqa: E402
from intento.execute import Executor, Registry, Scenario, SimEnvironment, Store  # noqa: E402
from intento.execute.environment import RealEnvironment  # noqa: E402
from intento.temporal import Activities, IntentRun, run_request, worker  # noqa: E402
from intento.values import Duration, Money  # noqa: E402

from .conftest import INTENTO, ROOT, until  # noqa: E402


def _spec(text: str, name: str = "t.intent"):
    result = check_sources([Source(name, text)])
    assert result.spec is not None, result.diagnostics
    return result.spec


async def _start(client, queue: str, req: dict):
    return await client.start_workflow(IntentRun.run, req, id=f"run-{uuid.uuid4().hex[:8]}", task_queue=queue)


def _queue() -> str:
    return f"q-{uuid.uuid4().hex[:8]}"


def _kinds(result: dict, kind: str, action: str | None = None) -> list[dict]:
    return [e for e in result["events"] if e["type"] == kind and (action is None or e.get("action") == action)]


async def _replay(handle) -> None:
    await Replayer(workflows=[IntentRun]).replay_workflow(await handle.fetch_history())


# ---- 1. every given type round-trips --------------------------------------------------------

TYPES = """
provider desk { region "eu" }
provider auto { region "eu" }
action assess { achieves quote.low_risk; via auto { cost 0.5 USD; latency 10ms } }
action review { achieves quote.reviewed; via desk { cost 2 USD; latency 20ms } }
action issue { requires quote.reviewed or quote.low_risk; achieves quote.issued; via auto { cost 1 USD; latency 10ms } }
intent quote {
  given customer.name: string, risk.score: number, quote.premium: money, cover.wait: duration, customer.vip: bool, customer.pin: number secret
  goal quote.issued
  minimize cost
}
policy risky_quotes_are_reviewed { when risk.score >= 0.5 require quote.reviewed }
"""
GIVEN = {"customer.name": "Ada", "risk.score": Decimal("0.7"), "quote.premium": "120.50 USD", "cover.wait": "2s", "customer.vip": True, "customer.pin": 1234}
TYPED = {"customer.name": "Ada", "risk.score": Decimal("0.7"), "quote.premium": Money(Decimal("120.50"), "USD"), "cover.wait": Duration(2000), "customer.vip": True, "customer.pin": Decimal("1234")}


def _recording_registry(seen: dict) -> Registry:
    reg = Registry()
    for action in ("assess", "review", "issue"):
        reg.handler(action)(lambda ctx: seen.setdefault(ctx.action, dict(ctx.context)) and None)
    return reg


def _audit_contexts(path) -> list[dict]:
    return [json.loads(line)["context"] for line in path.read_text().splitlines()]


def test_every_given_type_round_trips_through_temporal(temporal_address, tmp_path, monkeypatch):
    monkeypatch.setenv("INTENTO_SECRET_KEY", "test-key")
    spec = _spec(TYPES)
    seen: dict[str, dict] = {}

    async def go():
        client = await Client.connect(temporal_address)
        queue = _queue()
        audit = AuditLog(tmp_path / "t.audit.jsonl")
        async with worker(client, queue, Activities(spec, registry=_recording_registry(seen), audit=audit)):
            handle = await _start(client, queue, run_request(spec, "quote", GIVEN))
            result = await asyncio.wait_for(handle.result(), 60)
        await _replay(handle)
        return result

    result = asyncio.run(go())
    # The policy's `when` read the number as a number: the risky quote was reviewed.
    assert result["status"] == "succeeded" and result["done"] == {"review": "desk", "issue": "auto"}
    # Handlers get typed values, the secret one included, exactly as given.
    assert seen.keys() == {"review", "issue"}
    for ctx in seen.values():
        assert ctx == TYPED and {k: type(v) for k, v in ctx.items()} == {k: type(v) for k, v in TYPED.items()}
    # The audit records are the embedded executor's: the same JSON context, the secret hashed alike.
    assert verify(tmp_path / "t.audit.jsonl").ok
    temporal_contexts = _audit_contexts(tmp_path / "t.audit.jsonl")
    assert temporal_contexts[0]["risk.score"] == "0.7" and temporal_contexts[0]["quote.premium"] == "120.50 USD"
    assert temporal_contexts[0]["cover.wait"] == 2000 and temporal_contexts[0]["customer.vip"] is True
    assert temporal_contexts[0]["customer.pin"].startswith("hmac-sha256:")

    embedded_seen: dict[str, dict] = {}
    reg = _recording_registry(embedded_seen)
    ex = Executor(spec, Store(tmp_path / "e.db"), RealEnvironment(reg), reg, AuditLog(tmp_path / "e.audit.jsonl"))
    final = ex.drive(ex.start("quote", GIVEN))
    ex.env.close()
    assert final.status == "succeeded"
    assert embedded_seen == seen
    assert _audit_contexts(tmp_path / "e.audit.jsonl") == temporal_contexts


def test_the_insurance_example_runs_on_temporal(temporal_address):
    spec = intento.load(ROOT / "examples" / "insurance_quote").spec

    async def go():
        client = await Client.connect(temporal_address)
        queue = _queue()
        out = {}
        async with worker(client, queue, Activities(spec, scenario=Scenario(seed=1), secret_key=b"k")):
            for score in ("0.95", "0.2"):
                given = {"customer.region": "eu", "quote.premium": "300 USD", "visitor.bot_score": Decimal(score), "visitor.email": "v@example.com"}
                handle = await _start(client, queue, run_request(spec, "progress_quote", given, {"facts": ["quote.requested"]}, secret_key=b"k"))
                out[score] = await asyncio.wait_for(handle.result(), 60)
        return out

    out = asyncio.run(go())
    # `visitor.bot_score` (a number) decides: a bot is closed, a likely human never is.
    assert out["0.95"]["status"] == "succeeded" and "close_as_bot" in out["0.95"]["done"]
    assert out["0.2"]["status"] == "succeeded" and "close_as_bot" not in out["0.2"]["done"]


# ---- 2. an action's timeout is its activity's limit ------------------------------------------

TIMEOUTS = """
provider slowco { region "eu" }
provider fastco { region "eu" }
action lookup {
  achieves data.fetched
  timeout 1s
  via slowco { cost 1 USD; latency 100ms }
  via fastco { cost 5 USD; latency 100ms }
}
intent fetch { goal data.fetched; minimize cost }
"""


def test_an_actions_timeout_is_its_activitys_limit(temporal_address):
    spec = _spec(TIMEOUTS)
    release = threading.Event()
    reg = Registry()
    reg.handler("lookup", "slowco")(lambda ctx: release.wait(30) and None)  # never answers in time
    reg.handler("lookup", "fastco")(lambda ctx: None)

    async def go():
        client = await Client.connect(temporal_address)
        queue = _queue()
        async with worker(client, queue, Activities(spec, registry=reg)):
            handle = await _start(client, queue, run_request(spec, "fetch", {}))
            result = await asyncio.wait_for(handle.result(), 60)
            history = await handle.fetch_history()
        await Replayer(workflows=[IntentRun]).replay_workflow(history)
        return result, history

    try:
        result, history = asyncio.run(go())
    finally:
        release.set()
    assert result["status"] == "succeeded" and result["done"] == {"lookup": "fastco"}
    timed_out = _kinds(result, "step_timed_out", "lookup")
    # The step timed out (a failure of slowco, then a re-plan onto fastco), never a lost step.
    assert timed_out and {e["provider"] for e in timed_out} == {"slowco"}
    assert all(e["error"] == "no answer within its timeout (1s)" for e in timed_out)
    assert not _kinds(result, "needs_reconciliation") and not _kinds(result, "reconciled")
    assert [e["reason"] for e in _kinds(result, "planned")][1:] == ["`lookup` via `slowco` timed out"] * len(timed_out)
    # Each step activity was limited to the action's 1s `timeout`, and heartbeats.
    scheduled = [e.activity_task_scheduled_event_attributes for e in history.events if e.HasField("activity_task_scheduled_event_attributes")]
    steps = [a for a in scheduled if a.activity_type.name == "intento.step"]
    assert steps and all(a.start_to_close_timeout.ToTimedelta().total_seconds() == 1 for a in steps)
    assert all(a.heartbeat_timeout.ToTimedelta().total_seconds() > 0 for a in steps)


CRASH = """
provider psp { region "eu" }
provider mail { region "eu" }
action charge { achieves order.paid; timeout 10m; via psp { cost 1 USD; latency 100ms } }
action notify { requires order.paid; achieves customer.notified; idempotent; via mail { cost 0.1 USD; latency 10ms } }
intent pay { goal customer.notified; minimize cost }
"""
CRASH_HANDLERS = '''
import threading

from intento.execute import Registry

registry = Registry()


@registry.handler("charge")
def charge(ctx):
    threading.Event().wait(120)  # still charging when the worker is killed
'''


def test_a_ten_minute_step_whose_worker_is_killed_is_noticed_by_heartbeat_not_its_timeout(temporal_address, tmp_path):
    spec = _spec(CRASH)
    (tmp_path / "pay.intent").write_text(CRASH)
    (tmp_path / "crash_handlers.py").write_text(CRASH_HANDLERS)
    queue = _queue()
    env = dict(os.environ, PYTHONPATH=str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    doomed = subprocess.Popen([INTENTO, "worker", str(tmp_path / "pay.intent"), "--temporal", temporal_address, "--task-queue", queue, "--handlers", "crash_handlers:registry", "--store", str(tmp_path / "w.db")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    reg = Registry()
    reg.handler("notify")(lambda ctx: None)
    reg.reconciler("charge")(lambda ctx: True)  # the charge went through before the crash

    async def go():
        client = await Client.connect(temporal_address)
        req = run_request(spec, "pay", {}) | {"heartbeat_s": 2}
        handle = await _start(client, queue, req)

        async def charging():
            return [e["type"] for e in (await handle.query(IntentRun.status))["events"] if e.get("action") == "charge"] == ["step_dispatched"]

        try:
            await until(charging, "the worker to start `charge`", timeout=60)
        finally:
            doomed.kill()
            doomed.wait(timeout=30)
        async with worker(client, queue, Activities(spec, registry=reg)):
            # Bounded well below the step's 10-minute limit: only the heartbeat can end it in time.
            result = await asyncio.wait_for(handle.result(), 120)
        history = await handle.fetch_history()
        await _replay(handle)
        return result, history

    result, history = asyncio.run(go())
    assert result["status"] == "succeeded" and result["done"] == {"charge": "psp", "notify": "mail"}
    lost = _kinds(result, "needs_reconciliation", "charge")
    assert len(lost) == 1 and "heartbeat" in lost[0]["error"].lower(), lost
    assert [e["happened"] for e in _kinds(result, "reconciled", "charge")] == [True]
    assert not _kinds(result, "step_timed_out")
    # Temporal ended the lost activity by its heartbeat timeout (not its 10-minute start-to-close).
    timed_out = [e.activity_task_timed_out_event_attributes.failure.timeout_failure_info.timeout_type for e in history.events if e.HasField("activity_task_timed_out_event_attributes")]
    assert timed_out == [TimeoutType.TIMEOUT_TYPE_HEARTBEAT]


# ---- 3. deadlines -----------------------------------------------------------------------------

DEADLINES = """
provider hotel { region "eu" }
provider courier { region "eu" }
action book { achieves room.booked; undo cancel_booking; via hotel { cost 1 USD; latency 50ms } }
action cancel_booking { achieves room.released; via hotel { latency 50ms } }
action deliver { requires room.booked; achieves parcel.delivered; via courier { cost 1 USD; latency 400ms } }
action confirm { external; requires room.booked; achieves booking.confirmed; timeout 60s; via hotel { latency 100ms } }
intent ship { goal parcel.delivered; deadline 3s; minimize cost }
intent hold_room { goal booking.confirmed; deadline 2s; minimize cost }
"""


def _embedded_outcome(spec, tmp_path, intent: str, scenario: Scenario):
    store = Store(tmp_path / f"{intent}.db")
    ex = Executor(spec, store, SimEnvironment(scenario), new_id=lambda: f"run-{intent}")
    final = ex.drive(ex.start(intent, {}))
    return final


def _assert_gave_up_at_the_deadline(result: dict, in_flight: str):
    assert result["status"] == "escalated" and result["reason"] == "the deadline passed"
    assert [m["policy"] for m in result["conflict"]] == ["deadline", "goal"]
    assert result["summary"].endswith(f"in flight or awaited then: `{in_flight}`"), result["summary"]
    assert result["compensated"] == ["book"]
    # Once: one plan, one give-up, no re-plan in a loop after the deadline.
    assert len(_kinds(result, "planned")) == 1 and len(_kinds(result, "giving_up")) == 1
    assert [e["type"] for e in result["events"]][-1] == "escalated"


def _deadline_timer(history, seconds: float) -> bool:
    timers = [e.timer_started_event_attributes for e in history.events if e.HasField("timer_started_event_attributes")]
    return any(t.start_to_fire_timeout.ToTimedelta().total_seconds() == seconds for t in timers)


def test_a_deadline_passing_mid_step_gives_up_once(temporal_address, tmp_path):
    spec = _spec(DEADLINES)
    release = threading.Event()
    undone = []
    reg = Registry()
    reg.handler("book")(lambda ctx: None)
    reg.handler("cancel_booking")(lambda ctx: undone.append(ctx.idempotency_key) and None)
    reg.handler("deliver")(lambda ctx: release.wait(30) and None)  # held until the deadline passed

    async def go():
        client = await Client.connect(temporal_address)
        queue = _queue()
        async with worker(client, queue, Activities(spec, registry=reg)):
            handle = await _start(client, queue, run_request(spec, "ship", {}))

            async def gave_up():
                st = await handle.query(IntentRun.status)
                return st if st["status"] == "giving_up" else None

            st = await until(gave_up, "the run to give up at its deadline while `deliver` runs")
            release.set()
            result = await asyncio.wait_for(handle.result(), 30)
            history = await handle.fetch_history()
        await Replayer(workflows=[IntentRun]).replay_workflow(history)
        return st, result, history

    try:
        st, result, history = asyncio.run(go())
    finally:
        release.set()
    assert st["deadline_passed"] and st["running"] == ["deliver"]
    _assert_gave_up_at_the_deadline(result, "deliver")
    assert len(undone) == 1
    assert _deadline_timer(history, 3)
    # The embedded executor gives up the same way (its simulated courier being that slow).
    slow = Scenario.model_validate({"seed": 1, "default": {"latency_sigma": 0}, "providers": {"courier": {"latency_sigma": 0, "spikes": [{"from": 0, "factor": 20}]}}})
    final = _embedded_outcome(spec, tmp_path, "ship", slow)
    assert final.status == "escalated"
    assert [m["policy"] for m in final.outcome["conflict"]] == [m["policy"] for m in result["conflict"]]
    assert final.outcome["summary"] == result["summary"]


def test_a_deadline_passing_while_a_fact_is_awaited_gives_up_once(temporal_address, tmp_path):
    spec = _spec(DEADLINES)
    never = Scenario.model_validate({"seed": 1, "facts": {"booking.confirmed": {"at": None}}})

    async def go():
        client = await Client.connect(temporal_address)
        queue = _queue()
        async with worker(client, queue, Activities(spec, scenario=never)):
            handle = await _start(client, queue, run_request(spec, "hold_room", {}))
            # `confirm` is awaited for 60s; the 2s deadline ends the run first.
            result = await asyncio.wait_for(handle.result(), 30)
            history = await handle.fetch_history()
        await Replayer(workflows=[IntentRun]).replay_workflow(history)
        return result, history

    result, history = asyncio.run(go())
    _assert_gave_up_at_the_deadline(result, "confirm")
    assert [e["action"] for e in _kinds(result, "wait_dropped")] == ["confirm"]
    assert not _kinds(result, "step_timed_out")
    assert _deadline_timer(history, 2)
    final = _embedded_outcome(spec, tmp_path, "hold_room", never)
    assert final.status == "escalated" and final.outcome["summary"] == result["summary"]
    assert [m["policy"] for m in final.outcome["conflict"]] == [m["policy"] for m in result["conflict"]]


def test_a_goal_that_holds_at_the_deadline_is_not_given_up(temporal_address):
    # The goal's fact is observed while `deliver` is still in flight, then the deadline passes:
    # nothing is missing, so the run waits for `deliver` (without spinning) and succeeds.
    spec = _spec(DEADLINES)
    release = threading.Event()
    reg = Registry()
    reg.handler("book")(lambda ctx: None)
    reg.handler("deliver")(lambda ctx: release.wait(30) and None)

    async def go():
        client = await Client.connect(temporal_address)
        queue = _queue()
        async with worker(client, queue, Activities(spec, registry=reg)):
            handle = await _start(client, queue, run_request(spec, "ship", {}))

            async def delivering():
                return "deliver" in (await handle.query(IntentRun.status))["running"]

            await until(delivering, "`deliver` to start")
            assert await handle.execute_update(IntentRun.observe, {"fact": "parcel.delivered"}) == "queued"

            async def passed():
                return (await handle.query(IntentRun.status))["deadline_passed"]

            await until(passed, "the deadline to pass")
            release.set()
            result = await asyncio.wait_for(handle.result(), 30)
        await _replay(handle)
        return result

    try:
        result = asyncio.run(go())
    finally:
        release.set()
    assert result["status"] == "succeeded" and result["done"] == {"book": "hotel", "deliver": "courier"}
    assert not _kinds(result, "giving_up")
