"""lark, loaded on demand: the LALR tables of the grammar, and two ways to run them.

Input: the text of a source. Output: either lark's tree (`parse_tree`, the reference path, with
positions propagated), or the AST built directly by a `_Builder` as the parser reduces
(`parse_direct`: no tree, no per-node meta; 15-30% less CPU than the tree and then the AST on
a 500-action project, see ``python -m benchmarks.cli_start``; lark's lexer is most of what is
left, so a file found in the project cache is what makes reading fast). Both run the same tables on the same tokens, so they accept the same
texts and raise the same lark errors; `parse_direct` computes every rule's position exactly as
lark's ``propagate_positions`` does (a node spans its first child's container to its last one's,
dropped keywords and punctuation included).

Importing this module imports lark; `intento.syntax._parser` imports it only when a file must be
parsed (not when the project cache holds it). The analysed grammar is itself cached (lark's
`Lark.save`), next to the project cache, so a new process does not rebuild the LALR tables.
"""

from __future__ import annotations

import hashlib
import os
import sys
from functools import lru_cache
from importlib import resources

import lark
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

__all__ = ["Token", "Tree", "UnexpectedCharacters", "UnexpectedInput", "UnexpectedToken", "lark_parser", "parse_tree", "parse_direct", "Fallback", "TooDeep"]


class _Meta:
    """lark's `Meta` (a tree node's position) with slots: about 120 bytes, not a 400-byte dict,
    for each node of the tree (a hostile file may hold one node per two characters)."""

    __slots__ = (
        "empty", "line", "column", "start_pos", "end_line", "end_column", "end_pos",
        "container_line", "container_column", "container_start_pos",
        "container_end_line", "container_end_column", "container_end_pos",
        "orig_expansion", "match_tree",
    )  # fmt: skip

    def __init__(self) -> None:
        self.empty = True


class _Tree(Tree):
    """lark's tree, with the slotted `_Meta` (lark reads and sets a meta only through `meta`)."""

    @property
    def meta(self) -> _Meta:
        if self._meta is None:
            self._meta = _Meta()
        return self._meta


_OPTIONS = dict(parser="lalr", lexer="basic", propagate_positions=True, maybe_placeholders=False)


def _grammar_cache_file(grammar: str) -> str | None:
    from intento._cache import cache_dir

    folder = cache_dir()
    if folder is None:
        return None
    h = hashlib.sha256(f"{lark.__version__}\0{sorted(_OPTIONS.items())}\0{sys.version_info[:2]}\0".encode())
    h.update(grammar.encode("utf-8"))
    return os.path.join(folder, "grammar", f"{h.hexdigest()}.lark.pickle")


@lru_cache(maxsize=1)
def lark_parser() -> Lark:
    """The grammar, analysed: loaded from the grammar cache when it holds it, else built (and kept
    there: written to a temporary file and renamed, so a reader never sees half of it)."""
    grammar = resources.files("intento.syntax").joinpath("intento.lark").read_text(encoding="utf-8")
    path = _grammar_cache_file(grammar)
    from intento._cache import _own

    if path is not None and _own(path):  # lark's saved tables are a pickle: only our own file
        try:
            with open(path, "rb") as fh:
                inst = Lark.__new__(Lark)
                inst._load(fh, tree_class=_Tree)
            return inst
        except Exception:  # absent, unreadable or corrupt: build it again
            pass
    inst = Lark(grammar, tree_class=_Tree, **_OPTIONS)
    if path is not None:
        from pathlib import Path

        from intento._cache import write_quietly

        write_quietly(Path(path), lambda fh: inst.save(fh, exclude_options=("tree_class",)))
    return inst


def parse_tree(text: str) -> Tree:
    """lark's tree of ``text`` (positions propagated); raises lark's `UnexpectedInput`."""
    return lark_parser().parse(text)


# -- the direct path ------------------------------------------------------------------------------


class Fallback(Exception):
    """Input the direct path leaves to lark (a syntax error): the reference path reports it."""


class TooDeep(Fallback):
    """Nesting past the limit: the reference path reports where."""


class _Pos:
    """What the builder reads of a node's position (lark's `Meta` attributes it uses)."""

    __slots__ = ("empty", "start_pos", "line", "column", "end_pos", "end_line", "end_column")


@lru_cache(maxsize=1)
def _tables():
    """The parse table as plain tuples, and what the lexer needs.

    For each state and terminal: ``(True, next_state)`` to shift, or ``(False, plan)`` to reduce,
    where a plan says how lark's tree builder shapes the rule's node: how many values it pops, the
    rule's name (for the goto), the node's name (None for an inlined ``_rule``), which children
    are kept (and which of those are inlined rules whose children are spliced in; None: all, as
    they are), and whether a lone child stands for the node (a ``?rule``)."""
    from lark.lexer import UnlessCallback
    from lark.parsers.lalr_analysis import Reduce

    lk = lark_parser()
    table = lk.parser.parser.parser.parse_table
    plans: dict = {}

    def plan(rule):
        if rule not in plans:
            keep_all = rule.options.keep_all_tokens
            include = tuple(
                (i, (not sym.is_term) and sym.name.startswith("_"))
                for i, sym in enumerate(rule.expansion)
                if keep_all or not (sym.is_term and sym.filter_out)
            )
            if len(include) == len(rule.expansion) and not any(inl for _, inl in include):
                include = None
            name = str(rule.alias or rule.origin.name)
            inlined = rule.alias is None and name.startswith("_")
            expand1 = bool(rule.options.expand1) and not rule.alias
            # A `?rule` reduced from one kept child is that child, container and all: the value on
            # the stack stays as it is.
            same = expand1 and len(rule.expansion) == 1 and include is None and not inlined
            plans[rule] = (len(rule.expansion), rule.origin.name, None if inlined else name, include, expand1, same)
        return plans[rule]

    states = {
        state: {tok: ((False, plan(arg)) if action is Reduce else (True, arg)) for tok, (action, arg) in actions.items()}
        for state, actions in table.states.items()
    }
    lexer = lk.parser.lexer
    scanner = lexer.scanner
    retype = {}
    for type_, cb in lexer.callback.items():
        if not isinstance(cb, UnlessCallback):
            return None  # a lexer the direct path does not know: always use lark's
        retype[type_] = cb.scanner.fullmatch
    # One regex for all the terminals (lark splits it only past re's limits): matched in the
    # parse loop itself, without a call per token; else lark's scanner does the matching.
    one = scanner._mres[0] if len(scanner._mres) == 1 else None
    return (states, table.start_states["start"], table.end_states["start"], scanner.match, one, frozenset(lexer.ignore_types),
            frozenset(lexer.newline_types), retype)


class _Text:
    """What lark's `Scanner.match` reads of a text (its `TextSlice`)."""

    __slots__ = ("text", "end")

    def __init__(self, text: str):
        self.text = text
        self.end = len(text)


def parse_direct(text: str, builder, expr_rules: frozenset, max_nesting: int):
    """The value the builder makes of the start rule, built bottom-up while the parser reduces
    (lark's lexer tables and LALR tables, driven here without a tree).

    A value on the parser's stack is a token, or a tuple ``(value, height, start, line, column,
    end, end_line, end_column, children)``: the node's (or, for a rule that stands for its lone
    child, that child's) value, its nesting height, its container's position (``start`` is None
    for a node that covers no token) and, for an inlined rule, its kept children. Raises
    `TooDeep` when nesting passes ``max_nesting``, and `Fallback` on anything else lark should
    report (a syntax error: the caller takes the reference path, which raises lark's error)."""
    tables = _tables()
    if tables is None:
        raise Fallback()
    states, state0, end_state, match, one, ignore, newline_types, retype = tables
    methods: dict[str, object] = {}

    def reduce(plan, s):
        name, include, expand1 = plan[2], plan[3], plan[4]
        # The container: from the first child that covers text to the last one (lark's
        # PropagatePositions, which sees the children before any are dropped).
        first = last = None
        for c in s:
            if c.__class__ is tuple:
                if c[2] is not None:
                    first = c
                    break
            else:
                first = c
                break
        if first is not None:
            for c in reversed(s):
                if c.__class__ is tuple:
                    if c[2] is not None:
                        last = c
                        break
                else:
                    last = c
                    break
        height = 0
        kids = []
        if include is None:
            for c in s:
                if c.__class__ is tuple:
                    kids.append(c[0])
                    if c[1] > height:
                        height = c[1]
                else:
                    kids.append(c)
        else:
            for i, inline in include:
                c = s[i]
                if inline:
                    if kids:
                        kids.extend(c[8])
                    else:
                        # The inlined rule's own list, taken over (its tuple is consumed here):
                        # a left-recursive `(decl)*` grows one list, never copies it per item.
                        kids = c[8]
                    if c[1] > height:
                        height = c[1]
                elif c.__class__ is tuple:
                    kids.append(c[0])
                    if c[1] > height:
                        height = c[1]
                else:
                    kids.append(c)
        if first is None:
            pos = (None, 0, 0, 0, 0, 0)
        else:
            if first.__class__ is tuple:
                start, line, column = first[2], first[3], first[4]
            else:
                start, line, column = first.start_pos, first.line, first.column
            if last.__class__ is tuple:
                end, end_line, end_column = last[5], last[6], last[7]
            else:
                end, end_line, end_column = last.end_pos, last.end_line, last.end_column
            pos = (start, line, column, end, end_line, end_column)
        if name is None:  # an inlined `_rule`: its children go to its parent
            return (None, height, *pos, kids)
        if expand1 and len(kids) == 1:  # `?rule` with one child: the child stands for it
            return (kids[0], height, *pos, None)
        meta = _Pos()
        if pos[0] is None:
            meta.empty = True
        else:
            meta.empty = False
            meta.start_pos, meta.line, meta.column, meta.end_pos, meta.end_line, meta.end_column = pos
        method = methods.get(name)
        if method is None:
            method = methods[name] = getattr(builder, name)
        if name in expr_rules:
            height += 1
            if height > max_nesting:
                raise TooDeep()
        return (method(meta, kids), height, *pos, None)

    def feed(type_, token, is_end=False):
        while True:
            try:
                shift, arg = states[state_stack[-1]][type_]
            except KeyError:
                raise Fallback() from None
            if shift:
                if is_end:
                    raise Fallback()
                state_stack.append(arg)
                value_stack.append(token)
                return None
            size = arg[0]
            if arg[5] and value_stack[-1].__class__ is tuple:
                del state_stack[-1]
                state_stack.append(states[state_stack[-1]][arg[1]][1])
                continue
            if size:
                s = value_stack[-size:]
                del state_stack[-size:]
                del value_stack[-size:]
            else:
                s = []
            value = reduce(arg, s)
            shift, new_state = states[state_stack[-1]][arg[1]]
            state_stack.append(new_state)
            value_stack.append(value)
            if is_end and new_state == end_state:
                return value

    state_stack = [state0]
    value_stack: list = []
    src = _Text(text)
    n = len(text)
    pos, line, line_start = 0, 1, 0
    kinds: dict[tuple[str, str], str] = {}  # (type, value) -> type after keyword retyping
    last = None
    new_str = str.__new__
    one_match = one.match if one is not None else None
    while pos < n:
        if one_match is not None:
            m = one_match(text, pos)
            if m is None:
                raise Fallback()
            value, type_ = m.group(0), m.lastgroup
        else:
            m = match(src, pos)
            if not m:
                raise Fallback()
            value, type_ = m
        end = pos + len(value)
        column = pos - line_start + 1
        if type_ in newline_types:
            k = value.count("\n")
            end_line = line + k
            end_line_start = pos + value.rindex("\n") + 1 if k else line_start
        else:
            end_line, end_line_start = line, line_start
        if type_ not in ignore:
            if type_ in retype:
                key = (type_, value)
                kind = kinds.get(key)
                if kind is None:
                    kind = kinds[key] = retype[type_](value) or type_
                type_ = kind
            # lark's Token, made as its constructor makes it without the constructor's argument
            # handling (a tenth of a parse: one call per token)
            last = new_str(Token, value)
            last.type, last.start_pos, last.value, last.line, last.column = type_, pos, value, line, column
            last.end_line, last.end_column, last.end_pos = end_line, end - end_line_start + 1, end
            feed(type_, last)
        pos, line, line_start = end, end_line, end_line_start
    end_token = Token.new_borrow_pos("$END", "", last) if last is not None else Token("$END", "", 0, 1, 1)
    result = feed("$END", end_token, True)
    return result[0]
