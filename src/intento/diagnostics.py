"""Diagnostics: the one shape every stage uses to report bad input.

Input: a code, a severity, a message, a span (a place in a source file) and optional help.
Output: a compiler-style rendering (``file:line:col: error[E012]: message``, the source line, an
underline, a ``help:`` line) or a pydantic model for ``--format json``.

Messages are lowercase, one sentence, no final period, with user names in backticks.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from enum import Enum
from typing import Iterable, Literal

from pydantic import BaseModel, Field

#: How many diagnostics a stage reports at most; the rest are summarised in one line.
MAX_DIAGNOSTICS = 100


@dataclass(frozen=True, slots=True)
class Source:
    """A source text and the name it is known by (usually a file path)."""

    name: str
    text: str = field(repr=False)

    def line_text(self, line: int) -> str:
        lines = self.text.splitlines()
        return lines[line - 1] if 0 < line <= len(lines) else ""


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open range of a `Source`, with 1-based line and column of both ends."""

    source: Source = field(repr=False)
    start: int
    end: int
    line: int
    column: int
    end_line: int
    end_column: int

    @staticmethod
    def at_offset(source: Source, start: int, end: int | None = None) -> "Span":
        """The span of ``source.text[start:end]`` (a point when ``end`` is omitted)."""
        start = max(0, min(start, len(source.text)))
        end = start if end is None else max(start, min(end, len(source.text)))
        line, column = _line_col(source.text, start)
        end_line, end_column = _line_col(source.text, end)
        return Span(source, start, end, line, column, end_line, end_column)

    @staticmethod
    def whole_file(source: Source) -> "Span":
        return Span(source, 0, 0, 1, 1, 1, 1)

    @property
    def location(self) -> str:
        return f"{self.source.name}:{self.line}:{self.column}"


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


class Severity(str, Enum):
    error = "error"
    warning = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in the input."""

    code: str
    severity: Severity
    message: str
    span: Span | None
    label: str = ""
    help: str = ""

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.error

    def sort_key(self) -> tuple:
        if self.span is None:
            return ("", 0, 0, self.code)
        return (self.span.source.name, self.span.line, self.span.column, self.code)

    def one_line(self) -> str:
        where = self.span.location if self.span else "intento"
        return f"{where}: {self.severity.value}[{self.code}]: {self.message}"

    def render(self) -> str:
        """The compiler-style form: the one-line header, the source line underlined, help."""
        out = [self.one_line()]
        if self.span is not None and self.span.source.text:
            span = self.span
            text = span.source.line_text(span.line)
            gutter = " " * len(str(span.line))
            width = (span.end_column - span.column) if span.end_line == span.line else len(text) - span.column + 1
            width = max(1, width)
            out.append(f"{gutter} |")
            out.append(f"{span.line} | {text}")
            marker = " " * (span.column - 1) + "^" * width
            out.append(f"{gutter} | {marker}" + (f" {self.label}" if self.label else ""))
        if self.help:
            pad = " " * (len(str(self.span.line)) if self.span else 1)
            out.append(f"{pad} = help: {self.help}")
        return "\n".join(out)

    def to_model(self) -> "DiagnosticModel":
        span = self.span
        return DiagnosticModel(
            code=self.code,
            severity=self.severity.value,
            message=self.message,
            file=span.source.name if span else None,
            line=span.line if span else None,
            column=span.column if span else None,
            end_line=span.end_line if span else None,
            end_column=span.end_column if span else None,
            label=self.label or None,
            help=self.help or None,
        )


class DiagnosticModel(BaseModel):
    """A diagnostic as JSON (``intento check --format json``)."""

    code: str = Field(description="stable code, e.g. E012")
    severity: Literal["error", "warning"] = Field(description="errors fail `intento check`; warnings do not")
    message: str = Field(description="one lowercase sentence")
    file: str | None = Field(description="the file the problem is in")
    line: int | None = Field(description="1-based line of the start")
    column: int | None = Field(description="1-based column of the start")
    end_line: int | None = Field(description="1-based line of the end")
    end_column: int | None = Field(description="1-based column just past the end")
    label: str | None = Field(default=None, description="what the underlined text is")
    help: str | None = Field(default=None, description="what to do about it")


def sorted_capped(diags: Iterable[Diagnostic], cap: int = MAX_DIAGNOSTICS) -> list[Diagnostic]:
    """Diagnostics in source order, without exact repeats, at most ``cap`` of them."""
    seen: set[tuple] = set()
    unique = []
    for d in sorted(diags, key=Diagnostic.sort_key):
        key = (d.sort_key(), d.message)
        if key not in seen:
            seen.add(key)
            unique.append(d)
    return unique[:cap]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A ``did you mean `x`?`` hint, or the empty string when nothing is close."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else ""


class IntentoError(Exception):
    """Raised by the public API when input is bad; carries the located diagnostics."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        first = diagnostics[0].one_line() if diagnostics else "invalid input"
        more = f" (and {len(diagnostics) - 1} more)" if len(diagnostics) > 1 else ""
        super().__init__(first + more)


class ProjectError(IntentoError):
    """The project's sources do not check (raised by `intento.load`)."""


class RequestError(IntentoError):
    """A planning request is invalid: unknown intent, bad `given` values, a malformed state."""
