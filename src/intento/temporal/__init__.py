"""Temporal as the execution engine: each run a workflow, planning and steps as activities.

Input: a checked project, a Temporal address and task queue. Output: runs with the embedded
executor's semantics and the same audit records (docs/executor.md, "Temporal").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from intento.temporal._activities import Activities

__all__ = ["Activities", "IntentRun", "run_request", "worker"]


def __getattr__(name: str):
    # Loaded on first use: the workflow sandbox imports this package and must stay light.
    if name == "Activities":
        from intento.temporal._activities import Activities

        return Activities
    if name == "IntentRun":
        from intento.temporal._workflow import IntentRun

        return IntentRun
    raise AttributeError(f"module 'intento.temporal' has no attribute {name!r}")


def run_request(spec, intent: str, given: dict | None, state: dict | None = None) -> dict[str, Any]:
    """The workflow's input for a request, validated like a planning request."""
    from intento.solve import prepare
    from intento.values import format_decimal, to_json

    problem = prepare(spec, intent, given, state)
    ispec = spec.intents[intent]
    return {
        "intent": intent,
        "given": {k: to_json(v) for k, v in problem.context.items()},
        "facts": sorted(problem.state.facts),
        "providers": {p: s.model_dump(mode="json", exclude_none=True) for p, s in problem.state.model.providers.items()},
        "deadline_ms": ispec.deadline_ms,
        "budget": format_decimal(ispec.budget) if ispec.budget is not None else None,
    }


def worker(client, task_queue: str, activities: Activities, max_workers: int = 8):
    """A Temporal worker for intento runs (await ``worker.run()``; use as an async context manager)."""
    from concurrent.futures import ThreadPoolExecutor

    from temporalio.worker import Worker
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    from intento.temporal._workflow import IntentRun

    # intento's own modules (and the libraries they load) are deterministic library code: the
    # sandbox passes them through instead of re-importing them for every workflow run.
    runner = SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules("pydantic", "pydantic_core", "lark", "ortools", "google", "numpy", "cryptography"))
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[IntentRun],
        activities=[activities.plan, activities.step, activities.reconcile],
        activity_executor=ThreadPoolExecutor(max_workers=max_workers),
        workflow_runner=runner,
    )
