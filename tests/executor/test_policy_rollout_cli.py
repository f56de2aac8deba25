"""`intento policy impact` and `intento policy rollout` from the command line, against a real
`intento serve` driving waiting runs, killed with SIGKILL in the middle of a migrating rollout:
after a restart every run has migrated exactly once, planned on the new version as the impact
report said, and every decision replays against its own version's texts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from intento.execute import Store
from tests.executor.test_policy_versions import BREAKS, CHANGED, GIVEN, _until

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "rollout-test-token"
PROJECT = ["examples/settlement", "policies/common"]



def _intento(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "intento", *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")))


def _serve(store: Path, log: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, INTENTO_TOKEN=TOKEN, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "intento", "serve", *PROJECT, "--handlers", "tests.console.settlement_handlers:registry",
                             "--store", str(store), "--port", str(port)], cwd=ROOT, env=env, stdout=open(log, "a"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def ready():
        if proc.poll() is not None:
            raise AssertionError(f"intento serve stopped: {log.read_text()}")
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    _until(ready, "intento serve to be ready")
    return proc, base


def _start(base: str, i: int) -> str:
    body = {"intent": "settle_daily", "given": dict(GIVEN, **{"settlement.date": f"2026-11-{i + 1:02d}"})}
    req = urllib.request.Request(base + "/v1/runs", method="POST", data=json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["run"]


def _types(db: Path, rid: str) -> list[str]:
    s = Store(db)
    try:
        return [e["type"] for e in s.events(rid)]
    finally:
        s.close()


def test_a_rollout_survives_a_kill_and_does_what_its_impact_said(tmp_path):
    db, log = tmp_path / "s.db", tmp_path / "serve.log"
    (tmp_path / "changed").mkdir()
    (tmp_path / "changed" / "p.intent").write_text(CHANGED)
    (tmp_path / "breaks.intent").write_text(BREAKS)
    proc, base = _serve(db, log)
    try:
        ids = [_start(base, i) for i in range(6)]
        for rid in ids:
            _until(lambda rid=rid: "step_dispatched" in _types(db, rid), f"{rid} to wait for the file")

        broken = _intento("policy", "impact", str(tmp_path / "breaks.intent"), "--store", str(db))
        assert broken.returncode == 1, broken.stdout + broken.stderr
        assert "6 no longer feasible" in broken.stdout and "transform_file" in broken.stdout

        audit = db.with_name(db.name + ".audit.jsonl")
        new_runs = _intento("policy", "impact", str(tmp_path / "breaks.intent"), "--store", str(db), "--cases", str(audit))
        assert new_runs.returncode == 1 and "6 of 6 plans change, 6 no longer feasible" in new_runs.stdout, new_runs.stdout + new_runs.stderr

        said = _intento("policy", "impact", str(tmp_path / "changed"), "--store", str(db), "--format", "json", "--cases", str(audit))
        assert said.returncode == 0, said.stderr
        report = json.loads(said.stdout)
        rows = {r["run"]: r for r in report["runs"]}
        assert set(rows) == set(ids) and report["counts"]["changed"] == 6
        assert report["cases"]["changed"] == 6 and report["cases"]["breaks"] == 0

        out = _intento("policy", "rollout", str(tmp_path / "changed"), "--store", str(db), "--mode", "migrate", "--label", "retire-eu-cluster", "--by", "test")
        assert out.returncode == 0 and "rollout 1 recorded" in out.stdout, out.stdout + out.stderr
        assert out.stdout.count("migrates") == 6
        # Kill the engine as soon as the first run has migrated: mid-rollout.
        _until(lambda: any("policy_migrated" in _types(db, r) for r in ids), "a first migration")
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    proc, base = _serve(db, log)
    try:
        for rid in ids:
            _until(lambda rid=rid: "policy_migrated" in _types(db, rid) and _types(db, rid)[-1] in ("planned", "step_dispatched"), f"{rid} to migrate and re-plan")
        store = Store(db)
        for rid in ids:
            evs = store.events(rid)
            assert [e["type"] for e in evs].count("policy_migrated") == 1
            mig = next(e["data"] for e in evs if e["type"] == "policy_migrated")
            assert mig["to"] == rows[rid]["new_version"] and mig["to_label"] == "retire-eu-cluster"
            after = [e["data"] for e in evs if e["type"] == "planned"][-1]
            assert after["version"] == mig["to"] and {s["action"]: s["provider"] for s in after["steps"]} == rows[rid]["new"]["steps"]
            assert after["cost"] == rows[rid]["new"]["cost"]
        store.close()
        status = _intento("status", ids[0], "--store", str(db))
        assert status.returncode == 0 and "migrated by rollout 1 (migrate)" in status.stdout and "retire-eu-cluster" in status.stdout, status.stdout
        listed = _intento("policy", "rollouts", "--store", str(db), "--format", "json")
        assert json.loads(listed.stdout)["rollouts"][0]["mode"] == "migrate"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    replay = _intento("audit", "replay", str(audit), *PROJECT, "--store", str(db))
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "replay identically (same sources)" in replay.stdout


def test_bad_input_is_a_located_error_not_a_traceback(tmp_path):
    db = tmp_path / "s.db"
    Store(db).close()
    mixed = _intento("policy", "rollout", "examples/settlement", "--store", str(db), "--mode", "migrate")
    assert mixed.returncode == 1 and "E130" in mixed.stderr + mixed.stdout and "Traceback" not in mixed.stderr
    mode = _intento("policy", "rollout", "policies/common", "--store", str(db), "--mode", "sometimes")
    assert mode.returncode == 2 and "Traceback" not in mode.stderr
    missing = _intento("policy", "impact", "policies/common", "--store", str(tmp_path / "none.db"))
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    empty = _intento("policy", "impact", "policies/common", "--store", str(db))
    assert empty.returncode == 0 and "0 unfinished runs" in empty.stdout
