"""The console's routes: pages, fragments, the change stream, login and actions.

Input: requests. Output: HTML (Jinja2 templates, autoescaped), SVG drawn on the server, and
server-sent `changed` events on which htmx fetches a fragment again. Actions (observe, cancel,
plan, a policy set's impact, a rollout) are POST forms with a CSRF token; observe, cancel and
rollout take a confirmation page first and then go through the API's own code path
(`validate_observation`, `execute.post`, `execute.rollout.rollout`).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from intento.console._auth import Session, Sessions, cookie_header, safe_next
from intento.console._data import (
    AuditIndex, FullExplanations, RunLister, event_summary, fmt_ms, owners_for, policy_rows, run_detail, store_version,
)
from intento.console._rollout import (
    MAX_CHARS, MAX_FILES, MAX_NAME, MODE_HELP, MODES, TIME_LIMIT_S, check_set, history, mode_outcomes, problems_of, project_slots, read_form,
    rollout_effects, signed, when,
)

HERE = Path(__file__).resolve().parent
PAGE_SIZE = 50
#: A change stream ends after this long (seconds); the browser's EventSource reconnects.
STREAM_S = 300.0
POLL_S = 0.5

_PAGES = ("/", "/login", "/logout", "/policies", "/plan")


def is_console_path(path: str) -> bool:
    """Paths the console answers (and authenticates itself): its pages and `/console/...`."""
    return path in _PAGES or path.startswith(("/runs/", "/console/", "/policies/"))


def _templates():
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["ms"] = fmt_ms
    env.filters["signed"] = signed
    env.filters["when"] = when
    env.filters["signed_ms"] = lambda ms: "-" if ms is None else ("+" if int(ms) > 0 else "") + fmt_ms(ms)
    return env


def markdown_html(text: str) -> str:
    """A decision report (`render.explanation_markdown`) as HTML; raw HTML in it is escaped."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def mount(app: FastAPI, spec, store_path: Path, audit_path: Path, token: str | None, plan_metrics=None) -> None:
    import sqlite3

    from fastapi.staticfiles import StaticFiles

    from intento.errors import OperationalError
    from intento.execute.report import LIST_STATUSES
    from intento.execute.store import TERMINAL, Store

    #: What a store that cannot be read raises: its own errors (`StoreError`), and SQLite's.
    StoreError = (OperationalError, sqlite3.Error)

    sessions = Sessions(token)
    env = _templates()
    lister = RunLister(store_path)
    audit = AuditIndex(audit_path)
    full = FullExplanations(spec)
    app.mount("/console/static", StaticFiles(directory=str(HERE / "static")), name="console-static")

    def render(request: Request, name: str, session: Session | None, status: int = 200, **ctx: Any) -> HTMLResponse:
        cookie = None
        if session is not None and session.via == "open":
            # No authentication: the page still hands out a session, for the CSRF token of its forms.
            cookie = sessions.new_cookie()
            session = Session(cookie.split(".")[0], "cookie")
        html = env.get_template(name).render(request=request, session=session, csrf=sessions.csrf(session) if session else "",
                                             auth=sessions.required, path=request.url.path, **ctx)
        resp = HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                                                               "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'",
                                                               "Referrer-Policy": "same-origin"})
        if cookie:
            resp.headers.append("set-cookie", cookie_header(cookie, request.url.scheme == "https"))
        return resp

    def refuse(request: Request) -> Response:
        """Not logged in: a page goes to the login; a fragment or the stream is refused."""
        if request.url.path.startswith("/console/") or request.headers.get("hx-request"):
            return Response("log in first", status_code=401, media_type="text/plain", headers={"HX-Redirect": "/login", "Cache-Control": "no-store"})
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)

    def forbidden(request: Request, session: Session) -> HTMLResponse:
        return render(request, "error.html", session, status=403, title="Refused",
                      message="this form's CSRF token is missing or wrong", help="go back, reload the page and try again")

    def not_found(request: Request, session: Session, run_id: str) -> HTMLResponse:
        return render(request, "error.html", session, status=404, title="No such run", message=f"there is no run `{run_id}` in this store",
                      help="check the run id, or find the run in the runs list")

    # ---- login ----------------------------------------------------------------------------
    @app.get("/login", include_in_schema=False)
    def login_page(request: Request, next: str = "/"):
        return render(request, "login.html", None, next=safe_next(next), error=None)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request):
        form = await _form(request)
        nxt = safe_next(form.get("next"))
        if not sessions.check_token(form.get("token", "")):
            return render(request, "login.html", None, status=401, next=nxt, error="that token is not the service's token")
        resp = RedirectResponse(nxt, status_code=303)
        resp.headers.append("set-cookie", cookie_header(sessions.new_cookie(), request.url.scheme == "https"))
        return resp

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request):
        session = sessions.session(request)
        if session is None:
            return refuse(request)
        if not sessions.csrf_ok(session, (await _form(request)).get("csrf")):
            return forbidden(request, session)
        resp = RedirectResponse("/login", status_code=303)
        resp.headers.append("set-cookie", cookie_header("", request.url.scheme == "https", clear=True))
        return resp

    # ---- the runs list --------------------------------------------------------------------
    def _filters(request: Request) -> tuple[dict, list[str]]:
        from intento.execute.report import LIST_STATUSES

        q = request.query_params
        problems = []
        status = q.get("status") or None
        if status is not None and status not in LIST_STATUSES:
            problems.append(f"unknown status `{status}`: choose one of {', '.join(LIST_STATUSES)}")
            status = None
        stalled = {"yes": True, "no": False}.get(q.get("stalled") or "")
        try:
            offset = max(0, min(int(q.get("offset") or 0), 10**9))
        except ValueError:
            problems.append("`offset` must be a whole number")
            offset = 0
        f = {"status": status, "intent": (q.get("intent") or None), "stalled": stalled, "q": (q.get("q") or "")[:200] or None,
             "waits_on": (q.get("waits_on") or "")[:300] or None, "offset": offset}
        return f, problems

    def _query(f: dict, **change) -> str:
        g = dict(f, **change)
        keep = {k: ("yes" if v is True else "no" if v is False else v) for k, v in g.items() if v not in (None, "", 0)}
        return urlencode(keep)

    def _runs_ctx(request: Request) -> dict:
        f, problems = _filters(request)
        page = lister.page(status=f["status"], intent=f["intent"], stalled=f["stalled"], q=f["q"], waits_on=f["waits_on"], limit=PAGE_SIZE, offset=f["offset"])
        return {"f": f, "problems": problems, "page": page, "query": _query, "page_size": PAGE_SIZE, "intents": sorted(set(spec.intents) | set(lister.intents())),
                "statuses": LIST_STATUSES, "qs": _query(f)}

    @app.get("/", include_in_schema=False)
    def runs_page(request: Request):
        session = sessions.session(request)
        if session is None:
            return refuse(request)
        return render(request, "runs.html", session, **_runs_ctx(request))

    @app.get("/console/fragments/runs", include_in_schema=False)
    def runs_fragment(request: Request):
        session = sessions.session(request)
        if session is None:
            return refuse(request)
        return render(request, "_runs_table.html", session, **_runs_ctx(request))

    # ---- the change stream ----------------------------------------------------------------
    @app.get("/console/events", include_in_schema=False)
    def changes(request: Request, run: str | None = None):
        session = sessions.session(request)
        if session is None:
            return refuse(request)
        return StreamingResponse(change_stream(store_path, run, stopping=getattr(request.app.state, "stopping", None)), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    # ---- one run --------------------------------------------------------------------------
    def _run_ctx(run_id: str) -> dict | None:
        store = Store(store_path)
        try:
            detail = run_detail(store, run_id, spec)
        finally:
            store.close()
        if detail is None:
            return None
        from intento.console._svg import critical_path, gantt, timeline
        from intento.evaluate import formula_facts

        audit.refresh()
        records = audit.by_run.get(run_id, [])
        current = detail["plans"][-1] if detail["plans"] else None
        requires = {a.name: formula_facts(a.requires) for a in spec.actions.values()}
        achieves = {a.name: set(a.achieves) for a in spec.actions.values()}
        crit = critical_path(current["steps"], requires, achieves) if current else set()
        rec = audit.by_decision.get(current["decision"]) if current and current.get("decision") else None
        explanation = None
        if rec is not None:
            plan, given, state, why_not = full.get(rec)
            explanation = {"recorded": (rec.get("plan") or {}).get("explanation") or {}, "full": plan.explanation.model_dump() if plan else None,
                           "why_not": why_not, "currency": (rec.get("plan") or {}).get("currency") or "", "record": rec}
        outcome = detail["state"].outcome or {}
        conflict = outcome.get("conflict") or []
        return {
            "d": detail, "v": detail["view"], "run_id": run_id, "timeline": timeline(detail),
            "gantt": gantt(current["steps"], crit, f"Current plan (#{current['n']}) as a Gantt chart, critical path highlighted") if current else "",
            "critical": crit, "current": current, "records": [(r, audit.verified(r)) for r in records], "verdict": audit.verdict,
            "explanation": explanation, "conflict": conflict, "owners": owners_for(spec, conflict), "outcome": outcome,
            "event_summary": event_summary, "terminal": detail["state"].terminal, "policies": spec.policies,
        }

    def _observe_choices() -> dict:
        from intento.execute.observe import STATUSES, achieved_facts

        return {"facts": sorted(achieved_facts(spec)), "providers": list(spec.providers), "provider_statuses": STATUSES}

    @app.get("/runs/{run_id}", include_in_schema=False)
    def run_page(request: Request, run_id: str):
        session = sessions.session(request)
        if session is None:
            return refuse(request)
        ctx = _run_ctx(run_id)
        if ctx is None:
            return not_found(request, session, run_id)
        return render(request, "run.html", session, **ctx, **_observe_choices())

    @app.get("/console/fragments/run/{run_id}", include_in_schema=False)
    def run_fragment(request: Request, run_id: str):
        session = sessions.session(request)
        if session is None:
            return refuse(request)
        ctx = _run_ctx(run_id)
        if ctx is None:
            return not_found(request, session, run_id)
        return render(request, "_run_live.html", session, **ctx)

    @app.get("/runs/{run_id}/decisions/{n}", include_in_schema=False)
    def decision_report(request: Request, run_id: str, n: int):
        """The print view of a decision: `explain --format markdown`, as HTML."""
        from intento.render import explanation_markdown

        session = sessions.session(request)
        if session is None:
            return refuse(request)
        audit.refresh()
        rec = audit.by_decision.get(f"{run_id}/plan-{n}")
        if rec is None:
            return render(request, "error.html", session, status=404, title="No such decision", message=f"the audit log has no decision `{run_id}/plan-{n}`",
                          help="the run's page lists its decisions")
        plan, given, state, why_not = full.get(rec)
        if plan is None:
            from intento.plan import Plan

            plan = Plan.model_validate(rec["plan"])
            given = rec.get("context") or {}
        report = markdown_html(explanation_markdown(plan, spec, given, state))
        return render(request, "report.html", session, report=report, run_id=run_id, n=n, rec=rec, why_not=why_not, verified=audit.verified(rec))

    async def _action(request: Request, run_id: str):
        session = sessions.session(request)
        if session is None:
            return None, None, None, refuse(request)
        form = await _form(request)
        if not sessions.csrf_ok(session, form.get("csrf")):
            return session, form, None, forbidden(request, session)
        store = Store(store_path)
        row = store.run(run_id)
        store.close()
        if row is None:
            return session, form, None, not_found(request, session, run_id)
        return session, form, row, None

    @app.post("/runs/{run_id}/observe", include_in_schema=False)
    async def observe(request: Request, run_id: str):
        from intento.execute import post
        from intento.execute.observe import validate_observation

        session, form, row, refused = await _action(request, run_id)
        if refused is not None:
            return refused
        data: dict[str, Any] = {}
        if form.get("kind") == "provider":
            data = {"provider": form.get("provider") or None, "status": form.get("status") or None}
            if form.get("latency"):
                from intento.values import parse_duration

                d = parse_duration(form["latency"].strip())
                data["latency"] = d.ms if d is not None else -1
        else:
            data = {"fact": form.get("fact") or None}
        data = {k: v for k, v in data.items() if v is not None}
        problem = validate_observation(data, row, spec)
        if problem is not None:
            return render(request, "error.html", session, status=409 if problem.code == "run_finished" else 422, title="Observation refused",
                          message=problem.message, help=problem.help, back=f"/runs/{run_id}")
        what = f"fact `{data['fact']}`" if "fact" in data else f"provider `{data['provider']}` {data['status']}" + (f" ({data['latency']} ms)" if "latency" in data else "")
        if form.get("confirmed") != "yes":
            return render(request, "confirm.html", session, title="Confirm the observation", action=f"/runs/{run_id}/observe", run_id=run_id,
                          question=f"Tell run {run_id} that {what} was observed? It records the observation and re-plans.", fields=form, button="Observe")
        store = Store(store_path)
        try:
            post(store, run_id, data | {"source": "console"})
        finally:
            store.close()
        return render(request, "done.html", session, title="Observation sent", message=f"{what} was sent to run {run_id}; its executor records it and re-plans.", run_id=run_id)

    @app.post("/runs/{run_id}/cancel", include_in_schema=False)
    async def cancel(request: Request, run_id: str):
        from intento.execute import post

        session, form, row, refused = await _action(request, run_id)
        if refused is not None:
            return refused
        if row["status"] in TERMINAL:
            return render(request, "error.html", session, status=409, title="Cancel refused", message=f"run `{run_id}` has already finished (`{row['status']}`)",
                          help="only a run still in progress can be cancelled", back=f"/runs/{run_id}")
        reason = (form.get("reason") or "").strip()[:1000] or "no reason given"
        if form.get("confirmed") != "yes":
            return render(request, "confirm.html", session, title="Confirm the cancellation", action=f"/runs/{run_id}/cancel", run_id=run_id,
                          question=f"Cancel run {run_id} because “{reason}”? Its waits are dropped, steps in flight awaited and completed steps undone in reverse order.",
                          fields=dict(form, reason=reason), button="Cancel the run", danger=True)
        store = Store(store_path)
        try:
            post(store, run_id, {"cancel": {"reason": reason, "by": "console"}, "source": "console"})
        finally:
            store.close()
        return render(request, "done.html", session, title="Cancellation sent", message=f"run {run_id} is being cancelled: {reason}", run_id=run_id)

    # ---- policies -------------------------------------------------------------------------
    @app.get("/policies", include_in_schema=False)
    def policies(request: Request):
        session = sessions.session(request)
        if session is None:
            return refuse(request)
        audit.refresh()
        rows, decisions, derived = policy_rows(spec, audit, full=full)
        return render(request, "policies.html", session, rows=rows, decisions=decisions, derived=derived, currency=spec.currency or "")

    # ---- plans without runs ---------------------------------------------------------------
    @app.get("/plan", include_in_schema=False)
    def plan_page(request: Request):
        session = sessions.session(request)
        if session is None:
            return refuse(request)
        first = next(iter(spec.intents), "")
        return render(request, "plan.html", session, intents=list(spec.intents), form={"intent": first, "given": "{}", "state": "", "why_not": ""}, errors=[], report=None)

    @app.post("/plan", include_in_schema=False)
    async def plan_post(request: Request):
        from intento.audit import AuditLog
        from intento.diagnostics import IntentoError
        from intento.render import explanation_markdown
        from intento.request import load_json
        from intento.solve import plan_problem, prepare
        from intento.whynot import answer, parse_questions, why_not_markdown

        session = sessions.session(request)
        if session is None:
            return refuse(request)
        form = await _form(request)
        if not sessions.csrf_ok(session, form.get("csrf")):
            return forbidden(request, session)
        intent = form.get("intent", "")
        ctx = {"intents": list(spec.intents), "form": form, "report": None}
        errors: list[dict] = []
        if intent not in spec.intents:
            from intento.diagnostics import did_you_mean

            errors.append({"where": "intent", "text": f"unknown intent `{intent}`" + (f"; {did_you_mean(intent, spec.intents)}" if did_you_mean(intent, spec.intents) else "")})
        parsed = {}
        for field in ("given", "state"):
            text = form.get(field, "").strip()
            if not text:
                parsed[field] = (None, None)
                continue
            data, src, diags = load_json(text, field)
            if diags:
                errors += [{"where": field, "text": d.render()} for d in diags]
            elif not isinstance(data, dict):
                errors.append({"where": field, "text": f"{field}:1:1: the {field} must be a JSON object like {{\"name\": value}}"})
            parsed[field] = (data, src)
        if errors:
            return render(request, "plan.html", session, status=422, errors=errors, **ctx)
        asked = [line.strip() for line in form.get("why_not", "").splitlines() if line.strip()]
        try:
            problem = prepare(spec, intent, parsed["given"][0], parsed["state"][0], given_source=parsed["given"][1], state_source=parsed["state"][1])
            questions = parse_questions(problem, asked) if asked else None
            t0 = time.perf_counter()
            result = await asyncio.to_thread(plan_problem, problem, time_limit_s=10.0, explain="full")
            if plan_metrics is not None:
                plan_metrics(result.status, time.perf_counter() - t0)
            why = await asyncio.to_thread(answer, problem, result, questions, time_limit_s=10.0) if questions else None
        except IntentoError as e:
            errs = [{"where": (d.span.source.name if d.span else "request"), "text": d.render()} for d in e.diagnostics]
            return render(request, "plan.html", session, status=422, errors=errs, **ctx)
        # Audited as every decision of the service is (`POST /v1/plan` too).
        AuditLog(audit_path).append(spec, intent, dict(problem.context), problem.state.model.model_dump(mode="json", exclude_none=True), result, reason="console /plan request")
        text = explanation_markdown(result, spec, parsed["given"][0], parsed["state"][0])
        report = markdown_html(text + ("\n" + why_not_markdown(why) if why is not None else ""))
        return render(request, "plan.html", session, errors=[], **dict(ctx, report=report, status_text=result.status))

    # ---- policy rollouts ------------------------------------------------------------------
    # A policy set is typed into the page (a file name and a textarea per file), assessed with
    # `execute.rollout.impact` and rolled out with `execute.rollout.rollout`, as the API does.
    def _rollout_ctx(f: dict, **more) -> dict:
        slots = f["slots"] or [{"name": "policies.intent", "text": ""}]
        return {"f": dict(f, slots=slots), "modes": MODES, "mode_help": MODE_HELP, "max_files": MAX_FILES, "max_chars": MAX_CHARS,
                "max_name": MAX_NAME, "problems": [], "diagnostics": [], "report": None, "outcomes": None, "currency": spec.currency or "",
                "new_version": None, "set_hash": None} | more

    def _store_call(fn, *args, **kwargs):
        """``fn(store, ...)`` on a store of its own, closed after (for a worker thread)."""
        store = Store(store_path)
        try:
            return fn(store, *args, **kwargs)
        finally:
            store.close()

    def _store_refused(request: Request, session: Session, e: Exception) -> HTMLResponse:
        return render(request, "error.html", session, status=503, title="The store cannot be read", message=str(e),
                      help="try again in a moment; `GET /readyz` says whether the store answers", back="/policies/rollout")

    async def _policy_form(request: Request, need_mode: bool):
        """(session, form, read form, policy set, this project with it, None), or a page to
        answer with instead as the last item: refused, a wrong CSRF token, the form's problems or
        the set's diagnostics (or the form again with one more file, for its "add" button)."""
        session = sessions.session(request)
        if session is None:
            return None, None, None, None, None, refuse(request)
        form = await _form(request)
        if not sessions.csrf_ok(session, form.get("csrf")):
            return session, form, None, None, None, forbidden(request, session)
        f = read_form(form)
        if form.get("add"):  # one more file on the form; nothing is assessed
            if len(f["slots"]) >= MAX_FILES:
                return session, form, f, None, None, render(request, "rollout.html", session, status=422,
                                                      **_rollout_ctx(f, problems=[f"a policy set has at most {MAX_FILES} files here"]))
            f["slots"] = (f["slots"] or [{"name": "policies.intent", "text": ""}]) + [{"name": f"policies-{len(f['slots']) + 1}.intent", "text": ""}]
            return session, form, f, None, None, render(request, "rollout.html", session, **_rollout_ctx(f))
        problems, status = problems_of(f, need_mode=need_mode)
        if problems:
            return session, form, f, None, None, render(request, "rollout.html", session, status=status, **_rollout_ctx(f, problems=problems))
        policies, new_spec, diags = await asyncio.to_thread(check_set, spec, f["slots"])
        if diags:
            return session, form, f, None, None, render(request, "rollout.html", session, status=422, **_rollout_ctx(f, diagnostics=diags))
        return session, form, f, policies, new_spec, None

    @app.get("/policies/rollout", include_in_schema=False)
    def rollout_page(request: Request, start: str | None = Query(None, alias="from")):
        """The form; ``?from=project`` fills it with this project's policies, ``?from=N`` with rollout N's set."""
        session = sessions.session(request)
        if session is None:
            return refuse(request)
        f = read_form({})
        problems = []
        if start == "project":
            f["slots"] = project_slots(spec)
        elif start:
            seq = int(start) if start.isdigit() and len(start) < 12 else None
            try:
                r = _store_call(lambda st: st.rollout(seq)) if seq is not None else None
            except StoreError as e:
                return _store_refused(request, session, e)
            if r is None:
                problems.append(f"there is no rollout `{start[:20]}` on this store to start from (`from=project`, or a rollout's number)")
            else:
                f["slots"] = [{"name": p["name"], "text": p["text"]} for p in r["policies"]]
                f["label"] = r["label"] or ""
        return render(request, "rollout.html", session, status=404 if problems else 200, **_rollout_ctx(f, problems=problems))

    @app.post("/policies/rollout/impact", include_in_schema=False)
    async def rollout_impact(request: Request):
        from intento.execute.rollout import impact
        from intento.versions import texts_hash, version_of

        session, _, f, policies, new_spec, page = await _policy_form(request, need_mode=False)
        if page is not None:
            return page
        try:
            report = await asyncio.to_thread(_store_call, impact, policies, f["label"] or None, time_limit_s=TIME_LIMIT_S)
        except StoreError as e:
            return _store_refused(request, session, e)
        return render(request, "rollout.html", session, **_rollout_ctx(f, report=report, outcomes=mode_outcomes(report),
                      new_version=version_of(new_spec, f["label"] or None), set_hash=texts_hash(policies)))

    @app.post("/policies/rollout", include_in_schema=False)
    async def rollout_post(request: Request):
        from intento.execute.rollout import rollout
        from intento.versions import texts_hash

        session, form, f, policies, _, page = await _policy_form(request, need_mode=True)
        if page is not None:
            return page
        try:
            last = await asyncio.to_thread(_store_call, lambda st: st.last_rollout_seq())
        except StoreError as e:
            return _store_refused(request, session, e)
        if form.get("confirmed") == "yes" and form.get("after") == str(last):
            who = f"{f['by']} (console)" if f["by"] else "console" + (f" ({request.client.host})" if request.client else "")
            try:
                seq, report = await asyncio.to_thread(_store_call, rollout, policies, f["mode"], f["label"] or None, who, TIME_LIMIT_S)
            except StoreError as e:
                return _store_refused(request, session, e)
            return render(request, "rollout_done.html", session, seq=seq, mode=f["mode"], label=f["label"], by=who, report=report,
                          currency=spec.currency or "", set_hash=texts_hash(policies), files=[p["name"] for p in policies], mode_help=MODE_HELP)
        if form.get("confirmed") == "yes":
            return render(request, "error.html", session, status=409, title="Rollout not recorded",
                          message=(f"rollout {last} was recorded since this confirmation was asked for"
                                   if form.get("after", "").isdigit() and int(form["after"]) < last
                                   else f"this confirmation does not match the store's rollouts (the latest is rollout {last})"),
                          help="assess the policy set's impact again, then roll it out", back="/policies/rollout")
        label = f" labelled “{f['label']}”" if f["label"] else ""
        fields = {k: v for k, v in form.items() if not k.startswith(("name-", "text-"))}
        for i, p in enumerate(f["slots"]):
            fields[f"name-{i}"], fields[f"text-{i}"] = p["name"], p["text"]
        return render(request, "confirm.html", session, title="Confirm the rollout", action="/policies/rollout", back_action="/policies/rollout/impact",
                      question=f"Roll out the policy set {texts_hash(policies)[:12]}{label} with mode {f['mode']}? "
                               f"New runs start on it from now on; {MODE_HELP[f['mode']]}.",
                      items=[f"{p['name']} ({len(p['text'].splitlines())} lines)" for p in policies],
                      fields=dict(fields, after=str(last)), button="Roll out", danger=f["mode"] != "new-runs")

    @app.get("/policies/rollouts", include_in_schema=False)
    def rollouts_page(request: Request):
        session = sessions.session(request)
        if session is None:
            return refuse(request)
        try:
            h = _store_call(history, spec)
        except StoreError as e:
            return _store_refused(request, session, e)
        return render(request, "rollouts.html", session, **h, mode_help=MODE_HELP)

    @app.get("/policies/rollouts/{seq}", include_in_schema=False)
    def rollout_detail(request: Request, seq: str):
        session = sessions.session(request)
        if session is None:
            return refuse(request)
        n = int(seq) if seq.isdigit() and len(seq) < 12 else None
        try:
            r, effects = _store_call(lambda st: (st.rollout(n), rollout_effects(st, n))) if n is not None else (None, {})
        except StoreError as e:
            return _store_refused(request, session, e)
        if r is None:
            return render(request, "error.html", session, status=404, title="No such rollout", message=f"there is no rollout `{seq[:20]}` on this store",
                          help="the rollout history lists them", back="/policies/rollouts")
        return render(request, "rollout_detail.html", session, r=r, report=r["report"] or {}, effects=effects, currency=spec.currency or "",
                      mode_help=MODE_HELP)


async def change_stream(store_path: Path, run: str | None = None, poll_s: float = POLL_S, max_s: float = STREAM_S, stopping=None):
    """Server-sent events: `changed` each time the store (or one run, with ``run``) changed,
    polled every ``poll_s`` (a short read in a thread), for at most ``max_s`` seconds, or until
    ``stopping`` (a `threading.Event`: the server stops) is set."""
    from intento.execute.store import Store

    store = await asyncio.to_thread(Store, store_path)

    def version():
        if run is None:
            return store_version(store)
        row = store.db.execute("SELECT COALESCE(MAX(seq), 0) FROM events WHERE run = ?", (run,)).fetchone()
        inbox = store.db.execute("SELECT COALESCE(MAX(id), 0) FROM inbox WHERE run = ?", (run,)).fetchone()
        return row[0], inbox[0]

    try:
        last = await asyncio.to_thread(version)
        yield f"retry: 2000\nevent: hello\ndata: {json.dumps(list(last))}\n\n"
        start = quiet = time.monotonic()
        while time.monotonic() - start < max_s and not (stopping is not None and stopping.is_set()):
            await asyncio.sleep(poll_s)
            now = await asyncio.to_thread(version)
            if now != last:
                last = now
                quiet = time.monotonic()
                yield f"event: changed\ndata: {json.dumps(list(now))}\n\n"
            elif time.monotonic() - quiet > 15:
                quiet = time.monotonic()
                yield ": quiet\n\n"
    finally:
        store.close()
