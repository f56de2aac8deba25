"""Loading a project's sources: paths (files, or folders read recursively) to `Source`s.

Input: paths. Output: sources and diagnostics for what cannot be read (missing, not UTF-8, NUL).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from intento.diagnostics import Diagnostic, Severity, Source, Span

#: Most `.intent` files a project may hold.
MAX_FILES = 2_000

# ---------------------------------------------------------------------------------------------
# Loading sources


def load_sources(paths: Iterable[str | Path]) -> tuple[list[Source], list[Diagnostic]]:
    """Read every ``.intent`` file under ``paths``; unreadable input becomes a diagnostic."""
    sources: list[Source] = []
    diags: list[Diagnostic] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*.intent") if p.is_file())
            if not files:
                diags.append(_pathless("E010", f"no `.intent` files under `{raw}`", "point at a folder that holds `.intent` files"))
        elif path.is_file():
            files = [path]
        else:
            diags.append(_pathless("E010", f"cannot read `{raw}`: no such file or folder", "check the path"))
            continue
        for f in files:
            key = f.resolve()
            if key in seen:
                continue
            seen.add(key)
            if len(seen) > MAX_FILES:
                diags.append(_pathless("E007", f"project has more than {MAX_FILES} files", "check a smaller folder"))
                return sources, diags
            src, diag = read_source(f)
            if diag:
                diags.append(diag)
            else:
                sources.append(src)
    return sources, diags


def read_source(path: Path) -> tuple[Source | None, Diagnostic | None]:
    name = str(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        return None, _pathless("E010", f"cannot read `{name}`: {e.strerror or e}", "check the file's permissions")
    return decode_source(name, data)


#: The UTF-8 byte order mark some editors write first.
BOM = "\ufeff"


def decode_source(name: str, data: bytes) -> tuple[Source | None, Diagnostic | None]:
    """The text of a file's bytes (a leading byte order mark dropped: every line and column is
    then counted as editors count it), or why it is not a source (not UTF-8, a NUL byte)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        good = data[: e.start].decode("utf-8", errors="replace")
        src = Source(name, good)
        return None, Diagnostic(
            "E010",
            Severity.error,
            "file is not valid UTF-8 text",
            Span.at_offset(src, len(good)),
            help="save the file as UTF-8",
        )
    if text.startswith(BOM):
        text = text[1:]
    if "\x00" in text:
        src = Source(name, text.replace("\x00", " "))
        return None, Diagnostic("E010", Severity.error, "file contains a NUL byte", Span.at_offset(src, text.index("\x00")), help="this is not a text file")
    return Source(name, text), None


def _pathless(code: str, message: str, help: str) -> Diagnostic:
    return Diagnostic(code, Severity.error, message, None, help=help)

