"""Handlers used by the executor tests (and loadable as `--handlers tests.executor.example_handlers:registry`)."""

from intento.execute import PermanentError, Registry, RetryableError

registry = Registry()
calls: list[tuple[str, str, str]] = []


@registry.handler("validate_order")
def validate(ctx):
    calls.append((ctx.action, ctx.provider, ctx.idempotency_key))
    return {"latency_ms": 5}


@registry.handler("charge_payment", provider="stripe")
def stripe_is_flaky(ctx):
    calls.append((ctx.action, ctx.provider, ctx.idempotency_key))
    raise RetryableError("stripe: 503 service unavailable")


@registry.handler("charge_payment", provider="braintree")
def braintree_rejects(ctx):
    calls.append((ctx.action, ctx.provider, ctx.idempotency_key))
    raise PermanentError("braintree: merchant account not enabled for this currency")


@registry.handler("charge_payment", provider="adyen")
def adyen_charges(ctx):
    calls.append((ctx.action, ctx.provider, ctx.idempotency_key))
    assert ctx.context["customer.email"] == "real@example.com"  # handlers see secret values
    return None


@registry.handler("reserve_stock")
@registry.handler("ship_order")
@registry.handler("notify_customer")
def ok(ctx):
    calls.append((ctx.action, ctx.provider, ctx.idempotency_key))
    return None
