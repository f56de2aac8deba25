"""The run lifecycle from the command line: `runs` filters and wait groups, `cancel` (driven
now, or queued for a run nobody drives), `status --follow`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from intento.execute import Store
from tests.executor.test_durable_waits import PROJECT

ROOT = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).parent / "intento")
HANDLERS = "tests.executor.wait_handlers:registry"
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def _intento(*args, timeout=120):
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=timeout)


def _until(check, what: str, seconds: float = 60.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _awaiting(db: Path, n: int):
    if not db.exists():
        return None
    s = Store(db)
    try:
        runs = s.runs()
        ok = len(runs) >= n and all(any(e["type"] == "step_dispatched" and e["data"].get("external") for e in s.events(r["id"])) for r in runs)
        return [r["id"] for r in sorted(runs, key=lambda r: r["key"])] if ok else None  # by key: k0, k1
    finally:
        s.close()


def test_runs_cancel_and_follow(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "p.intent").write_text(PROJECT)
    db = tmp_path / "s.db"
    procs = [subprocess.Popen([EXE, "run", str(project), "-i", "settle", "--handlers", HANDLERS, "--store", str(db), "-q", "--key", f"k{i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT) for i in range(2)]
    try:
        ids = _until(lambda: _awaiting(db, 2), "both runs to await their fact")
        listed = _intento("runs", "--store", db, "--status", "running", "--format", "json")
        page = json.loads(listed.stdout)
        assert page["total"] == 2 and page["waits"][0]["waits_on"] == "waiting for file.received" and page["waits"][0]["count"] == 2
        text = _intento("runs", "--store", db).stdout
        assert "2 runs waiting for file.received" in text
        assert json.loads(_intento("runs", "--store", db, "--status", "succeeded", "--format", "json").stdout)["total"] == 0
        assert json.loads(_intento("runs", "--store", db, "--intent", "nope", "--format", "json").stdout)["total"] == 0
        # cancel a run its `intento run` drives: it ends cancelled, the prepare undone
        done = _intento("cancel", ids[0], "--store", db, "--reason", "not needed")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "cancelled" in done.stdout and "compensated" in done.stdout
        driver = procs[[p.args[-1] for p in procs].index("k0")]
        assert driver.wait(timeout=60) == 4  # `intento run` of a cancelled run exits 4
        view = json.loads(_intento("status", ids[0], "--store", db, "--format", "json").stdout)
        assert view["status"] == "cancelled" and view["outcome"]["cancelled"]["reason"] == "not needed"
        # the other run's driver is killed: a cancel is queued, and carried out when an engine drives it
        other = procs[[p.args[-1] for p in procs].index("k1")]
        other.send_signal(signal.SIGKILL)
        other.wait(timeout=30)
        queued = _intento("cancel", ids[1], "--store", db, "--wait", "0")
        assert queued.returncode == 4 and "no engine drives the run now" in queued.stdout
        resumed = _intento("resume", project, "--store", db, "--handlers", HANDLERS, "-q")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        followed = _intento("status", ids[1], "--store", db, "--follow")
        assert followed.returncode == 0 and "CANCELLED" in followed.stdout and "undone prepare" in followed.stdout
        lines = _intento("status", ids[1], "--store", db, "--follow", "--format", "json").stdout.splitlines()
        assert [json.loads(x)["seq"] for x in lines] == list(range(1, len(lines) + 1)) and json.loads(lines[-1])["type"] == "cancelled"
        again = _intento("cancel", ids[1], "--store", db)
        assert again.returncode == 1 and "already finished" in again.stderr
        assert _intento("cancel", "nope", "--store", db).returncode == 1
        assert _intento("runs", "--store", db, "--status", "cancelled", "--format", "json").stdout.count('"run":') == 2
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
