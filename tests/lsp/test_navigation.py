"""Hover, go to definition, find references, symbols, code lenses and their commands, on one
server over the example project (tests that change a document close it again)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lsprotocol import types as lsp

from tests.lsp.helpers import Client, doc, open_doc, pos_in, project_files, span_range, uri, wait_for, word_range

pytestmark = pytest.mark.asyncio(loop_scope="module")


def files(root: Path) -> dict[str, Path]:
    return {
        "providers": root / "orders" / "providers.intent",
        "actions": root / "orders" / "actions.intent",
        "intents": root / "orders" / "intents.intent",
        "tests": root / "orders" / "tests.intent",
        "payments": root / "policies" / "payments" / "payments.intent",
        "payment_tests": root / "policies" / "payments" / "tests.intent",
        "residency": root / "policies" / "common" / "data_residency.intent",
        "spend": root / "policies" / "common" / "spend.intent",
        "green": root / "policies" / "shipping" / "sustainability.intent",
        "green_tests": root / "policies" / "shipping" / "tests.intent",
    }


async def hover_at(client: Client, path: Path, needle: str, nth: int = 0, delta: int = 1) -> lsp.Hover | None:
    text = path.read_text()
    return await client.text_document_hover_async(lsp.HoverParams(text_document=doc(path), position=pos_in(text, needle, nth, delta)))


def hover_text(h: lsp.Hover | None) -> str:
    assert h is not None, "no hover"
    assert isinstance(h.contents, lsp.MarkupContent) and h.contents.kind == lsp.MarkupKind.Markdown
    return h.contents.value


def code_only(text: str) -> str:
    """``text`` with comments and strings blanked (same length), to find names by regex."""
    return re.sub(r'//[^\n]*|"(?:[^"\\\n]|\\.)*"', lambda m: " " * len(m.group()), text)


def all_occurrences(root: Path, name: str) -> set[tuple[str, int, int, int, int]]:
    out = set()
    for f in project_files(root):
        text = f.read_text()
        for m in re.finditer(rf"(?<![\w.]){re.escape(name)}(?![\w.])", code_only(text)):
            r = span_range(text, m.start(), m.end())
            out.add((uri(f), r.start.line, r.start.character, r.end.line, r.end.character))
    return out


def as_set(locations) -> set[tuple[str, int, int, int, int]]:
    return {(loc.uri, loc.range.start.line, loc.range.start.character, loc.range.end.line, loc.range.end.character) for loc in locations}


# ---- hover ---------------------------------------------------------------------------------------


async def test_hover_on_a_provider_at_its_declaration_and_its_uses(shared_client: Client, shared_workspace: Path):
    f = files(shared_workspace)
    at_decl = await hover_at(shared_client, f["providers"], "provider stripe", delta=10)
    text = hover_text(at_decl)
    assert "**provider** `stripe`" in text
    assert '| region | "us" |' in text and '| tags | ["pci"] |' in text
    assert "capacity: **100** steps at once" in text
    assert "options through it: `charge_payment`, `refund_payment`" in text
    assert at_decl.range == word_range(f["providers"].read_text(), "provider stripe", word="stripe")
    at_use = await hover_at(shared_client, f["actions"], "via stripe", delta=5)
    assert hover_text(at_use) == text
    sift = hover_text(await hover_at(shared_client, f["providers"], "provider sift", delta=10))
    assert "capacity: no bound" in sift


async def test_hover_on_an_action_shows_its_options(shared_client: Client, shared_workspace: Path):
    f = files(shared_workspace)
    text = hover_text(await hover_at(shared_client, f["payments"], "for charge_payment", delta=6))
    assert "**action** `charge_payment`" in text
    assert "- requires `order.validated`" in text
    assert "- achieves `payment.captured`" in text
    assert "- timeout 30s" in text
    assert "- undo `refund_payment`" in text
    assert "| via stripe | 0.35 USD | 800ms | 0.995 |" in text
    assert "| via adyen | 0.40 USD | 600ms | 0.997 |" in text
    assert "| via braintree | 0.38 USD | 900ms | 0.993 |" in text
    assert hover_text(await hover_at(shared_client, f["actions"], "action charge_payment", delta=9)) == text
    refund = hover_text(await hover_at(shared_client, f["actions"], "undo refund_payment", delta=7))
    assert "compensation of `charge_payment`" in refund
    assert "| via stripe | 0.10 USD | 1s | 1 (default) |" in refund


async def test_hover_on_a_policy_shows_text_owner_and_the_intents_it_applies_to(shared_client: Client, shared_workspace: Path):
    f = files(shared_workspace)
    text = hover_text(await hover_at(shared_client, f["residency"], "policy eu_data_residency", delta=9))
    assert "**policy** `eu_data_residency` · hard" in text
    assert "> EU customer data stays in EU-region providers" in text
    assert 'owner: "compliance@example.com"' in text
    assert 'when: `customer.region == "eu"`' in text
    assert '- `forbid via where region != "eu"`' in text
    for intent in ("fulfil_order", "express_order"):
        assert f'- `{intent}`: when `customer.region == "eu"` holds for the request (decided per request)' in text
    # At a use (an `expect infeasible because`), the same.
    assert hover_text(await hover_at(shared_client, f["tests"], "because eu_data_residency", delta=9)) == text
    spend = hover_text(await hover_at(shared_client, f["spend"], "policy spend_ceiling", delta=8))
    assert "- every intent (no `when`): `fulfil_order`, `express_order`" in spend
    green = hover_text(await hover_at(shared_client, f["green_tests"], "broken prefer_green", delta=8))
    assert "soft (penalty 1 per broken statement)" in green


async def test_hover_says_when_a_guard_cannot_be_decided(shared_client: Client, shared_workspace: Path):
    scratch = shared_workspace / "orders" / "solo.intent"
    open_doc(shared_client, scratch, "intent solo {\n  goal order.shipped\n}\n")
    try:
        residency = files(shared_workspace)["residency"]
        text = hover_text(await hover_at(shared_client, residency, "policy eu_data_residency", delta=9))
        assert "- `solo`: always: the intent does not declare `customer.region`, so the `when` cannot be decided (it fails closed)" in text
    finally:
        shared_client.text_document_did_close(lsp.DidCloseTextDocumentParams(text_document=doc(scratch)))


async def test_hover_on_a_given_shows_its_type(shared_client: Client, shared_workspace: Path):
    f = files(shared_workspace)
    decl = hover_text(await hover_at(shared_client, f["intents"], "order.amount: money", delta=3))
    assert decl == "**given** `order.amount`: **money** — in intent `fulfil_order`"
    in_guard = hover_text(await hover_at(shared_client, f["payments"], "when order.amount", delta=8))
    assert "**given** `order.amount`: **money** — in intent `fulfil_order`" in in_guard
    assert "**given** `order.amount`: **money** — in intent `express_order`" in in_guard
    in_test = hover_text(await hover_at(shared_client, f["tests"], "customer.email =", delta=2))
    assert in_test == "**given** `customer.email`: **string** · secret (never shown) — in intent `fulfil_order`"


async def test_hover_on_a_fact_and_on_nothing(shared_client: Client, shared_workspace: Path):
    f = files(shared_workspace)
    text = hover_text(await hover_at(shared_client, f["payments"], "require fraud.checked", delta=10))
    assert "**fact** `fraud.checked`" in text and "achieved by: `fraud_check`" in text
    assert await hover_at(shared_client, f["actions"], "// The steps", delta=4) is None


# ---- definition and references -------------------------------------------------------------------


async def definition(client: Client, path: Path, needle: str, delta: int, nth: int = 0):
    text = path.read_text()
    got = await client.text_document_definition_async(lsp.DefinitionParams(text_document=doc(path), position=pos_in(text, needle, nth, delta)))
    return list(got or [])


@pytest.mark.parametrize(
    "src, needle, delta, dst, target, word",
    [
        ("payments", "for charge_payment", 5, "actions", "action charge_payment", "charge_payment"),
        ("actions", "via adyen", 5, "providers", "provider adyen", "adyen"),
        ("tests", "plan fulfil_order", 6, "intents", "intent fulfil_order", "fulfil_order"),
        ("tests", "because eu_data_residency", 9, "residency", "policy eu_data_residency", "eu_data_residency"),
        ("payments", "require fraud.checked", 9, "actions", "achieves fraud.checked", "fraud.checked"),
        ("green_tests", "broken prefer_green", 8, "green", "policy prefer_green", "prefer_green"),
        ("actions", "undo refund_payment", 6, "actions", "action refund_payment", "refund_payment"),
    ],
)
async def test_definition_across_files(shared_client: Client, shared_workspace: Path, src, needle, delta, dst, target, word):
    f = files(shared_workspace)
    got = await definition(shared_client, f[src], needle, delta)
    assert [(loc.uri, loc.range) for loc in got] == [(uri(f[dst]), word_range(f[dst].read_text(), target, word=word))]


async def test_definition_of_a_given_in_a_guard_is_every_intent_declaring_it(shared_client: Client, shared_workspace: Path):
    f = files(shared_workspace)
    got = await definition(shared_client, f["payments"], "when order.amount", 7)
    text = f["intents"].read_text()
    assert [(loc.uri, loc.range) for loc in got] == [(uri(f["intents"]), word_range(text, "order.amount: money", nth=i, word="order.amount")) for i in range(2)]


@pytest.mark.parametrize(
    "name, path, needle",
    [
        ("stripe", "providers", "provider stripe"),
        ("charge_payment", "payments", "for charge_payment"),
        ("payment.captured", "intents", "goal payment.captured"),
        ("fulfil_order", "tests", "plan fulfil_order"),
        ("prefer_green", "green", "policy prefer_green"),
        ("customer.region", "residency", "when customer.region"),
    ],
)
async def test_references_are_every_use_in_every_file(shared_client: Client, shared_workspace: Path, name, path, needle):
    f = files(shared_workspace)
    text = f[path].read_text()
    at = pos_in(text, needle, delta=needle.index(name) + 2)
    got = await shared_client.text_document_references_async(
        lsp.ReferenceParams(text_document=doc(f[path]), position=at, context=lsp.ReferenceContext(include_declaration=True))
    )
    expected = all_occurrences(shared_workspace, name)
    assert len(expected) >= 2
    assert as_set(got) == expected
    without = await shared_client.text_document_references_async(
        lsp.ReferenceParams(text_document=doc(f[path]), position=at, context=lsp.ReferenceContext(include_declaration=False))
    )
    assert len(as_set(without)) < len(expected) and as_set(without) < expected


# ---- symbols -------------------------------------------------------------------------------------


async def test_document_symbols_are_declarations_with_their_items(shared_client: Client, shared_workspace: Path):
    f = files(shared_workspace)
    text = f["actions"].read_text()
    got = await shared_client.text_document_document_symbol_async(lsp.DocumentSymbolParams(text_document=doc(f["actions"])))
    names = [s.name for s in got]
    assert names == re.findall(r"(?m)^action (\w+)", text)
    charge = got[names.index("charge_payment")]
    assert charge.kind == lsp.SymbolKind.Function
    assert charge.selection_range == word_range(text, "action charge_payment", word="charge_payment")
    assert [c.name for c in charge.children] == ["via stripe", "via adyen", "via braintree"]
    assert charge.children[1].selection_range == word_range(text, "via adyen", nth=1, word="adyen")
    assert charge.range.start == word_range(text, "action charge_payment").start
    intents = await shared_client.text_document_document_symbol_async(lsp.DocumentSymbolParams(text_document=doc(f["intents"])))
    assert [c.name for c in intents[0].children] == ["customer.region", "order.amount", "customer.email"]
    tests = await shared_client.text_document_document_symbol_async(lsp.DocumentSymbolParams(text_document=doc(f["tests"])))
    assert tests[0].name == "EU orders stay in the EU"
    assert tests[0].selection_range == word_range(f["tests"].read_text(), '"EU orders stay in the EU"')


async def test_workspace_symbols_filter_by_query(shared_client: Client, shared_workspace: Path):
    f = files(shared_workspace)
    got = await shared_client.workspace_symbol_async(lsp.WorkspaceSymbolParams(query="pay"))
    names = {s.name for s in got}
    assert {"charge_payment", "refund_payment", "pci_payments"} <= names
    assert all(re.search("p.*a.*y", n, re.IGNORECASE) for n in names)
    charge = next(s for s in got if s.name == "charge_payment")
    assert charge.location.uri == uri(f["actions"])
    assert charge.location.range == word_range(f["actions"].read_text(), "action charge_payment", word="charge_payment")
    assert await shared_client.workspace_symbol_async(lsp.WorkspaceSymbolParams(query="zzqx")) in ([], None)
    everything = await shared_client.workspace_symbol_async(lsp.WorkspaceSymbolParams(query=""))
    assert len(everything) == 14 + 9 + 2 + 7 + 12


# ---- code lenses and commands --------------------------------------------------------------------


async def test_code_lenses_run_tests_and_plan_intents(shared_client: Client, shared_workspace: Path):
    f = files(shared_workspace)
    text = f["tests"].read_text()
    lenses = await shared_client.text_document_code_lens_async(lsp.CodeLensParams(text_document=doc(f["tests"])))
    names = re.findall(r'(?m)^test "([^"]+)"', text)
    assert [(lens.command.title, lens.command.command, list(lens.command.arguments)) for lens in lenses] == [("run test", "intento.runTest", [uri(f["tests"]), n]) for n in names]
    assert lenses[0].range == word_range(text, f'"{names[0]}"')
    on_intents = await shared_client.text_document_code_lens_async(lsp.CodeLensParams(text_document=doc(f["intents"])))
    planning = [n for p in ("tests", "payment_tests", "green_tests") for n in re.findall(r'(?m)^test "([^"]+)"', f[p].read_text())]
    assert len(planning) == 12
    assert sorted(lens.command.title for lens in on_intents) == sorted(f"plan with the givens of test '{n}'" for n in planning)
    assert all(lens.command.arguments[1] == "fulfil_order" for lens in on_intents)
    itext = f["intents"].read_text()
    assert all(lens.range == word_range(itext, "intent fulfil_order", word="fulfil_order") for lens in on_intents)


async def execute(client: Client, command: str, *args):
    return await client.workspace_execute_command_async(lsp.ExecuteCommandParams(command=command, arguments=list(args)))


async def test_run_test_command_runs_one_test_and_shows_the_result(shared_client: Client, shared_workspace: Path):
    f = files(shared_workspace)
    shown = len(shared_client.shown)
    result = await execute(shared_client, "intento.runTest", uri(f["tests"]), "a Stripe outage reroutes US payment")
    assert result["ok"] and result["passed"], result
    assert "charge_payment via braintree" in result["plan"]
    await wait_for(shared_client, lambda: len(shared_client.shown) > shown, "the result shown")
    message = shared_client.shown[-1]
    assert message.type == lsp.MessageType.Info
    assert message.message.startswith('PASS test "a Stripe outage reroutes US payment"')

    # A test that fails: the expectation changed in the open document (then closed again).
    open_doc(shared_client, f["tests"], f["tests"].read_text().replace("expect via braintree for charge_payment", "expect via stripe for charge_payment"))
    try:
        result = await execute(shared_client, "intento.runTest", uri(f["tests"]), "a Stripe outage reroutes US payment")
        assert result["ok"] and not result["passed"]
        assert result["failures"] and "expect via stripe for charge_payment, but charge_payment runs via braintree" in result["failures"][0]
        assert shared_client.shown[-1].type == lsp.MessageType.Warning and shared_client.shown[-1].message.startswith("FAIL")
    finally:
        shared_client.text_document_did_close(lsp.DidCloseTextDocumentParams(text_document=doc(f["tests"])))


async def test_plan_command_plans_with_a_tests_givens(shared_client: Client, shared_workspace: Path):
    f = files(shared_workspace)
    shown = len(shared_client.shown)
    result = await execute(shared_client, "intento.planIntent", uri(f["intents"]), "fulfil_order", "a Stripe outage reroutes US payment")
    assert result["ok"] and result["status"] == "optimal", result
    steps = {(s["action"], s["provider"]) for s in result["steps"]}
    assert ("charge_payment", "braintree") in steps and not any(p == "stripe" for _, p in steps)
    assert result["summary"].startswith("optimal: ")
    await wait_for(shared_client, lambda: len(shared_client.shown) > shown, "the plan shown")
    assert shared_client.shown[-1].message == f"plan fulfil_order with the givens of test \"a Stripe outage reroutes US payment\": {result['summary']}"
    infeasible = await execute(shared_client, "intento.planIntent", uri(f["intents"]), "fulfil_order", "no compliant payment provider left")
    assert infeasible["ok"] and infeasible["status"] == "infeasible" and "eu_data_residency" in infeasible["summary"]


async def test_commands_on_a_broken_project_or_with_bad_arguments_say_why(shared_client: Client, shared_workspace: Path):
    f = files(shared_workspace)
    open_doc(shared_client, f["spend"], f["spend"].read_text().replace("limit cost <= 50 USD", "limit cost <= 50 EUR"))
    try:
        result = await execute(shared_client, "intento.runTest", uri(f["tests"]), "EU orders stay in the EU")
        assert not result["ok"] and result["message"].startswith("the project has 1 error; fix them first:")
        assert "E019" in result["message"]
        assert shared_client.shown[-1].type == lsp.MessageType.Error
    finally:
        shared_client.text_document_did_close(lsp.DidCloseTextDocumentParams(text_document=doc(f["spend"])))
    assert not (await execute(shared_client, "intento.runTest", uri(f["tests"]), "no such test"))["ok"]
    assert not (await execute(shared_client, "intento.planIntent", uri(f["tests"])))["ok"]
    assert not (await execute(shared_client, "intento.runTest", 42, ["x"]))["ok"]
