"""The supervision view: "did the work finish, and if not, where did it stall?"

Input: a run's row and events (from the store), the current time on the run's clock (the wall
clock, or the store's virtual clock for simulated runs) and its driver row. Output: `run_view`, a
JSON-ready dict (`intento status --format json`, `GET /v1/runs/{id}`), and the text that
`intento status` and `intento runs` print from it. Every time shown is measured against *now*,
never against the run's last event, and a run whose driving process is gone says so.
"""

from __future__ import annotations

import json
from typing import Any

from intento.execute.state import RunState, fold, fold_on
from intento.execute.store import TERMINAL, driver_alive
from intento.values import duration_text as _dur


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
        if s is not None and s.status == "running" and s.external:
            until = f" until {_dur(s.due - st.started_at)}" if s.due is not None else ""
            lines.append(f"  awaiting {action} via {s.provider}: its fact since {_dur(s.since - st.started_at)}{until}")
        elif s is not None and s.status == "running":
            lines.append(f"  running  {action} via {s.provider} since {_dur(s.since - st.started_at)} (attempt {s.attempt})")
        elif s is not None and s.status == "needs_reconciliation":
            lines.append(f"  unknown  {action} via {s.provider}: in flight at a crash, awaiting reconciliation")
        else:
            why = ""
            if spec is not None and action in spec.actions:
                from intento.evaluate import formula_facts

                missing = sorted(formula_facts(spec.actions[action].requires) - st.facts)
                why = f" (waiting for {', '.join(missing)})" if missing else ""
            lines.append(f"  waiting  {action} via {provider}{why}")
    return lines


UNKNOWN: Any = ...


def short(version: str | None, label: str | None = None) -> str:
    """`versions.short`, imported when a status is printed (the versions module reads projects)."""
    from intento.versions import short as f

    return f(version, label)


def run_view(run: dict, events: list[dict], now: int | None = None, driver: Any = UNKNOWN, wall_now: int | None = None) -> dict[str, Any]:
    """A run as an operator needs it, measured against ``now`` (the run's clock; None: its last
    event, for a log read on its own). ``driver`` is the store's driver row (None: nobody drives
    it; `UNKNOWN`: not looked up, so not judged); ``wall_now`` is the clock driver rows are
    judged by."""
    return view_at(Folded.of(run, events).base(), now, driver, wall_now)


class Folded:
    """A run's state as of its last event (`fold`), with what its view needs beyond the state:
    its row (id, clock, creation time), the time of its last plan and its latest event time.
    `advanced` gives a new one for the events that follow (this one is left as it was)."""

    __slots__ = ("run", "st", "plan_at", "max_at")

    def __init__(self, run: dict, st: RunState, plan_at: int | None, max_at: int):
        self.run, self.st, self.plan_at, self.max_at = run, st, plan_at, max_at

    @classmethod
    def of(cls, run: dict, events: list[dict]) -> "Folded":
        return cls(run, RunState(), None, 0).advanced(events)

    @property
    def seq(self) -> int:
        return self.st.next_seq - 1

    def advanced(self, events: list[dict]) -> "Folded":
        if not events:
            return self
        plan_at, max_at = self.plan_at, self.max_at
        for e in events:
            if e["type"] == "planned":
                plan_at = e["at"]
            max_at = max(max_at, e["at"])
        return Folded(self.run, fold_on(self.st, events), plan_at, max_at)

    def base(self) -> dict[str, Any]:
        return base_view(self.run, self.st, self.plan_at)

    def index_row(self) -> tuple:
        """The run's `run_index` row (`store.INDEX_COLUMNS`): its view (`body`) only once it has
        finished (it no longer changes then); an unfinished run's is folded when listed."""
        st = self.st
        expected_end, holding, waits, stall_point = _index_facts(st, self.plan_at)
        body = json.dumps(self.base(), separators=(",", ":"), default=str) if st.terminal else None
        return (self.run.get("id") or st.run, self.seq, st.status, st.intent, self.run.get("clock") or "wall", self.run.get("created_at") or st.started_at, st.last_at,
                self.max_at, st.deadline_at, expected_end, int(holding), waits, stall_point, body)


def _index_facts(st: RunState, plan_at: int | None) -> tuple[int | None, bool, str | None, str | None]:
    """What listing judges a run by beyond its status: (the expected end of its plan, when that
    counts; holding; where it waits when driven; its stall point)."""
    expected_end = None
    if not st.terminal and st.plan and plan_at is not None and st.plan.get("latency_ms") is not None and st.plan.get("status") in ("optimal", "feasible"):
        expected_end = plan_at + st.plan["latency_ms"]
    holding = st.hold_until is not None or bool(st.holding and st.status == "running")
    return expected_end, holding, None if st.terminal else _waits_on(st, True), None if st.terminal else _stall_point(st)


def base_view(run: dict, st: RunState, plan_at: int | None) -> dict[str, Any]:
    """The part of a run's view that only its events decide, read at its last event and not
    judged by a driver, with what `view_at` needs to read it at any time (``_at``): the view as
    `run_view` gives it is ``view_at(base_view(...), now, driver, wall_now)``."""
    last = st.last_at
    rel = lambda t: None if t is None else t - st.started_at  # noqa: E731 - ms since the run's start
    expected_end, holding, waits, stall_point = _index_facts(st, plan_at)
    view: dict[str, Any] = {
        "run": run.get("id") or st.run,
        "intent": st.intent,
        "status": st.status,
        "clock": run.get("clock") or "wall",
        "started_at": st.started_at,
        "now_ms": rel(last),
        "last_event_ms": rel(last),
        "idle_ms": 0,
        "spent": str(st.spent),
        "facts": sorted(st.facts),
        "plans": st.plans,
        "driven": True,
        "driver": None,
        "steps": {a: {"provider": s.provider, "status": s.status, "attempt": s.attempt, "since_ms": rel(s.since), "external": s.external, "due_ms": rel(s.due),
                       "switch_at_ms": rel(s.switch_at), "switched": s.switched} for a, s in st.steps.items()},
        "outcome": st.outcome,
        "deadline": None,
        "at_risk": False,
        "behind_plan_ms": None,
        "waiting_for": _waits(st),
        "stalled": False,
        "stalled_since_ms": None,
        "stall_point": stall_point,
        "holding": holding,
        "waits_on": None,
        # The version that judges the run's decisions (docs/executor.md, "Policy versions") and its migrations.
        "version": {"version": st.version, "policy_set": st.policy_set, "label": st.version_label},
        "migrations": [{k: m.get(k) for k in ("kind", "rollout", "mode", "from", "to", "to_label", "version", "reason", "added", "removed", "changed")} | {"at_ms": rel(m["at"])}
                       for m in st.migrations],
        "_at": {"started": st.started_at, "last": last, "deadline": st.deadline_at, "terminal": st.terminal, "expected_end": expected_end, "waits": waits},
    }
    return view


def _risk(terminal: bool, deadline: int | None, expected_end: int | None, now: int) -> tuple[int | None, bool]:
    """(how far behind its plan, at risk) of a run read at ``now``."""
    if terminal:
        return None, False
    if expected_end is not None:
        return (now - expected_end if now > expected_end else None), deadline is not None and (expected_end > deadline or now >= deadline)
    return None, deadline is not None and now >= deadline


def view_at(base: dict[str, Any], now: int | None = None, driver: Any = UNKNOWN, wall_now: int | None = None) -> dict[str, Any]:
    """A run's `base_view` read at ``now`` with its driver row (as `run_view` takes them)."""
    view = dict(base)
    at = view.pop("_at")
    started, last, deadline, terminal = at["started"], at["last"], at["deadline"], at["terminal"]
    now = last if now is None else max(now, last)
    known = driver is not UNKNOWN
    driver = driver if known else None
    driven = terminal or not known or driver_alive(driver, wall_now)
    view["now_ms"], view["idle_ms"], view["driven"], view["driver"] = now - started, now - last, driven, _driver_view(driver)
    if deadline is not None:
        left = deadline - now
        view["deadline"] = {"at_ms": deadline - started, "left_ms": left if not terminal else None, "passed": not terminal and left < 0}
    view["behind_plan_ms"], view["at_risk"] = _risk(terminal, deadline, at["expected_end"], now)
    if not terminal:
        if not driven:
            view["stalled"], view["stalled_since_ms"] = True, last - started
        elif view["behind_plan_ms"]:
            view["stalled"], view["stalled_since_ms"] = True, now - view["behind_plan_ms"] - started
        view["waits_on"] = at["waits"] if driven else "not driven"
    return view


def _driver_view(driver: dict | None) -> dict | None:
    return None if driver is None else {k: driver[k] for k in ("host", "pid", "since", "heartbeat")}


def _waits_on(st: RunState, driven: bool) -> str:
    """Where an unfinished run is, in a few words that group runs: "waiting for
    settlement.received", "running charge_payment via stripe", "holding for a cool-down",
    "not driven", "giving up"."""
    if not driven:
        return "not driven"
    if st.status == "giving_up":
        return "giving up"
    running = sorted(st.running(), key=lambda s: s.since)
    if running:
        s = running[0]
        if s.external:
            return "waiting for " + (", ".join(s.awaits) if s.awaits else f"the fact of {s.action}")
        return f"running {s.action} via {s.provider}"
    if st.hold_until is not None:
        return "holding for a cool-down"
    if st.holding:
        return "holding for an outcome"
    return "planning"


def _waits(st: RunState) -> list[dict]:
    """What the run waits for now: steps in flight, awaited facts, the end of a hold."""
    if st.terminal:
        return []
    out = []
    for s in st.running():
        if s.external:
            out.append({"kind": "fact", "action": s.action, "provider": s.provider, "since_ms": s.since - st.started_at, "until_ms": None if s.due is None else s.due - st.started_at})
        else:
            out.append({"kind": "step", "action": s.action, "provider": s.provider, "since_ms": s.since - st.started_at, "until_ms": None if s.due is None else s.due - st.started_at})
    if st.hold_until is not None:
        out.append({"kind": "hold", "reason": st.holding.get("reason"), "until_ms": st.hold_until - st.started_at})
    return out


def status_text(run: dict, events: list[dict], spec=None, now: int | None = None, driver: Any = UNKNOWN, wall_now: int | None = None) -> str:
    st = fold(events)
    view = run_view(run, events, now, driver, wall_now)
    out = [f"run {view['run']} ({st.intent}): {st.status}" + ("" if view["driven"] else " (NOT DRIVEN)")]
    if not view["driven"]:
        d = view["driver"]
        since = f"its driver (process {d['pid']} on {d['host']}) stopped" if d else "no process has driven it since it was started"
        out.append(f"  driver: none: {since}; last event {_dur(view['idle_ms'])} ago. Run `intento resume PROJECT --store STORE` to drive it on")
    if st.deadline_at is not None:
        dl = view["deadline"]
        head = f"  deadline: {_dur(st.deadline_at - st.started_at)} after start; "
        if st.terminal:
            end = events[-1]["at"] if events else st.started_at
            spare = st.deadline_at - end
            out.append(head + (f"ended {_dur(spare)} before it" if spare >= 0 else f"ended {_dur(-spare)} after it"))
        else:
            left = dl["left_ms"]
            out.append(head + (f"{_dur(left)} left" if left >= 0 else f"passed {_dur(-left)} ago") + (" (AT RISK)" if view["at_risk"] else ""))
    out.append(f"  spent: {st.spent}   facts: {', '.join(sorted(st.facts)) or '-'}")
    out.append(f"  policy version: {short(st.version, st.version_label)}" + (f", policy set {st.policy_set[:12]}" if st.policy_set else ""))
    for m in st.migrations:
        at = _dur(m["at"] - st.started_at)
        if m["kind"] == "migrated":
            what = "; ".join(f"{k} {', '.join(m[k])}" for k in ("added", "removed", "changed") if m.get(k))
            out.append(f"    at {at}: migrated by rollout {m.get('rollout')} ({m.get('mode')}) from {short(m.get('from'), m.get('from_label'))} to {short(m.get('to'), m.get('to_label'))}" + (f": {what}" if what else ""))
        else:
            out.append(f"    at {at}: rollout {m.get('rollout')} ({m.get('mode')}) left it on its version: {m.get('reason')}")
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
    if view["stall_point"]:
        out.append(f"  stalled at: {view['stall_point']}")
    if view["behind_plan_ms"]:
        out.append(f"  behind its plan by {_dur(view['behind_plan_ms'])}")
    if not st.terminal:
        out.append(f"  last event: {_dur(view['idle_ms'])} ago")
    return "\n".join(out)


def _stall_point(st: RunState) -> str | None:
    running = st.running()
    if running:
        oldest = min(running, key=lambda s: s.since)
        if oldest.external:
            return f"awaiting the fact of {oldest.action} via {oldest.provider} since {_dur(oldest.since - st.started_at)}" + _switch(oldest, st) + (
                f" (times out at {_dur(oldest.due - st.started_at)})" if oldest.due is not None else ""
            )
        return f"{oldest.action} via {oldest.provider}, running since {_dur(oldest.since - st.started_at)}"
    if st.status == "giving_up":
        return "giving up: compensating completed steps"
    if st.hold_until is not None:
        return f"holding: {st.holding['reason']} (re-plan at {_dur(st.hold_until - st.started_at)})"
    return None


def switch_phrase(switch_at: int, switch_to, st: RunState) -> str:
    """"until 5h 51m 36s, then fetch_file_manually via ops_desk": an awaited step's switch time
    and the steps of the route then that the current plan does not already run."""
    planned = {(x["action"], x["provider"]) for x in (st.plan or {}).get("steps", [])}
    route = [f"{a} via {p}" for a, p in switch_to or () if (a, p) not in planned]
    return f"until {_dur(switch_at - st.started_at)}, then " + (", ".join(route) or "another route")


def _switch(s, st: RunState) -> str:
    if s.switched:
        return " (switched away: planned around it)"
    return "" if s.switch_at is None else ", " + switch_phrase(s.switch_at, s.switch_to, st)


def clock_now(store, run: dict) -> tuple[int, int]:
    """(now on the run's clock, now on the wall clock) for a store's run."""
    from intento.execute.store import wall_ms

    wall = wall_ms()
    return (store.virtual_now() if (run.get("clock") or "wall") == "virtual" else wall), wall


def store_status(store, run_id: str, spec=None, as_json: bool = False):
    """`intento status` of one run of a store: text, or the `run_view` dict."""
    run = store.run(run_id)
    events = store.events(run_id)
    now, wall = clock_now(store, run)
    driver = store.driver(run_id)
    if as_json:
        return run_view(run, events, now, driver, wall)
    return status_text(run, events, spec, now, driver, wall)


_RANK = {"escalated": 0, "failed": 0, "giving_up": 1, "running": 3, "succeeded": 5, "cancelled": 5}


def run_views(store) -> list[dict]:
    """Every run of a store, as `run_view`, ordered as an operator reads them: escalated and
    giving up first, then not driven or stalled, then at risk, then the rest; oldest first.
    Read from the store's projection (`Store.run_index`); a store without one is folded."""
    if not hasattr(store, "run_index"):
        return folded_run_views(store)
    entries, wall = _index_entries(store)
    return _views(store, entries, wall)


def folded_run_views(store) -> list[dict]:
    """`run_views` by folding every unfinished run's events (and keeping finished runs' views in
    `finished_views`): what listing did before the projection (schema 8), kept for a store
    without `run_index` and to check the projection against. Only this path reads or writes
    `finished_views`."""
    from intento.execute.store import wall_ms

    wall = wall_ms()
    virtual = store.virtual_now()
    # A finished run's view changes only with the time it is read at (its age), so it is folded
    # once and kept in the store (`finished_views`): a large store folds only unfinished runs.
    lasts, kept, drivers = store.last_seqs(), store.finished_views(), store.drivers()
    views, keep = [], []
    for run in store.runs():
        clock = run.get("clock") or "wall"
        now = virtual if clock == "virtual" else wall
        last_seq = lasts.get(run["id"], 0)
        hit = kept.get(run["id"])
        driver = drivers.get(run["id"])
        if hit is not None and hit[0] == last_seq:
            v = aged(hit[1], now, driver)
        else:
            events = store.events(run["id"])
            # Folded once: a finished run (its row says so in the transaction of its outcome)
            # as read at its last event, kept, then aged to now; any other run read at now.
            base = run_view(run, events, None, driver, wall) if run.get("status") in TERMINAL and events else None
            if base is not None and base["status"] in TERMINAL:
                keep.append((run["id"], events[-1]["seq"], base))
                v = aged(base, now, driver)
            else:
                v = run_view(run, events, now, driver, wall)
        rank = _RANK.get(v["status"], 4)
        if v["status"] == "running":
            rank = 1.5 if v["stalled"] else 2 if v["at_risk"] else rank
        views.append((rank, run["created_at"], run["id"], v))
    views.sort(key=lambda x: x[:3])
    store.keep_finished_views(keep)
    return [v for *_, v in views]


def aged(view: dict, now: int, driver: dict | None) -> dict:
    """A finished run's view (as `run_view` gives it read at its last event) read at ``now``
    with its current driver row: only its age, idle time and driver move."""
    last = view["started_at"] + view["last_event_ms"]
    now = max(now, last)
    return dict(view, now_ms=now - view["started_at"], idle_ms=now - last, driver=_driver_view(driver))


#: `--status` / `?status=` values: a run's status, or `holding` (running, with no plan until a
#: cool-down ends or an outcome arrives); a run waiting for a fact or a timer is `running`.
LIST_STATUSES = ("running", "holding", "giving_up", "succeeded", "escalated", "cancelled", "failed")


def list_runs(store, status: str | None = None, intent: str | None = None, stalled: bool | None = None, limit: int = 100, offset: int = 0,
              search: str | None = None, waits_on: str | None = None) -> dict:
    """The runs of a store as an operator lists them (`intento runs`, `GET /v1/runs`, the
    console): filtered, ordered (escalated, stalled and at-risk first), a page of at most
    ``limit`` from ``offset``, and the count of unfinished runs grouped by where they are
    (`waits_on`), over every run the filters keep, most common first. ``search`` (a substring of
    the run id or intent, any case) and ``waits_on`` (one group) narrow the page but not the
    groups, so a list narrowed to one group still shows the others.

    Filtered, ordered and grouped from the store's projection (`Store.run_index`: a row of
    indexed columns per run, current with its last event) judged at now with the drivers' rows;
    only the page's views are read. A store without the projection is folded."""
    if not hasattr(store, "run_index"):
        return _list_views(folded_run_views(store), status, intent, stalled, limit, offset, search, waits_on)
    entries, wall = _index_entries(store)
    keep = [e for e in entries if _kept(e, status, intent, stalled)]
    groups: dict[str, list[str]] = {}
    for e in keep:
        if e.waits_on:
            groups.setdefault(e.waits_on, []).append(e.run)
    waits = [{"waits_on": k, "count": len(ids), "runs": ids[:20]} for k, ids in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
    needle = (search or "").strip().lower()
    if needle or waits_on:
        keep = [e for e in keep if (not needle or needle in e.run.lower() or needle in (e.intent or "").lower()) and (not waits_on or e.waits_on == waits_on)]
    page = keep[offset : offset + limit]
    more = offset + limit < len(keep)
    return {"total": len(keep), "runs": _views(store, page, wall), "waits": waits, "next_offset": offset + limit if more else None}


def _list_views(views: list[dict], status, intent, stalled, limit, offset, search, waits_on) -> dict:
    """`list_runs` over views already made (`folded_run_views`)."""
    keep = []
    for v in views:
        if intent is not None and v["intent"] != intent:
            continue
        if status is not None:
            if status == "holding":
                if not (v["status"] == "running" and v["holding"]):
                    continue
            elif status == "running":
                if v["status"] != "running" or v["holding"]:
                    continue
            elif v["status"] != status:
                continue
        if stalled is not None and bool(v["stalled"]) != stalled:
            continue
        keep.append(v)
    groups: dict[str, list[str]] = {}
    for v in keep:
        if v.get("waits_on"):
            groups.setdefault(v["waits_on"], []).append(v["run"])
    waits = [{"waits_on": k, "count": len(ids), "runs": ids[:20]} for k, ids in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
    needle = (search or "").strip().lower()
    if needle or waits_on:
        keep = [v for v in keep if (not needle or needle in v["run"].lower() or needle in (v["intent"] or "").lower()) and (not waits_on or v.get("waits_on") == waits_on)]
    page = keep[offset : offset + limit]
    more = offset + limit < len(keep)
    return {"total": len(keep), "runs": page, "waits": waits, "next_offset": offset + limit if more else None}




class _Entry:
    """One run of a listing, judged at now from its `run_index` columns (as `view_at` judges)."""

    __slots__ = ("run", "created_at", "status", "intent", "holding", "stalled", "waits_on", "rank", "now", "driver")

    def __init__(self, row: tuple, now: int, driver: dict | None, wall: int):
        run, seq, status, intent, clock, created_at, last_at, max_at, deadline_at, expected_end, holding, waits, stall_point = row
        self.run, self.created_at, self.status, self.intent, self.holding, self.driver = run, created_at, status, intent, bool(holding), driver
        self.now = now
        terminal = status in TERMINAL
        now = max(now, last_at)
        driven = terminal or driver_alive(driver, wall)
        behind, at_risk = _risk(terminal, deadline_at, expected_end, now)
        self.stalled = not terminal and (not driven or bool(behind))
        self.waits_on = None if terminal else (waits if driven else "not driven")
        rank = _RANK.get(status, 4)
        if status == "running":
            rank = 1.5 if self.stalled else 2 if at_risk else rank
        self.rank = rank




def _kept(e: _Entry, status: str | None, intent: str | None, stalled: bool | None) -> bool:
    if intent is not None and e.intent != intent:
        return False
    if status is not None:
        if status == "holding":
            if not (e.status == "running" and e.holding):
                return False
        elif status == "running":
            if e.status != "running" or e.holding:
                return False
        elif e.status != status:
            return False
    return stalled is None or e.stalled == stalled


def _index_entries(store) -> tuple[list[_Entry], int]:
    """Every run of the store from its projection, judged at now and ordered as `run_views`
    orders them; and the wall clock they were judged by."""
    from intento.execute.store import wall_ms

    wall = wall_ms()
    virtual = store.virtual_now()
    rows, drivers = store.run_index(), store.drivers()
    entries = [_Entry(r, virtual if r[4] == "virtual" else wall, drivers.get(r[0]), wall) for r in rows]
    entries.sort(key=lambda e: (e.rank, e.created_at, e.run))
    return entries, wall


def _views(store, entries: list[_Entry], wall: int) -> list[dict]:
    """The views of listed runs, in their order, read from the projection at their now."""
    bodies = store.index_bodies([e.run for e in entries])
    return [view_at(bodies[e.run], e.now, e.driver, wall) for e in entries]


def runs_table(store, views: list[dict] | None = None) -> list[str]:
    rows = []
    for v in run_views(store) if views is None else views:
        flags = []
        if not v["driven"]:
            flags.append("NOT DRIVEN")
        elif v["stalled"]:
            flags.append("stalled")
        if v["at_risk"]:
            flags.append("at risk")
        if v["stall_point"] and v["status"] == "running":
            flags.append(v["stall_point"])
        rows.append(f"{v['run']}  {v['intent']:20s}  {v['status']:10s}  plans {v['plans']:3d}  spent {v['spent']}  {'; '.join(flags)}".rstrip())
    return rows
