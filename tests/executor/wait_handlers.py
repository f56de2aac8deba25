"""Handlers for the durable-wait tests (`--handlers tests.executor.wait_handlers:registry`)."""

from intento.execute import Registry

registry = Registry()


@registry.handler("prepare")
def prepare(ctx):
    return {"latency_ms": 1}


@registry.handler("unprepare")
def unprepare(ctx):
    return {"latency_ms": 1}
