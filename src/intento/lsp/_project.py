"""The editor's view of projects: open documents over the files on disk, parsed and checked.

Input: the workspace folders, and the documents the editor opens and edits (their text wins
over what is on disk). Output: for a `Project`, the `SourceFile`s it holds, a `Model` (each file
parsed with recovery, and the `Index` of its names) and its diagnostics by file, as the checker
reports them for the whole project.

A project is every ``*.intent`` file under its roots (hidden folders, ``node_modules`` and
``__pycache__`` skipped), at most `MAX_FILES`. The main project's roots are the workspace
folders; an open file outside them (or any file, when the editor gave no folder) makes a project
of its own folder; a document with no file behind it (``untitled:``) is a project alone.

Thread use: the server calls `Project.files`, `Project.model` and `Project.check` from its one
worker thread only; the `Workspace` (open documents) is used from the event loop only, and a
worker task receives a copy of what it needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from intento.check import MAX_FILES, check_sources, read_source
from intento.diagnostics import Diagnostic, Source
from intento.lsp._index import Index
from intento.lsp._text import LineIndex, apply_change
from intento.syntax import ast, parse_recovering

#: Folders never searched for `.intent` files (besides those whose name starts with `.`).
SKIPPED_DIRS = frozenset({"node_modules", "__pycache__"})
#: Most folders walked when listing a project: a project rooted too high (a home folder) stops
#: there instead of walking the whole disk.
MAX_DIRS = 20_000


# ---- URIs ----------------------------------------------------------------------------------------


def uri_to_path(uri: str) -> Path | None:
    """The file a ``file:`` URI names (None for other schemes)."""
    try:
        parsed = urlparse(uri)
    except ValueError:
        return None
    if parsed.scheme != "file":
        return None
    path = url2pathname(unquote(parsed.path)) if os.name == "nt" else unquote(parsed.path)
    if not path:
        return None
    return Path(os.path.normpath(path))


def path_to_uri(path: Path) -> str:
    return path.absolute().as_uri()


def canonical_uri(uri: str) -> str:
    """One spelling per file (editors differ in what they percent-encode); other URIs as given."""
    path = uri_to_path(uri)
    return path_to_uri(path) if path is not None else uri


# ---- documents and projects ----------------------------------------------------------------------


@dataclass
class Document:
    """An open document: the client's URI for it, its text and version."""

    uri: str
    text: str
    version: int | None


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One file of a project as the analysis sees it."""

    key: str  #: canonical URI
    name: str  #: how diagnostics and messages name it
    text: str
    version: int | None  #: the open document's version; None for a file read from disk
    read_error: Diagnostic | None = None  #: the file cannot be read (not UTF-8, NUL byte)


@dataclass
class FileModel:
    file: SourceFile
    source: Source
    lines: LineIndex
    tree: ast.File
    syntax: list[Diagnostic]


@dataclass
class Model:
    """A project parsed: its files by key, and its names."""

    files: dict[str, FileModel]
    index: Index
    #: Names (Source.name) to keys, for diagnostics located in a file.
    keys_by_name: dict[str, str]


@dataclass
class CheckResult:
    by_key: dict[str, list[Diagnostic]]
    #: Diagnostics with no place in a project file (too many files, ...): logged.
    unlocated: list[Diagnostic]
    files: dict[str, FileModel]
    spec: object


class Project:
    def __init__(self, roots: tuple[Path, ...], loose: bool = False):
        self.roots = roots
        #: A project of documents with no file behind them.
        self.loose = loose
        self.rescan = True
        self._listing: list[Path] = []
        self._disk: dict[Path, tuple[tuple[int, int], str | None, Diagnostic | None]] = {}
        self._parsed: dict[str, tuple[str, str, FileModel]] = {}
        self._model: tuple[tuple, Model] | None = None
        self.notes: list[str] = []  #: what listing the project ran into (logged by the server)
        #: Projects made before this one whose files it leaves to them (a folder project around
        #: the workspace folder does not check the workspace's files a second time).
        self.shadowed_by: list[Project] = []

    def __repr__(self) -> str:
        return f"Project({', '.join(map(str, self.roots)) or 'untitled'})"

    def owns(self, key: str) -> bool:
        """Whether the file ``key`` is checked as part of this project."""
        return self.contains(key) and not any(p.contains(key) for p in self.shadowed_by)

    def contains(self, key: str) -> bool:
        path = uri_to_path(key)
        if path is None:
            return self.loose
        return any(path == r or path.is_relative_to(r) for r in self.roots)

    def name_of(self, key: str) -> str:
        path = uri_to_path(key)
        if path is None:
            return key
        for r in self.roots:
            if path.is_relative_to(r):
                rel = path.relative_to(r).as_posix()
                return f"{r.name}/{rel}" if len(self.roots) > 1 else rel
        return str(path)

    # ---- worker thread only -----------------------------------------------------------------

    def files(self, open_docs: dict[str, Document]) -> list[SourceFile]:
        """The project's files: on disk under the roots, with open documents' text instead."""
        if self.rescan and not self.loose:
            self._list()
        out: dict[str, SourceFile] = {}
        for path in self._listing:
            key = path_to_uri(path)
            if key in open_docs or not self.owns(key):
                continue
            text, error = self._read(path)
            if text is not None or error is not None:
                out[key] = SourceFile(key, self.name_of(key), text or "", None, error)
        for key, doc in open_docs.items():
            if self.owns(key) and (self.loose or key.endswith(".intent") or uri_to_path(key) is None):
                out[key] = SourceFile(key, self.name_of(key), doc.text, doc.version)
        names = {}
        for f in out.values():
            names[f.name] = names.get(f.name, 0) + 1
        files = [f if names[f.name] == 1 else SourceFile(f.key, f.key, f.text, f.version, f.read_error) for f in out.values()]
        return sorted(files, key=lambda f: f.name)

    def _list(self) -> None:
        self.rescan = False
        notes: list[str] = []
        found: list[Path] = []
        dirs = 0
        for root in self.roots:
            if not root.is_dir():
                continue
            for dirpath, dirnames, filenames in os.walk(root):
                dirs += 1
                if dirs > MAX_DIRS:
                    notes.append(f"stopped listing `{root}` after {MAX_DIRS:,} folders: open a smaller folder")
                    break
                dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIPPED_DIRS)
                for f in sorted(filenames):
                    if f.endswith(".intent"):
                        found.append(Path(dirpath) / f)
                if len(found) > MAX_FILES:
                    break
        if len(found) > MAX_FILES:
            notes.append(f"the project has more than {MAX_FILES:,} `.intent` files: only the first {MAX_FILES:,} are read")
            found = found[:MAX_FILES]
        self._listing = found
        self.notes = notes  # one assignment: the server reads it from its event loop
        self._disk = {p: v for p, v in self._disk.items() if p in set(found)}

    def _read(self, path: Path) -> tuple[str | None, Diagnostic | None]:
        try:
            st = path.stat()
        except OSError:
            return None, None
        stamp = (st.st_mtime_ns, st.st_size)
        cached = self._disk.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1], cached[2]
        src, diag = read_source(path)
        # An unreadable file keeps the text its diagnostic points into (what decoded before the
        # bad byte, or the text with NUL bytes blanked), so the diagnostic can be placed.
        text = src.text if src is not None else (diag.span.source.text if diag is not None and diag.span is not None else None)
        self._disk[path] = (stamp, text, diag)
        return text, diag

    def model(self, files: list[SourceFile]) -> Model:
        """The files parsed (with recovery) and indexed; a file whose text did not change since
        the last call is not parsed again."""
        key = tuple((f.key, f.name, f.text, f.version) for f in files)
        if self._model is not None and self._model[0] == key:
            return self._model[1]
        parsed: dict[str, FileModel] = {}
        index = Index()
        for f in files:
            prev = self._parsed.get(f.key)
            if prev is not None and prev[0] == f.name and prev[1] == f.text:
                fm = prev[2]
                fm.file = f
            else:
                source = Source(f.name, f.text)
                if f.read_error is not None:
                    tree, syntax = ast.File((), span=None), []
                else:
                    tree, syntax = parse_recovering(source, cache_new=False)
                fm = FileModel(f, source, LineIndex.of(f.text), tree, list(syntax))
            parsed[f.key] = fm
            index.add_file(f.key, fm.tree)
        self._parsed = {k: (fm.file.name, fm.file.text, fm) for k, fm in parsed.items()}
        model = Model(parsed, index.finish(), {fm.source.name: k for k, fm in parsed.items()})
        self._model = (key, model)
        return model

    def check(self, files: list[SourceFile]) -> CheckResult:
        """Every diagnostic of the project, by file: the checker's, over the readable files,
        and one for each file that cannot be read."""
        model = self.model(files)
        readable = [fm.source for fm in model.files.values() if fm.file.read_error is None]
        result = check_sources(readable, cache_new=False)
        by_key: dict[str, list[Diagnostic]] = {k: [] for k in model.files}
        unlocated: list[Diagnostic] = []
        for fm in model.files.values():
            if fm.file.read_error is not None:
                by_key[fm.file.key].append(fm.file.read_error)
        for d in result.diagnostics:
            key = model.keys_by_name.get(d.span.source.name) if d.span is not None else None
            if key is None:
                unlocated.append(d)
            else:
                by_key[key].append(d)
        return CheckResult(by_key, unlocated, model.files, result.spec)


class Workspace:
    """Open documents and the projects they belong to (event loop only)."""

    def __init__(self, roots: list[Path]):
        self.docs: dict[str, Document] = {}
        self.main = Project(tuple(dict.fromkeys(roots)))
        self.extra: list[Project] = []

    @property
    def projects(self) -> list[Project]:
        return [self.main, *self.extra] if self.main.roots else list(self.extra)

    def set_roots(self, roots: list[Path]) -> None:
        old, self.main = self.main, Project(tuple(dict.fromkeys(roots)))
        # A folder project now under the workspace folders joins the main project.
        self.extra = [p for p in self.extra if p.loose or not any(self.main.contains(path_to_uri(r)) for r in p.roots)]
        for p in self.extra:
            p.shadowed_by = [self.main if q is old else q for q in p.shadowed_by]

    def project_for(self, key: str) -> Project:
        for p in self.projects:
            if p.contains(key):
                return p
        path = uri_to_path(key)
        project = Project((), loose=True) if path is None else Project((path.parent,))
        project.shadowed_by = self.projects
        self.extra.append(project)
        return project

    def open(self, uri: str, text: str, version: int | None) -> Project:
        key = canonical_uri(uri)
        self.docs[key] = Document(uri, text, version)
        project = self.project_for(key)
        project.rescan = True  # a new file, maybe
        return project

    def change(self, uri: str, changes, version: int | None, encoding: str) -> Project | None:
        key = canonical_uri(uri)
        doc = self.docs.get(key)
        if doc is None:
            return None
        text = doc.text
        for change in changes:
            text = apply_change(text, change, encoding)
        doc.text, doc.version = text, version
        return self.project_for(key)

    def close(self, uri: str) -> Project | None:
        key = canonical_uri(uri)
        if self.docs.pop(key, None) is None:
            return None
        project = self.project_for(key)
        project.rescan = True
        return project

    def open_docs(self, project: Project) -> dict[str, Document]:
        """A copy of the open documents of ``project`` (for a worker task)."""
        return {k: Document(d.uri, d.text, d.version) for k, d in self.docs.items() if project.owns(k)}

    def client_uri(self, key: str) -> str:
        doc = self.docs.get(key)
        return doc.uri if doc is not None else key
