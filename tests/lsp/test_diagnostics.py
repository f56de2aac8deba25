"""Diagnostics of the whole project: located, across files, debounced, cleared when fixed.

One server for the module: each test opens the documents it changes and closes them again, and
reads only what was published after it started (``since``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from lsprotocol import types as lsp

from tests.lsp.helpers import (
    Client,
    change_doc,
    close_doc,
    find,
    full,
    open_doc,
    project_files,
    replace_edit,
    span_range,
    uri,
    wait_for,
    wait_version,
    word_range,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def reopen(client: Client, path: Path, text: str | None = None) -> tuple[str, int]:
    """Open ``path`` and wait for its first diagnostics: (its text, where this test's
    publications start)."""
    since = len(client.published)
    text = open_doc(client, path, text)
    await wait_version(client, uri(path), 1, since)
    return text, since


async def test_every_file_of_the_project_gets_diagnostics(shared_client: Client, shared_workspace: Path):
    files = project_files(shared_workspace)
    assert len(files) == 10
    for f in files:
        assert shared_client.latest(uri(f)) == [], f"{f} has diagnostics: {shared_client.latest(uri(f))}"


async def test_an_unknown_provider_is_located_with_help_then_cleared(shared_client: Client, shared_workspace: Path):
    actions = shared_workspace / "orders" / "actions.intent"
    text, since = await reopen(shared_client, actions)
    try:
        new, change = replace_edit(text, "via stripe { cost 0.35", "via strpie { cost 0.35")
        change_doc(shared_client, actions, 2, change)
        diags = await wait_version(shared_client, uri(actions), 2, since)
        assert len(diags) == 1, diags
        d = diags[0]
        assert d.code == "E012"
        assert d.severity == lsp.DiagnosticSeverity.Error
        assert d.source == "intento"
        assert d.range == word_range(new, "via strpie { cost 0.35", word="strpie")
        assert d.message.splitlines() == ["unknown provider `strpie`", "help: did you mean `stripe`?"]

        fixed, change = replace_edit(new, "strpie", "stripe")
        assert fixed == text
        change_doc(shared_client, actions, 3, change)
        assert await wait_version(shared_client, uri(actions), 3, since) == []
    finally:
        close_doc(shared_client, actions)


async def test_renaming_a_provider_reports_its_uses_in_other_files(shared_client: Client, shared_workspace: Path):
    providers = shared_workspace / "orders" / "providers.intent"
    actions = shared_workspace / "orders" / "actions.intent"
    tests = shared_workspace / "orders" / "tests.intent"
    payment_tests = shared_workspace / "policies" / "payments" / "tests.intent"
    text, since = await reopen(shared_client, providers)

    def published_since(path, mark):
        return [p for p in shared_client.published[mark:] if p.uri == uri(path)]

    try:
        _, change = replace_edit(text, "provider stripe {", "provider stripe_eu {")
        mark = len(shared_client.published)
        change_doc(shared_client, providers, 2, change)
        assert await wait_version(shared_client, uri(providers), 2, since) == []
        # The files that use `stripe` are not open: their diagnostics come all the same.
        await wait_for(
            shared_client,
            lambda: published_since(actions, mark) and published_since(tests, mark) and published_since(payment_tests, mark),
            "diagnostics in the files using `stripe`",
        )
        action_text = actions.read_text()
        got = list(published_since(actions, mark)[-1].diagnostics)
        # The two options through `stripe` (charge_payment, refund_payment), exactly on the name.
        expected = [word_range(action_text, "via stripe {", nth=i, word="stripe") for i in range(2)]
        assert [(d.code, d.range) for d in got] == [("E012", r) for r in expected]
        assert all("did you mean `stripe_eu`?" in d.message for d in got)
        test_text = tests.read_text()
        tdiags = list(published_since(tests, mark)[-1].diagnostics)
        assert [(d.code, d.range) for d in tdiags] == [("E012", word_range(test_text, "observe { stripe down }", word="stripe"))]

        # Renaming it back clears every file.
        mark = len(shared_client.published)
        change_doc(shared_client, providers, 3, full(text))
        await wait_for(
            shared_client,
            lambda: published_since(actions, mark) and published_since(tests, mark) and published_since(payment_tests, mark),
            "the diagnostics to clear",
        )
        for path in (actions, tests, payment_tests):
            assert list(published_since(path, mark)[-1].diagnostics) == []
    finally:
        close_doc(shared_client, providers)


async def test_a_syntax_error_is_located_and_fixing_it_clears_it(shared_client: Client, shared_workspace: Path):
    intents = shared_workspace / "orders" / "intents.intent"
    text, since = await reopen(shared_client, intents)
    try:
        broken, change = replace_edit(text, "deadline 2h", "deadline 2h }}")
        change_doc(shared_client, intents, 2, change)
        diags = await wait_version(shared_client, uri(intents), 2, since)
        assert [d.code for d in diags] == ["E001"]
        at = find(broken, "}}") + 1
        assert diags[0].range == span_range(broken, at, at + 1)
        change_doc(shared_client, intents, 3, full(text))
        assert await wait_version(shared_client, uri(intents), 3, since) == []
    finally:
        close_doc(shared_client, intents)


async def test_a_burst_of_changes_is_checked_once_after_the_last(shared_client: Client, shared_workspace: Path):
    intents = shared_workspace / "orders" / "intents.intent"
    text, since = await reopen(shared_client, intents)
    loop = asyncio.get_running_loop()
    try:
        # Ten versions, each with an error of its own: only the last may be reported.
        for v in range(2, 12):
            change_doc(shared_client, intents, v, full(text.replace("budget 6.00 USD", f"budget 6.00 USD\n  goal_{v} x")))
        sent = loop.time()
        diags = await wait_version(shared_client, uri(intents), 11, since)
        elapsed = loop.time() - sent
        versions = [p.version for p in shared_client.published[since:] if p.uri == uri(intents)]
        assert versions == [1, 11], versions
        assert elapsed >= 0.25, f"published {elapsed:.3f}s after the last change: not debounced"
        final = text.replace("budget 6.00 USD", "budget 6.00 USD\n  goal_11 x")
        assert [d.code for d in diags] == ["E001"]
        at = find(final, "goal_11")
        assert diags[0].range == span_range(final, at, at + len("goal_11"))
    finally:
        close_doc(shared_client, intents)
    await wait_for(shared_client, lambda: shared_client.latest(uri(intents)) == [], "the file's diagnostics to clear on close")


async def test_a_new_unsaved_file_joins_the_project_and_leaves_it_on_close(shared_client: Client, shared_workspace: Path):
    scratch = shared_workspace / "orders" / "scratch.intent"
    text = 'provider stripe { region "us" }\n'
    since = len(shared_client.published)
    open_doc(shared_client, scratch, text)
    diags = await wait_version(shared_client, uri(scratch), 1, since)
    assert [(d.code, d.range) for d in diags] == [("E011", word_range(text, "stripe"))]
    assert "`stripe` is declared twice" in diags[0].message
    close_doc(shared_client, scratch)
    await wait_for(shared_client, lambda: shared_client.latest(uri(scratch)) == [], "the closed file's diagnostics to clear")


async def test_a_warning_is_a_warning(shared_client: Client, shared_workspace: Path):
    spend = shared_workspace / "policies" / "common" / "spend.intent"
    text, since = await reopen(shared_client, spend)
    try:
        new, change = replace_edit(text, "limit reliability >= 0.9", 'forbid via where regoin != "eu"')
        change_doc(shared_client, spend, 2, change)
        diags = await wait_version(shared_client, uri(spend), 2, since)
        assert [(d.code, d.severity) for d in diags] == [("W105", lsp.DiagnosticSeverity.Warning)]
        assert diags[0].range == word_range(new, "regoin")
        assert "help: did you mean `region`?" in diags[0].message
    finally:
        close_doc(shared_client, spend)
    await wait_for(shared_client, lambda: shared_client.latest(uri(spend)) == [], "the warning to clear on close")


async def test_a_file_that_is_not_utf8_is_reported_where_it_breaks(shared_client: Client, shared_workspace: Path):
    bad = shared_workspace / "orders" / "latin1.intent"
    bad.write_bytes('provider p { region "m\xfcnchen" }\n'.encode("latin-1"))
    since = len(shared_client.published)
    try:
        shared_client.workspace_did_change_watched_files(
            lsp.DidChangeWatchedFilesParams(changes=[lsp.FileEvent(uri=uri(bad), type=lsp.FileChangeType.Created)])
        )
        found = await wait_for(shared_client, lambda: [p for p in shared_client.published[since:] if p.uri == uri(bad)], "diagnostics of a new file on disk")
        diags = list(found[-1].diagnostics)
        assert [d.code for d in diags] == ["E010"]
        at = len('provider p { region "m')
        assert diags[0].range.start == lsp.Position(line=0, character=at)
    finally:
        bad.unlink()
        shared_client.workspace_did_change_watched_files(
            lsp.DidChangeWatchedFilesParams(changes=[lsp.FileEvent(uri=uri(bad), type=lsp.FileChangeType.Deleted)])
        )
    await wait_for(shared_client, lambda: shared_client.latest(uri(bad)) == [], "the deleted file's diagnostics to clear")
