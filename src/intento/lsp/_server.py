"""The language server: pygls wiring over `_project`, `_features`, `_hover`, `_complete` and
`_commands` (the only module that imports pygls).

Input: LSP messages on stdin. Output: LSP messages on stdout. The server keeps its own copy of
open documents (`_project.Workspace`): pygls's document store splits lines at every character
`str.splitlines` knows (form feed, U+2028, ...), which is not how LSP counts them.

Threads: the event loop reads messages, keeps documents and answers; everything that parses,
checks or plans runs on one worker thread, one task at a time, so intento's code never runs
concurrently with itself and the loop stays responsive (a change arriving while a check runs is
seen at once, and its debounce timer starts then).

Diagnostics are debounced per project: `debounce` seconds (0.3 by default) after the last
change, the whole project is checked and diagnostics are published for every file of it, an
empty list for a file whose diagnostics went away. A check whose text is outdated by then is not
published. Every handler catches its own errors: the error goes to the client as a
`window/logMessage` and the request gets an empty answer; nothing a client sends stops the server.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pygls.exceptions import FeatureRequestError
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from intento import __version__
from intento.lsp import _commands, _features
from intento.lsp._complete import complete
from intento.lsp._hover import hover
from intento.lsp._project import FileModel, Model, Project, Workspace, canonical_uri, uri_to_path
from intento.lsp._text import UTF8, UTF16, UTF32

#: Settings (`initializationOptions`, or `settings.intento` of `workspace/didChangeConfiguration`).
DEFAULT_DEBOUNCE_MS = 300
DEFAULT_TIME_LIMIT_S = 10.0
#: Characters that open completion by themselves.
TRIGGER_CHARACTERS = [".", "[", ",", ":", "{"]


class _Worker:
    """One daemon thread running tasks in order; `run` gives an awaitable of the result. A
    daemon, so that `exit` never waits for a long solve."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="intento-lsp-worker", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            loop, future, fn, args = job
            try:
                result = fn(*args)
            except BaseException as e:  # noqa: BLE001 - handed to the awaiting handler
                loop.call_soon_threadsafe(_settle, future, None, e)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)

    def run(self, fn: Callable, *args) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((loop, future, fn, args))
        return future

    def stop(self) -> None:
        self._queue.put(None)


def _settle(future: asyncio.Future, result, error) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class _Protocol(LanguageServerProtocol):
    """pygls's protocol without its document store: the server keeps its own (see the module
    docstring), so opening, changing and closing documents only reach the server's handlers."""

    @lsp_method(lsp.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params):
        if (handler := self.fm.features.get(lsp.TEXT_DOCUMENT_DID_OPEN)) is not None:
            yield handler, (params,), None

    @lsp_method(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params):
        if (handler := self.fm.features.get(lsp.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None

    @lsp_method(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params):
        if (handler := self.fm.features.get(lsp.TEXT_DOCUMENT_DID_CLOSE)) is not None:
            yield handler, (params,), None


class IntentoServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("intento", __version__, text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental, protocol_cls=_Protocol)
        self.ws = Workspace([])
        self.encoding = UTF16
        self.debounce_s = DEFAULT_DEBOUNCE_MS / 1000
        self.time_limit_s = DEFAULT_TIME_LIMIT_S
        self.worker = _Worker()
        self._timers: dict[Project, asyncio.TimerHandle] = {}
        self._generation: dict[Project, int] = {}
        self._touched: dict[Project, set[str]] = {}
        #: What was last published for each file: (project, diagnostics' signature).
        self._published: dict[str, tuple[Project, tuple]] = {}
        self._notes_logged: set[str] = set()

    # ---- logging ----------------------------------------------------------------------------

    def log(self, message: str, kind: lsp.MessageType = lsp.MessageType.Log) -> None:
        try:
            self.window_log_message(lsp.LogMessageParams(type=kind, message=message))
        except Exception:  # noqa: BLE001 - no client to tell: stderr is the last resort
            print(f"intento lsp: {message}", file=sys.stderr)

    def report_server_error(self, error: Exception, source) -> None:
        """A message pygls could not read or answer (not a handler's error: they catch their
        own): logged, not shown in a pop-up. An error answering a request is in the answer."""
        if source is FeatureRequestError:
            return
        self.log(f"intento: {getattr(source, '__name__', source)}: {error}", lsp.MessageType.Error)

    def log_error(self, what: str, error: BaseException) -> None:
        tb = "".join(traceback.format_exception(type(error), error, error.__traceback__)[-6:])
        self.log(f"intento: {what} failed: {type(error).__name__}: {error}\n{tb}", lsp.MessageType.Error)

    # ---- settings ---------------------------------------------------------------------------

    def configure(self, options: Any) -> None:
        if not isinstance(options, dict):
            return
        options = options.get("intento", options) if isinstance(options.get("intento"), dict) else options
        debounce = options.get("debounceMs")
        if isinstance(debounce, (int, float)) and not isinstance(debounce, bool) and 0 <= debounce <= 60_000:
            self.debounce_s = debounce / 1000
        limit = options.get("timeLimit")
        if isinstance(limit, (int, float)) and not isinstance(limit, bool) and 0 < limit <= 3600:
            self.time_limit_s = float(limit)

    # ---- the model of a document ------------------------------------------------------------

    async def model_for(self, uri: str) -> tuple[Model, str, FileModel | None]:
        """The project model of the document ``uri`` (its text as the editor has it now)."""
        key = canonical_uri(uri)
        project = self.ws.project_for(key)
        docs = self.ws.open_docs(project)
        model = await self.worker.run(lambda: project.model(project.files(docs)))
        return model, key, model.files.get(key)

    def client_uri(self, key: str) -> str:
        return self.ws.client_uri(key)

    # ---- diagnostics ------------------------------------------------------------------------

    def schedule(self, project: Project, key: str | None = None, delay: float | None = None) -> None:
        gen = self._generation.get(project, 0) + 1
        self._generation[project] = gen
        if key is not None:
            self._touched.setdefault(project, set()).add(key)
        old = self._timers.pop(project, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        wait = self.debounce_s if delay is None else delay
        self._timers[project] = loop.call_later(wait, lambda: asyncio.ensure_future(self.publish(project, gen)))

    async def publish(self, project: Project, gen: int) -> None:
        if self._generation.get(project) != gen:
            return
        self._timers.pop(project, None)
        docs = self.ws.open_docs(project)
        try:
            result = await self.worker.run(lambda: project.check(project.files(docs)))
        except Exception as e:  # noqa: BLE001
            self.log_error("checking the project", e)
            return
        if self._generation.get(project) != gen:
            return  # the text changed meanwhile: the newer check publishes
        try:
            self._send_diagnostics(project, result)
        except Exception as e:  # noqa: BLE001
            self.log_error("publishing diagnostics", e)

    def _send_diagnostics(self, project: Project, result) -> None:
        for note in project.notes:
            if note not in self._notes_logged:
                self._notes_logged.add(note)
                self.log(f"intento: {note}", lsp.MessageType.Warning)
        touched = self._touched.pop(project, set())
        current: set[str] = set()
        for key, diags in result.by_key.items():
            fm = result.files[key]
            items = [_features.to_lsp_diagnostic(d, fm.lines, self.encoding) for d in diags]
            signature = tuple((d.range.start.line, d.range.start.character, d.range.end.line, d.range.end.character, d.code, d.message, d.severity) for d in items)
            current.add(key)
            previous = self._published.get(key)
            if key in touched or previous is None or previous[1] != signature:
                self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=self.client_uri(key), diagnostics=items, version=fm.file.version))
            self._published[key] = (project, signature)
        for key, (owner, signature) in list(self._published.items()):
            if owner is project and key not in current:
                del self._published[key]
                if signature:
                    self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=self.client_uri(key), diagnostics=[]))
        for d in result.unlocated:
            line = f"intento: {d.one_line()}" + (f" (help: {d.help})" if d.help else "")
            if line not in self._notes_logged:
                self._notes_logged.add(line)
                self.log(line, lsp.MessageType.Warning)

    def shutdown_timers(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()


# ---- handlers ------------------------------------------------------------------------------------


def _safe(default: Callable[[], Any] = lambda: None):
    """A handler that never raises: an error is logged to the client and ``default()`` answered."""

    def wrap(fn):
        if asyncio.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(ls: IntentoServer, params):
                try:
                    return await fn(ls, params)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # noqa: BLE001
                    ls.log_error(fn.__name__, e)
                    return default()

            return run_async

        @functools.wraps(fn)
        def run(ls: IntentoServer, params):
            try:
                return fn(ls, params)
            except Exception as e:  # noqa: BLE001
                ls.log_error(fn.__name__, e)
                return default()

        return run

    return wrap


def _encoding(ls: IntentoServer) -> str:
    try:
        value = str(getattr(ls.workspace.position_encoding, "value", ls.workspace.position_encoding) or UTF16)
    except Exception:  # noqa: BLE001
        return UTF16
    return value if value in (UTF8, UTF16, UTF32) else UTF16


def _roots(params: lsp.InitializeParams) -> list[Path]:
    uris = [f.uri for f in params.workspace_folders or ()]
    if not uris and params.root_uri:
        uris = [params.root_uri]
    if not uris and params.root_path:
        return [Path(params.root_path)]
    return [p for u in uris if (p := uri_to_path(u)) is not None]


def build_server() -> IntentoServer:
    server = IntentoServer()

    @server.feature(lsp.INITIALIZE)
    @_safe()
    def initialize(ls: IntentoServer, params: lsp.InitializeParams):
        ls.encoding = _encoding(ls)
        ls.ws = Workspace(_roots(params))
        ls.configure(params.initialization_options)

    @server.feature(lsp.INITIALIZED)
    @_safe()
    def initialized(ls: IntentoServer, params):
        if ls.ws.main.roots:
            ls.schedule(ls.ws.main, delay=0)
        caps = ls.client_capabilities
        watched = getattr(getattr(caps, "workspace", None), "did_change_watched_files", None)
        if watched is not None and watched.dynamic_registration:
            watcher = lsp.FileSystemWatcher(glob_pattern="**/*.intent")
            options = lsp.DidChangeWatchedFilesRegistrationOptions(watchers=[watcher])
            registration = lsp.Registration(id="intento-watch", method=lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES, register_options=options)
            ls.client_register_capability(lsp.RegistrationParams(registrations=[registration]))

    @server.feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
    @_safe()
    def did_change_configuration(ls: IntentoServer, params: lsp.DidChangeConfigurationParams):
        settings = params.settings
        if isinstance(settings, dict):
            ls.configure(settings.get("intento", settings))

    @server.feature(lsp.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    @_safe()
    def did_change_folders(ls: IntentoServer, params):
        roots = [p for f in ls.workspace.folders.values() if (p := uri_to_path(f.uri)) is not None]
        old = ls.ws.main
        ls.ws.set_roots(roots)
        for key, (owner, sig) in list(ls._published.items()):
            if owner is old:
                ls._published[key] = (ls.ws.main, sig)
        for project in ls.ws.projects:
            project.rescan = True
            ls.schedule(project)

    @server.feature(lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    @_safe()
    def did_change_watched(ls: IntentoServer, params: lsp.DidChangeWatchedFilesParams):
        for project in ls.ws.projects:
            if any(project.contains(canonical_uri(c.uri)) for c in params.changes):
                project.rescan = True
                ls.schedule(project)

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    @_safe()
    def did_open(ls: IntentoServer, params: lsp.DidOpenTextDocumentParams):
        doc = params.text_document
        project = ls.ws.open(doc.uri, doc.text, doc.version)
        ls.schedule(project, canonical_uri(doc.uri))

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    @_safe()
    def did_change(ls: IntentoServer, params: lsp.DidChangeTextDocumentParams):
        doc = params.text_document
        project = ls.ws.change(doc.uri, params.content_changes, doc.version, ls.encoding)
        if project is not None:
            ls.schedule(project, canonical_uri(doc.uri))

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    @_safe()
    def did_close(ls: IntentoServer, params: lsp.DidCloseTextDocumentParams):
        project = ls.ws.close(params.text_document.uri)
        if project is not None:
            ls.schedule(project)

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    @_safe()
    async def on_hover(ls: IntentoServer, params: lsp.HoverParams):
        model, key, fm = await ls.model_for(params.text_document.uri)
        if fm is None:
            return None
        occ = model.index.at(key, fm.lines.offset(params.position, ls.encoding))
        if occ is None:
            return None
        text = await ls.worker.run(hover, model.index, occ)
        if not text:
            return None
        return lsp.Hover(contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=text), range=fm.lines.range(occ.start, occ.end, ls.encoding))

    @server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    @_safe(list)
    async def on_definition(ls: IntentoServer, params: lsp.DefinitionParams):
        model, key, fm = await ls.model_for(params.text_document.uri)
        if fm is None:
            return []
        occ = model.index.at(key, fm.lines.offset(params.position, ls.encoding))
        return _features.definitions(model, occ, ls.client_uri, ls.encoding) if occ else []

    @server.feature(lsp.TEXT_DOCUMENT_REFERENCES)
    @_safe(list)
    async def on_references(ls: IntentoServer, params: lsp.ReferenceParams):
        model, key, fm = await ls.model_for(params.text_document.uri)
        if fm is None:
            return []
        occ = model.index.at(key, fm.lines.offset(params.position, ls.encoding))
        include = params.context.include_declaration if params.context else True
        return _features.references(model, occ, include, ls.client_uri, ls.encoding) if occ else []

    @server.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=TRIGGER_CHARACTERS))
    @_safe(lambda: lsp.CompletionList(is_incomplete=False, items=[]))
    async def on_completion(ls: IntentoServer, params: lsp.CompletionParams):
        model, _, fm = await ls.model_for(params.text_document.uri)
        if fm is None:
            return lsp.CompletionList(is_incomplete=False, items=[])
        offset = fm.lines.offset(params.position, ls.encoding)
        return await ls.worker.run(complete, model.index, fm.lines, offset, ls.encoding)

    @server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    @_safe(list)
    async def on_document_symbol(ls: IntentoServer, params: lsp.DocumentSymbolParams):
        model, key, fm = await ls.model_for(params.text_document.uri)
        if fm is None:
            return []
        return await ls.worker.run(_features.document_symbols, model.index, key, fm.lines, ls.encoding)

    @server.feature(lsp.WORKSPACE_SYMBOL)
    @_safe(list)
    async def on_workspace_symbol(ls: IntentoServer, params: lsp.WorkspaceSymbolParams):
        out = []
        for project in ls.ws.projects:
            docs = ls.ws.open_docs(project)
            model = await ls.worker.run(lambda p=project, d=docs: p.model(p.files(d)))
            out += _features.workspace_symbols(model, params.query or "", ls.client_uri, ls.encoding)
        return out[: _features.MAX_WORKSPACE_SYMBOLS]

    @server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
    @_safe(list)
    async def on_formatting(ls: IntentoServer, params: lsp.DocumentFormattingParams):
        _, _, fm = await ls.model_for(params.text_document.uri)
        if fm is None:
            return []
        return await ls.worker.run(_features.format_document, fm.file.name, fm.file.text, ls.encoding)

    @server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION, lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix]))
    @_safe(list)
    async def on_code_action(ls: IntentoServer, params: lsp.CodeActionParams):
        _, _, fm = await ls.model_for(params.text_document.uri)
        if fm is None:
            return []
        only = params.context.only
        if only and not any(str(k).startswith(lsp.CodeActionKind.QuickFix.value) or k == lsp.CodeActionKind.QuickFix for k in only):
            return []
        return _features.quick_fixes(params.text_document.uri, fm.lines, list(params.context.diagnostics or ()), ls.encoding)

    @server.feature(lsp.TEXT_DOCUMENT_CODE_LENS)
    @_safe(list)
    async def on_code_lens(ls: IntentoServer, params: lsp.CodeLensParams):
        model, key, fm = await ls.model_for(params.text_document.uri)
        if fm is None:
            return []
        return _features.code_lenses(model.index, key, params.text_document.uri, fm.lines, ls.encoding)

    @server.feature(lsp.SHUTDOWN)
    @_safe()
    def on_shutdown(ls: IntentoServer, params):
        ls.shutdown_timers()
        ls.worker.stop()

    @server.command(_features.RUN_TEST)
    async def run_test_command(ls: IntentoServer, *args):
        return await _command(ls, "run test", args, 2, _commands.run_test)

    @server.command(_features.PLAN_INTENT)
    async def plan_intent_command(ls: IntentoServer, *args):
        return await _command(ls, "plan intent", args, 3, _commands.plan_intent)

    return server


async def _command(ls: IntentoServer, what: str, args: tuple, arity: int, run: Callable) -> dict:
    """Run a code lens's command on the worker: ``args`` are the document's URI and then the
    command's own arguments (strings). The result is shown and returned."""
    try:
        if len(args) != arity or not all(isinstance(a, str) for a in args):
            message = f"`{what}` takes {arity} strings: the document's URI, " + ("the test's name" if arity == 2 else "the intent's name and a test's name")
            ls.window_show_message(lsp.ShowMessageParams(type=lsp.MessageType.Error, message=message))
            return {"ok": False, "message": message}
        key = canonical_uri(args[0])
        project = ls.ws.project_for(key)
        docs = ls.ws.open_docs(project)
        limit = ls.time_limit_s
        answer = await ls.worker.run(lambda: run(project.check(project.files(docs)), *args[1:], limit))
        good = answer.get("ok") and answer.get("passed", answer.get("feasible", True))
        kind = lsp.MessageType.Info if good else (lsp.MessageType.Warning if answer.get("ok") else lsp.MessageType.Error)
        ls.window_show_message(lsp.ShowMessageParams(type=kind, message=answer["message"]))
        return answer
    except Exception as e:  # noqa: BLE001
        ls.log_error(what, e)
        return {"ok": False, "message": f"{what} failed: {type(e).__name__}: {e}"}
