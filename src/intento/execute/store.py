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

from intento.errors import OperationalError
from intento.execute.state import UnreadableEvent

SCHEMA_VERSION = 8

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
        # Audit records to write, committed with the event they record (a transactional
        # outbox): a crash between the event and the audit log's append loses neither.
        """CREATE TABLE IF NOT EXISTS outbox (
            decision TEXT PRIMARY KEY,
            run TEXT NOT NULL,
            body TEXT NOT NULL
        )""",
    ],
    3: [
        # The fencing token of each run's lease: raised by every claim, checked by every append
        # of a driver, so a driver that lost the lease (it stopped beating and another engine
        # took the run over) can never write to the run's log again.
        "ALTER TABLE runs ADD COLUMN lease INTEGER NOT NULL DEFAULT 0",
        # What a run was started with (a hash of the request): an idempotency key used again
        # with a different request is refused, not answered with the other run.
        "ALTER TABLE runs ADD COLUMN request TEXT",
        # Capacity slots held across runs: one row per step in flight on a provider with a
        # `capacity`, taken with its `step_dispatched` event and given back with its outcome.
        """CREATE TABLE IF NOT EXISTS slots (
            provider TEXT NOT NULL,
            run TEXT NOT NULL,
            action TEXT NOT NULL,
            PRIMARY KEY (run, action)
        )""",
        "CREATE INDEX IF NOT EXISTS slots_provider ON slots(provider)",
        "CREATE INDEX IF NOT EXISTS runs_status ON runs(status, created_at)",
        "CREATE INDEX IF NOT EXISTS runs_created ON runs(created_at, id)",
        "CREATE INDEX IF NOT EXISTS inbox_waiting ON inbox(taken, run)",
        # Which driver wrote each event (operational, not part of the run's log as `events()`
        # returns it, so the same seed still gives the identical log).
        "ALTER TABLE events ADD COLUMN driver TEXT",
    ],
    4: [
        # When each held slot is expected back (wall-clock ms: its step's dispatch plus its
        # option's latency; NULL for a simulated run's, whose time is its own): the plans of
        # other runs see the slot as busy until then.
        "ALTER TABLE slots ADD COLUMN until_ms INTEGER",
    ],
    5: [
        # A projection for listing: the supervision view (`report.run_view`) of each finished
        # run, as of its last event number `seq`. Derived from the event log and used only while
        # `seq` is still the run's last event, so it can be dropped at any time; listing a large
        # store folds only its unfinished runs.
        """CREATE TABLE IF NOT EXISTS finished_views (
            run TEXT PRIMARY KEY REFERENCES runs(id),
            seq INTEGER NOT NULL,
            body TEXT NOT NULL
        )""",
    ],
    6: [
        # What each provider did, per action: a row per step outcome (not an undo's), written
        # with the event that records it; `intento providers` and learned figures read it.
        """CREATE TABLE IF NOT EXISTS step_samples (
            provider TEXT NOT NULL,
            action TEXT NOT NULL,
            outcome TEXT NOT NULL,
            latency_ms INTEGER,
            at INTEGER NOT NULL,
            run TEXT NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS step_samples_option ON step_samples(provider, action)",
    ],
    7: [
        # Every version runs were judged by: the project's fingerprint, its policy set's hash, a
        # label, and the texts themselves (JSON [{name, text}]), so any past decision can be
        # replayed against the exact sources that made it. Written once, never changed.
        """CREATE TABLE IF NOT EXISTS versions (
            id TEXT PRIMARY KEY,
            policy_set TEXT NOT NULL,
            label TEXT,
            sources TEXT NOT NULL,
            at INTEGER NOT NULL
        )""",
        # Policy rollouts, in order: the policy set (JSON [{name, text}]) new runs use from then
        # on, the mode unfinished runs migrate by, and what `intento policy impact` said then.
        """CREATE TABLE IF NOT EXISTS rollouts (
            seq INTEGER PRIMARY KEY,
            at INTEGER NOT NULL,
            mode TEXT NOT NULL,
            label TEXT,
            policy_set TEXT NOT NULL,
            policies TEXT NOT NULL,
            by TEXT,
            report TEXT NOT NULL
        )""",
    ],
    8: [
        # A projection for listing and for the clock, kept current on append: one row per run,
        # written in the transaction of each of its events (and of its creation), as of its last
        # event `seq`: where the run is (status, intent, stall point, deadline, what it waits on
        # when driven, the expected end of its plan), its latest event time (`max_at`: the store's
        # virtual clock is their maximum) and its supervision view read at its last event
        # (`body`, `report.base_view`: a finished run's; an unfinished run's view is folded when it is
        # listed, on a page). Derived from the event log, so it is rebuilt for any run
        # whose row is missing or not of its last event (`Store.run_index`); existing stores are
        # filled in by this migration.
        """CREATE TABLE IF NOT EXISTS run_index (
            run TEXT PRIMARY KEY REFERENCES runs(id),
            seq INTEGER NOT NULL,
            status TEXT NOT NULL,
            intent TEXT NOT NULL,
            clock TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            last_at INTEGER NOT NULL,
            max_at INTEGER NOT NULL,
            deadline_at INTEGER,
            expected_end INTEGER,
            holding INTEGER NOT NULL,
            waits_on TEXT,
            stall_point TEXT,
            body TEXT
        )""",
        "CREATE INDEX IF NOT EXISTS run_index_status ON run_index(status, created_at, run)",
        "CREATE INDEX IF NOT EXISTS run_index_intent ON run_index(intent, created_at, run)",
        "CREATE INDEX IF NOT EXISTS run_index_clock ON run_index(clock, max_at)",
    ],
}

#: What folding an event the fold cannot read raises (a hand-written event missing a key, say).
_FOLD_ERRORS = (KeyError, TypeError, ValueError, ArithmeticError, AttributeError, UnreadableEvent)
#: The columns of `run_index`, in order (`report.index_row` gives a row's values).
INDEX_COLUMNS = ("run", "seq", "status", "intent", "clock", "created_at", "last_at", "max_at", "deadline_at", "expected_end", "holding", "waits_on", "stall_point", "body")
#: How many runs' folded states a store keeps to write their `run_index` rows (unfinished runs:
#: a finished run's state is dropped with its outcome).
INDEX_CACHE = 4096

#: How often a driver beats its runs' rows, and after how long without a beat a run counts as
#: not driven (wall-clock ms; a driver on this host whose process is gone counts at once).
HEARTBEAT_MS = 1_000
#: How long a write waits for another process's transaction before the store says it is busy.
BUSY_TIMEOUT_S = 30
DRIVER_EXPIRY_MS = 15_000

TERMINAL = ("succeeded", "escalated", "failed", "cancelled")

#: The step outcomes kept as samples of what providers do (`step_samples`).
_SAMPLED = {"step_succeeded": "succeeded", "step_failed": "failed", "step_timed_out": "timed_out"}

#: The events that end a step (and give back its capacity slot).
_STEP_ENDS = ("step_succeeded", "step_failed", "step_timed_out", "wait_dropped")


class EventStore(Protocol):
    """What the executor needs of a store; `Store` (SQLite) is the first implementation."""

    def create_run(self, run_id: str, key: str, intent: str, project: str, at: int, secrets: dict[str, str], first: dict[str, Any], clock: str = "wall") -> bool: ...
    def append(self, run_id: str, seq: int, type_: str, at: int, data: dict[str, Any], status: str | None = None) -> None: ...
    def events(self, run_id: str) -> list[dict]: ...
    def runs(self) -> list[dict]: ...
    def run(self, run_id: str) -> dict | None: ...
    def run_by_key(self, key: str) -> dict | None: ...
    def secrets(self, run_id: str) -> dict[str, str]: ...


class LeaseLost(OperationalError):
    """This driver no longer holds the run's lease: another engine took the run over after this
    one stopped beating. Nothing was written; the driver must stop driving the run."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        super().__init__(f"run {run_id}: another engine has taken this run over (this driver's lease expired)")


class StoreError(OperationalError):
    """The store cannot be read or written: the message names the store, what was being done and
    the cause in words (a full disk, a read-only file, a corrupted file)."""


def _cause(e: BaseException) -> str:
    text = str(e)
    low = text.lower()
    if "full" in low:
        return "the disk is full (free some space; nothing already recorded is lost)"
    if "readonly" in low or "read-only" in low or "attempt to write" in low:
        return "the store is read-only (check the file's and its folder's permissions)"
    if "malformed" in low or "not a database" in low or "corrupt" in low:
        return "the file is not an intento store or is corrupted (restore it from a backup)"
    if "unable to open" in low:
        return "the file cannot be opened (check that its folder exists and is writable)"
    if "locked" in low or "busy" in low:
        return "another process holds the store locked for too long"
    if isinstance(e, StoreError):
        return text
    return text or type(e).__name__


class _Crash:
    """Fault injection for crash tests: ``INTENTO_CRASH_AT=k`` kills the process with SIGKILL just
    before the k-th event write of this process commits (1-based); ``INTENTO_CRASH_AFTER=k`` just
    after it committed (before anything that follows it, such as the audit record's write)."""

    def __init__(self) -> None:
        raw = os.environ.get("INTENTO_CRASH_AT")
        self.at = int(raw) if raw and raw.isdigit() else None
        raw = os.environ.get("INTENTO_CRASH_AFTER")
        self.after = int(raw) if raw and raw.isdigit() else None
        self.writes = 0

    def before_commit(self) -> None:
        self.writes += 1
        if self.at is not None and self.writes == self.at:
            os.kill(os.getpid(), signal.SIGKILL)

    def after_commit(self) -> None:
        if self.after is not None and self.writes == self.after:
            os.kill(os.getpid(), signal.SIGKILL)


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._crash = _Crash()
        #: Per run: its folded state as of its last event (`report.Folded`), to write its
        #: `run_index` row with each append without reading its log again.
        self._folds: dict[str, Any] = {}
        #: `run_index` rows this store rebuilt but could not write (a busy or read-only store).
        self._unsaved: dict[str, tuple] = {}
        try:
            if not self.path.exists():
                # Owner-only from the first byte: the store holds secret given values.
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except FileExistsError:
            raise StoreError(f"store `{self.path}`: created by another process at the same moment; try again") from None
        except (sqlite3.Error, OSError) as e:
            raise StoreError(f"cannot open the store `{self.path}`: {_cause(e)}") from None

    def _fail(self, what: str, e: BaseException) -> StoreError:
        """Roll back what is open (a failed COMMIT may already have) and say what went wrong."""
        try:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        if isinstance(e, StoreError):
            return e
        return StoreError(f"store `{self.path}`: cannot {what}: {_cause(e)}")

    def _read(self, what: str, sql: str, args: tuple = ()) -> list:
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"store `{self.path}`: cannot {what}: {_cause(e)}") from None

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
                if current and current < 8:
                    # The projection of an existing store's runs, folded once from their logs.
                    self._index_runs([r[0] for r in self.db.execute("SELECT id FROM runs")])
                if row is None:
                    self.db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
                else:
                    self.db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
                self.db.execute("COMMIT")
            except BaseException as e:
                raise self._fail("bring its schema up to date", e) from None

    def close(self) -> None:
        self.db.close()

    # -- runs --
    def create_run(self, run_id: str, key: str, intent: str, project: str, at: int, secrets: dict[str, Any], first: dict[str, Any], clock: str = "wall", request: str | None = None,
                   version: tuple | None = None) -> bool:
        """Create a run with its first event (``run_started``) in one transaction, so a crash
        leaves either both or neither; False (and nothing written) if the key exists.
        ``request``: a hash of what the run was asked with (to refuse a key used again with a
        different request). ``version``: the texts of the version it starts on, kept with it
        (`keep_version`'s arguments, in order, with its sources as JSON), once per version."""
        body = json.dumps(first, sort_keys=True, separators=(",", ":"), default=str)
        with self._lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                if self.db.execute("SELECT 1 FROM runs WHERE key = ?", (key,)).fetchone():
                    self.db.execute("ROLLBACK")
                    return False
                self.db.execute(
                    "INSERT INTO runs (id, key, intent, project, created_at, status, updated_at, clock, request) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?)",
                    (run_id, key, intent, project, at, at, clock, request),
                )
                self.db.execute("INSERT INTO events (run, seq, type, at, data) VALUES (?, 1, 'run_started', ?, ?)", (run_id, at, body))
                for name, value in secrets.items():
                    self.db.execute("INSERT INTO run_secrets VALUES (?, ?, ?)", (run_id, name, encode_secret(value)))
                if version is not None:
                    self.db.execute("INSERT OR IGNORE INTO versions (id, policy_set, label, sources, at) VALUES (?, ?, ?, ?, ?)", version)
                folded = self._advance_index(run_id, 0, {"seq": 1, "type": "run_started", "at": at, "data": json.loads(body)},
                                             {"id": run_id, "created_at": at, "clock": clock})
                self._crash.before_commit()
                self.db.execute("COMMIT")
            except BaseException as e:
                raise self._fail("record a new run", e) from None
            self._remember(run_id, folded)
            self._crash.after_commit()
            return True

    _RUN_COLUMNS = "id, key, intent, project, created_at, status, updated_at, clock, request"

    def run_by_key(self, key: str) -> dict | None:
        rows = self._read("read its runs", f"SELECT {self._RUN_COLUMNS} FROM runs WHERE key = ?", (key,))
        return _run(rows[0]) if rows else None

    def run(self, run_id: str) -> dict | None:
        rows = self._read("read its runs", f"SELECT {self._RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        return _run(rows[0]) if rows else None

    def runs(self) -> list[dict]:
        return [_run(r) for r in self._read("read its runs", f"SELECT {self._RUN_COLUMNS} FROM runs ORDER BY created_at, id")]

    def unfinished_runs(self) -> list[str]:
        """Every run without an outcome, oldest first (the engine adopts them)."""
        placeholders = ",".join("?" * len(TERMINAL))
        return [r[0] for r in self._read("read its runs", f"SELECT id FROM runs WHERE status NOT IN ({placeholders}) ORDER BY created_at, id", TERMINAL)]

    def last_at(self, run_id: str) -> int:
        """The time of a run's latest event (on the run's clock)."""
        rows = self._read("read a run's events", "SELECT COALESCE(MAX(at), 0) FROM events WHERE run = ?", (run_id,))
        return rows[0][0]

    def inbox_runs(self) -> list[str]:
        """Runs with observations or requests waiting in the inbox."""
        return [r[0] for r in self._read("read its inbox", "SELECT DISTINCT run FROM inbox WHERE taken = 0")]

    def slots(self, provider: str | None = None) -> list[dict]:
        """Capacity slots held now (by steps in flight of every run), each with when it is
        expected back (`until_ms`, wall-clock ms; None if not known)."""
        cols = "SELECT provider, run, action, until_ms FROM slots"
        sql, args = (cols + " WHERE provider = ?", (provider,)) if provider else (cols, ())
        return [dict(zip(("provider", "run", "action", "until_ms"), r)) for r in self._read("read its capacity slots", sql, args)]

    def secrets(self, run_id: str) -> dict[str, Any]:
        """A run's secret given values, each with its JSON type (as `values.to_json` wrote it)."""
        return {n: decode_secret(v) for n, v in self._read("read a run's secrets", "SELECT name, value FROM run_secrets WHERE run = ?", (run_id,))}

    # -- events --
    def append(
        self, run_id: str, seq: int, type_: str, at: int, data: dict[str, Any], status: str | None = None,
        outbox: tuple[str, dict] | None = None, lease: int | None = None, slot: tuple | None = None, driver: str | None = None,
    ) -> bool:
        """Append event ``seq`` (must be the next one) in its own durable transaction; with
        ``outbox`` (decision id, audit record draft), the draft is committed with it.

        ``lease``: the driver's fencing token; the append is refused (`LeaseLost`) when the
        run's lease has moved on. ``slot`` (provider, capacity[, expected back: wall ms]), for a `step_dispatched`: take
        one of the provider's capacity slots with the event; when every slot is held, nothing
        is written and False is returned. An event that ends a step gives its slot back, and a
        run's outcome gives back every slot it held."""
        body = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
        with self._lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                # The run's lease and its last event, in one read.
                row = self.db.execute("SELECT lease, (SELECT COALESCE(MAX(seq), 0) FROM events WHERE run = ?) FROM runs WHERE id = ?", (run_id, run_id)).fetchone()
                if lease is not None and (row is None or row[0] != lease):
                    raise LeaseLost(run_id)
                last = row[1] if row is not None else 0
                if seq != last + 1:
                    raise StoreError(f"run {run_id}: event {seq} would not follow event {last} (another executor is driving this run)")
                if slot is not None:
                    held = self.db.execute("SELECT COUNT(*) FROM slots WHERE provider = ? AND NOT (run = ? AND action = ?)", (slot[0], run_id, data.get("action"))).fetchone()[0]
                    if held >= slot[1]:
                        self.db.execute("ROLLBACK")
                        return False
                    until = slot[2] if len(slot) > 2 else None
                    self.db.execute("INSERT OR REPLACE INTO slots (provider, run, action, until_ms) VALUES (?, ?, ?, ?)", (slot[0], run_id, data.get("action"), until))
                if type_ in _STEP_ENDS and not data.get("compensation_for"):
                    self.db.execute("DELETE FROM slots WHERE run = ? AND action = ?", (run_id, data.get("action")))
                if status in TERMINAL:
                    self.db.execute("DELETE FROM slots WHERE run = ?", (run_id,))
                    if driver is not None:
                        # Its driver's lease ends with the outcome, in the same commit.
                        self.db.execute("DELETE FROM drivers WHERE run = ? AND owner = ?", (run_id, driver))
                self.db.execute("INSERT INTO events (run, seq, type, at, data, driver) VALUES (?, ?, ?, ?, ?, ?)", (run_id, seq, type_, at, body, driver))
                if type_ in _SAMPLED and not data.get("compensation_for") and data.get("provider") and data.get("action") and not data.get("reconciled"):
                    latency = data.get("latency_ms") if type_ == "step_succeeded" else None
                    self.db.execute("INSERT INTO step_samples (provider, action, outcome, latency_ms, at, run) VALUES (?, ?, ?, ?, ?, ?)",
                                    (data["provider"], data["action"], _SAMPLED[type_], latency if isinstance(latency, int) else None, at, run_id))
                # The run's row changes with its status only (`updated_at`: when it last changed);
                # its latest event time is the projection's (`run_index.last_at`), written below.
                # Touching the row at every event cost a page in each commit's write.
                if status is not None:
                    self.db.execute("UPDATE runs SET status = ?, updated_at = ? WHERE id = ?", (status, at, run_id))
                if outbox is not None:
                    self.db.execute("INSERT OR REPLACE INTO outbox VALUES (?, ?, ?)", (outbox[0], run_id, json.dumps(outbox[1], sort_keys=True, default=str)))
                folded = self._advance_index(run_id, last, {"seq": seq, "type": type_, "at": at, "data": json.loads(body)})
                self._crash.before_commit()
                self.db.execute("COMMIT")
            except BaseException as e:
                if isinstance(e, LeaseLost):
                    self._fail("", e)
                    raise
                raise self._fail(f"record event {seq} ({type_}) of run {run_id}", e) from None
            self._remember(run_id, folded)
            self._crash.after_commit()
            return True

    # -- the projection (`run_index`) --
    # An upsert, not INSERT OR REPLACE: a replace deletes the row and inserts it again, rewriting
    # every index entry of it; an update rewrites only the entries whose columns changed.
    _INDEX_INSERT = (f"INSERT INTO run_index ({', '.join(INDEX_COLUMNS)}) VALUES ({', '.join('?' * len(INDEX_COLUMNS))})"
                     f" ON CONFLICT(run) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in INDEX_COLUMNS[1:])}")

    def _advance_index(self, run_id: str, last: int, event: dict, row: dict | None = None):
        """Inside an append's transaction: write the run's `run_index` row as of ``event`` (which
        follows event ``last``) and return its fold then. The fold of event ``last`` is this
        store's own (kept from its last append to the run) when it is of that event, advanced by
        what another writer appended meanwhile, else folded from the log."""
        from intento.execute.report import Folded

        # The event itself is already inserted: what is read from the log stops before it.
        folded = self._folds.get(run_id)
        try:
            if folded is None or folded.seq > last:
                if row is None:
                    r = self.db.execute("SELECT id, created_at, clock FROM runs WHERE id = ?", (run_id,)).fetchone()
                    row = {"id": r[0], "created_at": r[1], "clock": r[2]} if r else {"id": run_id}
                folded = Folded.of(row, [e for e in self.events(run_id) if e["seq"] <= last] if last else [])
            elif folded.seq < last:
                folded = folded.advanced([e for e in self.events_after(run_id, folded.seq) if e["seq"] <= last])
            folded = folded.advanced([event])
            index_row = folded.index_row()
        except _FOLD_ERRORS:
            # An event the fold cannot read (written by hand, or by a tool of its own) never
            # stops the append: the projection is derived, so the run's row is dropped and
            # listing folds the run from its log as it always could.
            self.db.execute("DELETE FROM run_index WHERE run = ?", (run_id,))
            return None
        self.db.execute(self._INDEX_INSERT, index_row)
        return folded

    def folded(self, run_id: str) -> Any:
        """This store's fold of the run as of the last event it appended to it (`report.Folded`;
        None if it has not, or the run has finished). Events other writers appended since are
        not in it: read them with `events_after`."""
        return self._folds.get(run_id)

    def _remember(self, run_id: str, folded) -> None:
        """Keep a run's fold after its append committed (never a finished run's: it is done)."""
        self._unsaved.pop(run_id, None)
        if folded is None or folded.st.terminal:
            self._folds.pop(run_id, None)
            return
        if len(self._folds) >= INDEX_CACHE and run_id not in self._folds:
            self._folds.pop(next(iter(self._folds)))
        self._folds[run_id] = folded

    def _fold_rows(self, runs: list[str]) -> list[tuple]:
        """The `run_index` rows of these runs, folded from their logs. A run whose log the fold
        cannot read (an event written by hand or by another tool) gets no row: it is left out of
        listings (and folded again each time), never a reason for listing or opening to fail."""
        from intento.execute.report import Folded

        rows = []
        for run in runs:
            r = self.run(run)
            if r is None:
                continue
            try:
                rows.append(Folded.of(r, self.events(run)).index_row())
            except _FOLD_ERRORS:
                continue
        return rows

    def _index_runs(self, runs: list[str]) -> list[tuple]:
        """Fold these runs from their logs and write their `run_index` rows (in the transaction
        open, if one is); the rows."""
        rows = self._fold_rows(runs)
        if rows:
            self.db.executemany(self._INDEX_INSERT, rows)
        return rows

    def run_index(self) -> list[tuple]:
        """Every run's `run_index` row but its body (`INDEX_COLUMNS[:-1]`), oldest first. A run
        whose row is missing or not of its last event (written by an older intento, or by hand)
        is folded from its log and its row written again (when the store is busy or read-only,
        only remembered); rows of runs the store no longer has are left out."""
        stale = [r[0] for r in self._read("read its runs' projection", """
            SELECT r.id FROM runs r LEFT JOIN run_index i ON i.run = r.id
            WHERE i.seq IS NOT (SELECT MAX(e.seq) FROM events e WHERE e.run = r.id)""")]
        if stale:
            with self._lock:
                try:
                    self.db.execute("PRAGMA busy_timeout = 250")  # a cache write never holds a page up for long
                    self.db.execute("BEGIN IMMEDIATE")
                    written = {row[0] for row in self._index_runs(stale)}
                    # A run whose log can no longer be read keeps no row of an older event either.
                    self.db.executemany("DELETE FROM run_index WHERE run = ?", [(r,) for r in stale if r not in written])
                    self.db.execute("DELETE FROM run_index WHERE run NOT IN (SELECT id FROM runs)")
                    self.db.execute("COMMIT")
                    for run in stale:
                        self._unsaved.pop(run, None)
                except sqlite3.Error as e:
                    self._fail("keep its runs' projection", e)  # rolls back; not raised: the rows are derived
                    for row in self._fold_rows(stale):
                        self._unsaved[row[0]] = row
                except BaseException as e:
                    self._fail("", e)  # rolls back: no transaction is ever left open
                    raise
                finally:
                    self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
        cols = ", ".join("i." + c for c in INDEX_COLUMNS[:-1])
        rows = self._read("read its runs' projection", f"SELECT {cols} FROM run_index i JOIN runs r ON r.id = i.run ORDER BY i.created_at, i.run")
        if self._unsaved:
            fresh = {r[0]: r[:-1] for r in self._unsaved.values()}
            rows = [fresh.pop(r[0], r) for r in rows] + list(fresh.values())
        return rows

    def index_bodies(self, runs: list[str]) -> dict[str, dict]:
        """The views of these runs read at their last event (`report.base_view`), by run: a
        finished run's from the projection, any other's folded from its log."""
        stored: dict[str, str | None] = {}
        for i in range(0, len(runs), 500):
            chunk = runs[i : i + 500]
            stored.update(self._read("read its runs' projection", f"SELECT run, body FROM run_index WHERE run IN ({','.join('?' * len(chunk))})", tuple(chunk)))
        out: dict[str, dict] = {}
        for run in runs:
            body = self._unsaved[run][-1] if run in self._unsaved else stored.get(run)
            try:
                if body is not None:
                    out[run] = json.loads(body)
                    continue
            except ValueError:
                pass  # unreadable (edited by hand): folded again
            r = self.run(run)
            if r is not None:
                from intento.execute.report import Folded

                out[run] = Folded.of(r, self.events(run)).base()
        return out

    def events(self, run_id: str) -> list[dict]:
        rows = self._read("read a run's events", "SELECT seq, type, at, data FROM events WHERE run = ? ORDER BY seq", (run_id,))
        try:
            return [{"seq": s, "type": t, "at": a, "data": json.loads(d)} for s, t, a, d in rows]
        except (ValueError, TypeError) as e:
            raise StoreError(f"store `{self.path}`: run {run_id} has an event that is not JSON ({e}): the file was edited or is corrupted") from None

    def events_after(self, run_id: str, seq: int) -> list[dict]:
        """A run's events after event number ``seq`` (to follow a run)."""
        rows = self._read("read a run's events", "SELECT seq, type, at, data FROM events WHERE run = ? AND seq > ? ORDER BY seq", (run_id, seq))
        try:
            return [{"seq": s, "type": t, "at": a, "data": json.loads(d)} for s, t, a, d in rows]
        except (ValueError, TypeError) as e:
            raise StoreError(f"store `{self.path}`: run {run_id} has an event that is not JSON ({e}): the file was edited or is corrupted") from None

    def writers(self, run_id: str) -> list[str | None]:
        """Which driver wrote each of a run's events, in order (None: not written by a driver)."""
        return [r[0] for r in self._read("read a run's events", "SELECT driver FROM events WHERE run = ? ORDER BY seq", (run_id,))]

    # -- the audit outbox --
    def outbox(self, run_id: str | None = None) -> list[tuple[str, dict]]:
        """Audit record drafts committed with their event but not yet confirmed written."""
        sql, args = ("SELECT decision, body FROM outbox WHERE run = ? ORDER BY rowid", (run_id,)) if run_id else ("SELECT decision, body FROM outbox ORDER BY rowid", ())
        return [(d, json.loads(b)) for d, b in self._read("read its audit outbox", sql, args)]

    def outbox_done(self, decision: str) -> None:
        with self._lock:
            try:
                self.db.execute("DELETE FROM outbox WHERE decision = ?", (decision,))
            except sqlite3.Error as e:
                raise self._fail("clear its audit outbox", e) from None

    # -- drivers --
    def claim(self, run_id: str, owner: str) -> tuple[dict | None, int]:
        """Take the run's lease for this driver: (None, fencing token) once taken; (the other
        driver, 0) when one still holds it (alive and beating), and then nothing is written.
        Every claim raises the run's token, so the previous holder's appends are refused."""
        now = wall_ms()
        with self._lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                row = _driver(self.db.execute("SELECT run, owner, host, pid, since, heartbeat FROM drivers WHERE run = ?", (run_id,)).fetchone())
                if row is not None and row["owner"] != owner and driver_alive(row, now):
                    self.db.execute("ROLLBACK")
                    return row, 0
                self.db.execute("UPDATE runs SET lease = lease + 1 WHERE id = ?", (run_id,))
                token = self.db.execute("SELECT lease FROM runs WHERE id = ?", (run_id,)).fetchone()
                self.db.execute(
                    "INSERT OR REPLACE INTO drivers VALUES (?, ?, ?, ?, ?, ?)", (run_id, owner, socket.gethostname(), os.getpid(), now, now)
                )
                self.db.execute("COMMIT")
                return None, token[0] if token else 0
            except BaseException as e:
                raise self._fail(f"record the driver of run {run_id}", e) from None

    def beat(self, owner: str, runs: list[str]) -> list[str]:
        """Heartbeat of every run this driver holds, in one transaction; returns the runs whose
        lease another driver holds now (this one must stop driving them)."""
        if not runs:
            return []
        now = wall_ms()
        with self._lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.execute("UPDATE drivers SET heartbeat = ? WHERE owner = ?", (now, owner))
                mine = {r[0] for r in self.db.execute("SELECT run FROM drivers WHERE owner = ?", (owner,))}
                self.db.execute("COMMIT")
            except BaseException as e:
                raise self._fail("beat its drivers' leases", e) from None
        return [r for r in runs if r not in mine]

    def release(self, run_id: str, owner: str) -> None:
        with self._lock:
            try:
                self.db.execute("DELETE FROM drivers WHERE run = ? AND owner = ?", (run_id, owner))
            except sqlite3.Error:
                pass  # a driver row that outlives its process reads as not driven anyway

    def driver(self, run_id: str) -> dict | None:
        rows = self._read("read a run's driver", "SELECT run, owner, host, pid, since, heartbeat FROM drivers WHERE run = ?", (run_id,))
        return _driver(rows[0]) if rows else None

    def step_stats(self, last: int = 1000) -> dict[tuple[str, str], dict]:
        """What each provider did per action, from its last ``last`` samples: (action, provider)
        -> total, succeeded, failed, timed_out, and the successful steps' latencies (ms)."""
        rows = self._read("read its step samples", """
            SELECT provider, action, outcome, latency_ms FROM (
                SELECT provider, action, outcome, latency_ms, ROW_NUMBER() OVER (PARTITION BY provider, action ORDER BY rowid DESC) AS n
                FROM step_samples) WHERE n <= ?""", (last,))
        out: dict[tuple[str, str], dict] = {}
        for provider, action, outcome, latency in rows:
            s = out.setdefault((action, provider), {"total": 0, "succeeded": 0, "failed": 0, "timed_out": 0, "latencies": []})
            s["total"] += 1
            s[outcome] = s.get(outcome, 0) + 1
            if outcome == "succeeded" and latency is not None:
                s["latencies"].append(latency)
        return out

    def drivers(self) -> dict[str, dict]:
        """Every run's driver row, by run (one query, for listing)."""
        rows = self._read("read its drivers", "SELECT run, owner, host, pid, since, heartbeat FROM drivers")
        return {r[0]: _driver(r) for r in rows}

    def last_seqs(self) -> dict[str, int]:
        """Each run's last event number (one pass over the events' primary key)."""
        return dict(self._read("read its events", "SELECT run, MAX(seq) FROM events GROUP BY run"))

    def finished_views(self) -> dict[str, tuple[int, dict]]:
        """The stored views of finished runs (`finished_views`): run -> (its last event number
        then, view). A body that does not read back is left out (it is computed again)."""
        out = {}
        for run, seq, body in self._read("read its finished runs' views", "SELECT run, seq, body FROM finished_views"):
            try:
                out[run] = (seq, json.loads(body))
            except ValueError:
                continue
        return out

    def keep_finished_views(self, views: list[tuple[str, int, dict]]) -> bool:
        """Store views of finished runs (run, last event number, view) for the next listing. A
        cache: when the store is busy or read-only nothing is written and False is returned."""
        if not views:
            return True
        rows = [(run, seq, json.dumps(view, sort_keys=True, separators=(",", ":"), default=str)) for run, seq, view in views]
        with self._lock:
            try:
                self.db.execute("PRAGMA busy_timeout = 250")  # a cache write never holds a page up for long
                self.db.execute("BEGIN IMMEDIATE")
                self.db.executemany("INSERT OR REPLACE INTO finished_views (run, seq, body) VALUES (?, ?, ?)", rows)
                self.db.execute("COMMIT")
                return True
            except sqlite3.Error as e:
                self._fail("keep finished runs' views", e)  # rolls back; the error is not raised: a cache
                return False
            finally:
                self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")

    # -- policy versions and rollouts --
    def add_sample(self, provider: str, action: str, outcome: str, latency_ms: int | None, at: int, run: str) -> None:
        """Keep one step's outcome as a sample (a Temporal worker's steps: `intento worker
        --learn`; the embedded engine keeps its own with each step event)."""
        if outcome not in _SAMPLED.values():
            raise ValueError(f"a sample's outcome is one of {', '.join(_SAMPLED.values())}")
        with self._lock:
            try:
                self.db.execute("INSERT INTO step_samples (provider, action, outcome, latency_ms, at, run) VALUES (?, ?, ?, ?, ?, ?)",
                                (provider, action, outcome, latency_ms if outcome == "succeeded" else None, at, run))
            except sqlite3.Error as e:
                raise self._fail(f"keep a sample of {action} via {provider}", e) from None

    def keep_version(self, version: str, policy_set: str, label: str | None, sources: list[dict], at: int) -> None:
        """Keep a version's texts (once: a version already kept is left as it is)."""
        body = json.dumps(sources, separators=(",", ":"))
        with self._lock:
            try:
                self.db.execute("INSERT OR IGNORE INTO versions (id, policy_set, label, sources, at) VALUES (?, ?, ?, ?, ?)", (version, policy_set, label, body, at))
            except sqlite3.Error as e:
                raise self._fail(f"keep version {version[:12]}", e) from None

    def version(self, version: str) -> dict | None:
        """A kept version: ``{"version", "policy_set", "label", "sources", "at"}``, or None."""
        rows = self._read("read its versions", "SELECT id, policy_set, label, sources, at FROM versions WHERE id = ?", (version,))
        if not rows:
            return None
        v, ps, label, body, at = rows[0]
        try:
            return {"version": v, "policy_set": ps, "label": label, "sources": json.loads(body), "at": at}
        except ValueError:
            raise StoreError(f"store `{self.path}`: the texts of version {v[:12]} are not JSON: the file was edited or is corrupted") from None

    def versions(self) -> list[dict]:
        """Every kept version, without its texts, oldest first."""
        rows = self._read("read its versions", "SELECT id, policy_set, label, at FROM versions ORDER BY at, id")
        return [{"version": v, "policy_set": ps, "label": label, "at": at} for v, ps, label, at in rows]

    def add_rollout(self, at: int, mode: str, label: str | None, policy_set: str, policies: list[dict], by: str | None, report: dict) -> int:
        """Record a rollout (one transaction: it is there or not) and return its number."""
        with self._lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                seq = self.db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM rollouts").fetchone()[0]
                self.db.execute("INSERT INTO rollouts (seq, at, mode, label, policy_set, policies, by, report) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                (seq, at, mode, label, policy_set, json.dumps(policies, separators=(",", ":")), by, json.dumps(report, sort_keys=True, default=str)))
                self._crash.before_commit()
                self.db.execute("COMMIT")
            except BaseException as e:
                raise self._fail("record a policy rollout", e) from None
            self._crash.after_commit()
            return seq

    def last_rollout_seq(self) -> int:
        return self._read("read its rollouts", "SELECT COALESCE(MAX(seq), 0) FROM rollouts")[0][0]

    _ROLLOUT_COLUMNS = "seq, at, mode, label, policy_set, policies, by, report"

    def rollouts(self, with_policies: bool = False) -> list[dict]:
        """Every rollout, oldest first (``policies``, the texts, only ``with_policies``)."""
        rows = self._read("read its rollouts", f"SELECT {self._ROLLOUT_COLUMNS} FROM rollouts ORDER BY seq")
        return [self._rollout_row(r, with_policies) for r in rows]

    def rollout(self, seq: int) -> dict | None:
        """Rollout ``seq``, with its policies' texts, or None."""
        rows = self._read("read its rollouts", f"SELECT {self._ROLLOUT_COLUMNS} FROM rollouts WHERE seq = ?", (seq,))
        return self._rollout_row(rows[0], True) if rows else None

    def _rollout_row(self, row: tuple, with_policies: bool) -> dict:
        seq, at, mode, label, ps, pol, by, report = row
        try:
            r = {"seq": seq, "at": at, "mode": mode, "label": label, "policy_set": ps, "by": by, "report": json.loads(report)}
            if with_policies:
                r["policies"] = json.loads(pol)
        except ValueError:
            raise StoreError(f"store `{self.path}`: rollout {seq} is not JSON: the file was edited or is corrupted") from None
        return r

    def virtual_now(self) -> int:
        """The store's virtual clock: the latest time any simulated run has reached (from the
        projection's index, `run_index(clock, max_at)`: one look-up, whatever the store's size;
        from the events themselves when some run has no projection row)."""
        (indexed, runs, now), = self._read("read its clock", """SELECT (SELECT COUNT(*) FROM run_index i JOIN runs r ON r.id = i.run), (SELECT COUNT(*) FROM runs),
            (SELECT COALESCE(MAX(i.max_at), 0) FROM run_index i JOIN runs r ON r.id = i.run WHERE i.clock = 'virtual')""")
        if indexed == runs:
            return now
        return self._read("read its clock", "SELECT COALESCE(MAX(e.at), 0) FROM events e JOIN runs r ON r.id = e.run WHERE r.clock = 'virtual'")[0][0]

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
    keys = ("id", "key", "intent", "project", "created_at", "status", "updated_at", "clock", "request")
    return dict(zip(keys, row))


def post(store: Store, run_id: str, data: dict[str, Any]) -> None:
    """Queue an observation for a run (any process); its executor records it as an event."""
    with store._lock:
        try:
            store.db.execute("INSERT INTO inbox (run, data) VALUES (?, ?)", (run_id, json.dumps(data, sort_keys=True)))
        except sqlite3.Error as e:
            raise store._fail(f"queue an observation for run {run_id}", e) from None


def take(store: Store, run_id: str) -> list[tuple[int, dict]]:
    rows = store._read("read a run's inbox", "SELECT id, data FROM inbox WHERE run = ? AND taken = 0 ORDER BY id", (run_id,))
    return [(i, json.loads(d)) for i, d in rows]


def mark_taken(store: Store, ids: list[int]) -> None:
    with store._lock:
        for i in ids:
            store.db.execute("UPDATE inbox SET taken = 1 WHERE id = ?", (i,))
