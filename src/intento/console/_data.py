"""What the console's pages show, read from the store and the audit log.

Input: the store's path, its audit log's path, the checked project. Output: plain dicts and
lists the templates draw: a page of runs (`RunLister`, over `execute.report.list_runs`), one
run's history (`run_detail`), the audit records of a run with their verification status
(`AuditIndex`), the decisions' explanations (recorded, or re-derived in full from the recorded
inputs), and how often each policy bound decisions (`policy_stats`).

Nothing here writes to the store; actions go through `execute.post` in `_routes.py`, as the API's.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from intento.execute.store import Store


# ---- the runs list ------------------------------------------------------------------------------


class _CachedStore:
    """A `Store` for `list_runs` that reads each run's events once per change: a run whose last
    event number is what it was last time gets its cached events back (finished runs are not
    folded at all: the store keeps their views). Everything else goes to the real store."""

    def __init__(self, store: Store, cache: "OrderedDict[str, tuple[int, list]]"):
        self._store, self._cache = store, cache
        self._last = store.last_seqs()

    def __getattr__(self, name):
        return getattr(self._store, name)

    def last_seqs(self) -> dict[str, int]:
        return self._last

    def events(self, run_id: str) -> list[dict]:
        last = self._last.get(run_id, 0)
        hit = self._cache.get(run_id)
        if hit is not None and hit[0] == last:
            return hit[1]
        events = self._store.events(run_id)
        self._cache[run_id] = (events[-1]["seq"] if events else 0, events)
        return events


def store_version(store: Store) -> tuple[int, int]:
    """Changes whenever any run changes: the newest event's row and the inbox's newest row."""
    ev = store.db.execute("SELECT COALESCE(MAX(rowid), 0) FROM events").fetchone()[0]
    inbox = store.db.execute("SELECT COALESCE(MAX(id), 0) FROM inbox").fetchone()[0]
    return ev, inbox


#: How long a computed list is reused when nothing in the store changed (seconds): the times it
#: shows (age, deadline left) move on, so it is not kept for long.
LIST_TTL_S = 2.0


class RunLister:
    """`list_runs` (with its search and stall-point filters) behind a small cache: the events of
    unchanged runs, and whole answers for a moment."""

    def __init__(self, store_path: Path):
        self.store_path = store_path
        self._events: OrderedDict[str, tuple[int, list]] = OrderedDict()
        self._answers: OrderedDict[tuple, tuple[float, tuple, dict]] = OrderedDict()
        self._lock = threading.Lock()

    def page(self, *, status: str | None, intent: str | None, stalled: bool | None, q: str | None, waits_on: str | None,
             limit: int, offset: int) -> dict:
        from intento.execute.report import list_runs

        key = (status, intent, stalled, q, waits_on, limit, offset)
        with self._lock:
            store = Store(self.store_path)
            try:
                version = store_version(store)
                hit = self._answers.get(key)
                if hit is not None and hit[1] == version and time.monotonic() - hit[0] < LIST_TTL_S:
                    return hit[2]
                cached = _CachedStore(store, self._events)
                page = list_runs(cached, status=status, intent=intent, stalled=stalled, limit=limit, offset=offset, search=q, waits_on=waits_on)
                # Forget runs the store no longer has (never, in practice) and keep the cache bounded.
                while len(self._events) > 50_000:
                    self._events.popitem(last=False)
                self._answers[key] = (time.monotonic(), version, page)
                while len(self._answers) > 64:
                    self._answers.popitem(last=False)
                return page
            finally:
                store.close()

    def intents(self) -> list[str]:
        store = Store(self.store_path)
        try:
            return [r[0] for r in store.db.execute("SELECT DISTINCT intent FROM runs ORDER BY intent").fetchall()]
        finally:
            store.close()


# ---- one run ---------------------------------------------------------------------------------


def run_detail(store: Store, run_id: str, spec) -> dict | None:
    """Everything the run page draws: its view (`report.run_view`), its events, its plans, the
    attempts of each step (for the timeline) and the marks (failures, holds, observations,
    re-plans)."""
    from intento.execute.report import clock_now, run_view
    from intento.execute.state import fold

    row = store.run(run_id)
    if row is None:
        return None
    events = store.events(run_id)
    now, wall = clock_now(store, row)
    view = run_view(row, events, now, store.driver(run_id), wall)
    st = fold(events)
    t0 = st.started_at
    end = max(now, events[-1]["at"] if events else t0) if not st.terminal else (events[-1]["at"] if events else t0)
    plans, attempts, marks, open_ = [], [], [], {}
    for e in events:
        d, at = e["data"], e["at"] - t0
        match e["type"]:
            case "planned":
                plans.append({"n": len(plans) + 1, "at_ms": at, "reason": d.get("reason"), "changes": d.get("changes") or [], "cost": d.get("cost"),
                              "latency_ms": d.get("latency_ms"), "status": d.get("status"), "decision": d.get("decision"), "steps": d.get("steps") or [],
                              "summary": d.get("summary"), "why": d.get("why") or []})
                if len(plans) > 1:
                    marks.append({"kind": "replan", "at_ms": at, "label": f"re-plan #{len(plans)}", "text": d.get("reason") or ""})
            case "step_dispatched":
                a = {"action": d["action"], "provider": d["provider"], "attempt": d.get("attempt"), "start_ms": at, "end_ms": None,
                     "outcome": "running", "compensation": bool(d.get("compensation_for")), "external": bool(d.get("external")), "error": None}
                attempts.append(a)
                open_[(d["action"], d.get("compensation_for"))] = a
            case "step_succeeded" | "step_failed" | "step_timed_out" | "wait_dropped":
                a = open_.pop((d.get("action"), d.get("compensation_for")), None)
                if a is not None:
                    a["end_ms"] = at
                    a["outcome"] = {"step_succeeded": "succeeded", "step_failed": "failed", "step_timed_out": "timed out", "wait_dropped": "dropped"}[e["type"]]
                    a["error"] = d.get("error") or d.get("reason")
                if e["type"] in ("step_failed", "step_timed_out"):
                    marks.append({"kind": "failure", "at_ms": at, "label": f"{d.get('action')} via {d.get('provider')} {a['outcome'] if a else 'failed'}",
                                  "text": d.get("error") or "", "provider": d.get("provider")})
            case "holding":
                until = d.get("until")
                marks.append({"kind": "hold", "at_ms": at, "until_ms": None if until is None else until - t0, "label": "hold", "text": d.get("reason") or ""})
            case "observation":
                what = f"fact {d['fact']}" if d.get("fact") else f"provider {d.get('provider')} {d.get('status')}"
                marks.append({"kind": "observation", "at_ms": at, "label": what, "text": f"from {d.get('source') or 'unknown'}"})
            case "escalated" | "failed" | "cancelled" | "succeeded" | "giving_up":
                marks.append({"kind": "outcome", "at_ms": at, "label": e["type"].replace("_", " "), "text": d.get("reason") or d.get("summary") or ""})
    for a in attempts:
        if a["end_ms"] is None:
            a["end_ms"] = end - t0
    return {
        "row": row, "view": view, "state": st, "events": events, "plans": plans, "attempts": attempts, "marks": marks,
        "end_ms": end - t0, "deadline_ms": None if st.deadline_at is None else st.deadline_at - t0,
    }


def event_summary(e: dict) -> str:
    """One line per event for the run's event table."""
    d = e["data"]
    match e["type"]:
        case "run_started":
            return f"intent {d.get('intent')}" + (f", deadline {d['deadline_ms']} ms" if d.get("deadline_ms") is not None else "") + (f", budget {d['budget']}" if d.get("budget") else "")
        case "planned":
            return f"{d.get('status')}: cost {d.get('cost')}, because {d.get('reason')}" + (f"; changed {', '.join(d['changes'])}" if d.get("changes") else "")
        case "step_dispatched":
            return f"{d.get('action')} via {d.get('provider')} (attempt {d.get('attempt')})" + (" awaiting its fact" if d.get("external") else "")
        case "step_succeeded":
            return f"{d.get('action')} via {d.get('provider')} in {d.get('latency_ms')} ms, cost {d.get('cost')}"
        case "step_failed" | "step_timed_out":
            return f"{d.get('action')} via {d.get('provider')}: {d.get('error') or 'no answer in time'}"
        case "observation":
            return (f"fact {d['fact']}" if d.get("fact") else f"provider {d.get('provider')} {d.get('status')}") + f" (from {d.get('source') or 'unknown'})"
        case "holding":
            return str(d.get("reason") or "")
        case _:
            return str(d.get("reason") or d.get("summary") or d.get("action") or "")


# ---- the audit log ---------------------------------------------------------------------------


class AuditIndex:
    """The audit log's records by run and by decision, and its verification, read again only
    when the file changed (its size or modification time)."""

    def __init__(self, path: Path):
        self.path = path
        self._stamp: tuple | None = None
        self.records: list[dict] = []
        self.by_run: dict[str, list[dict]] = {}
        self.by_decision: dict[str, dict] = {}
        self.verdict = None
        self._lock = threading.Lock()

    def refresh(self) -> "AuditIndex":
        from intento.audit import read_records, verify

        with self._lock:
            try:
                st = self.path.stat()
            except FileNotFoundError:
                self._stamp, self.records, self.by_run, self.by_decision, self.verdict = None, [], {}, {}, None
                return self
            stamp = (st.st_size, st.st_mtime_ns)
            if stamp == self._stamp:
                return self
            records, _, _ = read_records(self.path)
            records = [r for r in records if "__malformed__" not in r]
            by_run: dict[str, list[dict]] = {}
            by_decision: dict[str, dict] = {}
            for r in records:
                if r.get("run"):
                    by_run.setdefault(r["run"], []).append(r)
                if r.get("decision") and r.get("kind") != "cancel":
                    by_decision[r["decision"]] = r
            self.records, self.by_run, self.by_decision = records, by_run, by_decision
            self.verdict = verify(self.path)
            self._stamp = stamp
            return self

    def verified(self, rec: dict) -> bool:
        """Whether the chain is intact up to and including this record."""
        v = self.verdict
        if v is None:
            return False
        if v.ok:
            return True
        return isinstance(rec.get("seq"), int) and v.first_bad_seq is not None and rec["seq"] < v.first_bad_seq


class FullExplanations:
    """A decision's full explanation (counterfactual deltas, policy prices), re-derived by
    planning again from the audit record's inputs, as `audit.replay` does; kept per decision."""

    def __init__(self, spec, size: int = 128):
        self.spec = spec
        self._cache: OrderedDict[str, tuple] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, rec: dict):
        """(Plan, given, state, problem text or None): the re-derived plan, or None and why not."""
        key = rec.get("hash") or rec.get("decision")
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        out = self._derive(rec)
        with self._lock:
            self._cache[key] = out
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return out

    def _derive(self, rec: dict):
        from intento.audit import given_for_replay
        from intento.diagnostics import IntentoError
        from intento.solve import plan_problem, prepare

        spec, intent = self.spec, rec.get("intent")
        if intent not in spec.intents:
            return None, None, None, f"intent `{intent}` is not in this project any more"
        given, unreadable = given_for_replay(spec, intent, rec.get("context") or {})
        if unreadable:
            return None, None, None, unreadable
        inputs = rec.get("inputs") or {}
        try:
            extra = {}
            if inputs:
                extra = {"deadline_ms": inputs.get("deadline_ms"), "budget": Decimal(inputs["budget"]) if inputs.get("budget") is not None else None,
                         "excluded": {(a, p): why for a, p, why in inputs.get("excluded", [])}, "done": inputs.get("done") or {}}
            problem = prepare(spec, intent, given, rec.get("state"), **extra, learned=inputs.get("learned"))
            force = hint = None
            if inputs and not inputs.get("unforced"):
                force, hint = inputs.get("force") or None, inputs.get("hint") or None
            plan = plan_problem(problem, time_limit_s=float(inputs.get("time_limit_s", 10.0)), explain="full", force=force, hint=hint, backend=inputs.get("backend", "cpsat"))
        except IntentoError as e:
            return None, None, None, "; ".join(d.message for d in e.diagnostics)
        except (KeyError, TypeError, ValueError, ArithmeticError, InvalidOperation) as e:
            return None, None, None, f"the record's inputs cannot be read: {e}"
        # What the decision recorded beside the solve (switch times, learned figures) is kept.
        recorded = ((rec.get("plan") or {}).get("explanation") or {})
        if plan.explanation is not None:
            from intento.plan import LearnedFigure, SwitchTime

            plan.explanation.switches = [SwitchTime.model_validate(w) for w in recorded.get("switches") or []]
            plan.explanation.figures = [LearnedFigure.model_validate(f) for f in recorded.get("figures") or []]
        return plan, rec.get("context") or {}, rec.get("state") or {}, None


# ---- policies --------------------------------------------------------------------------------


def policy_rows(spec, audit: AuditIndex, recent: int = 1000, full: "FullExplanations | None" = None, derive: int = 20) -> tuple[list[dict], int, int]:
    """Every policy with its owner, source, the intents it can apply to, and over the last
    ``recent`` decisions: how often it applied, how often it bound (forbade an option that would
    otherwise have been considered, was in an escalation's conflict, or had a non-zero price),
    and its prices. A decision recorded with a basic explanation (runs record those) has no
    prices: with ``full``, the last ``derive`` of them are explained in full again from their
    records' inputs (kept per decision), so recent plans have prices. Returns the rows, the
    number of decisions counted and how many were re-derived."""
    decisions = [r for r in audit.records if r.get("kind") != "cancel" and isinstance(r.get("plan"), dict)][-recent:]
    stats = {name: {"applied": 0, "bound": 0, "prices": [], "intents_seen": set()} for name in spec.policies}
    basic = [i for i, r in enumerate(decisions) if not (r["plan"].get("explanation") or {}).get("prices")]
    rederive = set(basic[-derive:]) if full is not None else set()
    derived = 0
    for i, r in enumerate(decisions):
        exp = (r["plan"].get("explanation") or {})
        if i in rederive:
            plan = full.get(r)[0]
            if plan is not None and plan.explanation is not None:
                exp, derived = plan.explanation.model_dump(mode="json"), derived + 1
        bound = set()
        for st in exp.get("steps") or []:
            for alt in st.get("alternatives") or []:
                if alt.get("reason") == "forbidden":
                    bound |= {b.get("policy") for b in alt.get("by") or []}
        for u in exp.get("unused") or []:
            if u.get("reason") == "forbidden":
                bound |= {b.get("policy") for b in u.get("by") or []}
        bound |= {c.get("policy") for c in exp.get("conflict") or []}
        for pr in exp.get("prices") or []:
            s = stats.get(pr.get("policy"))
            if s is not None:
                s["prices"].append(pr.get("price") or {})
                if pr.get("binding"):
                    bound.add(pr.get("policy"))
        for name in exp.get("applied_policies") or []:
            if name in stats:
                stats[name]["applied"] += 1
                stats[name]["intents_seen"].add(r.get("intent"))
        for name in bound:
            if name in stats:
                stats[name]["bound"] += 1
    rows = []
    for name, p in spec.policies.items():
        s = stats[name]
        can = [i.name for i in spec.intents.values() if set(p.reads) <= set(i.given)]
        rows.append({
            "name": name, "title": p.title, "owner": p.owner, "location": p.span.location if p.span else None,
            "soft": None if p.soft is None else str(p.soft), "when": _text(p.when) if p.when is not None else None,
            "statements": [_text(s_) for s_ in p.statements], "intents": can, "intents_seen": sorted(x for x in s["intents_seen"] if x),
            "applied": s["applied"], "bound": s["bound"], "priced": len(s["prices"]), "price": _mean_price(s["prices"]),
        })
    return rows, len(decisions), derived


def _text(node) -> str:
    span = getattr(node, "span", None)
    if span is None or span.source is None:
        return str(node)
    return span.source.text[span.start : span.end]


def _mean_price(prices: list[dict]) -> dict[str, str]:
    """The mean of each objective term's price over the decisions that recorded one."""
    if not prices:
        return {}
    out = {}
    for k in sorted({k for p in prices for k in p}):
        vals = []
        for p in prices:
            try:
                vals.append(Decimal(str(p.get(k, "0"))))
            except InvalidOperation:
                continue
        if vals:
            m = sum(vals) / len(vals)
            out[k] = f"{m:+.4f}".rstrip("0").rstrip(".") if k != "latency_ms" else f"{int(m):+d}"
    return out


def owners_for(spec, conflict: list[dict]) -> list[str]:
    """The owners of the policies in a minimal conflict: whom to consult about an escalation."""
    return sorted({spec.policies[c["policy"]].owner for c in conflict if c.get("policy") in spec.policies and spec.policies[c["policy"]].owner})


def fmt_ms(ms: Any) -> str:
    from intento.render import _dur

    if ms is None:
        return "-"
    try:
        ms = int(ms)
    except (TypeError, ValueError):
        return str(ms)
    return ("-" + _dur(-ms)) if ms < 0 else _dur(ms)
