"""Text positions as LSP counts them: character offsets to (line, character) and back.

Input: a text and an offset (what a `Span` holds), or an LSP position in the negotiated position
encoding. Output: the other one. Lines end at ``\\n``, ``\\r\\n`` or a lone ``\\r`` (the LSP rule,
which is not `str.splitlines`: a form feed or U+2028 does not end a line), and a line's
characters are counted in UTF-16 code units unless the client negotiated UTF-8 or UTF-32.
Positions past a line's end or past the text's end are clamped, never an error: an editor may
ask about a place the server has not seen yet.

Pure functions over strings; no pygls here.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

from lsprotocol import types as lsp

UTF8, UTF16, UTF32 = "utf-8", "utf-16", "utf-32"

_LINE_END = re.compile(r"\r\n|\r|\n")


def units(text: str, encoding: str) -> int:
    """How many code units of ``encoding`` ``text`` takes (UTF-16: astral characters count two)."""
    if encoding == UTF32 or text.isascii():
        return len(text)
    if encoding == UTF8:
        return len(text.encode("utf-8", "surrogatepass"))
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


@dataclass(frozen=True, slots=True)
class LineIndex:
    """Where every line of ``text`` starts, for conversions both ways (built in one regex pass)."""

    text: str
    starts: tuple[int, ...]

    @staticmethod
    def of(text: str) -> LineIndex:
        return LineIndex(text, (0, *(m.end() for m in _LINE_END.finditer(text))))

    @property
    def line_count(self) -> int:
        return len(self.starts)

    def line_bounds(self, line: int) -> tuple[int, int]:
        """Offsets of the first character of ``line`` and just past its last (its end of line
        excluded). ``line`` must be in range."""
        begin = self.starts[line]
        if line + 1 < len(self.starts):
            end = self.starts[line + 1]
            # INVARIANT: every start but the first follows a line end of one or two characters.
            end -= 2 if self.text.startswith("\r\n", end - 2) else 1
        else:
            end = len(self.text)
        return begin, end

    def position(self, offset: int, encoding: str = UTF16) -> lsp.Position:
        """The LSP position of ``offset`` (clamped to the text)."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect_right(self.starts, offset) - 1
        begin, end = self.line_bounds(line)
        # An offset inside a line end (between `\r` and `\n`) is the end of its line.
        return lsp.Position(line=line, character=units(self.text[begin : min(offset, end)], encoding))

    def range(self, start: int, end: int, encoding: str = UTF16) -> lsp.Range:
        return lsp.Range(start=self.position(start, encoding), end=self.position(max(start, end), encoding))

    def offset(self, position: lsp.Position, encoding: str = UTF16) -> int:
        """The offset of an LSP position: a line past the end is the end of the text, a character
        past the end of its line is the end of that line, and a character inside a character's
        code units (half a surrogate pair, a UTF-8 continuation byte) is that character's start."""
        line, character = position.line, position.character
        if line < 0:
            return 0
        if line >= len(self.starts):
            return len(self.text)
        begin, end = self.line_bounds(line)
        if character <= 0:
            return begin
        segment = self.text[begin:end]
        if encoding == UTF32 or segment.isascii():
            return begin + min(character, len(segment))
        counted = 0
        for i, c in enumerate(segment):
            width = units(c, encoding)
            if counted + width > character:
                return begin + i
            counted += width
        return end

    def end_position(self, encoding: str = UTF16) -> lsp.Position:
        return self.position(len(self.text), encoding)


def apply_change(text: str, change: lsp.TextDocumentContentChangeEvent, encoding: str = UTF16) -> str:
    """``text`` after one ``didChange`` content change: a whole new text, or a range replaced."""
    rng = getattr(change, "range", None)
    if rng is None:
        return change.text
    index = LineIndex.of(text)
    start, end = index.offset(rng.start, encoding), index.offset(rng.end, encoding)
    if end < start:
        start, end = end, start
    return text[:start] + change.text + text[end:]


def uses_crlf(text: str) -> bool:
    """Whether the text's lines mostly end in ``\\r\\n`` (formatting keeps them so)."""
    crlf = text.count("\r\n")
    return crlf > 0 and crlf >= text.count("\n") - crlf
