"""Pure evaluation of expressions: predicates over option attributes, guards over a context,
fact formulas over a set of facts or over fact times.

Input: AST expressions and plain values. Output: booleans or times. No solver, no I/O.

Missing values (an option without the attribute a predicate reads) compare as *no value*:
``==``, ordering and ``in`` are false, ``!=`` is true (docs/language.md, "Missing attributes").
Guards are the other way round: a guard that reads a missing or ill-typed value is *undecided*,
and an undecided guard never switches its policy off (`decide_guard`).
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


class _Undecided(Exception):
    """A guard's comparison that cannot be decided (see `decide_guard`)."""


def decide_guard(e: ast.Expr, context: Mapping[str, object]) -> bool | None:
    """A `when` guard over a request's context: True or False when every comparison in it can be
    decided, else None (the caller fails closed: the policy applies).

    A comparison cannot be decided when a name it reads has no value in ``context``, when its two
    sides are of different types (money of different currencies included), when an ordering
    compares strings, bools or lists, or when the right side of `in` is not a list or holds no
    value of the left side's type; a bare name must hold a bool. One undecidable comparison
    leaves the whole guard undecided, whatever the rest says: `a == 1 and b == 2` with no `b`
    does not switch the policy off even when `a` is 2."""
    try:
        return _guard(e, context)
    except _Undecided:
        return None


def _guard(e: ast.Expr, ctx: Mapping[str, object]) -> bool:
    match e:
        case ast.And():
            # Every item is evaluated (no short cut), so an undecidable one is never skipped.
            return all([_guard(x, ctx) for x in e.items])
        case ast.Or():
            return any([_guard(x, ctx) for x in e.items])
        case ast.Not():
            return not _guard(e.item, ctx)
        case ast.Ref() | ast.Literal():
            v = _guard_value(e, ctx)
            if not isinstance(v, bool):
                raise _Undecided
            return v
        case ast.Compare():
            left, right = _guard_value(e.left, ctx), _guard_value(e.right, ctx)
            if _kind(left) != _kind(right):
                raise _Undecided
            l, r = _comparable(left), _comparable(right)
            if e.op == "==":
                return l == r
            if e.op == "!=":
                return l != r
            if isinstance(l, (str, bool, tuple)):
                raise _Undecided
            return {"<": l < r, "<=": l <= r, ">": l > r, ">=": l >= r}[e.op]
        case ast.In():
            container, item = _guard_value(e.right, ctx), _guard_value(e.left, ctx)
            if not isinstance(container, tuple):
                raise _Undecided
            same = [x for x in container if _kind(x) == _kind(item)]
            if container and not same:
                raise _Undecided
            return any(_comparable(x) == _comparable(item) for x in same)
    raise _Undecided


def _guard_value(e: ast.Expr, ctx: Mapping[str, object]):
    match e:
        case ast.Literal():
            return e.value
        case ast.Ref():
            v = ctx.get(e.name, _MISSING)
            if v is _MISSING or v is None:
                raise _Undecided
            return v
    raise _Undecided


def _kind(v) -> tuple:
    """What a value compares with: a value of the same kind (money: of the same currency)."""
    match v:
        case Money():
            return ("money", v.currency)
        case Duration():
            return ("duration",)
        case bool():
            return ("bool",)
        case int() | Decimal():
            return ("number",)
        case str():
            return ("string",)
        case tuple():
            return ("list",)
    return ("other", type(v).__name__)


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
