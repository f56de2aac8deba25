"""Every code snippet of LANGUAGE.md parses, and together with the declarations they name but do
not declare (tests/fixtures/language/supporting.intent) checks without errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from intento.check import check_paths, check_sources
from intento.diagnostics import Source
from intento.syntax import ast, parse

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "language"
CONTRACT = Path(__file__).resolve().parents[3] / "shared" / "design" / "LANGUAGE.md"


def snippets(markdown: str) -> list[str]:
    return [body for lang, body in re.findall(r"```(\w*)\n(.*?)```", markdown, re.S) if lang == ""]


@pytest.mark.skipif(not CONTRACT.exists(), reason="shared/design/LANGUAGE.md is not beside this checkout")
def test_fixture_holds_exactly_the_contract_snippets():
    assert (FIXTURES / "contract_snippets.intent").read_text() == "\n".join(snippets(CONTRACT.read_text()))


def test_each_snippet_parses_on_its_own():
    text = (FIXTURES / "contract_snippets.intent").read_text()
    blocks = snippets(CONTRACT.read_text()) if CONTRACT.exists() else [text]
    for i, block in enumerate(blocks):
        f, diags = parse(Source(f"snippet{i}", block))
        assert diags == [], [d.render() for d in diags]
        assert f.decls, f"snippet {i} holds no declaration"


def test_snippets_check_as_a_project():
    result = check_paths([FIXTURES])
    assert result.ok, "\n".join(d.render() for d in result.errors)
    spec = result.spec
    charge = spec.actions["charge_payment"]
    assert [o.provider for o in charge.options] == ["stripe", "adyen"]
    adyen = charge.option("adyen")
    assert str(adyen.cost) == "0.40" and adyen.latency_ms == 600 and str(adyen.reliability) == "0.997"
    # Fallback to the provider's attributes: stripe's option has no region of its own.
    assert charge.option("stripe").attrs["region"] == "us"
    assert charge.option("stripe").attrs["tags"] == ("pci",)
    assert charge.undo == "refund_payment" and spec.actions["refund_payment"].compensation
    assert charge.timeout_ms == 30_000
    lands = spec.actions["settlement_file_lands"]
    assert lands.external and lands.options[0].latency_ms == 6 * 3_600_000
    intent = spec.intents["fulfil_order"]
    assert intent.deadline_ms == 2 * 3_600_000 and str(intent.budget) == "5.00"
    assert intent.objective.kind == "lex" and intent.objective.metrics == ("cost", "latency")
    assert intent.given["order.amount"].type == "money"
    assert spec.policies["prefer_green"].soft == 20
    assert spec.policies["eu_data_residency"].reads == {"order.region"}
    assert spec.providers["adyen"].capacity == 50
    assert spec.currency == "USD"
    assert len(spec.tests) == 3


def test_weighted_objective_and_secret_given():
    src = Source(
        "w.intent",
        """
        provider p {}
        action a { achieves x; via p { latency 1s } }
        intent i {
          given customer.email: string secret, n: number
          goal x
          minimize 2 * cost + 0.5 * latency + 100 * risk
        }
        """,
    )
    result = check_sources([src])
    assert result.ok, [d.render() for d in result.diagnostics]
    i = result.spec.intents["i"]
    assert i.objective.kind == "weighted"
    assert [(m, str(w)) for m, w in i.objective.terms] == [("cost", "2"), ("latency", "0.5"), ("risk", "100")]
    assert i.given["customer.email"].secret and not i.given["n"].secret


def test_semicolons_are_optional_and_whitespace_is_insignificant():
    a, _ = parse(Source("a", 'provider p { region "eu"; tags ["x"]; capacity 3 }'))
    b, _ = parse(Source("b", 'provider p\n{\n region\n "eu"\n tags [ "x" ]\n\n capacity 3 ;;\n}'))
    assert a == b
    assert isinstance(a.decls[0], ast.ProviderDecl)


def test_locations_point_into_the_source():
    f, _ = parse(Source("loc.intent", "provider p {}\n\naction  go { achieves x; via p { latency 1s } }"))
    act = f.decls[1]
    assert (act.name.span.line, act.name.span.column) == (3, 9)
    assert act.name.span.source.name == "loc.intent"
