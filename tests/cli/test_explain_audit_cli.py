"""`intento explain`, `intento audit ...` and `intento policy diff` from the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from intento.cli import app

ROOT = Path(__file__).resolve().parents[2]
ORDERS = [str(ROOT / "examples" / "order_fulfilment"), str(ROOT / "policies")]
REQ = ROOT / "examples" / "order_fulfilment" / "requests"
runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_explain_markdown_report_for_a_feasible_request():
    r = run("explain", *ORDERS, "-i", "fulfil_order", "-g", REQ / "large_us_order.json", "-f", "markdown")
    assert r.exit_code == 0, r.stderr
    md = r.stdout
    assert md.startswith("# Decision report: `fulfil_order`")
    assert "*(secret, not shown)*" in md and "bob@example.com" not in md
    assert "| `ups` | worse |" in md and "would break **prefer_green**" in md
    assert "| **fraud_check_large** | risk@example.com | yes | +0.03 USD |" in md


def test_explain_markdown_report_for_an_infeasible_request():
    state = '{"providers": {"adyen": {"status": "down", "since": "2026-11-24T10:32:00Z"}}}'
    r = run("explain", *ORDERS, "-i", "fulfil_order", "-g", REQ / "eu_order.json", "-s", state, "-f", "markdown")
    assert r.exit_code == 3
    md = r.stdout
    assert "## Why no plan exists" in md
    assert "eu_data_residency forbids `stripe` and `braintree`; `adyen` was observed down at 2026-11-24 10:32 UTC" in md
    assert "Policy owners to consult: compliance@example.com." in md


def test_explain_json_is_the_explanation_model():
    r = run("explain", *ORDERS, "-i", "fulfil_order", "-g", REQ / "us_order.json", "-f", "json")
    body = json.loads(r.stdout)
    assert body["level"] == "full" and body["prices"] and body["steps"]


def test_audit_cycle_from_the_command_line(tmp_path: Path):
    log = tmp_path / "decisions.jsonl"
    for req in ("eu_order", "us_order"):
        assert run("plan", *ORDERS, "-i", "fulfil_order", "-g", REQ / f"{req}.json", "--audit", log).exit_code == 0
    assert run("audit", "verify", log).exit_code == 0
    assert run("audit", "keygen", "--out", tmp_path / "k").exit_code == 0
    assert run("audit", "keygen", "--out", tmp_path / "k").exit_code == 1  # never overwrite a key
    assert run("audit", "checkpoint", log, "--key", tmp_path / "k.key", "--out", tmp_path / "cp.json").exit_code == 0
    r = run("audit", "verify", log, "--checkpoint", tmp_path / "cp.json", "--pubkey", tmp_path / "k.pub")
    assert r.exit_code == 0 and "consistent with the checkpoint" in r.stdout
    r = run("audit", "show", log, "--seq", "2")
    assert r.exit_code == 0 and "#2" in r.stdout and "policies applied:" in r.stdout and "carla@example.com" not in r.stdout
    r = run("audit", "replay", log, *ORDERS)
    assert r.exit_code == 0 and "2 of 2 decisions replay identically (same sources)" in r.stdout
    log.write_bytes(log.read_bytes().replace(b'"cost":"4.402"', b'"cost":"1.000"', 1))
    r = run("audit", "verify", log)
    assert r.exit_code == 1 and "first bad record: 1" in r.stderr


def test_policy_diff(tmp_path: Path):
    new = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", new)
    shutil.rmtree(new / "shipping")
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps([{"intent": "fulfil_order", "given": json.loads((REQ / f).read_text())} for f in ("us_order.json", "eu_order.json")]))
    r = run("policy", "diff", ROOT / "policies", new, "--with", ORDERS[0], "--cases", cases)
    assert r.exit_code == 0
    assert "case 1 (fulfil_order): ship_order: postnl -> ups; cost -0.3 USD" in r.stdout
    assert "case 2 (fulfil_order): unchanged" in r.stdout and "1 of 2 plans change" in r.stdout
    assert run("policy", "diff", ROOT / "policies", new, "--with", ORDERS[0], "--cases", cases, "--fail-on-change").exit_code == 1


def test_explain_max_questions_says_the_explanation_is_partial():
    r = run("explain", *ORDERS, "-i", "fulfil_order", "-g", REQ / "large_us_order.json", "--max-questions", "1")
    assert r.exit_code == 0 and "(partial explanation: its bound on counterfactual solves (--max-questions) was reached" in r.stdout
    md = run("explain", *ORDERS, "-i", "fulfil_order", "-g", REQ / "large_us_order.json", "--max-questions", "1", "-f", "markdown")
    assert "**Partial explanation: its bound on counterfactual solves" in md.stdout
    whole = run("explain", *ORDERS, "-i", "fulfil_order", "-g", REQ / "large_us_order.json")
    assert whole.exit_code == 0 and "partial explanation" not in whole.stdout
    assert run("explain", *ORDERS, "-i", "fulfil_order", "-g", REQ / "large_us_order.json", "--max-questions", "-1").exit_code == 2
