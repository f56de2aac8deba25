"""Planning, end to end: a request to a `Plan`.

Input: a `Spec`, an intent name, ``given`` values and an observed state (JSON-like values or the
pydantic `State`). Output: a `Plan` (plan.py). Bad input raises `IntentoError` carrying located
diagnostics; an infeasible request is a Plan with status ``infeasible`` and an explanation, never
an exception.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections import OrderedDict
from decimal import Decimal
from typing import Any, Literal

from intento.backends import ModelTooLarge, Solution, SolveOptions
from intento.diagnostics import Diagnostic, IntentoError, RequestError, Severity, Source, did_you_mean
from intento.backends import cpsat as _cpsat
from intento.explain import basic, conflict_sentence, full, minimal_conflict, ref, truncate
from intento.plan import Broken, Objective, Plan, SolverInfo, Step
from intento.problem import RISK_SCALE, Problem, build_problem, policy_applies
from intento.request import resolve_context, resolve_state
from intento.semantics import evaluate_choice
from intento.spec import Spec
from intento.values import format_decimal

Backend = Literal["cpsat", "constraint"]
ExplainLevel = Literal["none", "basic", "full"]


def prepare(
    spec: Spec,
    intent: str,
    given: Any = None,
    state: Any = None,
    *,
    given_source: Source | None = None,
    state_source: Source | None = None,
    deadline_ms: int | None | Literal["declared"] = "declared",
    budget: Decimal | None | Literal["declared"] = "declared",
    excluded: dict[tuple[str, str], str] | None = None,
    done: dict[str, str] | None = None,
    learned: dict[str, dict] | None = None,
) -> Problem:
    """Validate a request and make it static (problem.py); raises `IntentoError` on bad input.

    The executor re-plans mid-run with what is left: ``deadline_ms`` and ``budget`` replace the
    intent's, ``excluded`` options are forbidden for this run, and ``done`` steps (action ->
    provider) are kept as fixed history so whole-plan rules still see them; ``learned`` figures
    (`intento.learn`) replace options' planned latency and reliability."""
    if intent not in spec.intents:
        raise RequestError(
            [Diagnostic("E102", Severity.error, f"unknown intent `{intent}`", None, help=did_you_mean(intent, spec.intents) or "intents: " + ", ".join(spec.intents))]
        )
    ispec = spec.intents[intent]
    rstate, d1 = resolve_state(spec, state, state_source)
    ctx, d2 = resolve_context(spec, ispec, given, given_source)
    if d1 or d2:
        raise RequestError(d1 + d2)
    if deadline_ms != "declared" or budget != "declared":
        ispec = dataclasses.replace(
            ispec,
            deadline_ms=ispec.deadline_ms if deadline_ms == "declared" else deadline_ms,
            budget=ispec.budget if budget == "declared" else budget,
        )
    # The given values shape the model only through the `when` guards they decide: requests
    # that agree on which policies apply (and on state and history) share one built problem.
    applies = tuple(p.name for p in spec.policies.values() if policy_applies(p, ispec, ctx))
    key = (
        spec.fingerprint,
        tuple(sorted(src.name for src in spec.sources)),  # locations in explanations name the files
        intent,
        applies,
        rstate.model.model_dump_json(),
        ispec.deadline_ms,
        str(ispec.budget),
        tuple(sorted((excluded or {}).items())),
        tuple(sorted((done or {}).items())),
        tuple(sorted((k, v["latency_ms"], str(v["reliability"]), v["samples"]) for k, v in (learned or {}).items())),
    )
    with _CACHE_LOCK:
        cached = _PROBLEMS.get(key)
        if cached is not None:
            _PROBLEMS.move_to_end(key)
            PROBLEM_CACHE_STATS["hits"] += 1
    if cached is not None:
        problem = copy.copy(cached)
        problem.context = ctx
        return problem
    problem = build_problem(spec, ispec, ctx, rstate, excluded, done, learned)
    problem.shape = key
    with _CACHE_LOCK:
        PROBLEM_CACHE_STATS["misses"] += 1
        _PROBLEMS[key] = problem
        if len(_PROBLEMS) > PROBLEM_CACHE_SIZE:
            _PROBLEMS.popitem(last=False)
    return problem


#: Built problems kept for reuse (LRU): keyed by project hash, intent, the policies the context
#: makes apply, the observed state and a run's history. Problems are not mutated after they are
#: built; each solve compiles its own CP-SAT model from one.
PROBLEM_CACHE_SIZE = 512
_PROBLEMS: "OrderedDict[tuple, Problem]" = OrderedDict()
_CACHE_LOCK = threading.Lock()
PROBLEM_CACHE_STATS = {"hits": 0, "misses": 0}


def plan(
    spec: Spec,
    intent: str,
    given: Any = None,
    state: Any = None,
    *,
    backend: Backend = "cpsat",
    time_limit_s: float = 10.0,
    num_workers: int = 1,
    seed: int = 0,
    explain: ExplainLevel = "basic",
    include_timings: bool = False,
    given_source: Source | None = None,
    state_source: Source | None = None,
    hint: Plan | dict[str, str] | None = None,
    work_limit: float | None = None,
    max_questions: int | None = None,
) -> Plan:
    problem = prepare(spec, intent, given, state, given_source=given_source, state_source=state_source)
    if isinstance(hint, Plan):
        hint = {s.action: s.provider for s in hint.steps}
    return plan_problem(problem, backend=backend, time_limit_s=time_limit_s, num_workers=num_workers, seed=seed, explain=explain, include_timings=include_timings, hint=hint, work_limit=work_limit,
                        max_questions=max_questions)


def solve_problem(problem: Problem, backend: Backend, options: SolveOptions, force: dict[str, str] | None = None, hint: dict[str, str] | None = None) -> Solution:
    if backend == "constraint":
        from intento.backends import constraint

        return constraint.solve(problem, options, force=force)
    from intento.backends import cpsat

    return cpsat.solve(problem, options, force=force, hint=hint)


def plan_problem(
    problem: Problem,
    *,
    backend: Backend = "cpsat",
    time_limit_s: float = 10.0,
    num_workers: int = 1,
    seed: int = 0,
    explain: ExplainLevel = "basic",
    include_timings: bool = False,
    force: dict[str, str] | None = None,
    hint: dict[str, str] | None = None,
    work_limit: float | None = None,
    max_questions: int | None = None,
) -> Plan:
    """Plan a prepared problem. ``force`` (action -> provider) keeps steps that are already
    running in the plan (the executor's re-plans); ``hint`` (action -> provider, e.g. the previous
    plan) is a starting point for the search only: it never changes the answer. ``work_limit``:
    a budget of CP-SAT deterministic time for the whole request, besides ``time_limit_s`` (wall
    clock); an answer cut by it is the same on an idle and a loaded machine. ``max_questions``:
    with ``explain="full"``, at most this many counterfactual solves (the explanation is then
    marked partial, ``max_questions``)."""
    # One budget per request: the solve, the conflict search and every counterfactual end by it.
    options = SolveOptions(time_limit_s=time_limit_s, num_workers=num_workers, seed=seed, deadline=_cpsat.clock() + time_limit_s)
    with _cpsat.work_limit(work_limit):
        try:
            sol = solve_problem(problem, backend, options, force, hint)
        except ModelTooLarge as e:
            raise IntentoError([Diagnostic("E110", Severity.error, str(e), None, help="use the default `cpsat` back-end for models this size")]) from None
        return to_plan(problem, sol, options, explain=explain, include_timings=include_timings, max_questions=max_questions)


def to_plan(problem: Problem, sol: Solution, options: SolveOptions, *, explain: ExplainLevel = "basic", include_timings: bool = False, max_questions: int | None = None) -> Plan:
    st = sol.stats
    solver = SolverInfo(
        backend=st.get("backend", "cpsat"),
        status=sol.status,
        variables=st.get("variables", 0),
        constraints=st.get("constraints", 0),
        stages=st.get("stages", 0),
        workers=st.get("workers"),
        seed=st.get("seed"),
        time_limit_s=options.time_limit_s,
    )
    if include_timings:
        solver.wall_ms = round(st.get("solve_s", 0.0) * 1000, 3)
        solver.build_ms = round(st.get("build_s", 0.0) * 1000, 3)
        solver.branches = st.get("branches")
        solver.conflicts = st.get("conflicts")
    currency = problem.currency
    if sol.status in ("infeasible", "unknown"):
        expl = basic(problem, None) if explain != "none" else _no_explanation()
        if sol.status == "infeasible" and explain != "none":
            conflict = minimal_conflict(problem, options.time_limit_s, deadline=options.deadline)
            if conflict is not None:
                expl.conflict = [ref(m) for m in conflict]
                expl.summary = conflict_sentence(problem, conflict)
            elif options.deadline is not None and _cpsat.out_of_time(options.deadline):
                truncate(expl)
        return Plan(status=sol.status, intent=problem.intent.name, currency=currency, solver=solver, explanation=expl)
    ev = evaluate_choice(problem, sol.choice, {a: float(s) for a, s in sol.starts.items()})
    # INVARIANT: the solver's choice satisfies every hard rule, read directly from the contract.
    assert ev.valid, f"solver returned a plan that breaks {ev.broken_members}"
    steps = []
    by_action = {a.name: a for a in problem.actions}
    for a in problem.actions:
        if a.name not in sol.choice or a.done:
            continue
        o = next(o for o in a.options if o.provider == sol.choice[a.name])
        start = int(ev.starts[a.name])
        steps.append(
            Step(
                action=a.name,
                provider=o.provider,
                start_ms=start,
                end_ms=start + o.latency_ms,
                cost=format_decimal(o.cost),
                latency_ms=o.latency_ms,
                reliability=float(o.reliability),
                achieves=list(a.achieves),
            )
        )
    steps.sort(key=lambda s: (s.start_ms, by_action[s.action].index))
    penalty = sum((s.penalty for s in ev.violated_soft), Decimal(0))
    broken = [Broken(policy=s.policy, statement=s.text, penalty=format_decimal(s.penalty)) for s in ev.violated_soft]
    obj = problem.intent.objective
    order = (["penalty"] if problem.soft and obj.kind == "lex" else []) + list(obj.metrics)
    value = None
    if obj.kind == "weighted":
        total = penalty
        for name, w in obj.terms:
            metric = {"cost": ev.cost, "latency": Decimal(int(ev.latency_ms)) / 1000, "risk": Decimal(ev.risk_int) / RISK_SCALE}[name]
            total += w * metric
        value = format_decimal(total.normalize()) if total else "0"
    objective = Objective(
        kind="lexicographic" if obj.kind == "lex" else "weighted",
        order=order,
        penalty=format_decimal(penalty),
        cost=format_decimal(ev.cost),
        latency_ms=int(ev.latency_ms),
        risk=float(1 - ev.reliability),
        risk_ln=ev.risk_int / RISK_SCALE,
        value=value,
    )
    expl = basic(problem, sol.choice) if explain != "none" else _no_explanation()
    if explain == "full":
        expl = full(problem, sol.choice, sol.starts, expl, options.time_limit_s, deadline=options.deadline, max_questions=max_questions)
    return Plan(
        status=sol.status,
        intent=problem.intent.name,
        steps=steps,
        cost=format_decimal(ev.cost),
        currency=currency,
        latency_ms=int(ev.latency_ms),
        reliability=float(ev.reliability),
        risk=float(1 - ev.reliability),
        objective=objective,
        broken=broken,
        solver=solver,
        explanation=expl,
    )


def _no_explanation():
    from intento.plan import Explanation

    return Explanation(level="none")
