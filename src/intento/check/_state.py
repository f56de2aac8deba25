"""The checker's working state, shared by its stages, and the constants they use."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Iterable

from intento.diagnostics import Diagnostic, Severity, Source, Span, did_you_mean, sorted_capped
from intento.spec import ActionSpec, IntentSpec, PolicySpec, ProviderSpec, Spec, TestSpec, frozen_map
from intento.syntax import ast
from intento.values import Duration, Money, duration_bound_error, money_bound_error, type_name

#: Most declarations a project may hold (LANGUAGE.md "Limits").
MAX_DECLARATIONS = 10_000
#: Most names the did-you-mean hints of one check compare with, all together (each comparison
#: costs ~15us; past this, a diagnostic shown keeps its plain help).
MAX_HINT_COMPARISONS = 50_000

STATUS_WORDS = ("up", "down", "degraded")
OVERRIDABLE = {"latency": Duration, "cost": Money, "reliability": Decimal}
LIMIT_METRICS = {"cost": "money", "latency": "duration", "reliability": "number"}
EXPECT_METRICS = {"cost": "money", "latency": "duration", "reliability": "number"}
BECAUSE_WORDS = ("budget", "deadline", "goal")


class _Hint:
    """A ``did you mean`` not looked for yet: each costs a pass over its candidates, and only the
    diagnostics shown need one (a project may report thousands; see `_Checker.resolve_hints`)."""

    __slots__ = ("name", "candidates", "fallback", "template")

    def __init__(self, name: str, candidates: Iterable[str], fallback: str, template: str):
        self.name, self.candidates, self.fallback, self.template = name, candidates, fallback, template

    def text(self) -> str:
        dym = did_you_mean(self.name, self.candidates)
        return self.template.format(dym) if dym else self.fallback


class _Checker:
    def __init__(self, sources: list[Source], files: list[ast.File]):
        self.sources = sources
        self.files = files
        self.diags: list[Diagnostic] = []
        self.fatal = False
        self.decls: dict[str, dict[str, ast.Decl]] = {k: {} for k in ("provider", "action", "intent", "policy")}
        self.tests: list[ast.TestDecl] = []
        self.currency: str | None = None
        self.providers: dict[str, ProviderSpec] = {}
        self.actions: dict[str, ActionSpec] = {}
        self.intents: dict[str, IntentSpec] = {}
        self.policies: dict[str, PolicySpec] = {}
        self.test_specs: list[TestSpec] = []
        self.attr_names: set[str] = {"provider", "cost", "latency", "reliability", "region", "tags", "capacity", "observed_latency", "observed_reliability", "observed_steps"}

    # -- reporting --
    def error(self, code: str, message: str, span: Span | None, label: str = "", help: str = "") -> None:
        self.diags.append(Diagnostic(code, Severity.error, message, span, label, help))

    def warn(self, code: str, message: str, span: Span | None, label: str = "", help: str = "") -> None:
        self.diags.append(Diagnostic(code, Severity.warning, message, span, label, help))

    def suggest(self, name: str, candidates: Iterable[str], fallback: str = "", template: str = "{}") -> str:
        """A ``help`` of ``did you mean `x`?`` (put into ``template``), else ``fallback``, found
        only if the diagnostic is shown. ``candidates`` is read then: it must not change after."""
        return _Hint(name, candidates, fallback, template)  # type: ignore[return-value]

    def resolve_hints(self) -> None:
        """Give every diagnostic its help text. A hint is looked for only for those that can be
        shown (the first `MAX_DIAGNOSTICS`), in source order, within `MAX_HINT_COMPARISONS`: so
        reporting N diagnostics costs O(N), not O(N x names)."""
        if not any(isinstance(d.help, _Hint) for d in self.diags):
            return
        budget = MAX_HINT_COMPARISONS
        found: dict[int, str] = {}
        for d in sorted_capped(self.diags):
            if isinstance(d.help, _Hint):
                cost = len(d.help.candidates)  # type: ignore[arg-type]
                if cost <= budget:
                    budget -= cost
                    found[id(d)] = d.help.text()
        for i, d in enumerate(self.diags):
            if isinstance(d.help, _Hint):
                self.diags[i] = dataclasses.replace(d, help=found.get(id(d), d.help.fallback))

    def build(self) -> Spec:
        return Spec(
            currency=self.currency,
            providers=frozen_map(self.providers),
            actions=frozen_map(self.actions),
            intents=frozen_map(self.intents),
            policies=frozen_map(self.policies),
            tests=tuple(self.test_specs),
            sources=tuple(self.sources),
            warnings=tuple(d for d in sorted_capped(self.diags) if not d.is_error),
        )

    # -- value helpers --
    def money(self, lit: ast.Literal, what: str, allow_negative: bool = False) -> Decimal | None:
        v = lit.value
        if not isinstance(v, Money):
            self.error("E018", f"{what} must be money, found {type_name(v)}", lit.span, help="write an amount like `4.50 USD`")
            return None
        self.note_currency(v, lit.span)
        if v.amount < 0 and not allow_negative:
            self.error("E022", f"{what} cannot be negative", lit.span, help="use an amount of zero or more")
            return None
        bound = money_bound_error(v.amount)
        if bound is not None:
            self.error("E038", f"{what} {bound}", lit.span, help="the planner keeps money exact: at most 6 decimal places, below 10^9")
            return None
        return v.amount

    def duration(self, lit: ast.Literal, what: str, minimum: int = 0) -> int | None:
        v = lit.value
        if not isinstance(v, Duration):
            hint = "write a duration like `800ms`, `30s`, `5m`, `2h` or `1d`"
            self.error("E018", f"{what} must be a duration, found {type_name(v)}", lit.span, help=hint)
            return None
        if v.ms < minimum:
            self.error("E021", f"{what} must be at least {minimum}ms", lit.span, help=f"use `{minimum}ms` or more")
            return None
        bound = duration_bound_error(v.ms)
        if bound is not None:
            self.error("E038", f"{what} {bound}", lit.span, help="use a duration of at most 10^13 ms")
            return None
        return v.ms

    def note_currency(self, v: Money, span: Span | None) -> None:
        if self.currency is None:
            self.currency = v.currency
        elif v.currency != self.currency:
            self.error(
                "E019",
                f"currency `{v.currency}` differs from the project's currency `{self.currency}`",
                span,
                help=f"a project uses one currency: write the amount in `{self.currency}`",
            )

    def scan_money(self, lit: ast.Literal) -> None:
        """Note the currency of any money inside a free-form value."""
        v = lit.value
        if isinstance(v, Money):
            self.note_currency(v, lit.span)

    def known(self, kind: str, ident: ast.Ident, code: str) -> bool:
        table = self.decls[kind]
        if ident.name in table:
            return True
        self.error(code, f"unknown {kind} `{ident.name}`", ident.span, label=f"not a declared {kind}", help=self.suggest(ident.name, table))
        return False

    def plannable(self, ident: ast.Ident) -> bool:
        return self.known("action", ident, "E013")


