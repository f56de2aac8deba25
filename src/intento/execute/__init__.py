"""The executor: run plans durably, observe, re-plan, compensate, escalate (docs/executor.md).

Input: a checked project, a store, an environment. Output: runs driven to an outcome, each one a
log of events from which its state is always rebuilt.

The names below are loaded on first use (PEP 562): reading a store (`intento status`, `runs`,
the listing) imports `intento.execute.store` and `report` only, never the executor and with it
the solver.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "Executor": "intento.execute.executor",
    "Store": "intento.execute.store",
    "post": "intento.execute.store",
    "Scenario": "intento.execute.environment",
    "SimEnvironment": "intento.execute.environment",
    "RealEnvironment": "intento.execute.environment",
    "Registry": "intento.execute.handlers",
    "StepContext": "intento.execute.handlers",
    "RetryableError": "intento.execute.handlers",
    "PermanentError": "intento.execute.handlers",
    "handler": "intento.execute.handlers",
    "reconciler": "intento.execute.handlers",
    "on_escalation": "intento.execute.handlers",
    "RunState": "intento.execute.state",
    "fold": "intento.execute.state",
}

__all__ = list(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'intento.execute' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
