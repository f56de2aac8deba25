"""Listing a store's runs. `report.list_runs` (`intento runs`, `GET /v1/runs`, the console) reads
the `run_index` projection and writes nothing to the store; tests/executor/test_projection.py
checks it against folding. The path it replaced, `report.folded_run_views` (kept for a store
without the projection, and as the reference), keeps each finished run's view in
`finished_views` and folds only unfinished runs: the stored views must give exactly what folding
the events gives, be ignored once they are not of a run's last event, and never be needed (a busy
store lists without writing them)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

import intento
from intento.execute import Scenario, Store
from intento.execute.report import folded_run_views, list_runs, run_view
from intento.execute.store import wall_ms
from intento.execute.world import World

ROOT = Path(__file__).resolve().parents[2]
US = {"customer.region": "us", "order.amount": "80 USD", "customer.email": "a@example.com"}


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    spec = intento.load(ROOT / "examples" / "order_fulfilment", ROOT / "policies").spec
    path = tmp_path_factory.mktemp("listing") / "s.db"
    scenario = Scenario.model_validate(json.loads((ROOT / "examples/order_fulfilment/scenarios/stripe_outage.json").read_text()))
    w = World(spec, path, scenario=scenario)
    store = Store(path)
    for i in range(3):
        ex = w.executor(store)
        ex.drive(ex.start("fulfil_order", dict(US, **{"customer.email": f"{i}@example.com"})))
    eu = w.executor(store)
    eu.drive(eu.start("fulfil_order", {"customer.region": "eu", "order.amount": "80 USD", "customer.email": "eu@example.com"},
                      state={"providers": {"adyen": {"status": "down"}}}))  # escalates: no EU payment provider is up
    w.executor(store).start("fulfil_order", dict(US, **{"customer.email": "waits@example.com"}))  # never driven
    store.close()
    return path


def _folded(store: Store) -> dict[str, dict]:
    """Every run's view folded from its events, read as `list_runs` reads it."""
    virtual, wall = store.virtual_now(), wall_ms()
    return {r["id"]: run_view(r, store.events(r["id"]), virtual if r["clock"] == "virtual" else wall, store.driver(r["id"]), wall) for r in store.runs()}


def _stored(store: Store) -> dict[str, int]:
    return dict(store.db.execute("SELECT run, seq FROM finished_views").fetchall())


def test_finished_runs_views_are_kept_and_equal_what_folding_gives(store_path):
    store = Store(store_path)
    try:
        store.db.execute("DELETE FROM finished_views")
        listed = list_runs(store, limit=100)
        assert _stored(store) == {}  # listing from the projection keeps nothing
        first = folded_run_views(store)
        folded = _folded(store)
        finished = {r for r, v in folded.items() if v["status"] in ("succeeded", "escalated")}
        assert len(finished) == 4 and "escalated" in {folded[r]["status"] for r in finished}
        assert set(_stored(store)) == finished  # the unfinished run is never kept
        assert {r: s for r, s in _stored(store).items()} == {r: store.events(r)[-1]["seq"] for r in finished}
        second = folded_run_views(store)
        assert second == first
        assert {v["run"]: v for v in second} == folded  # simulated runs: the same virtual now, so exactly equal
        assert {v["run"]: v for v in listed["runs"]} == folded
    finally:
        store.close()


def test_a_view_that_is_not_of_the_last_event_is_not_used(store_path):
    store = Store(store_path)
    try:
        folded_run_views(store)
        run, seq = next(iter(_stored(store).items()))
        bogus = dict(_folded(store)[run], status="cancelled", spent="999")
        store.db.execute("UPDATE finished_views SET seq = ?, body = ? WHERE run = ?", (seq - 1, json.dumps(bogus), run))
        view = next(v for v in folded_run_views(store) if v["run"] == run)
        assert view == _folded(store)[run] and view["status"] != "cancelled"
        assert _stored(store)[run] == seq  # and it is stored again, of the last event
        store.db.execute("UPDATE finished_views SET body = ? WHERE run = ?", ("not json", run))
        view = next(v for v in folded_run_views(store) if v["run"] == run)
        assert view == _folded(store)[run]
    finally:
        store.close()


def test_a_busy_store_lists_without_keeping_views(store_path):
    store = Store(store_path)
    other = sqlite3.connect(store_path, isolation_level=None, timeout=5)
    try:
        store.db.execute("DELETE FROM finished_views")
        other.execute("BEGIN IMMEDIATE")  # another process writing: the cache write must give way
        try:
            listed = list_runs(store, limit=100)
            folded = folded_run_views(store)
        finally:
            other.execute("ROLLBACK")
        assert _stored(store) == {}
        assert {v["run"]: v for v in listed["runs"]} == _folded(store) == {v["run"]: v for v in folded}
        assert store.keep_finished_views([]) is True
    finally:
        other.close()
        store.close()
