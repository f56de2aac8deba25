"""Batch planning: many requests in one model, sharing provider capacity (the fleet view).

Input: a `Spec` and a list of requests ``{"intent", "given", "state"}``. Output: one `Plan` per
request, in order. A single request's planner cannot see that two requests both want the last
slot of a provider; here every request's steps go into one CP-SAT model and each provider's
`capacity` bounds the steps running on it at once across all of them.

Objective (docs/planning.md, "Batches"): stage k minimises the sum over requests of each
request's k-th objective term (soft penalties first when any apply; a weighted objective is one
term); then fewer steps in total; then the lowest total option rank. Batches are deterministic for
a fixed seed and worker count, but only single requests carry the unique-optimum guarantee.
"""

from __future__ import annotations

import time
from typing import Any

from ortools.sat.python import cp_model

from intento.backends import Solution, SolveOptions
from intento.backends.cpsat import _STATUS, new_solver, objective_stages
from intento.compile import compile_problem, serial_horizon
from intento.plan import Plan
from intento.solve import prepare, to_plan
from intento.spec import Spec


def plan_many(
    spec: Spec,
    requests: list[dict[str, Any]],
    *,
    stats_out: dict | None = None,
    time_limit_s: float = 10.0,
    num_workers: int = 1,
    seed: int = 0,
    explain: str = "basic",
    include_timings: bool = False,
    relative_gap: float = 0.0,
    tiebreak: bool = True,
) -> list[Plan]:
    """``relative_gap``: stop each stage within this fraction of CP-SAT's bound (fleets);
    ``stats_out``: filled with each stage's status, objective, bound and timing;
    ``tiebreak=False``: stop after the objective (large fleets: the tie-break stages change no
    objective term, only which of the equally good plans is returned)."""
    problems = [prepare(spec, r["intent"], r.get("given"), r.get("state")) for r in requests]
    options = SolveOptions(time_limit_s=time_limit_s, num_workers=num_workers, seed=seed)
    t0 = time.perf_counter()
    model = cp_model.CpModel()
    counts: dict[str, int] = {}
    for p in problems:
        for a in p.actions:
            for o in a.options:
                if not o.forbidden_by:
                    counts[o.provider] = counts.get(o.provider, 0) + 1
    shared = {n for n, k in counts.items() if spec.providers[n].capacity is not None and spec.providers[n].capacity < k}
    horizon = sum(serial_horizon(p) for p in problems)
    compiled = [compile_problem(p, model=model, prefix=f"r{i}.", shared_capacity=shared, horizon=horizon) for i, p in enumerate(problems)]
    for pname in sorted(shared):
        intervals = []
        for c in compiled:
            for (an, pv), xv in c.x.items():
                if pv == pname:
                    o = c.problem.option(an, pv)
                    intervals.append(model.NewOptionalFixedSizeIntervalVar(c.start[an], o.latency_ms, xv, f"run[{an},{pv}]"))
        model.AddCumulative(intervals, [1] * len(intervals), spec.providers[pname].capacity)
    per_request = [objective_stages(c) for c in compiled]
    # Align stages by role: every request's penalty stage (if any) first, then terms by position.
    stages: list = []
    names: list[str] = []
    has_penalty = any(p.soft and p.intent.objective.kind == "lex" for p in problems)
    if has_penalty:
        stages.append(sum(c.penalty for c in compiled))
        names.append("penalty")
    depth = max((len(s) for s in per_request), default=0)
    for k in range(depth):
        terms, label = [], None
        for c, s in zip(compiled, per_request):
            own = [(name, e) for name, e in s if name != "penalty"]
            if k < len(own):
                terms.append(own[k][1])
                label = label or own[k][0]
        if terms:
            stages.append(sum(terms))
            names.append(label or f"term{k}")
    if tiebreak:
        stages.append(sum(v for c in compiled for v in c.use.values()))
        names.append("steps")
        stages.append(sum((o.index + 1) * c.x[(a.name, o.provider)] for c in compiled for a in c.problem.actions for o in a.options if (a.name, o.provider) in c.x))
        names.append("rank")
    build_s = time.perf_counter() - t0
    deadline = time.monotonic() + time_limit_s
    status, last, stats = "optimal", None, {"stages": 0, "branches": 0, "conflicts": 0, "solve_s": 0.0}
    all_vars = [v for c in compiled for v in list(c.x.values()) + list(c.start.values())]
    for i, expr in enumerate(stages):
        left = deadline - time.monotonic()
        if left <= 0:
            status = "feasible" if last else "unknown"
            break
        model.ClearHints()
        if last:
            for v in all_vars:
                model.AddHint(v, last[v.Index()])
        model.Minimize(expr)
        solver = new_solver(left, num_workers, seed)
        solver.parameters.relative_gap_limit = relative_gap
        r = _STATUS.get(solver.Solve(model), "unknown")
        stats["stages"] += 1
        stats["branches"] += solver.NumBranches()
        stats["conflicts"] += solver.NumConflicts()
        stats["solve_s"] += solver.WallTime()
        stats.setdefault("stage_log", []).append(
            {
                "stage": names[i],
                "status": r,
                "objective": solver.ObjectiveValue() if r in ("optimal", "feasible") else None,
                "bound": solver.BestObjectiveBound(),
                "wall_s": solver.WallTime(),
                "elapsed_s": time.perf_counter() - t0,
            }
        )
        if r in ("optimal", "feasible"):
            value = int(round(solver.ObjectiveValue()))
            last = {v.Index(): solver.Value(v) for v in all_vars}
            if r == "optimal" and relative_gap == 0:
                model.Add(expr == value)
            else:
                status = "feasible"
                model.Add(expr <= value)
        elif i == 0:
            status = r
            break
        else:
            status = "feasible"
            break
    if stats_out is not None:
        stats_out.update(stats, build_s=build_s, variables=len(model.Proto().variables), constraints=len(model.Proto().constraints))
    plans = []
    for c in compiled:
        st = {"backend": "cpsat", "variables": len(model.Proto().variables), "constraints": len(model.Proto().constraints), "workers": num_workers, "seed": seed, "build_s": build_s, **stats}
        if last is None:
            sol = Solution("infeasible" if status == "infeasible" else "unknown", stats=st)
        else:
            choice = {an: pv for (an, pv), xv in c.x.items() if last[xv.Index()]}
            sol = Solution(status, choice, {an: last[c.start[an].Index()] for an in choice}, st)
        plans.append(to_plan(c.problem, sol, options, explain=explain, include_timings=include_timings))
    return plans
