"""What a new policy set does to the runs in flight, and rolling it out.

Input: a store and a policy set (`versions.load_policy_set`). Output: `impact`: for every
unfinished run, its remaining plan under its own version and under its project with the new set,
solved exactly as its next re-plan would be (`executor.remaining_plan`, from the same inputs);
`rollout` records the set on the store, after which new runs start on it and unfinished runs
migrate at their next decision point as the mode says (`Executor._migrate_due`).
"""

from __future__ import annotations

from decimal import Decimal

from intento.diagnostics import IntentoError
from intento.execute.executor import Executor, remaining_plan, step_moves
from intento.execute.state import fold
from intento.execute.store import Store, wall_ms
from intento.render import _dur
from intento.versions import short, spec_from_kept, texts_hash, version_of, with_policy_set

MODES = ("new-runs", "migrate", "migrate-if-feasible")


def _brief(plan) -> dict:
    return {"status": plan.status, "cost": plan.cost, "latency_ms": plan.latency_ms,
            "steps": {s.action: s.provider for s in plan.steps}, "summary": plan.explanation.summary}


def impact(store: Store, policies: list[dict], label: str | None = None, time_limit_s: float = 10.0) -> dict:
    """For every unfinished run: ``unchanged``, ``changed`` (cost and latency deltas, the steps
    that move), ``infeasible`` (no plan for its remaining work under the new set: the conflict),
    or ``unknown`` (its version's texts are not in the store, or the set does not fit its
    project). ``breaks``: how many runs would become infeasible or cannot be judged."""
    rows = []
    for run_id in store.unfinished_runs():
        st = fold(store.events(run_id))
        row = {"run": run_id, "intent": st.intent, "status": st.status, "version": st.version, "version_label": st.version_label}
        kept = store.version(st.version) if st.version else None
        if kept is None:
            rows.append(row | {"impact": "unknown", "why": "its version's texts are not in the store (started before versions were kept)"})
            continue
        try:
            cur = spec_from_kept(kept["sources"])  # checked once per version (a cache)
            new = with_policy_set(cur, policies)
        except IntentoError as e:
            rows.append(row | {"impact": "unknown", "why": "the policy set does not check with its project: " + "; ".join(d.message for d in e.diagnostics[:3])})
            continue
        row["new_version"] = version_of(new, label)["version"]
        if st.status != "running":
            rows.append(row | {"impact": "unchanged", "why": f"the run is {st.status.replace('_', ' ')}: it plans nothing more"})
            continue
        ex = Executor(cur, store, None, time_limit_s=time_limit_s)  # type: ignore[arg-type]
        inputs = ex._inputs(st, store.now(st.clock))
        context = dict(st.context) | store.secrets(run_id)
        try:
            _, a = remaining_plan(cur, st.intent, context, dict(inputs), time_limit_s=time_limit_s)
            _, b = remaining_plan(new, st.intent, context, dict(inputs), time_limit_s=time_limit_s)
        except IntentoError as e:
            rows.append(row | {"impact": "unknown", "why": "; ".join(d.message for d in e.diagnostics[:3])})
            continue
        rows.append(judge(row, a, b, inputs["done"]))
    return report(rows)


def judge(row: dict, a, b, done: dict) -> dict:
    """An unfinished run's impact row from its remaining plan under its own version (``a``) and
    under the new one (``b``): ``unchanged``, ``changed`` (the steps that move, the cost and
    latency deltas) or ``infeasible`` (the conflict). Both engines' impact reports use it."""
    row = row | {"current": _brief(a), "new": _brief(b), "done": done}
    if not b.feasible:
        return row | {"impact": "infeasible", "why": b.explanation.summary or f"no plan ({b.status})",
                      "conflict": [c.model_dump() for c in (b.explanation.conflict or [])]}
    moves = step_moves(row["current"]["steps"], row["new"]["steps"])
    deltas = {}
    if a.feasible:
        deltas = {"cost": format(Decimal(b.cost) - Decimal(a.cost), "f"), "latency_ms": b.latency_ms - a.latency_ms}
    if moves or a.status != b.status or (deltas and (Decimal(deltas["cost"]) != 0 or deltas["latency_ms"] != 0)):
        return row | {"impact": "changed", "moves": moves, "delta": deltas}
    return row | {"impact": "unchanged"}


def report(rows: list[dict]) -> dict:
    """The impact report of these rows: counts per impact, and ``breaks`` (infeasible or unknown)."""
    counts = {k: sum(1 for r in rows if r["impact"] == k) for k in ("unchanged", "changed", "infeasible", "unknown")}
    return {"runs": rows, "counts": counts, "breaks": counts["infeasible"] + counts["unknown"]}


def outcome(mode: str, impact: str) -> str:
    """What a rollout in ``mode`` does with an unfinished run of that ``impact``: ``migrates``,
    ``stays`` or ``escalates``."""
    if mode == "new-runs" or impact == "unknown":
        return "stays"
    if impact == "infeasible":
        return "escalates" if mode == "migrate" else "stays"
    return "migrates"


def rollout(store: Store, policies: list[dict], mode: str, label: str | None = None, by: str | None = None, time_limit_s: float = 10.0) -> tuple[int, dict]:
    """Record the rollout (new runs start on the set from now on) with its impact, and say what
    each unfinished run will do: ``migrates``, ``stays`` (new-runs, or migrate-if-feasible and
    infeasible) or ``escalates`` (migrate, and infeasible). Returns (rollout number, report)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode `{mode}` (one of {', '.join(MODES)})")
    report = impact(store, policies, label, time_limit_s)
    for r in report["runs"]:
        r["outcome"] = outcome(mode, r["impact"])
    seq = store.add_rollout(wall_ms(), mode, label, texts_hash(policies), policies, by, report)
    return seq, report


def describe(row: dict) -> str:
    """One line of an impact report."""
    head = f"{row['run']} ({row['intent']}, on {short(row.get('version'), row.get('version_label'))}): {row['impact']}"
    if row["impact"] == "changed":
        d = row.get("delta") or {}
        bits = list(row.get("moves") or [])
        if d:
            lat = d["latency_ms"]
            bits.append(f"cost {'+' if not str(d['cost']).startswith('-') else ''}{d['cost']}, latency {'+' if lat >= 0 else '-'}{_dur(abs(lat))}")
        return head + ": " + "; ".join(bits)
    if row.get("why"):
        return head + ": " + row["why"]
    return head
