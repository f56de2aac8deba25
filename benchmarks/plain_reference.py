"""The planner against a plain single-solve CP-SAT encoding of the same cases (issue 18, item 7).

    python -m benchmarks.plain_reference [--sizes 20 50 200 500] [--requests 6] [--time-limit 20]

For generated estates (`benchmarks.scenarios.estate`, the ones that admit a plan) of each size:

* ``intento``: `plan_problem(explain="none")`, what `intento plan --explain none` runs: pruning,
  the staged objective and the tie-break;
* ``plain``: the same constraints compiled with every pruning off (no forward reachability, no
  relevance, no dominated options) and solved **once**, with CP-SAT's default parameters and the
  whole objective as one expression: a lexicographic objective packed with radices from its
  stages' ranges (`cpsat.stage_bound`), a weighted one as its weighted sum.

Both run in a rotating order on the same prepared problem; CPU time of this process. The plain
solve has no tie-break, so its plan may differ from intento's among equally good ones: the table
counts the cases where both proved the same objective value, and any case where they disagree on
the value is reported as a mismatch (none is expected: both solve the same contract exactly).
Nothing here asserts timings.
"""

from __future__ import annotations

import argparse
import json
import statistics
from contextlib import contextmanager
from pathlib import Path

from benchmarks import cpu_time
from benchmarks.scenarios import estate
from benchmarks.stages import FORMS
from intento import compile as compile_mod
from intento.backends import cpsat
from intento.check import check_sources
from intento.diagnostics import Source
from intento.solve import plan_problem, prepare

RESULTS = Path(__file__).resolve().parent / "results"


@contextmanager
def _no_pruning():
    saved = compile_mod.FORWARD_PRUNING, compile_mod.relevant_actions, compile_mod._drop_dominated
    compile_mod.FORWARD_PRUNING = False
    compile_mod.relevant_actions = lambda *a, **k: None
    compile_mod._drop_dominated = lambda *a, **k: None
    try:
        yield
    finally:
        compile_mod.FORWARD_PRUNING, compile_mod.relevant_actions, compile_mod._drop_dominated = saved


def plain_solve(problem, time_limit: float) -> tuple[str, tuple | None]:
    """One CP-SAT solve of the unpruned model; (status, the objective stages' values)."""
    with _no_pruning():
        c = compile_mod.compile_problem(problem)
    stages = cpsat.objective_stages(c)
    expr, radix = 0, 1
    for name, e in reversed(stages):
        expr += radix * e
        bound = cpsat.stage_bound(c, name)
        radix *= (bound + 1) if bound is not None else 1
    c.model.minimize(expr)
    solver = cpsat.cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit
    solver.parameters.num_workers = 1
    status = solver.solve(c.model)
    name = solver.status_name(status).lower()
    if name not in ("optimal", "feasible"):
        return name, None
    return name, tuple(int(solver.value(e)) for _, e in stages)


def intento_values(problem, plan) -> tuple:
    """The objective stages' values of intento's plan, in the plain solve's units."""
    c = compile_mod.compile_problem(problem, force={s.action: s.provider for s in plan.steps})
    for a in problem.actions:
        if a.name not in {s.action for s in plan.steps} and not a.done:
            c.model.add(c.use[a.name] == 0)
    stages = cpsat.objective_stages(c)
    values = []
    for _, e in stages:  # the chosen options fix cost and risk; latency is the earliest schedule
        c.model.minimize(e)
        solver = cpsat.cp_model.CpSolver()
        solver.parameters.num_workers = 1
        solver.solve(c.model)
        values.append(int(solver.value(e)))
        c.model.add(e == values[-1])
    return tuple(values)


def measure(size: int, requests: int, form: str, time_limit: float) -> dict:
    rows, seed = [], 0
    while len(rows) < requests and seed < requests * 8:
        e = estate(size, seed=seed)
        seed += 1
        source = e.source if FORMS[form] is None else e.source.replace("minimize cost then latency", FORMS[form])
        spec = check_sources([Source(f"plain{size}-{seed}.intent", source)]).spec
        problem = prepare(spec, e.intent, e.given("us" if seed % 2 else "eu"), None)
        first = plan_problem(problem, explain="none", time_limit_s=time_limit)
        if first.status != "optimal":
            continue  # cases with no plan (or none proven) say nothing about the encodings
        runs = {"intento": lambda: plan_problem(problem, explain="none", time_limit_s=time_limit), "plain": lambda: plain_solve(problem, time_limit)}
        names = list(runs)
        k = len(rows) % 2
        out = {n: cpu_time(runs[n]) for n in names[k:] + names[:k]}
        (plain_status, plain_values) = out["plain"][1]
        same = plain_status == "optimal" and plain_values == intento_values(problem, out["intento"][1])
        mismatch = plain_status == "optimal" and not same
        rows.append({"seed": seed - 1, "intento_s": out["intento"][0], "plain_s": out["plain"][0], "plain_status": plain_status, "same": same, "mismatch": mismatch})
    ratios = [r["intento_s"] / max(r["plain_s"], 1e-6) for r in rows]
    return {
        "actions": size, "form": form, "cases": len(rows),
        "intento_s": statistics.median(r["intento_s"] for r in rows) if rows else None,
        "plain_s": statistics.median(r["plain_s"] for r in rows) if rows else None,
        "ratio": (statistics.median(ratios), max(ratios)) if rows else None,
        "plain_optimal": sum(r["plain_status"] == "optimal" for r in rows),
        "same": sum(r["same"] for r in rows),
        "mismatches": sum(r["mismatch"] for r in rows),
        "rows": rows,
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.plain_reference", description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20, 50, 200, 500])
    ap.add_argument("--requests", type=int, default=6)
    ap.add_argument("--time-limit", type=float, default=20.0)
    args = ap.parse_args(argv)
    print("| actions | objective | cases | intento, median CPU s | plain, median CPU s | intento / plain (median, worst) | plain proved optimal | same optimum |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    out = []
    for form in FORMS:
        for size in args.sizes:
            r = measure(size, args.requests, form, args.time_limit)
            out.append(r)
            if not r["cases"]:
                print(f"| {size} | {form} | 0 | - | - | - | - | - |", flush=True)
                continue
            note = f" ({r['mismatches']} MISMATCHED)" if r["mismatches"] else ""
            print(f"| {size} | {form} | {r['cases']} | {r['intento_s']:.3f} | {r['plain_s']:.3f} | {r['ratio'][0]:.2f}x, {r['ratio'][1]:.2f}x |"
                  f" {r['plain_optimal']} | {r['same']}{note} |", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "plain_reference.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
