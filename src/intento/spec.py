"""The checked, immutable model of a project that every later stage reads.

Input: built only by `intento.check`. Output: `Spec`, with providers, actions (options carrying
their resolved attributes, provider fallbacks included), intents, policies and tests, each with
the span it came from so that plans and explanations can speak the user's words.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Mapping

from intento.diagnostics import Diagnostic, Source, Span
from intento.syntax import ast
from intento.values import Value

#: Attributes every option has, whatever was written: ``provider`` plus the three typed ones.
BUILTIN_OPTION_ATTRS = ("provider", "cost", "latency", "reliability")
#: Provider attributes with fixed types.
TYPED_PROVIDER_ATTRS = {"capacity": "integer", "region": "string", "tags": "list of strings"}
GIVEN_TYPES = ("string", "number", "money", "duration", "bool")
METRICS = ("cost", "latency", "risk")


def frozen_map(d: Mapping) -> Mapping:
    return MappingProxyType(dict(d))


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    index: int
    attrs: Mapping[str, Value]
    capacity: int | None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True)
class OptionSpec:
    """Doing `action` through `provider`: the attributes after provider fallback."""

    action: str
    provider: str
    index: int
    cost: Decimal
    latency_ms: int
    reliability: Decimal
    #: Every attribute a predicate may read: free-form ones, fallbacks, and the built-ins.
    attrs: Mapping[str, Value]
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True)
class ActionSpec:
    name: str
    index: int
    requires: ast.Expr | None
    achieves: tuple[str, ...]
    undo: str | None
    timeout_ms: int | None
    external: bool
    idempotent: bool
    options: tuple[OptionSpec, ...]
    #: True when some action names this one as its `undo`: the planner never chooses it.
    compensation: bool
    span: Span = field(compare=False, repr=False)

    def option(self, provider: str) -> OptionSpec | None:
        return next((o for o in self.options if o.provider == provider), None)


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: str
    secret: bool
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True)
class Objective:
    """``lex``: metrics in priority order; ``weighted``: (metric, weight) pairs summed."""

    kind: str
    terms: tuple[tuple[str, Decimal], ...]
    span: Span | None = field(default=None, compare=False, repr=False)

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(m for m, _ in self.terms)


DEFAULT_OBJECTIVE = Objective("lex", (("cost", Decimal(1)), ("latency", Decimal(1))))


@dataclass(frozen=True)
class IntentSpec:
    name: str
    given: Mapping[str, ParamSpec]
    goal: ast.Expr
    deadline_ms: int | None
    budget: Decimal | None
    objective: Objective
    span: Span = field(compare=False, repr=False)
    goal_span: Span | None = field(default=None, compare=False, repr=False)
    deadline_span: Span | None = field(default=None, compare=False, repr=False)
    budget_span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class PolicySpec:
    name: str
    title: str | None
    owner: str | None
    when: ast.Expr | None
    #: Penalty per violated statement; None for a hard policy.
    soft: Decimal | None
    statements: tuple[ast.Statement, ...]
    #: The context (given) names the `when` guard reads.
    reads: frozenset[str]
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True)
class TestSpec:
    name: str
    plan: ast.PlanStep | None
    expects: tuple[ast.Expectation, ...]
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True)
class Spec:
    """A checked project. Names are global; mappings keep declaration order."""

    currency: str | None
    providers: Mapping[str, ProviderSpec]
    actions: Mapping[str, ActionSpec]
    intents: Mapping[str, IntentSpec]
    policies: Mapping[str, PolicySpec]
    tests: tuple[TestSpec, ...]
    sources: tuple[Source, ...] = field(repr=False)
    warnings: tuple[Diagnostic, ...] = field(default=(), repr=False)

    @property
    def fingerprint(self) -> str:
        """SHA-256 over the sorted SHA-256 of every source text: the project version. It names
        what the sources say, not where they are, so the same files given by another path (or
        moved) are the same version."""
        h = hashlib.sha256()
        for digest in sorted(hashlib.sha256(src.text.encode()).hexdigest() for src in self.sources):
            h.update(digest.encode() + b"\0")
        return h.hexdigest()

    def plannable_actions(self) -> tuple[ActionSpec, ...]:
        """Actions the planner may choose (compensating actions are run only on give-up)."""
        return tuple(a for a in self.actions.values() if not a.compensation)
