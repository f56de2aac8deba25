"""Data-driven checker cases: (note, source, expected codes). A case with no codes must check."""

from __future__ import annotations

import pytest

from intento.check import check_sources
from intento.diagnostics import Source

BASE = """
provider p { region "eu"; tags ["pci"]; cost 0.10 USD }
provider q { region "us" }
action a { achieves x; via p { latency 1s }; via q { latency 2s; cost 1 USD } }
action b { requires x; achieves y; undo c; via q { latency 1s } }
action c { achieves z; via q { latency 1s } }
intent i { given r: string, amt: money; goal y; budget 5 USD }
"""

CASES = [
    ("base project checks", "", []),
    ("unknown fact warns only", "intent j { goal nope }", ["W101"]),
    ("guard compares money with number", "policy g { when amt > 1000; forbid provider q }", ["E025"]),
    ("guard on a string with <", 'policy g { when r < "x"; forbid provider q }', ["E025"]),
    ("unknown attribute in predicate warns", 'policy g { forbid via where regoin != "eu" }', ["W105"]),
    ("policy names a compensation", "policy g { forbid action c }", []),
    ("limit cost with a duration", "policy g { limit cost <= 5s }", ["E018"]),
    ("reliability limit above 1", "policy g { limit reliability >= 1.2 }", ["E020"]),
    ("count limit with a fraction", 'policy g { limit count(via where region == "eu") >= 1.5 }', ["E028"]),
    ("count with another function", 'policy g { limit sum(via where region == "eu") >= 1 }', ["E028"]),
    ("negative soft penalty", "policy g { soft -1; forbid provider q }", ["E029"]),
    ("undo itself", "action d { achieves w; undo d; via p { latency 1s } }", ["E013"]),
    ("not a condition", "policy g { forbid via where cost }", ["E025"]),
    ("in needs a list", 'policy g { forbid via where "pci" in region }', ["E025"]),
    ("weighted with negative weight", "intent j { goal y; minimize -2 * cost + latency }", ["E027"]),
    ("repeated objective term", "intent j { goal y; minimize cost then cost }", ["E027"]),
    ("test: unknown provider observation", 'test "t" { plan i given { r = "eu", amt = 1 USD } observe { zz down } expect feasible }', ["E012"]),
    ("test: degraded with attributes", 'test "t" { plan i given { r = "eu", amt = 1 USD } observe { p degraded { latency 2s; cost 1 USD } } expect feasible }', []),
    ("test: degraded with a bad attribute", 'test "t" { plan i given { r = "eu", amt = 1 USD } observe { p degraded { region "x" } } expect feasible }', ["E031"]),
    ("test: unknown given", 'test "t" { plan i given { r = "eu", amt = 1 USD, zz = 1 } expect feasible }', ["E015"]),
    ("test: because names a provider", 'test "t" { plan i given { r = "eu", amt = 1 USD } expect infeasible because p, budget }', []),
    ("test: because unknown", 'test "t" { plan i given { r = "eu", amt = 1 USD } expect infeasible because nothing }', ["E035"]),
    ("test: metric type", 'test "t" { plan i given { r = "eu", amt = 1 USD } expect latency <= 5 USD }', ["E018"]),
    ("duplicate test name", 'test "t" { plan i given { r = "eu", amt = 1 USD } expect feasible }\ntest "t" { plan i given { r = "eu", amt = 1 USD } expect feasible }', ["E011"]),
    ("dotted action name", "action x.y { achieves w; via p { latency 1s } }", ["E018"]),
    ("provider is a keyword, not an attribute", 'provider z { provider "x" }', ["E008"]),
    ("tags of numbers", "provider z { tags [1, 2] }", ["E018"]),
    ("budget in another currency", "intent j { goal y; budget 5 EUR }", ["E019"]),
    ("timeout as a number", "action d { achieves w; timeout 30; via p { latency 1s } }", ["E018"]),
    ("empty policy warns", "policy g { owner \"x\" }", ["W106"]),
    ("guard reads a name no intent declares", 'policy g { when rr == "eu"; forbid provider q }', ["E037"]),
    ("guard name missing from one intent warns", 'intent j { given s: string; goal y }\npolicy g { when r == "eu"; forbid provider q }', ["W103"]),
    ("guard name declared by every intent", 'intent j { given r: string; goal y }\npolicy g { when r == "eu"; forbid provider q }', []),
]


@pytest.mark.parametrize("note,extra,codes", CASES, ids=[c[0] for c in CASES])
def test_case(note, extra, codes):
    result = check_sources([Source("case.intent", BASE + extra)])
    got = sorted({d.code for d in result.diagnostics})
    assert got == sorted(set(codes)), [d.render() for d in result.diagnostics]
    assert result.ok == (not any(c.startswith("E") for c in codes))


def test_option_inherits_provider_cost_and_compensation_is_marked():
    spec = check_sources([Source("case.intent", BASE)]).spec
    assert str(spec.actions["a"].option("p").cost) == "0.10"  # from provider p
    assert str(spec.actions["a"].option("q").cost) == "1"
    assert spec.actions["c"].compensation and not spec.actions["b"].compensation
    assert [a.name for a in spec.plannable_actions()] == ["a", "b"]


def test_all_errors_of_a_project_are_collected_in_order():
    text = BASE + "action d { achieves w; via nope { latency 1s } }\nintent j { goal y; budget 5s }\npolicy g { forbid provider zz }\n"
    result = check_sources([Source("case.intent", text)])
    codes = [d.code for d in result.errors]
    assert codes == ["E012", "E018", "E012"]
    lines = [d.span.line for d in result.errors]
    assert lines == sorted(lines)


def test_declaration_count_is_bounded():
    from intento.check import MAX_DECLARATIONS

    text = "".join(f"provider p{i} {{}}\n" for i in range(MAX_DECLARATIONS + 1))
    result = check_sources([Source("many.intent", text)])
    assert [d.code for d in result.errors] == ["E007"]
    assert result.errors[0].span.line == MAX_DECLARATIONS + 1


# ---- guards fail closed: names a `when` reads that an intent does not declare ------------------


def test_a_typo_in_a_guard_is_an_error_on_the_name_with_a_did_you_mean():
    text = BASE + 'intent j { given dataset.region: string; goal y }\npolicy gdpr { when dataset.regoin == "eu"; forbid provider q }\n'
    result = check_sources([Source("case.intent", text)])
    assert not result.ok
    [d] = result.diagnostics
    assert d.code == "E037" and d.message == "no intent declares given `dataset.regoin`, read by the `when` of policy `gdpr`"
    assert d.help == "did you mean `dataset.region`?"
    line = text.splitlines()[d.span.line - 1]
    assert line[d.span.column - 1 : d.span.end_column - 1] == "dataset.regoin"


def test_each_intent_policy_pair_that_fails_closed_is_a_warning_with_that_intents_names():
    text = BASE + (
        "intent j { given customer.regoin: string; goal y }\n"
        "intent k { given other: bool; goal y }\n"
        'policy eu { when customer.region == "eu" or other; forbid provider q }\n'
        "intent m { given customer.region: string; goal y }\n"
    )
    result = check_sources([Source("case.intent", text)])
    assert result.ok  # warnings only: a shared policy set may serve intents without the name
    got = sorted((d.code, d.message, d.help) for d in result.diagnostics)
    assert got == [
        ("W103", "intent `i` does not declare `customer.region`, so policy `eu` always applies to it", "declare `customer.region` in the `given` of intent `i` if the guard should decide for it"),
        ("W103", "intent `i` does not declare `other`, so policy `eu` always applies to it", "declare `other` in the `given` of intent `i` if the guard should decide for it"),
        ("W103", "intent `j` does not declare `customer.region`, so policy `eu` always applies to it", "did you mean `customer.regoin`? otherwise declare `customer.region` in the `given` of intent `j` if the guard should decide for it"),
        ("W103", "intent `j` does not declare `other`, so policy `eu` always applies to it", "declare `other` in the `given` of intent `j` if the guard should decide for it"),
        ("W103", "intent `k` does not declare `customer.region`, so policy `eu` always applies to it", "declare `customer.region` in the `given` of intent `k` if the guard should decide for it"),
        ("W103", "intent `m` does not declare `other`, so policy `eu` always applies to it", "declare `other` in the `given` of intent `m` if the guard should decide for it"),
    ]
    spans = {(d.message.split("`")[3], d.span.line, d.span.column) for d in result.diagnostics}
    line = text.splitlines().index('policy eu { when customer.region == "eu" or other; forbid provider q }') + 1
    assert spans == {("customer.region", line, 18), ("other", line, 45)}


def test_policies_checked_without_intents_warn_that_their_guards_cannot_be_checked():
    result = check_sources([Source("p.intent", 'provider q {}\npolicy eu { when customer.region == "eu"; forbid provider q }\n')])
    assert result.ok and [d.code for d in result.diagnostics] == ["W102"]
