"""`intento audit replay` of a run's own log: every decision of `make demo`'s runs replays
identically, whatever path the same sources are given by; nothing to replay is an error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).parent / "intento")

RUNS = {
    "orders": (
        ["examples/order_fulfilment", "policies"],
        ["-i", "fulfil_order", "-g", "examples/order_fulfilment/requests/us_order.json", "--simulate", "examples/order_fulfilment/scenarios/stripe_outage.json"],
    ),
    "quote": (
        ["examples/insurance_quote", "policies/common"],
        ["-i", "progress_quote", "-g", "examples/insurance_quote/requests/large_premium.json", "--simulate", "examples/insurance_quote/scenarios/model_down.json"],
    ),
}


def intento(*args, cwd=ROOT):
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=dict(os.environ, NO_COLOR="1"), timeout=300)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_the_demo_runs_replay_identically_by_any_path(tmp_path, name):
    project, request = RUNS[name]
    db = tmp_path / f"{name}.db"
    r = intento("run", *project, *request, "--store", db, "-q")
    assert r.returncode == 0, r.stdout + r.stderr
    log = tmp_path / f"{name}.db.audit.jsonl"
    plans = sum(1 for line in log.read_text().splitlines() if line.strip())
    assert plans >= 3  # a first plan and re-plans after failures and observations
    for paths in (project, [f"./{p}/" for p in project], [ROOT / p for p in project]):
        replayed = intento("audit", "replay", log, *paths)
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        assert f"{plans} of {plans} decisions replay identically (same sources)" in replayed.stdout


def test_nothing_to_replay_is_an_error(tmp_path):
    garbage, empty = tmp_path / "garbage.jsonl", tmp_path / "empty.jsonl"
    garbage.write_text("not json\n[1, 2]\n")
    empty.write_text("")
    for log, said in ((garbage, "holds no audit record"), (empty, "is empty"), (tmp_path / "missing.jsonl", "no audit log")):
        r = intento("audit", "replay", log, "examples/order_fulfilment", "policies")
        assert r.returncode == 1 and said in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert "0 of 0" not in r.stdout


@pytest.mark.parametrize("name", sorted(RUNS))
def test_policy_diff_reads_a_runs_audit_log_and_an_unchanged_set_changes_nothing(tmp_path, name):
    project, request = RUNS[name]
    db = tmp_path / f"{name}.db"
    assert intento("run", *project, *request, "--store", db, "-q").returncode == 0
    policies, rest = project[1], project[0]
    r = intento("policy", "diff", policies, policies, "--with", rest, "--cases", tmp_path / f"{name}.db.audit.jsonl", "--fail-on-change")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 of" in r.stdout and "cannot plan" not in r.stdout
