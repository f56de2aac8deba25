"""The FastAPI application behind `intento serve`.

Input: a checked project, a store path, options. Output: an ASGI app. Runs started over HTTP are
driven by a background thread each (simulated when the service was started with a scenario, else
through the registered handlers); their state is always read back from the store.
"""

from __future__ import annotations

import hmac
import logging
import json
import os
import threading
import time
import contextlib
from pathlib import Path
from typing import Literal, Any

from fastapi import FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from pydantic import BaseModel, ConfigDict, Field

from intento import __version__
from intento.console import is_console_path, mount as mount_console
from intento.diagnostics import IntentoError
from intento.errors import OperationalError
from intento.execute.executor import KeyReused
from intento.logs import run_event_logger
from intento.tracing import Tracer, compose
from intento.plan import Explanation, Plan
from intento.spec import Spec

#: Largest request body accepted (bytes); larger ones are answered 413.
MAX_BODY = 1_000_000
#: Seconds a client has to send a whole request body (a slow client is cut off with 408).
BODY_TIMEOUT_S = 10.0


class BoundedBody:
    """ASGI middleware: every request body is read here first, whatever its framing (a declared
    length or `Transfer-Encoding: chunked`), and refused past `max_body` bytes (413) or past
    `timeout_s` seconds (408), before the application sees a byte of it. The body is then
    handed on as one message, so no later reader can be made to hold more."""

    def __init__(self, app, max_body: int = MAX_BODY, timeout_s: float = BODY_TIMEOUT_S):
        self.app, self.max_body, self.timeout_s = app, max_body, timeout_s

    async def __call__(self, scope, receive, send):
        import asyncio

        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            return await _send_error(send, 413, "too_large", f"request body over {self.max_body} bytes")  # before a byte is read
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        body = bytearray()
        while True:
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.001, deadline - loop.time()))
            except asyncio.TimeoutError:
                return await _send_error(send, 408, "too_slow", f"the request body did not arrive within {self.timeout_s:g} s")
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > self.max_body:
                return await _send_error(send, 413, "too_large", f"request body over {self.max_body} bytes")
            if not message.get("more_body", False):
                break
        pending = [{"type": "http.request", "body": bytes(body), "more_body": False}]

        async def replay():
            return pending.pop() if pending else await receive()

        return await self.app(scope, replay, send)


#: Every error is an RFC 9457 problem document of this media type.
PROBLEM_TYPE = "application/problem+json"


def problem(status: int, code: str, message: str, diagnostics: list | None = None, instance: str | None = None) -> dict[str, Any]:
    """An RFC 9457 problem: `type` names the problem (`urn:intento:problem:CODE`), `title` says it
    in words, `status` and `detail` as the RFC says; `code` and `diagnostics` (intento's located
    diagnostics, or the schema problems of a body) are extension members."""
    body: dict[str, Any] = {"type": f"urn:intento:problem:{code}", "title": code.replace("_", " ").capitalize(), "status": status, "detail": message, "code": code}
    if instance:
        body["instance"] = instance
    if diagnostics:
        body["diagnostics"] = diagnostics
    return body


async def _send_error(send, status: int, code: str, message: str) -> None:
    payload = json.dumps(problem(status, code, message)).encode()
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", PROBLEM_TYPE.encode()), (b"content-length", str(len(payload)).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": payload})
#: Upper bound on the per-request solver time limit a caller may ask for.
MAX_TIME_LIMIT_S = 30.0


class PlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    intent: str = Field(description="the intent to plan")
    given: dict[str, Any] = Field(default_factory=dict, description="the `given` values, by dotted name")
    state: dict[str, Any] | None = Field(None, description="the observed state (facts, providers, at)")
    time_limit_s: float = Field(10.0, gt=0, le=MAX_TIME_LIMIT_S, description="solver time limit for this request")
    explain: str = Field("basic", pattern="^(none|basic|full)$", description="explanation level")
    max_questions: int | None = Field(None, ge=0, le=100_000, description="with `explain: full`, at most this many counterfactual solves (the explanation is then marked partial: `truncated_reason: max_questions`)")


class WhyNotRequest(PlanRequest):
    questions: list[str] = Field(min_length=1, max_length=20, description="`ACTION via PROVIDER`, `use ACTION` or `no ACTION`: one combined demand (docs/explanations.md, \"Why not X?\")")


class CheckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sources: dict[str, str] = Field(description="file name -> `.intent` source text", max_length=200)


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    intent: str
    given: dict[str, Any] = Field(default_factory=dict)
    state: dict[str, Any] | None = None


class Observation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fact: str | None = Field(None, description="a fact observed true")
    provider: str | None = Field(None, description="a provider whose status was observed")
    status: str | None = Field(None, pattern="^(up|degraded|down)$")
    latency: int | None = Field(None, ge=1, description="degraded: the observed latency in ms")


class Problem(BaseModel):
    """Every error answer (RFC 9457, `application/problem+json`)."""

    type: str = Field(description="`urn:intento:problem:CODE`")
    title: str = Field(description="the problem in a few words")
    status: int = Field(description="the HTTP status")
    detail: str = Field(description="what went wrong, for this request")
    code: str = Field(description="intento's code for the problem (docs/api.md)")
    instance: str | None = Field(None, description="the request's path")
    diagnostics: list[dict[str, Any]] | None = Field(None, description="located diagnostics (E1xx) or the body's schema problems")


#: Error answers every route may give (and which of them only some routes give).
_COMMON_ERRORS = {400: "the body is not JSON", 401: "missing or wrong bearer token", 408: "the body came too slowly", 413: "the body is over 1 MB", 422: "the request is invalid", 503: "the store or the audit log cannot be used"}
_RUN_ERRORS = {404: "no such run", 409: "the run has finished, or the service cannot run steps"}
#: Paths anyone may ask, token or not.
OPEN_PATHS = ("/healthz", "/livez", "/readyz")


def _openapi(app: FastAPI) -> dict:
    """The OpenAPI document as the service really answers: every error body a `Problem` (of
    media type `application/problem+json`), the bearer scheme, open health paths."""
    from fastapi.openapi.utils import get_openapi

    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer", "description": "INTENTO_TOKEN (docs/api.md)"}}
    doc["security"] = [{"bearer": []}]
    ref = {PROBLEM_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, methods in doc.get("paths", {}).items():
        for op in methods.values():
            responses = op.setdefault("responses", {})
            errors = dict(_COMMON_ERRORS)
            if path.startswith("/v1/runs"):
                errors |= _RUN_ERRORS
            if path in OPEN_PATHS:
                op["security"] = []
                errors = {}
            for status, text in errors.items():
                responses[str(status)] = {"description": text, "content": ref}
            if "401" in responses:
                responses["401"]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}, "description": 'Bearer realm="intento"'}}
    return doc


def _offline_docs(app: FastAPI) -> None:
    """`/docs`: Swagger UI from the files the `swagger-ui-bundle` package ships (no CDN: it works
    offline), over `/openapi.json`."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:  # the `server` extra installs it; without it there is no /docs page
        return
    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> Any:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="intento API", swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs/assets/swagger-ui.css", swagger_favicon_url="/docs/assets/favicon-32x32.png")


class PolicySetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policies: dict[str, str] = Field(description="the policy set: file name -> `.intent` text holding only policies (and their tests)", min_length=1, max_length=200)
    time_limit_s: float = Field(10.0, gt=0, le=60, description="seconds per solve")


class RolloutRequest(PolicySetRequest):
    mode: Literal["new-runs", "migrate", "migrate-if-feasible"] = Field(description="docs/executor.md, \"Policy versions\"")
    label: str | None = Field(None, max_length=200, description="a name for the version")
    by: str | None = Field(None, max_length=200, description="who rolls it out (default: `api` and the client's address)")


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("no reason given", max_length=1000, description="why the run is cancelled (recorded in its log and outcome)")


def _error(status: int, code: str, message: str, diagnostics: list | None = None, headers: dict | None = None) -> JSONResponse:
    if status == 401:
        headers = dict(headers or {}, **{"WWW-Authenticate": 'Bearer realm="intento"'})
    return JSONResponse(problem(status, code, message, diagnostics), status_code=status, media_type=PROBLEM_TYPE, headers=headers)


def create_app(
    spec: Spec, store_path: str | Path, *, scenario=None, registry=None, token: str | None = None, max_body: int = MAX_BODY,
    client_timeout_s: float = BODY_TIMEOUT_S, workers: int = 16, tracer_provider=None, learning=None, switch_margin: float | None = None,
) -> FastAPI:
    from intento.audit import AuditLog, read_records, verify
    from intento.execute import Store, post
    from intento.execute.report import store_status
    from intento.solve import plan_problem, prepare

    from intento.execute.world import World

    store_path = Path(store_path)
    audit_path = store_path.with_name(store_path.name + ".audit.jsonl")
    Store(store_path).close()  # create and migrate once, up front
    from intento.service.metrics import Metrics

    metrics = Metrics(store_path)
    # One engine drives every unfinished run of the store (started with the app, stopped with
    # it): runs started here, runs a previous process left, runs a dead engine held.
    world = None
    if scenario is not None or registry is not None:
        journal = store_path.with_name(store_path.name + ".journal.jsonl") if scenario is not None else None
        world = World(spec, store_path, scenario=scenario, registry=registry, journal=journal, workers=workers,
                      progress=compose(run_event_logger(), Tracer(tracer_provider).hook if tracer_provider is not None else None), plan_observer=lambda status, seconds: metrics.observe_plan(status, seconds, "run"), learning=learning,
                      switch_margin=switch_margin)
    engine_box: dict[str, Any] = {}
    # `token=""` is an explicit choice of no authentication (`intento serve --no-auth`); None
    # reads INTENTO_TOKEN, where an empty value is refused rather than read as "no auth".
    token = token if token is not None else os.environ.get("INTENTO_TOKEN")
    if token is not None and token != "" and not token.strip():
        raise ValueError("the bearer token is blank")
    if token is None or token == "":
        token = None
    @contextlib.asynccontextmanager
    async def lifespan(app_: FastAPI):
        if world is not None:
            engine = world.engine(Store(store_path))
            thread = threading.Thread(target=engine.run, name="intento-engine", daemon=True)
            engine_box["engine"], engine_box["thread"] = engine, thread
            thread.start()
        try:
            yield
        finally:
            if "engine" in engine_box:
                engine_box["engine"].stop()
                engine_box["thread"].join(timeout=30)
                world.close()

    app = FastAPI(title="intento", version=__version__, description="Intent-driven orchestration: plan, explain, run and audit intents.", lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    #: Set when the server stops (`intento serve` on SIGTERM/SIGINT): streams of events end at
    #: their next poll instead of holding the shutdown.
    app.state.stopping = threading.Event()
    _offline_docs(app)

    request_log = logging.getLogger("intento.http")

    @app.middleware("http")
    async def guard(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > max_body):
            return _error(413, "too_large", f"request body over {max_body} bytes")
        if token and request.url.path not in OPEN_PATHS and not is_console_path(request.url.path):
            # The console's pages authenticate themselves (a login cookie or the bearer header).
            auth = request.headers.get("authorization", "")
            if not hmac.compare_digest(auth.encode(), f"Bearer {token}".encode()):
                return _error(401, "unauthorized", "missing or wrong bearer token")
        return await call_next(request)

    @app.middleware("http")  # outermost: every answer is logged, refusals too
    async def logged(request: Request, call_next):
        t0 = time.perf_counter()
        response = await call_next(request)
        request_log.info("%s %s %s", request.method, request.url.path, response.status_code, extra={"fields": {
            "method": request.method, "path": request.url.path, "status": response.status_code, "ms": round((time.perf_counter() - t0) * 1000, 1)}})
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            where = [{"where": ".".join(str(x) for x in e["loc"]), "message": e["msg"]} for e in exc.errors() if e.get("type") == "json_invalid"]
            return _error(400, "malformed_body", "the request body is not valid JSON", where[:1])
        problems = [{"where": ".".join(str(x) for x in e["loc"]), "message": e["msg"]} for e in exc.errors()[:20]]
        return _error(422, "invalid_request", "the request body does not match its schema", problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        # Starlette's own refusals (a body that is not JSON at all, an unknown path, a wrong
        # method) answer in the same shape as every other error, never {"detail": ...}.
        if exc.status_code == 400:
            return _error(400, "malformed_body", "the request body is not valid JSON (bad UTF-8 or syntax, or a number too long to read)")
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        response = _error(exc.status_code, code, message)
        for k, v in (exc.headers or {}).items():
            response.headers[k] = v
        return response

    @app.exception_handler(OperationalError)
    async def unavailable(request: Request, exc: OperationalError):
        # The store or the audit log cannot be used (a full disk, a read-only file): the request
        # is not carried out, and says why; nothing already recorded is lost.
        return _error(503, "unavailable", str(exc))

    @app.exception_handler(IntentoError)
    async def bad_input(request: Request, exc: IntentoError):
        diags = [d.to_model().model_dump() for d in exc.diagnostics]
        return _error(422, "invalid_input", exc.diagnostics[0].message if exc.diagnostics else "invalid input", diags)

    def _plan(req: PlanRequest, source: str = "POST /v1/plan") -> Plan:
        problem = prepare(spec, req.intent, req.given, req.state)
        t0 = time.perf_counter()
        result = plan_problem(problem, time_limit_s=req.time_limit_s, explain=req.explain, max_questions=req.max_questions)
        metrics.observe_plan(result.status, time.perf_counter() - t0)
        # Every decision is audited, as `intento plan --audit` does: STORE.audit.jsonl, with
        # secret given values as keyed hashes.
        AuditLog(audit_path).append(spec, req.intent, dict(problem.context), problem.state.model.model_dump(mode="json", exclude_none=True), result, reason=f"{source} request")
        return result

    @app.get("/healthz")
    def healthz() -> dict:
        return {"ok": True, "version": __version__, "project": spec.fingerprint}

    @app.get("/livez")
    def livez() -> dict:
        """The process answers (never needs the token)."""
        return {"ok": True}

    @app.get("/readyz")
    def readyz() -> Any:
        """Ready to work: the store is writable and, when the service runs steps, its engine is
        running. 503 with the reasons otherwise (never needs the token)."""
        problems = []
        try:
            store = Store(store_path)
            try:
                store.db.execute("BEGIN IMMEDIATE")
                store.db.execute("ROLLBACK")
            finally:
                store.close()
        except Exception as e:
            problems.append(f"the store is not writable: {e}")
        thread = engine_box.get("thread")
        if world is not None and (thread is None or not thread.is_alive()):
            problems.append("the engine is not running")
        if problems:
            return JSONResponse({"ok": False, "problems": problems}, status_code=503)
        return {"ok": True, "engine": world is not None}

    @app.post("/v1/plan", response_model=Plan)
    def plan(req: PlanRequest) -> Plan:
        """Plan a request: the optimal steps, or `infeasible` with a minimal conflict."""
        return _plan(req)

    @app.post("/v1/explain", response_model=Explanation)
    def explain(req: PlanRequest) -> Explanation:
        """Plan with a full explanation (counterfactuals and policy prices) and return it."""
        req.explain = "full"
        return _plan(req, "POST /v1/explain").explanation

    @app.post("/v1/why-not")
    def why_not_(req: WhyNotRequest) -> Any:
        """Why not X? The base plan, and the best plan under the demand with its delta against
        it, or the minimal conflict that forbids the demand (the same as `intento explain
        --why-not`). A question that cannot be read or names nothing of the project is a 422."""
        from intento.whynot import answer, parse_questions

        problem = prepare(spec, req.intent, req.given, req.state)
        questions = parse_questions(problem, req.questions)
        req.explain = "full"
        base = _plan(req, "POST /v1/why-not")
        return answer(problem, base, questions, time_limit_s=req.time_limit_s).model_dump(mode="json")

    @app.post("/v1/check")
    def check(req: CheckRequest) -> dict:
        """Check `.intent` sources; the diagnostics are the same as `intento check --format json`."""
        from intento.check import check_sources
        from intento.diagnostics import Source

        result = check_sources([Source(name, text) for name, text in req.sources.items()])
        diags = [d.to_model().model_dump() for d in result.diagnostics]
        body = {"ok": result.ok, "errors": result.error_count, "warnings": result.warning_count, "diagnostics": diags}
        if result.truncated:
            body |= {"truncated": True, "shown": len(diags)}  # as `intento check --format json`
        return body

    @app.post("/v1/runs", status_code=202)
    def start_run(req: RunRequest, idempotency_key: str | None = Header(None, max_length=200)) -> dict:
        """Start a run; the service's engine drives it. The same `Idempotency-Key` never creates
        two runs; used again with a different request it is refused (422)."""
        if world is None:
            return _error(409, "no_world", "this service was started without handlers or a simulation scenario, so it cannot run steps")
        store = Store(store_path)
        try:
            run_id, created = world.executor(store).create(req.intent, req.given, req.state, idempotency_key)
        except KeyReused as e:
            return _error(422, "idempotency_key_reused", str(e))
        finally:
            store.close()
        if created and "engine" in engine_box:
            engine_box["engine"].notify_new(run_id)
        return {"run": run_id, "created": created}

    @app.get("/v1/runs")
    def list_runs_(
        status: str | None = Query(None, description="running, holding, giving_up, succeeded, escalated, cancelled or failed"),
        intent: str | None = Query(None, max_length=200),
        stalled: bool | None = Query(None),
        limit: int = Query(100, ge=1, le=1000),
        cursor: str | None = Query(None, max_length=40, description="`next_cursor` of the previous page"),
    ) -> Any:
        """Runs, escalated, stalled and at-risk first, and how many unfinished runs wait where."""
        from intento.execute.report import LIST_STATUSES, list_runs

        if status is not None and status not in LIST_STATUSES:
            return _error(422, "invalid_status", f"status must be one of {', '.join(LIST_STATUSES)}")
        offset = 0
        if cursor is not None:
            if not cursor.isdigit() or len(cursor) > 9:
                return _error(422, "invalid_cursor", "cursor must be the `next_cursor` of a previous page")
            offset = int(cursor)
        store = Store(store_path)
        try:
            page = list_runs(store, status=status, intent=intent, stalled=stalled, limit=limit, offset=offset)
        finally:
            store.close()
        nxt = page.pop("next_offset")
        return page | {"next_cursor": None if nxt is None else str(nxt)}

    @app.post("/v1/runs/{run_id}/cancel", status_code=202)
    def cancel_run(run_id: str, req: CancelRequest, request: Request) -> Any:
        """Cancel a run: waits dropped, steps in flight awaited, completed steps compensated in
        reverse order; it ends `cancelled` with the reason and who asked."""
        from intento.execute.store import TERMINAL

        store, row = _open_run(run_id)
        if store is None:
            return _error(404, "not_found", f"no run `{run_id}`")
        try:
            if row["status"] in TERMINAL:
                return _error(409, "run_finished", f"run {run_id} has already finished ({row['status']})")
            who = "api" + (f" ({request.client.host})" if request.client else "")
            post(store, run_id, {"cancel": {"reason": req.reason, "by": who}, "source": "api"})
        finally:
            store.close()
        return {"queued": True}

    @app.get("/v1/runs/{run_id}/events")
    def run_events(run_id: str, last_event_id: str | None = Header(None, max_length=20)) -> Any:
        """The run's events as Server-Sent Events (`id` is the event's number, `event` its type,
        `data` the event as JSON), from the first (or after `Last-Event-ID`), following the run
        live until it ends."""
        store, row = _open_run(run_id)
        if store is None:
            return _error(404, "not_found", f"no run `{run_id}`")
        store.close()
        after = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
        return StreamingResponse(_follow(run_id, after), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    async def _follow(run_id: str, after: int):
        """The run's events as server-sent events, from ``after`` on, until its outcome. An async
        generator: a follower holds no worker thread while it waits (each poll of the store is
        a short read in a thread), and a client that goes away ends it at its next wait."""
        import asyncio

        from intento.execute.store import TERMINAL

        store = Store(store_path)

        def poll(after: int) -> tuple[list[dict], bool]:
            events = store.events_after(run_id, after)
            last = events[-1]["seq"] if events else after
            ended = (store.run(run_id) or {}).get("status") in TERMINAL and not store.events_after(run_id, last)
            return events, ended

        try:
            quiet = time.monotonic()
            while not app.state.stopping.is_set():
                events, ended = await asyncio.to_thread(poll, after)
                for e in events:
                    after = e["seq"]
                    body = json.dumps({"seq": e["seq"], "type": e["type"], "at": e["at"], "data": e["data"]}, sort_keys=True)
                    yield f"id: {e['seq']}\nevent: {e['type']}\ndata: {body}\n\n"
                if events:
                    quiet = time.monotonic()
                if ended:
                    return
                if time.monotonic() - quiet > 15:
                    quiet = time.monotonic()
                    yield ": still following\n\n"
                await asyncio.sleep(0.2)
        finally:
            store.close()

    def _open_run(run_id: str):
        store = Store(store_path)
        row = store.run(run_id)
        if row is None:
            store.close()
            return None, None
        return store, row

    @app.get("/v1/runs/{run_id}")
    def run_status(run_id: str) -> Any:
        """A run's state: as `intento status`, as text and as data."""
        store, row = _open_run(run_id)
        if store is None:
            return _error(404, "not_found", f"no run `{run_id}`")
        try:
            view = store_status(store, run_id, as_json=True)
            return view | {"text": store_status(store, run_id, spec)}
        finally:
            store.close()

    @app.post("/v1/runs/{run_id}/observations", status_code=202)
    def observe(run_id: str, ob: Observation) -> Any:
        """Tell a run what was observed; its executor records it and re-plans."""
        from intento.execute.observe import validate_observation

        store, row = _open_run(run_id)
        if store is None:
            return _error(404, "not_found", f"no run `{run_id}`")
        data = ob.model_dump(exclude_none=True)
        problem = validate_observation(data, row, spec)
        if problem is not None:
            store.close()
            return _error(409 if problem.code == "run_finished" else 422, problem.code, problem.one_line())
        try:
            post(store, run_id, {k: v for k, v in ob.model_dump().items() if v is not None} | {"source": "api"})
        finally:
            store.close()
        return {"queued": True}

    @app.get("/v1/audit")
    def audit(offset: int = 0, limit: int = 50) -> Any:
        """Audit records, oldest first, `limit` (at most 500) from `offset`."""
        if offset < 0 or not (1 <= limit <= 500):
            return _error(422, "invalid_page", "offset must be >= 0 and limit between 1 and 500")
        records, _, _ = read_records(audit_path) if audit_path.exists() else ([], b"", [])
        return {"total": len(records), "offset": offset, "records": records[offset : offset + limit]}

    @app.get("/v1/audit/verify")
    def audit_verify() -> dict:
        """Recompute the audit chain."""
        if not audit_path.exists():
            return {"ok": True, "records": 0, "message": "no records yet"}
        v = verify(audit_path)
        return {"ok": v.ok, "records": v.records, "problem": v.problem, "first_bad_seq": v.first_bad_seq, "message": v.message}

    def _policy_set(req: PolicySetRequest) -> list[dict]:
        from intento.diagnostics import Source
        from intento.versions import policy_set_of

        return policy_set_of([Source(name, text) for name, text in req.policies.items()])  # IntentoError: a 422 with its diagnostics

    @app.post("/v1/policy/impact")
    def policy_impact(req: PolicySetRequest) -> dict:
        """What a policy set would do to every unfinished run (`intento policy impact --format json`):
        `runs` (each `unchanged`, `changed`, `infeasible` or `unknown`), `counts` and `breaks`."""
        from intento.execute.rollout import impact

        policies = _policy_set(req)
        store = Store(store_path)
        try:
            return impact(store, policies, time_limit_s=req.time_limit_s)
        finally:
            store.close()

    @app.post("/v1/policy/rollout")
    def policy_rollout(req: RolloutRequest, request: Request) -> dict:
        """Roll a policy set out on the store (`intento policy rollout`): new runs start on it, unfinished
        runs migrate as `mode` says at their next decision point; the answer says what each will do."""
        from intento.execute.rollout import rollout

        policies = _policy_set(req)
        store = Store(store_path)
        try:
            who = req.by or ("api" + (f" ({request.client.host})" if request.client else ""))
            seq, report = rollout(store, policies, req.mode, req.label, who, req.time_limit_s)
        finally:
            store.close()
        return {"rollout": seq, "mode": req.mode, "label": req.label} | report

    @app.get("/v1/policy/rollouts")
    def policy_rollouts() -> dict:
        """Every rollout of the store, oldest first, and every version runs were judged by."""
        store = Store(store_path)
        try:
            return {"rollouts": store.rollouts(), "versions": store.versions()}
        finally:
            store.close()

    @app.get("/metrics", response_class=PlainTextResponse)
    def prometheus() -> Any:
        """Prometheus metrics: runs by state, steps by outcome per provider, plans, re-plans,
        holds, escalations, the inbox, leases and capacity slots (all from the store), and this
        process's planning times."""
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    # The operator console (docs/console.md): pages at /, /runs/{id}, /policies, /plan.
    mount_console(app, spec, store_path, audit_path, token, plan_metrics=lambda status, seconds: metrics.observe_plan(status, seconds, "console"))
    app.openapi = lambda: app.openapi_schema or setattr(app, "openapi_schema", _openapi(app)) or app.openapi_schema
    app.add_middleware(BoundedBody, max_body=max_body, timeout_s=client_timeout_s)
    app.state.engine = engine_box
    return app
