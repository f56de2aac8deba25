"""The contract's plan semantics, evaluated directly on a concrete choice of options.

Input: a `Problem` and a choice (action -> provider). Output: `Evaluation`: the earliest-start
schedule, the metrics, the hard members the choice breaks and the soft statements it violates.
This is LANGUAGE.md "Plans" read literally, with no solver: the exhaustive back-end enumerates
choices and evaluates each one here, and the plan extractor reads metrics from here.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from decimal import Decimal

from intento.backends import rank_weight
from intento.evaluate import COMPARE, FLIP, INF, formula_time
from intento.problem import Act, Option, Problem, SoftStatement, risk_int
from intento.syntax import ast

#: Most steps whose order the capacity-aware scheduler will permute exhaustively.
MAX_PERMUTED_STEPS = 8


@dataclass
class Evaluation:
    choice: dict[str, str]
    starts: dict[str, float]
    ends: dict[str, float]
    cost: Decimal
    latency_ms: float
    risk_int: int
    reliability: Decimal
    broken_members: list[str] = field(default_factory=list)
    violated_soft: list[SoftStatement] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.broken_members and all(s != INF for s in self.starts.values())


def options_of(problem: Problem, choice: dict[str, str]) -> list[tuple[Act, Option]]:
    out = []
    for a in problem.actions:
        if a.name in choice:
            o = next(o for o in a.options if o.provider == choice[a.name])
            out.append((a, o))
    return out


def fact_times(problem: Problem, chosen: list[tuple[Act, Option]], ends: dict[str, float]) -> dict[str, float]:
    t: dict[str, float] = {f: 0 for f in problem.state.facts}
    for a, _ in chosen:
        for f in a.achieves:
            t[f] = min(t.get(f, INF), ends[a.name])
    return t


def requirement(problem: Problem, action: Act, skipped: frozenset[str] = frozenset()) -> ast.Expr | None:
    """What must hold when a step starts: its `requires` and every `require F before` it that
    applies, except those whose id is in ``skipped`` (soft ones broken instead of honoured, hard
    ones relaxed by a counterfactual)."""
    parts = [action.requires] if action.requires is not None else []
    for owner, formula, target in problem.befores:
        if target == action.name and owner.id not in skipped:
            parts.append(formula)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else ast.And(tuple(parts))


def earliest_schedule(problem: Problem, chosen: list[tuple[Act, Option]], skipped: frozenset[str] = frozenset()) -> dict[str, float]:
    """Each chosen step starts when its requirement first holds (inf: never). Positive latencies
    make the fixpoint unique; iterating from "never" reaches it within len(chosen)+1 rounds."""
    reqs = {a.name: requirement(problem, a, skipped) for a, _ in chosen}
    starts = {a.name: INF for a, _ in chosen}
    for _ in range(len(chosen) + 1):
        ends = {a.name: starts[a.name] + o.latency_ms for a, o in chosen}
        times = fact_times(problem, chosen, ends)
        new = {a.name: formula_time(reqs[a.name], times) for a, _ in chosen}
        if new == starts:
            break
        starts = new
    return starts


def capacity_respected(problem: Problem, chosen, starts) -> bool:
    """Do the chosen steps, started at ``starts``, stay within every provider's capacity?"""
    for pname in {o.provider for _, o in chosen}:
        cap = problem.spec.providers[pname].capacity
        if cap is None:
            continue
        runs = [(starts[a.name], starts[a.name] + o.latency_ms) for a, o in chosen if o.provider == pname] + _held(problem, pname)
        for s, _ in runs:
            if sum(1 for s2, e2 in runs if s2 <= s < e2) > cap:
                return False
    return True


def capacity_schedule(problem: Problem, chosen, skipped: frozenset[str] = frozenset()) -> dict[str, float] | None:
    """Earliest starts if they respect every capacity; else the best serial schedule over all
    priority orders (least makespan, then earliest starts in action order); None if too many steps."""
    starts = earliest_schedule(problem, chosen, skipped)
    if any(v == INF for v in starts.values()) or capacity_respected(problem, chosen, starts):
        return starts
    if len(chosen) > MAX_PERMUTED_STEPS:
        return None
    best, best_key = None, None
    for order in itertools.permutations(chosen):
        placed: dict[str, tuple[float, float]] = {}
        ok = True
        for a, o in order:
            ends = {n: e for n, (_, e) in placed.items()}
            times = fact_times(problem, [(x, y) for x, y in chosen if x.name in placed], ends)
            t = formula_time(requirement(problem, a, skipped), times)
            if t == INF:
                ok = False
                break
            cap = problem.spec.providers[o.provider].capacity
            if cap is not None:
                same = [placed[x.name] for x, y in chosen if x.name in placed and y.provider == o.provider] + _held(problem, o.provider)
                # Free capacity only appears when a run ends: try the ready time, then each end.
                for cand in sorted({t} | {e for _, e in same if e > t}):
                    if _fits(same, cand, cand + o.latency_ms, cap):
                        t = cand
                        break
            placed[a.name] = (t, t + o.latency_ms)
        if not ok:
            continue
        st = {n: s for n, (s, _) in placed.items()}
        key = (max((e for _, e in placed.values()), default=0), tuple(st[a.name] for a, _ in chosen))
        if best_key is None or key < best_key:
            best, best_key = st, key
    return best


def _held(problem: Problem, provider: str) -> list[tuple[float, float]]:
    """The slots of a provider other work holds now (observed `busy`), as runs from 0."""
    return [(0, ms) for ms in problem.state.busy.get(provider, ())]


def _fits(runs, s, e, cap) -> bool:
    points = [s] + [r0 for r0, _ in runs if s < r0 < e]
    return all(sum(1 for r0, r1 in runs if r0 <= p < r1) < cap for p in points)


def evaluate_choice(
    problem: Problem, choice: dict[str, str], starts: dict[str, float] | None = None, skipped: frozenset[str] = frozenset()
) -> Evaluation:
    """Schedule (unless given) and judge a choice against every rule of the problem.

    ``skipped``: ids of soft `require F before A` statements the schedule does not wait for."""
    chosen = options_of(problem, choice)
    if starts is None:
        starts = capacity_schedule(problem, chosen, skipped) or earliest_schedule(problem, chosen, skipped)
    ends = {a.name: starts[a.name] + o.latency_ms for a, o in chosen}
    cost = sum((o.cost for _, o in chosen), Decimal(0))
    latency = max(ends.values(), default=0)
    risk = sum(o.risk for _, o in chosen)
    rel = Decimal(1)
    for _, o in chosen:
        rel *= o.reliability
    ev = Evaluation(dict(choice), starts, ends, cost, latency, risk, rel)
    times = fact_times(problem, chosen, ends)
    for a, o in chosen:
        for m in o.forbidden_by:
            ev.broken_members.append(m.id)
        for s in o.soft_violations:
            if s not in ev.violated_soft:
                ev.violated_soft.append(s)
    for member, rule in problem.rules:
        if not _rule_holds(problem, rule, ev, times, starts):
            ev.broken_members.append(member.id)
    for owner, formula, target in problem.befores:
        if target in ev.choice and formula_time(formula, times) > starts[target]:
            if isinstance(owner, SoftStatement):
                if owner not in ev.violated_soft:
                    ev.violated_soft.append(owner)
            else:
                ev.broken_members.append(owner.id)
    for s, rule in problem.soft_rules:
        if not _rule_holds(problem, rule, ev, times, starts) and s not in ev.violated_soft:
            ev.violated_soft.append(s)
    return ev


def _rule_holds(problem: Problem, rule: tuple, ev: Evaluation, times, starts) -> bool:
    kind = rule[0]
    if kind in ("goal", "require"):
        return formula_time(rule[1], times) != INF
    if kind == "before":
        _, formula, action = rule
        return action not in ev.choice or formula_time(formula, times) <= starts[action]
    if kind == "budget":
        return ev.cost <= rule[1]
    if kind == "deadline":
        return ev.latency_ms <= rule[1]
    if kind == "limit":
        _, metric, op, value = rule
        if metric == "cost":
            return COMPARE[op](ev.cost, value)
        if metric == "latency":
            return COMPARE[op](ev.latency_ms, value)
        if value <= 0:
            return op in (">=", ">")
        # reliability OP v  <=>  sum(-ln r) FLIP(OP) -ln v, on the same integer scale as CP-SAT.
        return COMPARE[FLIP[op]](ev.risk_int, risk_int(Decimal(value)))
    if kind == "count":
        _, matching, op, n = rule
        return COMPARE[op](sum(1 for k in matching if ev.choice.get(k[0]) == k[1]), n)
    if kind == "distinct":
        providers = [ev.choice[a] for a in rule[1] if a in ev.choice]
        return len(providers) == len(set(providers))
    raise AssertionError(rule)


def objective_key(problem: Problem, ev: Evaluation) -> tuple:
    """The objective as integers, in the order CP-SAT optimises it."""
    metric = {"cost": problem.money_int(ev.cost), "latency": int(ev.latency_ms), "risk": ev.risk_int}
    penalty = sum(int(s.penalty * problem.penalty_scale) for s in ev.violated_soft)
    obj = problem.intent.objective
    if obj.kind == "lex":
        return ((penalty,) if problem.soft else ()) + tuple(metric[m] for m in obj.metrics)
    scale, weight_scale = problem.weighted_scales()
    units = problem.metric_units()
    total = sum(int(w * weight_scale) * (scale // units[m]) * metric[m] for m, w in obj.terms)
    total += (weight_scale // problem.penalty_scale) * scale * penalty
    return (total,)


def tiebreak_key(problem: Problem, ev: Evaluation) -> tuple:
    """Fewer steps; least total weighted rank; ranks in declaration order; earlier starts."""
    ranks = []
    n = len(problem.actions)
    weighted = 0
    for i, a in enumerate(problem.actions):
        p = ev.choice.get(a.name)
        idx = None if p is None else next(o.index for o in a.options if o.provider == p)
        ranks.append(0 if idx is None else 1 + idx)
        if idx is not None:
            weighted += rank_weight(n, i, idx)
    starts = tuple(ev.starts.get(a.name, 0) for a in problem.actions)
    return (len(ev.choice), weighted, tuple(ranks), starts)
