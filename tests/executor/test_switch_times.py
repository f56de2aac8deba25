"""Switching before it is too late (issue 16): an awaited external step carries the latest time
at which the best route without it still meets the deadline (`switch_at`, a durable timer in its
`step_dispatched` event); if its facts have not landed by then, the run plans around it (it stays
awaited, and a late result would be recorded). On the settlement example a late file makes the
run fetch the file by hand in time; a file that lands before the switch time does not."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

import intento
from intento.execute import Executor, Scenario, SimEnvironment, Store
from intento.execute.executor import SWITCH_MARGIN
from intento.execute.report import status_text
from intento.solve import plan_problem, prepare

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "examples" / "settlement" / "scenarios"
GIVEN = {"customer.region": "eu", "settlement.date": "2026-11-24", "settlement.expected_total": "1200000 USD"}


@pytest.fixture(scope="module")
def spec():
    return intento.load(ROOT / "examples" / "settlement", ROOT / "policies" / "common").spec


def _scenario(name: str) -> Scenario:
    return Scenario.model_validate(json.loads((SCENARIOS / name).read_text()))


def _run(spec, db: Path, scenario: Scenario, journal: Path | None = None):
    store = Store(db)
    last = max((e["at"] for r in store.runs() for e in store.events(r["id"])[-1:]), default=0)
    ex = Executor(spec, store, SimEnvironment(scenario, start=last, journal=journal), new_id=lambda: "run-switch")
    rid = ex.start("settle_daily", GIVEN, key="switch-test")
    return ex, ex.drive(rid)


def _events(store: Store, rid: str, type_: str) -> list[dict]:
    return [e for e in store.events(rid) if e["type"] == type_]


def test_a_late_file_switches_to_the_manual_fetch_in_time(spec, tmp_path):
    ex, final = _run(spec, tmp_path / "s.db", _scenario("late_file.json"))
    store = ex.store
    awaited = next(e for e in _events(store, final.run, "step_dispatched") if e["data"]["action"] == "settlement_file_lands")
    switch_at, due = awaited["data"]["switch_at"], awaited["data"]["due"]
    assert awaited["at"] < switch_at < due  # before the file's own 8 h timeout
    assert ["fetch_file_manually", "ops_desk"] in awaited["data"]["switch_to"]
    # The switch time leaves the best route without the file its declared latency, and the margin.
    problem = prepare(spec, "settle_daily", GIVEN, None, deadline_ms=final.deadline_at - awaited["at"],
                      excluded={("settlement_file_lands", "bank_sftp"): "counted out"})
    around = plan_problem(problem, explain="none")
    assert around.feasible and "fetch_file_manually" in {s.action for s in around.steps}
    assert switch_at == final.deadline_at - around.latency_ms - int(around.latency_ms * SWITCH_MARGIN)
    (switched,) = _events(store, final.run, "step_switched")
    assert switched["at"] == switch_at and switched["data"]["action"] == "settlement_file_lands"
    fetch = next(e for e in _events(store, final.run, "step_dispatched") if e["data"]["action"] == "fetch_file_manually")
    assert fetch["at"] == switch_at  # dispatched at the switch, not at the timeout
    assert final.status == "succeeded" and final.last_at <= final.deadline_at, final.outcome
    assert final.steps["fetch_file_manually"].status == "succeeded"
    # The wait it switched away from is not what the run waited on: it timed out later, without
    # another re-plan, and the run did not wait for it to end.
    plans_after = [e for e in _events(store, final.run, "planned") if e["at"] > switch_at]
    assert not any("did not arrive in time" in (e["data"].get("reason") or "") for e in plans_after)


def test_a_file_that_lands_before_the_switch_time_is_used(spec, tmp_path):
    ex, final = _run(spec, tmp_path / "s.db", _scenario("on_time.json"))
    store = ex.store
    awaited = next(e for e in _events(store, final.run, "step_dispatched") if e["data"]["action"] == "settlement_file_lands")
    assert awaited["data"].get("switch_at") is not None  # a switch time was set, and not reached
    assert not _events(store, final.run, "step_switched")
    assert "fetch_file_manually" not in final.steps and final.status == "succeeded"
    assert final.spent == 3.5


def test_the_status_says_until_when_the_run_waits_and_what_comes_then(spec, tmp_path):
    store = Store(tmp_path / "s.db")
    ex = Executor(spec, store, SimEnvironment(_scenario("late_file.json")), new_id=lambda: "run-wait")
    rid = ex.start("settle_daily", GIVEN)
    steps = ex.steps(rid)
    next(steps)  # planned, the file awaited: the run now waits for its first timer
    run = store.run(rid)
    text = status_text(run, store.events(rid), spec)
    assert "awaiting the fact of settlement_file_lands via bank_sftp" in text and ", until 5h" in text and "then fetch_file_manually via ops_desk" in text, text


def test_switch_times_survive_a_crash_before_every_write(spec, tmp_path):
    scenario = _scenario("late_file.json")
    clean = tmp_path / "clean"
    clean.mkdir()
    ex, reference = _run(spec, clean / "c.db", scenario)
    ref_switch = _events(ex.store, reference.run, "step_switched")[0]["at"]
    writes = len(ex.store.events(reference.run))
    assert writes > 8
    for k in range(1, writes + 1):
        tmp = tmp_path / f"k{k}"
        tmp.mkdir()
        db = tmp / "c.db"
        pid = os.fork()
        if pid == 0:  # the child: killed just before write k
            code = 0
            try:
                os.environ["INTENTO_CRASH_AT"] = str(k)
                _run(spec, db, scenario, tmp / "j")
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"not killed at write {k}"
        ex, final = _run(spec, db, scenario, tmp / "j")  # the same command again
        switched = _events(ex.store, final.run, "step_switched")
        assert final.status == "succeeded" and final.last_at <= final.deadline_at, (k, final.outcome)
        assert len(switched) == 1 and switched[0]["at"] == ref_switch, (k, switched)  # the same moment, once
        assert final.steps["fetch_file_manually"].status == "succeeded"
        assert ex.store.integrity() == "ok"


def test_the_plan_and_its_audit_record_say_until_when_and_replay_checks_it(spec, tmp_path):
    from intento.audit import AuditLog, read_records, replay
    from intento.plan import Plan
    from intento.render import explanation_markdown

    store = Store(tmp_path / "s.db")
    ex = Executor(spec, store, SimEnvironment(_scenario("late_file.json")), audit=AuditLog(tmp_path / "a.jsonl"), new_id=lambda: "run-audited")
    final = ex.drive(ex.start("settle_daily", GIVEN))
    first = _events(store, final.run, "planned")[0]
    awaited = next(e for e in _events(store, final.run, "step_dispatched") if e["data"]["action"] == "settlement_file_lands")
    (sw,) = first["data"]["switches"]
    assert sw["action"] == "settlement_file_lands" and sw["switch_at"] == awaited["data"]["switch_at"]  # the plan's moment is the one waited for
    rec = read_records(tmp_path / "a.jsonl")[0][0]
    (recorded,) = rec["plan"]["explanation"]["switches"]
    assert recorded["at_ms"] == sw["switch_at"] - final.started_at and recorded["then"] == ["fetch_file_manually via ops_desk"]
    assert "## Switch times" in explanation_markdown(Plan.model_validate(rec["plan"]), spec, GIVEN)
    assert all(r.same for r in replay(tmp_path / "a.jsonl", spec))
    # A record whose switch time was changed does not replay as the same decision.
    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    bad = json.loads(lines[0])
    bad["plan"]["explanation"]["switches"][0]["at_ms"] += 1
    (tmp_path / "b.jsonl").write_text(json.dumps(bad) + "\n")
    assert not replay(tmp_path / "b.jsonl", spec)[0].same


def test_a_wider_switch_margin_switches_earlier_and_replays(spec, tmp_path):
    # `--switch-margin 1.0`: the switch time leaves room for the route around the file twice
    # (its failure and a retry). The decision records the margin, and replay uses it.
    from intento.audit import AuditLog, read_records, replay

    runs = {}
    for margin in (None, 1.0):
        store = Store(tmp_path / f"m{margin}.db")
        ex = Executor(spec, store, SimEnvironment(_scenario("late_file.json")), audit=AuditLog(tmp_path / f"m{margin}.jsonl"), new_id=lambda: "run-m", switch_margin=margin)
        final = ex.drive(ex.start("settle_daily", GIVEN))
        awaited = next(e for e in _events(store, final.run, "step_dispatched") if e["data"]["action"] == "settlement_file_lands")
        runs[margin] = (final, awaited, _events(store, final.run, "planned")[0])
    (default, d_await, _), (wide, w_await, w_plan) = runs[None], runs[1.0]
    route = default.deadline_at - d_await["data"]["switch_at"]  # the route and a fifth of it
    problem = prepare(spec, "settle_daily", GIVEN, None, deadline_ms=wide.deadline_at - w_await["at"], excluded={("settlement_file_lands", "bank_sftp"): "counted out"})
    around = plan_problem(problem, explain="none").latency_ms
    assert route == around + int(around * SWITCH_MARGIN)
    assert w_await["data"]["switch_at"] == wide.deadline_at - 2 * around
    assert read_records(tmp_path / "mNone.jsonl")[0][0]["inputs"]["switch_margin"] == SWITCH_MARGIN
    assert read_records(tmp_path / "m1.0.jsonl")[0][0]["inputs"]["switch_margin"] == 1.0
    assert [s["switch_at"] for s in w_plan["data"]["switches"]] == [w_await["data"]["switch_at"]]
    assert wide.status == "succeeded" and wide.steps["fetch_file_manually"].status == "succeeded"
    assert all(r.same for r in replay(tmp_path / "m1.0.jsonl", spec))
    # Replayed with the default margin instead, the recorded switch time is not reproduced.
    lines = (tmp_path / "m1.0.jsonl").read_text().splitlines()
    rec = json.loads(lines[0])
    rec["inputs"].pop("switch_margin")
    (tmp_path / "c.jsonl").write_text(json.dumps(rec) + "\n")
    assert not replay(tmp_path / "c.jsonl", spec)[0].same
