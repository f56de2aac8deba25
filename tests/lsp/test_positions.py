"""Positions in every position encoding a client may negotiate, with astral characters before a
diagnostic on its line, and with \\r\\n, lone \\r, U+2028 and form feeds in the text."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as lsp

from tests.lsp.helpers import (
    CONFIG,
    Client,
    change_doc,
    doc,
    find,
    open_doc,
    pos_in,
    span_range,
    start,
    stop,
    uri,
    wait_version,
    word_range,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_lsp.fixture(config=CONFIG, scope="module", params=[None, "utf-8", "utf-32"], ids=["default", "utf-8", "utf-32"])
async def encoded_client(lsp_client: Client, shared_workspace: Path, request):
    """A server whose client offers only ``request.param`` (None: offers nothing, so UTF-16).
    The tests open documents of their own and never write to disk, so the servers of the
    three encodings share one copy of the project."""
    encoding = request.param
    # A short debounce (a setting of the server): these tests wait for many diagnostics.
    result = await start(lsp_client, shared_workspace, encodings=[encoding] if encoding else None, options={"debounceMs": 50})
    lsp_client.encoding = encoding or "utf-16"
    assert result.capabilities.position_encoding == lsp_client.encoding
    yield
    await stop(lsp_client)


EMOJI = 'policy party "🎉 fête 😀" { forbid action charge_payment; forbid provider strpie }\n'


async def test_astral_characters_before_a_diagnostic_on_its_line(encoded_client: Client, shared_workspace: Path):
    client, enc = encoded_client, encoded_client.encoding
    path = shared_workspace / "policies" / "party.intent"
    text = open_doc(client, path, EMOJI)
    diags = await wait_version(client, uri(path), 1)
    assert [(d.code, d.range) for d in diags] == [("E012", word_range(text, "strpie", encoding=enc))]
    if enc != "utf-32":
        assert diags[0].range != word_range(text, "strpie", encoding="utf-32")  # the encoding is applied

    hover = await client.text_document_hover_async(lsp.HoverParams(text_document=doc(path), position=pos_in(text, "charge_payment", delta=3, encoding=enc)))
    assert hover is not None and "**action** `charge_payment`" in hover.contents.value
    assert hover.range == word_range(text, "charge_payment", encoding=enc)

    # An edit placed in the encoding's units, after the astral characters.
    change_doc(client, path, 2, lsp.TextDocumentContentChangePartial(range=word_range(text, "strpie", encoding=enc), text="stripe"))
    assert await wait_version(client, uri(path), 2) == []
    fixed = text.replace("strpie", "stripe")
    found = await client.text_document_definition_async(lsp.DefinitionParams(text_document=doc(path), position=pos_in(fixed, "stripe", delta=2, encoding=enc)))
    providers = shared_workspace / "orders" / "providers.intent"
    assert [(loc.uri, loc.range) for loc in found] == [(uri(providers), word_range(providers.read_text(), "provider stripe", word="stripe", encoding=enc))]


@pytest.mark.parametrize(
    "name, text",
    [
        ("crlf", 'policy crlf_p "x" {\r\n  owner "a"\r\n  forbid provider strpie\r\n}\r\n'),
        ("cr", 'policy cr_p "x" {\r  owner "a"\r  forbid provider strpie\r}\r'),
        ("mixed", 'policy mixed_p "x" {\n  owner "a"\r\n  forbid provider strpie\r}\n'),
        # Not line ends for LSP: U+2028 inside a string, a form feed as white space.
        ("separators", 'policy sep_p "a\u2028b" {\x0c owner "a\u0085" forbid provider strpie }\n'),
    ],
)
async def test_line_ends_are_counted_as_lsp_counts_them(encoded_client: Client, shared_workspace: Path, name, text):
    client, enc = encoded_client, encoded_client.encoding
    path = shared_workspace / "policies" / f"{name}.intent"
    open_doc(client, path, text)
    diags = await wait_version(client, uri(path), 1)
    expected = word_range(text, "strpie", encoding=enc)
    assert [(d.code, d.range) for d in diags] == [("E012", expected)]
    assert expected.start.line == (0 if name == "separators" else 2)
    # Fix it with an edit at that range: the server and the client agree on where it is.
    change_doc(client, path, 2, lsp.TextDocumentContentChangePartial(range=expected, text="stripe"))
    assert await wait_version(client, uri(path), 2) == []
    # Then break the line end itself: an edit spanning `\r\n` joins two lines.
    at = find(text, "owner")
    rng = span_range(text, at - 4, at, encoding=enc) if name == "crlf" else None
    if rng is not None:
        change_doc(client, path, 3, lsp.TextDocumentContentChangePartial(range=rng, text=" "))
        assert await wait_version(client, uri(path), 3) == []
