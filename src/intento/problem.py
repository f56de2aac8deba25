"""Lowering, part one: a request made static and exact, the same for every back-end.

Input: `Spec`, an intent, a typed context and a `ResolvedState`. Output: `Problem`: the plannable
actions with their *effective* options (degraded overrides applied), every hard rule as a
`Member` (the things a conflict explanation can name: goal, each `require`, each hard policy
statement, budget, deadline, each provider observed down, each option too slow for its action's
`timeout`), soft statements with their penalty, and integer scales that keep money exact and risk
within 1e-6.

Which options a member forbids is decided here, once, by evaluating predicates on option
attributes; `when` guards are decided here from the context.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Mapping

from intento.diagnostics import Span
from intento.evaluate import attr_lookup, evaluate, reads
from intento.request import ResolvedState
from intento.spec import ActionSpec, IntentSpec, PolicySpec, Spec
from intento.syntax import ast
from intento.syntax._format import expr as render_expr
from intento.syntax._format import _policy_item as render_statement
from intento.values import Duration, Money, Value, format_ms

#: Risk terms are sums of -ln(reliability), scaled to integers by this factor (contract: >= 1e6).
RISK_SCALE = 10**6


@dataclass(frozen=True)
class Member:
    """One rule or observation that a plan must respect; what a conflict explanation names."""

    id: str
    kind: str  # goal | require | policy | budget | deadline | down | failed | timeout
    name: str  # the user's name for it: a policy, a provider, "goal", "budget", "deadline"
    text: str  # the rule as written
    span: Span | None = field(default=None, compare=False, repr=False)
    observed_at: object = field(default=None, compare=False)
    #: For the members about one option (failed, timeout): its action.
    action: str | None = field(default=None, compare=False)

    @property
    def detail(self) -> str:
        """The rule without the option it is about: "failed" and "timeout" texts read
        "A via P: why"."""
        return self.text.split(": ", 1)[-1]


@dataclass
class Option:
    action: str
    provider: str
    index: int
    cost: Decimal
    latency_ms: int
    reliability: Decimal
    attrs: Mapping[str, Value]
    risk: int  # round(-ln(reliability) * RISK_SCALE)
    #: Members that forbid this option whatever else is chosen (down provider, too slow for the
    #: action's timeout, hard forbids).
    forbidden_by: list[Member] = field(default_factory=list)
    #: Soft statements this option violates when chosen.
    soft_violations: list["SoftStatement"] = field(default_factory=list)


@dataclass
class Act:
    name: str
    index: int
    spec: ActionSpec
    requires: ast.Expr | None
    achieves: tuple[str, ...]
    options: list[Option]
    #: Completed earlier in the run: kept as fixed history (see `build_problem`).
    done: bool = False


@dataclass
class Rule:
    """A rule that is not a static forbid: decided by the solver over the whole plan."""

    member: Member | None  # None for the soft ones (see `SoftStatement`)
    statement: object  # the AST statement, or a synthetic tuple for goal/budget/deadline


@dataclass
class SoftStatement:
    id: str
    policy: str
    text: str
    penalty: Decimal
    statement: ast.Statement
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass
class Problem:
    spec: Spec
    intent: IntentSpec
    context: Mapping[str, Value]
    state: ResolvedState
    actions: list[Act]
    members: list[Member]
    #: Solver-decided hard rules: ("goal", formula), ("require", formula),
    #: ("limit", metric, op, value), ("count", options, op, n), ("distinct", actions),
    #: ("budget", amount), ("deadline", ms) - each tied to a member.
    rules: list[tuple[Member, tuple]]
    soft: list[SoftStatement]
    #: Soft rules decided by the solver, same shapes as `rules`.
    soft_rules: list[tuple[SoftStatement, tuple]]
    #: `require F before A` statements, hard (a Member) or soft (a SoftStatement): they delay A
    #: until F holds, so they are part of A's requirement rather than a check after scheduling.
    befores: list[tuple[Member | SoftStatement, ast.Expr, str]]
    money_scale: int
    applicable: list[PolicySpec]
    #: Requests with equal shapes compile to the same model (only given values that decide no
    #: guard differ); set by `solve.prepare`, None when unknown.
    shape: tuple | None = field(default=None, compare=False)
    #: (action, provider) -> option and action -> Act, built on first use (`option`, `act`): a
    #: lookup per option keeps model building linear in the project's size.
    _index: tuple[dict, dict] | None = field(default=None, init=False, compare=False, repr=False)

    def _indexes(self) -> tuple[dict, dict]:
        # INVARIANT: `actions` and their options are not changed after the problem is built
        # (copies made by `solve.prepare` share them, and so may share the index).
        if self._index is None:
            self._index = (
                {(a.name, o.provider): o for a in self.actions for o in a.options},
                {a.name: a for a in self.actions},
            )
        return self._index

    def option(self, action: str, provider: str) -> Option | None:
        return self._indexes()[0].get((action, provider))

    def act(self, action: str) -> Act | None:
        """The plannable action of that name (None for an unknown or compensating one)."""
        return self._indexes()[1].get(action)

    def money_int(self, d: Decimal) -> int:
        v = d * self.money_scale
        # INVARIANT: money_scale covers every decimal place of every amount in the problem.
        assert v == v.to_integral_value(), d
        return int(v)

    @property
    def currency(self) -> str:
        return self.spec.currency or ""

    @property
    def penalty_scale(self) -> int:
        """10^(decimal places of the soft penalties): penalties as integers."""
        return 10 ** max([0] + [max(0, -s.penalty.as_tuple().exponent) for s in self.soft])

    def weighted_scales(self) -> tuple[int, int]:
        """(S, D) such that the integer weighted objective is D * S * (its value in natural units)."""
        scale = max(self.money_scale, 1000, RISK_SCALE)
        places = max([0] + [max(0, -w.as_tuple().exponent) for _, w in self.intent.objective.terms])
        return scale, max(10**places, self.penalty_scale)

    def metric_units(self) -> dict[str, int]:
        """How many integer units make one natural unit of each metric."""
        return {"cost": self.money_scale, "latency": 1000, "risk": RISK_SCALE}


def risk_int(reliability: Decimal) -> int:
    """round(-ln(r) * RISK_SCALE), computed in decimal arithmetic so it is the same everywhere."""
    if reliability >= 1:
        return 0
    return int((-reliability.ln() * RISK_SCALE).to_integral_value(rounding=ROUND_HALF_EVEN))


def policy_applies(policy: PolicySpec, intent: IntentSpec, context: Mapping[str, Value]) -> bool:
    """A policy applies unless its `when` is decided false. A guard that cannot be decided (it
    reads a name the intent does not declare, or a value missing or of a type its comparison
    cannot compare) fails closed: the policy applies (docs/language.md, "Policies")."""
    from intento.evaluate import decide_guard

    if policy.when is None:
        return True
    if not reads(policy.when) <= set(intent.given):
        return True
    return decide_guard(policy.when, {n: context[n] for n in intent.given if n in context}) is not False


def statement_text(st: ast.Statement) -> str:
    return render_statement(st)


def build_problem(
    spec: Spec,
    intent: IntentSpec,
    context: Mapping[str, Value],
    state: ResolvedState,
    excluded: Mapping[tuple[str, str], str] | None = None,
    done: Mapping[str, str] | None = None,
    learned: Mapping[str, Mapping] | None = None,
) -> Problem:
    """``learned``: ``"action|provider"`` -> the figures a run learnt (`intento.learn.figures`):
    the option is planned with that latency and reliability, and its attributes
    `observed_latency`, `observed_reliability` and `observed_steps` hold them for policies
    (`forbid via where observed_reliability < 0.9`); its `latency` and `reliability` attributes
    and its timeout check keep the declared values.

    ``excluded``: (action, provider) -> why, options a run has learnt will not work (a
    permanent failure, an external fact that never came); each becomes a member of its own.

    ``done``: action -> provider, steps a run has already completed. They stay in the problem as
    fixed history (only that option, no further cost, time or risk, exempt from forbids: history
    cannot be undone), so that rules over the whole plan (`distinct provider`, `count`) still see
    them when the rest is re-planned."""
    done = dict(done or {})
    members: list[Member] = []
    rules: list[tuple[Member, tuple]] = []
    soft: list[SoftStatement] = []
    soft_rules: list[tuple[SoftStatement, tuple]] = []
    befores: list[tuple[Member | SoftStatement, ast.Expr, str]] = []

    # -- options with observed overrides --
    actions: list[Act] = []
    down_members: dict[str, Member] = {}
    for pname, since in state.down.items():
        m = Member(f"down:{pname}", "down", pname, f"{pname} observed down", spec.providers[pname].span, since)
        down_members[pname] = m
    failed_members: list[Member] = []
    slow_members: list[Member] = []
    for a in spec.plannable_actions():
        opts = []
        if a.name in done:
            o = a.option(done[a.name])
            attrs = dict(o.attrs, cost=Money(Decimal(0), spec.currency or ""))
            opts.append(Option(a.name, o.provider, o.index, Decimal(0), 0, Decimal(1), attrs, 0))
            actions.append(Act(a.name, a.index, a, a.requires, a.achieves, opts, done=True))
            continue
        for o in a.options:
            ov = state.overrides.get(o.provider)
            cost, lat, rel = o.cost, o.latency_ms, o.reliability
            attrs = dict(o.attrs)
            if ov is not None:
                if ov.cost is not None:
                    cost = ov.cost
                    attrs["cost"] = Money(cost, spec.currency or "")
                if ov.latency_ms is not None:
                    lat = ov.latency_ms
                    attrs["latency"] = Duration(lat)
                if ov.reliability is not None:
                    rel = ov.reliability
                    attrs["reliability"] = rel
            lf = (learned or {}).get(f"{a.name}|{o.provider}")
            plan_lat, plan_rel = lat, rel
            if lf is not None:
                plan_lat, plan_rel = int(lf["latency_ms"]), Decimal(str(lf["reliability"]))
                attrs["observed_latency"], attrs["observed_reliability"], attrs["observed_steps"] = Duration(plan_lat), plan_rel, Decimal(int(lf["samples"]))
            opt = Option(a.name, o.provider, o.index, cost, plan_lat, plan_rel, attrs, risk_int(plan_rel))
            if o.provider in down_members:
                opt.forbidden_by.append(down_members[o.provider])
            slow = _too_slow(a, o.provider, lat, degraded=ov is not None and ov.latency_ms is not None, span=o.span)
            if slow is not None:
                slow_members.append(slow)
                opt.forbidden_by.append(slow)
            why = (excluded or {}).get((a.name, o.provider))
            if why is not None:
                m = Member(f"failed:{a.name}@{o.provider}", "failed", o.provider, f"{a.name} via {o.provider}: {why}", o.span, action=a.name)
                failed_members.append(m)
                opt.forbidden_by.append(m)
            opts.append(opt)
        actions.append(Act(a.name, a.index, a, a.requires, a.achieves, opts))
    by_name = {a.name: a for a in actions}

    # -- the intent's own rules --
    goal = Member("goal", "goal", "goal", f"goal {render_expr(intent.goal)}", intent.goal_span)
    members.append(goal)
    rules.append((goal, ("goal", intent.goal)))
    if intent.budget is not None:
        m = Member("budget", "budget", "budget", f"budget {intent.budget} {spec.currency}", intent.budget_span)
        members.append(m)
        rules.append((m, ("budget", intent.budget)))
    if intent.deadline_ms is not None:
        m = Member("deadline", "deadline", "deadline", f"deadline {Duration(intent.deadline_ms)}", intent.deadline_span)
        members.append(m)
        rules.append((m, ("deadline", intent.deadline_ms)))
    members.extend(down_members.values())
    members.extend(failed_members)
    members.extend(slow_members)

    # -- policies --
    applicable = [p for p in spec.policies.values() if policy_applies(p, intent, context)]
    for p in applicable:
        for i, st in enumerate(p.statements):
            text = statement_text(st)
            sid = f"policy:{p.name}#{i}"
            if p.soft is not None:
                s = SoftStatement(sid, p.name, text, p.soft, st, st.span)
                soft.append(s)
                forbidden = _static_forbids(st, actions)
                if forbidden is not None:
                    for o in forbidden:
                        o.soft_violations.append(s)
                elif isinstance(st, ast.RequireBefore):
                    befores.append((s, st.formula, st.action.name))
                else:
                    soft_rules.append((s, _dynamic(st, actions, by_name)))
                continue
            m = Member(sid, "require" if isinstance(st, ast.RequireFact) else "policy", p.name, text, st.span)
            members.append(m)
            forbidden = _static_forbids(st, actions)
            if forbidden is not None:
                for o in forbidden:
                    o.forbidden_by.append(m)
            elif isinstance(st, ast.RequireBefore):
                befores.append((m, st.formula, st.action.name))
            else:
                rules.append((m, _dynamic(st, actions, by_name)))

    amounts = [o.cost for a in actions for o in a.options]
    if intent.budget is not None:
        amounts.append(intent.budget)
    for _, r in rules + [(None, r) for _, r in soft_rules]:
        if r[0] == "limit" and r[1] == "cost":
            amounts.append(r[3])
    places = max([0] + [max(0, -d.as_tuple().exponent) for d in amounts if d.is_finite()])
    problem = Problem(spec, intent, context, state, actions, members, rules, soft, soft_rules, befores, 10**places, applicable)
    check_magnitudes(problem)
    return problem


#: Largest magnitude any expression of the model may reach: CP-SAT works on int64 (below 2^63)
#: and adds a few such bounds together when it checks and presolves a model.
MAX_MAGNITUDE = 2**60


def magnitudes(problem: Problem) -> list[tuple[str, int, Span | None]]:
    """Upper bounds on the integer expressions a model of ``problem`` holds, whatever is chosen
    or relaxed: (what, bound, where to point). Each sums over every option of every action, as
    CP-SAT's own overflow check does."""
    p = problem
    intent = p.intent
    worst_cost = max(((abs(o.cost), o) for a in p.actions for o in a.options), key=lambda t: t[0], default=(0, None))[1]
    worst_lat = max(((o.latency_ms, o) for a in p.actions for o in a.options), key=lambda t: t[0], default=(0, None))[1]

    def where(o: Option | None) -> Span | None:
        if o is None:
            return intent.span
        act = p.act(o.action)
        opt = act.spec.option(o.provider) if act is not None else None
        return getattr(opt, "span", None) or intent.span

    cost = sum(abs(p.money_int(o.cost)) for a in p.actions for o in a.options)
    constants = [abs(p.money_int(intent.budget))] if intent.budget is not None else []
    constants += [abs(p.money_int(r[3])) for _, r in p.rules + p.soft_rules if r[0] == "limit" and r[1] == "cost"]
    horizon = sum(max((o.latency_ms for o in a.options), default=0) for a in p.actions)
    risk = sum(o.risk for a in p.actions for o in a.options)
    penalty = sum(int(abs(s.penalty) * p.penalty_scale) for s in p.soft)
    out = [
        ("the total cost of every option", max([cost] + constants), where(worst_cost)),
        ("the total latency of every action one after another", horizon, where(worst_lat)),
        ("the total risk of every option", risk, intent.span),
    ]
    worst_soft = max(p.soft, key=lambda s: (-s.penalty.as_tuple().exponent, abs(s.penalty)), default=None)
    out.append(("the total soft penalty", penalty, worst_soft.span if worst_soft else intent.span))
    if intent.objective.kind != "lex":
        scale, weight_scale = p.weighted_scales()
        units = p.metric_units()
        bound = {"cost": cost, "latency": horizon, "risk": risk}
        total = sum(int(abs(w) * weight_scale) * (scale // units[name]) * bound[name] for name, w in intent.objective.terms)
        total += (weight_scale // p.penalty_scale) * scale * penalty
        out.append(("the weighted objective", total, intent.objective.span or intent.span))
    return out


def check_magnitudes(problem: Problem) -> None:
    """Raise a located `RequestError` (E111) when a model of ``problem`` could overflow CP-SAT's
    64-bit integers: the last line of defence behind the bounds of docs/language.md "Limits",
    for combinations that each value alone cannot reveal (many huge amounts summed, weights and
    penalties with many decimal places)."""
    from intento.diagnostics import Diagnostic, RequestError, Severity

    for what, bound, span in magnitudes(problem):
        if bound > MAX_MAGNITUDE:
            digits = len(str(bound)) - 1
            raise RequestError(
                [
                    Diagnostic(
                        "E111",
                        Severity.error,
                        f"intent `{problem.intent.name}` cannot be planned exactly: {what} reaches about 10^{digits} units, beyond the planner's 64-bit integers",
                        span,
                        "too large or too precise",
                        help="use smaller amounts or durations, or fewer decimal places in costs, weights and `soft` penalties",
                    )
                ]
            )


def _too_slow(action: ActionSpec, provider: str, latency_ms: int, degraded: bool, span: Span | None) -> Member | None:
    """The member that rules out an option whose latency exceeds the action's `timeout`: the
    executor would fail such a step before it could finish (equal is allowed). Without a
    declared timeout nothing is ruled out (an external action's default is 3 x its latency)."""
    if action.timeout_ms is None or latency_ms <= action.timeout_ms:
        return None
    what = "degraded latency" if degraded else "latency"
    text = f"{action.name} via {provider}: {what} {format_ms(latency_ms)} exceeds the action's timeout {format_ms(action.timeout_ms)}"
    return Member(f"timeout:{action.name}@{provider}", "timeout", provider, text, span, action=action.name)


def _scope(actions_idents, actions: list[Act]) -> list[Act]:
    if actions_idents is None:
        return actions
    names = {i.name for i in actions_idents}
    return [a for a in actions if a.name in names]


def _static_forbids(st: ast.Statement, actions: list[Act]) -> list[Option] | None:
    """The options a statement forbids on their own, or None if the solver must decide it.
    Never a completed step's (``Act.done``): history is not judged again."""
    actions = [a for a in actions if not a.done]
    match st:
        case ast.ForbidVia():
            return [o for a in _scope(st.actions, actions) for o in a.options if evaluate(st.pred, attr_lookup(o.attrs))]
        case ast.RequireFor():
            return [o for a in _scope(st.actions, actions) for o in a.options if not evaluate(st.pred, attr_lookup(o.attrs))]
        case ast.ForbidProvider():
            return [o for a in actions for o in a.options if o.provider == st.provider.name]
        case ast.ForbidAction():
            return [o for a in actions if a.name == st.action.name for o in a.options]
    return None


def _dynamic(st: ast.Statement, actions: list[Act], by_name: dict[str, Act]) -> tuple:
    match st:
        case ast.RequireFact():
            return ("require", st.formula)
        case ast.Limit():
            v = st.value.value
            value = v.amount if isinstance(v, Money) else v.ms if isinstance(v, Duration) else v
            return ("limit", st.metric.name, st.op, value)
        case ast.LimitCount():
            matching = [(o.action, o.provider) for a in _scope(st.actions, actions) for o in a.options if evaluate(st.pred, attr_lookup(o.attrs))]
            return ("count", matching, st.op, int(st.value.value))
        case ast.Distinct():
            return ("distinct", [a.name for a in st.actions])
    raise AssertionError(f"not a dynamic statement: {st!r}")
