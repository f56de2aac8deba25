"""Completion: what may be written at the cursor.

Input: the text before the cursor (which is usually not valid yet, so it is read with a small
tokenizer, not the parser) and the project's `Index`. Output: completion items, each replacing
the partial word at the cursor (dotted names included).

The context is the innermost open block (a declaration, a `via P { ... }` option, a test's
`given { ... }` or `observe { ... }`, a `[ ... ]` action list), the item being written (the last
item keyword of that block: `requires`, `forbid`, `expect`, ...) and the word before the
cursor. From them: names in scope (providers after `via` or `forbid provider`, actions after
`undo`, `for`, `before`, `step` or in `[...]`, facts in fact formulas, given names in `when`
guards and test `given`s, intents after `plan`, policies after `broken` or `because`), the
keywords that may come next, attribute names in attribute blocks and predicates, and after a
number the duration units (`ms s m h d`) and currency codes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lsprotocol import types as lsp

from intento.check._declarations import _ATTR_TYPES
from intento.lsp._index import Index
from intento.lsp._text import LineIndex
from intento.spec import GIVEN_TYPES, METRICS
from intento.syntax import ast
from intento.values import _UNIT_MS

DECL_KEYWORDS = ("provider", "action", "intent", "policy", "test")
ITEM_KEYWORDS = {
    "action": ("requires", "achieves", "undo", "timeout", "external", "idempotent", "via"),
    "intent": ("given", "goal", "deadline", "budget", "minimize"),
    "policy": ("owner", "when", "soft", "forbid", "require", "limit", "distinct"),
    "test": ("plan", "expect"),
}
EXPECT_WORDS = ("feasible", "infeasible", "via", "no", "step", "cost", "latency", "reliability", "broken")
STATUS_WORDS = ("up", "down", "degraded")
_UNIT_WORDS = {"ms": "milliseconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
#: The duration units the language reads (`intento.values`), smallest first.
UNITS = {u: _UNIT_WORDS.get(u, "duration unit") for u in sorted(_UNIT_MS, key=_UNIT_MS.get)}
#: Any three upper-case letters are a currency (the grammar's MONEY token); these are offered, the
#: project's own currency first.
CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "CNY", "SEK", "NOK", "DKK", "PLN", "INR", "BRL")
PROVIDER_ATTRS = ("region", "tags", "capacity", "cost", "latency", "reliability", "learn")
OPTION_ATTRS = ("cost", "latency", "reliability", "region", "tags", "learn")
OBSERVATION_ATTRS = ("latency", "cost", "reliability")
#: What a predicate may read whatever the project declares: the attributes the checker types
#: (`check._declarations`: every option's `provider`, `cost`, `latency`, `reliability`, the fixed
#: `region` and `tags`, and the engine's `observed_*`).
PREDICATE_ATTRS = tuple(_ATTR_TYPES)
LIMIT_WORDS = ("cost", "latency", "reliability", "count")
#: Most items returned; past it the list is marked incomplete.
MAX_ITEMS = 1_000
#: Most characters before the cursor that are read for its context.
MAX_CONTEXT_CHARS = 200_000

_TOKEN = re.compile(
    r"""(?P<comment>//[^\n\r]*)
      | (?P<string>"(?:[^"\\\n\r]|\\.)*(?P<closed>")?)
      | (?P<number>-?[0-9]+(?:\.[0-9]+)?(?:[ \t]*[A-Z]{3}(?![A-Za-z0-9_])|(?:ms|s|m|h|d)(?![A-Za-z0-9_]))?)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\.?)
      | (?P<op>==|!=|<=|>=|[{}\[\]()<>,;:=+*])
      | (?P<space>\s+)
      | (?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)
_DECL_START = re.compile(r"(?m)^(?:provider|action|intent|policy|test)\b")
_PARTIAL = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")
_NUMBER_UNIT = re.compile(r"(?<![A-Za-z0-9_.])(-?[0-9]+(?:\.[0-9]+)?)([A-Za-z]{0,3})\Z")
_NUMBER_SPACE = re.compile(r"(?<![A-Za-z0-9_.])-?[0-9]+(?:\.[0-9]+)?[ \t]+([A-Z]{0,3})\Z")

_KIND = {
    "provider": lsp.CompletionItemKind.Module,
    "action": lsp.CompletionItemKind.Function,
    "intent": lsp.CompletionItemKind.Interface,
    "policy": lsp.CompletionItemKind.Event,
    "fact": lsp.CompletionItemKind.Constant,
    "given": lsp.CompletionItemKind.Variable,
    "attribute": lsp.CompletionItemKind.Field,
    "keyword": lsp.CompletionItemKind.Keyword,
    "unit": lsp.CompletionItemKind.Unit,
    "currency": lsp.CompletionItemKind.Unit,
    "type": lsp.CompletionItemKind.TypeParameter,
}


@dataclass
class _Tok:
    kind: str
    text: str


@dataclass
class _Frame:
    kind: str  # a declaration keyword, option, obs_attrs, observe, given_values, block, [ or (
    tokens: list[_Tok]  # the frame's own tokens (not those of frames inside it)
    opener: str | None = None  # for `[`: the word before it


@dataclass
class Context:
    frame: _Frame | None
    decl: _Frame | None  # the declaration's frame
    prev: str | None
    prev2: str | None
    prev_kind: str | None
    item: str | None  # the item keyword being written


def _tokens(text: str) -> tuple[list[_Tok], bool]:
    """The tokens of ``text`` (no spaces, no comments), and whether it ends inside a string or a
    comment (no completion there)."""
    out: list[_Tok] = []
    inside = False
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        inside = False
        if kind == "space":
            continue
        if kind == "comment":
            inside = m.end() == len(text)
            continue
        tok = m.group()
        if kind == "string":
            inside = m.end() == len(text) and m.group("closed") is None
        out.append(_Tok(kind, tok))
    return out, inside


def context(before: str) -> Context | None:
    """The context of the cursor at the end of ``before`` (None inside a string or a comment)."""
    start = 0
    cut = max(0, len(before) - MAX_CONTEXT_CHARS)
    for m in _DECL_START.finditer(before, cut):
        start = m.start()
    toks, inside = _tokens(before[start:])
    if inside:
        return None
    stack: list[_Frame] = []
    top: list[_Tok] = []
    for i, t in enumerate(toks):
        own = stack[-1].tokens if stack else top
        if t.text == "{":
            kind = "block"
            enclosing = next((f for f in reversed(stack) if f.kind in ITEM_KEYWORDS or f.kind == "provider"), None)
            if not stack:
                kind = next((x.text for x in reversed(top) if x.text in DECL_KEYWORDS), "block")
            elif len(own) >= 2 and own[-2].text == "via":
                kind = "option"
            elif own and own[-1].text == "given" and enclosing is not None and enclosing.kind == "test":
                kind = "given_values"
            elif own and own[-1].text == "observe":
                kind = "observe"
            elif stack[-1].kind == "observe":
                kind = "obs_attrs"
            own.append(t)
            stack.append(_Frame(kind, []))
            continue
        if t.text in ("[", "("):
            own.append(t)
            stack.append(_Frame(t.text, [], own[-2].text if len(own) >= 2 else None))
            continue
        if t.text in ("}", "]", ")"):
            want = {"}": None, "]": "[", ")": "("}[t.text]
            # Pop to the matching opener; a stray closer closes nothing.
            for j in range(len(stack) - 1, -1, -1):
                k = stack[j].kind
                if (want is None and k not in ("[", "(")) or k == want:
                    del stack[j:]
                    break
                if want is not None and k not in ("[", "("):
                    break
            (stack[-1].tokens if stack else top).append(t)
            if not stack and t.text == "}":
                top = []
            continue
        own.append(t)
    frame = stack[-1] if stack else None
    decl = next((f for f in reversed(stack) if f.kind in ITEM_KEYWORDS or f.kind == "provider"), None)
    # The word before the cursor: in the frame itself, or the opener of a frame just opened.
    own = frame.tokens if frame else top
    flat = own if own else ([_Tok("op", frame.kind if frame.kind in ("[", "(") else "{")] if frame else [])
    prev = flat[-1].text if flat else None
    prev_kind = flat[-1].kind if flat else None
    prev2 = flat[-2].text if len(flat) >= 2 else (None if own or frame is None else _before_opener(stack))
    item = None
    if decl is not None:
        words = ITEM_KEYWORDS.get(decl.kind, ())
        item = next((t.text for t in reversed(decl.tokens) if t.text in words), None)
    return Context(frame, decl, prev, prev2, prev_kind, item)


def _before_opener(stack: list[_Frame]) -> str | None:
    if len(stack) >= 2:
        toks = stack[-2].tokens
        return toks[-2].text if len(toks) >= 2 else None
    return None


# ---- the items ------------------------------------------------------------------------------------


class _Items:
    def __init__(self, lines: LineIndex, start: int, end: int, encoding: str):
        self.range = lines.range(start, end, encoding)
        self.items: list[lsp.CompletionItem] = []
        self.seen: set[str] = set()

    def add(self, label: str, kind: str, detail: str = "", sort: str = "5", text: str | None = None, preselect: bool = False) -> None:
        if label in self.seen or len(self.items) > MAX_ITEMS:
            return
        self.seen.add(label)
        self.items.append(
            lsp.CompletionItem(
                label=label,
                kind=_KIND.get(kind),
                detail=detail or kind,
                sort_text=f"{sort}{label}",
                filter_text=text or label,
                text_edit=lsp.TextEdit(range=self.range, new_text=text or label),
                preselect=preselect or None,
            )
        )

    def words(self, words, detail: str = "keyword", sort: str = "3") -> None:
        for w in words:
            self.add(w, "keyword" if detail == "keyword" else detail, detail, sort)

    def names(self, index: Index, kind: str, sort: str = "1", detail: str | None = None) -> None:
        for n in index.names(kind):
            if index.decl(kind, n) is not None or kind in ("fact", "given", "attribute"):
                self.add(n, kind, detail or kind, sort)


def complete(index: Index, lines: LineIndex, offset: int, encoding: str) -> lsp.CompletionList:
    text = lines.text
    offset = max(0, min(offset, len(text)))
    before = text[:offset]
    line_start = max(before.rfind("\n"), before.rfind("\r")) + 1
    line = before[line_start:]

    m = _NUMBER_UNIT.search(line)
    if m and (m.group(2) == "" or any(u.startswith(m.group(2)) for u in UNITS) or m.group(2).isupper()):
        ctx = context(before[: offset - len(m.group(0))])
        if ctx is not None:
            out = _Items(lines, offset - len(m.group(0)), offset, encoding)
            _numbers(out, index, ctx, m.group(1), m.group(2))
            return lsp.CompletionList(is_incomplete=False, items=out.items)
    m = _NUMBER_SPACE.search(line)
    if m:
        out = _Items(lines, offset - len(m.group(1)), offset, encoding)
        _currencies(out, index)
        return lsp.CompletionList(is_incomplete=False, items=out.items)

    partial = _PARTIAL.search(line)
    start = offset - (len(partial.group()) if partial else 0)
    if partial and start > 0 and text[start - 1].isdigit():
        return lsp.CompletionList(is_incomplete=False, items=[])
    ctx = context(text[:start])
    if ctx is None:
        return lsp.CompletionList(is_incomplete=False, items=[])
    out = _Items(lines, start, offset, encoding)
    _fill(out, index, ctx)
    return lsp.CompletionList(is_incomplete=len(out.items) > MAX_ITEMS, items=out.items[:MAX_ITEMS])


def _currencies(out: _Items, index: Index, number: str = "") -> None:
    sep = " " if number else ""
    if index.currency:
        out.add(f"{number}{sep}{index.currency}", "currency", "the project's currency", "0", preselect=True)
    for c in CURRENCIES:
        out.add(f"{number}{sep}{c}", "currency", "currency", "2")


def _numbers(out: _Items, index: Index, ctx: Context, number: str, letters: str) -> None:
    """After a number: duration units and currencies, as the item allows."""
    what = ctx.prev
    if what in ("capacity", "soft", "reliability", "*", "observed_reliability", "observed_steps", "count"):
        return
    durations = what not in ("cost", "budget")
    money = what not in ("latency", "timeout", "deadline", "observed_latency")
    if durations and not letters.isupper():
        for u, word in UNITS.items():
            out.add(f"{number}{u}", "unit", word, "1")
    if money and (not letters or letters.isupper()):
        _currencies(out, index, number)


def _fill(out: _Items, index: Index, ctx: Context) -> None:
    frame, prev = ctx.frame, ctx.prev
    value_end = ctx.prev_kind in ("string", "number") or prev in ("true", "false", "]", "}")
    if frame is None:
        if prev in DECL_KEYWORDS:
            return  # a new name
        out.words(DECL_KEYWORDS)
        return
    kind = frame.kind
    if kind in ("option", "obs_attrs") or (kind == "provider" and frame is ctx.decl):
        if prev in ("{", ";") or value_end:
            attrs = {"option": OPTION_ATTRS, "obs_attrs": OBSERVATION_ATTRS, "provider": PROVIDER_ATTRS}[kind]
            for a in attrs:
                out.add(a, "attribute", "attribute", "1")
            if kind != "obs_attrs":
                for a in index.set_attributes():
                    if a not in ("provider", "capacity") or a in attrs:
                        out.add(a, "attribute", "attribute", "2")
        elif prev == "learn":
            out.words(("true", "false"))
        return
    if kind == "observe":
        if prev == "fact":
            out.names(index, "fact")
        elif prev in ("{", ",", ";", "}"):
            out.names(index, "provider")
            out.words(("fact",))
        elif ctx.prev_kind == "name":
            out.words(STATUS_WORDS, sort="1")
        return
    if kind == "given_values":
        if prev in ("{", ",", ";") or value_end:
            intent = _planned_intent(ctx)
            for n, param in index.given_params_of(intent) if intent else ():
                out.add(n, "given", f"given {n}: {param.type.name}", "1")
        elif ctx.prev_kind == "name":
            out.words(("=",))
        return
    if kind == "[":
        if frame.opener == "via" and (prev in ("[", ",")):
            out.names(index, "action")
        return
    _decl_item(out, index, ctx)


def _planned_intent(ctx: Context) -> str | None:
    toks = ctx.decl.tokens if ctx.decl else []
    for i, t in enumerate(toks):
        if t.text == "plan" and i + 1 < len(toks) and toks[i + 1].kind == "name":
            return toks[i + 1].text
    return None


def _item_has(ctx: Context, word: str) -> bool:
    """Whether ``word`` appears in the item being written (after its keyword)."""
    toks = ctx.decl.tokens if ctx.decl else []
    for t in reversed(toks):
        if t.text == word:
            return True
        if t.text == ctx.item:
            return False
    return False


def _decl_item(out: _Items, index: Index, ctx: Context) -> None:
    prev, prev2, item = ctx.prev, ctx.prev2, ctx.item
    decl_kind = ctx.decl.kind if ctx.decl else None
    items = ITEM_KEYWORDS.get(decl_kind or "", ())
    operand = prev in ("and", "or", "not", "(")
    if prev in ("{", ";") or prev is None:
        out.words(items, sort="1")
        return
    if prev == "(" and prev2 == "count":
        out.words(("via",), sort="1")
        return
    if prev == "via":
        if prev2 in ("forbid", "no", "("):
            out.words(("where",), sort="1")
        else:
            out.names(index, "provider")
        return
    if prev == "forbid":
        out.words(("via", "provider", "action"), sort="1")
    elif prev == "provider" and prev2 == "forbid":
        out.names(index, "provider")
    elif prev == "provider" and prev2 == "distinct":
        out.words(("for",), sort="1")
    elif (prev == "action" and prev2 == "forbid") or prev in ("undo", "before", "step", "for"):
        out.names(index, "action")
    elif prev == "distinct":
        out.words(("provider",), sort="1")
    elif prev == "plan":
        out.names(index, "intent")
    elif prev == "broken":
        soft = [d.name for d in index.all_decls("policy") if any(isinstance(it, ast.Soft) for it in d.node.items)]
        for n in soft:
            out.add(n, "policy", "soft policy", "0")
        out.names(index, "policy", "2")
    elif prev == "because" or (prev == "," and _item_has(ctx, "because")):
        out.names(index, "policy")
        out.names(index, "provider", "2")
        out.words(("goal", "budget", "deadline"))
    elif prev == "expect":
        out.words(EXPECT_WORDS, sort="1")
    elif prev == "no" and decl_kind == "test":
        out.words(("via", "step"), sort="1")
    elif prev == "infeasible":
        out.words(("because",), sort="1")
        out.words(items)
    elif prev in ("minimize", "then", "+", "*"):
        out.words(METRICS, sort="1")
    elif prev == "limit":
        out.words(LIMIT_WORDS, sort="1")
    elif prev == ":" and item == "given":
        out.words(GIVEN_TYPES, detail="type", sort="1")
    elif item == "given" and prev2 == ":" and prev in GIVEN_TYPES:
        out.words(("secret",), sort="1")
        out.words(items)
    elif prev == "achieves" or (prev == "," and item == "achieves"):
        out.names(index, "fact")
    elif prev == "," and item in ("require", "distinct") and _item_has(ctx, "for"):
        out.names(index, "action")
    elif prev in ("requires", "goal") or (operand and item in ("requires", "goal")):
        out.names(index, "fact")
        if operand and prev != "not":
            out.words(("not",), sort="4")
    elif prev == "when" or (operand and item == "when"):
        out.names(index, "given")
        out.words(("not",), sort="4")
    elif prev == "where" or (operand and (item in ("forbid", "limit") or (item == "expect" and _item_has(ctx, "where")))):
        for a in PREDICATE_ATTRS:
            out.add(a, "attribute", "attribute", "1")
        out.names(index, "attribute", "2")
        out.words(("not",), sort="4")
    elif prev == "require" or (operand and item == "require"):
        out.names(index, "fact")
        for a in PREDICATE_ATTRS:
            out.add(a, "attribute", "attribute", "2")
        out.names(index, "attribute", "2")
        out.words(("not",), sort="4")
    elif prev in ("owner", "soft", "timeout", "deadline", "budget", "given", "=", "==", "!=", "<", "<=", ">", ">=", "in", "undo"):
        return  # a value or a new name comes next
    else:
        # After a complete operand or item: what may follow it.
        if item in ("requires", "goal", "when", "require", "forbid", "limit") or (item == "expect" and _item_has(ctx, "where")):
            out.words(("and", "or"), sort="2")
        if item == "require" and not _item_has(ctx, "for") and not _item_has(ctx, "before"):
            out.words(("for", "before"), sort="2")
        if item == "expect" and decl_kind == "test":
            out.words(("because",) if prev == "infeasible" else ())
        out.words(items, sort="3")

