"""Logs that cost the same at any size (issue 18): four ratios, each measured side by side.

    python -m benchmarks.logs_scale                 # 10,000 runs
    python -m benchmarks.logs_scale --quick         # 1,000 runs, fewer repetitions
    python -m benchmarks.logs_scale --runs 5000

Printed as a Markdown table (median wall times; targets from the issue):

* audit append: `AuditLog.write` of one decision at the end of a log holding N runs' decisions
  (valid chained records, written directly) against the same append on a fresh log (<= 1.2x);
* executor overhead per step: the executor driving simulated runs on the SQLite store (planning
  excluded, as `benchmarks.__main__.executor_overhead` measures it), each run on a store of its
  own and then every run on one store (as a service drives them), against the raw durable
  commits the same steps need (WAL, synchronous=FULL, one transaction per event, the same
  event bodies) on the same disk (<= 1.5x);
* `list_runs(store, limit=100)` on a store of N runs against a store of one run (< 0.3 s);
* start-up: `intento run --simulate` as a whole process on a store of N runs against an empty
  store, and the engine's first scan (adopting runs) on both (no full scan of the events).

Stores of N runs are made as `benchmarks.console_bench` makes them: a few real template runs,
cloned with plain SQL; then the store's own code writes each copy's projection row, so that the
store is as intento would have written it and a first listing after start-up finds the rows
current. Nothing here asserts timings; tests assert correctness.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import median_wall

ROOT = Path(__file__).resolve().parents[1]
SCEN = ROOT / "examples" / "order_fulfilment" / "scenarios" / "stripe_outage.json"
US = {"customer.region": "us", "order.amount": "80 USD", "customer.email": "o@example.com"}


def _spec():
    import intento

    return intento.load(ROOT / "examples" / "order_fulfilment", ROOT / "policies").spec


# ---- 1. audit append ---------------------------------------------------------------------------
def _draft(spec) -> dict:
    from intento.audit import AuditLog
    from intento.solve import plan

    given = {"customer.region": "us", "order.amount": "80 USD", "customer.email": "o@example.com"}
    p = plan(spec, "fulfil_order", given, None)
    with tempfile.TemporaryDirectory() as d:
        return AuditLog(Path(d) / "a.jsonl").draft(spec, "fulfil_order", given, None, p, run="run-x", reason="run started", decision="run-x/plan-1")


def _fill_log(path: Path, draft: dict, records: int) -> int:
    """``records`` valid chained records at ``path``, written directly (one buffered file)."""
    from intento.audit import GENESIS, canonical, record_hash

    prev, size = GENESIS, 0
    with open(path, "wb") as fh:
        for i in range(records):
            body = dict(draft, run=f"run-{i // 2:06d}", decision=f"run-{i // 2:06d}/plan-{i % 2 + 1}", seq=i + 1, prev=prev)
            body["hash"] = prev = record_hash(body)
            line = canonical(body) + b"\n"
            fh.write(line)
            size += len(line)
    return size


def audit_append(spec, runs: int, repeat: int) -> dict:
    from intento.audit import AuditLog

    draft = _draft(spec)
    with tempfile.TemporaryDirectory(dir=os.environ.get("INTENTO_BENCH_DIR")) as d:
        fresh, big = Path(d) / "fresh.jsonl", Path(d) / "big.jsonl"
        size = _fill_log(big, draft, runs * 2)  # two decisions per run (a plan and a re-plan)
        out = {}
        for name, path in (("fresh", fresh), ("big", big)):
            log = AuditLog(path)
            out[name] = median_wall(lambda log=log: log.write(draft), repeat)
        out["bytes"] = size
    return out


# ---- 2. executor overhead per step -------------------------------------------------------------
def executor_steps(spec, runs: int, shared: bool = False) -> dict:
    """The executor's time per step, planning excluded, and the raw commits of the same events.
    Each run on a store of its own, or (``shared``) every run on one store, as a service drives
    its runs."""
    from benchmarks import planning_timed
    from intento.execute import Executor, Scenario, SimEnvironment, Store

    total, steps, bodies = 0.0, 0, []
    with planning_timed() as planning:
        with tempfile.TemporaryDirectory(dir=os.environ.get("INTENTO_BENCH_DIR")) as d:
            one = Store(Path(d) / "shared.db") if shared else None
            for i in range(runs + 1):
                store = one if shared else Store(Path(d) / f"o{i}.db")
                ex = Executor(spec, store, SimEnvironment(Scenario(seed=i)), new_id=lambda i=i: f"run-{i}")
                t0 = time.perf_counter()
                p0 = planning[0]
                rid = ex.start("fulfil_order", dict(US, **{"customer.email": f"o{i}@example.com"}))
                final = ex.drive(rid)
                if i == 0:  # warm-up, not counted
                    planning[0] = p0
                else:
                    total += time.perf_counter() - t0
                    steps += len(final.completed)
                    bodies += [(e["type"], e["at"], json.dumps(e["data"], sort_keys=True, separators=(",", ":"))) for e in store.events(rid)]
                if not shared:
                    store.close()
            if one is not None:
                one.close()
            raw = raw_commits(Path(d) / "raw.db", bodies)
    executor_s = total - planning[0]
    return {"runs": runs, "steps": steps, "events": len(bodies), "executor_per_step_s": executor_s / steps, "raw_per_step_s": raw / steps, "raw_per_commit_s": raw / len(bodies)}


def raw_commits(path: Path, bodies: list[tuple[str, int, str]]) -> float:
    """The durable commits alone: the same events, one transaction each, WAL + synchronous=FULL."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE events (run TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, at INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (run, seq))")
    t0 = time.perf_counter()
    for seq, (type_, at, data) in enumerate(bodies, 1):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO events VALUES ('r', ?, ?, ?, ?)", (seq, type_, at, data))
        db.execute("COMMIT")
    took = time.perf_counter() - t0
    db.close()
    return took


# ---- 3. listing, 4. start-up ---------------------------------------------------------------------
def make_store(spec, dest: Path, n: int, template: Path) -> None:
    from benchmarks.console_bench import clone

    clone(template, dest, n, projection=True)


def listing(store_path: Path, repeat: int) -> dict:
    from intento.execute import Store
    from intento.execute.report import list_runs

    store = Store(store_path)
    try:
        t0 = time.perf_counter()
        first = list_runs(store, limit=100)
        first_s = time.perf_counter() - t0
        return {"first_s": first_s, "median_s": median_wall(lambda: list_runs(store, limit=100), repeat), "total": first["total"]}
    finally:
        store.close()


def startup(spec, store_path: Path, repeat: int) -> dict:
    """`intento run --simulate` as a whole process (a new run each time), and an engine's scan."""
    exe = str(Path(sys.executable).parent / "intento")
    req = ROOT / "examples" / "order_fulfilment" / "requests" / "us_order.json"
    env = dict(os.environ, NO_COLOR="1")
    times = []
    for i in range(repeat + 1):
        given = dict(json.loads(req.read_text()), **{"customer.email": f"s{i}-{time.time_ns()}@example.com"})
        t0 = time.perf_counter()
        r = subprocess.run([exe, "run", str(ROOT / "examples" / "order_fulfilment"), str(ROOT / "policies"), "-i", "fulfil_order", "-g", json.dumps(given),
                            "--simulate", str(SCEN), "--store", str(store_path), "-q"], capture_output=True, text=True, env=env)
        took = time.perf_counter() - t0
        if r.returncode not in (0, 3):
            raise SystemExit(f"intento run failed ({r.returncode}): {r.stderr[-2000:]}")
        if i:
            times.append(took)
    from intento.execute import Scenario, Store
    from intento.execute.world import World

    store = Store(store_path)
    try:
        w = World(spec, store_path, scenario=Scenario.model_validate_json(SCEN.read_text()))

        def scan():
            eng = w.engine(store)
            eng._adopt_all()
            eng._release_all()

        scan_s = median_wall(scan, repeat)
        t0 = time.perf_counter()
        store.virtual_now()
        clock_s = time.perf_counter() - t0
    finally:
        store.close()
    return {"process_s": statistics.median(times), "scan_s": scan_s, "virtual_now_s": clock_s}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.logs_scale", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=None, help="runs in the large stores and logs (default 10,000; 1,000 with --quick)")
    ap.add_argument("--quick", action="store_true", help="fewer runs and repetitions")
    ap.add_argument("--repeat", type=int, default=None)
    args = ap.parse_args(argv)
    n = args.runs or (1000 if args.quick else 10_000)
    repeat = args.repeat or (3 if args.quick else 7)
    spec = _spec()
    rows = []

    print(f"== audit append (log of {n} runs' decisions)", file=sys.stderr, flush=True)
    a = audit_append(spec, n, repeat * 3)
    rows.append(("audit append: log of N runs vs fresh", f"{a['big'] * 1000:.2f} ms ({a['bytes'] / 1e6:.0f} MB)", f"{a['fresh'] * 1000:.2f} ms", a["big"] / a["fresh"], "<= 1.2"))

    print("== executor overhead per step", file=sys.stderr, flush=True)
    for shared, label in ((False, "a store per run"), (True, "one store for all runs")):
        e = executor_steps(spec, 20 if args.quick else 100, shared=shared)
        rows.append((f"executor per step vs raw commits, {label} ({e['events'] / e['steps']:.1f} events/step)", f"{e['executor_per_step_s'] * 1000:.2f} ms",
                     f"{e['raw_per_step_s'] * 1000:.2f} ms", e["executor_per_step_s"] / e["raw_per_step_s"], "<= 1.5"))

    from benchmarks.console_bench import make_templates

    with tempfile.TemporaryDirectory(dir=os.environ.get("INTENTO_BENCH_DIR")) as d:
        d = Path(d)
        print("== stores: templates, then clones", file=sys.stderr, flush=True)
        make_templates(spec, d / "template.db")
        make_store(spec, d / "big.db", n, d / "template.db")
        make_store(spec, d / "one.db", 1, d / "template.db")
        print(f"== list_runs ({n} runs vs 1)", file=sys.stderr, flush=True)
        big, one = listing(d / "big.db", repeat), listing(d / "one.db", repeat)
        rows.append((f"list_runs: {n} runs vs 1 (first listing after start-up: {big['first_s']:.3f} s)", f"{big['median_s'] * 1000:.1f} ms", f"{one['median_s'] * 1000:.1f} ms",
                     big["median_s"] / one["median_s"], "< 0.3 s at N"))
        print("== start-up", file=sys.stderr, flush=True)
        empty = d / "empty.db"
        big_s, none_s = startup(spec, d / "big.db", max(2, repeat // 2)), startup(spec, empty, max(2, repeat // 2))
        rows.append((f"`intento run --simulate` process: {n} runs vs none", f"{big_s['process_s']:.2f} s", f"{none_s['process_s']:.2f} s", big_s["process_s"] / none_s["process_s"], "~1"))
        rows.append(("engine start (scan to adopt): N runs vs none", f"{big_s['scan_s'] * 1000:.1f} ms", f"{none_s['scan_s'] * 1000:.1f} ms", big_s["scan_s"] / max(none_s["scan_s"], 1e-9), "no full scan"))
        rows.append(("store.virtual_now(): N runs vs none", f"{big_s['virtual_now_s'] * 1000:.2f} ms", f"{none_s['virtual_now_s'] * 1000:.2f} ms",
                     big_s["virtual_now_s"] / max(none_s["virtual_now_s"], 1e-9), "no full scan"))

    print(f"\n## Logs at scale ({n} runs; median of {repeat})\n")
    print("| measure | at N / measured | baseline | ratio | target |")
    print("|---|---:|---:|---:|---|")
    for name, x, y, ratio, target in rows:
        print(f"| {name} | {x} | {y} | {ratio:.2f}x | {target} |")


if __name__ == "__main__":
    main()
