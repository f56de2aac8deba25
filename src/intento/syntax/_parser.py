"""Step one: text to lark tree; step two: lark tree to AST.

Input: a `Source`. Output: an `ast.File`, or diagnostics (never a lark exception and never a
Python traceback). Bounds from LANGUAGE.md "Limits" are enforced here, before anything recursive
runs: file size before lexing, nesting depth on the lark tree with an explicit stack (the AST is
built without recursion too, but later stages recurse over it), number-literal digits before any
conversion. The cost is linear in the text, with no per-character objects: see
tests/syntax/test_parse_cost.py and ``python -m benchmarks.parse``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import lru_cache

from intento._gc import paused_gc
from intento.diagnostics import MAX_DIAGNOSTICS, Diagnostic, DiagnosticList, Severity, Source, Span, tally
from intento.syntax import ast
from intento.values import MAX_NUMBER_DIGITS, parse_duration, parse_money, parse_number

#: Largest source file, in characters.
MAX_FILE_CHARS = 1_000_000
#: Deepest nesting of formulas, predicates, guards and lists (`(`, `not`, `and`/`or`, comparisons, `[`).
MAX_NESTING = 50

KEYWORDS = frozenset(
    """provider action intent policy test requires achieves undo timeout external idempotent via
    given goal deadline budget minimize then owner when soft forbid where require for before limit
    distinct plan observe expect feasible infeasible because no step broken and or not in true false
    secret""".split()
)

#: The lark rules that nest: each one (redundant parentheses included) is one level deeper.
_EXPR_RULES = frozenset({"or_", "and_", "not_", "compare", "in_", "list", "paren"})

_TERMINAL_WORDS = {
    "IDENT": "a name",
    "STRING": "a string",
    "NUMBER": "a number",
    "MONEY": "an amount of money like `4 USD`",
    "DURATION": "a duration like `30s`",
    "CMP": "a comparison (`==`, `!=`, `<`, `<=`, `>`, `>=`)",
    "$END": "the end of the file",
}


# lark is imported on the first parse that needs it (`_load_lark`), not with this module: a
# project found in the cache is never parsed (intento._cache).
Token = Tree = UnexpectedCharacters = UnexpectedInput = UnexpectedToken = None
_lalr = None


def _load_lark():
    global Token, Tree, UnexpectedCharacters, UnexpectedInput, UnexpectedToken, _lalr
    if _lalr is None:
        from intento.syntax import _lalr as mod

        Token, Tree = mod.Token, mod.Tree
        UnexpectedCharacters, UnexpectedInput, UnexpectedToken = mod.UnexpectedCharacters, mod.UnexpectedInput, mod.UnexpectedToken
        _lalr = mod
    return _lalr


def _lark():
    """The analysed grammar (lark's `Lark`)."""
    return _load_lark().lark_parser()


@lru_cache(maxsize=None)
def _describe_terminal(name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    try:
        term = _lark().get_terminal(name)
    except KeyError:
        return name.lower()
    if term.pattern.type == "str":
        return f"`{term.pattern.value}`"
    return name.lower()


#: Most alternatives an "expected ..." hint lists before it says "or another item".
MAX_EXPECTED_SHOWN = 8


def _expected_text(expected: set[str]) -> str:
    words = sorted({_describe_terminal(t) for t in expected})
    # Names and literals read better first, punctuation and keywords after.
    words.sort(key=lambda w: (w.startswith("`"), w))
    if len(words) == 1:
        return f"expected {words[0]}"
    more = len(words) - MAX_EXPECTED_SHOWN
    shown = ", ".join(words[:MAX_EXPECTED_SHOWN]) + (f", or one of {more} more" if more > 0 else "")
    return "expected one of: " + shown


#: A string literal as the lexer reads it (see STRING in the grammar: unrolled and possessive, so a
#: long string costs the regex engine no memory), or a `//` comment.
_STRING_OR_COMMENT = r'"[^"\\\r\n]*+(?:\\.[^"\\\r\n]*+)*+"|//[^\r\n]*'
_BRACE_SCAN = re.compile(_STRING_OR_COMMENT + r"|[{}]")


def _unclosed_brace(text: str) -> int | None:
    """Offset of the last `{` never closed (strings and comments skipped), if any."""
    stack: list[int] = []
    for m in _BRACE_SCAN.finditer(text):
        tok = m.group()
        if tok == "{":
            stack.append(m.start())
        elif tok == "}" and stack:
            stack.pop()
    return stack[-1] if stack else None


_COMMENT_OR_STRING = re.compile(_STRING_OR_COMMENT)


def scan_comments(text: str) -> tuple[tuple[int, str], ...]:
    """Every ``//`` comment with its offset, skipping ``//`` inside string literals."""
    return tuple((m.start(), m.group()) for m in _COMMENT_OR_STRING.finditer(text) if m.group().startswith("//"))


class _Located(Exception):
    def __init__(self, diag: Diagnostic):
        self.diag = diag


def parse(source: Source, *, cache_new: bool = True) -> tuple[ast.File | None, list[Diagnostic]]:
    """Parse one source; on failure the file is None and the diagnostics say why and where.

    A successful parse is kept in the project cache (intento._cache), keyed by the text's hash:
    the same text is not parsed again, in this process or the next, whatever file it is in.
    ``cache_new=False`` reads the cache but adds nothing to it (the language server parses a
    new text at every pause in typing: each would be an entry)."""
    from intento import _cache

    with paused_gc():  # a parse allocates a tree and frees nothing: see intento._gc
        cached = _cache.load(source) if len(source.text) <= MAX_FILE_CHARS else None
        if cached is not None:
            return cached, []
        result = _parse(source)
        if result[0] is not None and cache_new:
            _cache.store(source, result[0])
        return result


def _lone_cr(text: str) -> bool:
    return "\r" in text and _LONE_CR.search(text) is not None


_LONE_CR = re.compile("\r(?!\n)")


@dataclass(frozen=True, slots=True)
class Recovered:
    """What `parse_recovering` makes of a source: the declarations that parsed, every error found
    (capped, all counted), and the parts of the text that did not parse, with the names they
    declare and mention (a later stage's diagnostic about one of those may only echo the break)."""

    file: ast.File
    diagnostics: list[Diagnostic]
    broken: tuple[tuple[int, int], ...] = ()
    #: Names the broken parts declare (a declaration's, the facts it achieves): elsewhere they may
    #: look undeclared.
    broken_names: frozenset[str] = frozenset()
    #: Every name the broken parts mention: elsewhere they may look unused.
    broken_words: frozenset[str] = frozenset()


def parse_recovering(source: Source, *, cache_new: bool = True) -> tuple[ast.File, list[Diagnostic]]:
    """Parse one source, recovering from syntax errors: every declaration that parses is kept in
    the file returned (possibly none), with every error found (up to the cap).

    The editor's and the checker's view of a broken file. `parse` keeps its all-or-nothing
    answer for the commands that must not act on half a file (`fmt`)."""
    r = recover(source, cache_new=cache_new)
    return r.file, r.diagnostics


#: Most errors reported within one declaration: past the first, each is found by blanking the line
#: of the one before, which a badly broken declaration could repeat for every line.
MAX_ERRORS_PER_DECLARATION = 10

#: A declaration's header: its keyword, and its name (or a test's title). A keyword that starts a
#: line and is followed by a name starts a declaration, even where braces do not balance.
_DECL_HEAD = re.compile(r'(?:provider|action|intent|policy)[ \t]+([A-Za-z_][A-Za-z0-9_.]*)|test[ \t]+"')
_DECL_SCAN = re.compile(_STRING_OR_COMMENT + r'|[{}]|\b(?:provider|action|intent|policy|test)\b')
_ACHIEVES = re.compile(r"\bachieves\s+([A-Za-z0-9_.,\s]*)")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


_ITEM_WORDS = (
    "requires achieves undo timeout external idempotent via given goal deadline budget minimize owner when soft forbid "
    "require limit distinct plan expect"
)
#: A keyword that starts an item of a declaration (`requires`, `via`, `owner`, `expect`, ...).
_ITEM_HEAD = re.compile(r"(?:%s)\b" % "|".join(_ITEM_WORDS.split()))
#: A line whose first word starts an item.
_ITEM_LINE = re.compile(r"(?m)^[ \t]*(?:%s)\b" % "|".join(_ITEM_WORDS.split()))


def _declaration_starts(text: str) -> list[int]:
    """Offsets where a declaration starts: a declaration keyword outside braces that is followed
    by a name or starts its line, or one that starts its line and is followed by a name (where
    braces do not balance); strings and comments skipped. (`provider action {` is one broken
    declaration, not two.)"""
    starts: list[int] = []
    depth = 0
    for m in _DECL_SCAN.finditer(text):
        tok = m.group()
        if tok == "{":
            depth += 1
        elif tok == "}":
            depth = max(0, depth - 1)
        elif tok[0] not in '"/':
            at = m.start()
            line_start = max(text.rfind("\n", 0, at), text.rfind("\r", 0, at)) + 1
            first_on_line = not text[line_start:at].strip()
            head = _DECL_HEAD.match(text, at)
            named = head is not None and (head.group(1) is None or head.group(1) not in KEYWORDS)
            if (depth == 0 and (named or first_on_line)) or (first_on_line and named):
                depth = 0
                if not starts or starts[-1] != at:
                    starts.append(at)
    return starts


def _blank(text: str, a: int, b: int, keep_braces: bool) -> str:
    """``text`` with ``[a, b)`` turned to spaces (line breaks kept, and braces when asked), so
    every offset and line stays where it was."""
    part = text[a:b]
    out = "".join(c if c in "\r\n" or (keep_braces and c in "{}") else " " for c in part)
    return text[:a] + out + text[b:]


def _parse_part(source: Source, base: int, text: str) -> tuple[tuple | None, list[Diagnostic]]:
    """Parse ``text``, the part of ``source`` at ``base``: its declarations, or None and the first
    syntax error; or its declarations and the errors the builder found in them (bad literals)."""
    lalr = _load_lark()
    builder = _Builder(source, base)
    try:
        decls = lalr.parse_direct(text, builder, _EXPR_RULES, MAX_NESTING)
    except lalr.Fallback:
        part = Source(source.name, text)
        try:
            tree = lalr.parse_tree(text)
        except UnexpectedInput as e:
            return None, [_moved(_syntax_diagnostic(part, e), source, base)]
        deep = _too_deep(tree, part)
        if deep:
            return None, [_moved(deep, source, base)]
        builder = _Builder(source, base)
        decls = builder.build(tree)
    return decls, builder.reported_errors() if builder.error_count else []


def _moved(d: Diagnostic, source: Source, base: int) -> Diagnostic:
    """A diagnostic found in a part of ``source`` that starts at ``base``, placed in ``source``."""
    if d.span is None:
        return d
    return replace(d, span=Span.at_offset(source, base + d.span.start, base + d.span.end))


def recover(source: Source, *, cache_new: bool = True) -> Recovered:
    """`parse_recovering`, with the broken parts named (see `Recovered`).

    A file that parses is returned whole. Otherwise it is cut at its declarations, and each is
    parsed on its own: one that parses is kept; one that does not gives its first error, then,
    its line blanked (braces kept), its next, up to `MAX_ERRORS_PER_DECLARATION` (an error no
    later than the line blanked is an echo of it, and ends the search). A declaration with an
    error is left out whole: its names go into `Recovered.broken_names`."""
    f, diags = parse(source, cache_new=cache_new)
    if f is not None or len(source.text) > MAX_FILE_CHARS:
        empty = ast.File((), comments=scan_comments(source.text), span=Span.whole_text(source))
        return Recovered(f or empty, diags, ((0, len(source.text)),) if f is None else ())
    text = source.text
    starts = _declaration_starts(text)
    bounds = list(zip([0] + starts, starts + [len(text)]))
    decls: list = []
    errors: list[Diagnostic] = []
    total = 0
    broken: list[tuple[int, int]] = []
    names: set[str] = set()
    words: set[str] = set()
    with paused_gc():
        for a, b in bounds:
            if a == b:
                continue
            part = text[a:b]
            got, errs = _parse_part(source, a, part)
            if got is None and errs[0].span is not None:
                # Whole declarations before the line of the error (`provider p { ... }` then a
                # stray line) are kept: the part is cut there, and the rest is the broken one.
                at = errs[0].span.start - a
                cut = max(part.rfind("\n", 0, at), part.rfind("\r", 0, at)) + 1
                if 0 < cut < len(part) and part[:cut].strip():
                    whole, bad = _parse_part(source, a, part[:cut])
                    if whole and not bad:
                        decls.extend(whole)
                        a, part = a + cut, part[cut:]
                        got, errs = _parse_part(source, a, part)
                        if not errs:  # cannot happen (the error is in the rest), but never lose it
                            decls.extend(got)
                            continue
            if not errs:
                decls.extend(got)
                continue
            broken.append((a, b))
            plain = _without_strings_and_comments(part)
            words.update(_WORD.findall(plain))
            head = _DECL_HEAD.match(part)
            if head and head.group(1):
                names.add(head.group(1))
            for m in _ACHIEVES.finditer(plain):
                names.update(_WORD.findall(m.group(1)))
            found = list(errs)
            total += tally(errs)[0]
            if found[0].code == "E003" and b < len(text) and found[0].label:
                # Not the end of the file: the end of this declaration, where the next begins.
                line = source.line_col(b)[0]
                found[0] = replace(found[0], message=f"this `{{` is never closed before the next declaration (line {line})")
            if found[0].code in ("E003", "E004", "E005"):
                got = ()  # an unclosed brace, or a limit: what follows would only echo it
            # More errors of the same declaration: blank the line of the last one, parse again.
            while got is None and len(found) < MAX_ERRORS_PER_DECLARATION and len(errors) + len(found) < MAX_DIAGNOSTICS:
                last = found[-1].span
                at = last.start - a
                if at >= len(part) or last.end <= last.start and at >= len(part.rstrip()):
                    break  # at the end of the declaration: nothing after it to look at
                line_a = max(part.rfind("\n", 0, at), part.rfind("\r", 0, at)) + 1
                ends = [i for i in (part.find("\n", at), part.find("\r", at)) if i >= 0]
                line_b = min(ends) if ends else len(part)
                brace = part[at : at + 1] in ("{", "}")
                item = _ITEM_HEAD.match(part, at)
                if item and not part[line_a:at].strip():
                    # An item keyword that starts its line: the item before it is what is
                    # unfinished (`requires a and` followed by `achieves b`). Blank that one.
                    prev = [m.start() for m in _ITEM_LINE.finditer(part, 0, line_a)]
                    if not prev:
                        break
                    line_b, line_a = line_a, prev[-1]
                part = _blank(part, line_a, line_b, keep_braces=not brace)
                got, more = _parse_part(source, a, part)
                if got is not None or not more or more[0].span.start - a <= line_b:
                    break
                found.append(more[0])
                total += 1
            errors.extend(found)
    decl_list = tuple(decls)
    file = ast.File(decl_list, comments=scan_comments(text), span=Span.whole_text(source))
    shown = DiagnosticList(sorted(errors, key=Diagnostic.sort_key)[:MAX_DIAGNOSTICS], total, 0)
    return Recovered(file, shown, tuple(broken), frozenset(names), frozenset(words))


def _without_strings_and_comments(text: str) -> str:
    return _COMMENT_OR_STRING.sub(" ", text)


def _parse(source: Source) -> tuple[ast.File | None, list[Diagnostic]]:
    if len(source.text) > MAX_FILE_CHARS:
        return None, [
            Diagnostic(
                "E004",
                Severity.error,
                f"file is too large ({len(source.text):,} characters; the limit is {MAX_FILE_CHARS:,})",
                Span.whole_file(source),
                help="split the project into several files",
            )
        ]
    lalr = _load_lark()
    builder = _Builder(source, by_offset=_lone_cr(source.text))
    try:
        # The AST built as the parser reduces (no lark tree). A file with a syntax error or
        # nested too deeply takes the reference path below, which reports it as it always has.
        decls = lalr.parse_direct(source.text, builder, _EXPR_RULES, MAX_NESTING)
    except lalr.Fallback:  # a syntax error, or nesting too deep
        pass
    else:
        if builder.error_count:
            return None, builder.reported_errors()
        return ast.File(decls, comments=scan_comments(source.text), span=Span.whole_text(source)), []
    return _parse_via_tree(source)


def _parse_via_tree(source: Source) -> tuple[ast.File | None, list[Diagnostic]]:
    """The reference path: lark's tree (positions propagated), its depth checked, then the AST."""
    try:
        tree = _load_lark().parse_tree(source.text)
    except UnexpectedInput as e:
        return None, [_syntax_diagnostic(source, e)]
    deep = _too_deep(tree, source)
    if deep:
        return None, [deep]
    builder = _Builder(source, by_offset=_lone_cr(source.text))
    try:
        decls = builder.build(tree)
    except _Located as e:
        return None, [e.diag]
    if builder.error_count:
        return None, builder.reported_errors()
    return ast.File(decls, comments=scan_comments(source.text), span=Span.whole_text(source)), []


def _syntax_diagnostic(source: Source, e: UnexpectedInput) -> Diagnostic:
    if isinstance(e, UnexpectedToken):
        tok = e.token
        expected = set(e.expected) if e.expected else set()
        if tok.type == "$END":
            opened = _unclosed_brace(source.text)
            if opened is not None:
                span = Span.at_offset(source, opened, opened + 1)
                return Diagnostic(
                    "E003", Severity.error, "unexpected end of file: this `{` is never closed", span, label="opened here", help="add the missing `}`"
                )
            span = Span.at_offset(source, len(source.text))
            return Diagnostic("E003", Severity.error, "unexpected end of file", span, help=_expected_text(expected) or "")
        span = Span.at_offset(source, tok.start_pos, tok.end_pos)
        text = str(tok)
        line_start = max(source.text.rfind("\n", 0, tok.start_pos), source.text.rfind("\r", 0, tok.start_pos)) + 1
        if text in KEYWORDS and "IDENT" in expected and not source.text[line_start : tok.start_pos].strip() and _ITEM_HEAD.fullmatch(text):
            # `requires a and` then `achieves b` on the next line: the line before is unfinished.
            return Diagnostic(
                "E001",
                Severity.error,
                f"unexpected `{text}`: the line before it is unfinished",
                span,
                label="not expected here",
                help=f"{_expected_text(expected)} before `{text}`",
            )
        if text in KEYWORDS and "IDENT" in expected:
            return Diagnostic(
                "E008",
                Severity.error,
                f"`{text}` is a reserved keyword and cannot be used as a name",
                span,
                label="keyword",
                help=f"choose another name, for example `{text}_1`",
            )
        shown = text if len(text) <= 40 else text[:37] + "..."
        hint = _expected_text(expected)
        if text == "=":
            hint = "attributes are written `name value`, without `=`; comparisons use `==`"
        return Diagnostic("E001", Severity.error, f"unexpected `{shown}`", span, label="not expected here", help=hint)
    if isinstance(e, UnexpectedCharacters):
        pos = e.pos_in_stream
        ch = source.text[pos] if pos < len(source.text) else ""
        span = Span.at_offset(source, pos, pos + 1)
        if ch == '"':
            return Diagnostic("E002", Severity.error, "unterminated string", span, help='close the string with `"` on the same line')
        if ch.isdigit() or (ch == "-" and source.text[pos + 1 : pos + 2].isdigit()):
            return Diagnostic(
                "E002",
                Severity.error,
                "malformed number, money or duration literal",
                span,
                help="write numbers like `12` or `0.997`, money like `4.50 USD`, durations like `50ms`, `1.2s`, `5m`, `2h`, `1d`",
            )
        shown = ch if ch.isprintable() else repr(ch)[1:-1]
        hint = "comparisons are written `==`; `=` only binds a value inside `given { ... }`" if ch == "=" else (
            "comments start with `//`" if ch in "#/" else "names are ASCII letters, digits and `_`; see docs/language.md"
        )
        return Diagnostic("E002", Severity.error, f"unexpected character `{shown}`", span, help=hint)
    span = Span.at_offset(source, getattr(e, "pos_in_stream", 0) or 0)
    return Diagnostic("E001", Severity.error, "syntax error", span)


def _too_deep(tree: Tree, source: Source) -> Diagnostic | None:
    # Explicit stack: a hostile file must not blow Python's recursion limit here.
    stack: list[tuple[Tree, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if node.data in _EXPR_RULES:
            depth += 1
            if depth > MAX_NESTING:
                meta = node.meta
                span = Span.at_offset(source, getattr(meta, "start_pos", 0), getattr(meta, "end_pos", 0))
                return Diagnostic(
                    "E005",
                    Severity.error,
                    f"expression is nested too deeply (more than {MAX_NESTING} levels)",
                    Span.at_offset(source, span.start, span.start + 1),
                    help="split the formula, or name an intermediate fact",
                )
        # Reversed, so the first too-deep place in the file is the one reported.
        for child in reversed(node.children):
            if isinstance(child, Tree):
                stack.append((child, depth))
    return None


_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}
#: A backslash and the character it escapes (in a STRING token a `\\` is always followed by one).
_ESCAPE = re.compile(r"\\(.)", re.S)


def _unescape(m: re.Match) -> str:
    # An unknown escape (reported as E009) stands for the character itself.
    return _ESCAPES.get(m.group(1), m.group(1))


def _shown_char(c: str) -> str:
    return c if c.isprintable() else repr(c)[1:-1]


class _Builder:
    """Lark tree -> AST nodes: one method per grammar rule, called with the rule's meta (its
    position) and its children already built."""

    def __init__(self, source: Source, base: int = 0, by_offset: bool = False):
        self.source = source
        # The text parsed starts at ``base`` in the source (a declaration parsed on its own while
        # recovering from a syntax error). Positions are then computed from offsets with the
        # source's line table, as they are for a text holding a lone CR (the lexer counts lines at
        # LF only; editors and `Source` end a line at LF, CRLF or a lone CR).
        self.base = base
        if base or by_offset:
            self._span, self._tspan = self._span_at, self._tspan_at
        # At most 2 x MAX_DIAGNOSTICS kept (those first in the file), all counted: a hostile file
        # may hold a million bad escapes, and only the first are ever shown.
        self.errors: list[Diagnostic] = []
        self.error_count = 0
        self._past = float("inf")  # an error starting after this offset can never be shown

    def build(self, root: Tree):
        """The AST of ``root``, built bottom-up with an explicit stack (no recursion, and none of
        lark's per-node visitor machinery). The tree is consumed: each node lets go of its
        children once they are built, so the tree is freed as the AST grows."""
        rules: dict[str, object] = {}
        values: list = []
        stack: list[tuple[object, bool]] = [(root, False)]
        while stack:
            node, children_built = stack.pop()
            if children_built:
                n = len(node.children)
                ch = values[len(values) - n :]
                del values[len(values) - n :]
                node.children = []
                rule = rules.get(node.data)
                if rule is None:
                    rule = rules[node.data] = getattr(self, node.data)
                values.append(rule(node.meta, ch))
            elif isinstance(node, Tree):
                stack.append((node, True))
                stack.extend((c, False) for c in reversed(node.children))
            else:
                values.append(node)
        return values[0]

    # -- helpers --
    def _span(self, meta) -> Span:
        if getattr(meta, "empty", True):
            return Span.whole_file(self.source)
        return Span(self.source, meta.start_pos, meta.end_pos, meta.line, meta.column, meta.end_line, meta.end_column)

    def _tspan(self, tok: Token) -> Span:
        return Span(self.source, tok.start_pos, tok.end_pos, tok.line, tok.column, tok.end_line, tok.end_column)

    def _span_at(self, meta) -> Span:
        if getattr(meta, "empty", True):
            return Span.whole_file(self.source)
        return Span.at_offset(self.source, self.base + meta.start_pos, self.base + meta.end_pos)

    def _tspan_at(self, tok: Token) -> Span:
        return Span.at_offset(self.source, self.base + tok.start_pos, self.base + tok.end_pos)

    def _ident(self, tok: Token) -> ast.Ident:
        return ast.Ident(str(tok), span=self._tspan(tok))

    def _idents(self, items) -> tuple[ast.Ident, ...]:
        return tuple(self._ident(t) for t in items if isinstance(t, Token) and t.type == "IDENT")

    def _error(self, code: str, message: str, span: Span, help: str = "") -> None:
        self.error_count += 1
        if span.start > self._past:
            return
        self.errors.append(Diagnostic(code, Severity.error, message, span, help=help))
        if len(self.errors) > 2 * MAX_DIAGNOSTICS:
            self.errors.sort(key=Diagnostic.sort_key)
            del self.errors[MAX_DIAGNOSTICS:]
            self._past = self.errors[-1].span.start

    def reported_errors(self) -> DiagnosticList:
        # INVARIANT: every error is at its own token, so none repeats another (which the cap's
        # dedup would not count).
        return DiagnosticList(sorted(self.errors, key=Diagnostic.sort_key)[:MAX_DIAGNOSTICS], self.error_count, 0)

    def _digits_ok(self, tok: Token) -> bool:
        digits = sum(map(str.isdigit, tok))
        if digits > MAX_NUMBER_DIGITS:
            self._error(
                "E006",
                f"number literal has {digits} digits; the limit is {MAX_NUMBER_DIGITS}",
                self._tspan(tok),
                help="use fewer digits",
            )
            return False
        return True

    # -- values --
    def string(self, meta, ch):
        tok = ch[0]
        body = str(tok)[1:-1]
        if "\\" in body:
            # One regex pass, no per-character objects: a string literal may be a megabyte long.
            for m in _ESCAPE.finditer(body):
                if m.group(1) not in _ESCAPES:
                    at = self.base + tok.start_pos + 1 + m.start()
                    if at > self._past:  # never shown: counted, and no diagnostic is built
                        self.error_count += 1
                        continue
                    self._error(
                        "E009",
                        f"unknown escape `\\{_shown_char(m.group(1))}` in string",
                        Span.at_offset(self.source, at, at + 2),
                        help='the escapes are `\\"`, `\\\\`, `\\n` and `\\t`',
                    )
            body = _ESCAPE.sub(_unescape, body)
        return ast.Literal(body, span=self._tspan(tok))

    def number(self, meta, ch):
        tok = ch[0]
        value = parse_number(str(tok)) if self._digits_ok(tok) else Decimal(0)
        return ast.Literal(value, span=self._tspan(tok))

    def money(self, meta, ch):
        tok = ch[0]
        value = parse_money(str(tok)) if self._digits_ok(tok) else None
        return ast.Literal(value, span=self._tspan(tok))

    def duration(self, meta, ch):
        tok = ch[0]
        value = parse_duration(str(tok)) if self._digits_ok(tok) else None
        if value is None and not self.error_count:
            self._error(
                "E006",
                f"duration `{tok}` is not a whole number of milliseconds",
                self._tspan(tok),
                help="durations are stored in whole milliseconds: write `1ms` or more precisely",
            )
        return ast.Literal(value, span=self._tspan(tok))

    def true(self, meta, ch):
        return ast.Literal(True, span=self._span(meta))

    def false(self, meta, ch):
        return ast.Literal(False, span=self._span(meta))

    def list(self, meta, ch):
        return ast.Literal(tuple(c.value for c in ch), span=self._span(meta))

    # -- expressions --
    def ref(self, meta, ch):
        return ast.Ref(str(ch[0]), span=self._tspan(ch[0]))

    def _flat(self, cls, ch):
        items = []
        for c in ch:
            items.extend(c.items if isinstance(c, cls) else (c,))
        return tuple(items)

    def paren(self, meta, ch):
        # Parentheses only group: the AST keeps what they hold (its span without them).
        return ch[0]

    def or_(self, meta, ch):
        return ast.Or(self._flat(ast.Or, ch), span=self._span(meta))

    def and_(self, meta, ch):
        return ast.And(self._flat(ast.And, ch), span=self._span(meta))

    def not_(self, meta, ch):
        return ast.Not(ch[0], span=self._span(meta))

    def compare(self, meta, ch):
        return ast.Compare(str(ch[1]), ch[0], ch[2], span=self._span(meta))

    def in_(self, meta, ch):
        return ast.In(ch[0], ch[1], span=self._span(meta))

    # -- declarations --
    def start(self, meta, ch):
        return tuple(ch)

    def attr(self, meta, ch):
        return ast.Attr(self._ident(ch[0]), ch[1], span=self._span(meta))

    def attr_block(self, meta, ch):
        return tuple(ch)

    def provider(self, meta, ch):
        return ast.ProviderDecl(self._ident(ch[0]), tuple(ch[1:]), span=self._span(meta))

    def action(self, meta, ch):
        return ast.ActionDecl(self._ident(ch[0]), tuple(ch[1:]), span=self._span(meta))

    def requires(self, meta, ch):
        return ast.Requires(ch[0], span=self._span(meta))

    def achieves(self, meta, ch):
        return ast.Achieves(self._idents(ch), span=self._span(meta))

    def undo(self, meta, ch):
        return ast.Undo(self._ident(ch[0]), span=self._span(meta))

    def timeout(self, meta, ch):
        return ast.Timeout(ch[0], span=self._span(meta))

    def external(self, meta, ch):
        return ast.Flag("external", span=self._span(meta))

    def idempotent(self, meta, ch):
        return ast.Flag("idempotent", span=self._span(meta))

    def via(self, meta, ch):
        return ast.Via(self._ident(ch[0]), ch[1], span=self._span(meta))

    def intent(self, meta, ch):
        return ast.IntentDecl(self._ident(ch[0]), tuple(ch[1:]), span=self._span(meta))

    def given(self, meta, ch):
        return ast.Given(tuple(ch), span=self._span(meta))

    def param(self, meta, ch):
        secret = len(ch) > 2
        return ast.Param(self._ident(ch[0]), self._ident(ch[1]), secret, span=self._span(meta))

    def goal(self, meta, ch):
        return ast.Goal(ch[1], span=self._span(meta))

    def deadline(self, meta, ch):
        return ast.Deadline(ch[1], span=self._span(meta))

    def budget(self, meta, ch):
        return ast.Budget(ch[1], span=self._span(meta))

    def minimize(self, meta, ch):
        terms = tuple(c for c in ch if isinstance(c, ast.ObjTerm))
        seps = tuple(c for c in ch if isinstance(c, str) and not isinstance(c, ast.ObjTerm))
        return ast.Minimize(terms, seps, span=self._span(meta))

    def objterm(self, meta, ch):
        weight = None
        if len(ch) == 2:
            weight = parse_number(str(ch[0])) if self._digits_ok(ch[0]) else Decimal(0)
        return ast.ObjTerm(weight, self._ident(ch[-1]), span=self._span(meta))

    def objsep(self, meta, ch):
        return "then" if str(ch[0]) == "then" else "+"

    def policy(self, meta, ch):
        title = None
        rest = ch[1:]
        if rest and isinstance(rest[0], Token) and rest[0].type == "STRING":
            title = self.string(None, [rest[0]]).value
            rest = rest[1:]
        return ast.PolicyDecl(self._ident(ch[0]), title, tuple(rest), span=self._span(meta))

    def owner(self, meta, ch):
        return ast.Owner(ch[0], span=self._span(meta))

    def when(self, meta, ch):
        return ast.When(ch[0], span=self._span(meta))

    def soft(self, meta, ch):
        return ast.Soft(ch[0], span=self._span(meta))

    def action_list(self, meta, ch):
        return self._idents(ch)

    def forbid_via(self, meta, ch):
        actions = ch[0] if len(ch) == 2 else None
        return ast.ForbidVia(actions, ch[-1], span=self._span(meta))

    def forbid_provider(self, meta, ch):
        return ast.ForbidProvider(self._ident(ch[1]), span=self._span(meta))

    def forbid_action(self, meta, ch):
        return ast.ForbidAction(self._ident(ch[0]), span=self._span(meta))

    def require_for(self, meta, ch):
        return ast.RequireFor(ch[0], self._idents(ch[1:]), span=self._span(meta))

    def require_before(self, meta, ch):
        return ast.RequireBefore(ch[0], self._ident(ch[1]), span=self._span(meta))

    def require_fact(self, meta, ch):
        return ast.RequireFact(ch[0], span=self._span(meta))

    def limit(self, meta, ch):
        return ast.Limit(self._ident(ch[0]), str(ch[1]), ch[2], span=self._span(meta))

    def limit_count(self, meta, ch):
        func = self._ident(ch[0])
        rest = ch[1:]
        actions = None
        if isinstance(rest[0], tuple):
            actions, rest = rest[0], rest[1:]
        pred, op, value = rest
        return ast.LimitCount(func, actions, pred, str(op), value, span=self._span(meta))

    def distinct(self, meta, ch):
        return ast.Distinct(self._idents(ch[1:]), span=self._span(meta))

    def test(self, meta, ch):
        name = self.string(None, [ch[0]]).value
        return ast.TestDecl(name, tuple(ch[1:]), span=self._span(meta))

    def plan(self, meta, ch):
        given = next((c for c in ch[1:] if isinstance(c, tuple) and c and c[0] == "given"), None)
        observe = next((c for c in ch[1:] if isinstance(c, tuple) and c and c[0] == "observe"), None)
        return ast.PlanStep(
            self._ident(ch[0]),
            given[1] if given else None,
            observe[1] if observe else None,
            span=self._span(meta),
        )

    def given_values(self, meta, ch):
        return ("given", tuple(ch))

    def given_value(self, meta, ch):
        return ast.GivenValue(self._ident(ch[0]), ch[1], span=self._span(meta))

    def observe(self, meta, ch):
        return ("observe", tuple(ch))

    def observation(self, meta, ch):
        attrs = ch[2] if len(ch) > 2 else None
        return ast.Observation(self._ident(ch[0]), self._ident(ch[1]), attrs, span=self._span(meta))

    def expect(self, meta, ch):
        return ch[0]

    def exp_feasible(self, meta, ch):
        return ast.ExpectFeasible(span=self._span(meta))

    def exp_infeasible(self, meta, ch):
        # `goal`, `budget` and `deadline` are keywords but may be named as members of a conflict.
        return ast.ExpectInfeasible(tuple(self._ident(t) for t in ch), span=self._span(meta))

    def exp_via(self, meta, ch):
        return ast.ExpectVia(self._ident(ch[0]), self._ident(ch[1]), span=self._span(meta))

    def exp_no_via(self, meta, ch):
        actions = ch[0] if len(ch) == 2 else None
        return ast.ExpectNoVia(actions, ch[-1], span=self._span(meta))

    def exp_step(self, meta, ch):
        return ast.ExpectStep(self._ident(ch[0]), True, span=self._span(meta))

    def exp_no_step(self, meta, ch):
        return ast.ExpectStep(self._ident(ch[0]), False, span=self._span(meta))

    def exp_metric(self, meta, ch):
        return ast.ExpectMetric(self._ident(ch[0]), str(ch[1]), ch[2], span=self._span(meta))

    def exp_broken(self, meta, ch):
        return ast.ExpectBroken(self._ident(ch[0]), span=self._span(meta))
