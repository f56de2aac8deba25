"""Handlers for the capacity-across-runs test: each `use_one` step records when it held the
provider (wall-clock start and end) in the file named by INTENTO_TEST_INTERVALS."""

import json
import os
import time

from intento.execute import Registry

registry = Registry()


@registry.handler("use_one")
def use_one(ctx):
    start = time.time()
    time.sleep(0.15)  # the work itself: the step holds the provider this long
    end = time.time()
    with open(os.environ["INTENTO_TEST_INTERVALS"], "a") as fh:
        fh.write(json.dumps({"run": ctx.run_id, "start": start, "end": end}) + "\n")
    return {"latency_ms": int((end - start) * 1000)}
