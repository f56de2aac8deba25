"""The formatter: AST (with its source's comments) to canonical text.

Input: an `ast.File` from `parse`. Output: text that parses back to an equal AST, and formats to
itself (idempotent). Layout: one declaration per block, a blank line between declarations, two
spaces of indentation, one item per line, `via` options and `observe`/`given` blocks on one line.

Comments are kept. A comment on its own line stays on its own line before the item that follows
it; a comment after code stays at the end of the line that item ends on; a comment inside an item
that is printed on one line (a `via` block written over several lines) moves to its own line just
before that item.

Nothing a file says is lost or changed (tests/syntax/test_fmt_never_loses.py). Every literal is
printed as it was written (`literal_text`): the digits of a number, money or duration (`007`,
`1.50 USD`, `1.0s`), a string's escapes, a policy's title, a test's name, a `minimize` weight, and
a value the parser could not hold (a money literal too long for `parse_money`, which the checker
reports). Only layout changes: whitespace and line ends, `;` and `,` separators, a list's trailing
comma, redundant parentheses, the spaces between an amount and its currency (`4  USD` -> `4 USD`)
and whitespace (`[ \t\r\f]`) at the end of a comment. `format_file` checks its own output: text
that would not parse back to the same tree (values compared exactly, comments included) raises
`FormatError` instead of being returned, so `intento fmt` never writes it.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import deque
from contextvars import ContextVar
from dataclasses import dataclass, fields, is_dataclass
from decimal import Decimal

from intento.diagnostics import Source
from intento.syntax import ast
from intento.values import Duration, Money, format_decimal, parse_duration, parse_money, render_value

INDENT = "  "
#: Layout the lexer skips: whitespace and comments (possessive: no backtracking on a long run).
_SKIP = r"(?:[ \t\r\n\f]++|//[^\r\n]*+)*+"
_LINE_END = re.compile(r"\r\n?|\n")
#: From the end of a declaration's name (a test's keyword) to its `{`: layout, and a title.
_HEADER_END = re.compile(_SKIP + r'(?:"[^"\\\r\n]*+(?:\\.[^"\\\r\n]*+)*+"' + _SKIP + r")?\{")
#: A comment's trailing whitespace (the lexer's, not Python's `str.isspace`: a no-break space stays).
_COMMENT_TRAILING = " \t\r\f"


class FormatError(ValueError):
    """The formatter would have changed what a file says (a bug): nothing is written."""


@dataclass
class _Comment:
    offset: int
    text: str
    line: int
    trailing: bool  # code stands before it on its line
    blank_before: bool  # the source line above it is blank


class _Out:
    def __init__(self, source: Source, comments: tuple[tuple[int, str], ...]):
        self.source = source
        text = source.text
        # Where each line starts: lines end at LF, CRLF or a lone CR, as the lexer ends a comment.
        self._starts = [0] + [m.end() for m in _LINE_END.finditer(text)]
        self.pending: deque[_Comment] = deque()
        for off, body in comments:
            line = self._line_of(off)
            line_start = self._starts[line - 1]
            blank_before = line > 1 and text[self._starts[line - 2] : line_start].strip() == ""
            trailing = text[line_start:off].strip() != ""
            self.pending.append(_Comment(off, body.rstrip(_COMMENT_TRAILING), line, trailing, blank_before))
        self.lines: list[str] = []

    def _line_of(self, offset: int) -> int:
        return bisect_right(self._starts, offset)

    def flush(self, before: int, depth: int) -> None:
        """Emit, on their own lines, every pending comment that starts before ``before``."""
        while self.pending and self.pending[0].offset < before:
            c = self.pending.popleft()
            if c.blank_before and self.lines and self.lines[-1] != "" and not self.lines[-1].endswith("{"):
                self.lines.append("")
            self.lines.append(INDENT * depth + c.text)

    def emit(self, text: str, depth: int, start: int, end: int) -> None:
        """Emit one line of code made from source range [start, end)."""
        self.flush(start, depth)
        # Comments strictly inside the item's range move above it.
        inner_end = end
        while self.pending and self.pending[0].offset < inner_end:
            c = self.pending[0]
            if c.trailing and c.line == self._line_of(end) and c.offset >= end:
                break
            self.pending.popleft()
            self.lines.append(INDENT * depth + c.text)
        line = INDENT * depth + text
        if self.pending and self.pending[0].trailing:
            c = self.pending[0]
            # A comment after code belongs to the last item before it on its line.
            if c.line == self._line_of(max(start, end - 1)) and self.source.text[end : c.offset].strip(" \t;") == "":
                line += " " + self.pending.popleft().text
        self.lines.append(line)

    def blank(self) -> None:
        if self.lines and self.lines[-1] != "":
            self.lines.append("")

    def finish(self) -> str:
        self.flush(len(self.source.text) + 1, 0)
        while self.lines and self.lines[-1] == "":
            self.lines.pop()
        return "\n".join(self.lines) + "\n" if self.lines else ""


def format_file(f: ast.File, source: Source) -> str:
    """The canonical text of ``f`` (the parse of ``source``). Raises `FormatError` rather than
    return text that would change what the file says (see `_verify`)."""
    token = _VERBATIM.set(True)
    try:
        out = _Out(source, f.comments)
        for i, decl in enumerate(f.decls):
            if i:
                out.blank()
            _decl(out, decl)
        text = out.finish()
    finally:
        _VERBATIM.reset(token)
    if text != source.text:
        _verify(f, source, text)
    return text


def _verify(f: ast.File, source: Source, text: str) -> None:
    """Parse the formatted text and compare: the same declarations, items, names and values (by
    type and exact value: `1.50` is not `1.5`, `true` is not `1`, a value the parser could not
    hold by its text) and the same comments in the same order."""
    from intento.syntax._parser import parse

    g, diags = parse(Source(source.name, text))
    if g is None:
        why = diags[0].message if diags else "it does not parse"
        raise FormatError(f"{source.name}: formatting would make the file unreadable ({why}); it is left as it is")
    if _shape(g) != _shape(f) or _comment_texts(g) != _comment_texts(f):
        raise FormatError(f"{source.name}: formatting would change what the file says; it is left as it is")


def _comment_texts(f: ast.File) -> list[str]:
    return [text.rstrip(_COMMENT_TRAILING) for _, text in f.comments]


def _shape(node):
    """A node without spans, every literal by its exact, typed value (and by its text when the
    parser could not hold its value). Explicit stack: expressions may nest 50 levels."""
    out: list = []
    stack: list = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Literal):
            out.append(("Literal", _value_shape(n.value), literal_text(n) if _has_none(n.value) else None))
        elif is_dataclass(n):
            out.append(type(n).__name__)
            stack.extend(reversed([getattr(n, fl.name) for fl in fields(n) if fl.name not in ("span", "comments")]))
        elif isinstance(n, tuple):
            out.append(("tuple", len(n)))
            stack.extend(reversed(n))
        elif isinstance(n, Decimal):
            out.append(("decimal", str(n)))
        else:
            out.append((type(n).__name__, n))
    return out


def _value_shape(v):
    match v:
        case bool():
            return ("bool", v)
        case Money():
            return ("money", str(v.amount), v.currency)
        case Duration():
            return ("duration", v.ms, v.text)
        case Decimal():
            return ("number", str(v))
        case str():
            return ("string", v)
        case tuple():
            return ("list", tuple(_value_shape(x) for x in v))
    return (type(v).__name__, v)


def _has_none(v) -> bool:
    return v is None or (isinstance(v, tuple) and any(_has_none(x) for x in v))


def _open_brace_end(out: _Out, decl) -> int:
    """The offset just past the `{` that opens ``decl``'s block."""
    name_span = getattr(decl.name, "span", None)  # a test's name is a plain string
    m = _HEADER_END.match(out.source.text, name_span.end if name_span else decl.span.start + len("test"))
    if m is None:  # not the text this tree was parsed from
        raise FormatError(f"{out.source.name}: the syntax tree does not match the text")
    return m.end()


def _block(out: _Out, header: str, decl, items, render) -> None:
    start, end = decl.span.start, decl.span.end
    brace_end = _open_brace_end(out, decl)
    inner_comments = any(brace_end <= c.offset < end - 1 for c in out.pending)
    if not items and not inner_comments:
        out.emit(header + " {}", 0, start, end)
        return
    out.emit(header + " {", 0, start, brace_end)
    for it in items:
        out.emit(render(it), 1, it.span.start, it.span.end)
    out.flush(end - 1, 1)
    out.emit("}", 0, end - 1, end)


def _decl(out: _Out, decl: ast.Decl) -> None:
    match decl:
        case ast.ProviderDecl():
            _block(out, f"provider {decl.name.name}", decl, decl.attrs, _attr)
        case ast.ActionDecl():
            _block(out, f"action {decl.name.name}", decl, decl.items, _action_item)
        case ast.IntentDecl():
            _block(out, f"intent {decl.name.name}", decl, decl.items, _intent_item)
        case ast.PolicyDecl():
            title = f" {_string_at(out.source.text, decl.name.span.end, decl.title)}" if decl.title is not None else ""
            _block(out, f"policy {decl.name.name}{title}", decl, decl.items, _policy_item)
        case ast.TestDecl():
            name = _string_at(out.source.text, decl.span.start + len("test"), decl.name)
            _block(out, f"test {name}", decl, decl.items, _test_item)


def _attr(a: ast.Attr) -> str:
    return f"{a.name.name} {lit(a.value)}"


def _attrs_inline(attrs: tuple[ast.Attr, ...]) -> str:
    if not attrs:
        return "{}"
    return "{ " + "; ".join(_attr(a) for a in attrs) + " }"


def _names(idents) -> str:
    return ", ".join(i.name for i in idents)


def _action_list(idents) -> str:
    return f" [{_names(idents)}]" if idents is not None else ""


def _action_item(it: ast.ActionItem) -> str:
    match it:
        case ast.Requires():
            return f"requires {expr(it.expr)}"
        case ast.Achieves():
            return f"achieves {_names(it.facts)}"
        case ast.Undo():
            return f"undo {it.action.name}"
        case ast.Timeout():
            return f"timeout {lit(it.value)}"
        case ast.Flag():
            return it.word
        case ast.Via():
            return f"via {it.provider.name} {_attrs_inline(it.attrs)}"
    raise AssertionError(it)


def _intent_item(it: ast.IntentItem) -> str:
    match it:
        case ast.Given():
            return "given " + ", ".join(f"{p.name.name}: {p.type.name}" + (" secret" if p.secret else "") for p in it.params)
        case ast.Goal():
            return f"goal {expr(it.expr)}"
        case ast.Deadline():
            return f"deadline {lit(it.value)}"
        case ast.Budget():
            return f"budget {lit(it.value)}"
        case ast.Minimize():
            parts = [_objterm(it.terms[0])]
            for sep, term in zip(it.seps, it.terms[1:]):
                parts.append(sep)
                parts.append(_objterm(term))
            return "minimize " + " ".join(parts)
    raise AssertionError(it)


def _objterm(t: ast.ObjTerm) -> str:
    if t.weight is None:
        return t.metric.name
    weight = format_decimal(t.weight)
    if _VERBATIM.get() and t.span is not None:
        m = _NUMBER_TOKEN.match(t.span.source.text, t.span.start)
        if m and m.end() <= t.span.end and _same_value(Decimal(m.group()), t.weight):
            weight = m.group()
    return f"{weight} * {t.metric.name}"


def _policy_item(it: ast.PolicyItem) -> str:
    match it:
        case ast.Owner():
            return f"owner {lit(it.value)}"
        case ast.When():
            return f"when {expr(it.expr)}"
        case ast.Soft():
            return f"soft {lit(it.value)}"
        case ast.ForbidVia():
            return f"forbid via{_action_list(it.actions)} where {expr(it.pred)}"
        case ast.ForbidProvider():
            return f"forbid provider {it.provider.name}"
        case ast.ForbidAction():
            return f"forbid action {it.action.name}"
        case ast.RequireFor():
            return f"require {expr(it.pred)} for {_names(it.actions)}"
        case ast.RequireBefore():
            return f"require {expr(it.formula)} before {it.action.name}"
        case ast.RequireFact():
            return f"require {expr(it.formula)}"
        case ast.Limit():
            return f"limit {it.metric.name} {it.op} {lit(it.value)}"
        case ast.LimitCount():
            return f"limit {it.func.name}(via{_action_list(it.actions)} where {expr(it.pred)}) {it.op} {lit(it.value)}"
        case ast.Distinct():
            return f"distinct provider for {_names(it.actions)}"
    raise AssertionError(it)


def _test_item(it: ast.TestItem) -> str:
    match it:
        case ast.PlanStep():
            text = f"plan {it.intent.name}"
            if it.given is not None:
                inner = ", ".join(f"{g.name.name} = {lit(g.value)}" for g in it.given)
                text += " given { " + inner + " }" if inner else " given {}"
            if it.observe is not None:
                inner = ", ".join(_observation(o) for o in it.observe)
                text += " observe { " + inner + " }" if inner else " observe {}"
            return text
        case ast.ExpectFeasible():
            return "expect feasible"
        case ast.ExpectInfeasible():
            return "expect infeasible" + (f" because {_names(it.because)}" if it.because else "")
        case ast.ExpectVia():
            return f"expect via {it.provider.name} for {it.action.name}"
        case ast.ExpectNoVia():
            return f"expect no via{_action_list(it.actions)} where {expr(it.pred)}"
        case ast.ExpectStep():
            return ("expect step " if it.present else "expect no step ") + it.action.name
        case ast.ExpectMetric():
            return f"expect {it.metric.name} {it.op} {lit(it.value)}"
        case ast.ExpectBroken():
            return f"expect broken {it.policy.name}"
    raise AssertionError(it)


def _observation(o: ast.Observation) -> str:
    text = f"{o.subject.name} {o.word.name}"
    if o.attrs is not None:
        text += " " + _attrs_inline(o.attrs)
    return text


# ---- literals, as written ------------------------------------------------------------------------

#: While `format_file` runs: print literals as written. Other callers (explanations, policy test
#: reports) get canonical values, and the text as written only for a value the parser could not hold.
_VERBATIM: ContextVar[bool] = ContextVar("intento_fmt_verbatim", default=False)

# The grammar's value tokens (intento.lark), tried in its order of priority.
_STRING = r'"[^"\\\r\n]*+(?:\\.[^"\\\r\n]*+)*+"'
_MONEY = r"(-?[0-9]+(?:\.[0-9]+)?)[ \t]*([A-Z]{3})(?![A-Za-z0-9_])"
_DURATION = r"[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h|d)(?![A-Za-z0-9_])"
_NUMBER = r"-?[0-9]+(?:\.[0-9]+)?(?![A-Za-z0-9_])"
_NUMBER_TOKEN = re.compile(_NUMBER)
_MONEY_PARTS = re.compile(_MONEY)
_VALUE_TOKEN = re.compile(
    rf"[ \t\r\n\f]+|//[^\r\n]*|(?P<string>{_STRING})|(?P<money>{_MONEY})|(?P<duration>{_DURATION})|(?P<number>{_NUMBER})"
    r"|(?P<bool>(?:true|false)(?![A-Za-z0-9_]))|(?P<punct>[\[\],])"
)
_STRING_AFTER_LAYOUT = re.compile(_SKIP + "(" + _STRING + ")")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _unescape(body: str) -> str:
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def _same_value(a, b) -> bool:
    return _value_shape(a) == _value_shape(b)


def _string_at(text: str, pos: int, value: str) -> str:
    """The string literal after ``pos`` (past layout) as written, if it holds ``value``; else
    ``value`` quoted."""
    m = _STRING_AFTER_LAYOUT.match(text, pos)
    if m and _unescape(m.group(1)[1:-1]) == value:
        return m.group(1)
    return render_value(value)


def _value_tokens(text: str) -> list[tuple[str, str]] | None:
    """``text`` (one literal as written, a list with its comments included) as (kind, text)
    tokens, layout left out; None when something else is in it."""
    toks: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _VALUE_TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            return None
        if m.lastgroup is not None:
            tok = m.group()
            if m.lastgroup == "money":  # one space between an amount and its currency
                parts = _MONEY_PARTS.match(tok)
                tok = f"{parts.group(1)} {parts.group(2)}"
            toks.append((m.lastgroup, tok))
        pos = m.end()
    return toks


def _token_value(kind: str, tok: str):
    match kind:
        case "string":
            return _unescape(tok[1:-1])
        case "money":
            return parse_money(tok)
        case "duration":
            return parse_duration(tok)
        case "number":
            return Decimal(tok)
        case "bool":
            return tok == "true"
    raise AssertionError(kind)


def _written(toks: list[tuple[str, str]]):
    """(canonical text, value) of a literal's tokens; None if they are not exactly one literal."""
    stack: list[tuple[list[str], list]] = []
    done = None
    prev = None
    for kind, tok in toks:
        if done is not None:
            return None
        if kind == "punct":
            if tok == "[":
                if stack and prev not in ("[", ","):
                    return None
                stack.append(([], []))
            elif not stack:
                return None
            elif tok == ",":
                if prev in ("[", ","):
                    return None
            else:  # `]`, after a trailing comma or not
                texts, values = stack.pop()
                item = ("[" + ", ".join(texts) + "]", tuple(values))
                if stack:
                    stack[-1][0].append(item[0])
                    stack[-1][1].append(item[1])
                else:
                    done = item
            prev = tok
            continue
        if stack and prev not in ("[", ","):
            return None
        item = (tok, _token_value(kind, tok))
        if stack:
            stack[-1][0].append(item[0])
            stack[-1][1].append(item[1])
        elif done is None:
            done = item
        prev = tok
    return done if not stack else None


def literal_text(l: ast.Literal) -> str | None:
    """``l`` as written in its source (layout normalised: a list on one line, without its comments
    or a trailing comma; one space before a currency), or None when its span does not hold it."""
    span = l.span
    if span is None or span.source is None:
        return None
    toks = _value_tokens(span.source.text[span.start : span.end])
    written = _written(toks) if toks else None
    if written is None or not _same_value(written[1], l.value):
        return None
    return written[0]


def lit(l: ast.Literal) -> str:
    verbatim = _VERBATIM.get()
    if verbatim or _has_none(l.value):
        text = literal_text(l)
        if text is not None:
            return text
        if verbatim and _has_none(l.value):  # neither a value nor a text to print
            raise FormatError("a literal holds neither a value nor its text")
    return render_value(l.value)


_PREC = {ast.Or: 0, ast.And: 1, ast.Not: 2, ast.Compare: 3, ast.In: 3}


def expr(e: ast.Expr, need: int = 0) -> str:
    """An expression with the fewest parentheses that keep its structure."""
    prec = _PREC.get(type(e), 4)
    match e:
        case ast.Or():
            text = " or ".join(expr(x, 1) for x in e.items)
        case ast.And():
            text = " and ".join(expr(x, 2) for x in e.items)
        case ast.Not():
            text = "not " + expr(e.item, 2)
        case ast.Compare():
            text = f"{expr(e.left, 4)} {e.op} {expr(e.right, 4)}"
        case ast.In():
            text = f"{expr(e.left, 4)} in {expr(e.right, 4)}"
        case ast.Ref():
            text = e.name
        case ast.Literal():
            text = lit(e)
        case _:
            raise AssertionError(e)
    return f"({text})" if prec < need else text
