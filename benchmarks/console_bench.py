"""The operator console's run list on a large SQLite store.

    python -m benchmarks.console_bench              # 10,000 runs, 5 repetitions
    python -m benchmarks.console_bench --quick      # 1,000 runs, 2 repetitions
    python -m benchmarks.console_bench --runs 5000 --repeat 3

Measured, side by side on the same store (median, min and max wall time of ``--repeat``
repetitions, after one warm-up call that is not counted):

* ``list_runs(store, limit=50)`` called directly (`intento.execute.report`);
* the console's runs page, ``GET /``, through FastAPI's TestClient with a logged-in session,
  three ways (the page caches: see `bench_store`): on a fresh app, with its answer cache off,
  and as it is;
* the API's ``GET /v1/runs?limit=50`` with a bearer token;
* ``list_runs`` again on a store of a tenth of the runs (at most 1,000), for the ratio of the
  two (how the list scales with the number of runs in the store).

How the store is built: running N runs through the planner would take far too long, so a few
template runs are made with the project's own code in a temporary directory (the order
fulfilment example, simulated: a run re-routed around a Stripe outage, plain succeeded runs, an
EU order with Adyen down, runs started and never driven), and then cloned with plain SQL: each
copy gets its own run id (``run-bench-000123``), idempotency key and creation time (spread out,
with its events' times moved by the same amount), and the template's events and secrets. About
70% of the copies are of finished templates and 30% of unfinished ones. Nothing here asserts
timings; the figures go to a Markdown table and ``benchmarks/results/console.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
TOKEN = "console-bench-token"
SPREAD_MS = 60_000  # creation times of successive copies are this far apart
US = {"customer.region": "us", "order.amount": "80 USD", "customer.email": "t0@example.com"}
EU = {"customer.region": "eu", "order.amount": "80 USD", "customer.email": "t0@example.com"}


def _spec():
    import intento

    return intento.load(ROOT / "examples" / "order_fulfilment", ROOT / "policies").spec


def make_templates(spec, path: Path) -> list[str]:
    """A handful of real runs in the store at ``path``; their ids."""
    from intento.execute import Scenario, Store
    from intento.execute.world import World

    outage = Scenario.model_validate(json.loads((ROOT / "examples/order_fulfilment/scenarios/stripe_outage.json").read_text()))
    plain = Scenario.model_validate({"seed": 1})
    store = Store(path)
    ids = []
    try:
        w = World(spec, path, scenario=outage)
        rid = w.executor(store).start("fulfil_order", dict(US, **{"customer.email": "t1@example.com"}))
        w.executor(store).drive(rid)  # succeeded, re-routed around the outage
        ids.append(rid)
        w = World(spec, path, scenario=plain)
        for i, given in enumerate([US, dict(US, **{"order.amount": "450 USD"}), EU]):
            ex = w.executor(store)
            rid = ex.start("fulfil_order", dict(given, **{"customer.email": f"t2{i}@example.com"}))
            ex.drive(rid)
            ids.append(rid)
        ex = w.executor(store)
        try:  # an EU order with its only EU payment provider down: escalated, if the spec allows the run
            rid = ex.start("fulfil_order", dict(EU, **{"customer.email": "t3@example.com"}), state={"providers": {"adyen": {"status": "down"}}})
            ex.drive(rid)
            ids.append(rid)
        except Exception as e:  # noqa: BLE001 - a template less is no failure of the benchmark
            print(f"  (no escalated template: {e})", file=sys.stderr)
        for i, given in enumerate([US, EU, dict(US, **{"order.amount": "1500 USD"})]):
            ids.append(w.executor(store).start("fulfil_order", dict(given, **{"customer.email": f"t4{i}@example.com"})))  # never driven
    finally:
        store.close()
    return ids


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in db.execute(f"PRAGMA table_info({table})")]


def clone(template: Path, dest: Path, n: int, finished_share: float = 0.7, projection: bool = False) -> dict:
    """Copy the template store to ``dest`` and fill it with ``n`` runs cloned from its templates
    (the templates themselves are removed); how many copies of each status were made. With
    ``projection``, each copy also gets its `run_index` row, as a store intento wrote has it;
    without, the first listing writes them (the "first listing" measured here)."""
    from intento.execute import Store
    from intento.execute.store import TERMINAL

    Store(template).close()  # the schema is current
    src = sqlite3.connect(template)
    src.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db = sqlite3.connect(dest)
    src.backup(db)
    src.close()
    run_cols, event_cols, secret_cols = _columns(db, "runs"), _columns(db, "events"), _columns(db, "run_secrets")
    runs = [dict(zip(run_cols, r)) for r in db.execute(f"SELECT {', '.join(run_cols)} FROM runs ORDER BY created_at, id")]
    events = {r["id"]: [dict(zip(event_cols, e)) for e in db.execute(f"SELECT {', '.join(event_cols)} FROM events WHERE run = ? ORDER BY seq", (r["id"],))] for r in runs}
    secrets = {r["id"]: [dict(zip(secret_cols, s)) for s in db.execute(f"SELECT {', '.join(secret_cols)} FROM run_secrets WHERE run = ?", (r["id"],))] for r in runs}
    finished = [r for r in runs if r["status"] in TERMINAL]
    unfinished = [r for r in runs if r["status"] not in TERMINAL]
    if not finished or not unfinished:
        raise SystemExit("the templates need both finished and unfinished runs")
    # Remove the templates and whatever refers to them; only the copies stay.
    for table in ("slots", "outbox", "drivers", "inbox", "run_secrets", "events"):
        if table in {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}:
            db.execute(f"DELETE FROM {table}")
    db.execute("DELETE FROM runs")
    counts: dict[str, int] = {}
    run_rows, event_rows, secret_rows = [], [], []
    n_finished = round(n * finished_share)
    for i in range(n):
        # interleave finished and unfinished copies so both are spread over time
        pick_finished = (i * n_finished) // n != ((i + 1) * n_finished) // n
        pool = finished if pick_finished else unfinished
        t = pool[i % len(pool)]
        rid = f"run-bench-{i:06d}"
        shift = i * SPREAD_MS
        row = dict(t, id=rid, key=f"bench-{i:06d}-{t['key']}", created_at=t["created_at"] + shift, updated_at=t["updated_at"] + shift)
        run_rows.append(tuple(row[c] for c in run_cols))
        for e in events[t["id"]]:
            event_rows.append(tuple(dict(e, run=rid, at=e["at"] + shift)[c] for c in event_cols))
        for s in secrets[t["id"]]:
            secret_rows.append(tuple(dict(s, run=rid)[c] for c in secret_cols))
        counts[t["status"]] = counts.get(t["status"], 0) + 1
    with db:
        db.executemany(f"INSERT INTO runs ({', '.join(run_cols)}) VALUES ({', '.join('?' * len(run_cols))})", run_rows)
        db.executemany(f"INSERT INTO events ({', '.join(event_cols)}) VALUES ({', '.join('?' * len(event_cols))})", event_rows)
        if secret_rows:
            db.executemany(f"INSERT INTO run_secrets ({', '.join(secret_cols)}) VALUES ({', '.join('?' * len(secret_cols))})", secret_rows)
    db.execute("ANALYZE")
    db.close()
    if projection:
        # Written by the store's own code, as each run's appends would have written them: the
        # copies above are plain SQL.
        store = Store(dest)
        store.run_index()
        store.close()
    return {"by_status": counts, "templates": sorted(r["status"] for r in runs), "events": len(event_rows), "secrets": len(secret_rows)}


def timed(fn, repeat: int, setup=None) -> dict:
    """Wall times of ``fn``: after one uncounted warm-up call, or, with ``setup``, each call on a
    fresh ``setup()`` (not timed) and no warm-up."""
    if setup is None:
        fn()  # warm-up, not counted
    times = []
    for _ in range(repeat):
        arg = setup() if setup is not None else None
        t0 = time.perf_counter()
        fn() if setup is None else fn(arg)
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "times_s": times}


def bench_store(spec, path: Path, repeat: int, http: bool = True) -> dict:
    """The measures on one store. `list_runs` folds every unfinished run's events each time and
    keeps each finished run's view in the store (`finished_views`), so it is timed both before
    the first listing stored them and after. The console's runs page keeps, per app, the events of runs
    whose last event is unchanged and whole answers for `LIST_TTL_S` (2 s) while the store is
    unchanged; so ``GET /`` is timed three ways: on a fresh app (both caches cold), with the
    answer cache off (events cached, every list recomputed), and as it is (answer reused)."""
    from intento.execute import Store
    from intento.execute.report import list_runs

    out = {}
    store = Store(path)
    try:
        def forget(_=None) -> None:  # the finished runs' stored views, as before a store's first listing
            store.db.execute("DELETE FROM finished_views")

        out["list_runs, first listing (no finished run's view stored yet)"] = timed(lambda _: list_runs(store, limit=50), repeat, setup=forget)
        listed = list_runs(store, limit=50)
        out["list_runs"] = timed(lambda: list_runs(store, limit=50), repeat)
        out["list_runs"]["total"] = listed["total"]
    finally:
        store.close()
    if not http:
        return out
    from fastapi.testclient import TestClient

    import intento.console._data as console_data
    from intento.service import create_app

    def logged_in() -> TestClient:
        c = TestClient(create_app(spec, path, token=TOKEN))
        r = c.post("/login", data={"token": TOKEN, "next": "/"}, follow_redirects=False)
        if r.status_code != 303:
            raise SystemExit(f"login to the console failed: {r.status_code}")
        return c

    def page(c: TestClient) -> None:
        r = c.get("/")
        assert r.status_code == 200 and "run-bench-" in r.text, r.status_code  # a correctness check, not a timing

    def api(c: TestClient) -> None:
        r = c.get("/v1/runs?limit=50", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200 and len(r.json()["runs"]) == min(50, listed["total"]), r.status_code

    fresh: list[TestClient] = []

    def new_client() -> TestClient:
        fresh.append(logged_in())
        return fresh[-1]

    out["console GET / (fresh app, cold caches)"] = timed(page, repeat, setup=new_client)
    for c in fresh:
        c.close()
    client = logged_in()
    ttl = console_data.LIST_TTL_S
    console_data.LIST_TTL_S = 0.0
    try:
        out["console GET / (answer cache off, events cached)"] = timed(lambda: page(client), repeat)
    finally:
        console_data.LIST_TTL_S = ttl
    out["console GET / (as is: answer reused < 2 s)"] = timed(lambda: page(client), repeat)
    out["api GET /v1/runs?limit=50"] = timed(lambda: api(client), repeat)
    client.close()
    return out


def profile_list_runs(path: Path, top: int = 10) -> str:
    import cProfile
    import io
    import pstats

    from intento.execute import Store
    from intento.execute.report import list_runs

    store = Store(path)
    try:
        list_runs(store, limit=50)
        prof = cProfile.Profile()
        prof.enable()
        list_runs(store, limit=50)
        prof.disable()
    finally:
        store.close()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(top)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.console_bench", description="Time the console's run list on a SQLite store of many runs.")
    ap.add_argument("--runs", type=int, default=10_000, help="runs in the big store (default 10,000)")
    ap.add_argument("--repeat", type=int, default=5, help="timed repetitions per measure (default 5)")
    ap.add_argument("--quick", action="store_true", help="1,000 runs and 2 repetitions")
    ap.add_argument("--profile", action="store_true", help="print a cProfile top-10 of list_runs on the big store")
    args = ap.parse_args(argv)
    n, repeat = (1_000, 2) if args.quick else (args.runs, args.repeat)
    small = max(1, min(1_000, n // 10))
    started = time.perf_counter()
    spec = _spec()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        t0 = time.perf_counter()
        templates = make_templates(spec, d / "templates.db")
        made = time.perf_counter() - t0
        t0 = time.perf_counter()
        big = clone(d / "templates.db", d / "big.db", n)
        cloned = time.perf_counter() - t0
        clone(d / "templates.db", d / "small.db", small)
        print(f"store: {len(templates)} template runs in {made:.1f} s, cloned into {n} runs ({big['events']} events) in {cloned:.1f} s; templates {big['templates']}, copies {big['by_status']}")
        results = bench_store(spec, d / "big.db", repeat)
        small_results = bench_store(spec, d / "small.db", repeat, http=False)
        for what, r in results.items():
            rows.append({"what": what, "runs": n, **r})
        rows.append({"what": "list_runs", "runs": small, **small_results["list_runs"]})
        profile = profile_list_runs(d / "big.db") if args.profile else None
    ratio = results["list_runs"]["median_s"] / small_results["list_runs"]["median_s"]
    print()
    print("| what | runs | median s | min s | max s |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['what']} | {r['runs']:,} | {r['median_s']:.4f} | {r['min_s']:.4f} | {r['max_s']:.4f} |")
    print(f"\nlist_runs at {n:,} runs / at {small:,} runs: {ratio:.1f}x the time for {n / small:.0f}x the runs")
    if profile:
        print("\n" + profile)
    out = {
        "runs": n,
        "repeat": repeat,
        "store": {"templates": big["templates"], "events": big["events"], "by_status": big["by_status"], "build_s": made + cloned},
        "rows": rows,
        "list_runs_ratio": {"big": n, "small": small, "ratio": ratio},
        "platform": platform.platform(),
        "python": platform.python_version(),
        "duration_s": time.perf_counter() - started,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "console.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS / 'console.json'} ({out['duration_s']:.1f} s)")
    return out


if __name__ == "__main__":
    main()
