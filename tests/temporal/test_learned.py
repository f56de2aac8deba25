"""Learned figures on Temporal (issue 16): a worker with `--learn` keeps the steps it runs as
samples in its store and plans with what that store observed, as the embedded engine does with
its own; the decision names the figures it used and where they came from. Real dev server."""

from __future__ import annotations

import asyncio
import subprocess
import uuid

import pytest

temporalio = pytest.importorskip("temporalio")
from temporalio.client import Client  # noqa: E402

from intento.check import check_sources  # noqa: E402
from intento.diagnostics import Source  # noqa: E402
from intento.execute import Executor, Registry, SimEnvironment, Scenario, Store  # noqa: E402
from intento.learn import Learning  # noqa: E402
from intento.temporal import Activities, IntentRun, run_request, worker  # noqa: E402
from intento.temporal._commands import outcome, start_or_join  # noqa: E402

from .conftest import INTENTO  # noqa: E402

PROJECT = """
provider fast { region "eu" }
provider steady { region "eu" }
action ship { achieves order.shipped; via fast { cost 1 USD; latency 100ms } via steady { cost 2 USD; latency 500ms } }
intent deliver { goal order.shipped; deadline 2s; minimize cost }
"""


def _spec():
    result = check_sources([Source("p.intent", PROJECT)])
    assert result.spec is not None, result.diagnostics
    return result.spec


def _observed_slow(store: Store, n: int = 25) -> None:
    """`fast` was seen taking 5 s a step, 25 times (its declared latency is 100 ms)."""
    for i in range(n):
        store.add_sample("fast", "ship", "succeeded", 5000, 1_000 + i, f"earlier-{i}")


def test_a_worker_that_learns_plans_with_the_observed_figures_and_says_so(temporal_address, tmp_path):
    spec = _spec()
    learning = Learning(min_samples=20)
    # The embedded engine, on a store that saw `fast` take 5 s: it ships with `steady`.
    embedded = Store(tmp_path / "embedded.db")
    _observed_slow(embedded)
    ex = Executor(spec, embedded, SimEnvironment(Scenario.model_validate({"seed": 1, "default": {"latency_sigma": 0}})), new_id=lambda: "run-e", learning=learning)
    final = ex.drive(ex.start("deliver", {}))
    assert final.status == "succeeded" and final.steps["ship"].provider == "steady"
    planned_e = next(e for e in embedded.events(final.run) if e["type"] == "planned")["data"]

    # A Temporal worker with the same samples in its store, the same choice and the same figures.
    samples = Store(tmp_path / "worker.db")
    _observed_slow(samples)
    reg = Registry()
    reg.handler("ship")(lambda ctx: {"latency_ms": 480})

    async def go():
        client = await Client.connect(temporal_address)
        queue = f"learn-{uuid.uuid4().hex[:8]}"
        async with worker(client, queue, Activities(spec, registry=reg, learning=learning, samples=samples)):
            req = run_request(spec, "deliver", {})
            handle, _ = await start_or_join(client, req, f"deliver-{uuid.uuid4().hex[:8]}", queue)
            return await asyncio.wait_for(outcome(handle), 60), await handle.query(IntentRun.explanation)

    result, explanation = asyncio.run(go())
    assert result["status"] == "succeeded" and result["done"] == {"ship": "steady"}
    planned_t = next(e for e in result["events"] if e["type"] == "planned")
    assert planned_t["figures"] == planned_e["figures"]
    fast = next(f for f in planned_t["figures"] if f["provider"] == "fast")
    assert fast["latency_ms"] == 5000 and fast["source"].startswith("observed p90 5s over 25 steps")
    assert any(f["provider"] == "fast" for f in explanation["figures"])
    # The step it ran is a sample now (its measured latency), in the worker's store.
    stats = samples.step_stats()
    assert stats[("ship", "steady")]["succeeded"] == 1 and stats[("ship", "steady")]["latencies"] == [480]


def test_a_worker_that_does_not_learn_plans_with_the_declared_figures(temporal_address, tmp_path):
    spec = _spec()
    samples = Store(tmp_path / "worker.db")
    _observed_slow(samples)
    reg = Registry()
    reg.handler("ship")(lambda ctx: None)

    async def go():
        client = await Client.connect(temporal_address)
        queue = f"learn-{uuid.uuid4().hex[:8]}"
        async with worker(client, queue, Activities(spec, registry=reg)):
            req = run_request(spec, "deliver", {})
            handle, _ = await start_or_join(client, req, f"deliver-{uuid.uuid4().hex[:8]}", queue)
            return await asyncio.wait_for(outcome(handle), 60)

    result = asyncio.run(go())
    assert result["done"] == {"ship": "fast"} and "figures" not in next(e for e in result["events"] if e["type"] == "planned")


def test_worker_learn_options_are_checked(tmp_path):
    (tmp_path / "p.intent").write_text(PROJECT)
    got = subprocess.run([INTENTO, "worker", str(tmp_path / "p.intent"), "--learn", "--learn-provider", "fsat", "--temporal", "127.0.0.1:1"],
                         capture_output=True, text=True, timeout=60)
    assert got.returncode == 1 and "unknown provider `fsat`" in got.stderr and "fast" in got.stderr and "Traceback" not in got.stderr
    got = subprocess.run([INTENTO, "worker", str(tmp_path / "p.intent"), "--learn-provider", "fast", "--temporal", "127.0.0.1:1"], capture_output=True, text=True, timeout=60)
    assert got.returncode == 1 and "--learn-provider needs --learn" in got.stderr
