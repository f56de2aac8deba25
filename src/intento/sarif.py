"""Diagnostics as a SARIF 2.1.0 log, for code scanning (`intento check --format sarif`).

Input: the diagnostics of a check and the folder paths are made relative to. Output: one SARIF
log (a dict ready for ``json.dumps``) with one run: the tool (intento, its version and a rule per
diagnostic code found), and a result per diagnostic. Written by hand: the format is a small JSON
shape, and the libraries that model it would add a dependency for a dozen lines.

Columns are counted in Unicode code points (the run says so with ``columnKind``), as everywhere
in intento; lines end at LF, CRLF or a lone CR. A location is a path relative to the base folder
(``%SRCROOT%``) when the file is under it, else an absolute ``file:`` URI. A diagnostic without a
place (a missing path) is a result without a location. Help text goes into the message (after
the diagnostic's own text), so code scanning shows what to do, not only what is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from intento import __version__
from intento.diagnostics import Diagnostic, _printable

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
VERSION = "2.1.0"


def _uri(name: str, base: Path) -> tuple[str, bool]:
    """A file's URI: relative to ``base`` (True) when under it, else absolute (False)."""
    path = Path(name)
    if not path.is_absolute():
        path = Path.cwd() / path
    try:
        rel = path.resolve().relative_to(base.resolve())
    except ValueError:
        return path.resolve().as_uri(), False
    return rel.as_posix(), True


def _result(d: Diagnostic, base: Path) -> dict:
    text = _printable(d.message)
    if d.help:
        text += f" (help: {_printable(d.help)})"
    out: dict = {
        "ruleId": d.code,
        "level": "error" if d.is_error else "warning",
        "message": {"text": text},
    }
    if d.span is not None and d.span.source.name and not d.span.source.name.startswith("<"):
        s = d.span
        uri, relative = _uri(s.source.name, base)
        artifact = {"uri": uri} | ({"uriBaseId": "%SRCROOT%"} if relative else {})
        region = {"startLine": s.line, "startColumn": s.column, "endLine": s.end_line, "endColumn": max(s.end_column, s.column)}
        if s.end == s.start and s.end_line == s.line:
            region["endColumn"] = s.column + 1  # a point: one column wide, where the mark is
        out["locations"] = [{"physicalLocation": {"artifactLocation": artifact, "region": region}}]
    return out


def sarif_log(diagnostics: Iterable[Diagnostic], base: Path) -> dict:
    """The SARIF log of ``diagnostics``, paths relative to ``base``."""
    diags = list(diagnostics)
    rules: dict[str, dict] = {}
    for d in diags:
        if d.code not in rules:
            rules[d.code] = {
                "id": d.code,
                # Each code is described in docs/language.md, "Diagnostic codes".
                "shortDescription": {"text": f"intento {'error' if d.is_error else 'warning'} {d.code} (docs/language.md, diagnostic codes)"},
                "defaultConfiguration": {"level": "error" if d.is_error else "warning"},
            }
    return {
        "$schema": SCHEMA,
        "version": VERSION,
        "runs": [
            {
                "tool": {"driver": {"name": "intento", "version": __version__, "rules": list(rules.values())}},
                "originalUriBaseIds": {"%SRCROOT%": {"uri": base.resolve().as_uri() + "/"}},
                "columnKind": "unicodeCodePoints",
                "results": [_result(d, base) for d in diags],
            }
        ],
    }
