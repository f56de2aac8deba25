"""Handlers for the engine's edge-case tests: every call is recorded (one line per call, in the
file named by INTENTO_TEST_CALLS); with INTENTO_TEST_HANG set, `charge` never answers (the
process is killed while it is in flight)."""

import os
import time

from intento.execute import Registry

registry = Registry()


def _record(name: str) -> None:
    with open(os.environ["INTENTO_TEST_CALLS"], "a") as fh:
        fh.write(name + "\n")


@registry.handler("prepare")
def prepare(ctx):
    _record("prepare")
    return {"latency_ms": 1}


@registry.handler("unprepare")
def unprepare(ctx):
    _record("unprepare")
    return {"latency_ms": 1}


@registry.handler("charge")
def charge(ctx):
    _record("charge")
    if os.environ.get("INTENTO_TEST_HANG"):
        time.sleep(3600)  # in flight until the process is killed
    return {"latency_ms": 1}
