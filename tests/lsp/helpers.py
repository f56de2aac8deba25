"""Helpers of the language server's end-to-end tests: the client, the project, positions.

A real LSP client (pytest-lsp) drives the real server process (`python -m intento lsp`) over
stdio, on a copy of examples/order_fulfilment and policies/. Nothing waits by sleeping:
`wait_for` waits for a notification that makes a condition true, with a bound.

Positions in expectations are computed by `position` below, independently of the server's code:
lines end at \\n, \\r\\n or \\r, characters are counted in the encoding under test.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pygls.protocol import default_converter
from pytest_lsp import ClientServerConfig, LanguageClient
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "order_fulfilment"
POLICIES = ROOT / "policies"
#: Bound of every wait for the server (generous: a loaded CI machine).
TIMEOUT = 20.0

SERVER = [sys.executable, "-m", "intento", "lsp"]


class Client(LanguageClient):
    """pytest-lsp's client, also keeping every notification in order, and waking `wait_for`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.published: list[lsp.PublishDiagnosticsParams] = []
        self.shown: list[lsp.ShowMessageParams] = []
        self.logged: list[lsp.LogMessageParams] = []
        self.changed = asyncio.Event()

    def poke(self) -> None:
        self.changed.set()

    # -- helpers used by the tests --

    def publishes(self, uri: str) -> list[lsp.PublishDiagnosticsParams]:
        return [p for p in self.published if p.uri == uri]

    def latest(self, uri: str) -> list[lsp.Diagnostic] | None:
        found = self.publishes(uri)
        return list(found[-1].diagnostics) if found else None

    def errors_logged(self) -> list[str]:
        return [m.message for m in self.logged if m.type == lsp.MessageType.Error]


def _publish(client: Client, params: lsp.PublishDiagnosticsParams):
    client.diagnostics[params.uri] = params.diagnostics
    client.published.append(params)
    client.poke()


def _show(client: Client, params: lsp.ShowMessageParams):
    client.messages.append(params)
    client.shown.append(params)
    client.poke()


def _log(client: Client, params: lsp.LogMessageParams):
    client.log_messages.append(params)
    client.logged.append(params)
    client.poke()


def make_client() -> Client:
    client = Client(converter_factory=default_converter)
    features = dict(DEFAULT_CLIENT_FEATURES)
    features[lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = _publish
    features[lsp.WINDOW_SHOW_MESSAGE] = _show
    features[lsp.WINDOW_LOG_MESSAGE] = _log
    register_lsp_features(client, features)
    return client


CONFIG = ClientServerConfig(server_command=SERVER, client_factory=make_client)


async def wait_for(client: Client, condition: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    """Wait until ``condition()`` is true (re-checked at each notification), at most ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if value:
            return value
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        client.changed.clear()
        try:
            await asyncio.wait_for(client.changed.wait(), remaining)
        except TimeoutError:
            pass


async def wait_version(client: Client, uri: str, version: int, since: int = 0) -> list[lsp.Diagnostic]:
    """The diagnostics published for ``uri`` at document version ``version`` (among the
    publications after the first ``since``: a document opened again starts at version 1 again)."""
    found = await wait_for(client, lambda: [p for p in client.published[since:] if p.uri == uri and p.version == version], f"diagnostics of {uri} v{version}")
    return list(found[-1].diagnostics)


# ---- the project on disk ------------------------------------------------------------------------


def make_workspace(tmp: Path) -> Path:
    """examples/order_fulfilment and policies/ copied under ``tmp`` (the `.intent` files only)."""
    for src, dst in ((EXAMPLE, tmp / "orders"), (POLICIES, tmp / "policies")):
        shutil.copytree(src, dst, ignore=lambda d, names: [n for n in names if not n.endswith(".intent") and not (Path(d) / n).is_dir()])
    return tmp


def uri(path: Path) -> str:
    return path.absolute().as_uri()


def project_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.intent"))


# ---- positions, computed independently of the server -------------------------------------------


def _units(text: str, encoding: str) -> int:
    if encoding == "utf-8":
        return len(text.encode("utf-8"))
    if encoding == "utf-32":
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def position(text: str, offset: int, encoding: str = "utf-16") -> lsp.Position:
    line_starts = [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", text)]
    line = max(i for i, s in enumerate(line_starts) if s <= offset)
    return lsp.Position(line=line, character=_units(text[line_starts[line] : offset], encoding))


def find(text: str, needle: str, nth: int = 0) -> int:
    """Offset of the ``nth`` occurrence of ``needle`` in ``text``."""
    at = -1
    for _ in range(nth + 1):
        at = text.index(needle, at + 1)
    return at


def span_range(text: str, start: int, end: int, encoding: str = "utf-16") -> lsp.Range:
    return lsp.Range(start=position(text, start, encoding), end=position(text, end, encoding))


def word_range(text: str, needle: str, nth: int = 0, word: str | None = None, encoding: str = "utf-16") -> lsp.Range:
    """The range of ``word`` (default: ``needle``) where it starts inside the nth ``needle``."""
    at = find(text, needle, nth)
    word = word or needle
    start = at + needle.index(word)
    return span_range(text, start, start + len(word), encoding)


def pos_in(text: str, needle: str, nth: int = 0, delta: int = 1, encoding: str = "utf-16") -> lsp.Position:
    """A position ``delta`` characters into the nth ``needle`` (on a name, for hover/definition)."""
    return position(text, find(text, needle, nth) + delta, encoding)


def replace_edit(text: str, old: str, new: str, nth: int = 0, encoding: str = "utf-16") -> tuple[str, lsp.TextDocumentContentChangePartial]:
    """``text`` with the nth ``old`` replaced by ``new``, and the incremental change saying so."""
    at = find(text, old, nth)
    change = lsp.TextDocumentContentChangePartial(range=span_range(text, at, at + len(old), encoding), text=new)
    return text[:at] + new + text[at + len(old) :], change


# ---- sessions ------------------------------------------------------------------------------------


def init_params(root: Path | None, encodings: list[str] | None = None, options: dict | None = None) -> lsp.InitializeParams:
    caps = lsp.ClientCapabilities(
        general=lsp.GeneralClientCapabilities(position_encodings=encodings) if encodings else None,
        text_document=lsp.TextDocumentClientCapabilities(
            hover=lsp.HoverClientCapabilities(content_format=[lsp.MarkupKind.Markdown]),
            document_symbol=lsp.DocumentSymbolClientCapabilities(hierarchical_document_symbol_support=True),
            publish_diagnostics=lsp.PublishDiagnosticsClientCapabilities(version_support=True),
        ),
        window=lsp.WindowClientCapabilities(),
    )
    folders = [lsp.WorkspaceFolder(uri=uri(root), name=root.name)] if root is not None else None
    return lsp.InitializeParams(
        capabilities=caps,
        root_uri=uri(root) if root is not None else None,
        workspace_folders=folders,
        initialization_options=options,
    )


async def start(client: Client, root: Path | None, **kw) -> lsp.InitializeResult:
    result = await client.initialize_session(init_params(root, **kw))
    if root is not None:
        files = project_files(root)
        # The whole project is checked at once: every file gets its (empty) diagnostics.
        await wait_for(client, lambda: all(client.publishes(uri(f)) for f in files), "the first diagnostics of every file")
    return result


async def stop(client: Client) -> None:
    """Shut the server down and check that it exited cleanly, and that no handler failed."""
    errors = client.errors_logged()
    await client.shutdown_session()
    server = client._server
    if server is not None:
        code = await asyncio.wait_for(server.wait(), TIMEOUT)
        assert code == 0, f"the server exited with {code}"
    assert not errors, "a handler failed:\n" + "\n".join(errors)


def open_doc(client: Client, path: Path, text: str | None = None, version: int = 1) -> str:
    text = path.read_text() if text is None else text
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(text_document=lsp.TextDocumentItem(uri=uri(path), language_id="intento", version=version, text=text)))
    return text


def close_doc(client: Client, path: Path) -> None:
    client.text_document_did_close(lsp.DidCloseTextDocumentParams(text_document=lsp.TextDocumentIdentifier(uri=uri(path))))


def change_doc(client: Client, path: Path, version: int, *changes) -> None:
    client.text_document_did_change(
        lsp.DidChangeTextDocumentParams(text_document=lsp.VersionedTextDocumentIdentifier(uri=uri(path), version=version), content_changes=list(changes))
    )


def full(text: str) -> lsp.TextDocumentContentChangeWholeDocument:
    return lsp.TextDocumentContentChangeWholeDocument(text=text)


def doc(path: Path) -> lsp.TextDocumentIdentifier:
    return lsp.TextDocumentIdentifier(uri=uri(path))


def apply_edits(text: str, edits: list[lsp.TextEdit], encoding: str = "utf-16") -> str:
    """``text`` after non-overlapping ``edits`` (applied from the last)."""

    def offset(p: lsp.Position) -> int:
        starts = [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", text)]
        begin = starts[p.line]
        i, units = begin, 0
        while units < p.character:
            units += _units(text[i], encoding)
            i += 1
        return i

    for e in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        text = text[: offset(e.range.start)] + e.new_text + text[offset(e.range.end) :]
    return text

