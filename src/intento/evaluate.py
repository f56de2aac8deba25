"""Pure evaluation of expressions: predicates over option attributes, guards over a context,
fact formulas over a set of facts or over fact times.

Input: AST expressions and plain values. Output: booleans or times. No solver, no I/O.

Missing values (an option without the attribute a predicate reads) compare as *no value*:
``==``, ordering and ``in`` are false, ``!=`` is true (docs/language.md, "Missing attributes").
"""

from __future__ import annotations

from decimal import Decimal
from typing import Callable, Mapping

from intento.syntax import ast
from intento.values import Duration, Money

_MISSING = object()

#: The ordering comparisons of `limit` and `expect`, on numbers or on solver expressions alike.
COMPARE = {
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "==": lambda a, b: a == b,
}
#: `reliability OP v` holds exactly when `sum(-ln r) FLIP[OP] -ln v` does.
FLIP = {"<=": ">=", "<": ">", ">=": "<=", ">": "<", "==": "=="}


def _comparable(v):
    match v:
        case Money():
            return v.amount
        case Duration():
            return v.ms
        case bool():
            return v
        case int():
            return Decimal(v)
    return v


def _compare(op: str, left, right) -> bool:
    if left is _MISSING or right is _MISSING:
        return op == "!="
    l, r = _comparable(left), _comparable(right)
    if type(l) is not type(r):
        return op == "!="
    if op == "==":
        return l == r
    if op == "!=":
        return l != r
    if isinstance(l, (str, bool, tuple)):
        return False
    return {"<": l < r, "<=": l <= r, ">": l > r, ">=": l >= r}[op]


def evaluate(e: ast.Expr, lookup: Callable[[str], object]) -> bool:
    """A predicate or guard; ``lookup(name)`` returns a value or `MISSING`."""
    match e:
        case ast.And():
            return all(evaluate(x, lookup) for x in e.items)
        case ast.Or():
            return any(evaluate(x, lookup) for x in e.items)
        case ast.Not():
            return not evaluate(e.item, lookup)
        case ast.Compare():
            return _compare(e.op, _value(e.left, lookup), _value(e.right, lookup))
        case ast.In():
            container = _value(e.right, lookup)
            item = _value(e.left, lookup)
            if container is _MISSING or item is _MISSING or not isinstance(container, tuple):
                return False
            return any(_compare("==", item, x) for x in container)
        case ast.Ref():
            return lookup(e.name) is True
        case ast.Literal():
            return e.value is True
    raise AssertionError(f"not a predicate: {e!r}")


def _value(e: ast.Expr, lookup):
    match e:
        case ast.Literal():
            return e.value
        case ast.Ref():
            return lookup(e.name)
    raise AssertionError(f"not a value: {e!r}")


MISSING = _MISSING


def attr_lookup(attrs: Mapping[str, object]) -> Callable[[str], object]:
    return lambda name: attrs.get(name, _MISSING)


def reads(e: ast.Expr | None) -> set[str]:
    """Every name an expression reads."""
    match e:
        case None:
            return set()
        case ast.And() | ast.Or():
            return set().union(*(reads(x) for x in e.items))
        case ast.Not():
            return reads(e.item)
        case ast.Compare() | ast.In():
            return reads(e.left) | reads(e.right)
        case ast.Ref():
            return {e.name}
    return set()


def formula_facts(e: ast.Expr | None) -> set[str]:
    return reads(e)


def formula_holds(e: ast.Expr | None, facts: set[str] | frozenset[str]) -> bool:
    """A fact formula over a set of true facts (None: no requirement)."""
    match e:
        case None:
            return True
        case ast.Ref():
            return e.name in facts
        case ast.And():
            return all(formula_holds(x, facts) for x in e.items)
        case ast.Or():
            return any(formula_holds(x, facts) for x in e.items)
    raise AssertionError(f"not a fact formula: {e!r}")


INF = float("inf")


def formula_time(e: ast.Expr | None, fact_time: Mapping[str, float]) -> float:
    """The earliest time a fact formula holds, given when each fact becomes true (inf: never)."""
    match e:
        case None:
            return 0
        case ast.Ref():
            return fact_time.get(e.name, INF)
        case ast.And():
            return max(formula_time(x, fact_time) for x in e.items)
        case ast.Or():
            return min(formula_time(x, fact_time) for x in e.items)
    raise AssertionError(f"not a fact formula: {e!r}")


def formula_json(e: ast.Expr | None) -> object:
    """A fact formula as plain JSON (None | "fact" | {"and": [...]} | {"or": [...]}), for engines
    that must not import the AST (Temporal workflows)."""
    match e:
        case None:
            return None
        case ast.Ref():
            return e.name
        case ast.And():
            return {"and": [formula_json(x) for x in e.items]}
        case ast.Or():
            return {"or": [formula_json(x) for x in e.items]}
    raise AssertionError(f"not a fact formula: {e!r}")


def holds_json(f: object, facts) -> bool:
    """`formula_holds` over `formula_json` output."""
    if f is None:
        return True
    if isinstance(f, str):
        return f in facts
    if "and" in f:
        return all(holds_json(x, facts) for x in f["and"])
    return any(holds_json(x, facts) for x in f["or"])
