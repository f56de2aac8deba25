"""intento: intent-driven orchestration.

The public API, small on purpose::

    import intento

    project = intento.load("examples/order_fulfilment", "policies")
    plan = project.plan("fulfil_order", given={"customer.region": "eu", "order.amount": "120 USD",
                                                "customer.email": "a@example.com"},
                        state={"providers": {"stripe": {"status": "down"}}})
    print(plan.status, plan.cost, [(s.action, s.provider) for s in plan.steps])

Bad input raises `IntentoError` (with located `diagnostics`); an infeasible request is a `Plan`
whose status is ``infeasible`` and whose explanation names a minimal conflicting set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from intento.diagnostics import Diagnostic, IntentoError
from intento.plan import Plan
from intento.request import State
from intento.spec import Spec

__version__ = "0.1.0"

from intento.execute.handlers import PermanentError, Registry, RetryableError, StepContext, handler, on_escalation, reconciler

__all__ = [
    "load",
    "Project",
    "Plan",
    "State",
    "IntentoError",
    "Diagnostic",
    "handler",
    "reconciler",
    "on_escalation",
    "Registry",
    "StepContext",
    "RetryableError",
    "PermanentError",
    "__version__",
]


class Project:
    """A checked project: load once, plan many requests."""

    def __init__(self, spec: Spec):
        self.spec = spec

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the project's sources: the project version recorded with every decision."""
        return self.spec.fingerprint

    @property
    def warnings(self) -> list[Diagnostic]:
        return list(self.spec.warnings)

    def plan(self, intent: str, given: dict[str, Any] | None = None, state: dict | State | None = None, **options: Any) -> Plan:
        """Plan one request. Options: ``backend`` ("cpsat" | "constraint"), ``time_limit_s``,
        ``num_workers``, ``seed``, ``explain`` ("none" | "basic"), ``include_timings``."""
        from intento.solve import plan

        return plan(self.spec, intent, given, state, **options)

    def plan_many(self, requests: list[dict[str, Any]], **options: Any) -> list[Plan]:
        """Plan several requests together so that provider `capacity` is shared among them; each
        request is ``{"intent": ..., "given": ..., "state": ...}`` (docs/planning.md, "Batches")."""
        from intento.batch import plan_many

        return plan_many(self.spec, requests, **options)


def load(*paths: str | Path) -> Project:
    """Read and check a project (files, or folders read recursively); raises `IntentoError`."""
    from intento.check import check_paths

    result = check_paths(paths)
    if result.spec is None:
        raise IntentoError(result.errors or result.diagnostics)
    return Project(result.spec)
