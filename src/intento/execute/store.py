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
import sqlite3
import threading
from pathlib import Path
from typing import Any, Protocol

SCHEMA_VERSION = 1

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
}

TERMINAL = ("succeeded", "escalated", "failed")


class EventStore(Protocol):
    """What the executor needs of a store; `Store` (SQLite) is the first implementation."""

    def create_run(self, run_id: str, key: str, intent: str, project: str, at: int, secrets: dict[str, str], first: dict[str, Any]) -> bool: ...
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
    def create_run(self, run_id: str, key: str, intent: str, project: str, at: int, secrets: dict[str, str], first: dict[str, Any]) -> bool:
        """Create a run with its first event (``run_started``) in one transaction, so a crash
        leaves either both or neither; False (and nothing written) if the key exists."""
        body = json.dumps(first, sort_keys=True, separators=(",", ":"), default=str)
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                if self.db.execute("SELECT 1 FROM runs WHERE key = ?", (key,)).fetchone():
                    self.db.execute("ROLLBACK")
                    return False
                self.db.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, 'running', ?)", (run_id, key, intent, project, at, at))
                self.db.execute("INSERT INTO events VALUES (?, 1, 'run_started', ?, ?)", (run_id, at, body))
                for name, value in secrets.items():
                    self.db.execute("INSERT INTO run_secrets VALUES (?, ?, ?)", (run_id, name, value))
                self._crash.before_commit()
                self.db.execute("COMMIT")
                return True
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def run_by_key(self, key: str) -> dict | None:
        row = self.db.execute("SELECT id, key, intent, project, created_at, status, updated_at FROM runs WHERE key = ?", (key,)).fetchone()
        return _run(row)

    def run(self, run_id: str) -> dict | None:
        row = self.db.execute("SELECT id, key, intent, project, created_at, status, updated_at FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _run(row)

    def runs(self) -> list[dict]:
        rows = self.db.execute("SELECT id, key, intent, project, created_at, status, updated_at FROM runs ORDER BY created_at, id").fetchall()
        return [_run(r) for r in rows]

    def secrets(self, run_id: str) -> dict[str, str]:
        return dict(self.db.execute("SELECT name, value FROM run_secrets WHERE run = ?", (run_id,)).fetchall())

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

    def integrity(self) -> str:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0]


def _run(row) -> dict | None:
    if row is None:
        return None
    keys = ("id", "key", "intent", "project", "created_at", "status", "updated_at")
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
