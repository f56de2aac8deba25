"""The abstract syntax tree of `.intent` files.

Input: nothing (these are data types). Output: frozen dataclasses, one per construct. Every node
carries a `Span` that never takes part in equality, so two parses of equivalent text compare
equal whatever their layout (the formatter's round-trip property relies on this).

Declarations keep their items in source order and do not merge repeats: the checker reports a
repeated ``goal`` or ``requires`` with both locations, and the formatter reproduces the order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from intento.diagnostics import Span
from intento.values import Value


def _span():
    return field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Ident:
    """A name as written: an action, provider, intent, policy, fact or given name."""

    name: str
    span: Span = _span()


# ---- expressions -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal:
    """A literal value (string, number, money, duration, bool, list)."""

    value: Value
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Ref:
    """A name read by an expression: a fact, an option attribute, or a context (given) name."""

    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class And:
    items: tuple["Expr", ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple["Expr", ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Not:
    item: "Expr"
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Compare:
    """``left OP right`` with OP one of ``== != <= < >= >``."""

    op: str
    left: "Expr"
    right: "Expr"
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class In:
    """``left in right``: membership of a value in a list."""

    left: "Expr"
    right: "Expr"
    span: Span = _span()


Expr = Literal | Ref | And | Or | Not | Compare | In


# ---- providers and actions ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attr:
    """``name value``: a provider or option attribute."""

    name: Ident
    value: Literal
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ProviderDecl:
    name: Ident
    attrs: tuple[Attr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Requires:
    expr: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Achieves:
    facts: tuple[Ident, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Undo:
    action: Ident
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Timeout:
    value: Literal
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Flag:
    """A bare keyword item: ``external`` or ``idempotent``."""

    word: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Via:
    """``via P { attrs }``: one option of an action."""

    provider: Ident
    attrs: tuple[Attr, ...]
    span: Span = _span()


ActionItem = Requires | Achieves | Undo | Timeout | Flag | Via


@dataclass(frozen=True, slots=True)
class ActionDecl:
    name: Ident
    items: tuple[ActionItem, ...]
    span: Span = _span()


# ---- intents -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Param:
    """``name: type [secret]`` in a ``given`` list."""

    name: Ident
    type: Ident
    secret: bool = False
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Given:
    params: tuple[Param, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Goal:
    expr: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Deadline:
    value: Literal
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Budget:
    value: Literal
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ObjTerm:
    """``[weight *] metric`` in a ``minimize`` item."""

    weight: Decimal | None
    metric: Ident
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Minimize:
    """``minimize`` terms; ``seps`` holds the separators between them (``then`` or ``+``)."""

    terms: tuple[ObjTerm, ...]
    seps: tuple[str, ...]
    span: Span = _span()


IntentItem = Given | Goal | Deadline | Budget | Minimize


@dataclass(frozen=True, slots=True)
class IntentDecl:
    name: Ident
    items: tuple[IntentItem, ...]
    span: Span = _span()


# ---- policies ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Owner:
    value: Literal
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class When:
    expr: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Soft:
    value: Literal
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ForbidVia:
    """``forbid via [A, B] where P``; ``actions`` is None when the list is omitted."""

    actions: tuple[Ident, ...] | None
    pred: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ForbidProvider:
    provider: Ident
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ForbidAction:
    action: Ident
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class RequireFor:
    """``require P for A, B``: every chosen option of A, B satisfies predicate P."""

    pred: Expr
    actions: tuple[Ident, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class RequireBefore:
    """``require F before A``."""

    formula: Expr
    action: Ident
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class RequireFact:
    """``require F``: an extra goal."""

    formula: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Limit:
    """``limit cost|latency|reliability OP V``."""

    metric: Ident
    op: str
    value: Literal
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class LimitCount:
    """``limit count(via [A] where P) OP V``; ``func`` is the word before the parenthesis."""

    func: Ident
    actions: tuple[Ident, ...] | None
    pred: Expr
    op: str
    value: Literal
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Distinct:
    """``distinct provider for A, B``."""

    actions: tuple[Ident, ...]
    span: Span = _span()


Statement = ForbidVia | ForbidProvider | ForbidAction | RequireFor | RequireBefore | RequireFact | Limit | LimitCount | Distinct
PolicyItem = Owner | When | Soft | Statement


@dataclass(frozen=True, slots=True)
class PolicyDecl:
    name: Ident
    title: str | None
    items: tuple[PolicyItem, ...]
    span: Span = _span()


# ---- tests -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GivenValue:
    name: Ident
    value: Literal
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Observation:
    """``P down`` / ``P degraded { latency 2s }`` / ``fact some.fact`` inside ``observe``."""

    subject: Ident
    word: Ident
    attrs: tuple[Attr, ...] | None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class PlanStep:
    intent: Ident
    given: tuple[GivenValue, ...] | None
    observe: tuple[Observation, ...] | None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ExpectFeasible:
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ExpectInfeasible:
    because: tuple[Ident, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ExpectVia:
    provider: Ident
    action: Ident
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ExpectNoVia:
    actions: tuple[Ident, ...] | None
    pred: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ExpectStep:
    action: Ident
    present: bool
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ExpectMetric:
    metric: Ident
    op: str
    value: Literal
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ExpectBroken:
    policy: Ident
    span: Span = _span()


Expectation = ExpectFeasible | ExpectInfeasible | ExpectVia | ExpectNoVia | ExpectStep | ExpectMetric | ExpectBroken
TestItem = PlanStep | Expectation


@dataclass(frozen=True, slots=True)
class TestDecl:
    name: str
    items: tuple[TestItem, ...]
    span: Span = _span()


Decl = ProviderDecl | ActionDecl | IntentDecl | PolicyDecl | TestDecl


@dataclass(frozen=True, slots=True)
class File:
    """One parsed source file; ``comments`` are (offset, text) pairs kept for the formatter."""

    decls: tuple[Decl, ...]
    comments: tuple[tuple[int, str], ...] = field(default=(), compare=False, repr=False)
    span: Span = _span()


def decl_kind(decl: Decl) -> str:
    match decl:
        case ProviderDecl():
            return "provider"
        case ActionDecl():
            return "action"
        case IntentDecl():
            return "intent"
        case PolicyDecl():
            return "policy"
        case TestDecl():
            return "test"
    raise AssertionError(f"unknown declaration {decl!r}")


def leaves(e: Expr | None, kind: type) -> list:
    """Every ``kind`` node (`Ref` or `Literal`) of an expression, in source order, found without
    recursion (an expression may be nested as deep as the parser allows)."""
    out: list = []
    stack: list = [e] if e is not None else []
    while stack:
        x = stack.pop()
        if isinstance(x, kind):
            out.append(x)
        elif isinstance(x, (And, Or)):
            stack.extend(reversed(x.items))
        elif isinstance(x, Not):
            stack.append(x.item)
        elif isinstance(x, (Compare, In)):
            stack.extend((x.right, x.left))
    return out
