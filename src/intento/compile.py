"""Lowering, part two: `Problem` to a CP-SAT model.

Input: a `Problem` (see problem.py). Output: `Compiled`: the CP-SAT model, its variables by name,
the metric expressions (cost, latency, risk, soft penalty), and one enforcement literal per
`Member` when asked for (explanations use them as assumptions; plain planning fixes them true).

The encoding (docs/planning.md has the long form):

* ``x[a, p]`` — action `a` is done through provider `p`; ``use[a] = sum_p x[a, p] <= 1``.
* ``end[a] = start[a] + sum_p latency(a, p) * x[a, p]``; an unused action has start = end = 0.
* A fact's time ``t[f]`` is 0 when observed, else the earliest end among the chosen actions that
  achieve it (``H + 1``, "never", when none is chosen): a min-equality over "end if used else
  H + 1". A formula's time is the max (`and`) / min (`or`) of its parts.
* A used step starts exactly when its `requires` holds (``start = t[requires] <= H``), so steps
  start as early as their requirements allow and the makespan is exact; only a step that may run
  on a provider whose `capacity` can bind may wait longer (``start >= t[requires]``).
* The goal and every ``require F`` hold at the end: ``t[F] <= H``; ``require F before A``:
  ``t[F] <= start[A]`` when A is used.
* Makespan ``M = max end[a]``; deadline and latency limits bound M.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from intento.backends._ortools import CpModel, cp_model

from intento.evaluate import COMPARE, FLIP
from intento.problem import Act, Member, Problem, risk_int
from intento.syntax import ast



@dataclass
class Compiled:
    model: cp_model.CpModel
    problem: Problem
    horizon: int
    x: dict[tuple[str, str], cp_model.IntVar] = field(default_factory=dict)
    use: dict[str, cp_model.IntVar] = field(default_factory=dict)
    start: dict[str, cp_model.IntVar] = field(default_factory=dict)
    end: dict[str, cp_model.IntVar] = field(default_factory=dict)
    makespan: cp_model.IntVar | None = None
    cost: cp_model.LinearExpr | int = 0
    risk: cp_model.LinearExpr | int = 0
    penalty: cp_model.LinearExpr | int = 0
    penalty_scale: int = 1
    violated: dict[str, cp_model.IntVar] = field(default_factory=dict)
    #: Enforcement literal of each member (only when compiled with ``literals=True``).
    literals: dict[str, cp_model.IntVar] = field(default_factory=dict)
    #: Actions that may wait past their requirement because of a capacity that can bind.
    waiting: set[str] = field(default_factory=set)
    #: Whether a formula holds at all, as a literal or 0/1 (set by `compile_problem`).
    holds: object = None
    #: Which member each group of constraints came from (member id -> number of constraints).
    origin: dict[str, int] = field(default_factory=dict)


def compile_problem(
    problem: Problem,
    *,
    literals: bool = False,
    relax: frozenset[str] = frozenset(),
    force: dict[str, str] | None = None,
    model: cp_model.CpModel | None = None,
    prefix: str = "",
    shared_capacity: set[str] | None = None,
    horizon: int | None = None,
) -> Compiled:
    """Build the model. ``relax``: member ids left out; ``force``: action -> provider fixed;
    ``literals``: every member gets an enforcement literal (for assumptions) instead of being
    enforced outright, and statically forbidden options stay in the model behind it.

    Batches (batch.py) compile several problems into one ``model`` with distinct ``prefix``es and
    pass ``shared_capacity``: the providers whose capacity the batch enforces across all of them
    (this function then adds no capacity constraint of its own), and a ``horizon`` long enough for
    the whole batch to run one step at a time."""
    m = model if model is not None else CpModel()
    force = force or {}

    def active(member: Member) -> bool:
        return member.id not in relax

    def lit_of(member: Member):
        if not literals:
            return []
        if member.id not in c.literals:
            c.literals[member.id] = m.new_bool_var(f"{prefix}member[{member.id}]")
        return [c.literals[member.id]]

    allowed: dict[str, list] = {}
    for a in problem.actions:
        opts = []
        for o in a.options:
            blockers = [b for b in o.forbidden_by if active(b)]
            if blockers and not literals:
                continue
            if a.name in force and force[a.name] != o.provider:
                continue
            opts.append((o, blockers))
        allowed[a.name] = opts
    # Forward, then backward: only actions whose requirement can ever hold (from the observed
    # facts, through actions with an option left), and among those only the ones an optimal plan
    # can need. Both only drop actions no plan (resp. no optimal plan) of this model can use.
    reach = None
    if FORWARD_PRUNING:
        waits = [] if literals else [(f, t) for owner, f, t in problem.befores if isinstance(owner, Member) and active(owner)]
        reach = reachable_actions(problem, allowed, waits, force)
    needed = relevant_actions(problem, force, within=reach)
    for a in problem.actions:
        if (reach is not None and a.name not in reach) or (needed is not None and a.name not in needed):
            allowed[a.name] = []
    if not literals:
        _drop_dominated(problem, allowed, force)
    if horizon is None:
        horizon = serial_horizon(problem, allowed)
    deadline = problem.intent.deadline_ms
    if deadline is not None and "deadline" not in relax and not literals:
        horizon = min(horizon, deadline)
    horizon = max(horizon, 0)
    never = horizon + 1
    c = Compiled(m, problem, horizon)

    capacity_binding = _binding_capacities(problem, allowed) if shared_capacity is None else shared_capacity
    zero = None
    for a in problem.actions:
        opts = allowed[a.name]
        if not opts and not (a.name in force or a.done):
            # Never used (pruned, or no option left): one shared constant stands for its use,
            # start and end, so a large project's unusable actions cost the model nothing.
            if zero is None:
                zero = m.new_constant(0)
            c.use[a.name] = c.start[a.name] = c.end[a.name] = zero
            continue
        use = m.new_bool_var(f"{prefix}use[{a.name}]")
        c.use[a.name] = use
        xs = []
        for o, blockers in opts:
            xv = m.new_bool_var(f"{prefix}x[{a.name},{o.provider}]")
            c.x[(a.name, o.provider)] = xv
            xs.append((o, xv))
            for b in blockers:
                m.add_implication(xv, lit_of(b)[0].negated())
            if o.provider in capacity_binding:
                c.waiting.add(a.name)
        m.add(sum(xv for _, xv in xs) == use)
        if a.name in force or a.done:
            m.add(use == 1)
        start = m.new_int_var(0, horizon, f"{prefix}start[{a.name}]")
        end = m.new_int_var(0, horizon, f"{prefix}end[{a.name}]")
        m.add(end == start + sum(o.latency_ms * xv for o, xv in xs))
        m.add(start == 0).only_enforce_if(use.negated())
        c.start[a.name], c.end[a.name] = start, end
        if not xs:
            m.add(use == 0)

    # -- fact and formula times --
    achievers: dict[str, list[str]] = {}
    for a in problem.actions:
        if allowed[a.name]:
            for f in a.achieves:
                achievers.setdefault(f, []).append(a.name)
    end_or_never: dict[str, cp_model.IntVar] = {}

    def eon(name: str):
        if name not in end_or_never:
            v = m.new_int_var(0, never, f"end_or_never[{name}]")
            m.add(v == c.end[name]).only_enforce_if(c.use[name])
            m.add(v == never).only_enforce_if(c.use[name].negated())
            end_or_never[name] = v
        return end_or_never[name]

    fact_time: dict[str, object] = {}

    def t_fact(f: str):
        if f in problem.state.facts:
            return 0
        if f not in fact_time:
            srcs = achievers.get(f, [])
            if not srcs:
                fact_time[f] = never
            else:
                v = m.new_int_var(0, never, f"t[{f}]")
                m.add_min_equality(v, [eon(s) for s in srcs])
                fact_time[f] = v
        return fact_time[f]

    formula_cache: dict[str, object] = {}

    def t_formula(e: ast.Expr):
        match e:
            case ast.Ref():
                return t_fact(e.name)
            case ast.And() | ast.Or():
                key = repr(e)
                if key not in formula_cache:
                    parts = [t_formula(x) for x in e.items]
                    v = m.new_int_var(0, never, f"t[{type(e).__name__.lower()}#{len(formula_cache)}]")
                    if isinstance(e, ast.And):
                        m.add_max_equality(v, parts)
                    else:
                        m.add_min_equality(v, parts)
                    formula_cache[key] = v
                return formula_cache[key]
        raise AssertionError(f"not a fact formula: {e!r}")

    # -- redundant boolean reachability: whether a fact or formula holds at all. Implied by the
    # times above, but linear, so the LP relaxation sees which actions the goal needs (cost and
    # step-count stages prove their optimum far sooner with it).
    hold_cache: dict[str, object] = {}

    def holds(e: ast.Expr):
        key = repr(e)
        if key in hold_cache:
            return hold_cache[key]
        match e:
            case ast.Ref() if e.name in problem.state.facts:
                h = 1
            case ast.Ref():
                srcs = achievers.get(e.name, [])
                if not srcs:
                    h = 0
                else:
                    h = m.new_bool_var(f"{prefix}holds[{e.name}]")
                    m.add(h <= sum(c.use[s] for s in srcs))
                    for s in srcs:
                        m.add(c.use[s] <= h)
                    t = t_fact(e.name)
                    m.add(t <= horizon).only_enforce_if(h)
                    m.add(t == never).only_enforce_if(h.negated())
            case ast.And() | ast.Or():
                every = isinstance(e, ast.And)
                parts = [holds(x) for x in e.items]
                consts = {x for x in parts if isinstance(x, int)}
                lits = [x for x in parts if not isinstance(x, int)]
                absorbing = 0 if every else 1
                if absorbing in consts:
                    h = absorbing
                elif not lits:
                    h = 1 - absorbing
                else:
                    h = m.new_bool_var(f"{prefix}holds[{type(e).__name__.lower()}#{len(hold_cache)}]")
                    if every:  # h == min(lits)
                        m.add(h >= sum(lits) - (len(lits) - 1))
                        for x in lits:
                            m.add(h <= x)
                    else:  # h == max(lits)
                        m.add(h <= sum(lits))
                        for x in lits:
                            m.add(x <= h)
            case _:
                raise AssertionError(f"not a fact formula: {e!r}")
        hold_cache[key] = h
        return h

    c.holds = holds

    # -- soft statements get a violation literal each (priced below) --
    for s in problem.soft:
        c.violated[s.id] = m.new_bool_var(f"{prefix}violated[{s.id}]")

    # -- whether every capacity holds all its chosen steps at once (single requests only: in a
    # batch the others' steps count too): then no step needs to wait --
    fits = None
    if shared_capacity is None and c.waiting:
        over = []
        for pname in sorted(capacity_binding):
            cap = problem.spec.providers[pname].capacity
            o = m.new_bool_var(f"{prefix}over[{pname}]")
            # (with slots held by other work, one step may already have to wait for them)
            least = 1 if problem.state.busy.get(pname) else cap + 1
            m.add(sum(xv for (an, pv), xv in c.x.items() if pv == pname) >= least).only_enforce_if(o)
            over.append(o)
        fits = m.new_bool_var(f"{prefix}fits")
        m.add_bool_or(over + [fits])
        for o in over:
            m.add_implication(fits, o.negated())

    # -- when each used step starts: its `requires` and every `require F before` it honours --
    befores_of: dict[str, list] = {}
    for owner, formula, target in problem.befores:
        befores_of.setdefault(target, []).append((owner, formula))
    xs_of: dict[str, list] = {}
    for (an, pv), xv in c.x.items():
        xs_of.setdefault(an, []).append((pv, xv))
    for a in problem.actions:
        if not allowed[a.name]:
            continue
        use, start = c.use[a.name], c.start[a.name]
        if a.requires is not None:
            h = holds(a.requires)
            if isinstance(h, int):
                if h == 0:
                    m.add(use == 0)
            else:
                m.add(use <= h)
        parts = [t_formula(a.requires)] if a.requires is not None else []
        for owner, formula in befores_of.get(a.name, ()):
            if isinstance(owner, Member):
                if not active(owner):
                    continue
                enforce = lit_of(owner)
            else:
                enforce = [c.violated[owner.id].negated()]
            if not enforce:
                parts.append(t_formula(formula))
                continue
            g = m.new_int_var(0, never, f"before[{owner.id}]")
            m.add(g == t_formula(formula)).only_enforce_if(enforce)
            m.add(g == 0).only_enforce_if(enforce[0].negated())
            parts.append(g)
            if not isinstance(owner, Member):
                # Breaking a soft `before` means the step did not wait for F, which the
                # violation literal stands for only when F was in fact late.
                m.add(t_formula(formula) > start).only_enforce_if([enforce[0].negated(), use])
        if not parts:
            t = 0
        elif len(parts) == 1:
            t = parts[0]
        else:
            t = m.new_int_var(0, never, f"ready[{a.name}]")
            m.add_max_equality(t, parts)
        if a.name in c.waiting:
            m.add(start >= t).only_enforce_if(use)
            # Only a step on a provider whose capacity binds ever waits (moving any other one to
            # its ready time keeps every capacity and ends nothing later), and none waits when no
            # capacity is exceeded at all: the contract's schedule is then the earliest one.
            for pv, xv in xs_of.get(a.name, ()):
                if pv not in capacity_binding:
                    m.add(start == t).only_enforce_if(xv)
            if fits is not None:
                m.add(start == t).only_enforce_if([use, fits])
        else:
            m.add(start == t).only_enforce_if(use)

    # -- makespan and metrics --
    c.makespan = m.new_int_var(0, horizon, f"{prefix}makespan")
    ends = [c.end[a.name] for a in problem.actions if c.end[a.name] is not zero]
    if ends:
        m.add_max_equality(c.makespan, ends)
    else:
        m.add(c.makespan == 0)
    c.cost = sum(problem.money_int(o.cost) * xv for (an, p), xv in c.x.items() for o in [problem.option(an, p)])
    c.risk = sum(o.risk * xv for (an, p), xv in c.x.items() for o in [problem.option(an, p)] if o.risk)

    # -- capacity: steps running at once on one provider --
    for pname in sorted(capacity_binding if shared_capacity is None else ()):
        cap = problem.spec.providers[pname].capacity
        intervals = []
        for (an, p), xv in c.x.items():
            if p == pname:
                o = problem.option(an, p)
                intervals.append(m.new_optional_fixed_size_interval_var(c.start[an], o.latency_ms, xv, f"run[{an},{p}]"))
        # slots other work holds now, each until it is expected back (observed `busy`)
        for i, ms in enumerate(problem.state.busy.get(pname, ())):
            intervals.append(m.new_fixed_size_interval_var(0, ms, f"busy[{pname},{i}]"))
        m.add_cumulative(intervals, [1] * len(intervals), cap)

    # -- hard rules --
    for member, rule in problem.rules:
        if not active(member):
            continue
        enforce = lit_of(member)
        n_before = len(m.proto.constraints)
        _add_rule(c, rule, t_formula, enforce, never)
        c.origin[member.id] = len(m.proto.constraints) - n_before
    if literals:
        # Every member needs its literal even when it holds no constraint of its own (static forbids).
        for member in problem.members:
            if active(member):
                lit_of(member)

    # -- soft statements: a violation literal each, priced by its penalty --
    c.penalty_scale = problem.penalty_scale
    terms = [int(s.penalty * c.penalty_scale) * c.violated[s.id] for s in problem.soft]
    for a in problem.actions:
        for o in a.options:
            xv = c.x.get((a.name, o.provider))
            if xv is not None:
                for s in o.soft_violations:
                    m.add_implication(xv, c.violated[s.id])
    for s, rule in problem.soft_rules:
        _add_rule(c, rule, t_formula, [c.violated[s.id].negated()], never)
    c.penalty = sum(terms)
    return c


def _add_rule(c: Compiled, rule: tuple, t_formula, enforce: list, never: int) -> None:
    m, p = c.model, c.problem
    kind = rule[0]
    if kind in ("goal", "require"):
        m.add(t_formula(rule[1]) <= c.horizon).only_enforce_if(enforce)
        h = c.holds(rule[1])
        if isinstance(h, int):
            if h == 0:
                m.add_bool_or([]).only_enforce_if(enforce)
        elif not enforce:
            m.add(h == 1)
        else:
            m.add(h >= enforce[0])
    elif kind == "budget":
        m.add(c.cost <= p.money_int(rule[1])).only_enforce_if(enforce)
    elif kind == "deadline":
        m.add(c.makespan <= rule[1]).only_enforce_if(enforce)
    elif kind == "limit":
        _, metric, op, value = rule
        if metric == "cost":
            m.add(COMPARE[op](c.cost, p.money_int(value))).only_enforce_if(enforce)
        elif metric == "latency":
            m.add(COMPARE[op](c.makespan, int(value))).only_enforce_if(enforce)
        elif metric == "reliability":
            _reliability_limit(c, op, value, enforce)
    elif kind == "count":
        _, matching, op, n = rule
        present = [c.x[k] for k in matching if k in c.x]
        # The count lies in [0, len(present)]: a bound beyond it compares alike with the nearest
        # value outside that range, which keeps an enormous written bound out of the model.
        n = max(-1, min(n, len(present) + 1))
        m.add(COMPARE[op](sum(present), n)).only_enforce_if(enforce)
    elif kind == "distinct":
        names = rule[1]
        providers = {pv for (an, pv) in c.x if an in names}
        for pv in sorted(providers):
            group = [c.x[(an, pv)] for an in names if (an, pv) in c.x]
            if len(group) > 1:
                m.add(sum(group) <= 1).only_enforce_if(enforce)
    else:  # pragma: no cover - a new rule kind without an encoding is a bug
        raise AssertionError(f"no encoding for rule {rule!r}")


def _reliability_limit(c: Compiled, op: str, value, enforce: list) -> None:
    """reliability OP v  <=>  sum(-ln r) FLIP(OP) -ln v, on the integer risk scale."""
    m = c.model
    if value <= 0:
        # The product of reliabilities is always above 0.
        if op in (">=", ">"):
            return
        m.add_bool_or([]).only_enforce_if(enforce)  # never satisfiable
        return
    bound = risk_int(value)
    m.add(COMPARE[FLIP[op]](c.risk, bound)).only_enforce_if(enforce)


def serial_horizon(problem: Problem, allowed=None) -> int:
    """An upper bound on any schedule's makespan: every action, one after another, slowest option,
    after every slot other work holds (observed `busy`) is back."""
    wait = max((max(v) for v in problem.state.busy.values() if v), default=0)
    if allowed is None:
        return wait + sum(max((o.latency_ms for o in a.options if not o.forbidden_by), default=0) for a in problem.actions)
    return wait + sum(max((o.latency_ms for o, _ in allowed[a.name]), default=0) for a in problem.actions)


def _binding_capacities(problem: Problem, allowed) -> set[str]:
    """Providers whose capacity is below the number of steps that could run on them at once."""
    counts: dict[str, int] = {}
    for a in problem.actions:
        for o, _ in allowed[a.name]:
            counts[o.provider] = counts.get(o.provider, 0) + 1
    busy = problem.state.busy
    return {
        p
        for p, n in counts.items()
        if problem.spec.providers[p].capacity is not None and problem.spec.providers[p].capacity < n + len(busy.get(p, ()))
    }


#: Rules that can make a plan better for holding *more* steps: a floor on a count, on the cost
#: or on the makespan, or a ceiling on reliability (a floor on risk).
_FLOOR_OPS = (">=", ">", "==")


def _rewards_more_steps(rule: tuple) -> bool:
    if rule[0] == "count":
        return rule[2] in _FLOOR_OPS
    if rule[0] == "limit":
        _, metric, op, _ = rule
        return op in (("<=", "<", "==") if metric == "reliability" else _FLOOR_OPS)
    return False


def _all_rules(problem: Problem) -> tuple[list[tuple], bool]:
    """Every hard and soft solver-decided rule, and whether one of them rewards more steps."""
    rules = [r for _, r in problem.rules] + [r for _, r in problem.soft_rules]
    return rules, any(_rewards_more_steps(r) for r in rules)


def relevant_actions(problem: Problem, force: dict[str, str] | None = None, within: set[str] | None = None) -> set[str] | None:
    """The actions an optimal plan can contain, or None when every action may be.

    An action that achieves nothing the goal, a `require`, a `before` or the requirement of
    another such action reads can only add cost, latency, risk and steps, and break rules, so no
    optimal plan (tie-break: fewer steps) holds it - unless a rule rewards more steps (a floor on
    a count, cost or latency, a ceiling on reliability), a weight is negative, or an option costs
    less than nothing. Leaving such actions out of the model is exact and shrinks large estates
    by about half (benchmarks/plan_latency.py).

    ``within``: the actions any plan can use at all (`reachable_actions`), None for all; an
    action outside it neither is kept nor makes what it requires relevant. Linear in the size of
    the problem: one pass over each needed fact's achievers."""
    from intento.evaluate import formula_facts

    rules, rewarding = _all_rules(problem)
    if rewarding:
        return None
    obj = problem.intent.objective
    if obj.kind != "lex" and any(w < 0 for _, w in obj.terms):
        return None
    if any(o.cost < 0 for a in problem.actions for o in a.options):
        return None
    facts: set[str] = set()
    for r in rules:
        if r[0] in ("goal", "require"):
            facts |= formula_facts(r[1])
    for _, formula, _ in problem.befores:
        facts |= formula_facts(formula)
    keep = {a.name for a in problem.actions if a.done or a.name in (force or {})}
    achievers: dict[str, list[Act]] = {}
    for a in problem.actions:
        if a.name in keep:
            facts |= formula_facts(a.requires)
        elif within is None or a.name in within:
            for f in a.achieves:
                achievers.setdefault(f, []).append(a)
    todo = list(facts)
    while todo:
        for a in achievers.get(todo.pop(), ()):
            if a.name not in keep:
                keep.add(a.name)
                more = formula_facts(a.requires) - facts
                facts |= more
                todo.extend(more)
    return keep


#: Forward reachability pruning in `compile_problem` (tests switch it off to compare plans).
FORWARD_PRUNING = True


def reachable_actions(problem: Problem, allowed: dict[str, list], waits: list[tuple[ast.Expr, str]] = (), force: dict[str, str] | None = None) -> set[str]:
    """The actions whose requirement can ever hold: from the observed facts (and the facts of
    completed steps), the least fixed point of "an action with an option left whose `requires`
    and every hard `require F before` it in ``waits`` (formula, action) hold on the facts
    reachable so far achieves its facts". Any other action can be in no plan of the model: its
    requirement never holds, whatever is chosen (a cycle of actions that each need another's
    fact cannot start, since every latency is at least 1 ms). Forced actions (``force``) stay in
    the model, reachable or not, so forcing one that is not makes the model infeasible as
    before; they make nothing reachable.

    The requirement read here never includes what a relaxable rule adds: callers pass only the
    hard `before`s enforced outright, none when members are behind literals. A worklist over a
    fact -> waiting actions index: each action's requirement is read again only when one of its
    facts first becomes reachable, so this is linear in the size of the problem."""
    from intento.evaluate import formula_facts, formula_holds

    extra: dict[str, list[ast.Expr]] = {}
    for formula, target in waits:
        extra.setdefault(target, []).append(formula)
    facts: set[str] = set(problem.state.facts)
    keep: set[str] = set()
    todo: list[str] = []

    def ready(a: Act) -> bool:
        return formula_holds(a.requires, facts) and all(formula_holds(f, facts) for f in extra.get(a.name, ()))

    def reach(a: Act) -> None:
        keep.add(a.name)
        for f in a.achieves:
            if f not in facts:
                facts.add(f)
                todo.append(f)

    watchers: dict[str, list[Act]] = {}
    for a in problem.actions:
        if a.done:
            reach(a)  # history: what it achieved holds, whatever it required
        elif allowed[a.name]:
            needs = formula_facts(a.requires)
            for f in extra.get(a.name, ()):
                needs = needs | formula_facts(f)
            for f in needs:
                watchers.setdefault(f, []).append(a)
    for a in problem.actions:
        if not a.done and allowed[a.name] and a.name not in keep and ready(a):
            reach(a)
    while todo:
        for a in watchers.get(todo.pop(), ()):
            if a.name not in keep and ready(a):
                reach(a)
    return keep | set(force or ())


def _drop_dominated(problem: Problem, allowed: dict[str, list], force: dict[str, str]) -> None:
    """Leave out options no optimal plan takes: another option of the same action that is no
    worse in cost, latency and (where it counts) risk, breaks no more soft statements, and which
    every rule judges alike, would give a plan at least as good and earlier in the tie-break.

    Exact under these conditions, else nothing is dropped for that action: no rule rewards more
    (floors on cost, latency or count, ceilings on reliability); the action is in no `distinct`
    rule; the better option's provider has no capacity; both options match the same `count`
    rules; the better one is declared earlier, or is strictly cheaper (or less risky) on a term
    the objective minimises."""
    rules, rewarding = _all_rules(problem)
    if rewarding:
        return
    obj = problem.intent.objective
    weights = dict(obj.terms) if obj.kind != "lex" else {m: 1 for m in obj.metrics}
    if any(w <= 0 for w in weights.values()):
        return
    risk_counts = "risk" in weights or any(r[0] == "limit" and r[1] == "reliability" for r in rules)
    in_distinct = {a for r in rules if r[0] == "distinct" for a in r[1]}
    counts = [set(r[1]) for r in rules if r[0] == "count"]
    providers = problem.spec.providers
    for a in problem.actions:
        opts = allowed[a.name]
        if len(opts) < 2 or a.done or a.name in force or a.name in in_distinct:
            continue

        def dominates(o1, o2) -> bool:
            if providers[o1.provider].capacity is not None:
                return False
            if o1.cost > o2.cost or o1.latency_ms > o2.latency_ms or (risk_counts and o1.risk > o2.risk):
                return False
            if not set(map(id, o1.soft_violations)) <= set(map(id, o2.soft_violations)):
                return False
            if any(((a.name, o1.provider) in m) != ((a.name, o2.provider) in m) for m in counts):
                return False
            return o1.index < o2.index or ("cost" in weights and o1.cost < o2.cost) or ("risk" in weights and o1.risk < o2.risk)

        keep = [(o, b) for o, b in opts if not b and not any(dominates(o1, o) for o1, b1 in opts if o1 is not o and not b1)]
        allowed[a.name] = keep + [(o, b) for o, b in opts if b]
