"""A CLI that starts fast (issue 18): whole-process wall times of intento's commands, side by side
with the floor each one is judged against, and the cost of reading a large project.

    python -m benchmarks.cli_start [--repeat 7] [--actions 500]

Part 1, whole processes (each measure is the median of ``--repeat`` rounds; within a round every
command runs once, in a rotating order, so load on a shared machine falls on all of them alike):

* `python -c pass`: the interpreter alone;
* `intento status` and `intento runs` on a store of one finished run, and `intento check` on the
  order example (its files in the project cache, and with ``INTENTO_NO_CACHE=1``); target 0.5 s;
* `intento plan` of an EU order against a bare `from ortools.sat.python import cp_model`
  (target: 1.2x).

Part 2, in this process: reading a generated project of ``--actions`` actions
(`benchmarks.scenarios.estate`) three ways, CPU time, best of three: lark's tree then the AST
(the reference path, `_parse_via_tree`, with the collector paused as `parse` pauses it),
`parse` with the project cache off (``INTENTO_NO_CACHE=1``: the AST built directly from lark's
LALR tables, the default path), and a hit in the project cache; target 0.3 s.

Nothing is asserted here; the tests check that the paths give the same trees.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "order_fulfilment"


def _intento() -> list[str]:
    exe = Path(sys.executable).with_name("intento")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "intento"]


def _store(folder: Path) -> Path:
    """A store holding one finished simulated run of the order example."""
    store = folder / "one.db"
    subprocess.run(
        _intento() + ["run", str(EXAMPLE), str(ROOT / "policies"), "--intent", "fulfil_order", "--given", str(EXAMPLE / "requests" / "us_order.json"),
                      "--simulate", str(EXAMPLE / "scenarios" / "stripe_outage.json"), "--store", str(store), "--quiet"],
        check=True, capture_output=True,
    )
    return store


def _time(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True)
    took = time.perf_counter() - t
    if r.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.decode()[-500:]}")
    return took


def processes(repeat: int) -> list[tuple[str, float]]:
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        cache = d / "cache"
        env = dict(os.environ, INTENTO_CACHE_DIR=str(cache))
        no_cache = dict(env, INTENTO_NO_CACHE="1")
        store = _store(d)
        project = [str(EXAMPLE), str(ROOT / "policies")]
        commands = {
            "python -c pass": ([sys.executable, "-c", "pass"], env),
            "intento status --store S": (_intento() + ["status", "--store", str(store)], env),
            "intento runs --store S": (_intento() + ["runs", "--store", str(store)], env),
            "intento check (cached)": (_intento() + ["check", *project], env),
            "intento check (INTENTO_NO_CACHE=1)": (_intento() + ["check", *project], no_cache),
            "import cp_model": ([sys.executable, "-c", "from ortools.sat.python import cp_model"], env),
            "intento plan (EU order)": (_intento() + ["plan", *project, "--intent", "fulfil_order", "--given", str(EXAMPLE / "requests" / "eu_order.json")], env),
        }
        for cmd, e in commands.values():  # warm the file cache, the project cache and the grammar
            _time(cmd, e)
        times: dict[str, list[float]] = {k: [] for k in commands}
        names = list(commands)
        for i in range(repeat):
            for name in names[i % len(names):] + names[: i % len(names)]:
                cmd, e = commands[name]
                times[name].append(_time(cmd, e))
        return [(k, statistics.median(v)) for k, v in times.items()]


def parsing(actions: int) -> dict[str, float]:
    from benchmarks.scenarios import estate
    from intento._gc import paused_gc
    from intento.diagnostics import Source
    from intento.syntax import _parser

    text = estate(actions, seed=0).source
    out: dict[str, float] = {"chars": float(len(text))}
    with tempfile.TemporaryDirectory() as d:
        os.environ["INTENTO_CACHE_DIR"] = d
        _parser.parse(Source("warm.intent", "provider p {}"))  # the grammar, outside the measure

        def best(fn) -> float:
            t_best = float("inf")
            for _ in range(3):
                t = time.process_time()
                fn()
                t_best = min(t_best, time.process_time() - t)
            return t_best

        def tree() -> None:
            with paused_gc():  # as `parse` runs either path
                _parser._parse_via_tree(Source("p.intent", text))

        def uncached() -> None:  # what `parse` does with the project cache off
            before = os.environ.get("INTENTO_NO_CACHE")
            os.environ["INTENTO_NO_CACHE"] = "1"
            try:
                _parser.parse(Source("p.intent", text))
            finally:
                if before is None:
                    del os.environ["INTENTO_NO_CACHE"]
                else:
                    os.environ["INTENTO_NO_CACHE"] = before

        out["tree"] = best(tree)
        out["direct"] = best(uncached)
        _parser.parse(Source("p.intent", text))  # kept in the cache
        out["cached"] = best(lambda: _parser.parse(Source("p.intent", text)))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.cli_start", description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--actions", type=int, default=500)
    args = ap.parse_args(argv)
    rows = dict(processes(args.repeat))
    floor = rows["python -c pass"]
    print(f"\n## Start-up (whole processes, median of {args.repeat} rotating rounds)\n")
    print("| command | wall s | against | ratio | target |")
    print("|---|---:|---|---:|---|")
    for name in ("intento status --store S", "intento runs --store S", "intento check (cached)", "intento check (INTENTO_NO_CACHE=1)"):
        print(f"| `{name}` | {rows[name]:.2f} | interpreter alone {floor:.2f} s | {rows[name] / floor:.1f}x | <= 0.5 s |")
    ref = rows["import cp_model"]
    print(f"| `intento plan` (EU order) | {rows['intento plan (EU order)']:.2f} | bare cp_model import {ref:.2f} s | {rows['intento plan (EU order)'] / ref:.2f}x | <= 1.2x |")
    p = parsing(args.actions)
    print(f"\n## Reading a {args.actions}-action project ({int(p['chars']):,} characters; CPU s, best of 3)\n")
    print("| path | CPU s | against the tree path | target |")
    print("|---|---:|---:|---|")
    for name, label in (("tree", "lark tree, then the AST (reference)"), ("direct", "`parse`, project cache off (the AST from the LALR tables)"), ("cached", "project cache hit")):
        print(f"| {label} | {p[name]:.3f} | {p[name] / p['tree']:.2f}x | <= 0.3 s |")


if __name__ == "__main__":
    main()
