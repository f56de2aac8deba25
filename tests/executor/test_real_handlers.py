"""Real handlers in threads: retryable errors count against provider health, permanent ones rule
the option out for the run; the executor's decisions go to the audit log."""

from __future__ import annotations

from pathlib import Path

import intento
from intento.audit import AuditLog, verify
from intento.execute import Executor, RealEnvironment, Store
from tests.executor import example_handlers as h

ROOT = Path(__file__).resolve().parents[2]


def test_failures_reroute_through_real_handlers(tmp_path):
    spec = intento.load(ROOT / "examples" / "order_fulfilment", ROOT / "policies").spec
    h.calls.clear()
    store = Store(tmp_path / "r.db")
    audit = AuditLog(tmp_path / "r.audit.jsonl")
    ex = Executor(spec, store, RealEnvironment(h.registry, poll_s=0.01), h.registry, audit)
    rid = ex.start("fulfil_order", {"customer.region": "us", "order.amount": "80 USD", "customer.email": "real@example.com"})
    final = ex.drive(rid)
    ex.env.close()
    assert final.status == "succeeded", final.outcome
    charges = [(a, p) for a, p, _ in h.calls if a == "charge_payment"]
    # stripe twice (one failure degrades it, the second marks it down), braintree once (permanent), then adyen.
    assert charges == [("charge_payment", "stripe"), ("charge_payment", "stripe"), ("charge_payment", "braintree"), ("charge_payment", "adyen")]
    keys = {k for a, p, k in h.calls if a == "charge_payment" and p == "stripe"}
    assert keys == {f"{rid}/charge_payment/stripe"}  # a retry re-uses the idempotency key
    assert final.excluded == {("charge_payment", "braintree"): "braintree: merchant account not enabled for this currency"}
    # Every plan and re-plan is an audit record, and the log verifies.
    v = verify(tmp_path / "r.audit.jsonl")
    assert v.ok and v.records == final.plans and v.records >= 4
    assert b"real@example.com" not in (tmp_path / "r.audit.jsonl").read_bytes()
