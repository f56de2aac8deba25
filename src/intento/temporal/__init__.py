"""Temporal as the execution engine: each run a workflow, planning and steps as activities.

Input: a checked project, a Temporal address and task queue. Output: runs with the embedded
executor's semantics and the same audit records (docs/executor.md, "Temporal").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from intento.temporal._activities import Activities

__all__ = ["Activities", "IntentRun", "ProviderCapacity", "Workers", "migrate_runs", "run_request", "version_queue", "worker"]


def __getattr__(name: str):
    # Loaded on first use: the workflow sandbox imports this package and must stay light.
    if name == "Activities":
        from intento.temporal._activities import Activities

        return Activities
    if name == "IntentRun":
        from intento.temporal._workflow import IntentRun

        return IntentRun
    if name == "ProviderCapacity":
        from intento.temporal._capacity import ProviderCapacity

        return ProviderCapacity
    if name == "version_queue":
        from intento.temporal._workflow import version_queue

        return version_queue
    if name == "migrate_runs":
        from intento.temporal._commands import migrate_runs

        return migrate_runs
    raise AttributeError(f"module 'intento.temporal' has no attribute {name!r}")


def run_request(spec, intent: str, given: dict | None, state: dict | None = None, *, secret_key: bytes | None = None) -> dict[str, Any]:
    """The workflow's input for a request, validated like a planning request. Secret given values
    are sealed (`intento.temporal._secrets`): the workflow's history carries a keyed hash and the
    value encrypted under ``secret_key`` (default: ``INTENTO_SECRET_KEY``), which every worker
    must share; an intent with secret givens and no key is refused (`SecretKeyMissing`)."""
    import os

    from intento.audit import sources_of
    from intento.execute.observe import achieved_facts
    from intento.solve import prepare
    from intento.temporal._secrets import SecretKeyMissing, seal
    from intento.values import format_decimal, to_json

    problem = prepare(spec, intent, given, state)
    ispec = spec.intents[intent]
    values = {k: to_json(v) for k, v in problem.context.items()}
    if any(ispec.given[k].secret for k in values):
        key = secret_key or os.environ.get("INTENTO_SECRET_KEY", "").encode()
        if not key:
            raise SecretKeyMissing(
                f"`{intent}` has secret givens, which a Temporal run carries sealed: set INTENTO_SECRET_KEY, the same for the "
                "client and every worker (or let both use the key file beside one audit log, `--store`)"
            )
        values = seal(spec, intent, values, key)
    return {
        "intent": intent,
        "given": values,
        "facts": sorted(problem.state.facts),
        "providers": {p: s.model_dump(mode="json", exclude_none=True) for p, s in problem.state.model.providers.items()},
        "deadline_ms": ispec.deadline_ms,
        "budget": format_decimal(ispec.budget) if ispec.budget is not None else None,
        # What the run's memo shows, and the names an observation may use (checked at the call).
        "project": spec.fingerprint,
        "policy_set": sources_of(spec, sorted(spec.policies)).policy_set,
        "names": {"facts": sorted(achieved_facts(spec)), "providers": sorted(spec.providers)},
    }


def worker(
    client,
    task_queue: str,
    activities: Activities,
    max_workers: int = 8,
    *,
    max_workflows: int | None = None,
    graceful_shutdown_s: float = 30.0,
    build_id: str | None = None,
    max_cached_workflows: int | None = None,
):
    """A Temporal worker for intento runs (await ``worker.run()``; use as an async context manager).

    ``max_workers`` bounds the activities (plans and steps) run at once, ``max_workflows`` the
    workflow tasks, ``max_cached_workflows`` the runs kept in memory between their tasks
    (Temporal's default when None; a run dropped from the cache is replayed from its history at
    its next task); on shutdown, steps in flight get ``graceful_shutdown_s`` to finish before
    they are abandoned (their workflows then see them lost and reconcile them). The build id
    (default: the project's fingerprint) is recorded with every workflow task, so the history
    says which project version decided each step. It also serves the semaphores of providers
    with a `capacity` (``intento.capacity`` workflows, started on demand on this task queue).

    Besides ``task_queue`` it polls the queue of its project version (`version_queue`:
    ``<task_queue>@<fingerprint>``) for plans: a run sends its plans to the queue of the version
    it started with (or was migrated to), so a worker started with other sources never judges
    it. Returns a `Workers` (the two Temporal workers, run and stopped together)."""
    from concurrent.futures import ThreadPoolExecutor
    from datetime import timedelta

    from temporalio.worker import Worker
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    from intento.temporal._capacity import ProviderCapacity
    from intento.temporal._workflow import IntentRun

    # intento's own modules (and the libraries they load) are deterministic library code: the
    # sandbox passes them through instead of re-importing them for every workflow run.
    runner = SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules("pydantic", "pydantic_core", "lark", "ortools", "google", "numpy", "cryptography"))
    extra = {"max_concurrent_workflow_tasks": max_workflows} if max_workflows else {}
    if max_cached_workflows is not None:
        extra["max_cached_workflows"] = max_cached_workflows
    from intento.temporal._workflow import version_queue

    build_id = build_id or "intento-" + activities.spec.fingerprint[:16]
    versioned = Worker(
        client,
        task_queue=version_queue(task_queue, activities.spec.fingerprint),
        activities=[activities.plan],
        activity_executor=ThreadPoolExecutor(max_workers=max_workers),
        max_concurrent_activities=max_workers,
        graceful_shutdown_timeout=timedelta(seconds=graceful_shutdown_s),
        build_id=build_id,
    )
    main = Worker(
        client,
        task_queue=task_queue,
        workflows=[IntentRun, ProviderCapacity],
        activities=[activities.plan, activities.step, activities.reconcile, activities.escalate, activities.simulation, activities.cancelled, activities.acquire_slot, activities.check_holders],
        activity_executor=ThreadPoolExecutor(max_workers=max_workers),
        max_concurrent_activities=max_workers,
        workflow_runner=runner,
        graceful_shutdown_timeout=timedelta(seconds=graceful_shutdown_s),
        build_id=build_id,
        **extra,
    )
    return Workers(main, versioned)


class Workers:
    """A worker's two Temporal workers: its main task queue (workflows, steps, and plans of runs
    started before version queues) and its version's queue (plans). ``await run()``,
    ``await shutdown()``, or ``async with``."""

    def __init__(self, main, versioned):
        self.main, self.versioned = main, versioned

    @property
    def task_queue(self) -> str:
        return self.main.task_queue

    async def run(self) -> None:
        import asyncio

        tasks = [asyncio.ensure_future(w.run()) for w in (self.main, self.versioned)]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await self.shutdown()  # one stopped (on purpose, or its error): both stop
            results = await asyncio.gather(*tasks, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r

    async def shutdown(self) -> None:
        """Stop both (safe to call again, or before they started)."""
        import asyncio

        await asyncio.gather(self.main.shutdown(), self.versioned.shutdown())

    async def __aenter__(self) -> "Workers":
        await self.main.__aenter__()
        try:
            await self.versioned.__aenter__()
        except BaseException:
            await self.main.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        import asyncio

        await asyncio.gather(self.versioned.__aexit__(*exc), self.main.__aexit__(*exc))
