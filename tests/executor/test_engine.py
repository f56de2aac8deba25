"""The engine: one thread drives every run of a store; a waiting run holds no thread; runs are
cancelled with compensation; a provider's capacity holds across runs; leases are fenced."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

import intento
from intento.execute import Store, post
from intento.execute.store import LeaseLost
from intento.execute.world import World
from tests.executor.test_durable_waits import PROJECT
from tests.executor.wait_handlers import registry as wait_registry

ROOT = Path(__file__).resolve().parents[2]


def _until(check, what: str, seconds: float = 60.0):
    """Wait for a condition, within a bound (never a fixed sleep for ordering)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def spec(tmp_path):
    d = tmp_path / "project"
    d.mkdir()
    (d / "p.intent").write_text(PROJECT)
    return intento.load(d).spec


def _engine(world: World, db: Path):
    engine = world.engine(Store(db))
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    return engine, thread


def test_many_waiting_runs_hold_no_thread_and_end_on_their_fact_or_cancelled_with_compensation(spec, tmp_path):
    db = tmp_path / "s.db"
    world = World(spec, db, registry=wait_registry, workers=4)
    store = Store(db)
    before = threading.active_count()
    engine, thread = _engine(world, db)
    try:
        ex = world.executor(store)
        ids = [ex.create("settle", {}, key=f"run-{i}")[0] for i in range(120)]
        for rid in ids:
            engine.notify_new(rid)

        def all_awaiting():
            return all(any(e["type"] == "step_dispatched" and e["data"].get("external") for e in store.events(r)) for r in ids)

        _until(all_awaiting, "every run to await its external fact", 120)
        # 120 runs wait at once: the engine thread and the (idle) handler pool, nothing per run.
        assert threading.active_count() <= before + 1 + 4
        assert set(engine.live) == set(ids)
        for rid in ids[:60]:
            post(store, rid, {"fact": "file.received", "source": "test"})
        for rid in ids[60:]:
            post(store, rid, {"cancel": {"reason": "customer withdrew", "by": "test"}, "source": "test"})
        _until(lambda: all(store.run(r)["status"] in ("succeeded", "cancelled") for r in ids), "every run to end", 120)
    finally:
        engine.stop()
        thread.join(timeout=30)
        world.close()
    assert [store.run(r)["status"] for r in ids] == ["succeeded"] * 60 + ["cancelled"] * 60
    for rid in ids[60:]:
        events = store.events(rid)
        kinds = [e["type"] for e in events]
        # the wait is dropped, the completed `prepare` undone, and the run ends cancelled
        assert kinds.index("wait_dropped") < kinds.index("compensating") < kinds.index("compensated") < kinds.index("cancelled") == len(kinds) - 1
        outcome = events[-1]["data"]
        assert outcome["cancelled"]["reason"] == "customer withdrew" and outcome["cancelled"]["by"] == "test"
        assert outcome["compensated"] == ["prepare"]
    assert not store.slots() and not engine.live


CAPACITY = """
provider one { region "eu"; capacity 1 }

action use_one {
  achieves used
  idempotent
  via one { cost 1 USD; latency 1s }
}

intent use {
  given n: number
  goal used
  minimize cost
}
"""


def test_a_capacity_one_provider_is_never_used_by_two_runs_at_once(tmp_path, monkeypatch):
    from tests.executor.capacity_handlers import registry

    d = tmp_path / "cap"
    d.mkdir()
    (d / "p.intent").write_text(CAPACITY)
    spec = intento.load(d).spec
    intervals = tmp_path / "intervals.jsonl"
    monkeypatch.setenv("INTENTO_TEST_INTERVALS", str(intervals))
    db = tmp_path / "s.db"
    world = World(spec, db, registry=registry, workers=8)
    store = Store(db)
    engine, thread = _engine(world, db)
    try:
        ex = world.executor(store)
        ids = [ex.create("use", {"n": i})[0] for i in range(6)]
        for rid in ids:
            engine.notify_new(rid)
        _until(lambda: all(store.run(r)["status"] == "succeeded" for r in ids), "every run to succeed", 120)
    finally:
        engine.stop()
        thread.join(timeout=30)
        world.close()
    spans = sorted((r["start"], r["end"]) for r in map(json.loads, intervals.read_text().splitlines()))
    assert len(spans) == 6
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, f"two runs held `one` (capacity 1) at once: {spans}"
    assert not store.slots()


def test_a_driver_that_lost_its_lease_cannot_append(spec, tmp_path):
    db = tmp_path / "s.db"
    world = World(spec, db, registry=wait_registry)
    store = Store(db)
    try:
        a = world.executor(store)
        rid = a.create("settle", {}, key="lease")[0]
        assert a.steps(rid) is not None
        b = world.executor(Store(db))
        assert b.steps(rid) is None  # a live driver holds it
        # a's lease expires (it stopped beating): b takes the run over, and a is fenced off
        store.db.execute("UPDATE drivers SET heartbeat = heartbeat - 3600000 WHERE run = ?", (rid,))
        assert b.steps(rid) is not None
        seq = store.events(rid)[-1]["seq"] + 1
        with pytest.raises(LeaseLost):
            a._append(rid, seq, "observation", 0, {"fact": "x"})
        assert b._append(rid, seq, "observation", 0, {"fact": "x"})
        assert [e["type"] for e in store.events(rid)].count("observation") == 1
    finally:
        world.close()


def test_simulated_runs_wait_for_a_slot_instead_of_giving_up(tmp_path):
    from intento.execute import Scenario

    d = tmp_path / "cap"
    d.mkdir()
    (d / "p.intent").write_text(CAPACITY)
    spec = intento.load(d).spec
    db = tmp_path / "s.db"
    world = World(spec, db, scenario=Scenario(seed=3))
    store = Store(db)
    ex = world.executor(store)
    ids = [ex.create("use", {"n": i})[0] for i in range(4)]
    engine = world.engine(Store(db))
    engine.run(until_idle=True)
    assert [store.run(r)["status"] for r in ids] == ["succeeded"] * 4
    # in the order the store committed them, `one` is never dispatched while it is held
    held = None
    for run, kind, data in store.db.execute("SELECT run, type, data FROM events ORDER BY rowid"):
        if kind == "step_dispatched":
            assert held is None, f"{run} dispatched on `one` while {held} held it"
            held = run
        elif kind == "step_succeeded":
            assert held == run
            held = None


def test_a_handler_exception_is_logged_with_its_traceback(tmp_path, caplog):
    import logging

    from intento.execute import Registry

    registry = Registry()

    @registry.handler("use_one")
    def broken(ctx):
        raise ZeroDivisionError("the handler's own bug")

    d = tmp_path / "cap"
    d.mkdir()
    (d / "p.intent").write_text(CAPACITY)
    spec = intento.load(d).spec
    db = tmp_path / "s.db"
    world = World(spec, db, registry=registry, workers=1)
    store = Store(db)
    rid = world.executor(store).create("use", {"n": 1})[0]
    with caplog.at_level(logging.ERROR, logger="intento.handlers"):
        world.engine(Store(db)).run(until_idle=True)
    world.close()
    errors = [e["data"]["error"] for e in store.events(rid) if e["type"] == "step_failed"]
    assert errors and errors[0] == "ZeroDivisionError: the handler's own bug"  # a failure of the step, not of the engine
    failed = [r for r in caplog.records if r.name == "intento.handlers"]
    assert failed and failed[0].exc_info and failed[0].exc_info[0] is ZeroDivisionError
    assert failed[0].fields["run"] == rid and failed[0].fields["action"] == "use_one"


def test_traces_a_span_per_run_with_its_plans_and_steps_inside(tmp_path):
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from intento.execute import Scenario
    from intento.tracing import Tracer

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spec = intento.load(ROOT / "examples" / "order_fulfilment", ROOT / "policies").spec
    db = tmp_path / "s.db"
    scenario = Scenario.model_validate({"seed": 2, "providers": {"stripe": {"outages": [{"from": "0s", "to": "1h"}]}}})
    world = World(spec, db, scenario=scenario, progress=Tracer(provider).hook)
    store = Store(db)
    ids = [world.executor(store).create("fulfil_order", {"customer.region": "us", "order.amount": "80 USD", "customer.email": f"secret{i}@example.com"})[0] for i in range(2)]
    world.engine(Store(db)).run(until_idle=True)
    spans = exporter.get_finished_spans()
    runs = {s.attributes["intento.run"]: s for s in spans if s.name.startswith("run ")}
    assert set(runs) == set(ids)
    for rid, run_span in runs.items():
        inside = [s for s in spans if s.parent is not None and s.parent.span_id == run_span.context.span_id]
        plans = [s for s in inside if s.name.startswith("plan #")]
        steps = [s for s in inside if s.name.startswith("step ")]
        assert plans and steps and all(s.attributes["intento.run"] == rid for s in inside)
        assert any(s.attributes.get("intento.outcome") == "failed" for s in steps)  # stripe is down: a failed step, marked
        assert run_span.attributes["intento.outcome"] == store.run(rid)["status"]
        assert all(run_span.start_time <= s.start_time <= s.end_time <= run_span.end_time for s in inside)
    assert "example.com" not in repr([dict(s.attributes) for s in spans])


TIMER = """
provider quick { region "eu" }
provider bank { region "eu" }

action prepare {
  achieves work.prepared
  undo unprepare
  idempotent
  via quick { cost 1 USD; latency 1s }
}

action unprepare {
  achieves work.unprepared
  via quick { latency 1s }
}

action file_arrives {
  external
  requires work.prepared
  achieves file.received
  timeout 2s
  via bank { latency 1s }
}

intent settle {
  goal file.received
  minimize cost
}
"""


def test_a_timer_set_before_a_restart_fires_after_it_never_early(tmp_path):
    d = tmp_path / "timer"
    d.mkdir()
    (d / "p.intent").write_text(TIMER)
    spec = intento.load(d).spec
    db = tmp_path / "s.db"
    first = World(spec, db, registry=wait_registry)
    store = Store(db)
    rid = first.executor(store).create("settle", {})[0]
    engine, thread = _engine(first, db)
    try:
        due = _until(lambda: next((e["data"]["due"] for e in store.events(rid) if e["type"] == "step_dispatched" and e["data"].get("external")), None), "the fact to be awaited")
    finally:
        engine.stop()  # the engine stops (a restart) while the run waits
        thread.join(timeout=30)
        first.close()
    assert store.run(rid)["status"] == "running" and not [e for e in store.events(rid) if e["type"] == "step_timed_out"]
    second = World(spec, db, registry=wait_registry)
    engine, thread = _engine(second, db)
    try:
        _until(lambda: store.run(rid)["status"] in ("escalated", "succeeded"), "the run to end after its timer fired", 60)
    finally:
        engine.stop()
        thread.join(timeout=30)
        second.close()
    events = store.events(rid)
    fired = [e for e in events if e["type"] == "step_timed_out"]
    assert len(fired) == 1 and fired[0]["at"] >= due and fired[0]["data"]["external"]
    writers = store.writers(rid)
    assert writers[events.index(fired[0])] == engine.owner  # the new engine fired it, from the log
