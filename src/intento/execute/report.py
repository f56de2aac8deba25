"""The supervision view: "did the work finish, and if not, where did it stall?"

Input: a run's events (from the store). Output: text for `intento status` and `intento runs`.
"""

from __future__ import annotations

from intento.execute.state import RunState, fold
from intento.render import _dur


def step_table(st: RunState, spec=None) -> list[str]:
    lines = []
    for action in st.completed:
        s = st.steps[action]
        lines.append(f"  done     {action} via {s.provider} (at {_dur(s.since - st.started_at)})")
    for comp, s in st.compensations.items():
        lines.append(f"  undo     {comp}: {s.action} via {s.provider} {s.status}")
    planned = [(s["action"], s["provider"]) for s in (st.plan or {}).get("steps", []) if s["action"] not in st.completed]
    if st.terminal:
        planned = []
    for action, provider in planned:
        s = st.steps.get(action)
        if s is not None and s.status == "running":
            lines.append(f"  running  {action} via {s.provider} since {_dur(s.since - st.started_at)} (attempt {s.attempt})")
        elif s is not None and s.status == "needs_reconciliation":
            lines.append(f"  unknown  {action} via {s.provider}: in flight at a crash, awaiting reconciliation")
        else:
            why = ""
            if spec is not None:
                from intento.evaluate import formula_facts

                missing = sorted(formula_facts(spec.actions[action].requires) - st.facts)
                why = f" (waiting for {', '.join(missing)})" if missing else ""
            lines.append(f"  waiting  {action} via {provider}{why}")
    return lines


def status_text(run: dict, events: list[dict], spec=None, now: int | None = None) -> str:
    st = fold(events)
    last = events[-1]["at"] if events else st.started_at
    now = now if now is not None else last
    head = f"run {run['id']} ({st.intent}): {st.status}"
    out = [head]
    if st.deadline_at is not None:
        left = st.deadline_at - now
        out.append(f"  deadline: {_dur(st.deadline_at - st.started_at)} after start; " + (f"{_dur(left)} left" if left >= 0 else f"passed {_dur(-left)} ago"))
    out.append(f"  spent: {st.spent}   facts: {', '.join(sorted(st.facts)) or '-'}")
    out += step_table(st, spec)
    plans = [e for e in events if e["type"] == "planned"]
    if plans:
        p = plans[-1]["data"]
        out.append(f"  plan #{len(plans)} at {_dur(plans[-1]['at'] - st.started_at)}: {p.get('status')}, cost {p.get('cost')}, because {p.get('reason')}")
        if p.get("changes") and len(plans) > 1:
            out.append("    changed: " + "; ".join(p["changes"]))
        for w in p.get("why", [])[:6]:
            out.append(f"    {w}")
    if st.outcome:
        o = st.outcome
        if o.get("summary") or o.get("reason"):
            out.append(f"  outcome: {o.get('summary') or o.get('reason')}")
        if o.get("compensated"):
            out.append("  compensated (undone, in reverse order): " + ", ".join(o["compensated"]))
    stalled = _stall_point(st, events)
    if stalled and not st.terminal:
        out.append(f"  stalled at: {stalled}")
    return "\n".join(out)


def _stall_point(st: RunState, events: list[dict]) -> str | None:
    running = st.running()
    if running:
        oldest = min(running, key=lambda s: s.since)
        return f"{oldest.action} via {oldest.provider}, running since {_dur(oldest.since - st.started_at)}"
    if st.status == "giving_up":
        return "giving up: compensating completed steps"
    if st.hold_until is not None:
        return f"holding: {st.holding['reason']} (re-plan at {_dur(st.hold_until - st.started_at)})"
    return None


def runs_table(store) -> list[str]:
    rows = []
    for run in store.runs():
        events = store.events(run["id"])
        st = fold(events)
        last = events[-1]["at"] if events else run["created_at"]
        at_risk = st.deadline_at is not None and not st.terminal and st.plan and last + (st.plan.get("latency_ms") or 0) > st.deadline_at
        rank = {"escalated": 0, "giving_up": 1, "running": 3, "failed": 0, "succeeded": 5}.get(st.status, 4)
        if at_risk:
            rank = 2
        flag = "at risk" if at_risk else ""
        rows.append((rank, run["created_at"], f"{run['id']}  {st.intent:20s}  {st.status:10s}  plans {st.plans:3d}  spent {st.spent}  {flag}".rstrip()))
    rows.sort()
    return [r[2] for r in rows]
