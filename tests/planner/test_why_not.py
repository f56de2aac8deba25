"""Why not X? (whynot.py): counterfactual re-solves under a demand, on the shipped examples and,
cross-checked against the exhaustive back-end, on small generated estates; bad questions are
located errors; the `explain --why-not` command."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

import intento
from benchmarks.scenarios import estate
from intento.check import check_sources
from intento.cli import app
from intento.diagnostics import RequestError, Source
from intento.solve import plan_problem, prepare
from intento.whynot import WhyNot, answer, parse_questions, why_not, why_not_markdown, why_not_text

ROOT = Path(__file__).resolve().parents[2]
ORDERS = ROOT / "examples" / "order_fulfilment"
REQ = ORDERS / "requests"
SETTLEMENT = ROOT / "examples" / "settlement"
SETTLE_GIVEN = {"customer.region": "eu", "settlement.date": "2026-11-24", "settlement.expected_total": "1200000 USD"}


@pytest.fixture(scope="module")
def orders():
    return intento.load(ORDERS, ROOT / "policies").spec


@pytest.fixture(scope="module")
def settlement():
    return intento.load(SETTLEMENT, ROOT / "policies" / "common").spec


def request(name: str) -> dict:
    return json.loads((REQ / name).read_text())


def providers(p) -> dict[str, str]:
    return {s.action: s.provider for s in p.steps}


# ---- the shipped examples ------------------------------------------------------------------


def test_a_more_expensive_provider_gives_a_plan_with_it_and_a_positive_cost_delta(orders):
    w = why_not(orders, "fulfil_order", request("us_order.json"), None, ["charge_payment via adyen"])
    assert w.base.feasible and providers(w.base)["charge_payment"] == "stripe"
    assert w.feasible and w.complete and w.status == "optimal"
    assert providers(w.plan)["charge_payment"] == "adyen"
    assert Decimal(w.plan.cost) - Decimal(w.base.cost) == Decimal("0.05")
    assert w.delta["cost"] == "+0.05"
    assert w.conflict is None
    # Only the demanded step changes: the rest of the plan is still the cheapest.
    assert {a: p for a, p in providers(w.plan).items() if a != "charge_payment"} == {a: p for a, p in providers(w.base).items() if a != "charge_payment"}


def test_the_delta_has_one_entry_per_objective_term_and_lists_broken_soft_policies(orders):
    # `ups` is cheaper and faster but breaks the soft `prefer_green`: the answer says so.
    w = why_not(orders, "fulfil_order", request("us_order.json"), None, ["ship_order via ups"])
    assert w.feasible
    assert set(w.delta) == {"penalty", "cost", "latency_ms"}
    assert w.delta["penalty"].startswith("+") and w.delta["penalty"] != "+0"
    assert w.delta["cost"].startswith("-") and w.delta["latency_ms"].startswith("-")
    assert "prefer_green" in {b.policy for b in w.broken_soft}
    assert "prefer_green" not in {b.policy for b in w.base.broken}


def test_a_demand_forbidden_by_a_policy_names_the_policy_and_its_location(orders):
    w = why_not(orders, "fulfil_order", request("eu_order.json"), None, ["charge_payment via stripe"])
    assert w.base.feasible and not w.feasible and w.complete and w.status == "infeasible"
    assert w.plan is None and w.delta is None
    by = {(r.policy, r.kind): r for r in w.conflict}
    assert set(by) == {("eu_data_residency", "policy"), ("why-not", "demand")}
    assert by[("eu_data_residency", "policy")].location.endswith("data_residency.intent:4:3")
    assert by[("why-not", "demand")].statement == "charge_payment via stripe"
    assert by[("why-not", "demand")].location == "--why-not:1:1"
    assert "the question demands `charge_payment via stripe`, but eu_data_residency forbids `stripe`" in w.summary


def test_no_fraud_check_on_a_large_order_is_forbidden_by_the_fraud_policy(orders):
    w = why_not(orders, "fulfil_order", request("large_us_order.json"), None, ["no fraud_check"])
    assert not w.feasible
    assert {r.policy for r in w.conflict} == {"goal", "fraud_check_large", "why-not"}
    # ...while on a small order nothing needs it: the answer is the base plan, at no difference.
    small = why_not(orders, "fulfil_order", request("us_order.json"), None, ["no fraud_check"])
    assert small.feasible and providers(small.plan) == providers(small.base)
    assert all(v in ("+0", "-0") for v in small.delta.values())


def test_use_fetch_file_manually_on_settlement_pays_the_ops_desk(settlement):
    w = why_not(settlement, "settle_daily", SETTLE_GIVEN, None, ["use fetch_file_manually"])
    assert "settlement_file_lands" in providers(w.base) and "fetch_file_manually" not in providers(w.base)
    assert w.feasible and providers(w.plan)["fetch_file_manually"] == "ops_desk"
    assert "settlement_file_lands" not in providers(w.plan)  # one way to get the file is enough
    assert w.delta["cost"] == "+25" and w.delta["latency_ms"] == "-14400000"


def test_no_on_settlement_both_ways(settlement):
    # Without the bank's file, operations fetch it; without verification, nothing can be posted.
    w = why_not(settlement, "settle_daily", SETTLE_GIVEN, None, ["no settlement_file_lands"])
    assert w.feasible and "fetch_file_manually" in providers(w.plan) and "settlement_file_lands" not in providers(w.plan)
    w = why_not(settlement, "settle_daily", SETTLE_GIVEN, None, ["no verify_file"])
    assert not w.feasible and {(r.policy, r.kind) for r in w.conflict} == {("goal", "goal"), ("why-not", "demand")}


def test_several_questions_form_one_demand(settlement, orders):
    w = why_not(settlement, "settle_daily", SETTLE_GIVEN, None, ["use fetch_file_manually", "transform_file via etl_eu"])
    assert w.question == ["use fetch_file_manually", "transform_file via etl_eu"]
    assert w.feasible and providers(w.plan)["transform_file"] == "etl_eu" and "fetch_file_manually" in providers(w.plan)
    # Contradictory questions conflict with each other and with nothing else.
    w = why_not(orders, "fulfil_order", request("us_order.json"), None, ["use fraud_check", "no fraud_check"])
    assert not w.feasible
    assert [(r.statement, r.location) for r in w.conflict] == [("use fraud_check", "--why-not#1:1:1"), ("no fraud_check", "--why-not#2:1:1")]


def test_the_shared_problem_is_not_changed_by_a_question(orders):
    problem = prepare(orders, "fulfil_order", request("us_order.json"))
    before = [(o.provider, list(o.forbidden_by)) for a in problem.actions for o in a.options]
    base = plan_problem(problem)
    answer(problem, base, parse_questions(problem, ["no charge_payment", "ship_order via dhl"]))
    assert [(o.provider, list(o.forbidden_by)) for a in problem.actions for o in a.options] == before
    assert len(problem.members) == len(prepare(orders, "fulfil_order", request("us_order.json")).members)
    assert providers(plan_problem(problem)) == providers(base)


def test_renderings(orders):
    w = why_not(orders, "fulfil_order", request("us_order.json"), None, ["charge_payment via adyen"])
    text = why_not_text(w)
    assert text.startswith("why not `charge_payment via adyen`?") and "against the base plan: +0.05 USD" in text
    md = why_not_markdown(w)
    assert md.startswith("## Why not `charge_payment via adyen`?") and "| `charge_payment` | `adyen` |" in md
    w = why_not(orders, "fulfil_order", request("eu_order.json"), None, ["charge_payment via stripe"])
    assert "conflict: policy eu_data_residency" in why_not_text(w)
    assert "| demand | --why-not:1:1 |" in why_not_markdown(w)
    assert WhyNot.model_validate_json(w.model_dump_json()) == w


# ---- bad questions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "question, code, where, message, help_",
    [
        ("charge_payment via adyn", "E122", (1, 20), "unknown provider `adyn`", "did you mean `adyen`?"),
        ("use fraud_chek", "E121", (1, 5), "unknown action `fraud_chek`", "did you mean `fraud_check`?"),
        ("ship_order via stripe", "E123", (1, 16), "`stripe` is not an option of `ship_order`", "`ship_order` runs via `dhl`, `ups`, `postnl`"),
        ("no refund_payment", "E121", (1, 4), "`refund_payment` is a compensating action: the planner never chooses it", ""),
        ("why not stripe?", "E120", (1, 1), "cannot read the question `why not stripe?`", "`ACTION via PROVIDER`"),
        ("", "E120", (1, 1), "cannot read the question ``", "`use ACTION`"),
    ],
)
def test_a_bad_question_is_a_located_error(orders, question, code, where, message, help_):
    with pytest.raises(RequestError) as e:
        why_not(orders, "fulfil_order", request("us_order.json"), None, [question])
    [d] = e.value.diagnostics
    assert d.code == code and d.message == message and help_ in d.help
    assert (d.span.line, d.span.column) == where and d.span.source.name == "--why-not"


def test_every_bad_question_is_reported_at_once(orders):
    with pytest.raises(RequestError) as e:
        why_not(orders, "fulfil_order", request("us_order.json"), None, ["use validate_order", "nonsense", "no shipp_order"])
    assert [(d.code, d.span.source.name) for d in e.value.diagnostics] == [("E120", "--why-not#2"), ("E121", "--why-not#3")]
    with pytest.raises(RequestError):
        why_not(orders, "fulfil_order", request("us_order.json"), None, [])


# ---- cross-check against the exhaustive back-end --------------------------------------------


def _cases():
    """Questions about options the optimal plan does not take, on small generated estates."""
    for i in range(6):
        e = estate(6, n_providers=6, seed=100 + i, options=(2, 3))
        spec = check_sources([Source(f"w{i}", e.source)]).spec
        given = e.given("eu" if i % 2 else "us")
        problem = prepare(spec, e.intent, given)
        base = plan_problem(problem, explain="none")
        chosen = providers(base)
        for a in problem.actions:
            for o in a.options:
                if chosen.get(a.name) != o.provider:
                    yield i, spec, e.intent, given, f"{a.name} via {o.provider}", {a.name: o.provider}
            if a.name in chosen:
                yield i, spec, e.intent, given, f"no {a.name}", None
            else:
                yield i, spec, e.intent, given, f"use {a.name}", None


def test_cpsat_answers_equal_the_exhaustive_back_ends():
    compared = feasible = infeasible = 0
    for i, spec, intent, given, question, force in _cases():
        fast = why_not(spec, intent, given, None, [question], explain="none")
        slow = why_not(spec, intent, given, None, [question], explain="none", backend="constraint")
        assert slow.plan is None or slow.plan.solver.backend == "constraint"
        assert fast.feasible == slow.feasible, (i, question)
        if fast.feasible:
            feasible += 1
            assert (fast.plan.cost, fast.plan.latency_ms, fast.plan.objective.penalty) == (slow.plan.cost, slow.plan.latency_ms, slow.plan.objective.penalty), (i, question)
            assert fast.delta == slow.delta
        else:
            infeasible += 1
            assert any(r.kind == "demand" for r in fast.conflict), (i, question)
        if force is not None:
            # The demand `A via P` is the same counterfactual as forcing that option.
            forced = plan_problem(prepare(spec, intent, given), force=force, backend="constraint", explain="none")
            assert forced.feasible == fast.feasible, (i, question)
            if forced.feasible:
                assert (forced.cost, forced.latency_ms) == (fast.plan.cost, fast.plan.latency_ms), (i, question)
        compared += 1
    # The generated cases exercise both outcomes.
    assert compared > 50 and feasible > 10 and infeasible > 0, (compared, feasible, infeasible)


# ---- the command ----------------------------------------------------------------------------

runner = CliRunner()
CLI_ORDERS = [str(ORDERS), str(ROOT / "policies")]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_cli_text_json_and_markdown():
    r = run("explain", *CLI_ORDERS, "-i", "fulfil_order", "-g", REQ / "us_order.json", "--level", "basic", "--why-not", "charge_payment via adyen")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("intent fulfil_order: optimal") and "why not `charge_payment via adyen`?" in r.stdout
    assert "against the base plan: +0.05 USD" in r.stdout
    r = run("explain", *CLI_ORDERS, "-i", "fulfil_order", "-g", REQ / "eu_order.json", "--level", "basic", "-f", "json", "--why-not", "charge_payment via stripe", "--why-not", "use reserve_stock")
    # The demand admits no plan, but the request's own plan exists: exit 0.
    assert r.exit_code == 0, r.output
    w = WhyNot.model_validate_json(r.stdout)
    assert w.base.feasible and not w.feasible and w.question == ["charge_payment via stripe", "use reserve_stock"]
    assert {x.policy for x in w.conflict} == {"eu_data_residency", "why-not"}
    r = run("explain", *CLI_ORDERS, "-i", "fulfil_order", "-g", REQ / "us_order.json", "--level", "basic", "-f", "markdown", "--why-not", "no fraud_check")
    assert r.exit_code == 0 and r.stdout.startswith("# Decision report: `fulfil_order`") and "## Why not `no fraud_check`?" in r.stdout


def test_cli_infeasible_base_keeps_exit_3():
    state = '{"providers": {"adyen": {"status": "down", "since": "2026-11-24T10:32:00Z"}}}'
    r = run("explain", *CLI_ORDERS, "-i", "fulfil_order", "-g", REQ / "eu_order.json", "-s", state, "--level", "basic", "--why-not", "use fraud_check")
    assert r.exit_code == 3
    assert "why not `use fraud_check`?" in r.stdout and "no plan exists" in r.stdout


def test_cli_bad_question_exits_1_with_a_located_diagnostic():
    r = run("explain", *CLI_ORDERS, "-i", "fulfil_order", "-g", REQ / "us_order.json", "--why-not", "charge_payment via strpe")
    assert r.exit_code == 1
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert "--why-not:1:20: error[E122]: unknown provider `strpe`" in r.stderr and "did you mean `stripe`?" in r.stderr
    assert "Traceback" not in r.output
