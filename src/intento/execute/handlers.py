"""Handlers: the Python callables that do a step's work through a provider.

    import intento

    @intento.handler("charge_payment", provider="stripe")
    def charge(ctx: intento.StepContext) -> dict:
        stripe.charge(ctx.context["order.amount"], idempotency_key=ctx.idempotency_key)
        return {"latency_ms": 640}

    @intento.reconciler("charge_payment")
    def was_charged(ctx) -> bool:           # after a crash: did the effect happen?
        return stripe.has_charge(ctx.idempotency_key)

A handler returns None or a dict (``facts``: extra facts observed; ``latency_ms``: measured), or
raises `RetryableError` (the provider may work later; counts against its health) or
`PermanentError` (this option will not work for this run). Any other exception counts as
retryable. Loaded with ``--handlers module:object`` (a `Registry`, or a module whose handlers
registered on the default registry).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping


class RetryableError(Exception):
    """The step failed, and trying again (maybe elsewhere) may succeed."""


class PermanentError(Exception):
    """The step failed, and this option will not succeed for this run."""


@dataclass(frozen=True)
class StepContext:
    run_id: str
    action: str
    provider: str
    attempt: int
    idempotency_key: str
    #: The request's given values (secret ones included: handlers may need them; never log them).
    context: Mapping[str, Any]


@dataclass
class Registry:
    handlers: dict[tuple[str, str | None], Callable[[StepContext], Any]] = field(default_factory=dict)
    reconcilers: dict[str, Callable[[StepContext], bool]] = field(default_factory=dict)
    escalation: Callable[[str, list[dict], str], Any] | None = None

    def handler(self, action: str, provider: str | None = None):
        def register(fn):
            self.handlers[(action, provider)] = fn
            return fn

        return register

    def reconciler(self, action: str):
        def register(fn):
            self.reconcilers[action] = fn
            return fn

        return register

    def on_escalation(self, fn):
        self.escalation = fn
        return fn

    def find(self, action: str, provider: str):
        return self.handlers.get((action, provider)) or self.handlers.get((action, None))


DEFAULT = Registry()
handler = DEFAULT.handler
reconciler = DEFAULT.reconciler
on_escalation = DEFAULT.on_escalation


def load(spec: str) -> Registry:
    """``module:object`` (a Registry) or ``module`` (handlers registered on the default registry)."""
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    if attr:
        obj = getattr(module, attr)
        if not isinstance(obj, Registry):
            raise TypeError(f"{spec} is not an intento Registry")
        return obj
    return DEFAULT
