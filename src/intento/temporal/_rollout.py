"""Policy impact and rollout on Temporal (`intento policy impact/rollout --engine temporal`).

Input: a client, the project as the current workers load it (``current``) and as the new ones do
(``new``: the same project with the new policy set, `intento worker --policies`), whose
fingerprints are the two versions. Output: for every unfinished run (on a task queue, or all),
its remaining plan under both (the run's `remaining` query: the request its next re-plan would
solve), judged as the embedded engine's impact (`execute.rollout.judge`); a rollout then sends
the runs that migrate the `migrate` update (the new version, who, why, its label and what the
impact said), and each run switches at its next decision point, re-plans on the new version's
workers and records `policy_migrated`.

A run on neither version cannot be judged here (its sources are not given): ``unknown``, and a
rollout leaves it where it is.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.client import Client

from intento.diagnostics import IntentoError
from intento.execute.rollout import judge, outcome, report
from intento.solve import plan_problem
from intento.spec import Spec
from intento.temporal._activities import remaining_problem
from intento.temporal._commands import running_runs, send_migration
from intento.temporal._secrets import SecretUnreadable, unseal
from intento.versions import policy_changes, short


def _remaining_plan(spec: Spec, req: dict[str, Any], given: dict[str, Any], time_limit_s: float):
    """A run's remaining plan under ``spec``, solved as its next re-plan would be."""
    problem, _ = remaining_problem(spec, req, given)
    force = req.get("force") or None
    plan = plan_problem(problem, time_limit_s=time_limit_s, explain="basic", force=force)
    if not plan.feasible and force:
        plan = plan_problem(problem, time_limit_s=time_limit_s, explain="basic")
    return plan


async def impact_runs(client: Client, current: Spec, new: Spec, *, secret_key: bytes, task_queue: str | None = None, time_limit_s: float = 10.0) -> dict[str, Any]:
    """The impact report of ``new`` on every unfinished run (the embedded report's shape), each
    row with ``new_version`` and, when already on it, ``impact: unchanged`` and ``already``."""
    rows = []
    async for w, handle in running_runs(client, task_queue):
        try:
            req = await handle.query("remaining")
        except Exception as e:  # noqa: BLE001 - ended since listed, or a worker from before the query
            rows.append({"run": w.id, "intent": None, "status": "unknown", "version": None, "impact": "unknown", "why": f"its state cannot be read: {getattr(e, 'message', None) or e}"})
            continue
        base = {"run": w.id, "intent": (req or {}).get("intent"), "status": "running", "version": (req or {}).get("version"), "version_label": None, "new_version": new.fingerprint}
        if req is None:
            rows.append(base | {"impact": "unchanged", "why": "it plans nothing more"})
            continue
        version = req.get("migrating_to") or req.get("version")
        if version == new.fingerprint:
            rows.append(base | {"impact": "unchanged", "already": True, "why": f"already on {short(new.fingerprint)}"})
            continue
        if version != current.fingerprint:
            rows.append(base | {"impact": "unknown", "why": f"it is on version {short(version)}, not on the project given ({short(current.fingerprint)}): pass the sources its workers load"})
            continue
        try:
            given = unseal(req["given"], secret_key)
            a = await asyncio.to_thread(_remaining_plan, current, req, given, time_limit_s)
            b = await asyncio.to_thread(_remaining_plan, new, req, given, time_limit_s)
        except SecretUnreadable as e:
            rows.append(base | {"impact": "unknown", "why": str(e)})
            continue
        except IntentoError as e:
            rows.append(base | {"impact": "unknown", "why": "; ".join(d.message for d in e.diagnostics[:3])})
            continue
        rows.append(judge(base, a, b, req.get("done") or {}))
    return report(rows)


async def rollout_runs(client: Client, current: Spec, new: Spec, mode: str, *, secret_key: bytes, label: str | None = None, by: str | None = None,
                       task_queue: str | None = None, time_limit_s: float = 10.0) -> dict[str, Any]:
    """Judge every unfinished run (`impact_runs`), then send those the mode migrates (``migrates``,
    or ``escalates``: migrated though it has no plan there, so it gives up at its next decision)
    the `migrate` update. Each row gets its ``outcome``; a run that ended meanwhile or refused
    says so (``refused``, with why)."""
    got = await impact_runs(client, current, new, secret_key=secret_key, task_queue=task_queue, time_limit_s=time_limit_s)
    changes = policy_changes(current, new)
    for row in got["runs"]:
        row["outcome"] = "stays" if row.get("already") else outcome(mode, row["impact"])
        if row["outcome"] == "stays":
            continue
        said = {k: row[k] for k in ("impact", "moves", "delta", "why") if row.get(k)}
        data = {"to": new.fingerprint, "by": by or "", "reason": f"policy rollout ({mode})", "label": label or "", "impact": said} | changes
        kind, why = await send_migration(client.get_workflow_handle(row["run"]), data)
        if kind != "migrating":  # it ended meanwhile (or moved to this version since it was judged)
            row |= {"outcome": "refused", "refused": why}
    return got
