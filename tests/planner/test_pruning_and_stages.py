"""Model-size and search shortcuts that must never change an answer.

* Forward reachability pruning (`compile.reachable_actions`, switched by
  `compile.FORWARD_PRUNING`): on generated estates, tangled projects (cycles, unreachable
  inputs, `or` requirements, hard and soft `before`s, providers down, observed facts, done and
  forced steps), small composition projects and batches, planning with and without it gives
  the same plan JSON (solver sizes and stage counts aside); an infeasible request stays
  infeasible, and the conflict each model reports is verified minimal by plain solves (on the
  unpruned model; on the pruned one for composition projects, whose unpruned model CP-SAT can
  search for minutes).
* `compile.relevant_actions` (a worklist) agrees with the old fixed point, written out here,
  and `compile.reachable_actions` with a naive fixed point.
* Packed lexicographic stages (`cpsat.minimize_stages`, `pack`, `TENTATIVE_WORK`): the plan is
  the same with packing on, off, and with every packed solve cut (so each falls back to solving
  its stages one by one), and equal to the exhaustive back-end's on small projects; on hand-built
  models the stage values equal a brute-force lexicographic optimum.
* The per-request work budget (`work_limit`): the same request under the same small budget gives
  byte-identical plans; any budget gives a valid answer, never an exception; an infeasible
  request's explanation under a small budget is a verified minimal conflict or marked truncated;
  no solve is given more work than the request has left.

Every solve here is given a generous wall clock, so what is compared never depends on the
machine's speed: only deterministic time (`work_limit`, `TENTATIVE_WORK`) cuts a search.
"""

from __future__ import annotations

import itertools
import random

import pytest
from ortools.sat.python import cp_model

from benchmarks.composition import OBJECTIVES, composition
from benchmarks.conflicts import infeasible_estate
from benchmarks.scenarios import estate
from intento import compile as compile_mod
from intento.backends import SolveOptions, cpsat
from intento.batch import plan_many
from intento.check import check_sources
from intento.compile import Compiled, compile_problem, reachable_actions, relevant_actions
from intento.diagnostics import Source
from intento.problem import Member
from intento.solve import plan_problem, prepare
from intento.syntax import ast
from tests.planner.validator import check_plan

WALL = 120.0  # never the binding limit (every solve here takes well under a second): only
#               deterministic work may cut a search


# ---- generated projects ------------------------------------------------------------------------

OBJECTIVE_FORMS = [
    "",
    "minimize cost then latency",
    "minimize latency then cost",
    "minimize risk then cost",
    "minimize cost then risk then latency",
    "minimize 2 * cost + 0.5 * latency + 10 * risk",
    "minimize latency + cost",
]


def tangle(seed: int, n_actions: int = 8, n_facts: int = 7, n_providers: int = 4, objective: str | None = None):
    """A small seeded project that is far from a chain: requirements read any fact (so cycles
    are common), two facts are inputs no action achieves (only an observation makes them hold),
    `or` requirements, a few policies (hard and soft `before`s, forbids, limits, `distinct`, a
    count floor), observed facts and providers down. Returns (source, given, state)."""
    rng = random.Random(seed)
    facts = [f"g{i}" for i in range(n_facts)]
    made = facts[:-2]
    provs = [f"p{i}" for i in range(n_providers)]
    acts = [f"a{i}" for i in range(n_actions)]
    lines = []
    for p in provs:
        tags = [t for t in ("pci", "green") if rng.random() < 0.4]
        cap = "; capacity 1" if rng.random() < 0.15 else ""
        lines.append(f'provider {p} {{ region "{rng.choice(["eu", "us"])}"; tags [{", ".join(chr(34) + t + chr(34) for t in tags)}]{cap} }}')
    for a in acts:
        body = ["achieves " + ", ".join(rng.sample(made, rng.choice([1, 1, 2])))]
        r = rng.random()
        x, y = rng.sample(facts, 2)
        if r < 0.2:
            pass
        elif r < 0.6:
            body.append(f"requires {x}")
        elif r < 0.8:
            body.append(f"requires {x} and {y}")
        else:
            body.append(f"requires {x} or {y}")
        for p in rng.sample(provs, rng.randint(1, 3)):
            cost = rng.choice(["0", "0.5", "1", "1.25", "2", "3"])
            body.append(f"via {p} {{ cost {cost} USD; latency {rng.randint(1, 20)}ms; reliability {rng.choice(['1', '0.99', '0.95', '0.9'])} }}")
        lines.append(f"action {a} {{ " + "; ".join(body) + " }")
    goal = f" {rng.choice(['and', 'or'])} ".join(rng.sample(made, rng.choice([1, 2])))
    intent = ["given region: string", f"goal {goal}"]
    if rng.random() < 0.2:
        intent.append(f"deadline {rng.randint(15, 80)}ms")
    if rng.random() < 0.2:
        intent.append(f"budget {rng.choice(['2', '4', '6'])} USD")
    form = rng.choice(OBJECTIVE_FORMS)
    intent.append(form if objective is None else objective)
    lines.append("intent job { " + "; ".join(i for i in intent if i) + " }")
    templates = [
        lambda: f"require {rng.choice(facts)} before {rng.choice(acts)}",
        lambda: f"require {rng.choice(made)}",
        lambda: f"forbid provider {rng.choice(provs)}",
        lambda: f"forbid action {rng.choice(acts)}",
        lambda: 'when region == "eu"; forbid via where region != "eu"',
        lambda: f'require "pci" in tags for {rng.choice(acts)}',
        lambda: f"limit latency <= {rng.randint(15, 60)}ms",
        lambda: f"limit cost <= {rng.choice(['2', '3.5', '6'])} USD",
        lambda: "distinct provider for " + ", ".join(rng.sample(acts, 2)),
        lambda: "limit reliability >= 0.9",
        lambda: 'limit count(via where region == "eu") >= 1',
        lambda: f"limit latency >= {rng.randint(1, 30)}ms",
    ]
    for i in range(rng.randint(0, 3)):
        stmt = rng.choice(templates)()
        soft = f"soft {rng.choice(['1', '2.5', '10'])}; " if rng.random() < 0.3 else ""
        lines.append(f"policy q{i} {{ {soft}{stmt} }}")
    state: dict = {}
    seen = rng.sample(facts, rng.choice([0, 1, 1, 2]))
    if seen:
        state["facts"] = seen
    down = rng.sample(provs, rng.choice([0, 0, 1, 2]))
    if down:
        state["providers"] = {p: {"status": "down"} for p in down}
    return "\n".join(lines) + "\n", {"region": rng.choice(["eu", "us"])}, state


def _spec(*sources: Source):
    result = check_sources(list(sources))
    assert result.ok, "\n".join(d.render() for d in result.errors)
    return result.spec


def _tangle_problem(seed: int, **kw):
    text, given, state = tangle(seed, **kw)
    spec = _spec(Source(f"t{seed}.intent", text))
    return spec, given, state, prepare(spec, "job", given, state)


def _estate_problem(n: int, seed: int, region: str, state: dict | None):
    e = estate(n, seed=seed)
    spec = _spec(Source(f"e{n}_{seed}.intent", e.source))
    return spec, e.given(region), state, prepare(spec, e.intent, e.given(region), state)


def _down(n_providers: int, seed: int, k: int) -> dict:
    rng = random.Random(1000 + seed)
    return {"providers": {f"prov{i}": {"status": "down"} for i in sorted(rng.sample(range(n_providers), k))}}


def _allowed(problem, force: dict[str, str] | None = None) -> dict[str, list]:
    """The options `compile_problem` starts from when every member is enforced."""
    force = force or {}
    return {
        a.name: [(o, []) for o in a.options if not o.forbidden_by and (a.name not in force or force[a.name] == o.provider)]
        for a in problem.actions
    }


def _waits(problem) -> list[tuple[ast.Expr, str]]:
    return [(f, t) for owner, f, t in problem.befores if isinstance(owner, Member)]


def _comparable(p, conflict: bool = True) -> dict:
    """A plan's JSON without what legitimately depends on the model's size or stage count."""
    d = p.model_dump(mode="json")
    for k in ("variables", "constraints", "stages", "wall_ms", "build_ms", "branches", "conflicts"):
        d["solver"].pop(k, None)
    if not conflict and d.get("explanation"):
        d["explanation"].pop("conflict", None)
        d["explanation"].pop("summary", None)
    return d


# ---- an independent feasibility test for conflicts ----------------------------------------------


def _feasible(problem, relax: frozenset[str], pruned: bool = False) -> bool:
    """Does the request admit a plan with the members in ``relax`` left out? A plain feasibility
    solve (every member left enforced outright, no assumptions), or the checked solve where a
    latency floor meets a capacity (only it judges such schedules exactly). On the unpruned model
    unless ``pruned``: composition projects need the pruned one, as CP-SAT can search the
    unreachable cycles of their unpruned model for minutes."""
    saved = compile_mod.FORWARD_PRUNING
    compile_mod.FORWARD_PRUNING = pruned
    try:
        if cpsat.latency_floor(problem, relax):
            status = cpsat.solve(problem, SolveOptions(time_limit_s=WALL), relax=relax, tiebreak=False).status
            assert status != "unknown"
            return status in ("optimal", "feasible")
        c = compile_problem(problem, relax=relax)
        solver = cp_model.CpSolver()
        solver.parameters.num_workers = 1
        solver.parameters.max_time_in_seconds = WALL
        status = solver.solve(c.model)
        assert status != cp_model.UNKNOWN
        return status in (cp_model.OPTIMAL, cp_model.FEASIBLE)
    finally:
        compile_mod.FORWARD_PRUNING = saved


def _assert_minimal(problem, conflict: list[Member], info: str = "", pruned: bool = False) -> None:
    ids = {m.id for m in conflict}
    assert ids, f"an empty conflict{info}"
    rest = frozenset(m.id for m in problem.members) - ids
    assert not _feasible(problem, rest, pruned), f"the conflict {sorted(ids)} alone admits a plan{info}"
    for mid in ids:
        assert _feasible(problem, rest | {mid}, pruned), f"{mid} is not needed in the conflict {sorted(ids)}{info}"


def _conflict_of_plan(problem, p) -> list[Member]:
    """The members a plan's explanation names (matched by statement text and policy)."""
    named = [(c.policy, c.statement, c.kind) for c in p.explanation.conflict or []]
    members = [m for m in problem.members if (m.name, m.text, m.kind) in named]
    assert len(members) == len(named), (named, members)
    return members


# ---- 1. forward pruning is exact -----------------------------------------------------------------


def _plan_both(problem, monkeypatch, unpruned_explain: str | None = None, **kw):
    monkeypatch.setattr(compile_mod, "FORWARD_PRUNING", True)
    on = plan_problem(problem, time_limit_s=WALL, **kw)
    monkeypatch.setattr(compile_mod, "FORWARD_PRUNING", False)
    if unpruned_explain is not None:
        kw = dict(kw, explain=unpruned_explain)
    off = plan_problem(problem, time_limit_s=WALL, **kw)
    monkeypatch.setattr(compile_mod, "FORWARD_PRUNING", True)
    return on, off


def _assert_same_plans(problem, monkeypatch, info: str, unpruned_conflict: bool = True, **kw) -> tuple[str, bool]:
    """Plans with and without forward pruning agree; returns (status, whether pruning removed
    part of the model). ``unpruned_conflict=False``: an infeasible request's conflict is only
    searched for, and verified, on the pruned model: on the unpruned model of a composition
    project a single solve can take minutes (unreachable cycles of actions, whose times CP-SAT
    pushes up towards the horizon a step at a time)."""
    if not unpruned_conflict:
        on, off = _plan_both(problem, monkeypatch, unpruned_explain="none", **kw)
        if on.status == "infeasible":
            assert off.status == "infeasible", info
            assert on.explanation.complete and on.explanation.conflict, on.model_dump_json()
            _assert_minimal(problem, _conflict_of_plan(problem, on), info, pruned=True)
            return on.status, on.solver.variables < off.solver.variables
        # A feasible request searches for no conflict: compare the whole plans.
    on, off = _plan_both(problem, monkeypatch, **kw)
    info = f"{info}\npruned={on.model_dump_json()}\nunpruned={off.model_dump_json()}"
    assert on.status == off.status, info
    assert on.status in ("optimal", "infeasible"), info
    if on.status == "infeasible" and kw.get("explain", "basic") != "none":
        # Both conflicts are minimal (which minimal conflict CP-SAT's core leads to may depend on
        # the model); everything else in the answer is the same.
        assert _comparable(on, conflict=False) == _comparable(off, conflict=False), info
        assert on.explanation.complete and off.explanation.complete, info
        for p in (on, off):
            assert p.explanation.conflict, info
            _assert_minimal(problem, _conflict_of_plan(problem, p), info)
    else:
        assert _comparable(on) == _comparable(off), info
    return on.status, on.solver.variables < off.solver.variables


#: Tangles whose latency floor meets a capacity (the checked solve, `cpsat.solve`'s loop).
FLOORED = [235, 247, 249, 270, 285, 363, 370]


def test_forward_pruning_keeps_every_plan_of_tangled_projects(monkeypatch):
    outcomes: dict[tuple[str, bool], int] = {}
    for seed in list(range(100)) + FLOORED:
        spec, given, state, problem = _tangle_problem(seed)
        key = _assert_same_plans(problem, monkeypatch, f"tangle seed {seed}", explain="basic")
        outcomes[key] = outcomes.get(key, 0) + 1
    # The generator exercises what it is for: pruned models of feasible and infeasible requests.
    assert outcomes.get(("optimal", True), 0) >= 30, outcomes
    assert outcomes.get(("infeasible", True), 0) >= 15, outcomes


def test_forward_pruning_with_done_and_forced_steps(monkeypatch):
    """A run's re-plan: the first step of the optimal plan done (its requirement holds from the
    observed facts, as in a run), and counterfactuals forcing an option, reachable or not."""
    checked = 0
    for seed in range(60):
        spec, given, state, problem = _tangle_problem(seed)
        first = plan_problem(problem, time_limit_s=WALL, explain="none")
        if first.status != "optimal" or not first.steps:
            continue
        s = first.steps[0]
        again = prepare(spec, "job", given, state, done={s.action: s.provider})
        allowed = _allowed(again)
        assert s.action in reachable_actions(again, allowed, _waits(again))
        rel = relevant_actions(again)
        assert rel is None or s.action in rel
        _assert_same_plans(again, monkeypatch, f"tangle seed {seed} done {s.action}", explain="basic")
        rng = random.Random(seed)
        a = rng.choice(problem.actions)
        o = rng.choice(a.options)
        forced = {a.name: o.provider}
        assert a.name in reachable_actions(problem, _allowed(problem, forced), _waits(problem), forced)
        _assert_same_plans(problem, monkeypatch, f"tangle seed {seed} force {forced}", explain="none", force=forced)
        checked += 1
    assert checked >= 25


ESTATES = [(12, 0), (12, 3), (30, 1), (30, 2), (60, 0)]


@pytest.mark.parametrize("n,seed", ESTATES)
def test_forward_pruning_keeps_every_plan_of_estates(n, seed, monkeypatch):
    e = estate(n, seed=seed)
    providers = e.providers
    states = [
        None,
        {"facts": [f"f{n // 3}", f"f{n // 2}"]},
        _down(providers, seed, 1),
        _down(providers, seed + 1, max(2, providers // 3)),  # large parts of the estate unreachable
        dict(_down(providers, seed + 2, 2), facts=[f"f{n - 2}"]),
    ]
    for region in ("eu", "us"):
        for state in states:
            spec, given, state, problem = _estate_problem(n, seed, region, state)
            _assert_same_plans(problem, monkeypatch, f"estate {n}/{seed} {region} {state}", explain="basic")


def _composition_problem(n, seed, intent, region, state=None, capacity=False):
    comp = composition(n, seed=seed, capacity=capacity)
    spec = _spec(*comp.sources())
    return prepare(spec, intent, comp.given(region), comp.state() if state is None else state), comp


@pytest.mark.parametrize(
    "n,seed,intent,region,capacity",
    [(60, 0, i, "eu", False) for i in OBJECTIVES]
    + [(60, 0, "compose_cost", "us", False), (60, 0, "compose_weighted", "us", False)]
    + [(100, 1, "compose_cost", "eu", False), (100, 1, "compose_latency_cost", "eu", True), (100, 1, "compose_weighted", "us", False)],
)
def test_forward_pruning_keeps_every_plan_of_composition_projects(n, seed, intent, region, capacity, monkeypatch):
    problem, comp = _composition_problem(n, seed, intent, region, capacity=capacity)
    everything = {a.name for a in problem.actions}
    reach = reachable_actions(problem, _allowed(problem), _waits(problem))
    # Most of a composition project can never run: the pruned model is a fraction of the other.
    assert len(reach) <= len(everything) // 2, (len(reach), len(everything))
    status, smaller = _assert_same_plans(problem, monkeypatch, f"composition {n}/{seed} {intent} {region}", explain="basic")
    assert status == "optimal" and smaller


def test_forward_pruning_keeps_composition_answers_with_providers_down(monkeypatch):
    """Backbone providers down: what was reachable through them no longer is (some requests
    become infeasible); answers agree either way."""
    comp = composition(60, seed=0)
    statuses = set()
    for down in (["svc0"], ["svc1", "svc3"], ["svc2"], ["svc6"], ["svc0", "svc4", "svc6"]):
        state = dict(comp.state(), providers={p: {"status": "down"} for p in down})
        for intent in ("compose_cost", "compose_latency_cost"):
            problem, _ = _composition_problem(60, 0, intent, "eu", state=state)
            info = f"composition down {down} {intent}"
            statuses.add(_assert_same_plans(problem, monkeypatch, info, unpruned_conflict=False, explain="basic")[0])
    assert statuses == {"optimal", "infeasible"}, statuses


def test_forward_pruning_keeps_every_batch_answer(monkeypatch):
    """Batches compile every request into one model (shared capacities, one horizon): with the
    plans made alone first and jointly from scratch, pruning changes no answer."""
    for seed in range(25):
        text, given, state = tangle(seed)
        spec = _spec(Source(f"b{seed}.intent", text))
        rng = random.Random(seed)
        requests = [
            {"intent": "job", "given": given, "state": state},
            {"intent": "job", "given": {"region": rng.choice(["eu", "us"])}},
            {"intent": "job", "given": given, "state": {"facts": rng.sample([f"g{i}" for i in range(7)], 2)}},
        ]
        for decompose in (True, False):
            plans = {}
            for flag in (True, False):
                monkeypatch.setattr(compile_mod, "FORWARD_PRUNING", flag)
                plans[flag] = plan_many(spec, requests, explain="basic", time_limit_s=WALL, decompose=decompose)
            info = f"batch seed {seed} decompose={decompose}"
            assert [p.status for p in plans[True]] == [p.status for p in plans[False]], info
            assert all(p.status in ("optimal", "infeasible") for p in plans[True]), info
            # (An infeasible request's conflict is minimal either way: see the single-request tests.)
            assert [_comparable(p, conflict=False) for p in plans[True]] == [_comparable(p, conflict=False) for p in plans[False]], info
    monkeypatch.setattr(compile_mod, "FORWARD_PRUNING", True)


HAND = """
provider p { region "eu"; tags [] }
provider q { region "eu"; tags ["pci"] }
action fetch { achieves data; via p { cost 2 USD; latency 10ms } }
// needs an input nothing achieves: can never run unless it is observed
action ghost { requires phantom; achieves data, extra; via q { cost 0 USD; latency 1ms } }
// a cycle: each needs the other's fact, so neither can ever start
action loop_a { requires lb; achieves la, data; via q { cost 0 USD; latency 1ms } }
action loop_b { requires la; achieves lb; via q { cost 0 USD; latency 1ms } }
action ship { requires data or extra; achieves shipped; via p { cost 1 USD; latency 5ms }; via q { cost 1 USD; latency 7ms } }
action audit { achieves audited; via p { cost 0 USD; latency 1ms }; via q { cost 0 USD; latency 1ms } }
intent job { given region: string; goal shipped; minimize cost then latency }
"""


def _hand(extra: str = "", state=None, done=None):
    spec = _spec(Source("hand.intent", HAND + extra))
    return prepare(spec, "job", {"region": "eu"}, state, done=done)


def _steps(p) -> list[tuple[str, str, int]]:
    return [(s.action, s.provider, s.start_ms) for s in p.steps]


def test_an_action_whose_requirement_can_never_hold_is_pruned_and_the_plan_is_unchanged(monkeypatch):
    problem = _hand()
    reach = reachable_actions(problem, _allowed(problem))
    assert reach == {"fetch", "ship", "audit"}
    # Backward relevance alone keeps them all (each achieves a fact the goal can need) ...
    assert {"ghost", "loop_a", "loop_b"} <= relevant_actions(problem)
    # ... and within what is reachable, only what the goal needs.
    assert relevant_actions(problem, within=reach) == {"fetch", "ship"}
    on, off = _plan_both(problem, monkeypatch, explain="basic")
    assert _comparable(on) == _comparable(off)
    assert on.status == "optimal" and _steps(on) == [("fetch", "p", 0), ("ship", "p", 10)]
    assert on.solver.variables < off.solver.variables

    # Observed, the input makes the cheap action reachable, and the plan takes it either way.
    seen = _hand(state={"facts": ["phantom"]})
    assert "ghost" in reachable_actions(seen, _allowed(seen))
    on, off = _plan_both(seen, monkeypatch, explain="basic")
    assert _comparable(on) == _comparable(off)
    assert _steps(on) == [("ghost", "q", 0), ("ship", "p", 1)]


def test_hard_and_soft_befores_in_reachability(monkeypatch):
    # A hard `before` that can never hold makes its target unreachable (and the request
    # infeasible, naming it); a soft one does not (the plan breaks it instead).
    hard = _hand('policy gate { require extra before ship }\n')
    assert "ship" not in reachable_actions(hard, _allowed(hard), _waits(hard))
    assert "ship" in reachable_actions(hard, _allowed(hard), [])  # members behind literals: no waits
    assert not any(a == "ship" for a, _ in compile_problem(hard).x)  # the planning model drops it
    assert any(a == "ship" for a, _ in compile_problem(hard, literals=True).x)  # the conflict search's keeps it
    on, off = _plan_both(hard, monkeypatch, explain="basic")
    assert on.status == off.status == "infeasible"
    assert _comparable(on, conflict=False) == _comparable(off, conflict=False)
    for p in (on, off):
        assert {c.policy for c in p.explanation.conflict} == {"goal", "gate"}
        _assert_minimal(hard, _conflict_of_plan(hard, p))

    soft = _hand('policy gate { soft 3; require extra before ship }\n')
    assert "ship" in reachable_actions(soft, _allowed(soft), _waits(soft))
    on, off = _plan_both(soft, monkeypatch, explain="basic")
    assert _comparable(on) == _comparable(off)
    assert on.status == "optimal" and [b.policy for b in on.broken] == ["gate"]


def test_forced_and_done_actions_are_kept(monkeypatch):
    problem = _hand()
    # Forcing an unreachable action keeps it in the model, which is then infeasible, as before.
    forced = {"ghost": "q"}
    assert "ghost" in reachable_actions(problem, _allowed(problem, forced), [], forced)
    assert "ghost" in relevant_actions(problem, forced)
    on, off = _plan_both(problem, monkeypatch, explain="none", force=forced)
    assert on.status == off.status == "infeasible"
    # Forcing a reachable one that the optimum leaves out: it is planned.
    forced = {"audit": "q"}
    on, off = _plan_both(problem, monkeypatch, explain="basic", force=forced)
    assert _comparable(on) == _comparable(off)
    assert ("audit", "q", 0) in _steps(on)

    # A done step that the goal does not need stays in the model, so a rule over the whole plan
    # still sees it: `distinct provider` moves `ship` off the provider `audit` ran on.
    done = _hand('policy split { distinct provider for audit, ship }\n', done={"audit": "p"})
    assert "audit" in reachable_actions(done, _allowed(done), _waits(done))
    assert "audit" in relevant_actions(done)
    on, off = _plan_both(done, monkeypatch, explain="basic")
    assert _comparable(on) == _comparable(off)
    assert _steps(on) == [("fetch", "p", 0), ("ship", "q", 10)]


def test_a_done_step_whose_requirement_no_longer_holds_gives_an_answer_not_an_exception():
    # History whose requirement holds nowhere in this state: reachability keeps it and what it
    # achieved ("whatever it required"), but the model still schedules a done step at its
    # requirement, so the request is infeasible with no member to blame: the conflict is empty.
    # Whatever the answer, it must be a Plan, the same with or without an explanation.
    problem = _hand(done={"ghost": "q"})
    assert "ghost" in reachable_actions(problem, _allowed(problem))
    quiet = plan_problem(problem, time_limit_s=WALL, explain="none")
    p = plan_problem(problem, time_limit_s=WALL, explain="basic")
    assert p.status == quiet.status
    if p.status == "infeasible":
        assert p.explanation.summary


# ---- 2. relevant_actions and reachable_actions against reference fixed points ----------------------


def _reads(e) -> set[str]:
    if e is None:
        return set()
    if isinstance(e, ast.Ref):
        return {e.name}
    return set().union(*(_reads(x) for x in e.items))


def _holds(e, facts: set[str]) -> bool:
    if e is None:
        return True
    if isinstance(e, ast.Ref):
        return e.name in facts
    if isinstance(e, ast.And):
        return all(_holds(x, facts) for x in e.items)
    assert isinstance(e, ast.Or), e
    return any(_holds(x, facts) for x in e.items)


_FLOORS = (">=", ">", "==")


def reference_relevant(problem, force=None, within=None):
    """The old definition: start from the facts the goal, every `require` and every `before`
    read, and the requirements of done and forced actions; repeatedly add any other action
    (within ``within``) achieving a needed fact, adding the facts it requires, until nothing
    changes. None when a rule rewards more steps, a weight is negative or a cost is."""
    rules = [r for _, r in problem.rules] + [r for _, r in problem.soft_rules]
    for r in rules:
        if r[0] == "count" and r[2] in _FLOORS:
            return None
        if r[0] == "limit" and r[2] in (("<=", "<", "==") if r[1] == "reliability" else _FLOORS):
            return None
    obj = problem.intent.objective
    if obj.kind != "lex" and any(w < 0 for _, w in obj.terms):
        return None
    if any(o.cost < 0 for a in problem.actions for o in a.options):
        return None
    facts: set[str] = set()
    for r in rules:
        if r[0] in ("goal", "require"):
            facts |= _reads(r[1])
    for _, f, _ in problem.befores:
        facts |= _reads(f)
    keep = {a.name for a in problem.actions if a.done or a.name in (force or {})}
    for a in problem.actions:
        if a.name in keep:
            facts |= _reads(a.requires)
    changed = True
    while changed:
        changed = False
        for a in problem.actions:
            if a.name not in keep and (within is None or a.name in within) and facts & set(a.achieves):
                keep.add(a.name)
                facts |= _reads(a.requires)
                changed = True
    return keep


def reference_reachable(problem, allowed, waits, force=None) -> set[str]:
    """Naive least fixed point: done steps (their facts hold), then any action with an option
    left whose requirement and hard `before`s hold on the facts so far, until nothing changes."""
    facts = set(problem.state.facts)
    keep = set()
    for a in problem.actions:
        if a.done:
            keep.add(a.name)
            facts |= set(a.achieves)
    changed = True
    while changed:
        changed = False
        for a in problem.actions:
            if a.name in keep or a.done or not allowed[a.name]:
                continue
            if _holds(a.requires, facts) and all(_holds(f, facts) for f, t in waits if t == a.name):
                keep.add(a.name)
                facts |= set(a.achieves)
                changed = True
    return keep | set(force or ())


def _generated_problems():
    for seed in range(120):
        spec, given, state, problem = _tangle_problem(seed)
        yield f"tangle {seed}", problem
        if seed % 4 == 0:
            # a re-plan with two arbitrary steps done (their first option)
            rng = random.Random(seed)
            done = {a.name: a.options[0].provider for a in rng.sample(problem.actions, 2)}
            yield f"tangle {seed} done {done}", prepare(spec, "job", given, state, done=done)
    for n, seed in [(12, 0), (30, 1), (60, 2), (150, 3)]:
        yield f"estate {n}/{seed}", _estate_problem(n, seed, "eu", _down(max(6, n // 3), seed, 2))[3]
    for n, seed in [(100, 0), (300, 1)]:
        comp = composition(n, seed=seed)
        spec = _spec(*comp.sources())
        for intent in OBJECTIVES:
            yield f"composition {n}/{seed} {intent}", prepare(spec, intent, comp.given("eu"), comp.state())


def test_relevant_and_reachable_actions_agree_with_reference_fixed_points():
    pruned = unpruned_none = 0
    for name, problem in _generated_problems():
        rng = random.Random(name)
        forces = [None]
        if problem.actions:
            a = rng.choice(problem.actions)
            forces.append({a.name: a.options[0].provider})
        for force in forces:
            allowed = _allowed(problem, force)
            for waits in ([], _waits(problem)):
                reach = reachable_actions(problem, allowed, waits, force)
                assert reach == reference_reachable(problem, allowed, waits, force), (name, force, waits)
                pruned += len(reach) < len(problem.actions)
                for within in (None, reach):
                    got = relevant_actions(problem, force, within=within)
                    want = reference_relevant(problem, force, within)
                    assert got == want, (name, force, within, got, want)
                    unpruned_none += got is None
    assert pruned >= 50 and unpruned_none >= 4, (pruned, unpruned_none)


# ---- 3. packed stages: same answer packed, unpacked, and cut --------------------------------------


def _no_pack(stages):
    return [(name, expr, []) for name, expr, _ in stages]


class _StageLog:
    """Records every stage `_Stager.minimize` solves: (name, tentative?, result)."""

    def __init__(self, monkeypatch):
        self.rows: list[tuple[str, bool, str]] = []
        real = cpsat._Stager.minimize
        log = self

        def minimize(st, expr, name, work=None):
            r = real(st, expr, name, work)
            log.rows.append((name, work is not None, r))
            return r

        monkeypatch.setattr(cpsat._Stager, "minimize", minimize)


class _recording:
    """Within the block, the (tentative?, result) of each `_Stager.minimize`."""

    def __enter__(self):
        self.rows: list[tuple[bool, str]] = []
        self.real = cpsat._Stager.minimize
        rows, real = self.rows, self.real

        def minimize(st, expr, name, work=None):
            r = real(st, expr, name, work)
            rows.append((work is not None, r))
            return r

        cpsat._Stager.minimize = minimize
        return self.rows

    def __exit__(self, *exc):
        cpsat._Stager.minimize = self.real
        return False


def _plans_by_packing(problem, monkeypatch, **kw):
    """The plan as shipped, with packing off, and with every packed solve (and the tie-break's
    uniqueness check) cut at a tiny work so that each falls back to its stages one by one."""
    base = plan_problem(problem, time_limit_s=WALL, **kw)
    with monkeypatch.context() as m:
        m.setattr(cpsat, "pack", _no_pack)
        unpacked = plan_problem(problem, time_limit_s=WALL, **kw)
    with monkeypatch.context() as m:
        m.setattr(cpsat, "TENTATIVE_WORK", 1e-9)
        cut = plan_problem(problem, time_limit_s=WALL, **kw)
    return base, unpacked, cut


def _assert_same_by_packing(problem, monkeypatch, info: str, **kw):
    base, unpacked, cut = _plans_by_packing(problem, monkeypatch, **kw)
    info = f"{info}\nbase={base.model_dump_json()}\nunpacked={unpacked.model_dump_json()}\ncut={cut.model_dump_json()}"
    assert base.status in ("optimal", "infeasible"), info
    assert _comparable(base) == _comparable(unpacked) == _comparable(cut), info
    return base


def test_packing_never_changes_the_plan_of_tangled_projects(monkeypatch):
    log = _StageLog(monkeypatch)
    multi = 0
    for seed in range(200, 290):
        # Mostly lexicographic objectives of several terms (and soft policies, whose penalty is
        # packed with the first term); weighted sums pack only the tie-break.
        objective = OBJECTIVE_FORMS[1 + seed % 6] if seed % 7 else None
        spec, given, state, problem = _tangle_problem(seed, objective=objective)
        p = _assert_same_by_packing(problem, monkeypatch, f"tangle seed {seed}", explain="none")
        multi += p.status == "optimal" and len(p.objective.order) >= 2
    assert multi >= 40
    packed = [(n, r) for n, tentative, r in log.rows if tentative]
    # Objective stages were packed, and with the tiny work both fallbacks ran: a cut before any
    # plan (unknown) and after one (feasible: kept as hint and bound).
    assert any("+" in n and not n.startswith("tie-break") and r == "optimal" for n, r in packed)
    assert any(not n.startswith("tie-break") and r == "unknown" for n, r in packed)
    assert any(r == "feasible" for n, r in packed)


@pytest.mark.parametrize("n,seed,objective", [(12, 0, "minimize latency then cost"), (30, 1, "minimize cost then risk then latency"),
                                              (60, 2, "minimize cost then latency"), (30, 4, "minimize 2 * cost + 0.5 * latency + 10 * risk")])
def test_packing_never_changes_the_plan_of_estates(n, seed, objective, monkeypatch):
    e = estate(n, seed=seed)
    text = e.source.replace("minimize cost then latency", objective)
    spec = _spec(Source("o.intent", text))
    for region in ("eu", "us"):
        problem = prepare(spec, e.intent, e.given(region), None)
        _assert_same_by_packing(problem, monkeypatch, f"estate {n}/{seed} {objective} {region}", explain="basic")


def test_packing_matches_the_exhaustive_back_end(monkeypatch):
    compared = 0
    for seed in range(300, 360):
        objective = OBJECTIVE_FORMS[1 + seed % 6]
        spec, given, state, problem = _tangle_problem(seed, n_actions=5, n_facts=5, n_providers=3, objective=objective)
        base, unpacked, cut = _plans_by_packing(problem, monkeypatch, explain="none")
        slow = plan_problem(problem, backend="constraint", time_limit_s=WALL, explain="none")
        info = f"seed {seed}\nbase={base.model_dump_json()}\nslow={slow.model_dump_json()}"
        assert slow.status in ("optimal", "infeasible"), info
        for p in (base, unpacked, cut):
            assert p.status == slow.status, info
            if p.status != "optimal":
                continue
            assert check_plan(spec, "job", given, state, p.model_dump()) == [], info
            fo, so = p.objective, slow.objective
            assert (fo.penalty, fo.cost, fo.risk_ln, fo.value, fo.latency_ms) == (so.penalty, so.cost, so.risk_ln, so.value, so.latency_ms), info
            assert {s.action: s.provider for s in p.steps} == {s.action: s.provider for s in slow.steps}, info
        compared += base.status == "optimal"
    assert compared >= 25


TIE = """
provider p { region "eu"; tags [] }
provider q { region "eu"; tags [] }
action a0 { achieves g; via p { cost 1 USD; latency 5ms } }
action a1 { achieves g; via p { cost 2 USD; latency 5ms }; via q { cost 1 USD; latency 5ms } }
intent job { goal g; minimize cost then latency }
"""


@pytest.mark.parametrize("work", [cpsat.TENTATIVE_WORK, 1e-9])
def test_a_tie_of_weighted_rank_is_settled_by_the_action_by_action_rule_whatever_the_hint(work, monkeypatch):
    # `a0` via p and `a1` via q tie on cost, latency, steps and weighted rank (1 x 2 = 2 x 1):
    # the tie-break's rule 3 leaves `a0` out first. With the uniqueness check cut (tiny work) the
    # action-by-action rule runs, and a hint towards the other tied choice changes nothing.
    monkeypatch.setattr(cpsat, "TENTATIVE_WORK", work)
    problem = prepare(_spec(Source("tie.intent", TIE)), "job", None, None)
    slow = plan_problem(problem, backend="constraint", time_limit_s=WALL)
    assert [(s.action, s.provider) for s in slow.steps] == [("a1", "q")]
    for hint in (None, {"a0": "p"}, {"a1": "q"}, {"a1": "p"}):
        p = plan_problem(problem, time_limit_s=WALL, hint=hint)
        assert p.status == "optimal" and [(s.action, s.provider) for s in p.steps] == [("a1", "q")], hint


def _stage_names(monkeypatch) -> list[str]:
    names: list[str] = []
    minimize = cpsat._Stager.minimize

    def spy(self, expr, name, work=None):
        names.append(name)
        return minimize(self, expr, name, work)

    monkeypatch.setattr(cpsat._Stager, "minimize", spy)
    return names


def test_a_single_optimal_choice_skips_the_tie_break_stages(monkeypatch):
    # `a1` via q is the only cheapest choice: the uniqueness check after the objective settles it,
    # and no tie-break stage runs. With a tie on the objective (TIE), the stages run as before.
    single = TIE.replace("via q { cost 1 USD", "via q { cost 0.5 USD")
    names = _stage_names(monkeypatch)
    p = plan_problem(prepare(_spec(Source("one.intent", single)), "job", None, None), time_limit_s=WALL)
    assert [(s.action, s.provider) for s in p.steps] == [("a1", "q")]
    assert names and not any(n.startswith("tie-break") for n in names), names
    names.clear()
    p = plan_problem(prepare(_spec(Source("tie.intent", TIE)), "job", None, None), time_limit_s=WALL)
    assert [(s.action, s.provider) for s in p.steps] == [("a1", "q")]
    assert any(n.startswith("tie-break") for n in names), names


def test_pack_and_unpack():
    rng = random.Random(7)
    for _ in range(500):
        hi1, hi2 = rng.randint(0, 10**4), rng.randint(0, 10**5)
        a, b = rng.randint(0, hi1), rng.randint(0, hi2)
        (name, expr, radices), = cpsat.pack([("s1", a, hi1), ("s2", b, hi2)])
        assert name == "s1+s2" and radices == [hi2 + 1]
        assert cpsat.unpack(expr, radices) == [a, b]
    # Ranges too wide to pack, or unknown (a term that may be negative): solved one by one.
    assert [r for _, _, r in cpsat.pack([("s1", 0, 2**16), ("s2", 0, 2**16)])] == [[], []]
    assert [r for _, _, r in cpsat.pack([("s1", 0, None), ("s2", 0, 5)])] == [[], []]
    assert [r for _, _, r in cpsat.pack([("s1", 0, 5), ("s2", 0, None), ("s3", 0, 5)])] == [[], [], []]
    assert [r for _, _, r in cpsat.pack([("s1", 0, 5), ("s2", 0, 5), ("s3", 0, 5)])] == [[6], []]


def _lex_instance(seed: int, n: int):
    """A small 0/1 model with three objective expressions and side constraints; returns the
    model, variables, stage coefficients and a feasibility predicate for brute force."""
    rng = random.Random(seed)
    m = cp_model.CpModel()
    x = [m.new_bool_var(f"x{i}") for i in range(n)]
    coefs = [[rng.choice([0, 1, 2, 3, 5, 8, 13, 40, 97, 250]) for _ in range(n)] for _ in range(3)]
    at_least = rng.randint(1, n // 2)
    pairs = [tuple(rng.sample(range(n), 2)) for _ in range(rng.randint(0, n))]
    groups = [rng.sample(range(n), 3) for _ in range(rng.randint(0, 3))]
    m.add(sum(x) >= at_least)
    for i, j in pairs:
        m.add(x[i] + x[j] <= 1)
    for g in groups:
        m.add(sum(x[i] for i in g) >= 1)

    if seed % 10 == 9:  # no solution at all
        m.add(sum(x) >= n + 1)
        at_least = n + 1

    def ok(bits) -> bool:
        return sum(bits) >= at_least and all(bits[i] + bits[j] <= 1 for i, j in pairs) and all(any(bits[i] for i in g) for g in groups)

    return m, x, coefs, ok


def _lex_brute(n, coefs, ok):
    best = None
    for bits in itertools.product((0, 1), repeat=n):
        if ok(bits):
            key = tuple(sum(c * b for c, b in zip(cs, bits)) for cs in coefs)
            best = key if best is None or key < best else best
    return best


def test_minimize_stages_gives_the_lexicographic_optimum_however_a_packed_solve_ends(monkeypatch):
    outcomes = set()
    for work in (cpsat.TENTATIVE_WORK, 1e-9, 1e-5, 3e-5, 1e-4):
        monkeypatch.setattr(cpsat, "TENTATIVE_WORK", work)
        for seed in range(40):
            n = 8 + seed % 5
            m, x, coefs, ok = _lex_instance(seed, n)
            want = _lex_brute(n, coefs, ok)
            c = Compiled(m, None, 0)
            st = cpsat._Stager(c, SolveOptions(time_limit_s=WALL))
            stages = [(f"s{k}", sum(cf * v for cf, v in zip(coefs[k], x)), sum(coefs[k])) for k in range(3)]
            with _recording() as rows:
                r, values, solved = cpsat.minimize_stages(st, stages)
            outcomes |= {res for tentative, res in rows if tentative}
            info = (work, seed, want, r, values)
            if want is None:
                assert (r, solved) == ("infeasible", 0), info
                continue
            assert (r, tuple(values), solved) == ("optimal", want, 3), info
            assert st.proven, info
            sol = [st.last[v.index] for v in x]
            assert tuple(sum(cf * b for cf, b in zip(cs, sol)) for cs in coefs) == want, info
    # Every way a packed solve ends was met: proven, cut before a solution, cut after one (its
    # value then only a bound), and proven infeasible.
    assert outcomes == {"optimal", "unknown", "feasible", "infeasible"}, outcomes


# ---- 4. the deterministic work limit ---------------------------------------------------------------


def _budget_plan(problem, work, **kw):
    return plan_problem(problem, time_limit_s=WALL, work_limit=work, **kw)


def test_the_same_request_under_the_same_small_work_limit_gives_the_same_plan():
    spec, given, state, problem = _estate_problem(60, 0, "eu", None)
    case = infeasible_estate(20, 1)
    bad = prepare(_spec(Source("c.intent", case.source)), case.intent, {"request.region": case.region}, None)
    statuses = set()
    for work in (3e-5, 3e-4, 1e-3, 3e-3, 0.01, 0.03):
        for pr, level in ((problem, "basic"), (problem, "full"), (bad, "basic")):
            first = _budget_plan(pr, work, explain=level)
            second = _budget_plan(pr, work, explain=level)
            assert first.model_dump_json() == second.model_dump_json(), (work, level)
            statuses.add(first.status)
    # The limits above cut the search at different points: some answers are cut short.
    assert {"optimal", "infeasible"} <= statuses and statuses & {"feasible", "unknown"}, statuses


def _sweep(lo_exp: int, hi_exp: int, per_decade: int):
    return [10 ** (k / per_decade) for k in range(lo_exp * per_decade, hi_exp * per_decade + 1)]


@pytest.mark.parametrize("kind,n,seed", [("estate", 30, 0), ("estate", 60, 2), ("tangle", 8, 5), ("tangle", 8, 270), ("composition", 100, 1)])
def test_any_work_limit_gives_a_valid_answer(kind, n, seed):
    if kind == "estate":
        spec, given, state, problem = _estate_problem(n, seed, "eu", None)
        intent = "job"
    elif kind == "tangle":
        spec, given, state, problem = _tangle_problem(seed)
        intent = "job"
    else:
        comp = composition(n, seed=seed)
        spec = _spec(*comp.sources())
        intent, given, state = "compose_latency_cost", comp.given("eu"), comp.state()
        problem = prepare(spec, intent, given, state)
    free = plan_problem(problem, time_limit_s=WALL, explain="basic")
    assert free.status == "optimal"
    seen = set()
    for work in _sweep(-7, -1, 3):
        p = _budget_plan(problem, work, explain="basic")
        seen.add(p.status)
        assert p.status in ("optimal", "feasible", "unknown"), (work, p.status)
        if p.status in ("optimal", "feasible"):
            assert check_plan(spec, intent, given, state, p.model_dump()) == [], work
        if p.status == "optimal":
            # Proven within its budget: the very plan an unlimited request gets.
            assert _comparable(p) == _comparable(free), work
        else:
            assert not p.steps or p.status == "feasible"
    assert "optimal" in seen
    if kind != "tangle":
        return
    # A full explanation under the budget: what it holds is right, and if it says it is complete,
    # it is all of the unlimited one.
    free = plan_problem(problem, time_limit_s=WALL, explain="full").model_dump(mode="json")["explanation"]
    for work in _sweep(-6, -2, 3):
        p = _budget_plan(problem, work, explain="full")
        if p.status != "optimal":
            continue
        e = p.model_dump(mode="json")["explanation"]
        if e["complete"]:
            assert e == free, work
            continue
        for s1, s2 in zip(e["steps"], free["steps"]):
            for a1, a2 in zip(s1["alternatives"], s2["alternatives"]):
                if a1["delta"] is not None or a1["reason"] != a2["reason"] and a1["reason"] != "worse":
                    assert a1 == a2, (work, a1, a2)
        for u1, u2 in zip(e["unused"], free["unused"]):
            if u1["delta"] is not None or u1["impossible"]:
                assert u1 == u2, (work, u1, u2)
        free_prices = {x["policy"]: x for x in free["prices"]}
        for x in e["prices"]:
            assert x == free_prices[x["policy"]], (work, x)


@pytest.mark.parametrize("size,seed", [(20, 0), (20, 2), (50, 1)])
def test_an_infeasible_request_under_a_small_work_limit_explains_right_or_says_it_is_partial(size, seed):
    case = infeasible_estate(size, seed)
    problem = prepare(_spec(Source(f"c{seed}.intent", case.source)), case.intent, {"request.region": case.region}, None)
    verified: set[frozenset[str]] = set()
    outcomes = set()
    for work in _sweep(-6, -2, 8):
        p = _budget_plan(problem, work, explain="basic")
        assert p.status in ("infeasible", "unknown"), (work, p.status)
        e = p.explanation
        if p.status == "infeasible" and e.conflict:
            conflict = _conflict_of_plan(problem, p)
            key = frozenset(m.id for m in conflict)
            if key not in verified:
                _assert_minimal(problem, conflict, f" (work {work})")
                verified.add(key)
            outcomes.add("conflict")
            assert e.complete and e.summary, work
        elif p.status == "infeasible":
            # No conflict: only because the budget ran out, and then the explanation says so.
            assert not e.complete and e.truncated_reason == "time_limit", (work, e)
            outcomes.add("truncated")
    assert outcomes == {"conflict", "truncated"}, outcomes


def test_no_solve_is_given_more_work_than_the_request_has_left(monkeypatch):
    calls: list[tuple[float, float]] = []
    real = cpsat._Solver.solve

    def solve(solver, model, solution_callback=None):
        budget = cpsat._WORK.get()
        if budget is not None:
            calls.append((budget.left, solver.parameters.max_deterministic_time))
        return real(solver, model, solution_callback)

    monkeypatch.setattr(cpsat._Solver, "solve", solve)
    spec, given, state, problem = _estate_problem(60, 0, "eu", None)
    with cpsat.work_limit(1e-4) as budget:
        cpsat.solve(problem, SolveOptions(time_limit_s=WALL))
    assert calls
    over = [(left, given_) for left, given_ in calls if given_ > max(1e-6, left) + 1e-12]
    assert not over, f"solves given more deterministic time than the budget had left: {over}"
    # The whole request stays near its budget (CP-SAT stops a little past a limit, and each solve
    # after the budget is spent still takes its minimum): today it spends over 100 times it.
    assert budget.used <= 20 * budget.limit, budget.used
