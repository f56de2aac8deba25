"""Human renderings of plans: a text timeline with the reasons under it, and a Mermaid Gantt chart.

Input: a `Plan`. Output: text. Pure functions; the CLI prints them.
"""

from __future__ import annotations

from intento.plan import Plan
from intento.values import format_ms


def _dur(ms: int | None) -> str:
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms}ms"
    parts, rest = [], ms
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    if rest:
        parts.append(f"{rest}ms")
    return " ".join(parts)


def plan_text(p: Plan) -> str:
    lines = [f"intent {p.intent}: {p.status}"]
    if p.feasible:
        rows = [("start", "end", "action", "via", "cost", "reliability")]
        for s in p.steps:
            rows.append((_dur(s.start_ms), _dur(s.end_ms), s.action, s.provider, f"{s.cost} {p.currency}", f"{s.reliability:g}"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for i, r in enumerate(rows):
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
            if i == 0:
                lines.append("  " + "  ".join("-" * w for w in widths))
        lines.append(f"  total: cost {p.cost} {p.currency}, latency {_dur(p.latency_ms)}, reliability {p.reliability:.6g} (risk {p.risk:.3g})")
        if p.objective and p.objective.value is not None:
            lines.append(f"  weighted objective: {p.objective.value}")
        for b in p.broken:
            lines.append(f"  broken soft policy {b.policy} (penalty {b.penalty}): {b.statement}")
    e = p.explanation
    why = []
    for st in e.steps:
        for alt in st.alternatives:
            if alt.reason == "unavailable":
                at = f" at {alt.observed_at}" if alt.observed_at else ""
                why.append(f"{st.action}: not {alt.provider}: observed down{at}")
            elif alt.reason == "forbidden":
                by = "; ".join(f"{r.policy} ({r.statement})" for r in alt.by)
                why.append(f"{st.action}: not {alt.provider}: forbidden by {by}")
            elif alt.by:
                by = "; ".join(f"{r.policy} ({r.statement})" for r in alt.by)
                why.append(f"{st.action}: not {alt.provider}: would break soft policy {by}")
            elif alt.delta:
                why.append(f"{st.action}: not {alt.provider}: " + ", ".join(f"{k} {v}" for k, v in alt.delta.items()))
            else:
                why.append(f"{st.action}: not {alt.provider}: no better under the objective")
    for u in e.unused:
        if u.reason != "not_needed":
            by = "; ".join(f"{r.policy} ({r.statement})" for r in u.by)
            why.append(f"{u.action}: not used: {u.reason} by {by}")
    if e.summary:
        why.append(e.summary)
    if e.conflict:
        for r in e.conflict:
            why.append(f"  conflict: {r.kind} {r.policy}: {r.statement}" + (f"  [{r.location}]" if r.location else ""))
    if why:
        lines.append("why:")
        lines += [f"  {w}" for w in why]
    if e.skipped_policies:
        lines.append("policies not applying to this request: " + ", ".join(e.skipped_policies))
    return "\n".join(lines)


def plan_mermaid(p: Plan) -> str:
    title = f"{p.intent} ({p.status}"
    if p.feasible:
        title += f", cost {p.cost} {p.currency}, latency {_dur(p.latency_ms)}"
    title += ")"
    lines = ["gantt", f"    title {title}", "    dateFormat x", "    axisFormat %H:%M:%S"]
    providers = []
    for s in p.steps:
        if s.provider not in providers:
            providers.append(s.provider)
    for prov in providers:
        lines.append(f"    section {prov}")
        for i, s in enumerate(p.steps):
            if s.provider == prov:
                lines.append(f"    {s.action} :s{i}, {s.start_ms}, {s.end_ms}")
    return "\n".join(lines)


def same_optimum(a: Plan, b: Plan) -> tuple[bool, str]:
    """Do two plans of one request reach the same optimum (status, and every objective term)?"""
    if a.feasible != b.feasible:
        return False, f"{a.solver.backend} says {a.status}, {b.solver.backend} says {b.status}"
    if not a.feasible:
        return True, f"both back-ends find the request {a.status}"
    keys = ("penalty", "cost", "latency_ms", "risk_ln", "value")
    da, db = a.objective.model_dump(), b.objective.model_dump()
    order = a.objective.order
    relevant = [k for k in keys if (k == "latency_ms" and "latency" in order) or (k == "risk_ln" and "risk" in order) or k in order or (k == "value" and da["value"] is not None)]
    diffs = [f"{k}: {da[k]} vs {db[k]}" for k in relevant if da[k] != db[k]]
    if diffs:
        return False, f"{a.solver.backend} and {b.solver.backend} optima differ: " + "; ".join(diffs)
    return True, f"{a.solver.backend} and {b.solver.backend} agree on the optimum (" + ", ".join(f"{k} {da[k]}" for k in relevant) + ")"


__all__ = ["plan_text", "plan_mermaid", "same_optimum", "format_ms"]
