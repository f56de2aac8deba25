"""Human renderings of plans: a text timeline with the reasons under it, and a Mermaid Gantt chart.

Input: a `Plan`. Output: text. Pure functions; the CLI prints them.
"""

from __future__ import annotations

from intento.plan import Plan
from intento.values import duration_text as _dur, format_ms


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
            elif alt.reason == "too_slow":
                why.append(f"{st.action}: not {alt.provider}: would time out: {_timeout_detail(alt)}")
            elif alt.reason == "forbidden":
                by = "; ".join(f"{r.policy} ({r.statement})" for r in alt.by)
                why.append(f"{st.action}: not {alt.provider}: forbidden by {by}")
            elif alt.by and not alt.delta:
                by = "; ".join(f"{r.policy} ({r.statement})" for r in alt.by)
                why.append(f"{st.action}: not {alt.provider}: would break soft policy {by}")
            elif alt.reason == "tied":
                why.append(f"{st.action}: not {alt.provider}: as good; the tie-break rule chose {st.provider}")
            elif alt.delta:
                why.append(f"{st.action}: not {alt.provider}: {_delta_text(alt.delta, p.currency)}")
            else:
                why.append(f"{st.action}: not {alt.provider}: no better under the objective")
    for u in e.unused:
        if u.reason == "too_slow":
            why.append(f"{u.action}: not used: every option would time out (" + "; ".join(r.statement for r in u.by) + ")")
        elif u.reason != "not_needed":
            by = "; ".join(f"{r.policy} ({r.statement})" for r in u.by)
            why.append(f"{u.action}: not used: {u.reason} by {by}")
        elif u.impossible:
            by = "; ".join(f"{r.policy} ({r.statement})" for r in u.by) or "the rest of the request"
            why.append(f"{u.action}: not used: not needed, and no plan could use it: {by}")
        elif u.delta is not None:
            why.append(f"{u.action}: not used: not needed; using it (via {u.via}) would be {_delta_text(u.delta, p.currency)}")
    for w in e.switches:
        why.append(f"{w.action} via {w.provider}: awaited until {_dur(w.at_ms)} after the start, then " + (", ".join(w.then) or "another route"))
    for f in e.figures:
        why.append(f"{f.action} via {f.provider}: planned with latency {_dur(f.latency_ms)}, reliability {f.reliability}: {f.source}")
    if e.summary:
        why.append(e.summary)
    if e.conflict:
        for r in e.conflict:
            why.append(f"  conflict: {r.kind} {r.policy}: {r.statement}" + (f"  [{r.location}]" if r.location else ""))
    if why:
        lines.append("why:")
        lines += [f"  {w}" for w in why]
    for pr in e.prices:
        if pr.binding:
            lines.append(f"  policy {pr.policy} costs {_delta_text(pr.price, p.currency)}")
    if e.skipped_policies:
        lines.append("policies not applying to this request: " + ", ".join(e.skipped_policies))
    if not e.complete:
        lines.append(partial_note(e))
    return "\n".join(lines)


def partial_note(e) -> str:
    """One line saying an explanation is partial, and why."""
    why = "its bound on counterfactual solves (--max-questions) was reached" if e.truncated_reason == "max_questions" else "the request's time limit ran out"
    return f"(partial explanation: {why}; what is shown is right, the rest is missing)"


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


def _delta_text(delta: dict[str, str] | None, currency: str) -> str:
    if not delta:
        return ""
    parts = []
    for k, v in delta.items():
        if v in ("+0", "-0"):
            continue
        if k == "cost":
            parts.append(f"{v} {currency}")
        elif k == "latency_ms":
            parts.append(f"{v[0]}{_dur(abs(int(v)))}")
        elif k == "penalty":
            parts.append(f"{v} soft penalty")
        elif k == "risk":
            parts.append(f"{v} risk (sum of -ln reliability)")
        else:
            parts.append(f"{v} objective")
    return ", ".join(parts) or "no change"


def _timeout_detail(alt) -> str:
    """Why a `too_slow` option would time out, e.g. `degraded latency 2h exceeds the action's
    timeout 30m`: its statement without the leading "A via P: ", since the action and the
    provider are already named wherever this is shown."""
    return "; ".join(r.statement.split(": ", 1)[-1] for r in alt.by if r.kind == "timeout")


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def explanation_markdown(p: Plan, spec, given: dict | None = None, state: dict | None = None) -> str:
    """A decision report a compliance reviewer can file and act on without reading code."""
    e = p.explanation
    out = [f"# Decision report: `{p.intent}`", ""]
    if p.feasible:
        out.append(
            f"**Outcome:** a plan was found ({p.status}). Cost **{p.cost} {p.currency}**, latency **{_dur(p.latency_ms)}**, "
            f"end-to-end reliability **{p.reliability:.4%}**."
        )
    else:
        out.append(f"**Outcome:** no plan ({p.status}).")
    if not e.complete:
        out += ["", "**" + partial_note(e).strip("()").capitalize() + ".**"]
    out += ["", "## Request", ""]
    intent = spec.intents[p.intent]
    if intent.given:
        out += ["| given | value |", "|---|---|"]
        for name, param in intent.given.items():
            value = "*(secret, not shown)*" if param.secret else _md(str((given or {}).get(name, "")))
            out.append(f"| `{name}` | {value} |")
    down = e.down
    out.append("")
    out.append(f"Providers observed down: {', '.join(f'`{d}`' for d in down)}." if down else "No provider was observed down.")
    if not p.feasible:
        out += ["", "## Why no plan exists", "", (e.summary or "the solver could not establish a minimal explanation") + ".", ""]
        if e.conflict:
            out += ["Each of these is needed for the conflict; relaxing any one of them admits a plan:", "", "| rule or observation | kind | defined at |", "|---|---|---|"]
            for r in e.conflict:
                out.append(f"| **{r.policy}**: `{_md(r.statement)}` | {r.kind} | {r.location or ''} |")
            owners = sorted({spec.policies[r.policy].owner for r in e.conflict if r.kind in ("policy", "require") and r.policy in spec.policies and spec.policies[r.policy].owner})
            if owners:
                out += ["", f"Policy owners to consult: {', '.join(owners)}."]
        return "\n".join(out) + "\n"
    out += ["", "## The plan", "", "| start | end | action | provider | cost | reliability |", "|---:|---:|---|---|---:|---:|"]
    for s in p.steps:
        out.append(f"| {_dur(s.start_ms)} | {_dur(s.end_ms)} | `{s.action}` | `{s.provider}` | {s.cost} {p.currency} | {s.reliability:g} |")
    if p.broken:
        out += ["", "Soft policies broken (their penalty was worth paying):", ""]
        out += [f"- **{b.policy}** (`{_md(b.statement)}`), penalty {b.penalty}" for b in p.broken]
    out += ["", "## Why each step runs where it does", ""]
    for st in e.steps:
        out += [f"### `{st.action}` via `{st.provider}`", ""]
        if not st.alternatives:
            out += ["No other option exists.", ""]
            continue
        out += ["| instead of | outcome | because |", "|---|---|---|"]
        for alt in st.alternatives:
            if alt.reason == "unavailable":
                because = f"observed down{' at ' + alt.observed_at if alt.observed_at else ''}"
            elif alt.reason == "too_slow":
                because = f"would time out: {_md(_timeout_detail(alt))}"
            elif alt.reason == "forbidden":
                because = "; ".join(f"**{r.policy}** `{_md(r.statement)}`" + (f" ({r.location})" if r.location else "") for r in alt.by)
            elif alt.reason == "tied":
                because = "as good under the objective; the documented tie-break rule chose the other"
            else:
                because = _delta_text(alt.delta, p.currency) if alt.delta else "no better under the objective"
                if alt.by:
                    because += "; would break " + ", ".join(f"**{r.policy}**" for r in alt.by)
            out.append(f"| `{alt.provider}` | {alt.reason} | {because} |")
        out.append("")
    if e.switches:
        out += ["## Switch times", "", "Waits this plan does not count on past a moment: if the facts have not landed by then, the run takes the route after it.", ""]
        out += ["| awaited | until (after the start) | then |", "|---|---:|---|"]
        out += [f"| `{w.action}` via `{w.provider}` | {_dur(w.at_ms)} | {', '.join(f'`{x}`' for x in w.then) or 'another route'} |" for w in e.switches]
        out.append("")
    routes = [u for u in e.unused if u.reason == "not_needed" and (u.delta is not None or u.impossible)]
    if routes:
        out += ["## Routes not taken", "", "Actions the plan leaves out, and what the best plan that uses each would change.", ""]
        out += ["| action | with | outcome |", "|---|---|---|"]
        for u in routes:
            if u.impossible:
                because = "no plan can use it: " + ("; ".join(f"**{r.policy}** `{_md(r.statement)}`" + (f" ({r.location})" if r.location else "") for r in u.by) or "the rest of the request")
            else:
                because = _delta_text(u.delta, p.currency)
            out.append(f"| `{u.action}` | {f'`{u.via}`' if u.via else ''} | {because} |")
        out.append("")
    if e.prices:
        out += ["## What each policy costs", "", "Objective with the policy minus without it (0: it did not change the plan).", ""]
        out += ["| policy | owner | binding | price |", "|---|---|---|---|"]
        for pr in e.prices:
            owner = spec.policies[pr.policy].owner or ""
            out.append(f"| **{pr.policy}** | {owner} | {'yes' if pr.binding else 'no'} | {_delta_text(pr.price, p.currency)} |")
        out.append("")
    out += ["## Policies", ""]
    out.append("Applied: " + (", ".join(f"`{n}`" for n in e.applied_policies) or "none") + ".")
    if e.skipped_policies:
        out.append("")
        out.append("Not applying to this request (their `when` guard is false or reads what this intent does not declare): " + ", ".join(f"`{n}`" for n in e.skipped_policies) + ".")
    return "\n".join(out) + "\n"
