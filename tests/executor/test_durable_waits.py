"""Every wait is durable: an awaited external fact, its timeout and the deadline are derived from
the run's events, so a run killed while it waits finishes after a restart, on the fact, whenever
the fact arrives (before the restart, through the inbox, or after it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import intento
from intento.execute import Executor, Scenario, SimEnvironment, Store
from tests.executor.test_runtime_promises import DEADLINE

ROOT = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).parent / "intento")

# The deadline tests' project (an undoable `prepare`, then a bank file awaited up to 3 h), with
# an intent whose deadline leaves time for the file.
PROJECT = DEADLINE + """
intent settle {
  goal file.received
  deadline 5h
  minimize cost
}
"""


@pytest.fixture
def project(tmp_path):
    d = tmp_path / "project"
    d.mkdir()
    (d / "p.intent").write_text(PROJECT)
    return d


def _drive(spec, db: Path, scenario: Scenario):
    store = Store(db)
    last = max((e["at"] for r in store.runs() for e in store.events(r["id"])[-1:]), default=0)
    ex = Executor(spec, store, SimEnvironment(scenario, start=last, journal=db.with_suffix(".journal")), new_id=lambda: "run-wait")
    return ex.drive(ex.start("settle", {}, key="wait-test")), store


@pytest.mark.parametrize("fact_at", ["20m", None])  # from the scenario, or after the option's latency
def test_killed_before_any_write_the_same_command_finishes_on_the_fact(project, tmp_path, fact_at):
    spec = intento.load(project).spec
    scenario = Scenario.model_validate({"seed": 4, "facts": {"file.received": {"at": fact_at}}} if fact_at else {"seed": 4})
    reference, store = _drive(spec, tmp_path / "ref.db", scenario)
    assert reference.status == "succeeded"
    writes = len(store.events("run-wait"))
    for k in range(1, writes + 1):
        db = tmp_path / f"k{k}.db"
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.environ["INTENTO_CRASH_AT"] = str(k)
                _drive(spec, db, scenario)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"write {k} was not reached"
        final, store = _drive(spec, db, scenario)
        assert final.status == "succeeded", (k, final.outcome, [e["type"] for e in store.events("run-wait")])
        assert final.steps["file_arrives"].status == "succeeded"


def _intento(*args, **kw):
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=str(ROOT))
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, **kw)


def _wait_for(cond, what: str, seconds: float = 60):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_real_run_killed_while_waiting_finishes_after_the_fact_is_observed(project, tmp_path):
    db = tmp_path / "real.db"
    handlers = "tests.executor.wait_handlers:registry"
    proc = subprocess.Popen(
        [EXE, "run", project, "-i", "settle", "--handlers", handlers, "--store", db, "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT,
    )
    try:
        def awaiting():
            if not db.exists():
                return None
            s = Store(db)
            try:
                runs = s.runs()
                if not runs:
                    return None
                events = s.events(runs[0]["id"])
                return runs[0]["id"] if any(e["type"] == "step_dispatched" and e["data"].get("external") for e in events) else None
            finally:
                s.close()

        run_id = _wait_for(awaiting, "the run to await its external fact")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    status = _intento("status", run_id, "--store", db)
    assert status.returncode == 0 and "NOT DRIVEN" in status.stdout and "awaiting the fact of file_arrives" in status.stdout, status.stdout
    # the fact arrives while nobody drives the run; a restart picks it up from the inbox
    assert _intento("observe", run_id, "--fact", "file.received", "--store", db).returncode == 0
    resumed = _intento("resume", project, "--store", db, "--handlers", handlers, "-q")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    final = _intento("status", run_id, "--store", db, "--format", "json")
    import json

    view = json.loads(final.stdout)
    assert view["status"] == "succeeded" and view["steps"]["file_arrives"]["status"] == "succeeded"
