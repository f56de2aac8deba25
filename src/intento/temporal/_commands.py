"""What `intento run`, `status`, `runs`, `observe` and `cancel` do with `--engine temporal`.

Input: a connected Temporal client and a run's workflow id (or a request). Output: plain data
the command line prints (docs/executor.md, "Temporal"): a run's view read through the workflow's
`status` query and Temporal's description of the execution, a list read from Temporal's
visibility store and the workflows' memos, and the answers of the `observe` update and of a
cancellation. One run per request: a request whose workflow already ended with an outcome is
answered with that outcome, never run again.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import CancelledError

#: Temporal's execution states, as intento names a run's status.
STATUS = {
    WorkflowExecutionStatus.RUNNING: "running",
    WorkflowExecutionStatus.COMPLETED: "finished",  # succeeded or escalated: the result says
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.TIMED_OUT: "timed_out",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "continued",
}
#: Ended with an outcome of intento's: submitting the request again answers with it.
WITH_OUTCOME = (WorkflowExecutionStatus.COMPLETED, WorkflowExecutionStatus.CANCELED)


def workflow_id(intent: str, key: str | None, req: dict[str, Any]) -> str:
    """``<intent>-<key>``, or ``<intent>-<hash of the request>`` without a key: the same request
    (its secrets sealed deterministically) is the same workflow."""
    if key:
        return f"{intent}-{key}"
    return f"{intent}-" + hashlib.sha256(json.dumps(req, sort_keys=True).encode()).hexdigest()[:16]


_REGISTERED: dict[tuple[str, str], bool] = {}


async def search_attributes_ready(client: Client) -> bool:
    """Whether the namespace has intento's search attributes (`IntentoIntent`, `IntentoStatus`,
    `IntentoWaitsOn`, Keyword), registering the missing ones when the client may (the dev
    server, a self-hosted cluster with operator rights). Without them a run keeps its memo
    only; on Temporal Cloud add them in its UI or with `tcld` (docs/executor.md)."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
    from temporalio.service import RPCError

    from intento.temporal._workflow import INTENT_KEY, STATUS_KEY, WAITS_KEY

    key = (client.service_client.config.target_host, client.namespace)
    if key in _REGISTERED:
        return _REGISTERED[key]
    names = [k.name for k in (INTENT_KEY, STATUS_KEY, WAITS_KEY)]
    try:
        have = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=client.namespace))
        missing = [n for n in names if n not in have.custom_attributes]
        if missing:
            await client.operator_service.add_search_attributes(AddSearchAttributesRequest(
                namespace=client.namespace, search_attributes={n: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for n in missing}))
        ok = True
    except RPCError:
        ok = False
    _REGISTERED[key] = ok
    return ok


async def start_or_join(client: Client, req: dict[str, Any], wid: str, task_queue: str) -> tuple[WorkflowHandle, str]:
    """The run's workflow and how it was found: ``started``, ``joined`` (running) or ``ended``
    (it ended with an outcome: never started again). A run that ended without one (failed,
    terminated, timed out) is started anew."""
    from intento.temporal._workflow import IntentRun

    handle = client.get_workflow_handle(wid)
    try:
        desc = await handle.describe()
    except Exception:  # no such workflow yet (an RPC "not found")
        desc = None
    if desc is not None and desc.status in WITH_OUTCOME:
        return handle, "ended"
    if desc is not None and desc.status == WorkflowExecutionStatus.RUNNING:
        return handle, "joined"
    from temporalio.common import SearchAttributePair, TypedSearchAttributes

    from intento.temporal._workflow import INTENT_KEY, STATUS_KEY

    searchable = await search_attributes_ready(client)
    handle = await client.start_workflow(
        IntentRun.run,
        req,
        id=wid,
        task_queue=task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"{req['intent']}",
        memo={"intent": req["intent"], "status": "running"},
        # The run keeps them current (status, where it waits) once started with them.
        search_attributes=TypedSearchAttributes([SearchAttributePair(INTENT_KEY, req["intent"]), SearchAttributePair(STATUS_KEY, "running")]) if searchable else TypedSearchAttributes.empty,
    )
    return handle, "started"


async def outcome(handle: WorkflowHandle) -> dict[str, Any]:
    """The run's outcome: the workflow's result, or for a cancelled run the outcome its `status`
    query keeps (the undos done and failed). A workflow that ended without one raises
    `WorkflowFailureError`, as `handle.result()` does."""
    from intento.temporal._workflow import IntentRun

    try:
        return await handle.result()
    except WorkflowFailureError as e:
        if not isinstance(e.cause, CancelledError):
            raise
        view = await handle.query(IntentRun.status)
        if not view.get("outcome"):
            raise  # cancelled before the workflow could say anything (e.g. by an older worker)
        return view["outcome"] | {"events": view.get("events", [])}


async def view(client: Client, wid: str) -> dict[str, Any]:
    """A run's view on Temporal: its execution (status, start and close times, task queue) and,
    through the `status` query, where it stands."""
    from intento.temporal._workflow import IntentRun

    handle = client.get_workflow_handle(wid)
    desc = await handle.describe()
    memo = await desc.memo()
    out: dict[str, Any] = {
        "run": wid,
        "engine": "temporal",
        "intent": memo.get("intent"),
        "temporal_status": desc.status.name.lower() if desc.status else None,
        "task_queue": desc.task_queue,
        "started_at": desc.start_time.isoformat() if desc.start_time else None,
        "closed_at": desc.close_time.isoformat() if desc.close_time else None,
    }
    try:
        q = await handle.query(IntentRun.status)
    except Exception as e:  # no worker to answer (a query needs one): the execution's own status
        out |= {"status": STATUS.get(desc.status, "unknown"), "query_error": str(e).splitlines()[0] if str(e) else type(e).__name__}
        return out
    out |= {k: v for k, v in q.items() if k != "events"}
    out["last_events"] = q.get("events", [])[-10:]
    # Its policy-version history: every migration (docs/executor.md, "Policy versions").
    out["migrations"] = [e for e in q.get("events", []) if e.get("type") == "policy_migrated"]
    return out


async def list_runs(client: Client, status: str | None, intent: str | None, limit: int) -> list[dict[str, Any]]:
    """intento runs on the namespace, newest first, from Temporal's visibility list (filtered by
    execution status there) and each run's memo (intent, status and where it waits as the run
    last said)."""
    query = "WorkflowType = 'intento.run'"
    if status in ("running",):
        query += " AND ExecutionStatus = 'Running'"
    elif status == "cancelled":
        query += " AND ExecutionStatus = 'Canceled'"
    elif status in ("succeeded", "escalated"):
        query += " AND ExecutionStatus = 'Completed'"
    elif status == "failed":
        query += " AND ExecutionStatus IN ('Failed', 'Terminated', 'TimedOut')"
    rows = []
    async for w in client.list_workflows(query):
        memo = await w.memo()
        row = {
            "run": w.id,
            "intent": memo.get("intent"),
            "status": memo.get("status") if w.status in (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED) else STATUS.get(w.status, "unknown"),
            "temporal_status": w.status.name.lower() if w.status else None,
            "cost": memo.get("cost"),
            "deadline_ms": memo.get("deadline_ms"),
            "waits_on": memo.get("waits_on") if w.status == WorkflowExecutionStatus.RUNNING else None,
            "started_at": w.start_time.isoformat() if w.start_time else None,
        }
        if intent is not None and row["intent"] != intent:
            continue
        if status is not None and row["status"] != status:
            continue
        rows.append(row)
        if len(rows) >= limit:
            break
    return rows


def waits(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Unfinished runs grouped by where they wait, most common first (as `report.list_runs`)."""
    groups: dict[str, list[str]] = {}
    for r in rows:
        if r.get("waits_on"):
            groups.setdefault(r["waits_on"], []).append(r["run"])
    return [{"waits_on": k, "count": len(ids), "runs": ids[:20]} for k, ids in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))]


async def running_runs(client: Client, task_queue: str | None = None):
    """Every unfinished `intento.run` workflow (on ``task_queue``, or all), from Temporal's
    visibility list, each with a handle on that very execution."""
    query = "WorkflowType = 'intento.run' AND ExecutionStatus = 'Running'"
    if task_queue:
        query += f" AND TaskQueue = '{task_queue}'"
    async for w in client.list_workflows(query):
        yield w, client.get_workflow_handle(w.id, run_id=w.run_id)


async def migrate_runs(client: Client, to: str, *, by: str | None = None, reason: str | None = None, task_queue: str | None = None) -> list[dict[str, Any]]:
    """Policy rollout on Temporal in `migrate` mode: every unfinished run (on ``task_queue``, or
    all) is sent the `migrate` update to version ``to`` (a project fingerprint: the worker of the
    new sources polls its queue). Each run switches at its next decision point, records
    `policy_migrated` and re-plans on the new version's workers. Returns, per run, ``migrating``
    (with the version it leaves), ``already`` (on that version) or ``refused`` (why: it ended
    meanwhile, or started before version queues). New runs start on the new version when started
    with the new sources (`run_request`), which needs nothing here."""
    rows = []
    async for w, handle in running_runs(client, task_queue):
        kind, said = await send_migration(handle, {"to": to, "by": by or "", "reason": reason or ""})
        rows.append({"run": w.id, "outcome": kind} | ({"from": said, "to": to} if kind == "migrating" else {"why": said}))
    return rows


async def send_migration(handle: WorkflowHandle, data: dict[str, Any]) -> tuple[str, str | None]:
    """Send a run the `migrate` update: (``migrating``, the version it leaves), (``already``, why:
    it is on that version) or (``refused``, why: it ended since it was listed, or started before
    version queues)."""
    from temporalio.client import WorkflowUpdateFailedError
    from temporalio.service import RPCError, RPCStatusCode

    from intento.temporal._workflow import IntentRun

    try:
        answer = await handle.execute_update(IntentRun.migrate, data)
        return "migrating", answer.get("from")
    except RPCError as e:  # it ended since it was listed
        if e.status != RPCStatusCode.NOT_FOUND:
            raise
        return "refused", e.message
    except WorkflowUpdateFailedError as e:
        cause = e.cause
        return ("already" if getattr(cause, "type", None) == "AlreadyOnVersion" else "refused"), getattr(cause, "message", None) or str(cause or e)
