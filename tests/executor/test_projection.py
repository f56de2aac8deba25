"""The run projection (`run_index`, schema 8) and incremental folding (`state.fold_on`).

A run's state is the fold of its events; everything here is *derived* from that and must give
exactly what folding the whole log gives:

* `fold_on(fold(a), b) == fold(a + b)`, without changing `fold(a)`;
* the `run_index` row the store writes with each event (also when another `Store` instance
  created the run or appended to it meanwhile) is the row `report.Folded` gives from the log;
* `report.list_runs` (read from the projection) lists exactly what folding every run gives
  (`report.folded_run_views` + `report._list_views`, the way listing worked before);
* a schema-7 store gets its rows when it is opened; a missing or stale row is rebuilt;
* an event the fold cannot read never makes `append` fail;
* every state the executor hands out (its `progress` hook) is the fold of the log at that moment
  and never changes afterwards.

The reference is always a fresh fold of the events as the store returns them, never a value
copied from the code under test.
"""

from __future__ import annotations

import copy
import json
import sqlite3
import traceback
from pathlib import Path

import pytest

import intento
from intento.execute import Scenario, Store, post
from intento.execute import store as store_mod
from intento.execute.handlers import Registry
from intento.execute.report import Folded, LIST_STATUSES, _list_views, folded_run_views, list_runs, run_views
from intento.execute.state import RunState, UnreadableEvent, fold, fold_on
from intento.execute.store import INDEX_COLUMNS, SCHEMA_VERSION
from intento.execute.world import World
from tests.executor.test_engine import _until

ROOT = Path(__file__).resolve().parents[2]
US = {"customer.region": "us", "order.amount": "80 USD", "customer.email": "a@example.com"}
EU = {"customer.region": "eu", "order.amount": "80 USD", "customer.email": "b@example.com"}
SETTLE = {"customer.region": "eu", "settlement.date": "2026-11-24", "settlement.expected_total": "1200 USD"}

STRIPE_OUTAGE = json.loads((ROOT / "examples/order_fulfilment/scenarios/stripe_outage.json").read_text())
#: EU order, adyen (its only compliant payment provider) out for good: stock is reserved, then
#: released (compensated) and the run escalates.
ADYEN_DOWN = {"seed": 1, "providers": {"adyen": {"outages": [{"from": 0}]}, "wh_rotterdam": {"latency_sigma": 0}}}
#: EU order, mailjet (its only compliant notifier) out until 62 min: the run holds for cool-downs.
MAILJET_COOL_DOWN = {"seed": 2, "default": {"latency_sigma": 0}, "providers": {"mailjet": {"latency_sigma": 0, "outages": [{"from": 0, "to": "62m"}]}}}
#: The bank's settlement file never lands: the run switches to the manual fetch, the wait times out.
FILE_NEVER_LANDS = {"seed": 2, "facts": {"settlement.received": {"at": None}}}
PLAIN = {"seed": 1}


# ---- helpers ---------------------------------------------------------------------------------


def _state_dict(st: RunState) -> dict:
    """A state as plain field values (dataclasses compared field by field, steps included)."""
    return copy.deepcopy(vars(st))


def _db(path: Path) -> sqlite3.Connection:
    """A plain SQLite connection (not a `Store`: it neither migrates nor rebuilds anything)."""
    return sqlite3.connect(path, isolation_level=None, timeout=5)


def _rows(path: Path) -> dict[str, tuple]:
    """The `run_index` rows as stored, by run, read with plain sqlite3."""
    c = _db(path)
    try:
        return {r[0]: tuple(r) for r in c.execute(f"SELECT {', '.join(INDEX_COLUMNS)} FROM run_index")}
    finally:
        c.close()


def _expected_rows(store: Store) -> dict[str, tuple]:
    """Every run's row folded from its whole log (the reference)."""
    return {r["id"]: Folded.of(store.run(r["id"]), store.events(r["id"])).index_row() for r in store.runs()}


def _copy_store(src: Path, dst: Path) -> Path:
    """A consistent copy of a store file (WAL included), via SQLite's backup API."""
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()
    return dst


def _drive_until(ex, rid: str, pred, limit: int = 500) -> RunState:
    """Drive a simulated run through its loop (as `Executor.drive` does) until ``pred`` holds of
    its state, then stop (the lease row is left as the loop left it)."""
    gen = ex.steps(rid)
    assert gen is not None
    try:
        until = next(gen)
        for _ in range(limit):
            st = ex.current(rid)
            if pred(st):
                return st
            until = gen.send(ex.env.wait(until))
        raise AssertionError(f"run {rid} never reached the state wanted")
    finally:
        gen.close()


class Recorder:
    """A `progress` hook that checks, at every event an executor appends, that:

    * the state handed out is the fold of the run's log as it is now (read through a store
      instance of its own), of the event just appended;
    * the run's `run_index` row (read with plain sqlite3) is the row folded from the log;
    * every watched store's own fold of the run (`Store.folded`) is the fold of the log's first
      events, up to the event it is of.

    The executor swallows exceptions raised by a progress hook, so problems are collected and
    asserted on afterwards; every state handed out is kept (with a deep copy) to check it never
    changed later."""

    def __init__(self, path: Path):
        self.path = path
        self.reader = Store(path)
        self.watched: list[Store] = []
        self.problems: list[str] = []
        self.handed: list[tuple[str, int, RunState, dict]] = []
        self.calls: list[tuple[str, str]] = []
        self.shared_checked = 0
        self.on_event = None

    def __call__(self, type_: str, st: RunState, data: dict) -> None:
        try:
            self._check(type_, st)
        except Exception:  # noqa: BLE001 - recorded: the executor would swallow it
            self.problems.append(traceback.format_exc())
        if self.on_event is not None:
            self.on_event(type_, st, data)

    def _check(self, type_: str, st: RunState) -> None:
        rid = st.run
        events = self.reader.events(rid)
        self.calls.append((rid, type_))
        self.handed.append((rid, st.next_seq - 1, st, _state_dict(st)))
        if events[-1]["type"] != type_ or st.next_seq != events[-1]["seq"] + 1:
            self.problems.append(f"{rid}: handed the state of event {st.next_seq - 1} on `{type_}`, the log ends at {events[-1]['seq']} ({events[-1]['type']})")
        if _state_dict(st) != _state_dict(fold(events)):
            self.problems.append(f"{rid}: the state handed out on `{type_}` (event {events[-1]['seq']}) is not the fold of the log")
        expected = Folded.of(self.reader.run(rid), events).index_row()
        c = _db(self.path)
        try:
            row = c.execute(f"SELECT {', '.join(INDEX_COLUMNS)} FROM run_index WHERE run = ?", (rid,)).fetchone()
        finally:
            c.close()
        if row is None or tuple(row) != expected:
            self.problems.append(f"{rid}: run_index row after `{type_}` (event {events[-1]['seq']}) is {row}, folding the log gives {expected}")
        for s in self.watched:
            f = s.folded(rid)
            if f is None:
                continue
            self.shared_checked += 1
            prefix = [e for e in events if e["seq"] <= f.seq]
            ref = Folded.of(self.reader.run(rid), prefix)
            if _state_dict(f.st) != _state_dict(ref.st) or (f.plan_at, f.max_at) != (ref.plan_at, ref.max_at):
                self.problems.append(f"{rid}: store {id(s)}'s fold (of event {f.seq}) is not the fold of the log up to it")

    def unchanged(self) -> list[str]:
        """States handed out that changed after they were handed out, or that are not the fold
        of the log up to their event."""
        out = []
        for rid, seq, st, snap in self.handed:
            if _state_dict(st) != snap:
                out.append(f"{rid}: the state handed out at event {seq} changed afterwards")
            if snap != _state_dict(fold(self.reader.events(rid)[:seq])):
                out.append(f"{rid}: the state handed out at event {seq} is not the fold of its first {seq} events")
        return out

    def close(self) -> None:
        self.reader.close()


# ---- a store of real simulated runs, in every state ------------------------------------------


@pytest.fixture(scope="module")
def orders():
    return intento.load(ROOT / "examples" / "order_fulfilment", ROOT / "policies").spec


@pytest.fixture(scope="module")
def settlement():
    return intento.load(ROOT / "examples" / "settlement", ROOT / "policies" / "common").spec


@pytest.fixture(scope="module")
def corpus(orders, settlement, tmp_path_factory):
    """One store: finished runs (re-routed, escalated with compensation, held for cool-downs,
    cancelled mid-run, switched away from a late file and its wait dropped), unfinished ones
    (never driven, holding, awaiting a fact, a step in flight with a driver gone, giving up) and
    a wall-clock run, every simulated event checked by a `Recorder` as it was appended."""
    path = tmp_path_factory.mktemp("projection") / "s.db"
    rec = Recorder(path)
    store = Store(path)
    rec.watched.append(store)
    ids: dict[str, str] = {}

    def sim(spec, scenario: dict) -> World:
        return World(spec, path, scenario=Scenario.model_validate(scenario), progress=rec)

    def executor(world: World, name: str):
        ex = world.executor(store)
        ex.new_id = lambda: f"run-{name}"
        return ex

    def finished(spec, name: str, scenario: dict, intent: str, given: dict, state: dict | None = None):
        ex = executor(sim(spec, scenario), name)
        ids[name] = ex.start(intent, dict(given, **{"customer.email": f"{name}@example.com"}) if "customer.email" in given else given, state, key=name)
        ex.drive(ids[name])

    finished(orders, "outage", STRIPE_OUTAGE, "fulfil_order", US)
    finished(orders, "adyen-down", ADYEN_DOWN, "fulfil_order", EU)
    finished(orders, "cool-down", MAILJET_COOL_DOWN, "fulfil_order", EU)
    finished(settlement, "late-file", FILE_NEVER_LANDS, "settle_daily", SETTLE)

    # Cancelled by an operator once its first step has succeeded (posted from the progress hook,
    # taken from the inbox by the driving loop).
    ex = executor(sim(orders, PLAIN), "cancelled")
    ids["cancelled"] = ex.start("fulfil_order", dict(US, **{"customer.email": "cancelled@example.com"}), key="cancelled")

    def cancel_after_first_success(type_, st, data):
        if st.run == ids["cancelled"] and type_ == "step_succeeded" and not st.terminal:
            post(store, st.run, {"cancel": {"reason": "customer withdrew", "by": "test"}, "source": "test"})
            rec.on_event = None

    rec.on_event = cancel_after_first_success
    ex.drive(ids["cancelled"])
    rec.on_event = None

    # Unfinished runs.
    ids["never-driven"] = executor(sim(settlement, FILE_NEVER_LANDS), "never-driven").start("settle_daily", SETTLE, key="never-driven")
    ex = executor(sim(orders, MAILJET_COOL_DOWN), "holding")
    ids["holding"] = ex.start("fulfil_order", dict(EU, **{"customer.email": "holding@example.com"}), key="holding")
    _drive_until(ex, ids["holding"], lambda st: st.status == "running" and st.hold_until is not None)
    ex = executor(sim(settlement, FILE_NEVER_LANDS), "awaiting")
    ids["awaiting"] = ex.start("settle_daily", SETTLE, key="awaiting")
    _drive_until(ex, ids["awaiting"], lambda st: bool(st.awaiting()))
    ex = executor(sim(orders, PLAIN), "in-flight")
    ids["in-flight"] = ex.start("fulfil_order", dict(US, **{"customer.email": "in-flight@example.com"}), key="in-flight")
    _drive_until(ex, ids["in-flight"], lambda st: len(st.completed) >= 1 and bool(st.running()))
    ex = executor(sim(orders, ADYEN_DOWN), "giving-up")
    ids["giving-up"] = ex.start("fulfil_order", dict(EU, **{"customer.email": "giving-up@example.com"}), key="giving-up")
    _drive_until(ex, ids["giving-up"], lambda st: st.status == "giving_up")

    # A wall-clock run (real environment, no handlers needed: it is only created).
    real = World(orders, path, registry=Registry(), workers=1)
    try:
        ex = real.executor(store)
        ex.new_id = lambda: "run-wall"
        ids["wall"] = ex.create("fulfil_order", dict(US, **{"customer.email": "wall@example.com"}), key="wall")[0]
    finally:
        real.close()
    store.close()
    yield {"path": path, "ids": ids, "recorder": rec}
    rec.close()


def _statuses(path: Path) -> dict[str, str]:
    s = Store(path)
    try:
        return {r["id"]: fold(s.events(r["id"])).status for r in s.runs()}
    finally:
        s.close()


def test_the_corpus_has_runs_in_every_state_it_is_meant_to(corpus):
    """Not a check of the projection: it makes sure the other tests see the cases they claim."""
    st = _statuses(corpus["path"])
    ids = corpus["ids"]
    assert st[ids["outage"]] == "succeeded" and st[ids["cool-down"]] == "succeeded" and st[ids["late-file"]] == "succeeded"
    assert st[ids["adyen-down"]] == "escalated" and st[ids["cancelled"]] == "cancelled" and st[ids["giving-up"]] == "giving_up"
    assert {st[ids[k]] for k in ("never-driven", "holding", "awaiting", "in-flight", "wall")} == {"running"}
    s = Store(corpus["path"])
    try:
        types = {k: [e["type"] for e in s.events(ids[k])] for k in ids}
    finally:
        s.close()
    assert "step_failed" in types["outage"] and types["outage"].count("planned") > 1  # re-routed
    assert "compensated" in types["adyen-down"] and "holding" in types["cool-down"]
    assert "step_switched" in types["late-file"] and "wait_dropped" in types["late-file"]
    assert "step_succeeded" in types["cancelled"] and types["cancelled"][-1] == "cancelled"


# ---- 1. fold_on --------------------------------------------------------------------------------


def test_fold_on_at_every_split_point_equals_the_whole_fold_and_leaves_the_prefix_alone(corpus):
    s = Store(corpus["path"])
    try:
        logs = {r["id"]: (r, s.events(r["id"])) for r in s.runs()}
    finally:
        s.close()
    assert len(logs) == len(corpus["ids"])
    for rid, (row, events) in logs.items():
        whole = _state_dict(fold(events))
        whole_folded = Folded.of(row, events)
        for k in range(len(events) + 1):
            prefix = fold(events[:k])
            before = _state_dict(prefix)
            advanced = fold_on(prefix, events[k:])
            assert _state_dict(advanced) == whole, f"{rid}: fold_on(fold(events[:{k}]), events[{k}:]) != fold(events)"
            assert advanced == fold(events)  # the dataclasses' own equality agrees
            assert _state_dict(prefix) == before == _state_dict(fold(events[:k])), f"{rid}: fold_on changed the state it was given (split {k})"
            if k < len(events):
                assert advanced is not prefix
            # The listing's fold (state + last plan time + latest event time) splits the same way.
            f = Folded.of(row, events[:k]).advanced(events[k:])
            assert (f.seq, f.plan_at, f.max_at, f.index_row()) == (whole_folded.seq, whole_folded.plan_at, whole_folded.max_at, whole_folded.index_row())
        # Event by event, as the executor advances: no state handed out changes afterwards.
        chain, st = [], RunState()
        for ev in events:
            st = fold_on(st, [ev])
            chain.append((st, _state_dict(st)))
        assert _state_dict(st) == whole
        for i, (handed, snap) in enumerate(chain):
            assert _state_dict(handed) == snap == _state_dict(fold(events[: i + 1])), f"{rid}: the state after event {i + 1} changed later"


# ---- 2. the rows the store writes --------------------------------------------------------------


def test_every_run_index_row_is_the_row_folded_from_its_log(corpus):
    path = corpus["path"]
    stored = _rows(path)  # read before any `Store` could rebuild anything
    s = Store(path)
    try:
        expected = _expected_rows(s)
        assert set(stored) == set(expected) == set(corpus["ids"].values())
        for rid in expected:
            assert stored[rid] == expected[rid], rid
        # Finished runs carry their view; unfinished ones are folded when listed.
        assert all((row[-1] is not None) == (row[2] in store_mod.TERMINAL) for row in stored.values())
        # `run_index()` has nothing to rebuild and gives the rows without their body.
        assert {r[0]: tuple(r) for r in s.run_index()} == {k: v[:-1] for k, v in expected.items()}
        assert _rows(path) == stored
        # The store's virtual clock is the latest event time of its simulated runs.
        latest = max(e["at"] for r in s.runs() if r["clock"] == "virtual" for e in s.events(r["id"]))
        assert s.virtual_now() == latest
    finally:
        s.close()


def test_rows_and_states_when_another_store_created_the_run(orders, tmp_path):
    """The setting of the double-apply bug: the run is created through one `Store` instance and
    its events appended through another (an engine's own store, as `intento serve` has), and
    back again. Every row, every store's fold and every state handed out is checked at every
    event, against the log."""
    db = tmp_path / "s.db"
    rec = Recorder(db)
    creator = Store(db)
    rec.watched.append(creator)
    try:
        # (a) created by `creator`, driven to the end by an engine with a store of its own.
        world = World(orders, db, scenario=Scenario.model_validate(dict(MAILJET_COOL_DOWN, providers=dict(MAILJET_COOL_DOWN["providers"], stripe={"outages": [{"from": 0, "to": "2h"}]}))), progress=rec)
        ex = world.executor(creator)
        by_engine = [ex.create("fulfil_order", US)[0], ex.create("fulfil_order", EU)[0]]
        engine_store = Store(db)
        rec.watched.append(engine_store)
        world.engine(engine_store).run(until_idle=True)
        _until(lambda: all(creator.run(r)["status"] == "succeeded" for r in by_engine), "the engine's runs to succeed", 60)

        # (b) created by `creator`, driven part of the way through `other`, then to the end
        # through `creator` again, whose own fold of the run is still of its first event.
        world = World(orders, db, scenario=Scenario.model_validate(STRIPE_OUTAGE), progress=rec)
        ex = world.executor(creator)
        rid = ex.create("fulfil_order", dict(US, **{"customer.email": "relay@example.com"}))[0]
        other = Store(db)
        rec.watched.append(other)
        ex_other = world.executor(other)
        _drive_until(ex_other, rid, lambda st: len(st.completed) >= 1 and st.plans >= 2)
        ex_other.release(rid)
        assert creator.folded(rid) is not None and creator.folded(rid).seq == 1  # stale on purpose
        final = world.executor_for(rid, creator).drive(rid)
        assert final.status == "succeeded"

        appended = [t for r, t in rec.calls if r == rid]
        assert len(appended) == len(creator.events(rid))  # every event was checked as it came
        assert rec.shared_checked > 0
        assert rec.problems == []
        assert rec.unchanged() == []
        writers = {w for w in creator.writers(rid) if w}
        assert len(writers) == 2  # two drivers really appended to the log
        # And after the fact, every row is the folded one.
        expected = _expected_rows(creator)
        assert _rows(db) == expected
        for r in [*by_engine, rid]:
            assert expected[r][2] == "succeeded"
        engine_store.close()
        other.close()
    finally:
        creator.close()
        rec.close()


# ---- 3. listing --------------------------------------------------------------------------------


@pytest.fixture
def frozen_wall(monkeypatch):
    """Both listings judge wall-clock things at `wall_ms()`: a wall-clock run's `now_ms`, `idle_ms`
    and deadline left, and whether a driver is alive (its heartbeat's age). Called twice, they
    would read two different instants; the wall clock is frozen so both read the same one. The
    simulated runs are read at the store's virtual clock (`virtual_now`), which nothing moves
    between the calls. So the two listings can be compared whole, no key left out."""
    now = store_mod.wall_ms()
    monkeypatch.setattr(store_mod, "wall_ms", lambda: now)
    return now


def _set_drivers(path: Path, ids: dict[str, str], now: int) -> None:
    """The holding and awaiting runs' drivers beat at ``now`` (alive: they are judged driven);
    the in-flight run's driver stopped an hour ago (a driver row, but not driven)."""
    c = _db(path)
    try:
        held = {r[0] for r in c.execute("SELECT run FROM drivers")}
        assert {ids["holding"], ids["awaiting"], ids["in-flight"], ids["giving-up"]} <= held
        c.execute("UPDATE drivers SET heartbeat = ?", (now,))
        c.execute("UPDATE drivers SET heartbeat = ? WHERE run = ?", (now - 3_600_000, ids["in-flight"]))
    finally:
        c.close()


def _reference(store: Store) -> list[dict]:
    """Every run's view folded from its log, as listing made them before the projection. The
    finished views `list_runs` keeps are removed first, so nothing of the projection leaks in."""
    store.db.execute("DELETE FROM finished_views")
    return folded_run_views(store)


def _filters(full: dict) -> list[dict]:
    out = [dict(limit=100)]
    out += [dict(status=s, limit=100) for s in LIST_STATUSES]
    out += [dict(intent=i, limit=100) for i in ("fulfil_order", "settle_daily", "express_order")]
    out += [dict(stalled=b, limit=100) for b in (True, False)]
    out += [dict(search=q, limit=100) for q in ("outage", "SETTLE", "run-", "  cool  ", "nothing-like-this")]
    out += [dict(waits_on=w["waits_on"], limit=100) for w in full["waits"]] + [dict(waits_on="no such group", limit=100)]
    out += [dict(limit=3, offset=o) for o in range(0, full["total"] + 3, 3)] + [dict(limit=1, offset=full["total"] - 1), dict(limit=0)]
    out += [
        dict(status="running", stalled=True),
        dict(status="running", intent="fulfil_order", limit=1, offset=1),
        dict(intent="fulfil_order", search="down", limit=2),
        dict(stalled=True, waits_on="not driven", limit=1),
        dict(status="succeeded", search="late", offset=0, limit=5),
    ]
    return out


def test_list_runs_from_the_projection_equals_folding_every_run(corpus, frozen_wall, tmp_path):
    path = _copy_store(corpus["path"], tmp_path / "list.db")
    _set_drivers(path, corpus["ids"], frozen_wall)
    s = Store(path)
    try:
        full = list_runs(s, limit=100)
        # The listing has what the comparisons below are meant to cover.
        views = {v["run"]: v for v in full["runs"]}
        ids = corpus["ids"]
        assert full["total"] == len(ids)
        assert views[ids["holding"]]["holding"] and views[ids["holding"]]["driven"]
        assert views[ids["in-flight"]]["driven"] is False and views[ids["in-flight"]]["driver"] is not None
        assert views[ids["never-driven"]]["waits_on"] == "not driven" and views[ids["wall"]]["clock"] == "wall"
        assert len(full["waits"]) >= 3
        assert run_views(s) == _reference(s)
        for kw in _filters(full):
            args = {"status": None, "intent": None, "stalled": None, "limit": 100, "offset": 0, "search": None, "waits_on": None} | kw
            got = list_runs(s, **args)
            want = _list_views(_reference(s), args["status"], args["intent"], args["stalled"], args["limit"], args["offset"], args["search"], args["waits_on"])
            assert got == want, kw
        # Some filters really narrow the list (the comparisons are not all of empty pages).
        assert 0 < list_runs(s, status="holding")["total"] < full["total"]
        assert 0 < list_runs(s, stalled=True)["total"] < full["total"]
    finally:
        s.close()


# ---- 4. a schema-7 store ------------------------------------------------------------------------


def test_a_schema_7_store_gets_its_rows_when_opened_and_lists_the_same(corpus, frozen_wall, tmp_path):
    original = _copy_store(corpus["path"], tmp_path / "eight.db")
    old = _copy_store(corpus["path"], tmp_path / "seven.db")
    for p in (original, old):
        _set_drivers(p, corpus["ids"], frozen_wall)
    c = _db(old)
    try:
        c.execute("DROP TABLE run_index")
        c.execute("UPDATE schema_version SET version = 7")
    finally:
        c.close()
    migrated = Store(old)
    try:
        c = _db(old)
        try:
            assert c.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
            indexes = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'run_index'")}
        finally:
            c.close()
        assert {"run_index_status", "run_index_intent", "run_index_clock"} <= indexes
        # Rows are there as soon as the store is open (read before `run_index()` could rebuild).
        rows = _rows(old)
        expected = _expected_rows(migrated)
        assert set(rows) == set(corpus["ids"].values())
        assert rows == expected
        assert rows == _rows(original)
        s8 = Store(original)
        try:
            for kw in (dict(limit=100), dict(status="running"), dict(stalled=True, limit=2, offset=1), dict(search="down")):
                assert list_runs(migrated, **kw) == list_runs(s8, **kw), kw
            assert list_runs(migrated, limit=100) == _list_views(_reference(migrated), None, None, None, 100, 0, None, None)
            assert migrated.virtual_now() == s8.virtual_now()
        finally:
            s8.close()
    finally:
        migrated.close()


# ---- 5. stale and missing rows ------------------------------------------------------------------


def _orphan_row(path: Path, max_at: int) -> None:
    """A `run_index` row of a run the store does not have (plain sqlite3 does not enforce the
    foreign key)."""
    c = _db(path)
    try:
        c.execute(f"INSERT INTO run_index ({', '.join(INDEX_COLUMNS)}) VALUES ({', '.join('?' * len(INDEX_COLUMNS))})",
                  ("run-gone", 1, "running", "fulfil_order", "virtual", 0, 0, max_at, None, None, 0, "planning", None, None))
    finally:
        c.close()


def test_a_missing_or_stale_row_is_rebuilt_by_run_index(corpus, frozen_wall, tmp_path):
    path = _copy_store(corpus["path"], tmp_path / "stale.db")
    _set_drivers(path, corpus["ids"], frozen_wall)
    ids = corpus["ids"]
    s = Store(path)
    try:
        expected = _expected_rows(s)
        want_list = list_runs(s, limit=100)
        latest = s.virtual_now()
        assert latest == max(e["at"] for e in s.events(ids["late-file"]))  # the run that goes on longest
        c = _db(path)
        try:
            c.execute("DELETE FROM run_index WHERE run = ?", (ids["late-file"],))
            # A finished run's row set back an event, with a status and body of its own.
            c.execute("UPDATE run_index SET seq = seq - 1, status = 'running', body = '{}' WHERE run = ?", (ids["outage"],))
            # An unfinished run's row set back to its first event.
            c.execute("UPDATE run_index SET seq = 1, status = 'running', waits_on = 'planning', holding = 0, max_at = 0 WHERE run = ?", (ids["holding"],))
        finally:
            c.close()
        # With a row missing, the virtual clock is read from the events themselves.
        assert s.virtual_now() == latest
        _orphan_row(path, 10)
        rebuilt = {r[0]: tuple(r) for r in s.run_index()}
        assert rebuilt == {k: v[:-1] for k, v in expected.items()}
        assert _rows(path) == expected  # written again, bodies included; the orphan row is gone
        assert s.virtual_now() == latest
        assert list_runs(s, limit=100) == want_list
        assert list_runs(s, status="holding")["runs"][0]["run"] == ids["holding"]
    finally:
        s.close()


def test_a_row_of_no_run_does_not_stand_in_for_a_missing_one(corpus, tmp_path):
    path = _copy_store(corpus["path"], tmp_path / "orphan.db")
    ids = corpus["ids"]
    s = Store(path)
    try:
        latest = s.virtual_now()
        c = _db(path)
        try:
            c.execute("DELETE FROM run_index WHERE run = ?", (ids["late-file"],))
        finally:
            c.close()
        _orphan_row(path, 10**12)
        assert s.virtual_now() == latest
    finally:
        s.close()


# ---- 6. events the fold cannot read -------------------------------------------------------------


BAD_EVENTS = [
    ("step_dispatched", {"action": "charge_payment", "provider": "stripe", "attempt": 1}),  # no key
    ("observation", {"fact": "customer.verified", "source": "test"}),  # readable, after an unreadable one
    ("step_failed", {"action": "charge_payment", "error": "no provider named"}),  # no provider
]


def _fresh_run(spec, path: Path, name: str) -> tuple[Store, str, str]:
    store = Store(path)
    world = World(spec, path, scenario=Scenario.model_validate(PLAIN))
    ex = world.executor(store)
    ex.new_id = lambda: f"run-{name}"
    bad = ex.start("fulfil_order", dict(US, **{"customer.email": f"{name}@example.com"}))
    ex.new_id = lambda: f"run-{name}-ok"
    good = ex.start("fulfil_order", dict(US, **{"customer.email": f"{name}-ok@example.com"}))
    return store, bad, good


def test_an_event_the_fold_cannot_read_is_appended_all_the_same(orders, tmp_path):
    path = tmp_path / "bad.db"
    store, bad, good = _fresh_run(orders, path, "bad")
    other = Store(path)
    try:
        written = store.events(bad)
        for i, (type_, data) in enumerate(BAD_EVENTS):
            writer = store if i % 2 == 0 else other  # through the run's creator and through another store
            seq = written[-1]["seq"] + 1
            at = 1_000 * (i + 1)
            assert writer.append(bad, seq, type_, at, data) is True
            written.append({"seq": seq, "type": type_, "at": at, "data": data})
            assert store.events(bad) == written  # every event stored, as written
        with pytest.raises(UnreadableEvent, match=r"event 2 \(step_dispatched\) cannot be read \(its data has no `key`\)"):
            fold(written)  # really unreadable, and said so
        rows = _rows(path)
        assert bad not in rows  # its row is dropped, not left stale
        assert store.folded(bad) is None and other.folded(bad) is None
        assert rows[good] == Folded.of(store.run(good), store.events(good)).index_row()  # the other run is untouched
        # The clock no longer comes from the projection alone: from the events, it is still right.
        assert store.virtual_now() == max(e["at"] for r in store.runs() for e in store.events(r["id"]))
        # The store still takes the other run's events, with their rows.
        seq = store.events(good)[-1]["seq"] + 1
        assert store.append(good, seq, "observation", 7, {"fact": "x", "source": "test"})
        assert _rows(path)[good] == Folded.of(store.run(good), store.events(good)).index_row()
    finally:
        other.close()
        store.close()


def test_listing_a_store_with_an_unreadable_event_leaves_it_writable(orders, tmp_path):
    path = tmp_path / "bad.db"
    store, bad, good = _fresh_run(orders, path, "bad")
    try:
        assert store.append(bad, 2, BAD_EVENTS[0][0], 1_000, BAD_EVENTS[0][1])
        try:
            store.run_index()  # the unreadable run has no row: it is folded again here
        except Exception:  # noqa: BLE001 - whether listing such a store fails is not what is checked
            pass
        assert not store.db.in_transaction, "run_index() left a transaction open"
        other = sqlite3.connect(path, isolation_level=None, timeout=0.5)
        try:
            other.execute("BEGIN IMMEDIATE")  # another process can still write
            other.execute("ROLLBACK")
        finally:
            other.close()
        seq = store.events(good)[-1]["seq"] + 1
        assert store.append(good, seq, "observation", 7, {"fact": "x", "source": "test"})
    finally:
        store.close()


def test_a_schema_7_store_with_an_unreadable_event_still_opens(orders, tmp_path):
    path = tmp_path / "bad7.db"
    store, bad, good = _fresh_run(orders, path, "bad")
    try:
        assert store.append(bad, 2, BAD_EVENTS[0][0], 1_000, BAD_EVENTS[0][1])
    finally:
        store.close()
    c = _db(path)
    try:
        c.execute("DROP TABLE run_index")
        c.execute("UPDATE schema_version SET version = 7")
    finally:
        c.close()
    reopened = Store(path)
    try:
        assert len(reopened.events(bad)) == 2
        assert _rows(path)[good] == Folded.of(reopened.run(good), reopened.events(good)).index_row()
        assert reopened.append(bad, 3, "observation", 2_000, {"fact": "x", "source": "test"})
    finally:
        reopened.close()


# ---- 7. the states the executor hands out -------------------------------------------------------


def test_every_state_the_executor_hands_out_is_the_fold_of_the_log_then(corpus):
    rec: Recorder = corpus["recorder"]
    s = Store(corpus["path"])
    try:
        simulated = [r["id"] for r in s.runs() if r["clock"] == "virtual"]
        # Every event of every simulated run went through the hook (the run's creation included).
        for rid in simulated:
            assert [t for r, t in rec.calls if r == rid] == [e["type"] for e in s.events(rid)], rid
    finally:
        s.close()
    assert rec.shared_checked > 0  # the store's own folds were compared too
    assert rec.problems == []
    assert rec.unchanged() == []
