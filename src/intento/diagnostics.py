"""Diagnostics: the one shape every stage uses to report bad input.

Input: a code, a severity, a message, a span (a place in a source file) and optional help.
Output: a compiler-style rendering (``file:line:col: error[E012]: message``, the source line, an
underline, a ``help:`` line) or a pydantic model for ``--format json``.

Messages are lowercase, one sentence, no final period, with user names in backticks.

A rendering is exact under hostile text: the snippet shows a source line with its control and
format characters (tabs, escapes, bidi overrides) replaced one for one, a line longer than
`MAX_SNIPPET_CHARS` cut to a window around the span, and the underline placed by display width;
request input (``Source.hide_values``) never shows a value, only where it is.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from enum import Enum
from typing import Iterable, Literal

from pydantic import BaseModel, Field

#: How many diagnostics a stage reports at most; the rest are counted, and the count is reported.
MAX_DIAGNOSTICS = 100
#: Longest source line a snippet shows whole; a longer one is cut to a window around the span.
MAX_SNIPPET_CHARS = 300
#: How a hidden value of request input is shown (see `Source.hide_values`).
HIDDEN_STRING = '"***"'
HIDDEN_VALUE = "***"


@dataclass(frozen=True, slots=True)
class Source:
    """A source text and the name it is known by (usually a file path).

    Lines end at ``\\n``, ``\\r\\n`` or a lone ``\\r``, as editors (and the Language Server
    Protocol) count them; a form feed, U+2028 or U+2029 is a character within its line. With
    ``hide_values`` (request input: ``--given``/``--state`` JSON, which may hold `secret` values)
    a snippet never shows a value: every JSON string that is not an object key is shown as
    ``"***"``, every other value (number, literal, stray word) as ``***``."""

    name: str
    text: str = field(repr=False)
    hide_values: bool = field(default=False, repr=False)
    # Built on first use: the offset where each line starts (bisected for a line number), and for
    # JSON request input its tokens (`_json_tokens`).
    _starts: array | None = field(default=None, init=False, repr=False, compare=False)
    _json: tuple | None = field(default=None, init=False, repr=False, compare=False)

    def _line_starts(self) -> array:
        starts = self._starts
        if starts is None:
            starts = array("q", [0])
            starts.extend(m.end() for m in _NEWLINE.finditer(self.text))
            object.__setattr__(self, "_starts", starts)
        return starts

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based line and column of ``offset`` (a binary search once the line table is built)."""
        starts = self._line_starts()
        i = bisect_right(starts, offset) - 1
        return i + 1, offset - starts[i] + 1

    def line_range(self, line: int) -> tuple[int, int]:
        """Offsets of the first character of ``line`` and just past its last (``\\n``, ``\\r`` excluded)."""
        starts = self._line_starts()
        if not 0 < line <= len(starts):
            return len(self.text), len(self.text)
        begin = starts[line - 1]
        if line < len(starts):
            end = starts[line] - 1  # the line break's last character
            if self.text[end] == "\n" and end > begin and self.text[end - 1] == "\r":
                end -= 1
        else:
            end = len(self.text)
        return begin, end

    def line_text(self, line: int) -> str:
        begin, end = self.line_range(line)
        return self.text[begin:end]

    def shown_line(self, line: int, start: int, end: int) -> tuple[str, int, int]:
        """Line ``line`` as a snippet shows it, and where the 0-based range ``start:end`` of the
        line is in what is shown: values hidden if `hide_values`, and a very long line cut (at
        `…`) to a window around ``start``, so a snippet costs the same on any line."""
        begin, stop = self.line_range(line)
        a, b = begin, stop
        reach = 2 * MAX_SNIPPET_CHARS
        if stop - begin > 2 * reach:
            a, b = max(begin, begin + start - reach), min(stop, begin + start + reach)
        if self.hide_values:
            starts, ends, strings, _ = self._json_tokens()
            # A window edge inside a value moves out to the value's edge: a value is hidden whole.
            i = bisect_right(starts, a) - 1
            if i >= 0 and starts[i] < a < ends[i]:
                a = starts[i]
            j = bisect_left(starts, b) - 1
            if j >= 0 and starts[j] < b < ends[j]:
                b = min(ends[j], stop)
        head, tail = ("…" if a > begin else ""), ("…" if b < stop else "")
        start, end = start - (a - begin), end - (a - begin)
        start = max(0, min(start, b - a))
        end = max(start, min(end, b - a))
        if self.hide_values:
            text, start, end = self._hidden_window(a, b, start, end)
        else:
            text = self.text[a:b]
        return head + text + tail, start + len(head), end + len(head)

    def _hidden_window(self, a: int, b: int, start: int, end: int) -> tuple[str, int, int]:
        """``text[a:b]`` with its values hidden, and where ``start:end`` (relative to ``a``) is in it."""
        starts, ends, strings, _ = self._json_tokens()
        out: list[str] = []
        at = a
        new_start = new_end = None
        shift = 0  # length of what is shown minus length of the original, so far
        for i in range(bisect_left(starts, a), len(starts)):
            s, e = starts[i] - a, ends[i] - a
            if s >= b - a:
                break
            rep = HIDDEN_STRING if strings[i] else HIDDEN_VALUE
            # A range edge inside a hidden value moves to that value's edge.
            if new_start is None and start <= s:
                new_start = start + shift
            elif new_start is None and start < e:
                new_start = s + shift
            if new_end is None and end <= s:
                new_end = end + shift
            elif new_end is None and end < e:
                new_end = s + shift + len(rep)
            out.append(self.text[at : starts[i]])
            out.append(rep)
            at = ends[i]
            shift += len(rep) - (e - s)
        out.append(self.text[at:b])
        return "".join(out), start + shift if new_start is None else new_start, end + shift if new_end is None else new_end

    def json_key(self, quoted: str) -> int:
        """Offset of the first JSON object key written exactly ``quoted`` (quotes included), or -1."""
        return self._json_tokens()[3].get(quoted, -1)

    def _json_tokens(self) -> tuple[array, array, bytearray, dict[str, int]]:
        tokens = self._json
        if tokens is None:
            tokens = _json_tokens(self.text)
            object.__setattr__(self, "_json", tokens)
        return tokens


#: A line break, as editors count them: LF, CRLF, or a lone CR.
_NEWLINE = re.compile("\r\n|\r|\n")

# One JSON token: a string (maybe unterminated: it then ends at the line's end; unrolled and
# possessive, so a long one costs the regex engine no memory), a structural character, white
# space, or a run of anything else (numbers, literals, stray words). No value spans a line.
_JSON_TOKEN = re.compile(
    r'(?P<str>"[^"\\\n]*+(?:\\.[^"\\\n]*+)*+(?P<closed>")?)|(?P<punct>[{}\[\]:,])|(?P<space>\s+)|(?P<word>[^\s{}\[\]:,"]+)'
)


def _json_tokens(text: str) -> tuple[array, array, bytearray, dict[str, int]]:
    """A JSON text (valid or not) read in one pass: every value (each token but white space,
    structure and object keys) as starts, ends and whether it is a string; and the offset of each
    distinct object key (a closed string after `{` or `,` and before `:`)."""
    starts, ends, strings, keys = array("q"), array("q"), bytearray(), {}
    prev = ""  # the previous structural character, or "" after a value
    pending: tuple[int, int, bool, bool] | None = None  # the last value-like token: (start, end, string, may be a key)
    for m in _JSON_TOKEN.finditer(text):
        kind = m.lastgroup  # the outermost group: "str", "punct", "space" or "word"
        if kind == "space":
            continue
        if pending is not None:
            s, e, is_string, may_be_key = pending
            if may_be_key and kind == "punct" and text[m.start()] == ":":
                keys.setdefault(text[s:e], s)
            else:
                starts.append(s)
                ends.append(e)
                strings.append(is_string)
            pending = None
        if kind == "punct":
            prev = text[m.start()]
            continue
        is_string = kind == "str"
        pending = (m.start(), m.end(), is_string, is_string and m.group("closed") is not None and prev in ("{", ","))
        prev = ""
    if pending is not None:
        starts.append(pending[0])
        ends.append(pending[1])
        strings.append(pending[2])
    return starts, ends, strings, keys


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
        line, column = source.line_col(start)
        end_line, end_column = source.line_col(end)
        return Span(source, start, end, line, column, end_line, end_column)

    @staticmethod
    def whole_file(source: Source) -> "Span":
        return Span(source, 0, 0, 1, 1, 1, 1)

    @staticmethod
    def whole_text(source: Source) -> "Span":
        """All of ``source`` (one pass over the text; no line table is built)."""
        text = source.text
        if "\r" in text:  # a lone CR ends a line too: the line table knows
            return Span.at_offset(source, 0, len(text))
        return Span(source, 0, len(text), 1, 1, text.count("\n") + 1, len(text) - (text.rfind("\n") + 1) + 1)

    @property
    def location(self) -> str:
        return f"{_printable(self.source.name)}:{self.line}:{self.column}"


# ---- showing user text ------------------------------------------------------------------------

_REPLACEMENT = "\ufffd"


def _printable(text: str) -> str:
    """Text for a one-line message: control and format characters escaped (``\\x1b``, ``\\u202e``),
    so that a hostile name can neither drive a terminal nor reorder what is shown."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(c if c.isprintable() else (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}") for c in text)


def _snippet_char(c: str) -> tuple[str, int]:
    """A character of a snippet line as shown, and its display width: one shown for one, so the
    underline stays under the right text."""
    if c == "\t":
        return " ", 1
    if not c.isprintable():
        return _REPLACEMENT, 1
    if unicodedata.combining(c):
        return c, 0
    return c, 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1


def _snippet(text: str, start: int, end: int) -> tuple[str, int, int]:
    """A line made safe to print, cut around ``start:end`` when too long, and the display
    columns of the range's start and width (at least 1)."""
    if len(text) > MAX_SNIPPET_CHARS:
        lo = max(0, min(start - MAX_SNIPPET_CHARS // 3, len(text) - MAX_SNIPPET_CHARS))
        hi = lo + MAX_SNIPPET_CHARS
        head, tail = ("…" if lo else ""), ("…" if hi < len(text) else "")
        text = head + text[lo:hi] + tail
        start, end = start - lo + len(head), min(end, hi) - lo + len(head)
    end = max(start, min(end, len(text)))
    if text.isascii() and text.isprintable():
        return text, start, max(1, end - start)
    shown, pad, width = [], 0, 0
    for i, c in enumerate(text):
        ch, w = _snippet_char(c)
        shown.append(ch)
        if i < start:
            pad += w
        elif i < end:
            width += w
    return "".join(shown), pad, max(1, width)


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
        return f"{where}: {self.severity.value}[{self.code}]: {_printable(self.message)}"

    def render(self) -> str:
        """The compiler-style form: the one-line header, the source line underlined, help."""
        out = [self.one_line()]
        if self.span is not None and self.span.source.text:
            span = self.span
            begin, stop = span.source.line_range(span.line)
            # Columns within the line; a span that runs past its first line is underlined to its end.
            start = span.column - 1
            end = span.end_column - 1 if span.end_line == span.line else stop - begin
            raw, start, end = span.source.shown_line(span.line, start, end)
            text, pad, width = _snippet(raw, start, end)
            gutter = " " * len(str(span.line))
            out.append(f"{gutter} |")
            out.append(f"{span.line} | {text}")
            marker = " " * pad + "^" * width
            out.append(f"{gutter} | {marker}" + (f" {_printable(self.label)}" if self.label else ""))
        if self.help:
            pad = " " * (len(str(self.span.line)) if self.span else 1)
            out.append(f"{pad} = help: {_printable(self.help)}")
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


class DiagnosticList(list):
    """Diagnostics as reported: sorted, at most `MAX_DIAGNOSTICS` of them, and how many were found
    in all, past the cap too (``total_errors``, ``total_warnings``), so a summary stays exact."""

    def __init__(self, shown: Iterable[Diagnostic] = (), total_errors: int | None = None, total_warnings: int | None = None):
        super().__init__(shown)
        self.total_errors = sum(d.is_error for d in self) if total_errors is None else total_errors
        self.total_warnings = sum(not d.is_error for d in self) if total_warnings is None else total_warnings

    @property
    def total(self) -> int:
        return self.total_errors + self.total_warnings

    @property
    def omitted(self) -> int:
        """How many were found but are not in the list."""
        return self.total - len(self)

    def errors(self) -> "DiagnosticList":
        return DiagnosticList([d for d in self if d.is_error], self.total_errors, 0)

    def merge(self, more: Iterable[Diagnostic]) -> None:
        """Add ``more``, and what it counted but did not hold if it is a `DiagnosticList`."""
        errors, warnings = tally(more)
        self.extend(more)
        self.total_errors += errors
        self.total_warnings += warnings


def tally(diags: Iterable[Diagnostic]) -> tuple[int, int]:
    """(errors, warnings) found: a `DiagnosticList`'s totals, or what a plain list holds."""
    if isinstance(diags, DiagnosticList):
        return diags.total_errors, diags.total_warnings
    errors = warnings = 0
    for d in diags:
        errors += d.is_error
        warnings += not d.is_error
    return errors, warnings


def sorted_capped(diags: Iterable[Diagnostic], cap: int = MAX_DIAGNOSTICS) -> DiagnosticList:
    """Diagnostics in source order, without exact repeats, at most ``cap`` of them (errors kept
    before warnings), counting all of them; if ``diags`` is a `DiagnosticList`, with what it had
    counted but not held."""
    omitted_errors = omitted_warnings = 0
    if isinstance(diags, DiagnosticList):
        omitted_errors = diags.total_errors - sum(d.is_error for d in diags)
        omitted_warnings = diags.total_warnings - sum(not d.is_error for d in diags)
    seen: set[tuple] = set()
    errors: list[Diagnostic] = []
    warnings: list[Diagnostic] = []
    for d in sorted(diags, key=Diagnostic.sort_key):
        key = (d.sort_key(), d.message)
        if key not in seen:
            seen.add(key)
            (errors if d.is_error else warnings).append(d)
    # INVARIANT: an error is never dropped for a warning, so a failed check always shows why.
    shown = errors[:cap] + warnings[: max(0, cap - len(errors))]
    shown.sort(key=Diagnostic.sort_key)
    return DiagnosticList(shown, len(errors) + omitted_errors, len(warnings) + omitted_warnings)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A ``did you mean `x`?`` hint, or the empty string when nothing is close."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else ""


class IntentoError(Exception):
    """Raised by the public API when input is bad; carries the located diagnostics."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        first = diagnostics[0].one_line() if diagnostics else "invalid input"
        total = diagnostics.total if isinstance(diagnostics, DiagnosticList) else len(diagnostics)
        more = f" (and {total - 1:,} more)" if total > 1 else ""
        super().__init__(first + more)


class ProjectError(IntentoError):
    """The project's sources do not check (raised by `intento.load`)."""


class RequestError(IntentoError):
    """A planning request is invalid: unknown intent, bad `given` values, a malformed state."""
