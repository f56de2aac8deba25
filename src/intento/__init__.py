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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from intento.diagnostics import Diagnostic, IntentoError, ProjectError, RequestError
    from intento.plan import Plan
    from intento.request import State
    from intento.spec import Spec

__version__ = "0.1.0"

_HANDLER_API = ("handler", "reconciler", "on_escalation", "Registry", "StepContext", "RetryableError", "PermanentError")

#: Names of the public API loaded on first use (PEP 562), so that `import intento` (and every
#: command line that does not need them: ``intento check``, ``status``, ``runs``) stays light:
#: no pydantic models, no solver. Temporal's workflow sandbox imports this package too.
_LAZY = {
    "Diagnostic": "intento.diagnostics",
    "IntentoError": "intento.diagnostics",
    "ProjectError": "intento.diagnostics",
    "RequestError": "intento.diagnostics",
    "Plan": "intento.plan",
    "FrozenError": "intento.plan",
    "State": "intento.request",
    "Spec": "intento.spec",
}


def __getattr__(name: str):
    if name in _HANDLER_API:
        from intento.execute import handlers

        return getattr(handlers, name)
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'intento' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_HANDLER_API))


__all__ = [
    "load",
    "Project",
    "Plan",
    "FrozenError",
    "State",
    "IntentoError",
    "ProjectError",
    "RequestError",
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
    """A checked project: load once, plan many requests.

    Thread-safe: a Project is immutable, and every plan builds its own solver model. Plans are
    cached (an LRU of ``cache_size`` entries keyed by intent, `given`, state and options): the
    planner is deterministic, so a cached plan is exactly the plan a new solve would return
    (requests asking for timings are never cached). Every plan it returns is frozen (`Plan.freeze`):
    a hit returns the cached plan itself, without a copy, and changing it raises `FrozenError`;
    ``plan.editable()`` gives a copy that can be changed."""

    def __init__(self, spec: "Spec", cache_size: int = 256):
        import threading
        from collections import OrderedDict

        self.spec = spec
        self._cache: OrderedDict = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.cache_hits = 0

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the project's sources: the project version recorded with every decision."""
        return self.spec.fingerprint

    @property
    def warnings(self) -> list[Diagnostic]:
        return list(self.spec.warnings)

    def plan(self, intent: str, given: dict[str, Any] | None = None, state: "dict | State | None" = None, **options: Any) -> "Plan":
        """Plan one request. Options: ``backend`` ("cpsat" | "constraint"), ``time_limit_s``,
        ``num_workers``, ``seed``, ``explain`` ("none" | "basic" | "full"), ``include_timings``,
        ``hint`` (a previous Plan: a starting point for the search, never a change of answer),
        ``work_limit`` (a budget of CP-SAT deterministic time for the whole request, on top of
        ``time_limit_s``: an answer cut by it is the same on any load), ``max_questions`` (with
        ``explain="full"``: at most this many counterfactual solves; the explanation is then
        marked partial).
        The plan is frozen (shared with the cache; ``plan.editable()`` for a copy to change).
        Raises `RequestError` on bad input."""
        import json

        from intento.request import State
        from intento.solve import plan

        cacheable = not options.get("include_timings") and self._cache_size > 0
        key = None
        if cacheable:
            state_key = state.model_dump(mode="json") if isinstance(state, State) else state
            opts = {k: v for k, v in options.items() if k != "hint"}
            key = json.dumps([intent, given, state_key, opts], sort_keys=True, default=str)
            with self._lock:
                kept = self._cache.get(key)
                if kept is not None:
                    self._cache.move_to_end(key)
                    self.cache_hits += 1
            if kept is not None:
                # Frozen, so the cached plan itself is the answer: no copy on a hit.
                return kept
        # Every plan returned here is frozen, cached or not, so code that works on the first
        # answer works on a cached one too.
        result = plan(self.spec, intent, given, state, **options).freeze()
        if key is not None and result.status in ("optimal", "infeasible"):
            with self._lock:
                self._cache[key] = result
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return result

    async def aplan(self, intent: str, given: dict[str, Any] | None = None, state: dict | State | None = None, **options: Any) -> Plan:
        """`plan` for asyncio code: the solve runs in a worker thread, the event loop stays free."""
        import asyncio

        return await asyncio.to_thread(self.plan, intent, given, state, **options)

    def plan_many(self, requests: list[dict[str, Any]], **options: Any) -> list[Plan]:
        """Plan several requests together so that provider `capacity` is shared among them; each
        request is ``{"intent": ..., "given": ..., "state": ...}`` (docs/planning.md, "Batches")."""
        from intento.batch import plan_many

        return plan_many(self.spec, requests, **options)


def load(*paths: str | Path) -> Project:
    """Read and check a project (files, or folders read recursively); raises `IntentoError`."""
    from intento.check import check_paths
    from intento.diagnostics import ProjectError

    result = check_paths(paths)
    if result.spec is None:
        raise ProjectError(result.errors or result.diagnostics)
    return Project(result.spec)
