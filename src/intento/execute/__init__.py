"""The executor: run plans durably, observe, re-plan, compensate, escalate (docs/executor.md).

Input: a checked project, a store, an environment. Output: runs driven to an outcome, each one a
log of events from which its state is always rebuilt.
"""

from intento.execute.environment import RealEnvironment, Scenario, SimEnvironment
from intento.execute.executor import Executor
from intento.execute.handlers import PermanentError, Registry, RetryableError, StepContext, handler, on_escalation, reconciler
from intento.execute.state import RunState, fold
from intento.execute.store import Store, post

__all__ = [
    "Executor",
    "Store",
    "post",
    "Scenario",
    "SimEnvironment",
    "RealEnvironment",
    "Registry",
    "StepContext",
    "RetryableError",
    "PermanentError",
    "handler",
    "reconciler",
    "on_escalation",
    "RunState",
    "fold",
]
