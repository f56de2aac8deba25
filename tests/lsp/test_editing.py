"""Completion, formatting and the did-you-mean quick fix, on one server: each test writes in a
document of its own (or restores the one it changed) and closes it."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from lsprotocol import types as lsp

from intento.diagnostics import Source
from intento.syntax import format_file, parse
from tests.lsp.helpers import (
    Client,
    apply_edits,
    change_doc,
    doc,
    open_doc,
    position,
    replace_edit,
    uri,
    wait_version,
    word_range,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

_names = itertools.count()

PROVIDERS = {"core", "stripe", "adyen", "braintree", "sift", "riskified", "wh_rotterdam", "wh_newark", "dhl", "ups", "postnl", "sendgrid", "mailjet", "twilio"}
ACTIONS = {"validate_order", "fraud_check", "charge_payment", "refund_payment", "reserve_stock", "release_stock", "ship_order", "cancel_shipment", "notify_customer"}
POLICIES = {"eu_data_residency", "spend_ceiling", "safe_enough", "pci_payments", "fraud_check_large", "separation_of_duties", "prefer_green"}
GIVENS = {"customer.region", "order.amount", "customer.email"}
DECLS = {"provider", "action", "intent", "policy", "test"}


def scratch(root: Path) -> Path:
    return root / "orders" / f"scratch_{next(_names)}.intent"


def close(client: Client, path: Path) -> None:
    client.text_document_did_close(lsp.DidCloseTextDocumentParams(text_document=doc(path)))


async def complete(client: Client, root: Path, text_with_cursor: str) -> tuple[list[lsp.CompletionItem], str, int]:
    at = text_with_cursor.index("|")
    text = text_with_cursor.replace("|", "", 1)
    path = scratch(root)
    open_doc(client, path, text)
    try:
        got = await client.text_document_completion_async(lsp.CompletionParams(text_document=doc(path), position=position(text, at)))
    finally:
        close(client, path)
    items = got.items if isinstance(got, lsp.CompletionList) else list(got or [])
    return list(items), text, at


@pytest.mark.parametrize(
    "text, expected, absent",
    [
        ("|", DECLS, {"stripe", "requires"}),
        ("provider p { region \"eu\" }\n|", DECLS, set()),
        ("action a {\n  achieves x.y\n  via |", PROVIDERS, {"requires", "charge_payment"}),
        ("policy p {\n  forbid provider |", PROVIDERS, {"charge_payment"}),
        ("policy p {\n  forbid |", {"via", "provider", "action"}, {"stripe"}),
        ("policy p {\n  forbid action |", ACTIONS, {"stripe"}),
        ("policy p {\n  distinct provider for fraud_check, |", ACTIONS, {"stripe"}),
        ("policy p {\n  forbid via [charge_payment, |", ACTIONS, {"stripe"}),
        ("policy p {\n  require \"pci\" in tags for |", ACTIONS, set()),
        ("action a {\n  achieves x.y\n  undo |", ACTIONS, {"stripe"}),
        ("test \"t\" {\n  plan |", {"fulfil_order", "express_order"}, {"stripe", "charge_payment"}),
        ("test \"t\" {\n  plan fulfil_order\n  expect broken |", POLICIES, {"stripe"}),
        ("test \"t\" {\n  plan fulfil_order\n  expect |", {"feasible", "infeasible", "via", "no", "step", "broken"}, {"stripe"}),
        ("test \"t\" {\n  plan fulfil_order\n  expect via stripe for |", ACTIONS, {"stripe"}),
        ("test \"t\" {\n  plan fulfil_order given { |", GIVENS, {"stripe"}),
        ("test \"t\" {\n  plan fulfil_order observe { |", PROVIDERS | {"fact"}, {"charge_payment"}),
        ("test \"t\" {\n  plan fulfil_order observe { stripe |", {"up", "down", "degraded"}, {"stripe"}),
        ("test \"t\" {\n  plan fulfil_order\n  expect infeasible because |", POLICIES | {"goal", "budget", "deadline"}, set()),
        ("action a {\n  requires order.validated and |", {"payment.captured", "fraud.checked", "stock.reserved"}, {"stripe", "region"}),
        ("intent i {\n  goal |", {"payment.captured", "customer.notified"}, {"stripe"}),
        ("policy p {\n  when |", GIVENS, {"payment.captured", "region"}),
        ("policy p {\n  when order.amount > 5 USD and |", GIVENS, {"payment.captured"}),
        ("policy p {\n  forbid via where |", {"region", "tags", "provider", "cost", "latency", "reliability"}, {"payment.captured", "stripe"}),
        ("provider p {\n  |", {"region", "tags", "capacity", "cost", "latency", "reliability"}, {"provider", "requires"}),
        ("action a {\n  achieves x.y\n  via stripe { latency 1s; |", {"cost", "latency", "reliability", "region", "tags"}, {"capacity", "requires"}),
        ("action a {\n  achieves x.y\n  |", {"requires", "achieves", "undo", "timeout", "external", "idempotent", "via"}, {"goal"}),
        ("intent i {\n  |", {"given", "goal", "deadline", "budget", "minimize"}, {"requires"}),
        ("policy p {\n  |", {"owner", "when", "soft", "forbid", "require", "limit", "distinct"}, {"goal"}),
        ("intent i {\n  given x: |", {"string", "number", "money", "duration", "bool"}, {"stripe"}),
        ("intent i {\n  goal x\n  minimize cost then |", {"cost", "latency", "risk"}, {"stripe"}),
        ("policy p {\n  limit |", {"cost", "latency", "reliability", "count"}, set()),
        ("policy p {\n  limit count(|", {"via"}, {"stripe"}),
        ("policy p \"in a string |", set(), DECLS),
        ("// a comment |", set(), DECLS),
    ],
)
async def test_completion_offers_what_fits_the_context(shared_client: Client, shared_workspace: Path, text, expected, absent):
    items, _, _ = await complete(shared_client, shared_workspace, text)
    labels = {i.label for i in items}
    assert expected <= labels, f"missing {expected - labels}"
    assert not (absent & labels), f"unexpected {absent & labels}"
    if not expected:
        assert items == []


async def test_completion_replaces_the_dotted_word_being_typed(shared_client: Client, shared_workspace: Path):
    items, text, at = await complete(shared_client, shared_workspace, "action a {\n  requires payment.cap|")
    item = next(i for i in items if i.label == "payment.captured")
    assert item.kind == lsp.CompletionItemKind.Constant
    start = text.index("payment.cap")
    assert item.text_edit.range == lsp.Range(start=position(text, start), end=position(text, at))
    assert item.text_edit.new_text == "payment.captured"


async def test_completion_after_a_number_offers_units_and_currencies(shared_client: Client, shared_workspace: Path):
    items, text, at = await complete(shared_client, shared_workspace, "action a {\n  achieves x.y\n  via stripe { latency 80|")
    labels = [i.label for i in items]
    assert {"80ms", "80s", "80m", "80h", "80d"} <= set(labels)
    assert not any("USD" in label for label in labels)  # a latency is a duration
    ms = next(i for i in items if i.label == "80ms")
    assert ms.text_edit.range == lsp.Range(start=position(text, at - 2), end=position(text, at))

    items, text, at = await complete(shared_client, shared_workspace, "action a {\n  achieves x.y\n  via stripe { cost 0.5 |")
    labels = [i.label for i in items]
    assert {"USD", "EUR", "GBP"} <= set(labels) and not {"ms", "s"} & set(labels)
    usd = next(i for i in items if i.label == "USD")
    assert usd.preselect and min(items, key=lambda i: i.sort_text).label == "USD"  # the project's currency first

    items, _, _ = await complete(shared_client, shared_workspace, "policy p {\n  limit cost <= 4|")
    labels = {i.label for i in items}
    assert "4 USD" in labels and "4ms" in labels


async def test_broken_completion_offers_soft_policies_first(shared_client: Client, shared_workspace: Path):
    items, _, _ = await complete(shared_client, shared_workspace, "test \"t\" {\n  plan fulfil_order\n  expect broken |")
    first = min(items, key=lambda i: i.sort_text)
    assert first.label == "prefer_green"


# ---- formatting ----------------------------------------------------------------------------------


async def format_doc(client: Client, path: Path) -> list[lsp.TextEdit]:
    got = await client.text_document_formatting_async(
        lsp.DocumentFormattingParams(text_document=doc(path), options=lsp.FormattingOptions(tab_size=2, insert_spaces=True))
    )
    return list(got or [])


def canonical(text: str) -> str:
    source = Source("x.intent", text)
    tree, diags = parse(source)
    assert tree is not None, diags
    return format_file(tree, source)


MESSY = 'provider   p {region "eu";   tags ["a"]}  // the provider\naction a { achieves x.y ; via p {latency 1s} }\n'


async def test_formatting_rewrites_a_document_in_the_canonical_layout(shared_client: Client, shared_workspace: Path):
    path = scratch(shared_workspace)
    open_doc(shared_client, path, MESSY)
    try:
        edits = await format_doc(shared_client, path)
        formatted = apply_edits(MESSY, edits)
        assert formatted == canonical(MESSY)
        assert "// the provider" in formatted
        change_doc(shared_client, path, 2, lsp.TextDocumentContentChangeWholeDocument(text=formatted))
        assert await format_doc(shared_client, path) == []  # formatted already
    finally:
        close(shared_client, path)


async def test_formatting_keeps_crlf_line_ends(shared_client: Client, shared_workspace: Path):
    path = scratch(shared_workspace)
    crlf = MESSY.replace("\n", "\r\n")
    open_doc(shared_client, path, crlf)
    try:
        formatted = apply_edits(crlf, await format_doc(shared_client, path))
        assert formatted == canonical(MESSY).replace("\n", "\r\n")
    finally:
        close(shared_client, path)


async def test_formatting_a_document_with_an_error_changes_nothing(shared_client: Client, shared_workspace: Path):
    path = scratch(shared_workspace)
    open_doc(shared_client, path, MESSY + "action b { via p {latency 1s }\n")
    try:
        assert await format_doc(shared_client, path) == []
    finally:
        close(shared_client, path)


# ---- the did-you-mean quick fix ------------------------------------------------------------------


@pytest.mark.parametrize(
    "file, word, misspelt, context",
    [
        ("orders/actions.intent", "stripe", "strpie", "via stripe { cost 0.35"),
        ("orders/intents.intent", "money", "mony", "order.amount: money, customer.email"),
        ("policies/payments/payments.intent", "charge_payment", "charge_paymnt", "before charge_payment"),
        ("orders/tests.intent", "eu_data_residency", "eu_data_residncy", "because eu_data_residency"),
    ],
)
async def test_a_did_you_mean_quick_fix_replaces_exactly_the_name(shared_client: Client, shared_workspace: Path, file, word, misspelt, context):
    path = shared_workspace / file
    original = open_doc(shared_client, path)
    try:
        await wait_version(shared_client, uri(path), 1)
        new = context.replace(word, misspelt)
        text, change = replace_edit(original, context, new)
        change_doc(shared_client, path, 2, change)
        diags = await wait_version(shared_client, uri(path), 2)
        assert len(diags) == 1, diags
        d = diags[0]
        name_range = word_range(text, new, word=misspelt)
        assert d.range == name_range
        actions = await shared_client.text_document_code_action_async(
            lsp.CodeActionParams(text_document=doc(path), range=d.range, context=lsp.CodeActionContext(diagnostics=[d]))
        )
        assert len(actions) == 1
        action = actions[0]
        assert action.kind == lsp.CodeActionKind.QuickFix
        assert list(action.diagnostics) == [d]
        edits = list(action.edit.changes[uri(path)])
        assert [(e.range, e.new_text) for e in edits] == [(name_range, word)]
        assert action.title == f"Change `{misspelt}` to `{word}`"
        fixed = apply_edits(text, edits)
        assert fixed == original
        change_doc(shared_client, path, 3, lsp.TextDocumentContentChangePartial(range=edits[0].range, text=edits[0].new_text))
        assert await wait_version(shared_client, uri(path), 3) == []
    finally:
        close(shared_client, path)


async def test_no_quick_fix_without_a_suggestion(shared_client: Client, shared_workspace: Path):
    path = scratch(shared_workspace)
    text = "action a {\n  achieves x.y\n  via qqqqqqqq { latency 1s }\n}\n"
    open_doc(shared_client, path, text)
    try:
        diags = await wait_version(shared_client, uri(path), 1)
        assert [d.code for d in diags] == ["E012"] and "did you mean" not in diags[0].message
        actions = await shared_client.text_document_code_action_async(
            lsp.CodeActionParams(text_document=doc(path), range=diags[0].range, context=lsp.CodeActionContext(diagnostics=diags))
        )
        assert not actions
    finally:
        close(shared_client, path)
