"""`intento test`: every expect form, passing and failing; reporting; exit codes; JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from typer.testing import CliRunner

import intento
from intento.cli import app
from intento.policytest import run_tests

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures" / "policytests"
runner = CliRunner()


def test_each_form_passes_and_fails_as_it_should():
    spec = intento.load(FIX).spec
    results = {r.name: r for r in run_tests(spec)}
    assert results["all forms that hold"].passed, results["all forms that hold"].failures
    assert results["outage makes it infeasible"].passed, results["outage makes it infeasible"].failures
    bad = results["all forms that fail"]
    assert not bad.passed and len(bad.failures) == 7, bad.failures
    assert any("a plan exists" in f for f in bad.failures)
    assert any("via grey_co" in f and "expect via green_co for ship" in f for f in bad.failures)
    assert any("latency is" in f for f in bad.failures)
    assert "cost 3 USD" in bad.plan_summary
    wrong = results["a wrong because"]
    assert not wrong.passed and "without prefer_green" in wrong.failures[0]


def test_cli_reports_like_a_test_runner_and_writes_junit(tmp_path: Path):
    xml = tmp_path / "junit.xml"
    r = runner.invoke(app, ["test", str(FIX), "--junit-xml", str(xml)])
    assert r.exit_code == 1
    assert "PASS  all forms that hold" in r.stdout and "FAIL  all forms that fail" in r.stdout
    assert r.stdout.rstrip().endswith("2 passed, 2 failed")
    suite = ET.parse(xml).getroot()
    assert suite.get("tests") == "4" and suite.get("failures") == "2"
    assert len(suite.findall("testcase/failure")) == 2


def test_filter_and_shipped_examples_pass():
    r = runner.invoke(app, ["test", str(FIX), "-k", "hold"])
    assert r.exit_code == 0 and "1 passed, 0 failed" in r.stdout
    for example, policies in [("order_fulfilment", "policies"), ("insurance_quote", "policies/common"), ("settlement", "policies/common")]:
        r = runner.invoke(app, ["test", str(ROOT / "examples" / example), str(ROOT / policies)])
        assert r.exit_code == 0, r.stdout
    r = runner.invoke(app, ["test", str(ROOT / "tests" / "fixtures" / "language")])
    assert r.exit_code == 0, r.stdout
