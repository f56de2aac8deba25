"""`intento plan`: the flag set, output formats and exit codes the contract fixes."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from intento.cli import app
from intento.plan import Plan

ROOT = Path(__file__).resolve().parents[2]
ORDERS = [str(ROOT / "examples" / "order_fulfilment"), str(ROOT / "policies")]
runner = CliRunner()
US = {"customer.region": "us", "order.amount": 80, "customer.email": "b@example.com"}


def run(*args: str):
    return runner.invoke(app, list(args))


def test_json_plan_with_given_and_state_files(tmp_path: Path):
    g, s = tmp_path / "g.json", tmp_path / "s.json"
    g.write_text(json.dumps(US))
    s.write_text(json.dumps({"providers": {"stripe": {"status": "down"}}}))
    r = run("plan", *ORDERS, "--intent", "fulfil_order", "--given", str(g), "--state", str(s), "--format", "json")
    assert r.exit_code == 0, r.stderr
    plan = Plan.model_validate_json(r.stdout)
    assert plan.status == "optimal" and plan.step("charge_payment").provider == "braintree"
    body = json.loads(r.stdout)
    for key in ("status", "intent", "steps", "cost", "currency", "latency_ms", "reliability", "risk", "objective", "broken", "solver", "explanation"):
        assert key in body
    assert set(body["steps"][0]) == {"action", "provider", "start_ms", "end_ms", "cost", "latency_ms", "reliability", "achieves"}
    assert isinstance(body["cost"], str) and body["solver"]["wall_ms"] is None


def test_inline_json_and_infeasible_exit_code():
    given = json.dumps(dict(US, **{"customer.region": "eu"}))
    r = run("plan", *ORDERS, "-i", "fulfil_order", "-g", given, "-s", '{"providers": {"adyen": {"status": "down"}}}', "-f", "json")
    assert r.exit_code == 3
    body = json.loads(r.stdout)
    assert body["status"] == "infeasible" and {c["policy"] for c in body["explanation"]["conflict"]} == {"goal", "adyen", "eu_data_residency"}


def test_text_and_mermaid():
    r = run("plan", *ORDERS, "-i", "fulfil_order", "-g", json.dumps(US))
    assert r.exit_code == 0
    assert "charge_payment" in r.stdout and "total: cost" in r.stdout and "why:" in r.stdout
    r = run("plan", *ORDERS, "-i", "fulfil_order", "-g", json.dumps(US), "--format", "mermaid")
    assert r.exit_code == 0 and r.stdout.startswith("gantt") and "section stripe" in r.stdout


def test_constraint_backend_and_verify():
    r = run("plan", *ORDERS, "-i", "fulfil_order", "-g", json.dumps(US), "--backend", "constraint", "-f", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["solver"]["backend"] == "constraint"
    r = run("plan", *ORDERS, "-i", "fulfil_order", "-g", json.dumps(US), "--verify")
    assert r.exit_code == 0 and "agree on the optimum" in r.stderr


def test_timings_are_opt_in():
    r = run("plan", *ORDERS, "-i", "fulfil_order", "-g", json.dumps(US), "-f", "json", "--timings")
    assert json.loads(r.stdout)["solver"]["wall_ms"] is not None


def test_bad_input_is_located_and_exit_1(tmp_path: Path):
    r = run("plan", *ORDERS, "-i", "fulfil_order", "-g", '{"customer.region": "us",}')
    assert r.exit_code == 1 and "--given:1:" in r.stderr and "E101" in r.stderr
    r = run("plan", *ORDERS, "-i", "nope", "-g", "{}")
    assert r.exit_code == 1 and "E102" in r.stderr
    r = run("plan", *ORDERS, "-i", "fulfil_order", "-g", str(tmp_path / "missing.json"))
    assert r.exit_code == 1 and "neither inline JSON nor a readable file" in r.stderr
    r = run("plan", *ORDERS, "-i", "fulfil_order", "-g", json.dumps(US), "-s", '{"providers": {"stripe": {"status": "gone"}}}')
    assert r.exit_code == 1 and "E106" in r.stderr
    bad = tmp_path / "bad.intent"
    bad.write_text("intent job { goal }")
    r = run("plan", str(bad), "-i", "job")
    assert r.exit_code == 1 and "error[E001]" in r.stderr
    assert "Traceback" not in r.stderr


def test_plan_help():
    r = run("plan", "--help")
    assert r.exit_code == 0
    for flag in ("--intent", "--given", "--state", "--format", "--backend", "--time-limit", "--verify"):
        assert flag in r.output
