"""Server-drawn SVG: a run's timeline and a plan's Gantt chart with its critical path.

Input: the run page's data (`_data.run_detail`) or a plan's steps. Output: SVG markup (a string,
every user-supplied text escaped), readable without colour: every bar and mark has a `<title>`
and a text label or a pattern (planned bars are outlined, failed ones crossed, critical ones
thick), and the chart as a whole has a `<title>` and `<desc>`.

Critical path rule: the last step is the one ending at the plan's latency (the latest end); going
back, a step is on the path when it ends exactly when a step already on the path starts and that
step requires one of its facts (with the project at hand; without it, any step ending then). Ties
keep every such step: all of them are critical.
"""

from __future__ import annotations

from html import escape
from typing import Any

from intento.console._data import fmt_ms

WIDTH = 960
LEFT = 150
ROW = 34
TOP = 34


def _x(ms: float, span: float, left: float = LEFT) -> float:
    return left + (WIDTH - left - 20) * (ms / span if span > 0 else 0)


def _t(text: Any) -> str:
    return escape(str(text), quote=True)


def _axis(span: float, height: int, left: float = LEFT) -> list[str]:
    out = []
    for i in range(6):
        ms = span * i / 5
        x = _x(ms, span, left)
        out.append(f'<line x1="{x:.1f}" y1="{TOP - 6}" x2="{x:.1f}" y2="{height - 18}" class="grid"/>')
        out.append(f'<text x="{x:.1f}" y="{height - 4}" class="tick" text-anchor="middle">{_t(fmt_ms(int(ms)))}</text>')
    return out


def timeline(detail: dict) -> str:
    """Each step's planned (outlined) and actual (filled) bars on its provider's row; failures
    (a cross), holds (a hatched band), observations (a diamond on the top row), re-plans (a
    dashed line, numbered) and the deadline (a thick line)."""
    attempts, plans, marks = detail["attempts"], detail["plans"], detail["marks"]
    planned = []
    for p in plans:
        for s in p["steps"]:
            planned.append({"plan": p["n"], "action": s["action"], "provider": s["provider"], "start_ms": p["at_ms"] + s["start_ms"], "end_ms": p["at_ms"] + s["end_ms"]})
    providers: list[str] = []
    for item in planned + attempts:
        if item["provider"] not in providers:
            providers.append(item["provider"])
    ends = [detail["end_ms"]] + [a["end_ms"] or 0 for a in attempts] + [p["end_ms"] for p in planned]
    if detail["deadline_ms"] is not None:
        ends.append(detail["deadline_ms"])
    span = max(ends + [1])
    height = TOP + ROW * (len(providers) + 1) + 24
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart timeline" viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="tl-title tl-desc">',
           '<title id="tl-title">Timeline of the run: planned and actual steps by provider</title>',
           f'<desc id="tl-desc">{len(attempts)} step attempts on {len(providers)} providers, {len(plans)} plans; outlined bars are planned, filled bars are what happened; '
           'a cross marks a failure, a dashed line a re-plan, the thick line the deadline.</desc>',
           '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" class="hatch"/></pattern></defs>']
    out += _axis(span, height)
    # Row 0: what happened to the run as a whole (observations, outcome).
    out.append(f'<text x="{LEFT - 8}" y="{TOP + ROW / 2 + 4}" text-anchor="end" class="rowlabel">run</text>')
    rows = {p: i + 1 for i, p in enumerate(providers)}
    for p, i in rows.items():
        y = TOP + i * ROW
        out.append(f'<line x1="{LEFT}" y1="{y}" x2="{WIDTH - 20}" y2="{y}" class="rowline"/>')
        out.append(f'<text x="{LEFT - 8}" y="{y + ROW / 2 + 4}" text-anchor="end" class="rowlabel">{_t(p)}</text>')
    for s in planned:
        y = TOP + rows[s["provider"]] * ROW + 3
        x1, x2 = _x(s["start_ms"], span), _x(s["end_ms"], span)
        out.append(f'<rect class="bar planned" data-plan="{s["plan"]}" x="{x1:.1f}" y="{y}" width="{max(x2 - x1, 2):.1f}" height="11">'
                   f'<title>planned in plan #{s["plan"]}: {_t(s["action"])} via {_t(s["provider"])}, {_t(fmt_ms(s["start_ms"]))} to {_t(fmt_ms(s["end_ms"]))}</title></rect>')
    for a in attempts:
        y = TOP + rows[a["provider"]] * ROW + 16
        x1, x2 = _x(a["start_ms"], span), _x(a["end_ms"], span)
        cls = {"succeeded": "ok", "failed": "bad", "timed out": "bad", "running": "live", "dropped": "dropped"}.get(a["outcome"], "live")
        what = ("undo " if a["compensation"] else "") + a["action"]
        label = f'{what} via {a["provider"]}, attempt {a["attempt"]}: {a["outcome"]}, {fmt_ms(a["start_ms"])} to {fmt_ms(a["end_ms"])}' + (f' ({a["error"]})' if a["error"] else "")
        out.append(f'<rect class="bar actual {cls}" x="{x1:.1f}" y="{y}" width="{max(x2 - x1, 2):.1f}" height="13"><title>{_t(label)}</title></rect>')
        if x2 - x1 > 60:
            out.append(f'<text x="{x1 + 3:.1f}" y="{y + 10}" class="barlabel">{_t(what)}</text>')
    placed: list[float] = []
    for m in marks:
        x = _x(m["at_ms"], span)
        tip = _t(f'{m["label"]} at {fmt_ms(m["at_ms"])}' + (f': {m["text"]}' if m["text"] else ""))
        match m["kind"]:
            case "failure":
                y = TOP + rows.get(m.get("provider"), 0) * ROW + 22
                out.append(f'<g class="mark failure"><title>{tip}</title><path d="M{x - 5:.1f},{y - 5} l10,10 M{x - 5:.1f},{y + 5} l10,-10"/></g>')
            case "replan":
                out.append(f'<g class="mark replan"><title>{tip}</title><line x1="{x:.1f}" y1="{TOP - 4}" x2="{x:.1f}" y2="{height - 18}"/>'
                           f'<text x="{x + 3:.1f}" y="{TOP - 8}" class="marklabel">{_t(m["label"])}</text></g>')
            case "hold":
                x2 = _x(m["until_ms"], span) if m.get("until_ms") is not None else x + 8
                out.append(f'<g class="mark hold"><title>{tip}</title><rect x="{x:.1f}" y="{TOP}" width="{max(x2 - x, 4):.1f}" height="{ROW * (len(providers) + 1)}" fill="url(#hatch)"/></g>')
            case "observation":
                y = TOP + ROW / 2
                out.append(f'<g class="mark observation"><title>{tip}</title><path d="M{x:.1f},{y - 6} l6,6 l-6,6 l-6,-6 z"/></g>')
            case "outcome":
                # On the run's row, clear of its label: to the right of a mark in the chart's
                # left half, to the left otherwise; outcomes close together stack.
                near = sum(1 for px in placed if abs(px - x) < 90)
                placed.append(x)
                y = TOP + 14 + 13 * (near % 2)
                anchor, tx = ("start", x + 4) if x < (LEFT + WIDTH) / 2 else ("end", x - 4)
                out.append(f'<g class="mark outcome"><title>{tip}</title><text x="{tx:.1f}" y="{y:.0f}" text-anchor="{anchor}" class="marklabel">{_t(m["label"])}</text></g>')
    if detail["deadline_ms"] is not None:
        x = _x(detail["deadline_ms"], span)
        out.append(f'<g class="mark deadline"><title>deadline at {_t(fmt_ms(detail["deadline_ms"]))}</title><line x1="{x:.1f}" y1="{TOP - 14}" x2="{x:.1f}" y2="{height - 18}"/>'
                   f'<text x="{x - 3:.1f}" y="{TOP - 18}" text-anchor="end" class="marklabel">deadline</text></g>')
    out.append("</svg>")
    return "\n".join(out)


def critical_path(steps: list[dict], requires: dict[str, set[str]] | None = None, achieves: dict[str, set[str]] | None = None) -> set[str]:
    """The actions on the plan's critical path (see the module docstring for the rule)."""
    if not steps:
        return set()
    latest = max(s["end_ms"] for s in steps)
    on = {s["action"] for s in steps if s["end_ms"] == latest}
    frontier = list(on)
    by_action = {s["action"]: s for s in steps}
    while frontier:
        cur = by_action[frontier.pop()]
        for s in steps:
            if s["action"] in on or s["end_ms"] != cur["start_ms"] or cur["start_ms"] == 0:
                continue
            if requires is not None and achieves is not None and not (requires.get(cur["action"], set()) & achieves.get(s["action"], set())):
                continue
            on.add(s["action"])
            frontier.append(s["action"])
    return on


def gantt(steps: list[dict], critical: set[str], title: str) -> str:
    """A plan as a Gantt chart, one row per step (grouped by provider), the critical path thick
    and labelled."""
    if not steps:
        return '<p class="none">This plan has no steps.</p>'
    span = max(s["end_ms"] for s in steps) or 1
    height = TOP + ROW * len(steps) + 24
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart gantt" viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="g-title g-desc">',
           f'<title id="g-title">{_t(title)}</title>',
           f'<desc id="g-desc">{len(steps)} steps; the critical path ({_t(", ".join(s["action"] for s in steps if s["action"] in critical))}) is drawn thick and marked "critical".</desc>']
    # Room on the left for the longest "action · provider" label (about 7 units a character).
    left = max(LEFT, 16 + 7 * max(len(f'{s["action"]} · {s["provider"]}') for s in steps))
    out += _axis(span, height, left)
    order = sorted(steps, key=lambda s: (s["provider"], s["start_ms"]))
    for i, s in enumerate(order):
        y = TOP + i * ROW
        crit = s["action"] in critical
        x1, x2 = _x(s["start_ms"], span, left), _x(s["end_ms"], span, left)
        out.append(f'<text x="{left - 8}" y="{y + ROW / 2 + 4}" text-anchor="end" class="rowlabel">{_t(s["action"])} · {_t(s["provider"])}</text>')
        tip = f'{s["action"]} via {s["provider"]}: {fmt_ms(s["start_ms"])} to {fmt_ms(s["end_ms"])}' + (" (critical path)" if crit else "")
        out.append(f'<rect class="bar step{" critical" if crit else ""}" data-action="{_t(s["action"])}" x="{x1:.1f}" y="{y + 8}" width="{max(x2 - x1, 2):.1f}" height="{18 if crit else 14}"><title>{_t(tip)}</title></rect>')
        if crit:
            # After the bar, or before it when the bar ends at the right edge.
            tx, anchor = (x2 + 4, "start") if x2 + 60 < WIDTH else (x1 - 4, "end")
            out.append(f'<text x="{tx:.1f}" y="{y + 21}" text-anchor="{anchor}" class="marklabel">critical</text>')
    out.append("</svg>")
    return "\n".join(out)
