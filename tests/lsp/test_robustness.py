"""Nothing a client sends stops the server: random edits and requests (seeded, bounded), huge
files, positions out of range, documents it never saw. Every handler error would be logged to
the client, and the fixture's teardown fails on any (and checks that the server exits with 0)."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as lsp

from tests.lsp.helpers import (
    CONFIG,
    EXAMPLE,
    Client,
    change_doc,
    close_doc,
    doc,
    open_doc,
    pos_in,
    start,
    stop,
    uri,
    wait_for,
    wait_version,
    word_range,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

SNIPPETS = [
    "provider", "action", "intent", "policy", "test", "via", "requires", "achieves", "forbid", "where", "when", "expect",
    "plan", "given", "{", "}", "[", "]", "(", ")", ";", ",", ":", "==", "<=", "and", "or", "not", '"', '"eu"', "//",
    "\n", "\r", "\r\n", " ", "  ", "1.5", "800ms", "0.35 USD", "stripe", "charge_payment", "payment.captured", "🎉", "é",
    "\u2028", "\x0c", "\t", "x" * 300, "\\", "\x00",
]


class Model:
    """The client's copy of a document, edited as the server must edit its own: positions in
    UTF-16 units, clamped the way the server clamps them (past the end of a line: its end; past
    the last line: the end of the text; inside a surrogate pair: before the character)."""

    def __init__(self, text: str):
        self.text = text

    def lines(self) -> list[int]:
        return [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", self.text)]

    def offset(self, p: lsp.Position) -> int:
        starts = self.lines()
        if p.line >= len(starts):
            return len(self.text)
        begin = starts[p.line]
        end = starts[p.line + 1] if p.line + 1 < len(starts) else len(self.text)
        while end > begin and self.text[end - 1] in "\r\n":
            end -= 1
        i, units = begin, 0
        while i < end:
            width = 2 if ord(self.text[i]) > 0xFFFF else 1
            if units + width > p.character:
                break
            units += width
            i += 1
        return i

    def end(self) -> lsp.Position:
        starts = self.lines()
        last = self.text[starts[-1] :]
        return lsp.Position(line=len(starts) - 1, character=len(last.encode("utf-16-le")) // 2)

    def apply(self, rng: lsp.Range, new: str) -> None:
        a, b = sorted((self.offset(rng.start), self.offset(rng.end)))
        self.text = self.text[:a] + new + self.text[b:]


def random_position(rng: random.Random, model: Model) -> lsp.Position:
    lines = len(model.lines())
    return lsp.Position(line=rng.choice([rng.randrange(lines), rng.randrange(lines + 3), 10**6]), character=rng.choice([0, rng.randrange(120), 10**6]))


async def test_random_edits_and_requests_never_stop_the_server(shared_client: Client, shared_workspace: Path):
    rng = random.Random(20240611)
    path = shared_workspace / "orders" / "actions.intent"
    original = open_doc(shared_client, path)
    model = Model(original)
    version = 1
    since = len(shared_client.published)
    answered = 0
    try:
        for step in range(300):
            version += 1
            a, b = random_position(rng, model), random_position(rng, model)
            if rng.random() < 0.6:
                new = "".join(rng.choice(SNIPPETS) for _ in range(rng.randrange(1, 4)))
            else:
                new = ""
            rng_ = lsp.Range(start=a, end=b) if (a.line, a.character) <= (b.line, b.character) else lsp.Range(start=b, end=a)
            model.apply(rng_, new)
            change_doc(shared_client, path, version, lsp.TextDocumentContentChangePartial(range=rng_, text=new))
            if step % 5 == 0:
                p = random_position(rng, model)
                td = doc(path)
                kind = step // 5 % 8
                if kind == 0:
                    await shared_client.text_document_hover_async(lsp.HoverParams(text_document=td, position=p))
                elif kind == 1:
                    await shared_client.text_document_completion_async(lsp.CompletionParams(text_document=td, position=p))
                elif kind == 2:
                    await shared_client.text_document_definition_async(lsp.DefinitionParams(text_document=td, position=p))
                elif kind == 3:
                    await shared_client.text_document_references_async(
                        lsp.ReferenceParams(text_document=td, position=p, context=lsp.ReferenceContext(include_declaration=True))
                    )
                elif kind == 4:
                    await shared_client.text_document_document_symbol_async(lsp.DocumentSymbolParams(text_document=td))
                elif kind == 5:
                    await shared_client.text_document_formatting_async(
                        lsp.DocumentFormattingParams(text_document=td, options=lsp.FormattingOptions(tab_size=2, insert_spaces=True))
                    )
                elif kind == 6:
                    await shared_client.text_document_code_lens_async(lsp.CodeLensParams(text_document=td))
                else:
                    diags = shared_client.latest(uri(path)) or []
                    await shared_client.text_document_code_action_async(
                        lsp.CodeActionParams(text_document=td, range=lsp.Range(start=p, end=p), context=lsp.CodeActionContext(diagnostics=diags))
                    )
                answered += 1
        assert answered == 60
        # Undo everything with one edit over what the client believes the text is: if the server
        # had applied any edit differently, text would be left over, and diagnostics with it.
        version += 1
        change_doc(shared_client, path, version, lsp.TextDocumentContentChangePartial(range=lsp.Range(start=lsp.Position(line=0, character=0), end=model.end()), text=original))
        assert await wait_version(shared_client, uri(path), version, since) == []
        # The server still answers, about this file and others.
        hover = await shared_client.text_document_hover_async(lsp.HoverParams(text_document=doc(path), position=pos_in(original, "via stripe", delta=5)))
        assert "**provider** `stripe`" in hover.contents.value
    finally:
        close_doc(shared_client, path)


async def test_a_file_over_the_size_limit_is_an_error_not_a_hang(shared_client: Client, shared_workspace: Path):
    path = shared_workspace / "orders" / "huge.intent"
    text = "// " + "x" * 1_000_000 + "\nprovider p {}\n"
    since = len(shared_client.published)
    open_doc(shared_client, path, text)
    try:
        diags = await wait_version(shared_client, uri(path), 1, since)
        assert [d.code for d in diags] == ["E004"]
        symbols = await shared_client.text_document_document_symbol_async(lsp.DocumentSymbolParams(text_document=doc(path)))
        assert not symbols
        await shared_client.text_document_completion_async(lsp.CompletionParams(text_document=doc(path), position=lsp.Position(line=0, character=500_000)))
    finally:
        close_doc(shared_client, path)
    await wait_for(shared_client, lambda: shared_client.latest(uri(path)) == [], "the huge file's diagnostics to clear")


async def test_a_large_valid_file_is_served(shared_client: Client, shared_workspace: Path):
    path = shared_workspace / "orders" / "many.intent"
    text = "".join(f'provider many_{i} {{ region "eu"; tags ["t{i}"] }}\n' for i in range(1000))
    since = len(shared_client.published)
    open_doc(shared_client, path, text)
    try:
        assert await wait_version(shared_client, uri(path), 1, since) == []
        symbols = await shared_client.text_document_document_symbol_async(lsp.DocumentSymbolParams(text_document=doc(path)))
        assert len(symbols) == 1000 and symbols[-1].name == "many_999"
        found = await shared_client.workspace_symbol_async(lsp.WorkspaceSymbolParams(query="many_999"))
        assert [s.name for s in found] == ["many_999"]
    finally:
        close_doc(shared_client, path)


async def test_requests_about_unknown_documents_and_places_get_empty_answers(shared_client: Client, shared_workspace: Path):
    ghost = lsp.TextDocumentIdentifier(uri=uri(shared_workspace / "nowhere" / "ghost.intent"))
    far = lsp.Position(line=10**6, character=10**6)
    assert await shared_client.text_document_hover_async(lsp.HoverParams(text_document=ghost, position=far)) is None
    assert not await shared_client.text_document_definition_async(lsp.DefinitionParams(text_document=ghost, position=far))
    assert not await shared_client.text_document_document_symbol_async(lsp.DocumentSymbolParams(text_document=ghost))
    assert not await shared_client.text_document_formatting_async(lsp.DocumentFormattingParams(text_document=ghost, options=lsp.FormattingOptions(tab_size=2, insert_spaces=True)))
    odd = lsp.TextDocumentIdentifier(uri="not a uri at all")
    assert await shared_client.text_document_hover_async(lsp.HoverParams(text_document=odd, position=far)) is None
    # A change to a document never opened is ignored.
    change_doc(shared_client, shared_workspace / "nowhere" / "ghost.intent", 7, lsp.TextDocumentContentChangeWholeDocument(text="provider {"))
    actions = shared_workspace / "orders" / "actions.intent"
    text = actions.read_text()
    assert await shared_client.text_document_hover_async(lsp.HoverParams(text_document=doc(actions), position=far)) is None
    got = await shared_client.text_document_definition_async(lsp.DefinitionParams(text_document=doc(actions), position=pos_in(text, "via adyen", delta=5)))
    assert len(got) == 1
    with pytest.raises(Exception, match="noSuchCommand"):  # an error answer, and the server goes on
        await shared_client.workspace_execute_command_async(lsp.ExecuteCommandParams(command="intento.noSuchCommand", arguments=[]))


async def test_an_untitled_document_is_a_project_of_its_own(shared_client: Client, shared_workspace: Path):
    untitled = "untitled:Untitled-1"
    text = "action a {\n  achieves x.y\n  via nobody { latency 1s }\n}\n"
    since = len(shared_client.published)
    shared_client.text_document_did_open(lsp.DidOpenTextDocumentParams(text_document=lsp.TextDocumentItem(uri=untitled, language_id="intento", version=1, text=text)))
    diags = await wait_version(shared_client, untitled, 1, since)
    assert [(d.code, d.range) for d in diags] == [("E012", word_range(text, "nobody"))]
    shared_client.text_document_did_close(lsp.DidCloseTextDocumentParams(text_document=lsp.TextDocumentIdentifier(uri=untitled)))
    await wait_for(shared_client, lambda: shared_client.latest(untitled) == [], "the untitled document's diagnostics to clear")


# ---- no workspace folder -------------------------------------------------------------------------


@pytest_lsp.fixture(config=CONFIG, scope="module")
async def rootless_client(lsp_client: Client):
    await start(lsp_client, None)
    yield
    await stop(lsp_client)


async def test_without_a_workspace_folder_the_project_is_the_opened_files_folder(rootless_client: Client, tmp_path_factory):
    folder = tmp_path_factory.mktemp("loose")
    for name in ("providers.intent", "actions.intent", "intents.intent"):  # tests.intent needs the policies
        (folder / name).write_text((EXAMPLE / name).read_text())
    actions = folder / "actions.intent"
    text = open_doc(rootless_client, actions)
    await wait_version(rootless_client, uri(actions), 1)
    # The other files of its folder are checked too.
    await wait_for(rootless_client, lambda: all(rootless_client.latest(uri(f)) == [] for f in folder.glob("*.intent")), "diagnostics of the whole folder")
    found = await rootless_client.text_document_definition_async(lsp.DefinitionParams(text_document=doc(actions), position=pos_in(text, "via adyen", delta=5)))
    providers = folder / "providers.intent"
    assert [(loc.uri, loc.range) for loc in found] == [(uri(providers), word_range(providers.read_text(), "provider adyen", word="adyen"))]
    close_doc(rootless_client, actions)
