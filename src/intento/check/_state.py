"""The checker's working state, shared by its stages, and the constants they use."""

from __future__ import annotations

from decimal import Decimal

from intento.diagnostics import Diagnostic, Severity, Source, Span, did_you_mean, sorted_capped
from intento.spec import ActionSpec, IntentSpec, PolicySpec, ProviderSpec, Spec, TestSpec, frozen_map
from intento.syntax import ast
from intento.values import Duration, Money, type_name

#: Most declarations a project may hold (LANGUAGE.md "Limits").
MAX_DECLARATIONS = 10_000

STATUS_WORDS = ("up", "down", "degraded")
OVERRIDABLE = {"latency": Duration, "cost": Money, "reliability": Decimal}
LIMIT_METRICS = {"cost": "money", "latency": "duration", "reliability": "number"}
EXPECT_METRICS = {"cost": "money", "latency": "duration", "reliability": "number"}
BECAUSE_WORDS = ("budget", "deadline", "goal")


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
        self.attr_names: set[str] = {"provider", "cost", "latency", "reliability", "region", "tags", "capacity"}

    # -- reporting --
    def error(self, code: str, message: str, span: Span | None, label: str = "", help: str = "") -> None:
        self.diags.append(Diagnostic(code, Severity.error, message, span, label, help))

    def warn(self, code: str, message: str, span: Span | None, label: str = "", help: str = "") -> None:
        self.diags.append(Diagnostic(code, Severity.warning, message, span, label, help))

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
        self.error(code, f"unknown {kind} `{ident.name}`", ident.span, label=f"not a declared {kind}", help=did_you_mean(ident.name, table))
        return False

    def plannable(self, ident: ast.Ident) -> bool:
        return self.known("action", ident, "E013")


