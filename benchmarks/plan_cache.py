"""What a plan-cache hit costs (issue 18, item 6), side by side in one run.

    python -m benchmarks.plan_cache [--sizes 50 200 500] [--repeat 20]

For a generated estate (`benchmarks.scenarios.estate`) of each size, one `Project` plans the same
request many times. Measured per call (median wall time of ``--repeat`` calls):

* ``hit``: `Project.plan` answered from its cache: the frozen plan itself, no copy;
* ``from JSON``: what a hit cost before plans were frozen: a new Plan validated from its JSON;
* ``deep copy``: a deep copy of the plan, what a cache of mutable plans would need;
* ``solve``: the same request with the cache turned off (``cache_size=0``).

Nothing here asserts timings; tests/service/test_api.py checks that a hit is the same plan and
cannot be changed.
"""

from __future__ import annotations

import argparse
import copy

from benchmarks import median_wall
from benchmarks.scenarios import estate
from intento import Project
from intento.check import check_sources
from intento.diagnostics import Source
from intento.plan import Plan


def measure(size: int, repeat: int) -> dict:
    e = estate(size, seed=1)
    spec = check_sources([Source(f"cache{size}.intent", e.source)]).spec
    given = e.given("eu")
    cached, uncached = Project(spec), Project(spec, cache_size=0)
    plan = cached.plan(e.intent, given)
    text = plan.model_dump_json()
    editable = plan.editable()
    out = {"actions": size, "steps": len(plan.steps), "json_chars": len(text)}
    out["hit_s"] = median_wall(lambda: cached.plan(e.intent, given), repeat, warmup=False)
    out["json_s"] = median_wall(lambda: Plan.model_validate_json(text), repeat, warmup=False)
    out["deepcopy_s"] = median_wall(lambda: copy.deepcopy(editable), repeat, warmup=False)
    out["solve_s"] = median_wall(lambda: uncached.plan(e.intent, given), max(3, repeat // 5), warmup=False)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 500])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args(argv)
    print("| actions | plan JSON (chars) | hit (ms) | from JSON (ms) | deep copy (ms) | solve (ms) | from JSON / hit | deep copy / hit |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        r = measure(size, args.repeat)
        ms = {k: r[k] * 1000 for k in ("hit_s", "json_s", "deepcopy_s", "solve_s")}
        print(f"| {size} | {r['json_chars']} | {ms['hit_s']:.3f} | {ms['json_s']:.3f} | {ms['deepcopy_s']:.3f} | {ms['solve_s']:.1f} |"
              f" {r['json_s'] / r['hit_s']:.0f}x | {r['deepcopy_s'] / r['hit_s']:.0f}x |", flush=True)


if __name__ == "__main__":
    main()
