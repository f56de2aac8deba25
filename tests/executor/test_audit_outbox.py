"""The audit trail misses nothing: a run killed between a `planned` event and its audit record
(just after the event commits) gets the record written at its restart, exactly once, and the
log still verifies and replays."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import intento
from intento.audit import AuditLog, replay, verify
from intento.execute import Executor, Scenario, SimEnvironment, Store

ROOT = Path(__file__).resolve().parents[2]
GIVEN = {"customer.region": "us", "order.amount": "80 USD", "customer.email": "outbox@example.com"}
SCENARIO = Scenario.model_validate({"seed": 7, "default": {"latency_sigma": 0.15}, "providers": {"stripe": {"outages": [{"from": 0, "to": "2h"}]}}})


def _drive(spec, db: Path):
    store = Store(db)
    env = SimEnvironment(SCENARIO, start=store.virtual_now(), journal=db.with_suffix(".journal"))
    ex = Executor(spec, store, env, audit=AuditLog(db.with_suffix(".audit.jsonl")), new_id=lambda: "run-outbox")
    return ex.drive(ex.start("fulfil_order", GIVEN, key="outbox")), store


def test_a_crash_right_after_a_planned_event_loses_no_audit_record(tmp_path):
    spec = intento.load(ROOT / "examples" / "order_fulfilment", ROOT / "policies").spec
    _, store = _drive(spec, tmp_path / "ref.db")
    planned_at = [i for i, e in enumerate(store.events("run-outbox"), start=1) if e["type"] == "planned"]
    assert len(planned_at) >= 2
    for k in planned_at:
        db = tmp_path / f"k{k}.db"
        pid = os.fork()
        if pid == 0:
            try:
                os.environ["INTENTO_CRASH_AFTER"] = str(k)
                _drive(spec, db)
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"write {k} was not reached"
        log = db.with_suffix(".audit.jsonl")
        before = log.read_text().count("\n") if log.exists() else 0
        # the event is in the log, its audit record is not (yet)
        assert before == sum(1 for e in Store(db).events("run-outbox") if e["type"] == "planned") - 1
        final, store = _drive(spec, db)
        assert final.status == "succeeded"
        records = [json.loads(line) for line in log.read_text().splitlines()]
        decisions = [r["decision"] for r in records]
        planned = [e["data"]["decision"] for e in store.events("run-outbox") if e["type"] == "planned"]
        assert decisions == planned  # every decision once, in order
        assert store.outbox() == []
        assert verify(log).ok
        assert all(r.same for r in replay(log, spec))
