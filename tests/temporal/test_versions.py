"""Runs pinned to their project version on Temporal (docs/executor.md, "Temporal"), against the
real dev server: a run plans only on workers of the version it started with (the version's task
queue, `<queue>@<fingerprint>`); a worker started with changed policies never judges it, and
the run says it waits for a worker of its version; `migrate` switches a run to another version
at its next decision point (`policy_migrated`, then a re-plan there); new runs started with the
new sources run on the new workers at once. Every history replays."""

from __future__ import annotations

import asyncio
import uuid

import pytest

temporalio = pytest.importorskip("temporalio")
from temporalio.client import Client, WorkflowUpdateFailedError  # noqa: E402
from temporalio.service import RPCError  # noqa: E402
from temporalio.worker import Replayer  # noqa: E402

from intento.check import check_sources  # noqa: E402
from intento.diagnostics import Source  # noqa: E402
from intento.execute import Registry  # noqa: E402
from intento.temporal import Activities, IntentRun, migrate_runs, run_request, version_queue, worker  # noqa: E402

from .conftest import until  # noqa: E402

CHANGING = """
provider bank { region "eu" }
action lands { external; achieves x.ready; timeout 60s; via bank { latency 30s } }
action go { requires x.ready; achieves x.done; via bank { latency 10ms } }
intent job { goal x.done }
"""
TIGHTER = CHANGING + """
policy no_us "Nothing in the US" { owner "compliance@example.com"; forbid via where region == "us" }
"""


@pytest.fixture(scope="module")
def specs():
    before = check_sources([Source("c.intent", CHANGING)]).spec
    after = check_sources([Source("c.intent", TIGHTER)]).spec
    assert before.fingerprint != after.fingerprint
    return before, after


def _registry() -> Registry:
    reg = Registry()
    reg.handler("go")(lambda ctx: None)
    return reg


async def _status(handle) -> dict:
    return await handle.query(IntentRun.status)


async def _started_and_waiting_on_a_new_worker(client, queue, before, after):
    """A run started on a worker of ``before``, awaiting its fact; that worker stops; a worker of
    ``after`` serves the queue and the fact arrives: the run's re-plan waits for a worker of
    ``before``. Returns the handle and the worker of ``after`` (running)."""
    req = run_request(before, "job", {}) | {"version_notice_s": 1}
    async with worker(client, queue, Activities(before, registry=_registry())):
        handle = await client.start_workflow(IntentRun.run, req, id=f"job-{uuid.uuid4().hex[:8]}", task_queue=queue)
        await until(lambda: _awaiting(handle), "the run to await its fact")
    b = worker(client, queue, Activities(after, registry=_registry()))
    await b.__aenter__()
    await handle.execute_update(IntentRun.observe, {"fact": "x.ready"})
    view = await until(lambda: _waiting_for_version(handle), "the run to say it waits for a worker of its version")
    assert view["waits_for_version"] == before.fingerprint and view["status"] == "running" and "go" not in view["done"]
    memo = await (await handle.describe()).memo()
    assert memo["waits_on"] == f"waiting for a worker of version {before.fingerprint[:12]}"
    assert memo["project"] == before.fingerprint
    return handle, b


async def _awaiting(handle) -> bool:
    return "lands" in ((await _status(handle)).get("awaiting") or [])


async def _waiting_for_version(handle):
    view = await _status(handle)
    return view if view.get("waits_for_version") else None


async def _replay(handle) -> None:
    await Replayer(workflows=[IntentRun]).replay_workflow(await handle.fetch_history())


def test_a_worker_with_changed_policies_never_plans_a_run_of_another_version(specs, temporal_address):
    before, after = specs

    async def go():
        client = await Client.connect(temporal_address)
        queue = f"v-{uuid.uuid4().hex[:8]}"
        handle, b = await _started_and_waiting_on_a_new_worker(client, queue, before, after)
        try:
            # Still waiting with only the changed worker: nothing planned meanwhile.
            assert [e["type"] for e in (await _status(handle))["events"]].count("planned") == 1
            # A worker of the run's version comes back: the run finishes under its version.
            # (another connection: the SDK lets one client run one worker per task queue)
            again = await Client.connect(temporal_address)
            async with worker(again, queue, Activities(before, registry=_registry())):
                result = await asyncio.wait_for(handle.result(), 60)
        finally:
            await b.__aexit__(None, None, None)
        await _replay(handle)
        return result

    result = asyncio.run(go())
    assert result["status"] == "succeeded" and result["done"] == {"lands": "bank", "go": "bank"}
    plans = [e for e in result["events"] if e["type"] == "planned"]
    assert len(plans) == 2 and all(p["version"] == before.fingerprint for p in plans)
    assert not [e for e in result["events"] if e["type"] in ("project_changed", "policy_migrated")]


def test_migrate_switches_a_run_to_the_new_version_at_its_next_decision_point(specs, temporal_address):
    before, after = specs

    async def go():
        client = await Client.connect(temporal_address)
        queue = f"v-{uuid.uuid4().hex[:8]}"
        handle, b = await _started_and_waiting_on_a_new_worker(client, queue, before, after)
        try:
            # Checked at the call: a version is named; a run is not migrated to where it is.
            with pytest.raises(WorkflowUpdateFailedError):
                await handle.execute_update(IntentRun.migrate, {"to": ""})
            with pytest.raises(WorkflowUpdateFailedError, match="update"):
                await handle.execute_update(IntentRun.migrate, {"to": before.fingerprint})
            rows = await migrate_runs(client, after.fingerprint, by="ops@example.com", reason="tighter policies", task_queue=queue)
            assert rows == [{"run": handle.id, "outcome": "migrating", "from": before.fingerprint, "to": after.fingerprint}]
            result = await asyncio.wait_for(handle.result(), 60)
            memo = await (await handle.describe()).memo()
            # A finished run is not migrated (Temporal refuses updates to a closed workflow).
            with pytest.raises((WorkflowUpdateFailedError, RPCError)):
                await handle.execute_update(IntentRun.migrate, {"to": before.fingerprint})
        finally:
            await b.__aexit__(None, None, None)
        await _replay(handle)
        return result, memo

    result, memo = asyncio.run(go())
    assert result["status"] == "succeeded" and result["done"] == {"lands": "bank", "go": "bank"}
    (moved,) = [e for e in result["events"] if e["type"] == "policy_migrated"]
    assert moved["from"] == before.fingerprint and moved["to"] == after.fingerprint
    assert moved["by"] == "ops@example.com" and moved["reason"] == "tighter policies"
    plans = [e for e in result["events"] if e["type"] == "planned"]
    assert [p["version"] for p in plans] == [before.fingerprint, after.fingerprint]
    assert result["events"].index(moved) < result["events"].index(plans[1])
    assert plans[1]["reason"].startswith(f"policy migrated from {before.fingerprint[:12]} to {after.fingerprint[:12]}")
    assert memo["project"] == after.fingerprint and memo.get("waits_on") is None
    assert not [e for e in result["events"] if e["type"] == "project_changed"]


def test_a_new_run_with_the_new_sources_runs_on_the_new_workers_at_once(specs, temporal_address):
    _, after = specs

    async def go():
        client = await Client.connect(temporal_address)
        queue = f"v-{uuid.uuid4().hex[:8]}"
        async with worker(client, queue, Activities(after, registry=_registry())):
            handle = await client.start_workflow(IntentRun.run, run_request(after, "job", {}), id=f"job-{uuid.uuid4().hex[:8]}", task_queue=queue)
            await until(lambda: _awaiting(handle), "the run to await its fact")
            await handle.execute_update(IntentRun.observe, {"fact": "x.ready"})
            result = await asyncio.wait_for(handle.result(), 60)
        await _replay(handle)
        return result

    result = asyncio.run(go())
    assert result["status"] == "succeeded"
    assert {p["version"] for p in result["events"] if p["type"] == "planned"} == {after.fingerprint}


def test_version_queues_are_named_after_the_task_queue_and_the_version(specs):
    before, after = specs
    assert version_queue("intento", before.fingerprint) == "intento@" + before.fingerprint[:16]
    assert version_queue("intento", before.fingerprint) != version_queue("intento", after.fingerprint)
