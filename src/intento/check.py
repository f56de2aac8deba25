"""The checker: parsed files to a checked `Spec`.

Input: paths (files, or folders read recursively for ``*.intent``) or `Source`s. Output: a `Spec`
and every diagnostic of the project, sorted by position. The work is a table of named stages
(`STAGES`), each timed, each adding diagnostics; a later stage reads what earlier ones resolved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Callable, Iterable

from intento.diagnostics import Diagnostic, Severity, Source, Span, did_you_mean, sorted_capped
from intento.spec import (
    DEFAULT_OBJECTIVE,
    GIVEN_TYPES,
    METRICS,
    ActionSpec,
    IntentSpec,
    Objective,
    OptionSpec,
    ParamSpec,
    PolicySpec,
    ProviderSpec,
    Spec,
    TestSpec,
    frozen_map,
)
from intento.syntax import ast, parse
from intento.values import Duration, Money, type_name

#: Most declarations a project may hold (LANGUAGE.md "Limits").
MAX_DECLARATIONS = 10_000
#: Most `.intent` files a project may hold.
MAX_FILES = 2_000

STATUS_WORDS = ("up", "down", "degraded")
OVERRIDABLE = {"latency": Duration, "cost": Money, "reliability": Decimal}
LIMIT_METRICS = {"cost": "money", "latency": "duration", "reliability": "number"}
EXPECT_METRICS = {"cost": "money", "latency": "duration", "reliability": "number"}
BECAUSE_WORDS = ("budget", "deadline", "goal")


# ---------------------------------------------------------------------------------------------
# Loading sources


def load_sources(paths: Iterable[str | Path]) -> tuple[list[Source], list[Diagnostic]]:
    """Read every ``.intent`` file under ``paths``; unreadable input becomes a diagnostic."""
    sources: list[Source] = []
    diags: list[Diagnostic] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*.intent") if p.is_file())
            if not files:
                diags.append(_pathless("E010", f"no `.intent` files under `{raw}`", "point at a folder that holds `.intent` files"))
        elif path.is_file():
            files = [path]
        else:
            diags.append(_pathless("E010", f"cannot read `{raw}`: no such file or folder", "check the path"))
            continue
        for f in files:
            key = f.resolve()
            if key in seen:
                continue
            seen.add(key)
            if len(seen) > MAX_FILES:
                diags.append(_pathless("E007", f"project has more than {MAX_FILES} files", "check a smaller folder"))
                return sources, diags
            src, diag = read_source(f)
            if diag:
                diags.append(diag)
            else:
                sources.append(src)
    return sources, diags


def read_source(path: Path) -> tuple[Source | None, Diagnostic | None]:
    name = str(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        return None, _pathless("E010", f"cannot read `{name}`: {e.strerror or e}", "check the file's permissions")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        good = data[: e.start].decode("utf-8", errors="replace")
        src = Source(name, good)
        return None, Diagnostic(
            "E010",
            Severity.error,
            "file is not valid UTF-8 text",
            Span.at_offset(src, len(good)),
            help="save the file as UTF-8",
        )
    if "\x00" in text:
        src = Source(name, text.replace("\x00", " "))
        return None, Diagnostic("E010", Severity.error, "file contains a NUL byte", Span.at_offset(src, text.index("\x00")), help="this is not a text file")
    return Source(name, text), None


def _pathless(code: str, message: str, help: str) -> Diagnostic:
    return Diagnostic(code, Severity.error, message, None, help=help)


# ---------------------------------------------------------------------------------------------
# The checker


@dataclass
class Result:
    """What `check` returns: the Spec (None when there are errors) and every diagnostic."""

    spec: Spec | None
    diagnostics: list[Diagnostic]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def ok(self) -> bool:
        return self.spec is not None


def check_paths(paths: Iterable[str | Path]) -> Result:
    sources, diags = load_sources(paths)
    if diags and not sources:
        return Result(None, sorted_capped(diags))
    result = check_sources(sources)
    if diags:
        result = Result(None, sorted_capped(diags + result.diagnostics), result.timings)
    return result


def check_sources(sources: list[Source]) -> Result:
    files: list[ast.File] = []
    diags: list[Diagnostic] = []
    t0 = time.perf_counter()
    for src in sources:
        f, d = parse(src)
        diags.extend(d)
        if f is not None:
            files.append(f)
    timings = {"parse": time.perf_counter() - t0}
    if diags:
        return Result(None, sorted_capped(diags), timings)
    checker = _Checker(sources, files)
    for name, stage in STAGES:
        t = time.perf_counter()
        stage(checker)
        timings[name] = time.perf_counter() - t
        if checker.fatal:
            break
    all_diags = sorted_capped(checker.diags)
    if any(d.is_error for d in all_diags):
        return Result(None, all_diags, timings)
    return Result(checker.build(), all_diags, timings)


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


# ---- stage 1: declarations -------------------------------------------------------------------


def collect_declarations(c: _Checker) -> None:
    """Index every declaration by kind and name; report duplicates and the count limit."""
    count = 0
    for f in c.files:
        for decl in f.decls:
            count += 1
            if count == MAX_DECLARATIONS + 1:
                c.error("E007", f"project has more than {MAX_DECLARATIONS:,} declarations", decl.span, help="split it into several projects")
                c.fatal = True
                return
            kind = ast.decl_kind(decl)
            if kind == "test":
                c.tests.append(decl)
                continue
            table = c.decls[kind]
            name = decl.name.name
            if name in table:
                first = table[name].span
                c.error(
                    "E011",
                    f"{kind} `{name}` is declared twice",
                    decl.name.span,
                    label="second declaration",
                    help=f"the first is at {first.location}; rename or remove one",
                )
                continue
            if kind in ("provider", "action", "intent", "policy") and "." in name:
                c.error("E018", f"a {kind} name cannot contain `.`", decl.name.span, help="dotted names are for facts and given parameters")
            table[name] = decl


def _single(c: _Checker, items, cls, what: str, owner: str):
    """The one item of type ``cls`` (or None); a repeat is reported at its location."""
    found = None
    for it in items:
        if isinstance(it, cls):
            if found is not None:
                c.error("E016", f"`{what}` is given twice in {owner}", it.span, label="repeated", help=f"keep one `{what}`")
            else:
                found = it
    return found


# ---- stage 2: providers ----------------------------------------------------------------------


def resolve_providers(c: _Checker) -> None:
    """Type the provider attributes with fixed types (capacity, region, tags)."""
    for index, decl in enumerate(c.decls["provider"].values()):
        attrs: dict = {}
        capacity = None
        for a in decl.attrs:
            name, value = a.name.name, a.value.value
            if name in attrs:
                c.error("E034", f"attribute `{name}` is set twice in provider `{decl.name.name}`", a.name.span, help="keep one")
                continue
            if name in OVERRIDABLE and _typed_option_attr(c, a, f"provider `{decl.name.name}`") is None:
                continue
            if not _check_typed_provider_attr(c, name, a.value):
                continue
            c.scan_money(a.value)
            attrs[name] = value
            c.attr_names.add(name)
            if name == "capacity":
                capacity = int(value)
        c.providers[decl.name.name] = ProviderSpec(decl.name.name, index, frozen_map(attrs), capacity, decl.span)


def _check_typed_provider_attr(c: _Checker, name: str, lit: ast.Literal) -> bool:
    v = lit.value
    if name == "capacity":
        if not isinstance(v, Decimal) or isinstance(v, bool) or v != v.to_integral_value() or v < 1:
            c.error("E018", "`capacity` must be a whole number of at least 1", lit.span, help="e.g. `capacity 50`: steps running at once on this provider")
            return False
    elif name == "region":
        if not isinstance(v, str):
            c.error("E018", f"`region` must be a string, found {type_name(v)}", lit.span, help='e.g. `region "eu"`')
            return False
    elif name == "tags":
        if not isinstance(v, tuple) or not all(isinstance(x, str) for x in v):
            c.error("E018", "`tags` must be a list of strings", lit.span, help='e.g. `tags ["pci", "psd2"]`')
            return False
    elif isinstance(v, tuple) and not all(isinstance(x, (str, Decimal)) and not isinstance(x, bool) for x in v):
        c.error("E018", "a list holds strings or numbers", lit.span, help='e.g. `["a", "b"]` or `[1, 2]`')
        return False
    return True


def _typed_option_attr(c: _Checker, a: ast.Attr, owner: str):
    name = a.name.name
    if name == "cost":
        return c.money(a.value, f"`cost` of {owner}")
    if name == "latency":
        return c.duration(a.value, f"`latency` of {owner}", minimum=1)
    if name == "reliability":
        v = a.value.value
        if not isinstance(v, Decimal) or isinstance(v, bool):
            c.error("E018", f"`reliability` of {owner} must be a number, found {type_name(v)}", a.value.span, help="e.g. `reliability 0.995`")
            return None
        if not (0 < v <= 1):
            c.error("E020", f"`reliability` of {owner} must be above 0 and at most 1, found {v}", a.value.span, help="a probability of success, e.g. `0.995`")
            return None
        return v
    return None


# ---- stage 3: actions ------------------------------------------------------------------------


def resolve_actions(c: _Checker) -> None:
    """Resolve options (provider fallback), check requires/achieves/undo/timeout."""
    undo_targets: set[str] = set()
    for decl in c.decls["action"].values():
        for it in decl.items:
            if isinstance(it, ast.Undo):
                undo_targets.add(it.action.name)
    for index, decl in enumerate(c.decls["action"].values()):
        name = decl.name.name
        owner = f"action `{name}`"
        req = _single(c, decl.items, ast.Requires, "requires", owner)
        ach = _single(c, decl.items, ast.Achieves, "achieves", owner)
        undo = _single(c, decl.items, ast.Undo, "undo", owner)
        timeout = _single(c, decl.items, ast.Timeout, "timeout", owner)
        flags = [it for it in decl.items if isinstance(it, ast.Flag)]
        seen_flags: set[str] = set()
        for fl in flags:
            if fl.word in seen_flags:
                c.error("E016", f"`{fl.word}` is given twice in {owner}", fl.span, help=f"keep one `{fl.word}`")
            seen_flags.add(fl.word)
        if req is not None:
            check_fact_formula(c, req.expr, "a `requires` formula")
        facts: list[str] = []
        if ach is not None:
            for f in ach.facts:
                if f.name in facts:
                    c.error("E034", f"fact `{f.name}` is listed twice", f.span, help="list each fact once")
                else:
                    facts.append(f.name)
        if undo is not None:
            if c.known("action", undo.action, "E013") and undo.action.name == name:
                c.error("E013", f"{owner} cannot undo itself", undo.action.span, help="name the compensating action")
        timeout_ms = c.duration(timeout.value, f"`timeout` of {owner}", minimum=1) if timeout else None
        options: list[OptionSpec] = []
        vias = [it for it in decl.items if isinstance(it, ast.Via)]
        if not vias:
            c.error("E033", f"{owner} has no `via` option", decl.name.span, help="add `via PROVIDER { latency 1s }`: how the action is done")
        for via in vias:
            opt = _resolve_option(c, name, via, len(options))
            if opt is None:
                continue
            if any(o.provider == opt.provider for o in options):
                c.error("E032", f"{owner} has two options through provider `{opt.provider}`", via.provider.span, help="merge them into one `via`")
                continue
            options.append(opt)
        c.actions[name] = ActionSpec(
            name=name,
            index=index,
            requires=req.expr if req else None,
            achieves=tuple(facts),
            undo=undo.action.name if undo else None,
            timeout_ms=timeout_ms,
            external="external" in seen_flags,
            idempotent="idempotent" in seen_flags,
            options=tuple(options),
            compensation=name in undo_targets,
            span=decl.span,
        )


def _resolve_option(c: _Checker, action: str, via: ast.Via, index: int) -> OptionSpec | None:
    pname = via.provider.name
    if not c.known("provider", via.provider, "E012"):
        return None
    provider = c.providers.get(pname)
    owner = f"option `{action}` via `{pname}`"
    own: dict = {}
    ok = True
    for a in via.attrs:
        n = a.name.name
        if n in own:
            c.error("E034", f"attribute `{n}` is set twice in {owner}", a.name.span, help="keep one")
            continue
        if n in OVERRIDABLE:
            v = _typed_option_attr(c, a, owner)
            if v is None:
                ok = False
                continue
            own[n] = a.value.value
        else:
            if not _check_typed_provider_attr(c, n, a.value):
                ok = False
                continue
            c.scan_money(a.value)
            own[n] = a.value.value
        c.attr_names.add(n)
    merged: dict = dict(provider.attrs) if provider else {}
    merged.update(own)
    merged.pop("capacity", None)
    # Typed fallbacks from the provider (cost/latency/reliability may be set there too).
    if "latency" not in merged:
        if ok:
            c.error("E017", f"{owner} has no `latency`", via.span, help="every option needs a latency, e.g. `latency 800ms`")
        return None
    if not ok:
        return None
    cost = merged.get("cost", Money(Decimal(0), c.currency or ""))
    reliability = merged.get("reliability", Decimal(1))
    attrs = dict(merged)
    attrs["provider"] = pname
    attrs["cost"] = cost
    attrs["reliability"] = reliability
    return OptionSpec(
        action=action,
        provider=pname,
        index=index,
        cost=cost.amount,
        latency_ms=merged["latency"].ms,
        reliability=reliability,
        attrs=frozen_map(attrs),
        span=via.span,
    )


# ---- expression shapes ------------------------------------------------------------------------


def check_fact_formula(c: _Checker, e: ast.Expr, what: str) -> None:
    """A fact formula joins dotted or plain fact names with `and`, `or` and parentheses."""
    match e:
        case ast.Ref():
            if e.name == "provider":
                c.error("E024", f"{what} names facts; `provider` is a keyword", e.span)
        case ast.And() | ast.Or():
            for it in e.items:
                check_fact_formula(c, it, what)
        case ast.Not():
            c.error("E024", f"`not` is not allowed in {what}", e.span, help="facts only ever become true, so a formula can only require them")
        case ast.Compare() | ast.In():
            c.error("E024", f"{what} cannot hold a comparison", e.span, help="join fact names with `and` / `or`; comparisons belong in `when` guards and predicates")
        case ast.Literal():
            c.error("E024", f"{what} cannot hold a literal value", e.span, help="name a fact, e.g. `payment.captured`")


def fact_names(e: ast.Expr | None) -> list[ast.Ref]:
    match e:
        case ast.Ref():
            return [e]
        case ast.And() | ast.Or():
            return [r for it in e.items for r in fact_names(it)]
    return []


_ATTR_TYPES = {"provider": "string", "cost": "money", "latency": "duration", "reliability": "number", "region": "string", "tags": "list"}


def check_predicate(c: _Checker, e: ast.Expr, reads: Callable[[ast.Ref], str | None], what: str) -> None:
    """Predicates and guards: `and`/`or`/`not` over comparisons and membership tests.

    ``reads`` resolves a name to its type (``None``: unknown, already reported or tolerated).
    """

    def kind(x: ast.Expr) -> str | None:
        match x:
            case ast.Literal():
                return type_name(x.value)
            case ast.Ref():
                return reads(x)
        return None

    match e:
        case ast.And() | ast.Or():
            for it in e.items:
                check_predicate(c, it, reads, what)
        case ast.Not():
            check_predicate(c, e.item, reads, what)
        case ast.Ref():
            t = reads(e)
            if t not in (None, "bool"):
                c.error("E025", f"`{e.name}` is a {t}, not a condition", e.span, help=f"compare it, e.g. `{e.name} == ...`")
        case ast.Literal():
            if not isinstance(e.value, bool):
                c.error("E025", f"a {type_name(e.value)} is not a condition", e.span, help="write a comparison such as `region == \"eu\"`")
        case ast.Compare():
            for side in (e.left, e.right):
                if not isinstance(side, (ast.Ref, ast.Literal)):
                    c.error("E025", "each side of a comparison is a name or a value", side.span, help="use parentheses around conditions, not values")
                    return
            lt, rt = kind(e.left), kind(e.right)
            if isinstance(e.left, ast.Literal):
                c.scan_money(e.left)
            if isinstance(e.right, ast.Literal):
                c.scan_money(e.right)
            if lt and rt and lt != rt:
                c.error("E025", f"cannot compare {lt} with {rt}", e.span, help="both sides must have the same type (money with money, durations with durations, ...)")
            elif e.op not in ("==", "!=") and (lt in ("string", "bool", "list") or rt in ("string", "bool", "list")):
                c.error("E025", f"`{e.op}` does not apply to {lt or rt} values", e.span, help="strings, booleans and lists compare only with `==` and `!=`")
        case ast.In():
            for side in (e.left, e.right):
                if not isinstance(side, (ast.Ref, ast.Literal)):
                    c.error("E025", "each side of `in` is a name or a value", side.span)
                    return
            rt = kind(e.right)
            if rt is not None and rt != "list":
                c.error("E025", f"the right side of `in` must be a list, found {rt}", e.right.span, help='e.g. `"pci" in tags` or `provider in ["a", "b"]`')


def option_attr_reader(c: _Checker):
    def reads(r: ast.Ref) -> str | None:
        if r.name in _ATTR_TYPES:
            return _ATTR_TYPES[r.name]
        if r.name not in c.attr_names:
            c.warn(
                "W105",
                f"no provider or option declares attribute `{r.name}`",
                r.span,
                help=(did_you_mean(r.name, c.attr_names) or "a missing attribute never equals a value") ,
            )
        return None

    return reads


# ---- stage 4: intents ------------------------------------------------------------------------


def resolve_intents(c: _Checker) -> None:
    for decl in c.decls["intent"].values():
        name = decl.name.name
        owner = f"intent `{name}`"
        given: dict[str, ParamSpec] = {}
        for g in (it for it in decl.items if isinstance(it, ast.Given)):
            for p in g.params:
                if p.name.name in given:
                    c.error("E034", f"given name `{p.name.name}` is declared twice", p.name.span, help="declare each once")
                    continue
                if p.type.name not in GIVEN_TYPES:
                    c.error(
                        "E026",
                        f"unknown type `{p.type.name}`",
                        p.type.span,
                        help=did_you_mean(p.type.name, GIVEN_TYPES) or "the types are " + ", ".join(f"`{t}`" for t in GIVEN_TYPES),
                    )
                    continue
                given[p.name.name] = ParamSpec(p.name.name, p.type.name, p.secret, p.span)
        goal = _single(c, decl.items, ast.Goal, "goal", owner)
        if goal is None:
            c.error("E017", f"{owner} has no `goal`", decl.name.span, help="say what must hold at the end, e.g. `goal payment.captured`")
        else:
            check_fact_formula(c, goal.expr, "a `goal`")
        dl = _single(c, decl.items, ast.Deadline, "deadline", owner)
        deadline = c.duration(dl.value, f"`deadline` of {owner}", minimum=1) if dl else None
        bd = _single(c, decl.items, ast.Budget, "budget", owner)
        budget = c.money(bd.value, f"`budget` of {owner}") if bd else None
        mn = _single(c, decl.items, ast.Minimize, "minimize", owner)
        objective = _objective(c, mn) if mn else DEFAULT_OBJECTIVE
        if goal is None:
            continue
        c.intents[name] = IntentSpec(
            name=name,
            given=frozen_map(given),
            goal=goal.expr,
            deadline_ms=deadline,
            budget=budget,
            objective=objective or DEFAULT_OBJECTIVE,
            span=decl.span,
            goal_span=goal.span,
            deadline_span=dl.span if dl else None,
            budget_span=bd.span if bd else None,
        )


def _objective(c: _Checker, mn: ast.Minimize) -> Objective | None:
    seps = set(mn.seps)
    if len(seps) > 1:
        c.error("E027", "an objective is either `then`-ordered or a weighted `+` sum, not both", mn.span, help="e.g. `minimize cost then latency` or `minimize 2 * cost + latency`")
        return None
    weighted = "+" in seps or any(t.weight is not None for t in mn.terms)
    if weighted and "then" in seps:
        c.error("E027", "weights belong in a `+` sum, not a `then` order", mn.span, help="write `minimize 2 * cost + latency`")
        return None
    terms = []
    for t in mn.terms:
        m = t.metric.name
        if m not in METRICS:
            c.error("E027", f"unknown objective term `{m}`", t.metric.span, help=did_you_mean(m, METRICS) or "the terms are `cost`, `latency` and `risk`")
            return None
        if m in [x for x, _ in terms]:
            c.error("E027", f"`{m}` appears twice in the objective", t.metric.span, help="name each term once")
            return None
        w = t.weight if t.weight is not None else Decimal(1)
        if w < 0:
            c.error("E027", "objective weights cannot be negative", t.span, help="use a weight of zero or more")
            return None
        terms.append((m, w))
    return Objective("weighted" if weighted else "lex", tuple(terms), mn.span)


# ---- stage 5: policies -----------------------------------------------------------------------


def resolve_policies(c: _Checker) -> None:
    declared_given: dict[str, set[str]] = {}
    for it in c.intents.values():
        for p in it.given.values():
            declared_given.setdefault(p.name, set()).add(p.type)
    reads_attr = option_attr_reader(c)
    for decl in c.decls["policy"].values():
        name = decl.name.name
        owner_s = f"policy `{name}`"
        owner = _single(c, decl.items, ast.Owner, "owner", owner_s)
        if owner is not None and not isinstance(owner.value.value, str):
            c.error("E018", "`owner` must be a string", owner.value.span, help='e.g. `owner "compliance@example.com"`')
        when = _single(c, decl.items, ast.When, "when", owner_s)
        soft = _single(c, decl.items, ast.Soft, "soft", owner_s)
        penalty = None
        if soft is not None:
            v = soft.value.value
            if not isinstance(v, Decimal) or isinstance(v, bool) or v < 0:
                c.error("E029", "`soft` takes a penalty: a number of zero or more", soft.value.span, help="e.g. `soft 20`")
            else:
                penalty = v
        reads: set[str] = set()
        if when is not None:

            def given_reader(r: ast.Ref) -> str | None:
                reads.add(r.name)
                types = declared_given.get(r.name)
                if not types:
                    c.warn(
                        "W102",
                        f"`{r.name}` is declared by no intent, so {owner_s} applies to none",
                        r.span,
                        help=did_you_mean(r.name, declared_given) or "declare it in an intent's `given`",
                    )
                    return None
                return next(iter(types)) if len(types) == 1 else None

            check_predicate(c, when.expr, given_reader, "a `when` guard")
        statements = []
        for st in decl.items:
            if isinstance(st, (ast.Owner, ast.When, ast.Soft)):
                continue
            if _check_statement(c, st, reads_attr):
                statements.append(st)
        if not statements and not any(d.is_error for d in c.diags if d.span and d.span.source is decl.span.source):
            c.warn("W106", f"{owner_s} has no statement", decl.name.span, help="add `forbid`, `require`, `limit` or `distinct`")
        c.policies[name] = PolicySpec(
            name=name,
            title=decl.title,
            owner=owner.value.value if owner is not None and isinstance(owner.value.value, str) else None,
            when=when.expr if when else None,
            soft=penalty,
            statements=tuple(statements),
            reads=frozenset(reads),
            span=decl.span,
        )


def _actions_exist(c: _Checker, idents) -> bool:
    ok = True
    for a in idents or ():
        ok = c.plannable(a) and ok
    return ok


def _check_statement(c: _Checker, st: ast.Statement, reads_attr) -> bool:
    n_errors = sum(d.is_error for d in c.diags)
    match st:
        case ast.ForbidVia():
            _actions_exist(c, st.actions)
            check_predicate(c, st.pred, reads_attr, "a predicate")
        case ast.ForbidProvider():
            c.known("provider", st.provider, "E012")
        case ast.ForbidAction():
            c.plannable(st.action)
        case ast.RequireFor():
            _actions_exist(c, st.actions)
            check_predicate(c, st.pred, reads_attr, "a predicate")
        case ast.RequireBefore():
            check_fact_formula(c, st.formula, "a `require ... before` formula")
            c.plannable(st.action)
        case ast.RequireFact():
            check_fact_formula(c, st.formula, "a `require` formula")
        case ast.Limit():
            m = st.metric.name
            want = LIMIT_METRICS.get(m)
            if want is None:
                c.error("E028", f"unknown limit `{m}`", st.metric.span, help=did_you_mean(m, LIMIT_METRICS) or "limits are on `cost`, `latency`, `reliability` or `count(via where ...)`")
            else:
                _check_bound(c, st.value, want, f"`limit {m}`")
        case ast.LimitCount():
            if st.func.name != "count":
                c.error("E028", f"unknown limit function `{st.func.name}`", st.func.span, help="the function is `count(via where ...)`")
            _actions_exist(c, st.actions)
            check_predicate(c, st.pred, reads_attr, "a predicate")
            v = st.value.value
            if not isinstance(v, Decimal) or isinstance(v, bool) or v != v.to_integral_value():
                c.error("E028", "a `count` limit compares with a whole number", st.value.span, help="e.g. `limit count(via where region == \"eu\") >= 2`")
        case ast.Distinct():
            if len(st.actions) < 2:
                c.error("E036", "`distinct provider for` needs at least two actions", st.span, help="name two or more actions")
            names = [a.name for a in st.actions]
            for a in st.actions:
                if names.count(a.name) > 1:
                    c.error("E034", f"action `{a.name}` is listed twice", a.span, help="list each action once")
                    break
            _actions_exist(c, st.actions)
    return sum(d.is_error for d in c.diags) == n_errors


def _check_bound(c: _Checker, lit: ast.Literal, want: str, what: str) -> None:
    v = lit.value
    if want == "money":
        c.money(lit, f"the bound of {what}", allow_negative=True)
    elif want == "duration":
        c.duration(lit, f"the bound of {what}")
    elif want == "number":
        if not isinstance(v, Decimal) or isinstance(v, bool):
            c.error("E018", f"the bound of {what} must be a number, found {type_name(v)}", lit.span, help="a probability between 0 and 1, e.g. `0.98`")
        elif not (0 <= v <= 1):
            c.error("E020", f"the bound of {what} must be between 0 and 1, found {v}", lit.span, help="reliability is a probability")


# ---- stage 6: facts --------------------------------------------------------------------------


def check_facts(c: _Checker) -> None:
    """Warn about facts that something needs but no action achieves (only an observation could)."""
    achieved = {f for a in c.actions.values() if not a.compensation for f in a.achieves}
    needs: list[tuple[ast.Ref, str]] = []
    for a in c.actions.values():
        needs += [(r, f"`requires` of action `{a.name}`") for r in fact_names(a.requires)]
    for i in c.intents.values():
        needs += [(r, f"the goal of intent `{i.name}`") for r in fact_names(i.goal)]
    for p in c.policies.values():
        for st in p.statements:
            if isinstance(st, (ast.RequireFact, ast.RequireBefore)):
                needs += [(r, f"policy `{p.name}`") for r in fact_names(st.formula)]
    for ref, who in needs:
        if ref.name not in achieved:
            c.warn(
                "W101",
                f"no action achieves fact `{ref.name}`, needed by {who}",
                ref.span,
                help=did_you_mean(ref.name, achieved) or "only an observation can make it true",
            )


# ---- stage 7: tests --------------------------------------------------------------------------


def resolve_tests(c: _Checker) -> None:
    names: dict[str, ast.TestDecl] = {}
    for t in c.tests:
        if t.name in names:
            c.error("E011", f"test \"{t.name}\" is declared twice", t.span, help=f"the first is at {names[t.name].span.location}")
            continue
        names[t.name] = t
        owner = f'test "{t.name}"'
        plan = _single(c, t.items, ast.PlanStep, "plan", owner)
        expects = tuple(it for it in t.items if not isinstance(it, ast.PlanStep))
        if plan is None:
            c.error("E030", f"{owner} has no `plan`", t.span, help="start with `plan INTENT given { ... }`")
        else:
            _check_plan_step(c, plan)
        if not expects:
            c.error("E030", f"{owner} has no `expect`", t.span, help="add at least one `expect`, e.g. `expect feasible`")
        for ex in expects:
            _check_expect(c, ex)
        c.test_specs.append(TestSpec(t.name, plan, expects, t.span))


def _check_plan_step(c: _Checker, plan: ast.PlanStep) -> None:
    if not c.known("intent", plan.intent, "E014"):
        return
    intent = c.intents.get(plan.intent.name)
    if intent is None:
        return
    seen: set[str] = set()
    for gv in plan.given or ():
        n = gv.name.name
        if n in seen:
            c.error("E034", f"given value `{n}` is set twice", gv.name.span, help="set each once")
            continue
        seen.add(n)
        param = intent.given.get(n)
        if param is None:
            c.error("E015", f"intent `{intent.name}` has no given `{n}`", gv.name.span, help=did_you_mean(n, intent.given) or "declare it in the intent's `given`")
            continue
        got = type_name(gv.value.value)
        if got != param.type:
            c.error("E018", f"`{n}` takes a {param.type} value, found {got}", gv.value.span, help=f"give a {param.type} value, as declared at {param.span.location}")
        else:
            c.scan_money(gv.value)
    missing = [n for n in intent.given if n not in seen]
    if missing:
        c.error(
            "E030",
            "missing given value" + ("s " if len(missing) > 1 else " ") + ", ".join(f"`{m}`" for m in missing),
            plan.intent.span,
            help=f"intent `{intent.name}` needs every `given` value",
        )
    for ob in plan.observe or ():
        _check_observation(c, ob)


def _check_observation(c: _Checker, ob: ast.Observation) -> None:
    if ob.subject.name == "fact" and ob.word.name not in STATUS_WORDS:
        if ob.attrs is not None:
            c.error("E031", "a fact observation takes no attributes", ob.span)
        return
    if ob.word.name not in STATUS_WORDS:
        c.error(
            "E031",
            f"unknown provider status `{ob.word.name}`",
            ob.word.span,
            help="write `P up`, `P down`, `P degraded { latency 2s }`, or `fact some.fact`",
        )
        return
    c.known("provider", ob.subject, "E012")
    for a in ob.attrs or ():
        if a.name.name not in OVERRIDABLE:
            c.error("E031", f"an observation can override `latency`, `cost` or `reliability`, not `{a.name.name}`", a.name.span)
        else:
            _typed_option_attr(c, a, f"the observation of `{ob.subject.name}`")


def _check_expect(c: _Checker, ex: ast.Expectation) -> None:
    match ex:
        case ast.ExpectInfeasible():
            for n in ex.because:
                if n.name not in c.decls["policy"] and n.name not in c.decls["provider"] and n.name not in BECAUSE_WORDS:
                    c.error(
                        "E035",
                        f"`{n.name}` names no policy, provider, `goal`, `budget` or `deadline`",
                        n.span,
                        help=did_you_mean(n.name, list(c.decls["policy"]) + list(BECAUSE_WORDS)),
                    )
        case ast.ExpectVia():
            c.known("provider", ex.provider, "E012")
            c.plannable(ex.action)
        case ast.ExpectNoVia():
            _actions_exist(c, ex.actions)
            check_predicate(c, ex.pred, option_attr_reader(c), "a predicate")
        case ast.ExpectStep():
            c.plannable(ex.action)
        case ast.ExpectMetric():
            want = EXPECT_METRICS.get(ex.metric.name)
            if want is None:
                c.error("E028", f"unknown metric `{ex.metric.name}`", ex.metric.span, help="expect `cost`, `latency` or `reliability`")
            else:
                _check_bound(c, ex.value, want, f"`expect {ex.metric.name}`")
        case ast.ExpectBroken():
            if c.known("policy", ex.policy, "E035"):
                p = c.decls["policy"][ex.policy.name]
                if not any(isinstance(it, ast.Soft) for it in p.items):
                    c.error("E030", f"policy `{ex.policy.name}` is hard, so it is never broken", ex.policy.span, help="`expect broken` names a `soft` policy")


STAGES: list[tuple[str, Callable[[_Checker], None]]] = [
    ("collect_declarations", collect_declarations),
    ("resolve_providers", resolve_providers),
    ("resolve_actions", resolve_actions),
    ("resolve_intents", resolve_intents),
    ("resolve_policies", resolve_policies),
    ("check_facts", check_facts),
    ("resolve_tests", resolve_tests),
]
