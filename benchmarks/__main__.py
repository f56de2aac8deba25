"""Run every benchmark, print Markdown tables, write benchmarks/results/*.json and PNG plots.

    python -m benchmarks            # the full run (its duration is printed at the end)
    python -m benchmarks --quick    # a smoke run, under 2 minutes on 2 cores

Sections: adaptivity (strategies x outage rates, from event logs), fault schedules (strategies x
outage windows, latency spikes, error bursts and late external events), plan quality (CP-SAT
against the exhaustive optimum), planner latency by size (build/solve split), explanation overhead,
executor overhead per step, fleet planning, drift (learned figures), late events against the switch margin.
Nothing here asserts timings; tests assert
correctness.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def plan_quality(n: int, seed: int = 0) -> dict:
    """CP-SAT's optimum against python-constraint's exhaustive optimum on small generated estates."""
    from benchmarks.scenarios import estate
    from intento.check import check_sources
    from intento.diagnostics import Source
    from intento.solve import plan

    same, compared, gaps = 0, 0, []
    for i in range(n):
        e = estate(6, n_providers=6, seed=seed + i, options=(2, 3))
        spec = check_sources([Source(f"q{i}", e.source)]).spec
        region = "eu" if i % 2 else "us"
        fast = plan(spec, e.intent, e.given(region), None, explain="none")
        slow = plan(spec, e.intent, e.given(region), None, backend="constraint", explain="none")
        compared += 1
        if fast.status == slow.status and (not fast.feasible or (fast.cost, fast.latency_ms) == (slow.cost, slow.latency_ms)):
            same += 1
        if fast.feasible and slow.feasible and float(slow.cost):
            gaps.append(float(fast.cost) / float(slow.cost) - 1)
    return {"compared": compared, "identical_optimum": same, "max_gap": max(gaps) if gaps else 0.0}


def executor_overhead(runs: int = 10) -> dict:
    """Wall time per step of the executor with the SQLite store, planner time excluded."""
    import intento
    from benchmarks import planning_timed
    from intento.execute import Executor, Scenario, SimEnvironment, Store

    spec = intento.load(Path(__file__).resolve().parents[1] / "examples" / "order_fulfilment", Path(__file__).resolve().parents[1] / "policies").spec
    total, steps, events = 0.0, 0, 0
    with planning_timed() as planning:
        with tempfile.TemporaryDirectory() as d:
            for i in range(runs):
                store = Store(Path(d) / f"o{i}.db")
                ex = Executor(spec, store, SimEnvironment(Scenario(seed=i)), new_id=lambda i=i: f"run-{i}")
                t0 = time.perf_counter()
                rid = ex.start("fulfil_order", {"customer.region": "us", "order.amount": "80 USD", "customer.email": "o@example.com"})
                final = ex.drive(rid)
                total += time.perf_counter() - t0
                steps += len(final.completed)
                events += len(store.events(rid))
    return {"runs": runs, "steps": steps, "events": events, "ms_per_step_excluding_planning": (total - planning[0]) * 1000 / steps, "ms_per_event_write": (total - planning[0]) * 1000 / events}


def plots(results: dict, suffix: str = "") -> list[str]:
    """The PNG plots; ``suffix`` keeps a quick run from overwriting the full run's."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ["(matplotlib is not installed: `pip install -e '.[bench]'` for plots)"]
    from benchmarks.baselines import STRATEGIES

    made = []
    adapt = results.get("adaptivity", {})
    if adapt:
        fig, ax = plt.subplots(figsize=(6, 4))
        rates = sorted(float(r) for r in adapt)
        for s in STRATEGIES:
            if all(adapt[str(r)][s]["runs"] for r in rates):
                label = f"{s} (small models only)" if s == "exhaustive" else s
                ax.plot([r * 100 for r in rates], [adapt[str(r)][s]["compliant_success_rate"] * 100 for r in rates], marker="o", label=label)
        ax.set_xlabel("providers with an outage (%)")
        ax.set_ylabel("goal reached without a policy violation (%)")
        ax.set_ylim(0, 105)
        ax.legend()
        ax.set_title("Success vs outage rate")
        fig.tight_layout()
        fig.savefig(RESULTS / f"success_vs_outage{suffix}.png", dpi=110)
        made.append(f"success_vs_outage{suffix}.png")
        plt.close(fig)
    if adapt:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, key, title in ((axes[0], "cost_ratios", "cost / healthy-world optimum"), (axes[1], "makespan_ratios", "makespan / healthy-world plan")):
            data = [[x for r in adapt.values() for x in r[s].get(key, [])] for s in STRATEGIES]
            ax.boxplot([d or [float("nan")] for d in data], showfliers=True)
            ax.set_xticks(range(1, len(STRATEGIES) + 1), STRATEGIES, rotation=20)
            if key == "makespan_ratios":
                ax.set_yscale("log")  # a retry's back-off can multiply a short run's makespan
            ax.set_title(title)
        fig.suptitle("Successful runs under provider outages (all rates)")
        fig.tight_layout()
        fig.savefig(RESULTS / f"cost_latency_distributions{suffix}.png", dpi=110)
        made.append(f"cost_latency_distributions{suffix}.png")
        plt.close(fig)
    faults = results.get("fault_schedules", {})
    if faults:
        fig, ax = plt.subplots(figsize=(8, 4))
        kinds = list(faults)
        width = 0.8 / len(STRATEGIES)
        for j, s in enumerate(STRATEGIES):
            ax.bar([i + j * width for i in range(len(kinds))], [faults[k][s].get("compliant_success_rate", 0) * 100 for k in kinds], width, label=s)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(kinds))], kinds)
        ax.set_ylabel("goal reached without a policy violation (%)")
        ax.set_ylim(0, 105)
        ax.legend(fontsize=8, loc="lower left")
        ax.set_title("Success by fault schedule")
        fig.tight_layout()
        fig.savefig(RESULTS / f"success_by_fault{suffix}.png", dpi=110)
        made.append(f"success_by_fault{suffix}.png")
        plt.close(fig)
    lat = results.get("planner_latency", [])
    if lat:
        fig, ax = plt.subplots(figsize=(6, 4))
        xs = [r["actions"] for r in lat]
        ax.loglog(xs, [r["total_ms"]["p50"] for r in lat], marker="o", label="p50 total")
        ax.loglog(xs, [r["total_ms"]["p95"] for r in lat], marker="o", label="p95 total")
        ax.loglog(xs, [max(r["build_ms"]["p50"], 0.01) for r in lat], marker="s", label="p50 model build")
        rp = [(r["actions"], r["replan_ms"]["p95"]) for r in lat if r.get("replan_ms")]
        if rp:
            ax.loglog([x for x, _ in rp], [y for _, y in rp], marker="^", label="p95 re-plan")
        ax.set_xlabel("actions in the intent")
        ax.set_ylabel("planning time (ms)")
        ax.legend()
        ax.set_title("Planner time vs model size")
        fig.tight_layout()
        fig.savefig(RESULTS / f"planner_time_vs_size{suffix}.png", dpi=110)
        made.append(f"planner_time_vs_size{suffix}.png")
        plt.close(fig)
    fleet = results.get("fleet", [])
    if fleet:
        fig, ax1 = plt.subplots(figsize=(6, 4))
        xs = [r["intents"] for r in fleet]
        ax1.loglog(xs, [max(r["wall_s"], 1e-3) for r in fleet], marker="o", color="tab:blue", label="wall time (s)")
        ax1.set_xlabel("intents planned together")
        ax1.set_ylabel("wall time (s)")
        ax2 = ax1.twinx()
        ax2.plot(xs, [(r["gap_vs_bound"] or 0) * 100 for r in fleet], marker="s", color="tab:red", label="cost gap to bound (%)")
        ax2.plot(xs, [(r.get("latency_gap_vs_bound") or 0) * 100 for r in fleet], marker="^", color="tab:orange", label="latency gap to bound (%)")
        ax2.set_ylabel("gap to best bound (%)")
        ax2.legend(loc="upper left")
        ax1.set_title("Fleet planning with shared capacity")
        fig.tight_layout()
        fig.savefig(RESULTS / f"fleet{suffix}.png", dpi=110)
        made.append(f"fleet{suffix}.png")
        plt.close(fig)
    return made


def main(argv=None) -> None:
    from benchmarks import adaptivity, explain_overhead, fleet, plan_latency

    ap = argparse.ArgumentParser(description="intento benchmarks")
    ap.add_argument("--quick", action="store_true", help="a smoke run, under 2 minutes")
    args = ap.parse_args(argv)
    quick = args.quick
    t0 = time.perf_counter()
    RESULTS.mkdir(exist_ok=True)
    results: dict = {"machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, Python {platform.python_version()}", "quick": quick}
    out = []

    print("== adaptivity: strategies under provider outages (metrics from event logs)", flush=True)
    rows = adaptivity.run(rates=(0.1, 0.3) if quick else (0.1, 0.2, 0.3), scenarios=8 if quick else 40, seed=1)
    results["adaptivity"] = {str(k): v for k, v in rows.items()}
    out += ["## Adaptivity", ""] + adaptivity.table(rows) + [""]

    print("== fault schedules: windows, spikes, bursts, late external events", flush=True)
    frows = adaptivity.run_faults(rate=0.2, scenarios=6 if quick else 40, seed=1)
    results["fault_schedules"] = frows
    out += ["## Fault schedules (20% of providers, or of external facts, hit)", ""] + adaptivity.table(frows, "fault schedule", "the healthy-world optimum") + [""]

    print("== drift: providers that no longer do what they declare, with and without learned figures", flush=True)
    from benchmarks import drift

    drows = drift.run(12 if quick else 40)
    results["drift"] = drows
    out += ["## Drift (stripe fails 35%, postnl ships 2.5x slower than declared)", ""] + drift.table(drows) + [""]

    print("== late external events: the switch margin", flush=True)
    from benchmarks import switch_margin

    srows = switch_margin.run(12 if quick else 40)
    results["switch_margin"] = srows
    out += ["## Late external events against the switch margin", ""] + switch_margin.table(srows) + [""]

    print("== plan quality: CP-SAT vs exhaustive", flush=True)
    q = plan_quality(5 if quick else 30)
    results["plan_quality"] = q
    out += ["## Plan quality", "", f"CP-SAT and the exhaustive back-end reached the identical optimum on {q['identical_optimum']} of {q['compared']} generated estates (largest cost gap {q['max_gap']:.2%}).", ""]

    print("== planner latency by size", flush=True)
    lat = []
    for size in ((5, 20) if quick else (5, 20, 50, 200, 500)):
        # Half the 200-action estates and nine in ten 500-action ones admit no plan (residency
        # and PCI rules): more requests there, so that the re-plan percentiles rest on samples.
        lat.append(plan_latency.measure(size, 6 if quick else {200: 40, 500: 200}.get(size, 20), 1, 10.0))
        print(f"  {size} actions: done ({lat[-1]['requests']} requests, {lat[-1]['replans']} re-plans)", flush=True)
    results["planner_latency"] = lat
    out += [
        "## Planner latency (one worker)",
        "",
        "A re-plan: half the plan's steps done, the next step's provider down, the previous plan as hint.",
        "",
        "| actions | requests | feasible | build p50 ms | solve p50 / p95 ms | plan p50 / p95 / p99 ms | re-plans | re-plan p50 / p95 / p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in lat:
        rp = r["replan_ms"]
        rp_txt = f"{rp['p50']:.1f} / {rp['p95']:.1f} / {rp['p99']:.1f}" if rp else "-"
        out.append(
            f"| {r['actions']} | {r['requests']} | {r['statuses'].get('optimal', 0) + r['statuses'].get('feasible', 0)} | {r['build_ms']['p50']:.1f} | {r['solve_ms']['p50']:.1f} / {r['solve_ms']['p95']:.1f} | "
            f"{r['total_ms']['p50']:.1f} / {r['total_ms']['p95']:.1f} / {r['total_ms']['p99']:.1f} | {r['replans']} | {rp_txt} |"
        )
    out.append("")

    print("== explanation overhead", flush=True)
    eo_file = "explain_overhead_quick.json" if quick else "explain_overhead.json"
    import io
    import contextlib

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        explain_overhead.main(["--sizes", "5", "20", "--requests", "3" if quick else "8", "--out", eo_file])
    out += ["## Explanation overhead", ""] + buf.getvalue().strip().splitlines() + [""]
    results["explain_overhead"] = json.loads((RESULTS / eo_file).read_text())

    print("== executor overhead", flush=True)
    eo = executor_overhead(3 if quick else 10)
    results["executor_overhead"] = eo
    out += ["## Executor overhead (SQLite store, simulation)", "", f"{eo['ms_per_step_excluding_planning']:.1f} ms per step and {eo['ms_per_event_write']:.1f} ms per durable event write, planning excluded ({eo['steps']} steps, {eo['events']} events).", ""]

    print("== fleet planning", flush=True)
    fl = fleet.run(sizes=(1, 10, 100) if quick else (1, 10, 100, 1000, 10000), time_limit_s=10.0 if quick else 60.0)
    results["fleet"] = fl
    out += ["## Fleet planning (2 workers, 1% gap stop)", ""] + fleet.table(fl) + [""]

    print("== engine: many runs of one store, one thread", flush=True)
    from benchmarks import engine as engine_bench

    en = engine_bench.run(quick=quick)
    results["engine"] = en
    out += ["## Engine (one thread, SQLite store, real handlers)", ""] + engine_bench.table(en) + [""]

    results["duration_s"] = time.perf_counter() - t0
    made = plots(results, "_quick" if quick else "")
    (RESULTS / ("summary_quick.json" if quick else "summary.json")).write_text(json.dumps(results, indent=2, default=str))
    print()
    print("\n".join(out))
    print(f"plots: {', '.join(made) if made else 'none'}")
    print(f"duration: {results['duration_s']:.0f} s ({'quick' if quick else 'full'} run, {results['machine']})")


if __name__ == "__main__":
    main()
