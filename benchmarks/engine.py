"""The engine at scale: many runs of one SQLite store, driven by one thread.

    python -m benchmarks.engine            # N = 1,000 and 10,000 runs; 1,000 waiting runs
    python -m benchmarks.engine --quick    # N = 200 and 1,000 runs; 200 waiting runs

Measured in one process, side by side (timings are in-run wall times, or whole-process times for
the CLI; nothing is asserted):

1. Throughput. N runs of a one-step intent (`poke`: one idempotent action whose handler returns
   at once) are created with `Executor.create` while no engine runs (runs started per second),
   then one engine, started on the store, adopts and drives them all to their outcome (runs
   completed per second, from the engine's start to the last outcome).
2. Event appends. The events the engine appended during (1), per second, against raw SQLite
   commits per second on the same disk with the same durability settings (WAL,
   ``synchronous=FULL``, one transaction per insert of an event-shaped row), measured just
   before and just after the engine's phase (the disk's rate drifts; the ratio is against the
   mean of the two). The engine also commits what is not an event (per run a lease claim, its
   release and the audit outbox's clearing; the lease beats) and fsyncs the audit log once per
   plan: that time is in its rate, but those writes are not counted as events.
3. Waiting runs. K runs of a `settle`-like intent (an undoable `stage` step, then an external
   fact awaited up to 3 h) are started next to a warm engine and all reach their wait; the
   process's resident memory (VmRSS) and thread count are read before and after, then the fact
   is posted for every run and the time until all have succeeded is measured.
4. Read paths on the largest store of (1): `intento runs --store S --format json` as a whole
   process (and, for scale, on an empty store), and `GET /v1/runs?limit=100` from
   `intento serve PROJECT --store S --no-auth` (started as a subprocess, read with urllib).

A phase that would take longer than its cap (`CAP_S`) is stopped there: the result says what
was capped and the rate measured until then.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import intento
from intento.execute import Registry, Store, post
from intento.execute.world import World

RESULTS = Path(__file__).resolve().parent / "results"
INTENTO = Path(sys.executable).parent / "intento"

#: The longest any one phase (creating runs, completing them, settling waiting runs) may take.
CAP_S = 600.0
#: The planner's time limit per (re-)plan: these models are tiny, so this is only an upper bound.
TIME_LIMIT_S = 2.0
#: Handler threads of the real environment (shared by every run).
WORKERS = 4

# One project, two intents: `poke` finishes at once; `reconcile` prepares, then waits for a fact
# from outside that only the benchmark posts.
PROJECT = """
provider echo { region "eu" }
provider desk { region "eu" }
provider bank { region "eu" }

action touch {
  achieves touched
  idempotent
  via echo { cost 1 USD; latency 1s }
}

intent poke {
  goal touched
  minimize cost
}

action stage {
  achieves batch.staged
  undo unstage
  idempotent
  via desk { cost 1 USD; latency 1s }
}

action unstage {
  achieves batch.unstaged
  via desk { latency 1s }
}

action statement_arrives {
  external
  requires batch.staged
  achieves statement.received
  timeout 3h
  via bank { latency 10m }
}

intent reconcile {
  goal statement.received
  deadline 5h
  minimize cost
}
"""

HANDLERS = Registry()


@HANDLERS.handler("touch")
@HANDLERS.handler("stage")
@HANDLERS.handler("unstage")
def _at_once(ctx):
    return {"latency_ms": 1}


# ---- process figures ------------------------------------------------------------------------------
def _status_field(name: str) -> int | None:
    """A number from /proc/self/status (VmRSS in kB, Threads), None where there is no /proc."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_kb() -> int:
    rss = _status_field("VmRSS")
    if rss is None:  # no /proc: the peak is the best `resource` can say
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss


def threads() -> dict:
    """Python threads, and the process's OS threads (the solver's native threads included)."""
    return {"python": threading.active_count(), "os": _status_field("Threads")}


def _count(db: Path, sql: str, args: tuple = ()) -> list:
    """A read on the store through a connection of its own (the engine's is left alone)."""
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


# ---- an engine on its own thread --------------------------------------------------------------------
class Driven:
    """One engine on a thread of its own, counting the outcomes it reaches and timing its lease
    beats (the loop beats at most once a second, and only between its passes over the runs it
    drives: the longest gap between two beats bounds its longest pass from below)."""

    def __init__(self, world: World, db: Path):
        self.outcomes: Counter = Counter()
        self.expect = 0
        self._all = threading.Event()
        self.engine = world.engine(Store(db), on_finish=self._finished)
        self.beats: list[float] = []
        self.started_at: float | None = None
        self.first_outcome_at: float | None = None
        beat = self.engine._beat

        def timed_beat():
            self.beats.append(time.monotonic())
            beat()

        self.engine._beat = timed_beat
        self.thread = threading.Thread(target=self.engine.run, name="bench-engine", daemon=True)

    def _finished(self, run_id: str, st) -> None:
        if self.first_outcome_at is None:
            self.first_outcome_at = time.perf_counter()
        self.outcomes[st.status] += 1
        if sum(self.outcomes.values()) >= self.expect:
            self._all.set()

    def start(self) -> None:
        self.started_at = time.perf_counter()
        self.thread.start()

    def wait_for(self, total: int, timeout: float) -> bool:
        """Until ``total`` runs reached an outcome here (True), or ``timeout`` seconds (False)."""
        self.expect = total
        if sum(self.outcomes.values()) >= total:
            return True
        self._all.clear()
        if sum(self.outcomes.values()) >= total:
            return True
        return self._all.wait(timeout)

    def stop(self) -> None:
        self.engine.stop()
        self.thread.join(timeout=120)

    def longest_beat_gap_s(self) -> float | None:
        gaps = [b - a for a, b in zip(self.beats, self.beats[1:])]
        return max(gaps) if gaps else None


# ---- 2: raw SQLite ------------------------------------------------------------------------------------
def raw_commits_per_s(path: Path, n: int) -> dict:
    """Inserts of event-shaped rows into a new file, one durable transaction each, as the store
    is configured."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE events (run TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, at INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (run, seq))")
    body = json.dumps({"action": "touch", "provider": "echo", "attempt": 1, "key": "run-0123456789ab/touch/echo", "latency_ms": 1, "facts": ["touched"], "cost": "1"})
    t0 = time.perf_counter()
    for i in range(n):
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO events VALUES (?, ?, 'step_succeeded', ?, ?)", (f"run-{i // 5}", i % 5 + 1, i, body))
        con.execute("COMMIT")
    wall = time.perf_counter() - t0
    con.close()
    return {"commits": n, "wall_s": wall, "commits_per_s": n / wall}


# ---- 1 and 2: throughput ----------------------------------------------------------------------------
def throughput(spec, folder: Path, n: int, raw_n: int, progress=print) -> dict:
    db = folder / f"runs-{n}.db"
    world = World(spec, db, registry=HANDLERS, workers=WORKERS, time_limit_s=TIME_LIMIT_S)
    store = Store(db)
    capped: dict = {}
    raw_before = raw_commits_per_s(folder / f"raw-{n}-before.db", raw_n)
    try:
        ex = world.executor(store)
        t0 = time.perf_counter()
        created = 0
        for i in range(n):
            ex.create("poke", {}, key=f"poke-{i}")
            created += 1
            if time.perf_counter() - t0 > CAP_S:
                capped["create"] = f"stopped after {CAP_S:.0f} s with {created} of {n} runs created"
                break
        create_s = time.perf_counter() - t0
        progress(f"  {n} runs: {created} created in {create_s:.1f} s ({created / create_s:.0f}/s); driving them", flush=True)

        before = _count(db, "SELECT COUNT(*) FROM events")[0][0]
        driven = Driven(world, db)
        t1 = time.perf_counter()
        driven.start()  # its first scan adopts every unfinished run of the store
        done = driven.wait_for(created, CAP_S)
        complete_s = time.perf_counter() - t1
        finished = sum(driven.outcomes.values())
        if not done:
            capped["complete"] = f"stopped after {CAP_S:.0f} s with {finished} of {created} runs finished"
        driven.stop()
        appended = _count(db, "SELECT COUNT(*) FROM events")[0][0] - before
        by_type = dict(_count(db, "SELECT type, COUNT(*) FROM events GROUP BY type ORDER BY type"))
        statuses = dict(_count(db, "SELECT status, COUNT(*) FROM runs GROUP BY status ORDER BY status"))
    finally:
        store.close()
        world.close()
    raw_after = raw_commits_per_s(folder / f"raw-{n}-after.db", raw_n)
    raw = (raw_before["commits_per_s"] + raw_after["commits_per_s"]) / 2
    events_per_s = appended / complete_s
    row = {
        "runs": n,
        "created": created,
        "create_s": create_s,
        "created_per_s": created / create_s,
        "finished": finished,
        "complete_s": complete_s,
        "completed_per_s": finished / complete_s,
        "outcomes": dict(driven.outcomes),
        "statuses": statuses,
        "events_appended": appended,
        "events_per_run": appended / finished if finished else None,
        "events_by_type": by_type,
        "engine_events_per_s": events_per_s,
        "raw_commits_per_s": raw,
        "raw_commits_per_s_before_after": [raw_before["commits_per_s"], raw_after["commits_per_s"]],
        "raw_commits_each": raw_n,
        "events_vs_raw": events_per_s / raw,
        # a create is one durable transaction too (the run's row and its first event)
        "creates_vs_raw": created / create_s / raw,
        "longest_gap_between_lease_beats_s": driven.longest_beat_gap_s(),
        # outcomes are collected between passes: the first comes once every run has been planned
        "first_outcome_after_s": None if driven.first_outcome_at is None else driven.first_outcome_at - driven.started_at,
        "store": str(db),
        "capped": capped or None,
    }
    progress(f"  {n} runs: {finished} finished in {complete_s:.1f} s ({row['completed_per_s']:.0f}/s, {events_per_s:.0f} events/s = {row['events_vs_raw']:.0%} of raw commits)", flush=True)
    return row


# ---- 3: waiting runs --------------------------------------------------------------------------------
def _awaiting(db: Path) -> int:
    """How many runs have dispatched their external step (they wait for its fact)."""
    sql = "SELECT COUNT(DISTINCT run) FROM events WHERE type = 'step_dispatched' AND data LIKE '%\"external\":true%'"
    return _count(db, sql)[0][0]


def waiting(spec, folder: Path, k: int, warm: int = 10, progress=print) -> dict:
    db = folder / "waiting.db"
    world = World(spec, db, registry=HANDLERS, workers=WORKERS, time_limit_s=TIME_LIMIT_S)
    store = Store(db)
    driven = Driven(world, db)
    capped: dict = {}
    peak = {"python": 0, "os": 0}

    def sample() -> None:
        now = threads()
        peak["python"] = max(peak["python"], now["python"])
        peak["os"] = max(peak["os"], now["os"] or 0)

    def until(cond, seconds: float) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sample()
            if cond():
                return True
            time.sleep(0.1)
        return False

    try:
        threads_before_engine = threads()
        driven.start()
        ex = world.executor(store)
        # Warm-up: a few runs through the whole cycle, so the solver, the handler pool and the
        # caches are in memory before the baseline is read.
        warm_ids = [ex.create("reconcile", {}, key=f"warm-{i}")[0] for i in range(warm)]
        for rid in warm_ids:
            driven.engine.notify_new(rid)
        until(lambda: _awaiting(db) >= warm, 120)
        for rid in warm_ids:
            post(store, rid, {"fact": "statement.received", "source": "bench"})
        driven.wait_for(warm, 120)
        gc.collect()
        time.sleep(0.5)
        rss0, threads0 = rss_kb(), threads()
        peak.update(python=threads0["python"], os=threads0["os"] or 0)

        t0 = time.perf_counter()
        ids = []
        for i in range(k):
            ids.append(ex.create("reconcile", {}, key=f"wait-{i}")[0])
            driven.engine.notify_new(ids[-1])
        create_s = time.perf_counter() - t0
        if not until(lambda: _awaiting(db) >= warm + k, CAP_S):
            capped["wait"] = f"stopped after {CAP_S:.0f} s with {_awaiting(db) - warm} of {k} runs waiting"
        reach_s = time.perf_counter() - t0
        live = len(driven.engine.live)
        timers = len(driven.engine.timers)
        gc.collect()
        time.sleep(0.5)
        rss1, threads1 = rss_kb(), threads()
        sample()
        progress(f"  {k} runs waiting after {reach_s:.1f} s: RSS {rss0 / 1024:.0f} -> {rss1 / 1024:.0f} MiB, threads {threads0['python']} -> {threads1['python']} (OS {threads0['os']} -> {threads1['os']})", flush=True)

        t1 = time.perf_counter()
        for rid in ids:
            post(store, rid, {"fact": "statement.received", "source": "bench"})
        post_s = time.perf_counter() - t1
        if not driven.wait_for(warm + k, CAP_S):
            capped["settle"] = f"stopped after {CAP_S:.0f} s with {sum(driven.outcomes.values()) - warm} of {k} runs finished"
        settle_s = time.perf_counter() - t1
        sample()
        threads_after = threads()
        outcomes = driven.outcomes.copy()
        outcomes["succeeded"] -= warm
        driven.stop()
    finally:
        if driven.thread.is_alive():
            driven.stop()
        store.close()
        world.close()
    settled = sum(outcomes.values())
    row = {
        "runs": k,
        "warm_up_runs": warm,
        "create_s": create_s,
        "all_waiting_s": reach_s,
        "live_in_engine_while_waiting": live,
        "timer_heap_entries": timers,
        "rss_before_kb": rss0,
        "rss_waiting_kb": rss1,
        "rss_per_waiting_run_kb": (rss1 - rss0) / k,
        "threads_before_engine": threads_before_engine,
        # what one engine may add, however many runs wait: its thread and the handler pool's
        "threads_bound_python": threads_before_engine["python"] + 1 + WORKERS,
        "threads_before": threads0,
        "threads_waiting": threads1,
        "threads_peak": peak,
        "threads_after": threads_after,
        "post_s": post_s,
        "settle_s": settle_s,
        "settled": settled,
        "settled_per_s": settled / settle_s,
        "outcomes": dict(outcomes),
        "capped": capped or None,
    }
    progress(f"  fact posted to {k} runs in {post_s:.1f} s; {settled} finished {settle_s:.1f} s after the first post ({row['settled_per_s']:.0f}/s)", flush=True)
    return row


# ---- 4: read paths ------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _timed_cli(args: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    done = subprocess.run([str(INTENTO), *args], check=False, capture_output=True, text=True, env=dict(os.environ, NO_COLOR="1"), timeout=CAP_S)
    return time.perf_counter() - t0, done


def reads(db: Path, project: Path, folder: Path, repeats: int = 3, progress=print) -> dict:
    runs = _count(db, "SELECT COUNT(*) FROM runs")[0][0]
    empty = folder / "empty.db"
    Store(empty).close()
    cli_empty = [_timed_cli(["runs", "--store", str(empty), "--format", "json"])[0] for _ in range(repeats)]
    cli, total = [], None
    for _ in range(repeats):
        wall, done = _timed_cli(["runs", "--store", str(db), "--format", "json"])
        cli.append(wall)
        if done.returncode == 0:
            total = json.loads(done.stdout)["total"]
    progress(f"  `intento runs --format json` on {runs} runs: {min(cli):.2f} s (empty store {min(cli_empty):.2f} s)", flush=True)

    port = _free_port()
    log = (folder / "serve.log").open("w")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(INTENTO), "serve", str(project), "--store", str(db), "--port", str(port), "--no-auth"],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, NO_COLOR="1"),
    )
    base = f"http://127.0.0.1:{port}"
    http, size, ready_s, error = [], None, None, None
    try:
        end = time.monotonic() + 120
        while time.monotonic() < end and proc.poll() is None:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=5) as r:
                    r.read()
                ready_s = time.perf_counter() - t0
                break
            except OSError:
                time.sleep(0.05)
        if ready_s is None:
            error = "the service did not answer /healthz within 120 s"
        else:
            for _ in range(repeats + 1):  # the first request is reported apart (cold)
                t1 = time.perf_counter()
                with urllib.request.urlopen(base + "/v1/runs?limit=100", timeout=CAP_S) as r:
                    body = r.read()
                http.append(time.perf_counter() - t1)
                size = len(body)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    row = {
        "runs_in_store": runs,
        "cli_runs_json_s": {"min": min(cli), "median": statistics.median(cli), "all": cli},
        "cli_runs_json_empty_store_s": {"min": min(cli_empty), "median": statistics.median(cli_empty)},
        "cli_total_reported": total,
        "serve_ready_s": ready_s,
        "http_runs_limit_100_s": {"first": http[0], "min": min(http[1:]), "median": statistics.median(http[1:]), "all": http} if len(http) > 1 else None,
        "http_body_bytes": size,
        "error": error,
    }
    if http:
        progress(f"  GET /v1/runs?limit=100 on {runs} runs: first {http[0]:.2f} s, then {min(http[1:]):.2f} s ({size} bytes)", flush=True)
    return row


# ---- the section --------------------------------------------------------------------------------------
def run(quick: bool = False, progress=print) -> dict:
    sizes = (200, 1_000) if quick else (1_000, 10_000)
    k = 200 if quick else 1_000
    result: dict = {"sizes": list(sizes), "waiting_runs": k, "cap_s": CAP_S, "time_limit_s": TIME_LIMIT_S, "handler_workers": WORKERS}
    with tempfile.TemporaryDirectory(prefix="intento-engine-bench-") as tmp:
        folder = Path(tmp)
        project = folder / "project"
        project.mkdir()
        (project / "p.intent").write_text(PROJECT)
        spec = intento.load(project).spec
        # Waiting runs first: the process's heap has not yet grown (and been freed) for the
        # throughput runs, so the baseline is as small as it gets.
        progress(f"  {k} waiting runs", flush=True)
        result["waiting"] = waiting(spec, folder, k, progress=progress)
        rows = []
        for n in sizes:
            rows.append(throughput(spec, folder, n, 500 if quick else 2_000, progress=progress))
        result["throughput"] = rows
        result["reads"] = reads(Path(rows[-1]["store"]), project, folder, repeats=2 if quick else 3, progress=progress)
    for r in rows:
        r.pop("store", None)
    capped = {f"throughput {r['runs']}": r["capped"] for r in rows if r["capped"]}
    if result["waiting"]["capped"]:
        capped["waiting"] = result["waiting"]["capped"]
    result["capped"] = capped or None
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / ("engine_quick.json" if quick else "engine.json")).write_text(json.dumps(result, indent=2, default=str))
    return result


def table(result: dict) -> list[str]:
    lines = [
        ("Runs of a one-step intent, created with no engine running, then driven by one engine; raw: SQLite commits on the same disk "
         "(WAL, synchronous=FULL, one transaction each), measured just before and just after (their mean, and the range)."),
        "",
        "| runs | created/s | completed/s | complete s | events/run | engine events/s | raw commits/s (range) | events : raw | first outcome after s | longest gap between lease beats s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["throughput"]:
        done = f"{r['finished']} of {r['created']}" if r["finished"] < r["created"] else f"{r['complete_s']:.1f}"
        gap = r["longest_gap_between_lease_beats_s"]
        gap = f"< {r['complete_s']:.1f}" if gap is None else f"{gap:.1f}"  # fewer than two beats: the whole phase was shorter
        first = "-" if r["first_outcome_after_s"] is None else f"{r['first_outcome_after_s']:.1f}"
        lines.append(
            f"| {r['runs']} | {r['created_per_s']:.0f} | {r['completed_per_s']:.1f} | {done} | {r['events_per_run'] or 0:.1f} | "
            f"{r['engine_events_per_s']:.0f} | {r['raw_commits_per_s']:.0f} ({min(r['raw_commits_per_s_before_after']):.0f}-{max(r['raw_commits_per_s_before_after']):.0f}) | {r['events_vs_raw']:.2f} | {first} | {gap} |"
        )
    w = result["waiting"]
    lines += [
        "",
        "| waiting runs | all waiting after s | RSS before / waiting MiB | RSS per waiting run KiB | Python threads before / waiting / peak (bound) | OS threads before / waiting | fact posted s | all succeeded after s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        (f"| {w['runs']} | {w['all_waiting_s']:.1f} | {w['rss_before_kb'] / 1024:.0f} / {w['rss_waiting_kb'] / 1024:.0f} | {w['rss_per_waiting_run_kb']:.1f} | "
         f"{w['threads_before']['python']} / {w['threads_waiting']['python']} / {w['threads_peak']['python']} ({w['threads_bound_python']}) | {w['threads_before']['os']} / {w['threads_waiting']['os']} | "
         f"{w['post_s']:.1f} | {w['settle_s']:.1f} |"),
    ]
    rd = result["reads"]
    http = rd["http_runs_limit_100_s"]
    lines += [
        "",
        f"| read, on {rd['runs_in_store']} runs | seconds |",
        "|---|---:|",
        f"| `intento runs --format json` (whole process, best of {len(rd['cli_runs_json_s']['all'])}) | {rd['cli_runs_json_s']['min']:.2f} |",
        f"| the same on an empty store (process start-up) | {rd['cli_runs_json_empty_store_s']['min']:.2f} |",
        f"| `GET /v1/runs?limit=100` from `intento serve`, first request | {http['first']:.2f} |" if http else "| `GET /v1/runs?limit=100` | " + str(rd["error"]) + " |",
    ]
    if http:
        lines.append(f"| `GET /v1/runs?limit=100`, later requests (best) | {http['min']:.2f} |")
    if result.get("capped"):
        lines += ["", "Capped at " + f"{result['cap_s']:.0f} s: " + "; ".join(f"{k}: {v}" for k, v in result["capped"].items())]
    return lines


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller run counts")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    result = run(quick=args.quick)
    print()
    print("\n".join(table(result)))
    print(f"duration: {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
