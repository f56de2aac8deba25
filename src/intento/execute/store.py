"""The embedded durable store: runs and their event logs in SQLite.

Input: events to append, queries. Output: the events, in order, exactly as written.

Durability: WAL journal, ``synchronous=FULL``, one transaction per event, so an event that
`append` returned from survives a crash (SIGKILL, power loss as far as fsync goes). The schema is
versioned; `MIGRATIONS` bring an older file forward. Appends are optimistic: the next sequence
number is checked inside the transaction, so two writers can never interleave one run's log.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Protocol

SCHEMA_VERSION = 2

MIGRATIONS = {
    1: [
        """CREATE TABLE IF NOT EXISTS runs (
            id TEXT PRIMARY KEY,
            key TEXT UNIQUE,
            intent TEXT NOT NULL,
            project TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            status TEXT NOT NULL,
            updated_at INTEGER NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS events (
            run TEXT NOT NULL REFERENCES runs(id),
            seq INTEGER NOT NULL,
            type TEXT NOT NULL,
            at INTEGER NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (run, seq)
        )""",
        # Secret given values live apart from the event log, which only ever holds their keyed hash.
        """CREATE TABLE IF NOT EXISTS run_secrets (
            run TEXT NOT NULL REFERENCES runs(id),
            name TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (run, name)
        )""",
        # Observations sent by other processes (`intento observe`, the API); the executor driving
        # the run moves them into the run's own event log, so the log has a single writer.
        """CREATE TABLE IF NOT EXISTS inbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run TEXT NOT NULL REFERENCES runs(id),
            data TEXT NOT NULL,
            taken INTEGER NOT NULL DEFAULT 0
        )""",
    ],
    2: [
        # Who drives each run: the driving process beats this row; a run whose driver stopped
        # beating (or whose process is gone) is shown as not driven (`intento status`).
        """CREATE TABLE IF NOT EXISTS drivers (
            run TEXT PRIMARY KEY REFERENCES runs(id),
            owner TEXT NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            since INTEGER NOT NULL,
            heartbeat INTEGER NOT NULL
        )""",
        # Which clock a run's times are on: `wall` (ms since the epoch) or `virtual` (a simulation's).
        "ALTER TABLE runs ADD COLUMN clock TEXT NOT NULL DEFAULT 'wall'",
    ],
}

#: How often a driver beats its runs' rows, and after how long without a beat a run counts as
#: not driven (wall-clock ms; a driver on this host whose process is gone counts at once).
HEARTBEAT_MS = 1_000
DRIVER_EXPIRY_MS = 15_000

TERMINAL = ("succeeded", "escalated", "failed")


class EventStore(Protocol):
    """What the executor needs of a store; `Store` (SQLite) is the first implementation."""

    def create_run(self, run_id: str, key: str, intent: str, project: str, at: int, secrets: dict[str, str], first: dict[str, Any], clock: str = "wall") -> bool: ...
    def append(self, run_id: str, seq: int, type_: str, at: int, data: dict[str, Any], status: str | None = None) -> None: ...
    def events(self, run_id: str) -> list[dict]: ...
    def runs(self) -> list[dict]: ...
    def run(self, run_id: str) -> dict | None: ...
    def run_by_key(self, key: str) -> dict | None: ...
    def secrets(self, run_id: str) -> dict[str, str]: ...


class StoreError(Exception):
    pass


class _Crash:
    """Fault injection for crash tests: ``INTENTO_CRASH_AT=k`` kills the process with SIGKILL just
    before the k-th event write of this process commits (1-based)."""

    def __init__(self) -> None:
        raw = os.environ.get("INTENTO_CRASH_AT")
        self.at = int(raw) if raw and raw.isdigit() else None
        self.writes = 0

    def before_commit(self) -> None:
        self.writes += 1
        if self.at is not None and self.writes == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._crash = _Crash()
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def _migrate(self) -> None:
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                row = self.db.execute("SELECT version FROM schema_version").fetchone()
                current = row[0] if row else 0
                if current > SCHEMA_VERSION:
                    raise StoreError(f"{self.path} was written by a newer intento (schema {current}); upgrade intento")
                for v in range(current + 1, SCHEMA_VERSION + 1):
                    for stmt in MIGRATIONS[v]:
                        self.db.execute(stmt)
                if row is None:
                    self.db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
                else:
                    self.db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self.db.close()

    # -- runs --
    def create_run(self, run_id: str, key: str, intent: str, project: str, at: int, secrets: dict[str, Any], first: dict[str, Any], clock: str = "wall") -> bool:
        """Create a run with its first event (``run_started``) in one transaction, so a crash
        leaves either both or neither; False (and nothing written) if the key exists."""
        body = json.dumps(first, sort_keys=True, separators=(",", ":"), default=str)
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                if self.db.execute("SELECT 1 FROM runs WHERE key = ?", (key,)).fetchone():
                    self.db.execute("ROLLBACK")
                    return False
                self.db.execute(
                    "INSERT INTO runs (id, key, intent, project, created_at, status, updated_at, clock) VALUES (?, ?, ?, ?, ?, 'running', ?, ?)",
                    (run_id, key, intent, project, at, at, clock),
                )
                self.db.execute("INSERT INTO events VALUES (?, 1, 'run_started', ?, ?)", (run_id, at, body))
                for name, value in secrets.items():
                    self.db.execute("INSERT INTO run_secrets VALUES (?, ?, ?)", (run_id, name, encode_secret(value)))
                self._crash.before_commit()
                self.db.execute("COMMIT")
                return True
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def run_by_key(self, key: str) -> dict | None:
        row = self.db.execute("SELECT id, key, intent, project, created_at, status, updated_at, clock FROM runs WHERE key = ?", (key,)).fetchone()
        return _run(row)

    def run(self, run_id: str) -> dict | None:
        row = self.db.execute("SELECT id, key, intent, project, created_at, status, updated_at, clock FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _run(row)

    def runs(self) -> list[dict]:
        rows = self.db.execute("SELECT id, key, intent, project, created_at, status, updated_at, clock FROM runs ORDER BY created_at, id").fetchall()
        return [_run(r) for r in rows]

    def secrets(self, run_id: str) -> dict[str, Any]:
        """A run's secret given values, each with its JSON type (as `values.to_json` wrote it)."""
        return {n: decode_secret(v) for n, v in self.db.execute("SELECT name, value FROM run_secrets WHERE run = ?", (run_id,)).fetchall()}

    # -- events --
    def append(self, run_id: str, seq: int, type_: str, at: int, data: dict[str, Any], status: str | None = None) -> None:
        """Append event ``seq`` (must be the next one) in its own durable transaction."""
        body = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                last = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM events WHERE run = ?", (run_id,)).fetchone()[0]
                if seq != last + 1:
                    raise StoreError(f"run {run_id}: event {seq} would not follow event {last} (another executor is driving this run)")
                self.db.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?)", (run_id, seq, type_, at, body))
                if status is not None:
                    self.db.execute("UPDATE runs SET status = ?, updated_at = ? WHERE id = ?", (status, at, run_id))
                else:
                    self.db.execute("UPDATE runs SET updated_at = ? WHERE id = ?", (at, run_id))
                self._crash.before_commit()
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def events(self, run_id: str) -> list[dict]:
        rows = self.db.execute("SELECT seq, type, at, data FROM events WHERE run = ? ORDER BY seq", (run_id,)).fetchall()
        return [{"seq": s, "type": t, "at": a, "data": json.loads(d)} for s, t, a, d in rows]

    # -- drivers --
    def claim(self, run_id: str, owner: str) -> dict | None:
        """Record this process as the run's driver. Returns the other driver that still holds it
        (alive and beating), in which case nothing is written; None once claimed."""
        now = wall_ms()
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                row = _driver(self.db.execute("SELECT run, owner, host, pid, since, heartbeat FROM drivers WHERE run = ?", (run_id,)).fetchone())
                if row is not None and row["owner"] != owner and driver_alive(row, now):
                    self.db.execute("ROLLBACK")
                    return row
                self.db.execute(
                    "INSERT OR REPLACE INTO drivers VALUES (?, ?, ?, ?, ?, ?)", (run_id, owner, socket.gethostname(), os.getpid(), now, now)
                )
                self.db.execute("COMMIT")
                return None
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def beat(self, owner: str, runs: list[str]) -> None:
        """Heartbeat of every run this driver holds."""
        if not runs:
            return
        now = wall_ms()
        with self._lock:
            self.db.executemany("UPDATE drivers SET heartbeat = ? WHERE run = ? AND owner = ?", [(now, r, owner) for r in runs])

    def release(self, run_id: str, owner: str) -> None:
        with self._lock:
            self.db.execute("DELETE FROM drivers WHERE run = ? AND owner = ?", (run_id, owner))

    def driver(self, run_id: str) -> dict | None:
        return _driver(self.db.execute("SELECT run, owner, host, pid, since, heartbeat FROM drivers WHERE run = ?", (run_id,)).fetchone())

    def virtual_now(self) -> int:
        """The store's virtual clock: the latest time any simulated run has reached."""
        row = self.db.execute("SELECT COALESCE(MAX(e.at), 0) FROM events e JOIN runs r ON r.id = e.run WHERE r.clock = 'virtual'").fetchone()
        return row[0]

    def now(self, clock: str) -> int:
        """The current time on a run's clock."""
        return self.virtual_now() if clock == "virtual" else wall_ms()

    def integrity(self) -> str:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0]


def encode_secret(value: Any) -> str:
    """A secret given value as the store keeps it: its JSON, so it reads back with its type (a
    bool stays a bool, a number a number)."""
    return "json:" + json.dumps(value, sort_keys=True)


def decode_secret(text: str) -> Any:
    if text.startswith("json:"):
        try:
            return json.loads(text[5:])
        except ValueError:
            pass
    return text  # written by an older intento: the value as a string


def wall_ms() -> int:
    return int(time.time() * 1000)


def _driver(row) -> dict | None:
    if row is None:
        return None
    return dict(zip(("run", "owner", "host", "pid", "since", "heartbeat"), row))


def driver_alive(d: dict | None, now: int | None = None) -> bool:
    """Whether a driver row belongs to a process still driving: on this host, its process exists
    and beat recently; elsewhere, it beat within `DRIVER_EXPIRY_MS`."""
    if d is None:
        return False
    now = wall_ms() if now is None else now
    if now - d["heartbeat"] > DRIVER_EXPIRY_MS:
        return False
    if d["host"] == socket.gethostname():
        try:
            os.kill(d["pid"], 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    return True


def _run(row) -> dict | None:
    if row is None:
        return None
    keys = ("id", "key", "intent", "project", "created_at", "status", "updated_at", "clock")
    return dict(zip(keys, row))


def post(store: Store, run_id: str, data: dict[str, Any]) -> None:
    """Queue an observation for a run (any process); its executor records it as an event."""
    with store._lock:
        store.db.execute("INSERT INTO inbox (run, data) VALUES (?, ?)", (run_id, json.dumps(data, sort_keys=True)))


def take(store: Store, run_id: str) -> list[tuple[int, dict]]:
    rows = store.db.execute("SELECT id, data FROM inbox WHERE run = ? AND taken = 0 ORDER BY id", (run_id,)).fetchall()
    return [(i, json.loads(d)) for i, d in rows]


def mark_taken(store: Store, ids: list[int]) -> None:
    with store._lock:
        for i in ids:
            store.db.execute("UPDATE inbox SET taken = 1 WHERE id = ?", (i,))
