"""Explanations, computed from the model rather than guessed.

Input: a `Problem` and the chosen options (or none, for an infeasible request). Output: an
`Explanation` (plan.py): for each chosen step, every other option and the rule or observation
that excluded it; for an infeasible request, a *minimal* set of members (goal, `require`s, hard
policy statements, budget, deadline, providers observed down, options too slow for their
action's `timeout`) that admits no plan.

Minimality is established, not assumed: every member is behind an enforcement literal
(compile.py, ``literals=True``), the one model is solved for feasibility only (no objective)
under assumptions, CP-SAT's core of the first solve is the starting set, and a divide-and-conquer
search or a core-guided deletion pass keeps a member only if the rest become feasible without it.
"""

from __future__ import annotations

from typing import Callable

from intento.backends._ortools import cp_model

from intento.backends import SolveOptions, cpsat
from intento.backends.cpsat import latency_floor, new_solver
from intento.compile import compile_problem
from decimal import Decimal

from intento.plan import Alternative, Explanation, PolicyPrice, PolicyRef, StepExplanation, UnusedAction
from intento.problem import Member, Problem, statement_text

def ref(m: Member) -> PolicyRef:
    return PolicyRef(policy=m.name, statement=m.text, kind=m.kind, location=m.span.location if m.span else None)


def basic(problem: Problem, choice: dict[str, str] | None) -> Explanation:
    choice = choice or {}
    steps, unused = [], []
    for a in problem.actions:
        if a.done:
            continue
        if a.name in choice:
            alts = []
            for o in a.options:
                if o.provider == choice[a.name]:
                    continue
                downs = [m for m in o.forbidden_by if m.kind == "down"]
                slow = [m for m in o.forbidden_by if m.kind == "timeout"]
                if downs:
                    at = downs[0].observed_at
                    alts.append(Alternative(provider=o.provider, reason="unavailable", by=[ref(m) for m in downs], observed_at=at.isoformat() if at else None))
                elif slow:
                    # Whatever else forbids it, the step could never finish within its timeout.
                    alts.append(Alternative(provider=o.provider, reason="too_slow", by=[ref(slow[0])]))
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
                kinds = {m.kind for m in blockers}
                kind = "unavailable" if kinds == {"down"} else "too_slow" if kinds == {"timeout"} else "forbidden"
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


def _assumption_solver(left: float) -> cp_model.CpSolver:
    """A solver for feasibility under assumptions: one worker, no presolve, no probing, no LP.

    Presolve cannot use what is behind an enforcement literal, so on these models it only costs
    (it made each solve 2-3x slower); probing, run before the assumptions are taken, costs most
    of an infeasible solve at 200 actions (about 120 ms where the conflict then takes 8 ms,
    benchmarks/conflicts.py); the LP relaxation helps optimise, and these solves have no
    objective. All of this changes only the search, never a status."""
    solver = new_solver(left)
    solver.parameters.cp_model_presolve = False
    solver.parameters.cp_model_probing_level = 0
    solver.parameters.linearization_level = 0
    solver.parameters.symmetry_level = 0
    return solver


class _Oracle:
    """Feasibility of the one literal model under a set of members' assumptions, within the
    request's budget (``end``, on `cpsat.clock()`). Each answer is cached by the set; an
    infeasible answer also gives CP-SAT's core, the members it needed (a subset of the set)."""

    def __init__(self, c, lits: dict[str, object], end: float):
        self.c, self.lits, self.end = c, lits, end
        self.by_index = {lit.index: mid for mid, lit in lits.items()}
        self.solves = 0
        self._seen: dict[frozenset[str], tuple[bool | None, frozenset[str]]] = {}
        #: The last plan found (every variable's value): where the next search starts. The sets
        #: asked about in turn differ by a member or two, so a plan for one is mostly a plan for
        #: the next (at 200 actions the conflict search took about a quarter less time,
        #: benchmarks/conflicts.py). A hint never changes an answer.
        self._witness: dict[int, int] | None = None

    def __call__(self, ids: frozenset[str]) -> tuple[bool | None, frozenset[str]]:
        """(feasible?, core): None when the budget ran out or the solver could not tell."""
        if ids in self._seen:
            return self._seen[ids]
        left = self.end - cpsat.clock()
        if cpsat.out_of_time(self.end):
            return None, ids
        m = self.c.model
        m.clear_assumptions()
        m.add_assumptions([self.lits[i] for i in sorted(ids)])
        cpsat.start_from(m, self._witness)
        solver = _assumption_solver(left)
        status = solver.solve(m)
        self.solves += 1
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            self._witness = dict(enumerate(solver.response_proto.solution))
            out = (True, ids)
        elif status == cp_model.INFEASIBLE:
            core = frozenset(self.by_index[i] for i in solver.sufficient_assumptions_for_infeasibility() if i in self.by_index) & ids
            out = (False, core or ids)
        else:
            return None, ids
        self._seen[ids] = out
        return out


def _shrink(oracle: Callable[[frozenset[str]], tuple[bool | None, frozenset[str]]], conflict: frozenset[str], last: frozenset[str] = frozenset()) -> frozenset[str] | None:
    """A deletion pass over an infeasible set, guided by cores: each member is tried once; when
    the rest is still infeasible, the set becomes that solve's core (a subset of the rest), which
    drops every member the solver did not need at once. A member kept was needed: without it the
    set was feasible, and so is every subset of that set, so the result is minimal.

    Members in ``last`` are tried last and never dropped by a core (only by their own trial), so
    a conflict keeps them whenever the members tried before them allow it."""
    needed: set[str] = set()
    while True:
        untried = sorted(conflict - needed - last) + sorted((conflict & last) - needed)
        if not untried:
            return conflict
        m = untried[0]
        rest = conflict - {m}
        ok, core = oracle(rest)
        if ok is None:
            return None
        if ok:
            needed.add(m)
        else:
            conflict = core | (rest & last)


def _quickxplain(oracle: _Oracle, members: list[str]) -> frozenset[str] | None:
    """A minimal infeasible subset by divide and conquer (Junker's QuickXplain): with a
    conflict of k among n members it needs about 2k log(n/k) solves, where a deletion pass
    needs n. Used when CP-SAT's core leaves many members."""
    def qx(background: frozenset[str], added: bool, rest: list[str]) -> frozenset[str] | None:
        if added:
            ok, _ = oracle(background)
            if ok is None:
                raise _Spent
            if not ok:
                return frozenset()
        if len(rest) == 1:
            return frozenset(rest)
        half = len(rest) // 2
        first, second = rest[:half], rest[half:]
        d2 = qx(background | frozenset(first), True, second)
        d1 = qx(background | d2, bool(d2), first)
        return d1 | d2

    try:
        return qx(frozenset(), False, members)
    except _Spent:
        return None


class _Spent(Exception):
    """The request's budget ran out inside a divide-and-conquer search."""


#: Above this many members left by CP-SAT's core, the divide-and-conquer search runs first.
QUICKXPLAIN_FROM = 8


def minimal_conflict(
    problem: Problem, time_limit_s: float = 10.0, force: dict[str, str] | None = None, deadline: float | None = None, keep: frozenset[str] = frozenset()
) -> list[Member] | None:
    """A minimal infeasible subset of the members, or None if it could not be established.
    With ``force`` (action -> provider) the conflict is the one that forbids that choice.
    ``keep``: member ids the conflict should hold where one can (a why-not question's demands,
    whose base request may be infeasible on its own): the search starts from every member and
    tries them last.

    One model, every member behind an enforcement literal, is solved under assumptions: the
    first solve's core (CP-SAT's own) is the starting set; a divide-and-conquer search
    (`_quickxplain`) cuts it when it is large, and a core-guided deletion pass (`_shrink`) proves
    it minimal. Every solve shares one budget: ``time_limit_s`` from now, and never past
    ``deadline`` (the request's, on `cpsat.clock()`); None once it is spent."""
    end = cpsat.ends_at(SolveOptions(time_limit_s=time_limit_s, deadline=deadline))
    if latency_floor(problem, frozenset()):
        return _conflict_by_solving(problem, end, force, keep)
    c = compile_problem(problem, literals=True, force=force)
    members = [m for m in problem.members if m.id in c.literals]
    oracle = _Oracle(c, {m.id: c.literals[m.id] for m in members}, end)
    ok, core = oracle(frozenset(oracle.lits))
    if ok is not False:
        return None
    if keep & frozenset(oracle.lits):
        conflict = _shrink(oracle, frozenset(oracle.lits), keep)
    elif len(core) > QUICKXPLAIN_FROM:
        # Minimal by construction: each member it keeps was needed by a set it proved feasible.
        conflict = _quickxplain(oracle, [m.id for m in members if m.id in core])
    else:
        conflict = _shrink(oracle, core)
    if conflict is None:
        return None
    return [m for m in members if m.id in conflict]


def _conflict_by_solving(problem: Problem, end: float, force: dict[str, str] | None, keep: frozenset[str] = frozenset()) -> list[Member] | None:
    """The deletion pass with a full solve as the feasibility test. Used where a latency floor
    meets a capacity: only the checked solve (`cpsat.solve`) judges such a schedule exactly."""
    every = frozenset(m.id for m in problem.members)

    def feasible(ids: frozenset[str]) -> tuple[bool | None, frozenset[str]]:
        left = end - cpsat.clock()
        if cpsat.out_of_time(end):
            return None, ids
        status = cpsat.solve(problem, SolveOptions(time_limit_s=left, deadline=end), force=force, relax=every - ids, tiebreak=False).status
        return (None if status == "unknown" else status != "infeasible"), ids

    if feasible(every)[0] is not False:
        return None
    conflict = _shrink(feasible, every, keep)
    return None if conflict is None else [m for m in problem.members if m.id in conflict]


def _join(items: list[str]) -> str:
    items = [f"`{x}`" for x in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _needed_facts(problem: Problem, conflict: list[Member]) -> set[str]:
    from intento.evaluate import formula_facts

    facts: set[str] = set()
    for m, rule in problem.rules:
        if m in conflict and rule[0] in ("goal", "require"):
            facts |= formula_facts(rule[1])
    for owner, formula, _ in problem.befores:
        if owner in conflict:
            facts |= formula_facts(formula)
    changed = True
    while changed:  # what the achievers of needed facts need in turn
        changed = False
        for a in problem.actions:
            if set(a.achieves) & facts:
                more = formula_facts(a.requires) - facts
                if more:
                    facts |= more
                    changed = True
    return facts


def _demand_clause(problem: Problem, m: Member, ids: set[str], covered: set[str]) -> str:
    """A question of kind ``demand``: "the question demands `A via P`", and when P itself is
    forbidden by members of the conflict, by which (those are then covered)."""
    clause = f"the question demands `{m.text}`"
    action, _, provider = m.text.partition(" via ")
    o = problem.option(action, provider) if provider else None
    if o is None:
        return clause
    why = []
    for b in o.forbidden_by:
        if b.id in ids and b.id != m.id:
            covered.add(b.id)
            if b.kind == "down":
                why.append(f"`{provider}` was observed down")
            elif b.kind in ("failed", "timeout"):
                why.append(f"`{provider}` {'failed for this run' if b.kind == 'failed' else 'would time out'} ({b.detail})")
            else:
                why.append(f"{b.name} forbids `{provider}`")
    return clause + (", but " + " and ".join(why) if why else "")


def conflict_sentence(problem: Problem, conflict: list[Member]) -> str:
    """One sentence naming every member of the conflict in the user's words, leading with the
    actions that have no usable option and who forbade each of their options."""
    ids = {m.id for m in conflict}
    needed = _needed_facts(problem, conflict)
    clauses, covered = [], set()
    for a in problem.actions:
        if not a.options or not (set(a.achieves) & needed):
            continue
        blockers = [[m for m in o.forbidden_by if m.id in ids] for o in a.options]
        if not all(blockers):
            continue
        groups: dict[str, tuple[Member, list[str]]] = {}
        for o, bs in zip(a.options, blockers):
            groups.setdefault(bs[0].id, (bs[0], []))[1].append(o.provider)
        parts = []
        for m, provs in groups.values():
            covered.add(m.id)
            if m.kind == "down":
                at = f" at {m.observed_at:%Y-%m-%d %H:%M} UTC" if m.observed_at else ""
                parts.append(f"{_join(provs)} {'was' if len(provs) == 1 else 'were'} observed down{at}")
            elif m.kind == "failed":
                parts.append(f"{_join(provs)} failed for this run ({m.detail})")
            elif m.kind == "timeout":
                parts.append(f"{_join(provs)} would time out: {m.detail}")
            elif m.kind == "demand":
                parts.append(f"the question `{m.text}` rules out {_join(provs)}")
            else:
                parts.append(f"{m.name} forbids {_join(provs)}")
        clauses.append(f"`{a.name}` has no usable option ({'; '.join(parts)})")
    for m in conflict:
        # A "why not" question (whynot.py) is named with what forbids the option it demands.
        if m.kind == "demand" and m.id not in covered:
            covered.add(m.id)
            clauses.append(_demand_clause(problem, m, ids, covered))
    for m in conflict:
        if m.id in covered:
            continue
        if m.kind == "goal":
            clauses.append(f"the goal needs {m.text.removeprefix('goal ')}")
        elif m.kind in ("budget", "deadline"):
            clauses.append(f"the {m.text}")
        elif m.kind == "down":
            at = f" at {m.observed_at:%Y-%m-%d %H:%M} UTC" if m.observed_at else ""
            clauses.append(f"`{m.name}` was observed down{at}")
        elif m.kind == "failed":
            clauses.append(f"`{m.action}` via `{m.name}` failed for this run ({m.detail})")
        elif m.kind == "timeout":
            clauses.append(f"`{m.action}` via `{m.name}` would time out: {m.detail}")
        else:
            clauses.append(f"{m.name} requires `{m.text}`")
    if not clauses:
        # Nothing that can be relaxed is to blame: what is already done (a completed step whose
        # requirement no longer holds in this state) cannot be scheduled as it stands.
        done = sorted(a.name for a in problem.actions if a.done)
        what = f" ({', '.join(f'`{a}`' for a in done)})" if done else ""
        return f"no plan exists even with every rule relaxed: the steps already done{what} cannot be scheduled in the observed state"
    body = clauses[0] if len(clauses) == 1 else "; ".join(clauses[:-1]) + "; and " + clauses[-1]
    return f"no plan exists: {body}. Relaxing any one of these rules or observations admits a plan" + _history_clause(problem, conflict)


def _history_clause(problem: Problem, conflict: list[Member]) -> str:
    """A run's re-plan: when a rule of the conflict is about steps already completed, say that
    the remaining work cannot comply because of them (history is not judged again, and cannot
    be undone)."""
    done = {a.name: a.options[0].provider for a in problem.actions if a.done and a.options}
    if not done:
        return ""
    named: list[str] = []
    for m in conflict:
        if m.kind != "policy" or not m.id.startswith("policy:"):
            continue
        name, _, i = m.id.removeprefix("policy:").rpartition("#")
        p = problem.spec.policies.get(name)
        if p is None or not i.isdigit() or int(i) >= len(p.statements):
            continue
        st = p.statements[int(i)]
        acts = getattr(st, "actions", None)
        if acts is None and getattr(st, "action", None) is not None:
            acts = (st.action,)
        about = list(done) if acts is None else [x.name for x in acts if x.name in done]
        named += [a for a in about if a not in named]
    if not named:
        return ""
    steps = _join([f"{a}` via `{done[a]}" for a in named])
    return (f". The remaining work cannot comply because of what is already done: {steps} {'is' if len(named) == 1 else 'are'} completed"
            " (completed steps are history: a policy judges only the work that remains)")


# ---- full explanations: counterfactuals and prices ------------------------------------------


def objective_terms(problem: Problem, ev) -> dict[str, Decimal]:
    """The plan's objective, term by term in optimisation order, in natural units."""
    from intento.problem import RISK_SCALE

    obj = problem.intent.objective
    penalty = sum((s.penalty for s in ev.violated_soft), Decimal(0))
    metric = {"cost": ev.cost, "latency_ms": Decimal(int(ev.latency_ms)), "risk": Decimal(ev.risk_int) / RISK_SCALE}
    names = {"cost": "cost", "latency": "latency_ms", "risk": "risk"}
    terms: dict[str, Decimal] = {}
    if problem.soft:
        terms["penalty"] = penalty
    for m in obj.metrics:
        terms[names[m]] = metric[names[m]]
    if obj.kind == "weighted":
        value = penalty + sum(w * (metric[names[m]] / 1000 if m == "latency" else metric[names[m]]) for m, w in obj.terms)
        terms["value"] = value
    return terms


def _signed(d: Decimal) -> str:
    d = d.normalize() if d != d.to_integral_value() else d.to_integral_value()
    text = format(d, "f")
    return text if text.startswith("-") else "+" + text


def _delta(a: dict[str, Decimal], b: dict[str, Decimal]) -> dict[str, str]:
    return {k: _signed(a[k] - b[k]) for k in a}


def truncate(expl: Explanation, reason: str = "time_limit") -> Explanation:
    """Mark an explanation partial: the request's time limit ran out before it was computed
    (or, ``max_questions``, its bound on counterfactual solves was reached)."""
    expl.complete = False
    expl.truncated_reason = reason
    return expl


def full(problem: Problem, choice: dict[str, str], starts: dict[str, int], expl: Explanation, time_limit_s: float, deadline: float | None = None,
         max_questions: int | None = None) -> Explanation:
    """Add counterfactuals (every allowed alternative forced) and the price of each hard policy.
    They share one budget (``time_limit_s`` from now, never past ``deadline``): each solve gets
    what is left, and once it is spent the rest is left out and the explanation marked partial
    (`truncate`). ``max_questions`` bounds the counterfactual solves (alternatives first, in the
    plan's step order, then unused actions, then policy prices); past it the rest is left out
    and the explanation marked partial (``max_questions``)."""
    from intento.semantics import evaluate_choice

    end = cpsat.ends_at(SolveOptions(time_limit_s=time_limit_s, deadline=deadline))
    options = SolveOptions(time_limit_s=time_limit_s, deadline=end)
    expl.level = "full"

    asked = [0]

    def spent() -> bool:
        if cpsat.out_of_time(end):
            truncate(expl)
            return True
        return False

    def ask() -> bool:
        """Before each counterfactual solve: False (and counted) when it may run."""
        if spent():
            return False
        if max_questions is not None and asked[0] >= max_questions:
            truncate(expl, "max_questions")
            return False
        asked[0] += 1
        return True

    def cut_short(sol) -> bool:
        # Out of time: a counterfactual that is not optimal would report a wrong delta.
        return sol.status == "unknown" or (sol.status == "feasible" and cpsat.out_of_time(end))

    base = objective_terms(problem, evaluate_choice(problem, choice, {a: float(t) for a, t in starts.items()}))
    for step in expl.steps:
        for alt in step.alternatives:
            if alt.reason != "worse":
                continue
            if not ask():
                return expl
            sol = cpsat.solve(problem, options, force={step.action: alt.provider}, tiebreak=False)
            if cut_short(sol):
                truncate(expl)
                return expl
            if sol.status in ("optimal", "feasible"):
                forced = objective_terms(problem, evaluate_choice(problem, sol.choice, {a: float(t) for a, t in sol.starts.items()}))
                alt.delta = _delta(forced, base)
                if all(v in ("+0", "-0") for v in alt.delta.values()):
                    alt.reason = "tied"
            elif sol.status == "infeasible":
                conflict = minimal_conflict(problem, time_limit_s, force={step.action: alt.provider}, deadline=end)
                if conflict is None and spent():
                    return expl
                conflict = conflict or []
                alt.reason = "forbidden"
                alt.by = [ref(m) for m in conflict if m.kind != "goal"] or [ref(m) for m in conflict]
    # Alternative routes: each action the plan leaves out although it could run, used (its best
    # option) against the plan; or, when nothing admits it, what forbids using it.
    from intento.whynot import Question, with_demand

    for un in expl.unused:
        if un.reason != "not_needed":
            continue
        if not ask():
            return expl
        demanded, (demand,) = with_demand(problem, [Question(kind="use", action=un.action)])
        sol = cpsat.solve(demanded, options, tiebreak=False)
        if cut_short(sol):
            truncate(expl)
            return expl
        if sol.status in ("optimal", "feasible"):
            used = objective_terms(demanded, evaluate_choice(demanded, sol.choice, {a: float(t) for a, t in sol.starts.items()}))
            un.delta = _delta(used, base)
            un.via = sol.choice.get(un.action)
        elif sol.status == "infeasible":
            conflict = minimal_conflict(demanded, time_limit_s, deadline=end)
            if conflict is None and spent():
                return expl
            un.by = [ref(m) for m in conflict or [] if m is not demand and m.kind != "goal"]
            un.impossible = True
    prices = []
    for p in problem.applicable:
        if p.soft is not None:
            continue
        ids = frozenset(m.id for m in problem.members if m.id.startswith(f"policy:{p.name}#"))
        if not ids:
            continue
        if not ask():
            break
        sol = cpsat.solve(problem, options, relax=ids, tiebreak=False)
        if cut_short(sol):
            truncate(expl)
            break
        if sol.status not in ("optimal", "feasible"):
            continue
        without = objective_terms(problem, evaluate_choice(problem, sol.choice, {a: float(t) for a, t in sol.starts.items()}))
        price = _delta(base, without)
        prices.append(
            PolicyPrice(
                policy=p.name,
                statements=[statement_text(st) for st in p.statements],
                binding=any(v not in ("+0", "-0") for v in price.values()),
                price=price,
            )
        )
    expl.prices = prices
    return expl
