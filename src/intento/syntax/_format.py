"""The formatter: AST (with its source's comments) to canonical text.

Input: an `ast.File` from `parse`. Output: text that parses back to an equal AST, and formats to
itself (idempotent). Layout: one declaration per block, a blank line between declarations, two
spaces of indentation, one item per line, `via` options and `observe`/`given` blocks on one line.

Comments are kept. A comment on its own line stays on its own line before the item that follows
it; a comment after code stays at the end of the line that item ends on; a comment inside an item
that is printed on one line (a `via` block written over several lines) moves to its own line just
before that item.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from intento.diagnostics import Source
from intento.syntax import ast
from intento.values import format_decimal, render_value

INDENT = "  "
_HEADER_END = re.compile(r'\s*(?:"(?:\\.|[^"\\\n])*")?\s*\{')


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
        self.pending: list[_Comment] = []
        for off, body in comments:
            line_start = text.rfind("\n", 0, off) + 1
            line = text.count("\n", 0, off) + 1
            prev_end = line_start - 1
            prev_start = text.rfind("\n", 0, max(prev_end, 0)) + 1
            blank_before = line > 1 and text[prev_start:prev_end].strip() == ""
            self.pending.append(_Comment(off, body.rstrip(), line, text[line_start:off].strip() != "", blank_before))
        self.lines: list[str] = []

    def _line_of(self, offset: int) -> int:
        return self.source.text.count("\n", 0, offset) + 1

    def flush(self, before: int, depth: int) -> None:
        """Emit, on their own lines, every pending comment that starts before ``before``."""
        while self.pending and self.pending[0].offset < before:
            c = self.pending.pop(0)
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
            self.pending.pop(0)
            self.lines.append(INDENT * depth + c.text)
        line = INDENT * depth + text
        if self.pending and self.pending[0].trailing:
            c = self.pending[0]
            # A comment after code belongs to the last item before it on its line.
            if c.line == self._line_of(max(start, end - 1)) and self.source.text[end : c.offset].strip(" \t;") == "":
                line += " " + self.pending.pop(0).text
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
    out = _Out(source, f.comments)
    for i, decl in enumerate(f.decls):
        if i:
            out.blank()
        _decl(out, decl)
    return out.finish()


def _block(out: _Out, header: str, decl, items, render) -> None:
    start, end = decl.span.start, decl.span.end
    inner_comments = any(start < c.offset < end - 1 for c in out.pending)
    if not items and not inner_comments:
        out.emit(header + " {}", 0, start, end)
        return
    name_span = getattr(decl.name, "span", None)  # a test's name is a plain string
    m = _HEADER_END.match(out.source.text, name_span.end if name_span else start + len("test"))
    out.emit(header + " {", 0, start, m.end() if m else start + 1)
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
            title = f" {render_value(decl.title)}" if decl.title is not None else ""
            _block(out, f"policy {decl.name.name}{title}", decl, decl.items, _policy_item)
        case ast.TestDecl():
            _block(out, f"test {render_value(decl.name)}", decl, decl.items, _test_item)


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
    return (f"{format_decimal(t.weight)} * " if t.weight is not None else "") + t.metric.name


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


def lit(l: ast.Literal) -> str:
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
