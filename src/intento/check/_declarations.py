"""Checker stages 1-5: declarations, providers, actions, intents, policies; and the shapes of
expressions (fact formulas, predicates, guards) they all use.

Input: the `_Checker` state holding parsed files. Output: resolved specs and diagnostics on it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Callable

from intento.diagnostics import did_you_mean
from intento.syntax import ast
from intento.values import NUMBER_BOUND_HELP, Money, number_bound_error, type_name

from intento.check._state import (
    LIMIT_METRICS,
    MAX_DECLARATIONS,
    OVERRIDABLE,
    _Checker,
)
from intento.spec import DEFAULT_OBJECTIVE, GIVEN_TYPES, METRICS, ActionSpec, IntentSpec, Objective, OptionSpec, ParamSpec, PolicySpec, ProviderSpec, frozen_map

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


_ATTR_TYPES = {"provider": "string", "cost": "money", "latency": "duration", "reliability": "number", "region": "string", "tags": "list",
               # Set by the engine for runs that learn (docs/executor.md, "Learned figures").
               "observed_latency": "duration", "observed_reliability": "number", "observed_steps": "number"}


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
                # attr_names is complete: providers and actions (stages 2-3) come before any predicate.
                help=c.suggest(r.name, c.attr_names, "a missing attribute never equals a value"),
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
        bound = number_bound_error(w)
        if bound is not None:
            c.error("E027", f"objective weight {bound}", t.span, help=NUMBER_BOUND_HELP)
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
            elif (bound := number_bound_error(v)) is not None:
                c.error("E029", f"`soft` penalty {bound}", soft.value.span, help=NUMBER_BOUND_HELP)
            else:
                penalty = v
        reads: set[str] = set()
        if when is not None:

            def given_reader(r: ast.Ref) -> str | None:
                # Names no intent declares are reported by the `check_guards` stage.
                reads.add(r.name)
                types = declared_given.get(r.name)
                return next(iter(types)) if types and len(types) == 1 else None

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

