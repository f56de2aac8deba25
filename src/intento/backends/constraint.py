"""The exhaustive back-end: python-constraint enumerates every assignment of options to actions;
each is scheduled and judged exactly by `semantics.evaluate_choice`.

Input: a `Problem` and `SolveOptions`. Output: a `Solution` with the same optimum and the same
tie-break as the CP-SAT back-end (fewer steps; then, action by action in declaration order, unused
before used and earlier-declared options first; then earlier starts). For small models only:
more than `MAX_ASSIGNMENTS` assignments is refused with `ModelTooLarge`, and so is a request whose
steps could queue for a capacity in more ways than `semantics.capacity_schedule` searches.

What the library decides: each action's domain (unused, or one of its allowed options), the hard
`distinct provider` rules and the budget, which prune assignments before they are evaluated.
Everything that needs a schedule (requirements, goal, deadline, latency limits) is evaluated per
assignment.
"""

from __future__ import annotations

import itertools
import math
import time

from constraint import FunctionConstraint
from constraint import Problem as CSP

from intento.backends import ModelTooLarge, Solution, SolveOptions
from intento.problem import Problem, SoftStatement
from intento.semantics import MAX_PERMUTED_STEPS, Evaluation, evaluate_choice, objective_key, tiebreak_key

#: Most assignments the exhaustive back-end will enumerate.
MAX_ASSIGNMENTS = 200_000
_UNUSED = "-"


def _domains(problem: Problem, force: dict[str, str]) -> tuple[dict[str, list[str]] | None, int]:
    """Each action's domain (unused, or an allowed option's provider) and how many assignments
    (times the soft `before` choices) enumeration would visit; None when some forced action has
    no allowed option."""
    domains = {
        a.name: ([] if a.name in force else [_UNUSED]) + [o.provider for o in a.options if not o.forbidden_by and force.get(a.name, o.provider) == o.provider]
        for a in problem.actions
    }
    if any(not d for d in domains.values()):
        return None, 0
    domains = {k: v for k, v in domains.items() if len(v) > 1 or k in force}
    soft_befores = sum(1 for owner, _, _ in problem.befores if isinstance(owner, SoftStatement))
    return domains, math.prod(len(v) for v in domains.values()) * 2**soft_befores


def _queue_too_long(problem: Problem) -> int | None:
    """How many steps a plan could hold when that is more than `MAX_PERMUTED_STEPS` and some
    capacity could be exceeded, else None. Past that many steps the contract's schedule of a
    choice that exceeds a capacity is not searched exactly (`capacity_schedule` gives up), and
    the earliest starts, which break the capacity, must not stand in for it."""
    counts: dict[str, int] = {}
    usable = 0
    for a in problem.actions:
        allowed = {o.provider for o in a.options if not o.forbidden_by}
        usable += bool(allowed)
        for pv in allowed:
            counts[pv] = counts.get(pv, 0) + 1
    caps = {pv: problem.spec.providers[pv].capacity for pv in counts}
    busy = problem.state.busy
    if usable > MAX_PERMUTED_STEPS and any(cap is not None and counts[pv] + len(busy.get(pv, ())) > cap for pv, cap in caps.items()):
        return usable
    return None


def fits(problem: Problem) -> bool:
    """Whether this back-end would enumerate the problem rather than refuse it."""
    return _domains(problem, {})[1] <= MAX_ASSIGNMENTS and _queue_too_long(problem) is None


def solve(problem: Problem, options: SolveOptions = SolveOptions(), *, force: dict[str, str] | None = None) -> Solution:
    """Enumerate; ``force`` (action -> provider) fixes those choices, for counterfactuals."""
    t0 = time.perf_counter()
    force = force or {}
    domains, size = _domains(problem, force)
    if domains is None:
        return Solution("infeasible", stats={"backend": "constraint", "variables": 0, "constraints": 0, "stages": 1})
    soft_befores = [owner for owner, _, _ in problem.befores if isinstance(owner, SoftStatement)]
    if size > MAX_ASSIGNMENTS:
        raise ModelTooLarge(f"the exhaustive back-end enumerates at most {MAX_ASSIGNMENTS:,} assignments; this request has {size:,}")
    queued = _queue_too_long(problem)
    if queued is not None:
        raise ModelTooLarge(
            f"the exhaustive back-end schedules at most {MAX_PERMUTED_STEPS} steps exactly where a capacity can bind; this request can plan {queued}"
        )
    assignments = _assignments(problem, domains)
    best: tuple | None = None
    best_ev: Evaluation | None = None
    seen = 0
    deadline = time.monotonic() + options.time_limit_s
    timed_out = False
    for assignment in assignments:
        if time.monotonic() > deadline:
            timed_out = True
            break
        choice = {k: v for k, v in assignment.items() if v != _UNUSED}
        relevant = [s.id for s in soft_befores if any(t == _target(problem, s) for t in choice)]
        for r in range(len(relevant) + 1):
            for skipped in itertools.combinations(relevant, r):
                seen += 1
                ev = evaluate_choice(problem, choice, skipped=frozenset(skipped))
                if not ev.valid:
                    continue
                key = objective_key(problem, ev) + tiebreak_key(problem, ev)
                if best is None or key < best:
                    best, best_ev = key, ev
    stats = {
        "backend": "constraint",
        "variables": seen,
        "constraints": len(problem.rules) + len(problem.soft_rules),
        "stages": 1,
        "solve_s": time.perf_counter() - t0,
        "build_s": 0.0,
    }
    if best_ev is None:
        return Solution("unknown" if timed_out else "infeasible", stats=stats)
    starts = {a: int(s) for a, s in best_ev.starts.items()}
    return Solution("feasible" if timed_out else "optimal", dict(best_ev.choice), starts, stats)


def _target(problem: Problem, owner) -> str:
    return next(t for o, _, t in problem.befores if o is owner)


def _assignments(problem: Problem, domains: dict[str, list[str]]):
    if not domains:
        return iter([{}])
    csp = CSP()
    for name, dom in domains.items():
        csp.addVariable(name, dom)
    for member, rule in problem.rules:
        if rule[0] == "distinct":
            names = [n for n in rule[1] if n in domains]
            if len(names) > 1:
                csp.addConstraint(FunctionConstraint(_distinct), names)
        elif rule[0] == "budget":
            names = list(domains)
            costs = {n: {o.provider: o.cost for a in problem.actions if a.name == n for o in a.options} for n in names}
            budget = rule[1]
            csp.addConstraint(
                FunctionConstraint(lambda *vals, names=names, costs=costs, budget=budget: sum(costs[n][v] for n, v in zip(names, vals) if v != _UNUSED) <= budget),
                names,
            )
    return csp.getSolutionIter()


def _distinct(*vals) -> bool:
    used = [v for v in vals if v != _UNUSED]
    return len(used) == len(set(used))
