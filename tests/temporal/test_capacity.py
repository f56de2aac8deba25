"""A provider's `capacity` across every live run on Temporal, against the real dev server: one
semaphore workflow per provider (`intento.capacity`) grants slots first come first served and
never more than the capacity; runs wait for them durably, give them back with each step's
outcome and all of them when they end (succeeded or cancelled); a run terminated while holding
a slot does not block the others for long; plans see the slots other runs hold (`busy`).

Each `use_one` step holds its provider until the test lets it go (a gate per step, bounded):
nothing here sleeps for ordering, every wait is on a condition with a bound."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid

import pytest

temporalio = pytest.importorskip("temporalio")
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError  # noqa: E402
from temporalio.exceptions import CancelledError  # noqa: E402
from temporalio.worker import Replayer  # noqa: E402

from intento.check import check_sources  # noqa: E402
from intento.diagnostics import Source  # noqa: E402
from intento.execute import Registry  # noqa: E402
from intento.temporal import Activities, IntentRun, ProviderCapacity, run_request, worker  # noqa: E402
from intento.temporal._capacity import semaphore_id  # noqa: E402

from .conftest import until  # noqa: E402

CAPACITY = """
provider one { region "eu"; capacity CAP }
action use_one { achieves used; idempotent; TIMEOUT via one { cost 1 USD; latency LATENCY } }
intent use { given n: number; goal used; minimize cost }
"""


def _spec(cap: int, timeout: str | None = None, latency: str = "2s"):
    text = CAPACITY.replace("CAP", str(cap)).replace("TIMEOUT", f"timeout {timeout};" if timeout else "").replace("LATENCY", latency)
    result = check_sources([Source("cap.intent", text)])
    assert result.spec is not None, result.diagnostics
    return result.spec


class Holders:
    """The `use_one` handler: each step records when it held `one` (wall clock) and holds it
    until the test lets its run go (at most a minute)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active: dict[str, threading.Event] = {}
        self.spans: list[tuple[str, float, float]] = []
        self.most = 0
        self.registry = Registry()
        self.registry.handler("use_one")(self._use)

    def _use(self, ctx) -> None:
        go = threading.Event()
        with self.lock:
            self.active[ctx.run_id] = go
            self.most = max(self.most, len(self.active))
            start = time.time()
        go.wait(60)
        with self.lock:
            self.spans.append((ctx.run_id, start, time.time()))
            del self.active[ctx.run_id]

    def holding(self) -> list[str]:
        with self.lock:
            return sorted(self.active)

    def let_go(self, run: str) -> None:
        with self.lock:
            self.active[run].set()

    def let_all_go(self) -> None:
        with self.lock:
            for go in self.active.values():
                go.set()

    def done(self, run: str) -> bool:
        with self.lock:
            return any(r == run for r, _, _ in self.spans)


def _queue() -> str:
    return f"cap-{uuid.uuid4().hex[:8]}"


async def _start(client, spec, queue: str, n: int):
    return await client.start_workflow(IntentRun.run, run_request(spec, "use", {"n": n}), id=f"use-{uuid.uuid4().hex[:8]}", task_queue=queue)


def _waiting_for_slot(handle):
    async def check():
        view = await handle.query(IntentRun.status)
        return view["slots"]["waiting"] == {"use_one": "one"} and view["running"] == []

    return check


def _holding(holders: Holders, run: str):
    async def check():
        return run in holders.holding()

    return check


async def _slots(client, queue: str) -> dict:
    return await client.get_workflow_handle(semaphore_id("one", queue)).query(ProviderCapacity.slots)


async def _slots_are(client, queue: str, holding: list[str], waiting: list[str]) -> dict | None:
    view = await _slots(client, queue)
    ok = [x["run"] for x in view["holders"]] == holding and sorted(x["run"] for x in view["waiting"]) == sorted(waiting)
    return view if ok else None


async def _memo_says(handle, waits_on: str) -> bool:
    return (await (await handle.describe()).memo()).get("waits_on") == waits_on


async def _replay(*handles) -> None:
    replayer = Replayer(workflows=[IntentRun, ProviderCapacity])
    for h in handles:
        await replayer.replay_workflow(await h.fetch_history())


def _no_overlap(spans) -> None:
    spans = sorted((s, e) for _, s, e in spans)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, f"two steps held `one` (capacity 1) at once: {spans}"


def test_capacity_one_is_held_by_one_run_at_a_time_and_plans_see_it(temporal_address):
    spec = _spec(1)
    holders = Holders()

    async def go():
        client = await Client.connect(temporal_address)
        queue = _queue()
        # A small history limit: the semaphore continues as new while runs hold and wait.
        async with worker(client, queue, Activities(spec, registry=holders.registry, capacity_check_s=1, capacity_history_limit=30)):
            try:
                first = await _start(client, spec, queue, 0)
                await until(_holding(holders, first.id), "the first run to hold `one`")
                sem = client.get_workflow_handle(semaphore_id("one", queue))
                first_sem_run = (await sem.describe()).run_id
                others = [await _start(client, spec, queue, n) for n in (1, 2)]
                for h in others:
                    await until(_waiting_for_slot(h), f"{h.id} to wait for a slot of `one`")
                # The semaphore says so too (the requests reach it through an activity each).
                waiting = await until(lambda: _slots_are(client, queue, [first.id], [h.id for h in others]), "the semaphore to list one holder and two waiting")
                assert waiting["capacity"] == 1
                # Its memo and details say where it waits, as Temporal's tools show it.
                await until(lambda: _memo_says(others[0], "waiting for a slot of one"), "the waiting run's memo to say where it waits")
                order = []
                for _ in range(3):
                    current = await until(lambda: _one_holder(holders, order), "the next run to hold `one`")
                    assert holders.holding() == [current]
                    order.append(current)
                    holders.let_go(current)
                    await until(lambda run=current: _done(holders, run), f"{current}'s step to end")
                results = [await asyncio.wait_for(h.result(), 60) for h in [first, *others]]
                at_end = await until(lambda: _slots_are(client, queue, [], []), "every slot to be given back")
                first_sem = await client.get_workflow_handle(semaphore_id("one", queue), run_id=first_sem_run).describe()
                await _replay(first, *others, sem, client.get_workflow_handle(semaphore_id("one", queue), run_id=first_sem_run))
            finally:
                holders.let_all_go()
        return first, others, order, results, at_end, first_sem

    first, others, order, results, at_end, first_sem = asyncio.run(go())
    assert all(r["status"] == "succeeded" for r in results), results
    # Never two at once, from the steps' own clocks; first come, first served.
    assert holders.most == 1
    _no_overlap(holders.spans)
    assert order[0] == first.id and set(order[1:]) == {h.id for h in others}
    for r, h in zip(results[1:], others):
        kinds = [e["type"] for e in r["events"]]
        assert kinds.index("slot_requested") < kinds.index("slot_granted") < kinds.index("step_dispatched")
        granted = next(e for e in r["events"] if e["type"] == "slot_granted")
        # It waited for the slot at least as long as the first run held it (the test held it).
        assert granted["provider"] == "one" and granted["waited_ms"] > 0
        # Its plan saw the slot the first run held: one busy slot of `one`, expected back within the option's 2 s.
        planned = next(e for e in r["events"] if e["type"] == "planned")
        assert list(planned["busy"]) == ["one"] and len(planned["busy"]["one"]) == 1
        assert 1 <= int(planned["busy"]["one"][0].removesuffix("ms")) <= 2000
        # ... and planned its step to start once that slot is expected back.
        assert planned["starts_ms"]["use_one"] == int(planned["busy"]["one"][0].removesuffix("ms"))
    # The first run planned with nobody holding `one`.
    assert "busy" not in next(e for e in results[0]["events"] if e["type"] == "planned")
    # Everything given back; the semaphore continued as new meanwhile, carrying its state.
    assert at_end["holders"] == [] and at_end["waiting"] == [] and at_end["granted"] == 3 and at_end["recovered"] == 0
    assert first_sem.status == WorkflowExecutionStatus.CONTINUED_AS_NEW


async def _one_holder(holders: Holders, seen: list[str]) -> str | None:
    now = [r for r in holders.holding() if r not in seen]
    return now[0] if now else None


async def _done(holders: Holders, run: str) -> bool:
    return holders.done(run)


def test_capacity_two_allows_two_at_once_but_never_three(temporal_address):
    spec = _spec(2)
    holders = Holders()

    async def go():
        client = await Client.connect(temporal_address)
        queue = _queue()
        async with worker(client, queue, Activities(spec, registry=holders.registry)):
            try:
                runs = [await _start(client, spec, queue, n) for n in range(3)]
                both = await until(lambda: _at_least(holders, 2), "two runs to hold `one`")
                third = next(h for h in runs if h.id not in both)
                await until(_waiting_for_slot(third), "the third run to wait for a slot")
                assert len(holders.holding()) == 2
                holders.let_go(both[0])
                await until(_holding(holders, third.id), "the third run to get the slot given back")
                assert len(holders.holding()) == 2
                holders.let_all_go()
                results = [await asyncio.wait_for(h.result(), 60) for h in runs]
                at_end = await until(lambda: _slots_are(client, queue, [], []), "every slot to be given back")
                await _replay(*runs)
            finally:
                holders.let_all_go()
        return results, at_end

    results, at_end = asyncio.run(go())
    assert all(r["status"] == "succeeded" for r in results)
    assert holders.most == 2 and len(holders.spans) == 3
    # At every moment at most two steps held `one`.
    for _, s, _ in holders.spans:
        assert sum(1 for _, s2, e2 in holders.spans if s2 <= s < e2) <= 2
    assert at_end["capacity"] == 2 and at_end["holders"] == [] and at_end["granted"] == 3


async def _at_least(holders: Holders, n: int) -> list[str] | None:
    now = holders.holding()
    return now if len(now) >= n else None


def test_runs_terminated_holding_or_waiting_for_a_slot_do_not_block_the_others(temporal_address):
    spec = _spec(1)
    holders = Holders()

    async def go():
        client = await Client.connect(temporal_address)
        queue = _queue()
        async with worker(client, queue, Activities(spec, registry=holders.registry, capacity_check_s=1)):
            try:
                dead = await _start(client, spec, queue, 0)
                await until(_holding(holders, dead.id), "the first run to hold `one`")
                gone = await _start(client, spec, queue, 1)
                await until(_waiting_for_slot(gone), "the second run to wait for the slot")
                waiter = await _start(client, spec, queue, 2)
                await until(_waiting_for_slot(waiter), "the third run to wait for the slot")
                await until(lambda: _slots_are(client, queue, [dead.id], [gone.id, waiter.id]), "the semaphore to list them")
                # Terminated by an operator: no code of the runs runs, so the holder never gives
                # its slot back, and the first in line can no longer be told it has it.
                await dead.terminate("test: a run that dies holding a slot")
                await gone.terminate("test: a run that dies waiting for a slot")
                t0 = time.monotonic()
                await until(_holding(holders, waiter.id), "the slot to be taken back from the terminated run", timeout=20)
                recovered_in = time.monotonic() - t0
                holders.let_all_go()
                result = await asyncio.wait_for(waiter.result(), 60)
                at_end = await until(lambda: _slots_are(client, queue, [], []), "every slot to be given back")
                await _replay(waiter, client.get_workflow_handle(semaphore_id("one", queue)))
            finally:
                holders.let_all_go()
        return result, at_end, recovered_in

    result, at_end, recovered_in = asyncio.run(go())
    assert result["status"] == "succeeded"
    # Taken back at the semaphore's next check of its holders (every second here).
    assert recovered_in < 10
    assert at_end["recovered"] == 1 and at_end["holders"] == [] and at_end["waiting"] == [] and at_end["granted"] == 2


def test_a_cancelled_run_gives_its_slot_back_and_stops_waiting(temporal_address):
    spec = _spec(1)
    holders = Holders()

    async def go():
        client = await Client.connect(temporal_address)
        queue = _queue()
        async with worker(client, queue, Activities(spec, registry=holders.registry)):
            try:
                holder = await _start(client, spec, queue, 0)
                await until(_holding(holders, holder.id), "the first run to hold `one`")
                quitter = await _start(client, spec, queue, 1)
                await until(_waiting_for_slot(quitter), "the second run to wait")
                last = await _start(client, spec, queue, 2)
                await until(_waiting_for_slot(last), "the third run to wait")
                # Cancelled while waiting: it stops waiting, and never runs its step.
                await quitter.cancel()
                with pytest.raises(WorkflowFailureError) as e:
                    await asyncio.wait_for(quitter.result(), 60)
                assert isinstance(e.value.cause, CancelledError)
                after_quit = await until(lambda: _slots_are(client, queue, [holder.id], [last.id]), "the semaphore to forget the cancelled run's request")
                # Cancelled while holding: its step in flight is awaited, then the slot goes back.
                await holder.cancel()
                await until(lambda: _status(holder, "giving_up"), "the holder to give up")
                holders.let_go(holder.id)
                with pytest.raises(WorkflowFailureError):
                    await asyncio.wait_for(holder.result(), 60)
                await until(_holding(holders, last.id), "the last run to get the slot")
                holders.let_go(last.id)
                result = await asyncio.wait_for(last.result(), 60)
                at_end = await until(lambda: _slots_are(client, queue, [], []), "every slot to be given back")
                await _replay(holder, quitter, last)
            finally:
                holders.let_all_go()
        return holder, last, after_quit, result, at_end

    holder, last, after_quit, result, at_end = asyncio.run(go())
    assert after_quit["granted"] == 1
    assert result["status"] == "succeeded"
    assert {r for r, _, _ in holders.spans} == {holder.id, last.id}  # the quitter never ran
    _no_overlap(holders.spans)
    assert at_end["holders"] == [] and at_end["waiting"] == [] and at_end["granted"] == 2


async def _status(handle, want: str) -> bool:
    return (await handle.query(IntentRun.status))["status"] == want


def test_a_step_that_times_out_or_fails_gives_its_slot_back_at_once(temporal_address):
    spec = _spec(1, timeout="1s", latency="500ms")
    lock = threading.Lock()
    stuck = threading.Event()  # the slow run's first step never answers (until the test ends)
    roles: dict[str, str] = {}
    calls: list[tuple[str, int]] = []
    reg = Registry()

    @reg.handler("use_one")
    def use(ctx):
        with lock:
            calls.append((ctx.run_id, ctx.attempt))
        if roles.get("slow") == ctx.run_id and ctx.attempt == 1:
            stuck.wait(60)
        elif roles.get("failing") == ctx.run_id and ctx.attempt == 1:
            raise RuntimeError("one refused it")

    async def go():
        client = await Client.connect(temporal_address)
        queue = _queue()
        async with worker(client, queue, Activities(spec, registry=reg)):
            try:
                slow = await client.start_workflow(IntentRun.run, run_request(spec, "use", {"n": 0}), id=f"use-{uuid.uuid4().hex[:8]}", task_queue=queue)
                roles["slow"] = slow.id
                await until(lambda: _called(calls, lock, slow.id), "the slow run's step to start")
                failing = await client.start_workflow(IntentRun.run, run_request(spec, "use", {"n": 1}), id=f"use-{uuid.uuid4().hex[:8]}", task_queue=queue)
                roles["failing"] = failing.id
                # Both end while the slow run's first step is still stuck in its handler: its
                # timeout gave the slot back, and so did the other run's failure.
                results = [await asyncio.wait_for(h.result(), 60) for h in (slow, failing)]
                assert not stuck.is_set()
                at_end = await until(lambda: _slots_are(client, queue, [], []), "every slot to be given back")
                await _replay(slow, failing)
            finally:
                stuck.set()
        return slow, failing, results, at_end

    slow, failing, results, at_end = asyncio.run(go())
    assert all(r["status"] == "succeeded" for r in results)
    # The slow run's step timed out, its slot went to the other run, whose step failed and gave
    # it back; then each got it again, first come first served.
    assert calls == [(slow.id, 1), (failing.id, 1), (slow.id, 2), (failing.id, 2)]
    for r, ended in ((results[0], "step_timed_out"), (results[1], "step_failed")):
        kinds = [e["type"] for e in r["events"]]
        assert kinds.count("slot_requested") == kinds.count("slot_granted") == 2
        assert kinds.index(ended) < len(kinds) - 1 - kinds[::-1].index("slot_requested")
    assert at_end["granted"] == 4 and at_end["holders"] == [] and at_end["waiting"] == []


async def _called(calls: list, lock, run: str) -> bool:
    with lock:
        return any(r == run for r, _ in calls)


def test_a_run_dropped_from_the_workers_cache_after_every_task_still_holds_and_gives_back_its_slot(temporal_address):
    # With no workflow cache, the worker drops the run after each of its tasks (as it does when
    # it needs the room) and replays it from its history at the next one. Being dropped is not
    # the run's end: it holds its slot across the drops and gives it back once, when it ends,
    # and nothing raises unseen on the way (a run's clean-up must not make workflow calls when
    # it is dropped: no workflow call can run there).
    import gc
    import sys

    spec = _spec(1)
    holders = Holders()
    unraisable: list = []
    previous = sys.unraisablehook
    sys.unraisablehook = unraisable.append

    async def go():
        client = await Client.connect(temporal_address)
        queue = _queue()
        async with worker(client, queue, Activities(spec, registry=holders.registry, capacity_check_s=1), max_cached_workflows=0):
            try:
                run = await _start(client, spec, queue, 0)
                await until(_holding(holders, run.id), "the run to hold `one`")
                held = await until(lambda: _slots_are(client, queue, [run.id], []), "the semaphore to list the run as holder")
                holders.let_go(run.id)
                result = await asyncio.wait_for(run.result(), 60)
                at_end = await until(lambda: _slots_are(client, queue, [], []), "the slot to be given back")
                await _replay(run)
            finally:
                holders.let_all_go()
        return held, result, at_end

    try:
        held, result, at_end = asyncio.run(go())
        gc.collect()  # a dropped run's coroutine is closed when it is collected
    finally:
        sys.unraisablehook = previous
    assert result["status"] == "succeeded"
    assert held["holders"][0]["run"] and at_end["granted"] == 1 and at_end["recovered"] == 0
    dropped = [u for u in unraisable if "workflow event loop" in str(u.exc_value)]
    assert not dropped, [str(u.exc_value) for u in dropped]
