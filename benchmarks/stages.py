"""What the tie-break and the staged objective cost, side by side (issue 18).

    python -m benchmarks.stages [--sizes 20 50 200] [--requests 6]

For each generated estate (`benchmarks.scenarios.estate`, the feasible ones), three solves of the
same prepared problem, in a rotating order so that no one is always first and cold, CPU time of
this process:

* ``objective``: intento's staged solve of the objective alone (`cpsat.solve(tiebreak=False)`);
* ``tie-break``: the same with the tie-break stages that make the plan unique (what `plan` runs);
* ``single``: one plain CP-SAT solve of the same compiled model with the objective's last stage
  as its only objective (for a weighted objective that is the whole objective, so this is the
  single-solve reference; for `cost then latency` it is only a lower bound on the work).

Both objective forms are measured: the estates' own `minimize cost then latency`, and the same
estates with `minimize 2 * cost + 0.5 * latency`. Ratios are per case, then their median and
worst. Nothing is asserted here; the planner's tests check that the answers are optimal and the
same on every run.
"""

from __future__ import annotations

import argparse
import statistics

from benchmarks import cpu_time
from benchmarks.scenarios import estate
from intento.backends import SolveOptions, cpsat
from intento.check import check_sources
from intento.compile import compile_problem
from intento.diagnostics import Source
from intento.solve import prepare

FORMS = {"cost then latency": None, "2 * cost + 0.5 * latency": "minimize 2 * cost + 0.5 * latency"}


def _single(problem) -> str:
    c = compile_problem(problem)
    name, expr = cpsat.objective_stages(c)[-1]
    c.model.minimize(expr)
    # The settings intento's own solve of that stage uses, so that the ratio compares work, not
    # solver parameters.
    solver = cpsat.new_solver(10.0, 1, 0, len(c.x), lp=cpsat.lp_stage(name))
    return solver.status_name(solver.solve(c.model))


def measure(size: int, requests: int, form: str) -> dict:
    rows = []
    seed = 0
    while len(rows) < requests and seed < requests * 6:
        e = estate(size, seed=seed)
        source = e.source if FORMS[form] is None else e.source.replace("minimize cost then latency", FORMS[form])
        seed += 1
        spec = check_sources([Source("s.intent", source)]).spec
        problem = prepare(spec, e.intent, e.given("us" if seed % 2 else "eu"), None)
        if cpsat.solve(problem, SolveOptions(time_limit_s=10.0), tiebreak=False).status != "optimal":
            continue  # infeasible estates say nothing about the stages
        runs = {
            "objective": lambda: cpsat.solve(problem, SolveOptions(time_limit_s=10.0), tiebreak=False),
            "tie-break": lambda: cpsat.solve(problem, SolveOptions(time_limit_s=10.0), tiebreak=True),
            "single": lambda: _single(problem),
        }
        names = list(runs)
        k = len(rows) % len(names)
        cpu = {n: cpu_time(runs[n])[0] for n in names[k:] + names[:k]}
        rows.append(cpu)
    tie = [r["tie-break"] / r["objective"] for r in rows]
    single = [r["tie-break"] / r["single"] for r in rows]
    return {
        "actions": size, "form": form, "cases": len(rows),
        "tiebreak_over_objective": (statistics.median(tie), max(tie)) if rows else None,
        "plan_over_single": (statistics.median(single), max(single)) if rows else None,
        "median_objective_s": statistics.median(r["objective"] for r in rows) if rows else None,
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.stages", description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20, 50, 200])
    ap.add_argument("--requests", type=int, default=6)
    args = ap.parse_args(argv)
    print("| actions | objective | cases | tie-break / objective stages (median, worst) | plan / one plain solve (median, worst) | objective stages, median CPU s |")
    print("|---:|---|---:|---:|---:|---:|")
    for form in FORMS:
        for size in args.sizes:
            r = measure(size, args.requests, form)
            if not r["cases"]:
                print(f"| {size} | {form} | 0 | - | - | - |", flush=True)
                continue
            t, s = r["tiebreak_over_objective"], r["plan_over_single"]
            print(f"| {size} | {form} | {r['cases']} | {t[0]:.2f}x, {t[1]:.2f}x | {s[0]:.2f}x, {s[1]:.2f}x | {r['median_objective_s']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
