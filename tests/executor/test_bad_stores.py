"""Bad stores are reported, not crashed on: a full disk, a read-only store and corrupted files
each end in one line naming the store and what is wrong, exit 1, with nothing recorded lost;
stores and key files are created owner-only."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from intento.execute import Store
from intento.execute.store import StoreError

ROOT = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).parent / "intento")
ORDERS = [ROOT / "examples" / "order_fulfilment", ROOT / "policies"]
RUN = ["-i", "fulfil_order", "-g", ROOT / "examples/order_fulfilment/requests/us_order.json", "--simulate", ROOT / "examples/order_fulfilment/scenarios/stripe_outage.json"]


def intento(*args, **env):
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, env=dict(os.environ, NO_COLOR="1", **env), timeout=300)


def _one_line(r, *words):
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert all(w in line for w in words), line


@pytest.fixture
def store_with_a_run(tmp_path):
    db = tmp_path / "runs.db"
    assert intento("run", *ORDERS, *RUN, "--store", db, "-q").returncode == 0
    return db


def test_stores_and_their_keys_are_created_owner_only(store_with_a_run):
    for p in (store_with_a_run, store_with_a_run.with_name("runs.db.audit.jsonl"), store_with_a_run.with_name("runs.db.audit.jsonl.key"), store_with_a_run.with_name("runs.db.journal.jsonl")):
        assert stat.S_IMODE(p.stat().st_mode) & 0o077 == 0, (p, oct(p.stat().st_mode))


@pytest.mark.parametrize(
    "damage, said",
    [
        (lambda p: p.write_bytes(b"this is not a database at all" * 100), "not an intento store or is corrupted"),
        (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "corrupted"),
        (lambda p: p.write_bytes(p.read_bytes()[:100] + b"\xff" * 4000 + p.read_bytes()[4100:]), "corrupted"),
        (lambda p: p.write_bytes(b""), ""),  # an empty file is a new, empty store: no runs
    ],
)
def test_corrupted_stores_are_named_by_status_and_runs(store_with_a_run, damage, said):
    db = store_with_a_run
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file, then damage it
    con.close()
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    damage(db)
    for cmd in (["status"], ["runs"], ["status", "--format", "json"]):
        r = intento(*cmd, "--store", db)
        if said:
            _one_line(r, str(db), said)
        else:
            assert r.returncode == 0 and "Traceback" not in r.stderr


def test_a_read_only_store_can_be_read_but_not_written(store_with_a_run, tmp_path):
    if os.geteuid() == 0:
        # root ignores file modes: make the store's folder a read-only mount point instead is not
        # possible here, so check the error mapping on SQLite's own read-only mode.
        con = Store(store_with_a_run)
        con.db.execute("PRAGMA query_only = ON")
        with pytest.raises(StoreError, match="read-only"):
            con.append("run-x", 1, "observation", 0, {})
        return
    os.chmod(store_with_a_run, 0o400)
    assert intento("status", "--store", store_with_a_run).returncode == 0
    _one_line(intento("run", *ORDERS, *RUN, "--store", store_with_a_run, "--key", "another"), str(store_with_a_run), "read-only")


def test_a_full_disk_names_the_cause_and_loses_nothing(store_with_a_run):
    db = store_with_a_run
    before = sqlite3.connect(db).execute("SELECT COUNT(*) FROM events").fetchone()[0]
    store = Store(db)
    # SQLite's page limit plays the full disk: the next page the store needs cannot be had.
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")
    run_id = store.runs()[0]["id"]
    seq = len(store.events(run_id)) + 1
    with pytest.raises(StoreError) as e:
        for i in range(10_000):
            store.append(run_id, seq + i, "observation", 0, {"fact": "x" * 4000})
    assert "disk is full" in str(e.value) and str(db) in str(e.value) and "no transaction is active" not in str(e.value)
    store.close()
    after = sqlite3.connect(db)
    assert after.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert after.execute("SELECT COUNT(*) FROM events").fetchone()[0] >= before


def test_an_event_written_by_hand_that_cannot_be_read_is_named_not_an_internal_error(store_with_a_run):
    db = store_with_a_run
    con = sqlite3.connect(db)
    try:
        run, seq = con.execute("SELECT run, MAX(seq) FROM events GROUP BY run").fetchone()
        con.execute("INSERT INTO events (run, seq, type, at, data) VALUES (?, ?, 'step_dispatched', 0, ?)", (run, seq + 1, '{"action": "x", "provider": "y", "attempt": 1}'))
        con.commit()
    finally:
        con.close()
    for cmd in (["status", run], ["status", run, "--format", "json"]):
        _one_line(intento(*cmd, "--store", db), f"run {run}", f"event {seq + 1} (step_dispatched) cannot be read", "no `key`")
    # The listing leaves that run out and still answers.
    r = intento("runs", "--store", db, "--format", "json")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert run not in r.stdout
