"""Policy impact and rollout on Temporal (issue 17), through the CLI as an operator runs them,
against the real dev server: three runs in flight on the current version (the project as is),
workers of the new version (the same project with a tightened residency set, `--policies`)
beside the current ones; `intento policy impact --engine temporal` says which run changes, which
stays the same and which would have no plan (exit 1); `intento policy rollout --mode
migrate-if-feasible` migrates the first two (recorded in their events with the label and what the
impact said) and leaves the third on its version; what then happens matches the impact report;
`--mode migrate` moves an infeasible run too, which then gives up on the new version. Every
history replays."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import uuid

import pytest

temporalio = pytest.importorskip("temporalio")
from temporalio.client import Client  # noqa: E402
from temporalio.worker import Replayer  # noqa: E402

from intento.audit import AuditLog  # noqa: E402
from intento.check import check_paths  # noqa: E402
from intento.execute import Registry  # noqa: E402
from intento.temporal import Activities, IntentRun, run_request, worker  # noqa: E402
from intento.temporal._commands import outcome, start_or_join  # noqa: E402
from intento.versions import load_policy_set, with_policy_set  # noqa: E402

from .conftest import INTENTO, until, wait_for  # noqa: E402

PROJECT = """
provider hq { region "us" }
provider eu1 { region "eu" }
provider us1 { region "us" }
action pack { achieves order.packed; via hq { cost 1 USD; latency 10ms } }
action ship { requires order.packed; achieves order.shipped; via eu1 { cost 1 USD; latency 10ms } via us1 { cost 3 USD; latency 10ms } }
action insure { requires order.packed; achieves order.insured; via eu1 { cost 1 USD; latency 10ms } }
intent deliver { given customer.region: string; goal order.shipped; minimize cost }
intent deliver_insured { given customer.region: string; goal order.shipped and order.insured; minimize cost }
"""
TIGHT = """
policy us_data_stays_in_us "US customer data stays in US-region providers" {
  when customer.region == "us"
  forbid via where region != "us"
}
"""


@pytest.fixture
def project(tmp_path):
    (tmp_path / "project.intent").write_text(PROJECT)
    (tmp_path / "tight").mkdir()
    (tmp_path / "tight" / "residency.intent").write_text(TIGHT)
    current = check_paths([tmp_path / "project.intent"]).spec
    new = with_policy_set(current, load_policy_set(tmp_path / "tight"))
    assert current.fingerprint != new.fingerprint
    return tmp_path, current, new


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([INTENTO, *map(str, args)], capture_output=True, text=True, timeout=120)


async def _packing(handle) -> bool:
    return "pack" in (await handle.query(IntentRun.status))["running"]


def _play(temporal_address, tmp, current, new, runs: list[tuple[str, str]], operate):
    """Start ``runs`` (intent, region) on the current version with `pack` held in flight, with
    workers of both versions up; call ``operate(queue)`` (the CLI), release `pack`, and return
    each run's outcome."""
    gate = threading.Event()
    reg = Registry()
    reg.handler("pack")(lambda ctx: gate.wait(60) and None)
    for a in ("ship", "insure"):
        reg.handler(a)(lambda ctx: None)
    queue = f"roll-{uuid.uuid4().hex[:8]}"

    async def go():
        client = await Client.connect(temporal_address)
        other = await Client.connect(temporal_address)  # one worker per client and task queue
        logs = (AuditLog(tmp / "current.audit.jsonl"), AuditLog(tmp / "new.audit.jsonl"))
        async with worker(client, queue, Activities(current, registry=reg, audit=logs[0])), worker(other, queue, Activities(new, registry=reg, audit=logs[1])):
            handles = []
            for intent, region in runs:
                req = run_request(current, intent, {"customer.region": region})
                handle, _ = await start_or_join(client, req, f"{intent}-{region}-{uuid.uuid4().hex[:6]}", queue)
                handles.append(handle)
            for h in handles:
                await until(lambda h=h: _packing(h), "`pack` to be in flight")
            said = await asyncio.to_thread(operate, queue)
            gate.set()
            got = [await asyncio.wait_for(outcome(h), 60) for h in handles]
            for h in handles:
                await Replayer(workflows=[IntentRun]).replay_workflow(await h.fetch_history())
            return said, [h.id for h in handles], got

    try:
        return asyncio.run(go())
    finally:
        gate.set()


def _migrated(result: dict) -> list[dict]:
    return [e for e in result["events"] if e["type"] == "policy_migrated"]


def test_impact_then_a_migrate_if_feasible_rollout_on_temporal(temporal_address, project):
    tmp, current, new = project
    conn = ["--engine", "temporal", "--project", tmp / "project.intent", "--temporal", temporal_address]

    def operate(queue):
        impact = _cli("policy", "impact", tmp / "tight", *conn, "--task-queue", queue, "--format", "json")
        text = _cli("policy", "impact", tmp / "tight", *conn, "--task-queue", queue)
        roll = _cli("policy", "rollout", tmp / "tight", *conn, "--task-queue", queue, "--mode", "migrate-if-feasible", "--label", "us-residency", "--by", "compliance", "--format", "json")
        # Run again (as after a rollout command killed midway): nothing is migrated twice.
        again = _cli("policy", "rollout", tmp / "tight", *conn, "--task-queue", queue, "--mode", "migrate-if-feasible", "--label", "us-residency", "--format", "json")
        first = next(r["run"] for r in json.loads(roll.stdout)["runs"] if r["impact"] == "changed")  # run A
        # The migration is recorded at the run's next decision point: at once, as it waits for a step.
        shown = wait_for(lambda: (r := _cli("status", first, "--engine", "temporal", "--temporal", temporal_address)) and "migrated at" in r.stdout and r, "the migration to show")
        return impact, text, roll, again, shown

    (impact, text, roll, again, shown), ids, got = _play(temporal_address, tmp, current, new, [("deliver", "us"), ("deliver", "eu"), ("deliver_insured", "us")], operate)
    a, b, c = ids
    # Impact: exit 1 (a run would have no plan), each run judged under both versions.
    assert impact.returncode == 1, impact.stderr
    report = json.loads(impact.stdout)
    assert report["current_version"] == current.fingerprint and report["new_version"] == new.fingerprint
    rows = {r["run"]: r for r in report["runs"]}
    assert rows[a]["impact"] == "changed" and rows[a]["moves"] == ["ship: eu1 -> us1"] and rows[a]["delta"]["cost"] == "2"
    assert rows[b]["impact"] == "unchanged"
    assert rows[c]["impact"] == "infeasible" and "us_data_stays_in_us" in {m["policy"] for m in rows[c]["conflict"]}
    assert report["counts"] == {"unchanged": 1, "changed": 1, "infeasible": 1, "unknown": 0} and report["breaks"] == 1
    assert text.returncode == 1 and f"{a} (deliver, on " in text.stdout and "1 no longer feasible" in text.stdout
    # Rollout: the feasible runs migrate, the infeasible one stays on its version.
    assert roll.returncode == 0, roll.stderr
    outcomes = {r["run"]: r["outcome"] for r in json.loads(roll.stdout)["runs"]}
    assert outcomes == {a: "migrates", b: "migrates", c: "stays"}
    assert again.returncode == 0 and {r["run"]: (r["outcome"], r.get("already")) for r in json.loads(again.stdout)["runs"]} == {a: ("stays", True), b: ("stays", True), c: ("stays", None)}
    ra, rb, rc = got
    # What happened matches the impact: A shipped as the new plan said, B as before, C on its version.
    assert ra["status"] == "succeeded" and ra["done"] == rows[a]["new"]["steps"] == {"pack": "hq", "ship": "us1"}
    assert rb["status"] == "succeeded" and rb["done"] == rows[b]["new"]["steps"] == rows[b]["current"]["steps"]
    assert rc["status"] == "succeeded" and rc["done"] == {"pack": "hq", "ship": "eu1", "insure": "eu1"} and not _migrated(rc)
    for r in (ra, rb):
        (m,) = _migrated(r)
        assert m["from"] == current.fingerprint and m["to"] == new.fingerprint and m["label"] == "us-residency" and m["by"] == "compliance"
        assert (m["added"], m["removed"], m["changed"]) == (["us_data_stays_in_us"], [], [])
        replan = [e for e in r["events"] if e["type"] == "planned"][-1]
        assert replan["reason"].endswith("(policy rollout (migrate-if-feasible)): added us_data_stays_in_us"), replan["reason"]
        # The decisions after the migration were judged by the new version.
        assert [e["version"] for e in r["events"] if e["type"] == "planned"][-1] == new.fingerprint
    assert _migrated(ra)[0]["impact"]["moves"] == ["ship: eu1 -> us1"]
    # `intento status --engine temporal` showed the run's version and its migration.
    assert shown.returncode == 0 and f"version: {new.fingerprint[:12]}" in shown.stdout, shown.stdout + shown.stderr
    assert f"{current.fingerprint[:12]} -> us-residency ({new.fingerprint[:12]}) by compliance" in shown.stdout
    # Each worker's audit log replays against its own version; the new version's decisions do not
    # replay against the current one (the tightened rule moved A's shipping).
    assert _cli("audit", "replay", tmp / "current.audit.jsonl", tmp / "project.intent").returncode == 0
    assert _cli("audit", "replay", tmp / "new.audit.jsonl", tmp / "project.intent", "--policies", tmp / "tight").returncode == 0
    assert _cli("audit", "replay", tmp / "new.audit.jsonl", tmp / "project.intent").returncode == 1


def test_a_migrate_rollout_moves_an_infeasible_run_which_then_gives_up(temporal_address, project):
    tmp, current, new = project
    conn = ["--engine", "temporal", "--project", tmp / "project.intent", "--temporal", temporal_address]

    def operate(queue):
        return _cli("policy", "rollout", tmp / "tight", *conn, "--task-queue", queue, "--mode", "migrate")

    roll, (c,), (rc,) = _play(temporal_address, tmp, current, new, [("deliver_insured", "us")], operate)
    assert roll.returncode == 0 and roll.stdout.splitlines()[1].startswith(f"escalates {c} (deliver_insured, on "), roll.stdout + roll.stderr
    assert rc["status"] == "escalated" and "us_data_stays_in_us" in {m["policy"] for m in rc["conflict"]}
    assert _migrated(rc)[0]["to"] == new.fingerprint


def test_policy_commands_on_temporal_need_the_project(tmp_path):
    (tmp_path / "tight").mkdir()
    (tmp_path / "tight" / "residency.intent").write_text(TIGHT)
    got = _cli("policy", "impact", tmp_path / "tight", "--engine", "temporal")
    assert got.returncode == 1 and "--project" in got.stderr and "Traceback" not in got.stderr
    got = _cli("policy", "rollout", tmp_path / "tight", "--engine", "temporal", "--project", tmp_path / "tight", "--mode", "migrate", "--task-queue", "q' OR 1=1")
    assert got.returncode == 1 and "no quotes" in got.stderr and "Traceback" not in got.stderr
    got = _cli("policy", "impact", tmp_path / "tight", "--engine", "temporal", "--project", tmp_path / "tight", "--cases", tmp_path / "cases.json")
    assert got.returncode == 1 and "policy diff" in got.stderr and "Traceback" not in got.stderr
