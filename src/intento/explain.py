"""Explanations, computed from the model rather than guessed.

Input: a `Problem` and the chosen options (or none, for an infeasible request). Output: an
`Explanation` (plan.py): for each chosen step, every other option and the rule or observation
that excluded it; for an infeasible request, a *minimal* set of members (goal, `require`s, hard
policy statements, budget, deadline, providers observed down) that admits no plan.

Minimality is established, not assumed: every member is behind an enforcement literal
(compile.py, ``literals=True``), the model is solved for feasibility only (no objective), and a
deletion pass drops each member in turn, keeping it only if the rest become feasible without it.
"""

from __future__ import annotations

from ortools.sat.python import cp_model

from intento.compile import compile_problem
from intento.plan import Alternative, Explanation, PolicyRef, StepExplanation, UnusedAction
from intento.problem import Member, Problem

#: Above this many members, the deletion pass starts from CP-SAT's own core instead of all members.
DELETION_FROM_ALL = 40


def ref(m: Member) -> PolicyRef:
    return PolicyRef(policy=m.name, statement=m.text, kind=m.kind, location=m.span.location if m.span else None)


def basic(problem: Problem, choice: dict[str, str] | None) -> Explanation:
    choice = choice or {}
    steps, unused = [], []
    for a in problem.actions:
        if a.name in choice:
            alts = []
            for o in a.options:
                if o.provider == choice[a.name]:
                    continue
                downs = [m for m in o.forbidden_by if m.kind == "down"]
                if downs:
                    at = downs[0].observed_at
                    alts.append(Alternative(provider=o.provider, reason="unavailable", by=[ref(m) for m in downs], observed_at=at.isoformat() if at else None))
                elif o.forbidden_by:
                    alts.append(Alternative(provider=o.provider, reason="forbidden", by=[ref(m) for m in o.forbidden_by]))
                else:
                    soft = [PolicyRef(policy=v.policy, statement=v.text, kind="soft", location=v.span.location if v.span else None) for v in o.soft_violations]
                    alts.append(Alternative(provider=o.provider, reason="worse", by=soft))
            steps.append(StepExplanation(action=a.name, provider=choice[a.name], alternatives=alts))
        elif a.options:
            blockers: list[Member] = []
            if all(o.forbidden_by for o in a.options):
                for o in a.options:
                    blockers += [m for m in o.forbidden_by if m not in blockers]
                kind = "unavailable" if all(m.kind == "down" for m in blockers) else "forbidden"
                unused.append(UnusedAction(action=a.name, reason=kind, by=[ref(m) for m in blockers]))
            else:
                unused.append(UnusedAction(action=a.name, reason="not_needed"))
    applied = [p.name for p in problem.applicable]
    return Explanation(
        level="basic",
        steps=steps,
        unused=unused,
        down=sorted(problem.state.down),
        applied_policies=applied,
        skipped_policies=[p for p in problem.spec.policies if p not in applied],
    )


def _feasible(c, lits: list, time_limit_s: float) -> bool | None:
    m = c.model
    m.ClearAssumptions()
    m.AddAssumptions(lits)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.num_workers = 1
    status = solver.Solve(m)
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return True
    if status == cp_model.INFEASIBLE:
        return False
    return None


def minimal_conflict(problem: Problem, time_limit_s: float = 10.0) -> list[Member] | None:
    """A minimal infeasible subset of the members, or None if it could not be established."""
    c = compile_problem(problem, literals=True)
    members = [m for m in problem.members if m.id in c.literals]
    lits = {m.id: c.literals[m.id] for m in members}
    if _feasible(c, list(lits.values()), time_limit_s) is not False:
        return None
    current = members
    if len(members) > DELETION_FROM_ALL:
        solver = cp_model.CpSolver()
        solver.parameters.num_workers = 1
        solver.parameters.max_time_in_seconds = time_limit_s
        c.model.ClearAssumptions()
        c.model.AddAssumptions(list(lits.values()))
        solver.Solve(c.model)
        core = set(solver.SufficientAssumptionsForInfeasibility())
        current = [m for m in members if lits[m.id].Index() in core] or members
    for m in list(current):
        trial = [x for x in current if x is not m]
        r = _feasible(c, [lits[x.id] for x in trial], time_limit_s)
        if r is None:
            return None
        if r is False:
            current = trial
    return current


def conflict_sentence(conflict: list[Member]) -> str:
    """One sentence naming every member of the conflict in the user's words."""
    parts = []
    for m in conflict:
        if m.kind == "down":
            at = f" at {m.observed_at:%Y-%m-%d %H:%M}" if m.observed_at else ""
            parts.append(f"{m.name} was observed down{at}")
        elif m.kind in ("goal", "budget", "deadline"):
            parts.append(f"the {m.text}")
        else:
            parts.append(f"{m.name} requires `{m.text}`")
    if len(parts) > 1:
        body = ", ".join(parts[:-1]) + " and " + parts[-1]
    else:
        body = parts[0] if parts else "the request"
    return f"no plan exists: {body}; relaxing any one of these admits a plan"
