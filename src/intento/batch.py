"""Batch planning: many requests in one model, sharing provider capacity (the fleet view).

Input: a `Spec` and a list of requests ``{"intent", "given", "state"}``. Output: one `Plan` per
request, in order. A single request's planner cannot see that two requests both want the last
slot of a provider; here each provider's `capacity` bounds the steps running on it at once across
all of them.

Objective (docs/planning.md, "Batches"): stage k minimises the sum over requests of each
request's k-th objective term (soft penalties first when any apply; a weighted objective is one
term); then fewer steps in total; then the least total option rank.

How (a relaxation first, one joint model only where it is needed):

1. Every distinct request is planned alone (requests of one shape, see `Problem.shape`, share
   one solve). Alone, nobody else competes for a capacity, so each request's optimum bounds what
   it can get in the batch, and the sums of those optima bound every stage from below. A request
   that is infeasible alone is infeasible in the batch; the others are planned without it.
2. If the alone plans, put side by side, fit every shared capacity, they are the batch optimum.
3. Otherwise one CP-SAT model holds every request, with a cumulative constraint per shared
   provider. The leading stages that no schedule can change (cost, risk, penalties of rules that
   do not look at time, ...) are held at each request's own optimum, which is exactly the batch
   optimum of those stages whenever the joint model admits it; the remaining stages are
   minimised in turn from the alone plans as hints. If capacity makes the held optimum
   impossible (deadlines), every stage is minimised jointly from scratch instead.
"""

from __future__ import annotations

import dataclasses
import heapq
import time
from typing import Any

from intento.backends._ortools import CpModel

from intento.backends import Solution, SolveOptions
from intento.backends import cpsat
from intento.backends.cpsat import _STATUS, _soft_befores, new_solver, objective_stages, rank_weights
from intento.compile import Compiled, compile_problem, serial_horizon
from intento.plan import Plan
from intento.problem import Problem
from intento.evaluate import INF, formula_time
from intento.semantics import evaluate_choice, fact_times, objective_key, options_of, requirement, tiebreak_key
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
    decompose: bool = True,
) -> list[Plan]:
    """``relative_gap``: stop each jointly solved stage within this fraction of CP-SAT's bound
    (fleets); ``stats_out``: filled with each stage's status, objective, bound and timing;
    ``tiebreak=False``: stop after the objective (large fleets: the tie-break stages change no
    objective term, only which of the equally good plans is returned); ``decompose=False``: skip
    the plans made alone and minimise every stage in the joint model (the reference the tests
    compare the decomposition with)."""
    problems = [prepare(spec, r["intent"], r.get("given"), r.get("state")) for r in requests]
    busy = [(i, pv) for i, p in enumerate(problems, start=1) for pv in p.state.busy]
    if busy:
        from intento.diagnostics import Diagnostic, IntentoError, Severity

        i, pv = busy[0]
        raise IntentoError([Diagnostic("E108", Severity.error, f"request {i}: the state says slots of `{pv}` are busy, which batch planning does not take into account", None,
                                       help="in a batch the requests share every capacity among themselves; plan a request whose state has `busy` slots on its own")])
    options = SolveOptions(time_limit_s=time_limit_s, num_workers=num_workers, seed=seed)
    t0 = time.perf_counter()
    deadline = time.monotonic() + time_limit_s
    stats: dict = {"stages": 0, "branches": 0, "conflicts": 0, "solve_s": 0.0, "build_s": 0.0, "stage_log": []}
    if not decompose:
        found = _solve_jointly(spec, problems, list(range(len(problems))), [Solution("unknown")] * len(problems), {}, _shared(spec, problems), options, deadline, relative_gap, tiebreak, stats, t0)
        return _plans(problems, found, stats, stats_out, options, explain, include_timings)

    # 1. Each distinct request alone: a lower bound per request and a starting point.
    alone: dict[Any, Solution] = {}
    sols: list[Solution] = []
    for p in problems:
        k = p.shape if p.shape is not None else id(p)
        if k not in alone:
            left = max(0.001, deadline - time.monotonic())
            alone[k] = cpsat.solve(p, dataclasses.replace(options, time_limit_s=left), tiebreak=tiebreak)
            for f in ("stages", "branches", "conflicts", "solve_s", "build_s"):
                stats[f] += alone[k].stats.get(f, 0)
        sols.append(alone[k])
    stats.update(distinct=len(alone), alone_s=time.perf_counter() - t0)
    final: dict[int, Solution] = {i: s for i, s in enumerate(sols) if s.status == "infeasible"}
    joint = [i for i in range(len(problems)) if i not in final]
    bounds_known = all(sols[i].status == "optimal" for i in joint)
    keys = {i: _aligned_key(problems[i], sols[i]) for i in joint} if bounds_known else {}
    shared = _shared(spec, [problems[i] for i in joint])

    # 2. Side by side, do they fit?
    if joint and bounds_known and _fits(spec, [(problems[i], sols[i]) for i in joint], shared):
        has_penalty, depth, names = _layout([problems[i] for i in joint], tiebreak)
        rows = [_padded(keys[i], problems[i], has_penalty, depth, tiebreak) for i in joint]
        for k, name in enumerate(names):
            total = sum(row[k] for row in rows)
            stats["stage_log"].append({"stage": name, "status": "optimal", "objective": float(total), "bound": float(total), "wall_s": 0.0, "elapsed_s": time.perf_counter() - t0, "by": "alone"})
        for i in joint:
            final[i] = dataclasses.replace(sols[i])
        stats.update(variables=0, constraints=0, status="optimal")
    elif joint:
        # 3. One model for the requests that are feasible alone.
        found = _solve_jointly(spec, problems, joint, sols, keys, shared, options, deadline, relative_gap, tiebreak, stats, t0)
        final.update(found)
    plans = _plans(problems, final, stats, stats_out, options, explain, include_timings)
    for i in joint:
        if final[i].status == "infeasible" and plans[i].explanation is not None:
            # Feasible alone, so no rule of its own is to blame: the batch as a whole is.
            plans[i].explanation.unused = []
            plans[i].explanation.summary = (
                "feasible alone, but not together with the rest of the batch: the shared capacity of "
                + (", ".join(f"`{n}`" for n in sorted(shared)) or "its providers")
                + " cannot fit every request within its own rules (deadlines, latency limits); plan fewer requests at once or raise a capacity"
            )
    return plans


def _plans(problems, final: dict[int, Solution], stats, stats_out, options: SolveOptions, explain, include_timings) -> list[Plan]:
    if stats_out is not None:
        stats_out.update(stats)
    plans = []
    for i, p in enumerate(problems):
        sol = final[i]
        sol.stats = {"backend": "cpsat", "workers": options.num_workers, "seed": options.seed, **{k: v for k, v in stats.items() if k != "stage_log"}}
        plans.append(to_plan(p, sol, options, explain=explain, include_timings=include_timings))
    return plans


def floored(p: Problem) -> bool:
    """A latency floor could be met by waiting for a slot for no reason, which the contract's
    schedule never does: such a request keeps its plan made alone in a batch (its runs still take
    the shared slots the others must wait for)."""
    return cpsat.latency_floor(p, frozenset())


def _solve_jointly(spec, problems, joint, sols, keys, shared, options, deadline, relative_gap, tiebreak, stats, t0) -> dict[int, Solution]:
    ps = [problems[i] for i in joint]
    # A request with a latency floor keeps its plan made alone (the contract's schedule of its
    # choice, capacity waits within it included): it holds those slots and the others plan
    # around them.
    sols = list(sols)
    for i, p in zip(joint, ps):
        if floored(p) and sols[i].status not in ("optimal", "feasible"):
            sols[i] = cpsat.solve(p, dataclasses.replace(options, time_limit_s=max(0.001, deadline - time.monotonic())), tiebreak=tiebreak)
    held_plan = {i for i, p in zip(joint, ps) if floored(p) and sols[i].status in ("optimal", "feasible")}
    has_penalty, depth, names = _layout(ps, tiebreak)
    n_obj = len(names) - (2 if tiebreak else 0)
    held = 0
    if keys:
        # Stages before the first one a schedule can change: held at each request's own optimum.
        while held < len(names) and not any(_time_dependent(p, has_penalty, held) for p in ps):
            held += 1
    # The alone choices, delayed where they would overrun a shared capacity: a complete hint,
    # and the answer if the joint search finds nothing in time (when it breaks no rule).
    usable = all(sols[i].choice or sols[i].status == "optimal" for i in joint) and not any(floored(p) for p in ps)
    repaired = _list_schedule(spec, [(problems[i], sols[i]) for i in joint], shared) if usable else None
    repaired_ok = repaired is not None and all(
        evaluate_choice(problems[i], sols[i].choice, {a: float(t) for a, t in st.items()}, sols[i].skipped).valid for i, st in zip(joint, repaired)
    )
    # Each request's stage values alone, in the batch's stage order.
    alone_rows = {i: _padded(keys[i], problems[i], has_penalty, depth, tiebreak) for i in keys}
    held_bound, held_log = None, []
    for attempt_held in ([held, 0] if held else [0]):
        tb = time.perf_counter()
        model = CpModel()
        horizon = sum(serial_horizon(p) for p in ps)
        # A floored request with its plan made alone is held to it (waits within it included);
        # one without may not wait at all.
        compiled = [compile_problem(p, model=model, prefix=f"r{i}.", shared_capacity=set() if floored(p) and i not in held_plan else shared, horizon=horizon) for i, p in zip(joint, ps)]
        _add_capacity(model, spec, compiled, shared)
        for i, c in zip(joint, compiled):
            if i in held_plan:
                for (an, pv), xv in c.x.items():
                    model.add(xv == int(sols[i].choice.get(an) == pv))
                for an, t in sols[i].starts.items():
                    model.add(c.start[an] == int(t))
        per_request = [_aligned_exprs(c, has_penalty, n_obj) for c in compiled]
        if tiebreak:
            for c, row in zip(compiled, per_request):
                row.append(sum(c.use.values()))
                row.append(sum(w * c.x[k] for k, w in rank_weights(c).items()))
        for k in range(attempt_held):
            total = 0
            for i, c, row in zip(joint, compiled, per_request):
                v = alone_rows[i][k]
                model.add(row[k] == v)
                total += v
            stats["stage_log"].append({"stage": names[k], "status": "optimal", "objective": float(total), "bound": float(total), "wall_s": 0.0, "elapsed_s": time.perf_counter() - t0, "by": "alone"})
        stats["build_s"] += time.perf_counter() - tb
        stats.update(variables=len(model.proto.variables), constraints=len(model.proto.constraints))
        hint = {}
        for r, (i, c) in enumerate(zip(joint, compiled)):
            s = sols[i]
            if s.status in ("optimal", "feasible"):
                at = repaired[r] if repaired is not None else s.starts
                for (an, pv), xv in c.x.items():
                    hint[xv.index] = int(s.choice.get(an) == pv)
                for an, sv in c.start.items():
                    hint[sv.index] = int(at.get(an, 0))
        # The first stage minimised jointly is bounded by the sum of the requests' values alone
        # (the stages before it being at theirs); later ones are not.
        first_bound = sum(alone_rows[i][attempt_held] for i in joint) if keys and attempt_held < len(names) else None
        exprs = [sum(row[k] for row in per_request) for k in range(attempt_held, len(names))]
        all_vars = [v for c in compiled for v in list(c.x.values()) + list(c.start.values())]
        if attempt_held == held:
            held_bound = first_bound
            held_log = [e for e in stats["stage_log"] if e.get("by") == "alone"]
        status, last = _stages(model, exprs, names[attempt_held:], hint, options, deadline, relative_gap, stats, t0, all_vars, first_bound)
        if last is not None or time.monotonic() >= deadline or attempt_held == 0:
            break
        # The held optimum does not fit the shared capacities: minimise every stage jointly.
        stats["stage_log"] = [e for e in stats["stage_log"] if e.get("by") != "alone"]
    out = {}
    if last is None and repaired_ok:
        found = {i: Solution("feasible", dict(sols[i].choice), dict(st), skipped=sols[i].skipped) for i, st in zip(joint, repaired)}
        # The alone choices keep every held stage at its optimum; report the first one after.
        stage = {"stage": "schedule", "objective": None, "bound": None}
        if keys and held < len(names):
            value = sum(_padded(_aligned_key(problems[i], found[i]), problems[i], has_penalty, depth, tiebreak)[held] for i in joint)
            stage = {"stage": names[held], "objective": float(value), "bound": None if held_bound is None else float(held_bound)}
        stats["stage_log"] = held_log + [{**stage, "status": "feasible", "wall_s": 0.0, "elapsed_s": time.perf_counter() - t0, "by": "list schedule"}]
        return found
    for i, c in zip(joint, compiled):
        if last is None:
            out[i] = Solution("infeasible" if status == "infeasible" else "unknown")
        else:
            choice = {an: pv for (an, pv), xv in c.x.items() if last[xv.index]}
            out[i] = Solution(status, choice, {an: last[c.start[an].index] for an in choice})
    return out


def _stages(model, exprs, names, hint, options, deadline, relative_gap, stats, t0, all_vars, first_bound=None):
    """Minimise each expression in turn, holding the earlier ones at what was found (with none
    left to minimise: find a schedule). ``first_bound``: a known lower bound on the first one,
    reported when it beats CP-SAT's."""
    if not exprs:
        exprs, names = [0], ["schedule"]
    status, last = "optimal", None
    for i, expr in enumerate(exprs):
        left = deadline - time.monotonic()
        if left <= 0:
            status = "feasible" if last else "unknown"
            break
        cpsat.start_from(model, last or hint)
        model.minimize(expr)
        solver = new_solver(left, options.num_workers, options.seed)
        solver.parameters.relative_gap_limit = relative_gap
        r = _STATUS.get(solver.solve(model), "unknown")
        stats["stages"] += 1
        stats["branches"] += solver.num_branches
        stats["conflicts"] += solver.num_conflicts
        stats["solve_s"] += solver.wall_time
        stats["stage_log"].append(
            {
                "stage": names[i],
                "status": r,
                "objective": solver.objective_value if r in ("optimal", "feasible") else None,
                "bound": max(solver.best_objective_bound, first_bound) if i == 0 and first_bound is not None else solver.best_objective_bound,
                "wall_s": solver.wall_time,
                "elapsed_s": time.perf_counter() - t0,
                "by": "joint",
            }
        )
        if r in ("optimal", "feasible"):
            value = int(round(solver.objective_value))
            last = {v.index: solver.value(v) for v in all_vars}
            if r == "optimal" and relative_gap == 0:
                model.add(expr == value)
            else:
                status = "feasible"
                model.add(expr <= value)
        elif i == 0:
            status = r
            break
        else:
            status = "feasible"
            break
    return status, last


def _shared(spec: Spec, problems: list[Problem]) -> set[str]:
    """Providers with a capacity below the number of options, across the batch, that use them."""
    counts: dict[str, int] = {}
    for p in problems:
        for a in p.actions:
            for o in a.options:
                if not o.forbidden_by:
                    counts[o.provider] = counts.get(o.provider, 0) + 1
    return {n for n, k in counts.items() if spec.providers[n].capacity is not None and spec.providers[n].capacity < k}


def _add_capacity(model, spec: Spec, compiled: list[Compiled], shared: set[str]) -> None:
    for pname in sorted(shared):
        intervals = []
        for c in compiled:
            for (an, pv), xv in c.x.items():
                if pv == pname:
                    o = c.problem.option(an, pv)
                    intervals.append(model.new_optional_fixed_size_interval_var(c.start[an], o.latency_ms, xv, f"run[{an},{pv}]"))
        model.add_cumulative(intervals, [1] * len(intervals), spec.providers[pname].capacity)


def _list_schedule(spec: Spec, placed: list[tuple[Problem, Solution]], shared: set[str]) -> list[dict[str, int]] | None:
    """A schedule of these choices that respects every shared capacity, built greedily (a serial
    schedule-generation scheme, written here because it only seeds CP-SAT and backs it up):
    steps are taken in order of the time their requirement first holds, and a step on a shared
    provider takes the slot, of the provider's `capacity` slots, that frees up first. With
    positive latencies a step taken is never made ready earlier later on, so every start is at
    or after its requirement. None if some chosen step's requirement never holds."""
    free = {pv: [0] * spec.providers[pv].capacity for pv in shared}
    chosen = [options_of(p, s.choice) for p, s in placed]
    reqs = [{a.name: requirement(p, a, s.skipped) for a, _ in ch} for (p, s), ch in zip(placed, chosen)]
    ends: list[dict[str, float]] = [{} for _ in placed]
    starts: list[dict[str, int]] = [{} for _ in placed]
    queue: list[tuple[float, int, int, str]] = []
    best: dict[tuple[int, str], float] = {}

    def offer(r: int) -> None:
        times = fact_times(placed[r][0], [(a, o) for a, o in chosen[r] if a.name in ends[r]], ends[r])
        for k, (a, _) in enumerate(chosen[r]):
            if a.name not in ends[r]:
                t = formula_time(reqs[r][a.name], times)
                if t < best.get((r, a.name), INF):
                    best[(r, a.name)] = t
                    heapq.heappush(queue, (t, r, k, a.name))

    for r in range(len(placed)):
        offer(r)
    while queue:
        t, r, k, name = heapq.heappop(queue)
        if name in ends[r] or t > best[(r, name)]:
            continue
        o = chosen[r][k][1]
        start = int(t)
        if o.provider in free:
            start = max(start, heapq.heappop(free[o.provider]))
            heapq.heappush(free[o.provider], start + o.latency_ms)
        starts[r][name] = start
        ends[r][name] = start + o.latency_ms
        offer(r)
    if any(len(st) != len(ch) for st, ch in zip(starts, chosen)):
        return None
    return starts


def _fits(spec: Spec, placed: list[tuple[Problem, Solution]], shared: set[str]) -> bool:
    """Do these plans, each started at time 0, never run more steps on a shared provider at once
    than its capacity allows?"""
    events: dict[str, list[tuple[int, int]]] = {}
    for p, s in placed:
        for an, pv in s.choice.items():
            if pv in shared:
                start = int(s.starts.get(an, 0))
                events.setdefault(pv, []).extend([(start, 1), (start + p.option(an, pv).latency_ms, -1)])
    for pv, evs in events.items():
        running = 0
        for _, d in sorted(evs, key=lambda e: (e[0], e[1])):  # ends before starts at one instant
            running += d
            if running > spec.providers[pv].capacity:
                return False
    return True


def _own_penalty(p: Problem) -> bool:
    return bool(p.soft) and p.intent.objective.kind == "lex"


def _own_names(p: Problem) -> list[str]:
    obj = p.intent.objective
    return list(obj.metrics) if obj.kind == "lex" else ["weighted"]


def _layout(problems: list[Problem], tiebreak: bool) -> tuple[bool, int, list[str]]:
    """(a penalty stage first?, how many objective terms the deepest request has, stage labels:
    penalty, then by position the first request's name for its k-th term, then the tie-breaks)."""
    has_penalty = any(_own_penalty(p) for p in problems)
    depth = max((len(_own_names(p)) for p in problems), default=0)
    names = ["penalty"] if has_penalty else []
    for k in range(depth):
        names.append(next(_own_names(p)[k] for p in problems if k < len(_own_names(p))))
    return has_penalty, depth, names + (["steps", "rank"] if tiebreak else [])


def _padded(key: tuple, p: Problem, has_penalty: bool, depth: int, tiebreak: bool) -> list[int]:
    """A request's stage values (from `_aligned_key`) in the batch's stage order: the penalty slot
    if the batch has one, its own terms padded with zeros to the batch's ``depth``, then steps
    and rank when the batch breaks ties."""
    obj = list(key[:-2])
    pen = [obj[0] if _own_penalty(p) else 0] if has_penalty else []
    own = obj[1:] if _own_penalty(p) else obj
    return pen + own + [0] * (depth - len(own)) + (list(key[-2:]) if tiebreak else [])


def _aligned_key(p: Problem, s: Solution) -> tuple:
    """A request's objective values, then its steps and rank, in its plan made alone."""
    ev = evaluate_choice(p, s.choice, {a: float(t) for a, t in s.starts.items()}, s.skipped)
    return objective_key(p, ev) + tiebreak_key(p, ev)[:2]


def _aligned_exprs(c: Compiled, has_penalty: bool, depth: int) -> list:
    """A request's stage expressions aligned like `_padded` (without the tie-breaks)."""
    p = c.problem
    items = [e for _, e in objective_stages(c)]
    pen = [items[0] if _own_penalty(p) else 0] if has_penalty else []
    own = items[1:] if _own_penalty(p) else items
    row = pen + own
    return row + [0] * (depth - len(row))


def _time_dependent(p: Problem, has_penalty: bool, k: int) -> bool:
    """Can the schedule change this request's k-th aligned stage value (its choice fixed)?"""
    names = (["penalty"] if has_penalty else []) + _own_names(p)
    if k >= len(names) or (names[k] == "penalty" and not _own_penalty(p)):
        return False
    name = names[k]
    soft_timed = any(r[0] == "limit" and r[1] == "latency" for _, r in p.soft_rules) or bool(_soft_befores(p))
    if name == "latency":
        return True
    if name == "penalty":
        return soft_timed
    if name == "weighted":
        return soft_timed or any(m == "latency" for m, _ in p.intent.objective.terms)
    return False
