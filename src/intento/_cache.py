"""The project cache: parsed files (`ast.File`), found again by the SHA-256 of their text.

Input: a `Source` (name + text). Output: the `ast.File` a parse of that text gave before, rebound to
this `Source` (so every span, and every diagnostic a later stage builds from it, names this file
even when another file with the same text was cached first), or None.

Where: ``$INTENTO_CACHE_DIR``, else ``$XDG_CACHE_HOME/intento``, else ``~/.cache/intento``;
``INTENTO_NO_CACHE=1`` turns it off. An entry's key is the SHA-256 of the text and of a salt: the
intento version, the grammar and the code that builds and defines the AST, so a change to any of
them never reads an entry made before it. Only successful parses are kept (a file with errors is
parsed again, which is quick: the parser stops at the first syntax error). An entry is written to a
temporary file and renamed into place; one that cannot be read, unpickled or does not hold a
`File` is ignored (and overwritten by the next parse). The cache is never a reason for an error:
an unwritable directory only means nothing is kept.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pickle
import tempfile
import threading
from functools import lru_cache
from pathlib import Path

from intento.diagnostics import Source, Span
from intento.syntax import ast

#: Bump when the layout of an entry changes.
FORMAT = "ast-1"
#: Entries larger than this are not written (a hostile megabyte file makes ~10 MB of pickle).
MAX_ENTRY_BYTES = 64 * 1024 * 1024


def cache_dir() -> Path | None:
    """The cache folder, or None when ``INTENTO_NO_CACHE`` is set (to anything but ``0``/empty)."""
    if os.environ.get("INTENTO_NO_CACHE", "") not in ("", "0"):
        return None
    explicit = os.environ.get("INTENTO_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "intento"


@lru_cache(maxsize=1)
def _salt() -> bytes:
    """What an entry depends on besides the text: version, grammar, and the AST-building code."""
    from intento import __version__

    h = hashlib.sha256(f"{FORMAT}\0{__version__}\0".encode())
    here = Path(__file__).resolve().parent
    for rel in ("syntax/intento.lark", "syntax/_parser.py", "syntax/ast.py", "diagnostics.py", "values.py", "_cache.py"):
        try:
            h.update(rel.encode() + b"\0" + (here / rel).read_bytes() + b"\0")
        except OSError:
            h.update(rel.encode() + b"\0missing\0")
    return h.digest()


def key(text: str) -> str:
    h = hashlib.sha256(_salt())
    h.update(text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _entry(folder: Path, text: str) -> Path:
    k = key(text)
    return folder / FORMAT / k[:2] / f"{k[2:]}.pickle"


# -- encoding -------------------------------------------------------------------------------------
# Spans and AST nodes are written as calls of `_span` / `_node` (not pickle's generic
# `__setstate__` of a frozen dataclass, which costs ~5x more to load), and the `Source` of every
# span is left out: it is supplied by the reader, so an entry holds no file name at all.

_local = threading.local()
_new = object.__new__
_set = object.__setattr__


def _span(start: int, end: int, line: int, column: int, end_line: int, end_column: int) -> Span:
    s = _new(Span)
    _set(s, "source", _local.source)
    _set(s, "start", start)
    _set(s, "end", end)
    _set(s, "line", line)
    _set(s, "column", column)
    _set(s, "end_line", end_line)
    _set(s, "end_column", end_column)
    return s


def _node(cls, span, *values):
    return cls(*values, span=span)


@lru_cache(maxsize=None)
def _positional(cls) -> tuple[str, ...] | None:
    """The fields of an AST class passed by position (all but the keyword-only `span`), or None
    when the class is not of that shape (then pickle's own way is used)."""
    if not dataclasses.is_dataclass(cls) or getattr(ast, cls.__name__, None) is not cls:
        return None
    fields = dataclasses.fields(cls)
    if any(not f.init for f in fields) or [f.name for f in fields if f.kw_only] != ["span"]:
        return None
    return tuple(f.name for f in fields if not f.kw_only)


class _Pickler(pickle.Pickler):
    def __init__(self, file, source: Source):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.source = source

    def reducer_override(self, obj):
        cls = type(obj)
        if cls is Span:
            if obj.source is not self.source:
                raise pickle.PicklingError("a span of another source")
            return _span, (obj.start, obj.end, obj.line, obj.column, obj.end_line, obj.end_column)
        if cls is Source:
            raise pickle.PicklingError("a source outside a span")
        names = _positional(cls)
        if names is not None:
            return _node, (cls, obj.span, *(getattr(obj, n) for n in names))
        return NotImplemented


def dumps(file: ast.File, source: Source) -> bytes:
    buf = io.BytesIO()
    _Pickler(buf, source).dump(file)
    return buf.getvalue()


#: The only globals an entry may name: what `_Pickler` writes (its two builders, the AST's
#: dataclasses and the values they hold). Anything else is refused before it is looked up, so an
#: entry that was not written by this cache (planted, or pickled another way) runs no code and
#: never brings in spans of another source.
_ALLOWED: dict[str, frozenset[str] | None] = {
    "intento._cache": frozenset({"_span", "_node"}),
    "intento.syntax.ast": None,  # its dataclasses
    "intento.values": frozenset({"Money", "Duration"}),
    "decimal": frozenset({"Decimal"}),
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        allowed = _ALLOWED.get(module, frozenset())
        if allowed is None:
            value = getattr(ast, name, None)
            if isinstance(value, type) and dataclasses.is_dataclass(value):
                return value
        elif name in allowed:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"a cache entry may not name {module}.{name}")


def loads(data: bytes, source: Source) -> ast.File:
    _local.source = source
    try:
        value = _Unpickler(io.BytesIO(data)).load()
    finally:
        _local.source = None
    if not isinstance(value, ast.File):
        raise ValueError("not a parsed file")
    return value


# -- the store ------------------------------------------------------------------------------------


def load(source: Source) -> ast.File | None:
    """The cached parse of ``source.text``, bound to ``source``; None if absent or unreadable."""
    folder = cache_dir()
    if folder is None:
        return None
    try:
        path = _entry(folder, source.text)
        if not _own(path):
            return None
        data = path.read_bytes()
        return loads(data, source)
    except Exception:  # absent, unreadable, truncated, corrupt, from another layout: parse again
        return None


def _own(path: Path) -> bool:
    """Is this entry safe to unpickle: a regular file of this user that nobody else may write
    (an entry is loaded code; a cache folder shared with others must not be trusted)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return False
    return not st.st_mode & 0o022 and (st.st_mode & 0o170000) == 0o100000


def store(source: Source, file: ast.File) -> None:
    """Keep ``file`` (the parse of ``source``); failures are silent (nothing is kept)."""
    folder = cache_dir()
    if folder is None:
        return
    try:
        data = dumps(file, source)
    except Exception:
        return
    if len(data) <= MAX_ENTRY_BYTES:
        write_quietly(_entry(folder, source.text), lambda fh: fh.write(data))


def write_quietly(path: Path, write) -> None:
    """Write a cache file: ``write(fh)`` into a temporary file of the folder (made owner-only),
    renamed into place, so a reader never sees half of it. Failures are silent (nothing is kept,
    no temporary file is left): a cache is never a reason for an error."""
    tmp = None
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
        tmp = None
    except Exception:
        pass
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
