"""The CP-SAT back-end: staged optimisation over a compiled model.

Input: a `Problem` and `SolveOptions`. Output: a `Solution`.

Stages, each minimising one expression and then fixing it at its optimum:
1. the total soft penalty (when any soft statement applies);
2. the objective: each term of a lexicographic objective in order, or one weighted sum (with the
   soft penalty added to it instead of stage 1);
3. the tie-break, which makes the optimal plan unique (docs/planning.md): fewer steps; then the
   least total weighted rank (`rank_weight`); then, only if another choice still ties, action by
   action in declaration order, not using it before using it and an earlier-declared option before
   a later one; then (only where a capacity can bind) earlier starts, action by action.

The tie-break is part of the model, not a property of the search, so no seed or worker count can
change the answer when the search completes.
"""

from __future__ import annotations

import contextvars
import time
from contextlib import contextmanager
from dataclasses import replace

from intento.backends._ortools import cp_model

from intento.backends import Solution, SolveOptions, rank_weight
from intento.compile import Compiled, compile_problem
from intento.problem import Member, Problem, SoftStatement
from intento.semantics import capacity_respected, capacity_schedule, earliest_schedule, evaluate_choice, objective_key, options_of

#: Below this many options, CP-SAT's presolve costs more than it saves: each stage re-solves a
#: model that differs from the previous one by a single constraint (benchmarks/plan_latency.py:
#: 20-action intents p95 77 ms -> 43 ms without it; from ~50 actions on it pays for itself).
PRESOLVE_MIN_OPTIONS = 120

#: The clock every time budget is measured on (a module attribute, so tests can drive it).
clock = time.monotonic


class WorkBudget:
    """A request's budget of solver work, in CP-SAT's deterministic time (its own measure of
    work done, about a second of one core's search per unit, and the same on a busy machine as
    on an idle one). Every solve of the request draws on it; see `work_limit`."""

    def __init__(self, limit: float):
        self.limit = limit
        self.used = 0.0

    @property
    def left(self) -> float:
        return self.limit - self.used


_WORK: contextvars.ContextVar[WorkBudget | None] = contextvars.ContextVar("intento_work_budget", default=None)


@contextmanager
def work_limit(limit: float | None):
    """Within this block every CP-SAT solve (planning, conflict search, counterfactuals) shares
    one budget of ``limit`` units of deterministic time, on top of the wall-clock limit; None:
    the wall-clock limit alone. A request cut by this budget gets the same answer on any load."""
    if limit is None:
        yield None
        return
    token = _WORK.set(WorkBudget(limit))
    try:
        yield _WORK.get()
    finally:
        _WORK.reset(token)


def out_of_time(end: float) -> bool:
    """Is the request's budget spent: its wall-clock end (on `clock()`) or its work budget?"""
    budget = _WORK.get()
    return clock() >= end or (budget is not None and budget.left <= 0)


class _Solver(cp_model.CpSolver):
    """A CpSolver that charges each solve's deterministic time to the request's `WorkBudget`."""

    def solve(self, model, solution_callback=None):
        status = super().solve(model, solution_callback)
        budget = _WORK.get()
        if budget is not None:
            budget.used += self.response_proto.deterministic_time
        return status


def ends_at(options: SolveOptions) -> float:
    """When a solve with these options must be over: its own limit, within the request's."""
    end = clock() + options.time_limit_s
    return end if options.deadline is None else min(end, options.deadline)


def new_solver(time_limit_s: float, num_workers: int = 1, seed: int = 0, options: int | None = None, lp: bool = False) -> cp_model.CpSolver:
    """A CP-SAT solver with intento's settings: time limit (and what is left of the request's
    work budget, `work_limit`), workers, fixed seed, and presolve only for models of at least
    `PRESOLVE_MIN_OPTIONS` options (when ``options`` is given). ``lp``: linearise the enforced
    constraints too (level 2) whatever the model's size (see `lp_stage`)."""
    solver = _Solver()
    solver.parameters.max_time_in_seconds = max(0.001, time_limit_s)
    budget = _WORK.get()
    if budget is not None:
        solver.parameters.max_deterministic_time = max(1e-6, budget.left)
    solver.parameters.num_workers = num_workers
    solver.parameters.random_seed = seed
    if options is not None:
        large = options >= PRESOLVE_MIN_OPTIONS
        solver.parameters.cp_model_presolve = large
        if large:
            # The LP relaxation of the goal's reachability (see `compile`) bounds the cost stage
            # tightly once the enforced constraints are linearised too (level 2), and branching on
            # its values finds the optimum in a few steps: 200-action p95 from ~7 s to well under
            # 1 s (benchmarks/plan_latency.py), where the default search walked down one solution
            # at a time.
            solver.parameters.linearization_level = 2
            solver.parameters.search_branching = cp_model.LP_SEARCH
    if lp:
        solver.parameters.linearization_level = 2
    return solver


def start_from(model, solution: dict[int, int] | None) -> None:
    """The model's next solve starts from ``solution`` (variable index -> value), or from
    nothing: any hint it had is dropped. A hint guides the search, never an answer."""
    model.clear_hints()
    if solution:
        hint = model.proto.solution_hint
        hint.vars.extend(solution.keys())
        hint.values.extend(solution.values())


def lp_stage(name: str) -> bool:
    """The stages solved with the full LP relaxation (`new_solver`'s ``lp``) at every size: a
    weighted objective and the tie-break (its packed steps-then-rank stage, its action-by-action
    stages and its uniqueness check). Their bounds come from sums over every option, which the
    default relaxation leaves out behind the enforcement literals; with it, a 50-action plan
    took about a quarter of the time on weighted objectives and the uniqueness check about half
    (benchmarks/stages.py). The lexicographic objective stages are left as they are: there it
    made them slower. Only the search changes, never an answer."""
    return name == "weighted" or name.startswith("tie-break")


_STATUS = {
    cp_model.OPTIMAL: "optimal",
    cp_model.FEASIBLE: "feasible",
    cp_model.INFEASIBLE: "infeasible",
    cp_model.UNKNOWN: "unknown",
}


class _Stager:
    def __init__(self, c: Compiled, options: SolveOptions):
        self.c = c
        self.options = options
        self.deadline = ends_at(options)
        self.proven = True
        self.last: dict | None = None
        #: The optimum (or best bound found) of the last stage solved.
        self.value: int | None = None
        self.stats = {"stages": 0, "branches": 0, "conflicts": 0, "wall_s": 0.0}

    def minimize(self, expr, name: str, work: float | None = None) -> str:
        """Minimise ``expr``, then fix it; returns the solver status of this stage.

        ``work``: a tentative stage (a packed one, see `minimize_stages`), given at most that much
        of CP-SAT's *deterministic* time, so whether it is cut is the same on every run. Cut, it
        proves nothing and is not counted: what it found is kept as the next stage's hint and its
        value as a bound (``expr <= value``, which the optimum meets), and the caller solves the
        stages it packed one by one."""
        c, m = self.c, self.c.model
        left = self.deadline - clock()
        if left <= 0:
            self.proven = False
            return "timeout"
        # The previous stage's whole solution: a feasible start for this one, since each stage
        # only fixes the expression the previous one optimised. (A partial hint, e.g. the
        # options of a previous plan, only guides the first choices.)
        start_from(m, self.last)
        m.minimize(expr)
        solver = new_solver(left, self.options.num_workers, self.options.seed, len(c.x), lp=lp_stage(name))
        if work is not None:  # never more than the request's work budget has left (`new_solver`)
            solver.parameters.max_deterministic_time = min(work, solver.parameters.max_deterministic_time)
        status = solver.solve(m)
        tentative = work is not None and status != cp_model.OPTIMAL and status != cp_model.INFEASIBLE
        self.stats["stages"] += 0 if tentative else 1
        self.stats["branches"] += solver.num_branches
        self.stats["conflicts"] += solver.num_conflicts
        self.stats["wall_s"] += solver.wall_time
        if status == cp_model.MODEL_INVALID:  # pragma: no cover - a compiler bug, never user input
            raise RuntimeError(f"intento built an invalid CP-SAT model at stage {name}: {m.validate()}")
        if status not in _STATUS:  # pragma: no cover
            raise RuntimeError(f"unexpected CP-SAT status {status} at stage {name}")
        result = _STATUS[status]
        if result in ("optimal", "feasible"):
            # Exact, where `ObjectiveValue()` is a float (inexact beyond 2^53).
            value = int(solver.value(expr))
            self.value = value
            self.last = dict(enumerate(solver.response_proto.solution))
            if result == "optimal":
                m.add(expr == value)
            else:
                self.proven = self.proven and tentative
                m.add(expr <= value)
        elif result == "unknown":
            self.proven = self.proven and tentative
        return result


#: Most deterministic time (CP-SAT's reproducible measure of work, about a second of search on
#: a typical core) a packed stage may take before its stages are solved one by one instead
#: (`minimize_stages`); also the most the tie-break's uniqueness check may take before the
#: action-by-action rule settles the choice without it. Both fallbacks give the same answer.
TENTATIVE_WORK = 2.0


def minimize_stages(st: _Stager, stages: list[tuple[str, object, int | None]], prefix: str = "") -> tuple[str, list[int], int]:
    """Minimise each (name, expression, upper bound) in turn, the first two `pack`ed into one
    solve where their ranges allow. A packed solve is tentative (`TENTATIVE_WORK`): when it
    cannot prove its optimum within that work, as a sum with large coefficients may not, the
    stages it packed are solved one by one from what it found, so packing never costs more than
    that and never loses a plan found. Returns (status, the stages' values, how many stages found
    a solution): status ``optimal`` when every stage was solved (cut by the time limit after a
    solution, a stage counts as solved, not proven), else the status of the first stage that
    found nothing (``infeasible``, ``unknown`` or ``timeout``)."""
    values: list[int] = []
    solved = 0
    k = 0
    for name, expr, radices in pack(stages):
        group = stages[k : k + 1 + len(radices)]
        k += len(group)
        found = 0  # whether a cut packed solve found a plan: it stays the answer if nothing follows
        if radices:
            r = st.minimize(expr, prefix + name, work=TENTATIVE_WORK)
            if r == "optimal":
                values.extend(unpack(st.value, radices))
                solved += len(group)
                continue
            if r in ("infeasible", "timeout"):
                return r, values, solved
            found = int(r == "feasible")
        for n, e, _ in group if radices else [(name, expr, None)]:
            r = st.minimize(e, prefix + n)
            if r not in ("optimal", "feasible"):
                st.proven = False
                return r, values, solved + found
            values.append(st.value)
            solved += 1
            found = 0
    return "optimal", values, solved


def objective_stages(c: Compiled) -> list[tuple[str, object]]:
    """The optimisation stages of the request's objective, soft penalty included."""
    p = c.problem
    obj = p.intent.objective
    metric = {"cost": c.cost, "latency": c.makespan, "risk": c.risk}
    if obj.kind == "lex":
        stages = [("penalty", c.penalty)] if p.soft else []
        return stages + [(name, metric[name]) for name in obj.metrics]
    scale, weight_scale = p.weighted_scales()
    units = p.metric_units()
    expr = 0
    for name, w in obj.terms:
        expr += int(w * weight_scale) * (scale // units[name]) * metric[name]
    if p.soft:
        expr += (weight_scale // p.penalty_scale) * scale * c.penalty
    return [("weighted", expr)]


def solve(
    problem: Problem,
    options: SolveOptions = SolveOptions(),
    *,
    force: dict[str, str] | None = None,
    relax: frozenset[str] = frozenset(),
    tiebreak: bool = True,
    hint: dict[str, str] | None = None,
) -> Solution:
    """Solve the stages. ``force``/``relax`` build a counterfactual model (explain.py);
    ``tiebreak=False`` stops after the objective, when only its value matters.

    Where a capacity can bind, the model lets a waiting step start at any time after it is ready,
    which is exact for every rule that prefers earlier ends. A latency floor (`limit latency >=`,
    `>` or `==`) would profit from waiting for no reason, so then each answer is checked against
    the contract's schedule of its choice (`schedule_of`). A choice that only met its objective by
    idling is kept as a candidate at its contract value and excluded, and the request solved
    again; the model's optimum over the choices left bounds each of their contract values from
    below, so once it is no better than the best candidate, that candidate is optimal."""
    if not latency_floor(problem, relax):
        return _solve_once(problem, options, force, relax, tiebreak, hint, [])[0]
    t_end = ends_at(options)
    excluded: list[dict[str, str]] = []
    totals: dict = {}
    best: tuple[tuple, Solution] | None = None  # (contract key, solution at the contract schedule)

    def answer(sol: Solution, proven: bool) -> Solution:
        sol.stats = dict(totals)
        if best is None:
            return sol
        found = best[1]
        found.status = "optimal" if proven else "feasible"
        found.stats = dict(totals)
        return found

    while True:
        left = t_end - clock()
        if left <= 0:
            return answer(Solution("unknown"), False)
        sol, values = _solve_once(problem, replace(options, time_limit_s=left, deadline=t_end), force, relax, tiebreak, hint, excluded)
        for k, v in sol.stats.items():
            totals[k] = totals.get(k, 0) + v if k in ("stages", "branches", "conflicts", "build_s", "solve_s") else v
        if sol.status == "infeasible":
            return answer(sol, True)
        if sol.status not in ("optimal", "feasible") or values is None:
            return answer(sol, False)
        if best is not None and values >= best[0]:
            return answer(sol, sol.status == "optimal")
        # A relaxed hard `before` is no part of the model, so the contract's schedule of its
        # choice must not wait for it either: it may never hold.
        ignored = sol.skipped | {o.id for o, _, _ in problem.befores if o.id in relax}
        starts = schedule_of(problem, sol.choice, ignored, t_end - clock())
        if starts is None:  # out of time before the check could finish: nothing verified
            return answer(Solution("unknown"), False)
        ev = evaluate_choice(problem, sol.choice, starts=starts, skipped=sol.skipped)
        broken = [b for b in ev.broken_members if b not in relax]
        # INVARIANT: only a verified choice has a contract value (an unverified one may never
        # finish, its makespan infinite).
        if not broken and all(s != float("inf") for s in starts.values()):
            key = objective_key(problem, ev)
            sol.starts = {a: int(t) for a, t in starts.items()}
            if key <= values:
                sol.stats = dict(totals)
                return sol
            if best is None or key < best[0]:
                best = (key, sol)
        excluded.append(sol.choice)
        if clock() >= t_end:
            return answer(Solution("unknown"), False)


def latency_floor(problem: Problem, relax: frozenset[str]) -> bool:
    """Does a hard or soft rule bound the makespan from below while some capacity can bind?"""
    floors = [r for m, r in problem.rules if m.id not in relax] + [r for _, r in problem.soft_rules]
    if not any(r[0] == "limit" and r[1] == "latency" and r[2] in (">=", ">", "==") for r in floors):
        return False
    return any(p.capacity is not None for p in problem.spec.providers.values())


def _solve_once(problem, options, force, relax, tiebreak, hint, excluded) -> tuple[Solution, tuple | None]:
    """One staged solve with the ``excluded`` choices ruled out; also returns the objective
    stages' values (None unless every one was solved)."""
    t0 = time.perf_counter()
    c = compile_problem(problem, force=force, relax=relax)
    for choice in excluded:
        xs = c.x.items()
        c.model.add(sum(1 - v for k, v in xs if choice.get(k[0]) == k[1]) + sum(v for k, v in xs if choice.get(k[0]) != k[1]) >= 1)
    build_s = time.perf_counter() - t0
    st = _Stager(c, options)
    if hint:
        # A starting point for the first stage only (e.g. the previous plan of a re-plan).
        st.last = {v.index: int(hint.get(an) == p) for (an, p), v in c.x.items()}
    status = "optimal"
    schedule = None
    objective = objective_stages(c)
    r, values, solved = minimize_stages(st, [(n, e, stage_bound(c, n)) for n, e in objective])
    if solved == 0:
        # INVARIANT: only a stage that found a solution moves on, so nothing was found at all.
        return Solution("infeasible" if r == "infeasible" else "unknown", stats=_stats(c, st, build_s)), None
    if r == "optimal":
        if tiebreak:
            _canonical_choice(c, st)
            schedule = _canonical_schedule(c, st)
    if not st.proven:
        status = "feasible"
    if st.last is None:  # the only stage was skipped: no time left at all
        return Solution("unknown", stats=_stats(c, st, build_s)), None
    choice = {an: p for (an, p), v in c.x.items() if st.last[v.index]}
    starts = schedule or {an: st.last[c.start[an].index] for an in choice}
    skipped = frozenset(s.id for s, _, _ in _soft_befores(problem) if st.last[c.violated[s.id].index])
    sol = Solution(status, choice, starts, _stats(c, st, build_s), skipped)
    return sol, (tuple(values[: len(objective)]) if len(values) >= len(objective) else None)


def _soft_befores(problem: Problem):
    return [(o, f, t) for o, f, t in problem.befores if isinstance(o, SoftStatement)]


def schedule_of(problem: Problem, choice: dict[str, str], skipped: frozenset[str] = frozenset(), time_limit_s: float = 10.0) -> dict[str, float] | None:
    """The contract's schedule of a choice: every step at its earliest start when that respects
    every capacity; otherwise the least makespan, then the earliest starts in declaration order.
    The exact permutation search of `semantics.capacity_schedule` for a few steps, a small CP-SAT
    model beyond that (None if it finds none in time). ``skipped``: ids of the `before`
    statements (soft ones broken, hard ones relaxed) the schedule does not wait for."""
    chosen = options_of(problem, choice)
    starts = capacity_schedule(problem, chosen, skipped)
    if starts is not None:
        return starts
    # Only the schedule is asked for, so every rule is left out of this model except the hard
    # `before`s in effect: they delay a step as its `requires` does.
    waits = {o.id for o, _, _ in problem.befores if isinstance(o, Member) and o.id not in skipped}
    c = compile_problem(problem, force=choice, relax=frozenset(m.id for m in problem.members if m.id not in waits) | {"deadline"})
    m = c.model
    for a in problem.actions:
        if a.name not in choice:
            m.add(c.use[a.name] == 0)
    for s, _, _ in _soft_befores(problem):
        m.add(c.violated[s.id] == int(s.id in skipped))
    st = _Stager(c, SolveOptions(time_limit_s=time_limit_s))
    for name, expr in [("makespan", c.makespan)] + [(a.name, c.start[a.name]) for a in problem.actions if a.name in choice]:
        if st.minimize(expr, name) != "optimal":
            return None
    return {a: float(st.last[c.start[a].index]) for a in choice}


#: Largest range a packed stage may span: keeps the LP's coefficients modest.
PACK_LIMIT = 2**31


def stage_bound(c: Compiled, name: str) -> int | None:
    """An upper bound on a stage's expression when it is known never to be negative, else None."""
    p = c.problem
    if name == "penalty":
        return sum(int(s.penalty * p.penalty_scale) for s in p.soft)
    if name == "cost":
        costs = [p.money_int(p.option(an, pv).cost) for an, pv in c.x]
        return None if any(v < 0 for v in costs) else sum(costs)
    if name == "latency":
        return c.horizon
    if name == "risk":
        return sum(p.option(an, pv).risk for an, pv in c.x)
    if name == "steps":
        return len(c.use)
    return None


def pack(stages: list[tuple[str, object, int | None]]) -> list[tuple[str, object, list[int]]]:
    """Merge the first two lexicographic stages into one solve where their ranges allow: with
    0 <= b <= B, minimising a * (B + 1) + b minimises a, then b (same answer, one presolve and
    one first solution fewer). Used for the soft penalty with the first objective term, and for
    fewer steps with the least rank. Only two: packing cost with latency as well makes the
    coefficients large and the search slower (measured on benchmarks/plan_latency.py)."""
    out = [(name, expr, []) for name, expr, _ in stages]
    if len(stages) >= 2:
        (n1, e1, hi1), (n2, e2, hi2) = stages[0], stages[1]
        if hi1 is not None and hi2 is not None and (hi1 + 1) * (hi2 + 1) <= PACK_LIMIT:
            out[:2] = [(f"{n1}+{n2}", e1 * (hi2 + 1) + e2, [hi2 + 1])]
    return out


def unpack(value: int, radices: list[int]) -> list[int]:
    """The values of the stages `pack` merged into one, from the merged optimum."""
    parts = []
    for r in reversed(radices):
        value, rest = divmod(value, r)
        parts.append(rest)
    return [value] + parts[::-1]


def _rank(c: Compiled, action: str):
    """0 when the action is unused, else 1 + the chosen option's declaration index."""
    a = c.problem.act(action)
    return sum((o.index + 1) * c.x[(action, o.provider)] for o in (a.options if a is not None else ()) if (action, o.provider) in c.x)


def rank_weights(c: Compiled) -> dict[tuple[str, str], int]:
    """The tie-break's weight of each option in the model (`rank_weight`, by the action's
    position in the problem)."""
    n = len(c.problem.actions)
    return {(a.name, o.provider): rank_weight(n, i, o.index) for i, a in enumerate(c.problem.actions) for o in a.options if (a.name, o.provider) in c.x}


def _canonical_choice(c: Compiled, st: _Stager) -> None:
    """The tie-break's choice rules: fewer steps, then the least total weighted rank (one packed
    solve); if the choice is still not unique, action by action in declaration order, the least
    rank (0 = unused). When the objective's optimum is a single choice, none of these rules can
    change it, so a uniqueness check comes first."""
    actions = [a for a in c.problem.actions if any((a.name, o.provider) in c.x for o in a.options)]
    if not actions:
        return
    # Most often the objective alone leaves one choice, which is then the tie-break's answer: one
    # feasibility check instead of the two solves below (benchmarks/stages.py).
    if _unique(c, st):
        return
    weights = rank_weights(c)
    weighted = sum(w * c.x[k] for k, w in weights.items())
    steps = [c.use[a.name] for a in actions]
    r, _, _ = minimize_stages(st, [("steps", sum(steps), len(steps)), ("rank", weighted, sum(weights.values()))], "tie-break ")
    if r != "optimal":
        return
    if _unique(c, st):
        return
    for a in actions:
        current = sum((o.index + 1) * st.last[c.x[(a.name, o.provider)].index] for o in a.options if (a.name, o.provider) in c.x)
        if current == 0:
            c.model.add(_rank(c, a.name) == 0)
            continue
        if st.minimize(_rank(c, a.name), f"tie-break {a.name}") in ("unknown", "timeout"):
            return


def _unique(c: Compiled, st: _Stager) -> bool:
    """Is the current choice the only one left? (A feasibility check for any other choice.)"""
    m = c.model
    xs = list(c.x.values())
    differs = sum(1 - v for v in xs if st.last[v.index]) + sum(v for v in xs if not st.last[v.index])
    # The "another choice" constraint is switched on by an assumption and off for good afterwards,
    # so later stages see every optimal choice again.
    guard = m.new_bool_var("another_choice")
    m.add(differs >= 1).only_enforce_if(guard)
    m.clear_objective()
    m.clear_hints()
    m.clear_assumptions()
    m.add_assumptions([guard])
    left = st.deadline - clock()
    if left <= 0:
        st.proven = False
        return False
    solver = new_solver(left, st.options.num_workers, st.options.seed, len(c.x), lp=lp_stage("tie-break unique"))
    # Only a shortcut: when it cannot tell within this work (a search over equal-rank subsets
    # can be long), the action-by-action rule settles the same choice.
    solver.parameters.max_deterministic_time = min(TENTATIVE_WORK, solver.parameters.max_deterministic_time)
    status = solver.solve(m)
    st.stats["stages"] += 1
    st.stats["wall_s"] += solver.wall_time
    m.clear_assumptions()
    m.add(guard == 0)
    return status == cp_model.INFEASIBLE


def _canonical_schedule(c: Compiled, st: _Stager) -> dict[str, int] | None:
    """Earliest starts, action by action, where a capacity can bind. When the plain earliest-start
    schedule of the chosen options already respects every capacity, it is the answer (each start
    is at its lower bound), found without another solve."""
    choice = {an: p for (an, p), v in c.x.items() if st.last[v.index]}
    if not any(a in c.waiting for a in choice):
        return None
    skipped = frozenset(s for s, v in c.violated.items() if st.last.get(v.index))
    chosen = options_of(c.problem, choice)
    earliest = earliest_schedule(c.problem, chosen, skipped)
    if all(t != float("inf") for t in earliest.values()) and capacity_respected(c.problem, chosen, earliest):
        return {a: int(t) for a, t in earliest.items()}
    for a in c.problem.actions:
        if a.name in c.waiting and st.last and any(st.last[c.x[(a.name, o.provider)].index] for o in a.options if (a.name, o.provider) in c.x):
            if st.minimize(c.start[a.name], f"start {a.name}") in ("unknown", "timeout"):
                return None
    return None


def _stats(c: Compiled, st: _Stager, build_s: float) -> dict:
    proto = c.model.proto
    return {
        "backend": "cpsat",
        "variables": len(proto.variables),
        "constraints": len(proto.constraints),
        "stages": st.stats["stages"],
        "branches": st.stats["branches"],
        "conflicts": st.stats["conflicts"],
        "build_s": build_s,
        "solve_s": st.stats["wall_s"],
        "workers": st.options.num_workers,
        "seed": st.options.seed,
    }
