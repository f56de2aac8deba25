"""Temporal as a Temporal user sees it (issue 14), against the real dev server: no secret value
anywhere in a run's history; a failed step is a failed activity (and the run still re-plans
around it); a cancellation compensates in reverse order, reports a failing undo and ends in
Temporal's Canceled state; `on_escalation` is called; a request submitted again after its run
ended gets that outcome and runs nothing twice; observations through the update are checked at
the call; ids, summaries and memo are legible. Every recorded history replays.

The parity scenarios of issue 14 are each run on both engines side by side, comparing outcomes,
decisions and effects per idempotency key, in `test_side_by_side.py`; the tests here and in
`test_temporal.py`/`test_promises.py` look closer at what Temporal shows (history, UI, CLI)."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import uuid

import pytest

temporalio = pytest.importorskip("temporalio")
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowUpdateFailedError  # noqa: E402
from temporalio.exceptions import CancelledError  # noqa: E402
from temporalio.worker import Replayer  # noqa: E402

from intento.audit import AuditLog, secret_key  # noqa: E402
from intento.check import check_sources  # noqa: E402
from intento.diagnostics import Source  # noqa: E402
from intento.execute import PermanentError, Registry  # noqa: E402
from intento.temporal import Activities, IntentRun, run_request, worker  # noqa: E402
from intento.temporal._commands import outcome  # noqa: E402

from .conftest import INTENTO, until  # noqa: E402

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
intent book {
  given guest.card: string secret, guest.name: string
  goal booking.confirmed
  minimize cost
}
"""
CARD = "4111-SECRET-CARD-9f3a7c"


@pytest.fixture(scope="module")
def spec():
    result = check_sources([Source("book.intent", BOOKING)])
    assert result.spec is not None, result.diagnostics
    return result.spec


def _queue() -> str:
    return f"p-{uuid.uuid4().hex[:8]}"


async def _history_bytes(handle) -> bytes:
    """Every event of the history as its wire bytes: payloads (inputs, results, failures, memo,
    details) appear there as the JSON the data converter wrote."""
    return b"".join(e.SerializeToString() for e in (await handle.fetch_history()).events)


async def _replay(handle) -> None:
    await Replayer(workflows=[IntentRun]).replay_workflow(await handle.fetch_history())


def test_secrets_are_never_in_history_and_failed_steps_are_failed_activities(spec, temporal_address, tmp_path):
    seen: list[dict] = []
    reg = Registry()
    fails = {"hotel": 1}

    def hold(ctx):
        seen.append(dict(ctx.context))
        if fails.get(ctx.provider):
            fails[ctx.provider] -= 1
            raise PermanentError(f"{ctx.provider} has no rooms")

    reg.handler("hold_room")(hold)
    for a in ("take_deposit", "confirm"):
        reg.handler(a)(lambda ctx: seen.append(dict(ctx.context)) and None)
    audit = AuditLog(tmp_path / "w.audit.jsonl")

    async def go():
        client = await Client.connect(temporal_address)
        queue = _queue()
        async with worker(client, queue, Activities(spec, registry=reg, audit=audit)):
            req = run_request(spec, "book", {"guest.card": CARD, "guest.name": "Ada"}, secret_key=secret_key(audit.path))
            handle = await client.start_workflow(IntentRun.run, req, id=f"book-{uuid.uuid4().hex[:8]}", task_queue=queue)
            result = await asyncio.wait_for(handle.result(), 60)
            raw = await _history_bytes(handle)
            history = await handle.fetch_history()
            memo = await (await handle.describe()).memo()
        await Replayer(workflows=[IntentRun]).replay_workflow(history)
        return result, raw, history, memo

    result, raw, history, memo = asyncio.run(go())
    assert result["status"] == "succeeded"
    # The handlers got the real value ...
    assert seen and all(c["guest.card"] == CARD for c in seen)
    # ... the history (inputs, results, failures) holds none of it, nor its base64 or JSON forms.
    assert CARD.encode() not in raw and b"SECRET-CARD" not in raw
    assert b"Ada" in raw  # (a given that is not secret is there: the check reads the real payloads)
    # The audit log records the keyed hash, as the embedded engine does.
    assert CARD not in audit.path.read_text() and "hmac-sha256:" in audit.path.read_text()
    # The failed hold is a failed activity, not retried by Temporal: the workflow re-planned to backup.
    failed = [e.activity_task_failed_event_attributes for e in history.events if e.HasField("activity_task_failed_event_attributes")]
    assert len(failed) == 1 and failed[0].failure.application_failure_info.type == "StepFailed"
    assert "hotel has no rooms" in failed[0].failure.message
    assert result["done"]["hold_room"] == "backup"
    # Activities carry legible summaries; the memo says what the run is.
    scheduled = [e for e in history.events if e.HasField("activity_task_scheduled_event_attributes")]
    summaries = [e.user_metadata.summary.data.decode() for e in scheduled if e.HasField("user_metadata")]
    assert '"hold_room via hotel"' in summaries and '"hold_room via backup"' in summaries
    assert memo["intent"] == "book" and memo["status"] == "succeeded" and memo["cost"] == "5"


def test_cancel_compensates_in_reverse_reports_a_failed_undo_and_ends_canceled(spec, temporal_address):
    undone: list[str] = []
    release = threading.Event()
    reg = Registry()
    reg.handler("hold_room")(lambda ctx: None)
    reg.handler("take_deposit")(lambda ctx: None)
    reg.handler("confirm")(lambda ctx: release.wait(30) and None)  # in flight when the cancel comes

    def refund(ctx):
        undone.append("refund")
        raise RuntimeError("the bank refused the refund")

    reg.handler("refund")(refund)
    reg.handler("release_room")(lambda ctx: undone.append("release_room") and None)

    async def go():
        client = await Client.connect(temporal_address)
        queue = _queue()
        async with worker(client, queue, Activities(spec, registry=reg, secret_key=b"k")):
            req = run_request(spec, "book", {"guest.card": CARD, "guest.name": "Ada"}, secret_key=b"k")
            handle = await client.start_workflow(IntentRun.run, req, id=f"book-{uuid.uuid4().hex[:8]}", task_queue=queue)

            async def confirming():
                return "confirm" in (await handle.query(IntentRun.status))["running"]

            await until(confirming, "`confirm` to be in flight")
            await handle.cancel()
            # The step in flight is awaited, not abandoned: the run is giving up meanwhile.
            await until(lambda: _state(handle, "giving_up"), "the run to give up")
            release.set()
            with pytest.raises(WorkflowFailureError) as ended:
                await asyncio.wait_for(handle.result(), 60)
            desc = await handle.describe()
            got = await outcome(handle)
            await _replay(handle)
        return ended.value, desc, got

    try:
        err, desc, got = asyncio.run(go())
    finally:
        release.set()
    assert isinstance(err.cause, CancelledError) and desc.status == WorkflowExecutionStatus.CANCELED
    # Temporal's cancel alone (no `cancel_reason` signal): the outcome says it came through Temporal.
    assert got["status"] == "cancelled" and got["reason"] == "cancelled by temporal: cancelled through Temporal"
    assert got["cancelled"]["by"] == "temporal" and got["cancelled"]["at"] > 0
    # confirm finished (it was in flight; it has no undo), then the undos ran newest first.
    assert got["done"] == {"hold_room": "hotel", "take_deposit": "bank", "confirm": "desk"}
    assert undone == ["refund", "release_room"]
    assert got["compensated"] == ["hold_room"]
    assert got["undo_failed"] == [{"action": "refund", "for": "take_deposit", "error": "RuntimeError: the bank refused the refund"}]
    kinds = [e["type"] for e in got["events"]]
    assert kinds.index("giving_up") < kinds.index("compensating") < kinds.index("compensation_failed") < kinds.index("cancelled")


async def _state(handle, want: str) -> bool:
    return (await handle.query(IntentRun.status))["status"] == want


def test_on_escalation_is_called_and_observations_are_checked_at_the_call(spec, temporal_address):
    told: list[tuple] = []
    reg = Registry()
    reg.handler("hold_room")(lambda ctx: None)

    def no_deposit(ctx):
        raise PermanentError("the card was declined")

    reg.handler("take_deposit")(no_deposit)
    reg.on_escalation(lambda run, conflict, summary: told.append((run, summary)))
    gate = threading.Event()
    reg.handler("release_room")(lambda ctx: gate.wait(30) and None)

    async def go():
        client = await Client.connect(temporal_address)
        queue = _queue()
        async with worker(client, queue, Activities(spec, registry=reg, secret_key=b"k")):
            wid = f"book-{uuid.uuid4().hex[:8]}"
            handle = await client.start_workflow(IntentRun.run, run_request(spec, "book", {"guest.card": CARD, "guest.name": "Ada"}, secret_key=b"k"), id=wid, task_queue=queue)
            await until(lambda: _state(handle, "giving_up"), "the run to give up after the declined card")
            refused = {}
            for bad in ({"fact": "room.helt"}, {"provider": "hotle", "status": "down"}, {"provider": "hotel", "status": "sideways"}, {"fact": "x", "provider": "hotel"}):
                with pytest.raises(WorkflowUpdateFailedError) as e:
                    await handle.execute_update(IntentRun.observe, bad)
                refused[str(bad)] = e.value.cause.message
            ok = await handle.execute_update(IntentRun.observe, {"provider": "hotel", "status": "up"})
            gate.set()
            result = await asyncio.wait_for(handle.result(), 60)
            await _replay(handle)
        return wid, refused, ok, result

    try:
        wid, refused, ok, result = asyncio.run(go())
    finally:
        gate.set()
    assert result["status"] == "escalated" and told == [(wid, result["summary"])]
    assert ok == "queued"
    assert "fact `room.helt`" in refused[str({"fact": "room.helt"})] and "room.held" in refused[str({"fact": "room.helt"})]
    assert "unknown provider `hotle`" in refused[str({"provider": "hotle", "status": "down"})]
    assert "unknown provider status `sideways`" in refused[str({"provider": "hotel", "status": "sideways"})]
    assert "either a fact, or a provider" in refused[str({"fact": "x", "provider": "hotel"})]


HANDLERS = '''
from intento import Registry
registry = Registry()
calls = __import__("pathlib").Path(__import__("os").environ["CALLS"])
def count(ctx):
    with calls.open("a") as f:
        f.write(ctx.action + "\\n")
for a in ("hold_room", "take_deposit", "confirm"):
    registry.handler(a)(count)
'''


def test_a_request_submitted_again_gets_its_outcome_and_runs_nothing_twice(spec, temporal_address, tmp_path):
    project = tmp_path / "book.intent"
    project.write_text(BOOKING)
    (tmp_path / "book_handlers.py").write_text(HANDLERS)
    calls = tmp_path / "calls.txt"
    env = {**__import__("os").environ, "CALLS": str(calls), "PYTHONPATH": str(tmp_path), "INTENTO_SECRET_KEY": "shared-key"}
    queue = _queue()
    conn = ["--temporal", temporal_address, "--task-queue", queue]
    w = subprocess.Popen([INTENTO, "worker", str(project), *conn, "--handlers", "book_handlers:registry", "--store", str(tmp_path / "w.db")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    given = '{"guest.card": "%s", "guest.name": "Ada"}' % CARD
    try:
        runs = [subprocess.run([INTENTO, "run", str(project), "-i", "book", "-g", given, "--engine", "temporal", *conn, "--key", "order-17"], env=env, capture_output=True, text=True, timeout=120) for _ in range(2)]
    finally:
        w.terminate()
        _, werr = w.communicate(timeout=30)
    for r in runs:
        assert r.returncode == 0 and "outcome: succeeded" in r.stdout, r.stdout + r.stderr
    # The workflow id is the intent and the key; the second submission is answered, not run.
    assert runs[0].stdout.startswith("run book-order-17 (book) on Temporal")
    assert "(already ended: its outcome)" in runs[1].stdout.splitlines()[0]
    assert sorted(calls.read_text().split()) == ["confirm", "hold_room", "take_deposit"]
    assert w.returncode == 0 and werr == "", werr
    assert CARD not in runs[0].stdout + runs[1].stdout


SETTLE = """
provider bank { region "eu" }
provider psp { region "eu" }
action file_lands { external; achieves file.received; timeout 10m; via bank { latency 100ms } }
action post { requires file.received; achieves posted; undo unpost; via psp { cost 1 USD; latency 10ms } }
action unpost { achieves post.undone; via psp { latency 10ms } }
action notify { requires posted; achieves team.told; via psp { cost 1 USD; latency 10ms } }
intent settle { goal team.told and file.received; minimize cost }
"""


SETTLE_HANDLERS = '''
import os, pathlib, time
from intento import Registry
registry = Registry()
registry.handler("post")(lambda ctx: None)
registry.handler("unpost")(lambda ctx: None)

@registry.handler("notify")
def notify(ctx):
    # In flight until the test opens the gate (bounded): the cancellation arrives meanwhile.
    gate = pathlib.Path(os.environ["GATE"])
    end = time.monotonic() + 60
    while not gate.exists() and time.monotonic() < end:
        time.sleep(0.05)
'''


def test_one_cli_for_both_engines_status_runs_observe_cancel(temporal_address, tmp_path):
    import json

    project = tmp_path / "settle.intent"
    project.write_text(SETTLE)
    (tmp_path / "settle_handlers.py").write_text(SETTLE_HANDLERS)
    gate = tmp_path / "gate"
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path), "GATE": str(gate)}
    queue = _queue()
    conn = ["--engine", "temporal", "--temporal", temporal_address]
    w = subprocess.Popen([INTENTO, "worker", str(project), "--temporal", temporal_address, "--task-queue", queue, "--store", str(tmp_path / "w.db"), "--handlers", "settle_handlers:registry"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    key = uuid.uuid4().hex[:8]
    wid = f"settle-{key}"
    run = subprocess.Popen([INTENTO, "run", str(project), "-i", "settle", *conn, "--task-queue", queue, "--key", key], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def cli(*args):
        return subprocess.run([INTENTO, *args], capture_output=True, text=True, timeout=60)

    def status_is(check):
        async def poll():
            r = await asyncio.to_thread(cli, "status", wid, *conn, "--format", "json")
            return r.returncode == 0 and check(json.loads(r.stdout)) and json.loads(r.stdout)

        return poll

    try:
        st = asyncio.run(until(status_is(lambda v: v.get("awaiting") == ["file_lands"]), "the run to await its file", timeout=60))
        assert st["run"] == wid and st["intent"] == "settle" and st["status"] == "running" and st["temporal_status"] == "running"
        text = cli("status", wid, *conn)
        assert text.returncode == 0 and f"run {wid} (settle) on Temporal: running" in text.stdout and "waiting for the facts of: file_lands" in text.stdout
        listed = cli("runs", *conn, "--status", "running", "--format", "json")
        assert listed.returncode == 0 and wid in [r["run"] for r in json.loads(listed.stdout)["runs"]]
        # Grouped by where they wait, as on the embedded engine, in both formats.
        groups = json.loads(listed.stdout)["waits"]
        assert any(g["waits_on"] == "waiting for file.received" and wid in g["runs"] for g in groups), groups
        assert any(line.endswith("waiting for file.received") for line in cli("runs", *conn).stdout.splitlines() if line.startswith(wid))
        # And for Temporal's own tools: the run's search attributes say the same.
        asyncio.run(until(lambda: _found(temporal_address, "IntentoIntent = 'settle' AND IntentoStatus = 'running' AND IntentoWaitsOn = 'waiting for file.received'", wid),
                          "the run to be found by its search attributes", timeout=60))
        # An observation naming no fact of the project is refused at the call, with a suggestion.
        bad = cli("observe", wid, "--fact", "file.recieved", *conn)
        assert bad.returncode == 1 and "file.received" in bad.stderr and bad.stderr.startswith(f"intento: observation refused by run {wid}")
        ok = cli("observe", wid, "--fact", "file.received", *conn)
        assert ok.returncode == 0, ok.stderr
        asyncio.run(until(status_is(lambda v: v.get("running") == ["notify"]), "`notify` to be in flight", timeout=60))
        asker = subprocess.Popen([INTENTO, "cancel", wid, *conn, "--reason", "operator test", "--format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        asyncio.run(until(status_is(lambda v: v.get("status") == "giving_up"), "the run to give up on the cancellation", timeout=60))
        gate.write_text("open")
        cancelled_out, cancelled_err = asker.communicate(timeout=60)
        unknown = cli("status", "settle-nope", *conn)
        again = cli("cancel", wid, *conn)
        stdout, stderr = run.communicate(timeout=60)
    finally:
        gate.write_text("open")
        for p in (run, w):
            if p.poll() is None:
                p.terminate()
        w.communicate(timeout=30)
    assert asker.returncode == 0, cancelled_err
    got = json.loads(cancelled_out)
    assert got["status"] == "cancelled" and got["compensated"] == ["post"] and got["done"] == {"file_lands": "bank", "post": "psp", "notify": "psp"}
    assert run.returncode == 4 and "outcome: cancelled: the run was cancelled" in stdout, stdout + stderr
    assert unknown.returncode == 1 and unknown.stderr.startswith("intento: no run `settle-nope` on Temporal")
    assert again.returncode == 1 and "has already finished (canceled)" in again.stderr
    # The cancellation is in the worker's audit chain, as on the embedded engine: who, why, and
    # the plan it stopped; the chain still verifies.
    log = next(tmp_path.glob("w.db*.audit.jsonl"))
    records = [json.loads(line) for line in log.read_text().splitlines()]
    cancels = [r for r in records if r["kind"] == "cancel"]
    plans = [r["decision"] for r in records if r["kind"] in ("plan", "replan") and r["run"] == wid]
    assert len(cancels) == 1 and cancels[0]["run"] == wid and cancels[0]["decision"] == f"{wid}/cancel"
    assert "(intento cancel)" in cancels[0]["reason"] and cancels[0]["reason"].endswith(": operator test")
    assert cancels[0]["cancelled"]["plan"] == plans[-1] == f"{wid}/plan-{len(plans)}"
    verified = cli("audit", "verify", str(log))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    asyncio.run(until(lambda: _found(temporal_address, "IntentoStatus = 'cancelled' AND IntentoWaitsOn IS NULL", wid), "the cancelled run's search attributes", timeout=60))


async def _found(address: str, query: str, wid: str) -> bool:
    client = await Client.connect(address)
    return wid in [w.id async for w in client.list_workflows(query)]


HOLDING = """
provider slow { region "eu" }
action make { achieves thing.made; via slow { latency 2s } }
intent build { goal thing.made }
"""
#: What a run decided, engine-neutral: its events' types in order (the simulation's and the
#: embedded store's bookkeeping apart), with a hold's reason.
DECISIONS = ("planned", "holding", "step_dispatched", "step_failed", "step_succeeded", "succeeded", "escalated")


def _decisions(events: list[dict]) -> list:
    return [(e["type"], e.get("reason") or e.get("data", {}).get("reason")) if e["type"] == "holding" else e["type"] for e in events if e["type"] in DECISIONS]


def _embedded_holding(tmp_path, scenario: dict) -> tuple[str, list]:
    from intento.execute import Executor, Scenario, SimEnvironment, Store

    spec = check_sources([Source("h.intent", HOLDING)]).spec
    store = Store(tmp_path / f"h-{uuid.uuid4().hex[:6]}.db")
    ex = Executor(spec, store, SimEnvironment(Scenario.model_validate(scenario)), new_id=lambda: "r")
    final = ex.drive(ex.start("build", {}))
    return final.status, _decisions([{"type": e["type"], **e["data"]} for e in store.events(final.run)])


def _on_temporal_holding(temporal_address, reg: Registry, drive=None, **req_extra) -> tuple[dict, list[dict]]:
    spec = check_sources([Source("h.intent", HOLDING)]).spec

    async def go():
        client = await Client.connect(temporal_address)
        queue = _queue()
        async with worker(client, queue, Activities(spec, registry=reg)):
            handle = await client.start_workflow(IntentRun.run, run_request(spec, "build", {}) | req_extra, id=f"build-{uuid.uuid4().hex[:8]}", task_queue=queue)
            seen = await drive(handle) if drive else None
            result = await asyncio.wait_for(handle.result(), 60)
            await _replay(handle)
        return result, seen

    return asyncio.run(go())


def test_a_run_holds_for_a_step_in_flight_then_succeeds_on_both_engines(temporal_address, tmp_path):
    # The step's provider is reported down while the step runs: no plan without it, but it may
    # still land, so the run holds (instead of escalating) and succeeds when it does.
    status, embedded = _embedded_holding(tmp_path, {"seed": 1, "observations": [{"at": "300ms", "provider": "slow", "status": "down"}]})
    release = threading.Event()
    reg = Registry()
    reg.handler("make")(lambda ctx: release.wait(30) and None)

    async def drive(handle):
        await until(lambda: _running(handle, "make"), "`make` to be in flight")
        await handle.execute_update(IntentRun.observe, {"provider": "slow", "status": "down"})
        held = await until(lambda: _state(handle, "holding"), "the run to hold")
        release.set()
        return held

    try:
        result, held = _on_temporal_holding(temporal_address, reg, drive)
    finally:
        release.set()
    assert held and status == "succeeded" and result["status"] == "succeeded"
    assert _decisions(result["events"]) == embedded
    assert ("holding", "no plan without the steps still running: waiting for their outcome") in embedded


def test_a_run_holds_for_a_cool_down_then_succeeds_on_both_engines(temporal_address, tmp_path):
    # Two failures in a row: the only provider is presumed down; a plan exists once it is back,
    # so the run holds until its cool-down ends (five minutes, simulated, on the embedded engine;
    # one second here, `cool_down_ms`) and then succeeds.
    status, embedded = _embedded_holding(tmp_path, {"seed": 1, "providers": {"slow": {"outages": [{"from": 0, "to": "10s"}]}}})
    calls: list[int] = []
    reg = Registry()

    def make(ctx):
        calls.append(ctx.attempt)
        if len(calls) <= 2:
            raise RuntimeError("slow is unavailable")

    reg.handler("make")(make)
    result, _ = _on_temporal_holding(temporal_address, reg, cool_down_ms=1000)
    assert status == "succeeded" and result["status"] == "succeeded" and len(calls) == 3
    assert _decisions(result["events"]) == embedded
    hold = next(e for e in result["events"] if e["type"] == "holding")
    assert hold["providers"] == ["slow"] and hold["until"] >= 1000
    # The re-plan came from the hold's timer, not from anything observed.
    replan = [e for e in result["events"] if e["type"] == "planned"][-1]
    assert replan["reason"] == "a cool-down ended: `slow` may be back" and replan["at"] >= hold["until"]


def test_a_provider_reported_down_is_not_waited_for_on_both_engines(temporal_address, tmp_path):
    # The step's provider is reported down while it runs: the run holds for the step; the step
    # fails; nobody knows when a provider reported down is back, so the run escalates then
    # instead of holding for a cool-down, on both engines.
    status, embedded = _embedded_holding(tmp_path, {"seed": 1, "observations": [{"at": "300ms", "provider": "slow", "status": "down"}], "providers": {"slow": {"outages": [{"from": 0}]}}})
    release = threading.Event()
    reg = Registry()

    def make(ctx):
        release.wait(30)
        raise RuntimeError("slow is unavailable")

    reg.handler("make")(make)

    async def drive(handle):
        await until(lambda: _running(handle, "make"), "`make` to be in flight")
        await handle.execute_update(IntentRun.observe, {"provider": "slow", "status": "down"})
        await until(lambda: _state(handle, "holding"), "the run to hold")
        release.set()

    try:
        result, _ = _on_temporal_holding(temporal_address, reg, drive)
    finally:
        release.set()
    assert status == result["status"] == "escalated"
    # Temporal held for the step in flight only; neither engine held for a cool-down.
    held = [d for d in _decisions(result["events"]) if isinstance(d, tuple)]
    assert held == [("holding", "no plan without the steps still running: waiting for their outcome")]
    assert not any(isinstance(d, tuple) and "cool-down" in d[1] for d in embedded)


async def _running(handle, action: str) -> bool:
    return action in (await handle.query(IntentRun.status))["running"]


SWITCH = """
provider bank { region "eu" }
provider desk { region "eu" }
action lands { external; achieves file.received; timeout 8s; via bank { latency 2s } }
action fetch { achieves file.received; via desk { cost 5 USD; latency 1s } }
action post { requires file.received; achieves file.posted; via bank { latency 100ms } }
intent settle { goal file.posted; deadline 5s }
"""
#: The switch: the deadline (5 s) less the route around the file (fetch, then post: 1.1 s) and
#: a fifth of that route.
SWITCH_AT_MS = 5000 - 1100 - 220
SWITCH_DECISIONS = ("planned", "step_dispatched", "step_switched", "step_succeeded", "succeeded", "escalated")


def test_a_late_file_is_switched_away_from_in_time_on_both_engines(temporal_address, tmp_path):
    from intento.execute import Executor, Scenario, SimEnvironment, Store

    spec = check_sources([Source("s.intent", SWITCH)]).spec
    store = Store(tmp_path / "s.db")
    scenario = Scenario.model_validate({"seed": 1, "default": {"latency_sigma": 0}, "facts": {"file.received": {"at": None}}})
    ex = Executor(spec, store, SimEnvironment(scenario), new_id=lambda: "r")
    final = ex.drive(ex.start("settle", {}))
    embedded = [{"type": e["type"], **e["data"], "at": e["at"]} for e in store.events(final.run)]
    assert final.status == "succeeded" and next(e for e in embedded if e["type"] == "step_switched")["at"] == SWITCH_AT_MS

    reg = Registry()
    reg.handler("fetch")(lambda ctx: None)
    reg.handler("post")(lambda ctx: None)

    async def go():
        client = await Client.connect(temporal_address)
        queue = _queue()
        async with worker(client, queue, Activities(spec, registry=reg)):
            handle = await client.start_workflow(IntentRun.run, run_request(spec, "settle", {}), id=f"settle-{uuid.uuid4().hex[:8]}", task_queue=queue)
            result = await asyncio.wait_for(handle.result(), 60)
            await _replay(handle)
        return result

    result = asyncio.run(go())
    assert result["status"] == "succeeded"
    pick = lambda events: [e["type"] for e in events if e["type"] in SWITCH_DECISIONS]  # noqa: E731
    assert pick(result["events"]) == pick(embedded)
    switched = next(e for e in result["events"] if e["type"] == "step_switched")
    fetch = next(e for e in result["events"] if e["type"] == "step_dispatched" and e.get("action") == "fetch")
    assert switched["action"] == "lands" and switched["at"] >= SWITCH_AT_MS and fetch["at"] >= switched["at"]
    assert switched["reason"] == next(e for e in embedded if e["type"] == "step_switched")["reason"]
    assert result["done"] == {"fetch": "desk", "post": "bank"}


# A worker started with changed policies no longer plans runs of another version: tests/temporal/test_versions.py.
