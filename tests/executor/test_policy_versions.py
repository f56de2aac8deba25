"""Policy versions: each run and decision records the version that judged it, runs stay on their
version, `impact` says what a new set would do to every unfinished run, and `rollout` migrates
them as its mode says; a completed step is never judged again."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest

import intento
from intento.audit import read_records, replay
from intento.execute import Store, post
from intento.execute.rollout import impact, rollout
from intento.execute.world import World
from intento.solve import plan_problem, prepare
from intento.versions import load_policy_set, spec_from_kept, with_policy_set
from tests.console.settlement_handlers import registry
from tests.executor.test_engine import _until

ROOT = Path(__file__).resolve().parents[2]
GIVEN = {"customer.region": "eu", "settlement.date": "2026-11-24", "settlement.expected_total": "1200 USD"}
KEEP = '''
policy verified_before_posting "Nothing reaches the ledger unverified" {
  require settlement.verified before post_to_ledger
}
'''
#: Changes the remaining plan: the EU cluster is closed, so the transform goes to the burst cluster.
CHANGED = KEEP + '''
policy no_etl_eu "The EU cluster is being retired" {
  forbid provider etl_eu
}
'''
#: Leaves the transform no option at all: residency and the EU cluster closed together.
BREAKS = CHANGED + '''
policy ledger_data_in_eu "Ledger data is processed only in the EU" {
  forbid via where region != "eu"
}
'''



def _set(tmp_path: Path, name: str, text: str) -> list[dict]:
    d = tmp_path / name
    d.mkdir()
    (d / "policies.intent").write_text(text)
    return load_policy_set(d)


@contextmanager
def _running(tmp_path, handlers):
    """The settlement example with these handlers, and an engine driving its store in a thread:
    (world, a store of the test's own, the engine, the spec)."""
    spec = intento.load(ROOT / "examples/settlement", ROOT / "policies/common").spec
    db = tmp_path / "s.db"
    w = World(spec, db, registry=handlers, workers=2)
    store = Store(db)
    engine = w.engine(Store(db))
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    try:
        yield w, store, engine, spec
    finally:
        engine.stop()
        thread.join(30)
        w.close()


@pytest.fixture
def world(tmp_path):
    with _running(tmp_path, registry) as (w, store, engine, spec):
        yield w, store, engine, spec, tmp_path


def _start(w, store, engine, n: int, prefix: str) -> list[str]:
    ex = w.executor(store)
    ids = [ex.create("settle_daily", GIVEN, key=f"{prefix}-{i}")[0] for i in range(n)]
    for rid in ids:
        engine.notify_new(rid)
    for rid in ids:  # each waits for the bank's file
        _until(lambda rid=rid: any(e["type"] == "step_dispatched" and e["data"]["action"] == "settlement_file_lands" for e in store.events(rid)), f"{rid} to wait")
    return ids


def _types(store, rid):
    return [e["type"] for e in store.events(rid)]


def test_runs_and_decisions_record_their_version_and_its_texts_are_kept(world):
    w, store, engine, spec, _ = world
    [rid] = _start(w, store, engine, 1, "v")
    first = store.events(rid)[0]["data"]
    assert first["version"] == spec.fingerprint and len(first["policy_set"]) == 64
    planned = [e["data"] for e in store.events(rid) if e["type"] == "planned"]
    assert planned and all(p["version"] == spec.fingerprint for p in planned)
    kept = store.version(spec.fingerprint)
    assert spec_from_kept(kept["sources"]).fingerprint == spec.fingerprint


def test_impact_numbers_match_what_the_runs_do_after_a_migrating_rollout(world):
    w, store, engine, spec, tmp = world
    ids = _start(w, store, engine, 3, "m")
    changed = _set(tmp, "changed", CHANGED)
    report = impact(store, changed)
    rows = {r["run"]: r for r in report["runs"]}
    assert report["breaks"] == 0 and report["counts"]["changed"] == 3
    for rid in ids:
        assert rows[rid]["moves"] == ["transform_file: etl_eu -> etl_burst"]
        assert Decimal(rows[rid]["delta"]["cost"]) == Decimal("1")
    seq, _ = rollout(store, changed, "migrate", label="retire-etl-eu")
    for rid in ids:  # a running engine migrates its waiting runs at once
        _until(lambda rid=rid: "policy_migrated" in _types(store, rid) and _types(store, rid)[-1] != "policy_migrated", f"{rid} to migrate and re-plan")
        evs = store.events(rid)
        mig = next(e["data"] for e in evs if e["type"] == "policy_migrated")
        assert mig["from"] == spec.fingerprint and mig["to"] == rows[rid]["new_version"] and mig["rollout"] == seq
        assert mig["to_label"] == "retire-etl-eu" and "no_etl_eu" in mig["added"] and "ledger_data_in_eu" in mig["removed"]
        after = [e["data"] for e in evs if e["type"] == "planned"][-1]
        assert after["version"] == mig["to"] and after["reason"].startswith("policy migrated")
        assert "(rollout 1, migrate): added no_etl_eu" in after["reason"]  # also the audit record's reason
        assert {s["action"]: s["provider"] for s in after["steps"]} == rows[rid]["new"]["steps"]
        assert after["cost"] == rows[rid]["new"]["cost"]
    post(store, ids[0], {"fact": "settlement.received", "source": "test"})
    _until(lambda: store.run(ids[0])["status"] == "succeeded", "the migrated run to finish")
    done = [e["data"] for e in store.events(ids[0]) if e["type"] == "step_succeeded"]
    assert ("transform_file", "etl_burst") in {(d["action"], d["provider"]) for d in done}
    # A run started after the rollout starts on the rolled-out set.
    [late] = _start(w, store, engine, 1, "late")
    assert store.events(late)[0]["data"]["version"] == rows[ids[1]]["new_version"]
    # Every decision replays identically against the texts of its own version.
    kept = lambda v: spec_from_kept(store.version(v)["sources"]) if store.version(v) else None  # noqa: E731
    results = replay(w.audit.path, spec, spec_for=kept)
    assert results and all(r.same for r in results), [r.differences for r in results if not r.same]
    records = read_records(w.audit.path)[0]
    versions = {r["sources"]["project"] for r in records}
    assert versions == {spec.fingerprint, mig["to"]}
    # The rolled-out version's label is in the audit records it judged, and only in those.
    labels = {r["sources"]["project"]: r["sources"].get("label") for r in records}
    assert labels == {spec.fingerprint: None, mig["to"]: "retire-etl-eu"}


def test_migrate_if_feasible_keeps_runs_that_would_break_and_migrate_escalates_them(world):
    w, store, engine, spec, tmp = world
    ids = _start(w, store, engine, 2, "b")
    breaks = _set(tmp, "breaks", BREAKS)
    report = impact(store, breaks)
    assert report["breaks"] == 2 and all(r["impact"] == "infeasible" and "transform_file" in r["why"] for r in report["runs"])
    _, said = rollout(store, breaks, "migrate-if-feasible")
    assert {r["outcome"] for r in said["runs"]} == {"stays"}
    for rid in ids:
        _until(lambda rid=rid: "policy_kept" in _types(store, rid), f"{rid} to stay")
        kept = next(e["data"] for e in store.events(rid) if e["type"] == "policy_kept")
        assert kept["version"] == spec.fingerprint and "no plan under the new policy set" in kept["reason"]
        assert store.run(rid)["status"] == "running"
    _, said = rollout(store, breaks, "migrate")
    assert {r["outcome"] for r in said["runs"]} == {"escalates"}
    for rid in ids:
        # Migrated; with no plan for the rest it holds for the step in flight, then escalates.
        _until(lambda rid=rid: _types(store, rid)[-1] == "holding" and "policy_migrated" in _types(store, rid), f"{rid} to migrate and hold")
        post(store, rid, {"fact": "settlement.received", "source": "test"})
        _until(lambda rid=rid: store.run(rid)["status"] == "escalated", f"{rid} to escalate")
        outcome = [e["data"] for e in store.events(rid) if e["type"] == "escalated"][-1]
        assert "transform_file" in str(outcome)
    # new-runs leaves unfinished runs where they are (a rollback is a rollout of an earlier set).
    changed = _set(tmp, "changed", CHANGED)
    rollout(store, changed, "new-runs")
    [other] = _start(w, store, engine, 1, "n")
    on = store.events(other)[0]["data"]
    assert on["version"] == with_policy_set(spec, changed).fingerprint and on["rollout"] == 3
    rollout(store, _set(tmp, "keep", KEEP), "new-runs")
    [fresh] = _start(w, store, engine, 1, "n2")
    assert store.events(fresh)[0]["data"]["version"] not in (on["version"], spec.fingerprint)
    post(store, other, {"fact": "settlement.received", "source": "test"})
    _until(lambda: store.run(other)["status"] == "succeeded", "the run on the earlier set to finish")
    assert "policy_migrated" not in _types(store, other)
    assert all(e["data"]["version"] == on["version"] for e in store.events(other) if e["type"] == "planned")


def test_a_completed_step_is_history_and_the_conflict_says_so():
    spec = intento.load(ROOT / "examples/order_fulfilment", ROOT / "policies").spec
    given = {"customer.region": "us", "order.amount": "1500 USD", "customer.email": "a@example.com"}
    # A forbid never judges a completed step: stripe is forbidden now, the charge through it stands.
    tighter = with_policy_set(spec, [{"name": "p.intent", "text": 'policy no_stripe { forbid provider stripe }'}])
    ok = plan_problem(prepare(tighter, "fulfil_order", given, None, done={"charge_payment": "stripe"}))
    assert ok.feasible and "charge_payment" not in {s.action for s in ok.steps}  # done: not planned again
    assert "stripe" not in {s.provider for s in ok.steps}  # but the remaining work obeys the forbid
    # The remaining work cannot comply because of what is done: said in those words.
    no = plan_problem(prepare(spec, "fulfil_order", given, None, done={"fraud_check": "adyen", "charge_payment": "adyen"}))
    assert no.status == "infeasible"
    assert "cannot comply because of what is already done" in no.explanation.summary
    assert "`fraud_check` via `adyen`" in no.explanation.summary
    fresh = plan_problem(prepare(spec, "fulfil_order", given, None, done={"fraud_check": "adyen"}))
    assert fresh.feasible and "already done" not in (fresh.explanation.summary or "")


def test_a_rollout_while_a_commanded_step_is_in_flight_migrates_at_once_and_keeps_the_step(tmp_path):
    """A run whose commanded step is running when a `migrate` rollout lands migrates at once (a
    rollout is a decision point) and keeps that step: it is neither sent again nor judged by the
    new set, and the rest of the work follows the new version."""
    from intento.execute import Registry

    release, started = threading.Event(), threading.Event()
    reg = Registry()

    @reg.handler("verify_file")
    def verify(ctx):
        started.set()
        assert release.wait(60), "the test never released the step"
        return {"latency_ms": 5}

    for name in ("fetch_file_manually", "transform_file", "post_to_ledger", "reverse_postings"):
        reg.handler(name)(lambda ctx: {"latency_ms": 5})

    with _running(tmp_path, reg) as (w, store, engine, spec):
        try:
            [rid] = _start(w, store, engine, 1, "inflight")
            post(store, rid, {"fact": "settlement.received", "source": "test"})
            assert started.wait(30), "verify_file never started"
            seq, _ = rollout(store, _set(tmp_path, "changed", CHANGED), "migrate", label="retire-etl-eu")
            # A rollout is a decision point of its own: the run migrates while its step still
            # runs, and its re-plan keeps that step (it is not sent again, nor judged by the new set).
            _until(lambda: "policy_migrated" in _types(store, rid) and _types(store, rid)[-1] != "policy_migrated", "the run to migrate and re-plan")
            assert not any(e["type"] == "step_succeeded" and e["data"]["action"] == "verify_file" for e in store.events(rid))
            release.set()
            _until(lambda: store.run(rid)["status"] == "succeeded", "the run to finish")
        finally:
            release.set()
    evs = store.events(rid)
    types = [e["type"] for e in evs]
    verify_done = next(i for i, e in enumerate(evs) if e["type"] == "step_succeeded" and e["data"]["action"] == "verify_file")
    migrated = types.index("policy_migrated")
    assert migrated < verify_done, "the run waited for the step in flight to end before migrating"
    replan = next(e["data"] for e in evs[migrated:] if e["type"] == "planned")
    assert {s["action"]: s["provider"] for s in replan["steps"]}.get("verify_file") == "verifier"  # the running step, kept
    assert sum(1 for e in evs if e["type"] == "step_dispatched" and e["data"]["action"] == "verify_file") == 1  # never sent again
    mig = evs[migrated]["data"]
    assert mig["rollout"] == seq and mig["to_label"] == "retire-etl-eu" and "no_etl_eu" in mig["added"]
    after = [e["data"] for e in evs[migrated:] if e["type"] == "planned"]
    assert after and after[0]["version"] == mig["to"] and after[0]["reason"].startswith("policy migrated")
    done = [(e["data"]["action"], e["data"]["provider"]) for e in evs if e["type"] == "step_succeeded"]
    assert ("transform_file", "etl_burst") in done and ("transform_file", "etl_eu") not in done
    kept = lambda v: spec_from_kept(store.version(v)["sources"]) if store.version(v) else None  # noqa: E731
    results = replay(w.audit.path, spec, spec_for=kept)
    assert results and all(r.same for r in results), [r.differences for r in results if not r.same]

