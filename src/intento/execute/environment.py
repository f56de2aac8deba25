"""Where steps run: a simulated world on a virtual clock, or real handlers on the wall clock.

Input: step requests from the executor. Output: outcomes and observations, in time order.

`SimEnvironment` runs every step against simulated providers described by a scenario (latency
spread, failure rates, outages and recoveries at given times, external facts landing late or
never) on a virtual clock, so a day of operations runs in seconds, and exactly the same way for
the same seed: each step's randomness is drawn from a generator seeded by (seed, idempotency key,
attempt), never from the order things happen in. Effects are written to a journal, which plays
the provider's side: an idempotent step re-sent with the same key has no second effect, and the
journal answers reconciliation after a crash.

`RealEnvironment` calls registered handlers in a thread pool.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import random
import time
import logging
import queue
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from intento.execute.handlers import PermanentError, Registry, RetryableError, StepContext
from intento.values import parse_duration


@dataclass
class StepRequest:
    run: str
    action: str
    provider: str
    attempt: int
    key: str
    latency_ms: int
    timeout_ms: int | None
    idempotent: bool
    context: dict
    compensation_for: str | None = None


@dataclass
class Outcome:
    kind: str  # succeeded | failed | timed_out
    request: StepRequest
    at: int
    latency_ms: int = 0
    facts: list[str] = field(default_factory=list)
    error: str | None = None
    retryable: bool = True


# ---- scenarios --------------------------------------------------------------------------------


def _ms(v: str | int) -> int:
    if isinstance(v, int):
        return v
    d = parse_duration(v)
    if d is None:
        raise ValueError(f"not a duration: {v!r}")
    return d.ms


def _duration_field(v):
    if v is None or isinstance(v, int):
        return v
    if isinstance(v, str) and parse_duration(v) is not None:
        return v
    raise ValueError(f"not a duration: {v!r} (write \"30s\", \"5m\", \"2h\" or milliseconds)")


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: str | int = Field(alias="from", description="when the outage starts (virtual time: \"30s\" or ms)")
    end: str | int | None = Field(None, alias="to", description="when it ends (None: never)")

    _check = field_validator("start", "end")(_duration_field)

    def covers(self, now: int) -> bool:
        end = _ms(self.end) if self.end is not None else None
        return _ms(self.start) <= now and (end is None or now < end)


class Spike(Window):
    factor: float = Field(ge=1, le=10_000, description="a step sent in the window takes this many times longer")


class Burst(Window):
    failure_rate: float = Field(ge=0, le=1, description="probability that a step sent in the window fails")


class SimProvider(BaseModel):
    model_config = ConfigDict(extra="forbid")
    latency_sigma: float = Field(0.2, ge=0, le=3, description="spread of the latency: a lognormal factor on the option's latency")
    failure_rate: float = Field(0.0, ge=0, le=1, description="probability that a step fails")
    outages: list[Window] = Field(default_factory=list, description="windows during which every step fails")
    spikes: list[Spike] = Field(default_factory=list, description="latency spikes: windows during which steps take `factor` times longer")
    bursts: list[Burst] = Field(default_factory=list, description="error bursts: windows during which steps fail with `failure_rate`")


class SimFact(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: str | int | None = Field(description="when the fact is observed; None: never")

    _check = field_validator("at")(_duration_field)


class SimObservation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: str | int
    provider: str | None = None
    status: str | None = None
    fact: str | None = None
    latency: str | int | None = None

    _check = field_validator("at", "latency")(_duration_field)


class Scenario(BaseModel):
    """A simulated world (`intento run --simulate SCENARIO.json`)."""

    model_config = ConfigDict(extra="forbid")
    seed: int = 0
    providers: dict[str, SimProvider] = Field(default_factory=dict)
    default: SimProvider = Field(default_factory=SimProvider)
    facts: dict[str, SimFact] = Field(default_factory=dict, description="external facts: when each lands (default: after its option's latency)")
    observations: list[SimObservation] = Field(default_factory=list, description="a status feed: provider status changes or facts at given times")


def simulate_step(scenario: Scenario, req: StepRequest, now: int) -> tuple[str, int, str | None]:
    """What a simulated provider does with a step sent at virtual time ``now``: (outcome kind,
    duration in ms, error). A pure function of the scenario, the request and the time, shared by
    the embedded executor's simulation and the Temporal engine's simulated activities."""
    prov = scenario.providers.get(req.provider, scenario.default)
    rng = _rng(scenario.seed, req.key, req.attempt)
    duration = max(1, int(round(req.latency_ms * rng.lognormvariate(0, prov.latency_sigma))))
    if any(w.covers(now) for w in prov.outages):
        # An unavailable provider answers with an error quickly.
        return "failed", min(duration, 250), f"{req.provider} is unavailable"
    for w in prov.spikes:
        if w.covers(now):
            duration = max(1, int(round(duration * w.factor)))
    if req.timeout_ms is not None and duration > req.timeout_ms:
        return "timed_out", req.timeout_ms, f"no answer within {req.timeout_ms}ms"
    failure_rate = max([prov.failure_rate] + [w.failure_rate for w in prov.bursts if w.covers(now)])
    if rng.random() < failure_rate:
        return "failed", duration, f"{req.provider} returned an error"
    return "succeeded", duration, None


class Environment:
    def now(self) -> int:
        raise NotImplementedError

    def dispatch(self, req: StepRequest) -> None:
        raise NotImplementedError

    def expect_external(self, req: StepRequest, facts: list[str], since: int) -> None:
        """An external action's facts are awaited from now on (the simulation schedules them)."""

    def wait(self, until: int | None) -> list[tuple[str, Any]]:
        raise NotImplementedError

    def reconcile(self, req: StepRequest) -> bool | None:
        return None

    def close(self) -> None:
        pass


def _rng(*parts: Any) -> random.Random:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class Journal:
    """The simulated providers' side: every effect a step had, by idempotency key, in a file
    (fsync'd per effect), shared by every simulated run of a store. An idempotent step sent again
    with the same key has no second effect; after a crash the journal answers reconciliation."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else None
        self.effects: dict[str, int] = {}
        self._lock = threading.Lock()
        if self.path and self.path.exists():
            for line in self.path.read_text(errors="replace").splitlines():
                try:
                    key = json.loads(line)["key"]
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by a kill mid-write: that effect was never acknowledged
                self.effects[key] = self.effects.get(key, 0) + 1

    def record(self, req: StepRequest) -> None:
        with self._lock:
            if req.idempotent and self.effects.get(req.key):
                return
            self.effects[req.key] = self.effects.get(req.key, 0) + 1
            if self.path:
                with os.fdopen(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a") as fh:
                    fh.write(json.dumps({"key": req.key, "action": req.action, "provider": req.provider, "idempotent": req.idempotent}) + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())


class SimEnvironment(Environment):
    def __init__(self, scenario: Scenario, start: int = 0, journal: str | Path | Journal | None = None):
        self.scenario = scenario
        self.clock = start
        self.heap: list[tuple[int, int, str, Any]] = []
        self.order = 0
        self.journal = journal if isinstance(journal, Journal) else Journal(journal)
        self._effects = self.journal.effects
        for fact, f in scenario.facts.items():
            if f.at is not None and _ms(f.at) > start:
                self._push(_ms(f.at), "observation", {"fact": fact, "source": "simulation"})
        for ob in scenario.observations:
            t = _ms(ob.at)
            if t > start:
                data = {k: v for k, v in ob.model_dump(exclude_none=True).items() if k != "at"}
                if "latency" in data:
                    data["latency"] = _ms(data["latency"])
                self._push(t, "observation", dict(data, source="simulation"))

    def _push(self, t: int, kind: str, item: Any) -> None:
        self.order += 1
        heapq.heappush(self.heap, (t, self.order, kind, item))

    def now(self) -> int:
        return self.clock

    def _provider(self, name: str) -> SimProvider:
        return self.scenario.providers.get(name, self.scenario.default)

    def dispatch(self, req: StepRequest) -> None:
        kind, duration, error = simulate_step(self.scenario, req, self.clock)
        t = self.clock + duration
        self._push(t, "outcome", Outcome(kind, req, t, duration, error=error, retryable=True))

    def expect_external(self, req: StepRequest, facts: list[str], since: int) -> None:
        for fact in facts:
            if fact in self.scenario.facts:
                continue  # scheduled from the scenario at start
            rng = _rng(self.scenario.seed, req.key, "external")
            t = since + max(1, int(round(req.latency_ms * rng.lognormvariate(0, self._provider(req.provider).latency_sigma))))
            self._push(t, "observation", {"fact": fact, "source": "simulation"})

    def _record_effect(self, req: StepRequest) -> None:
        """The provider's side: a repeated idempotency key has no second effect when idempotent."""
        self.journal.record(req)

    def wait(self, until: int | None) -> list[tuple[str, Any]]:
        if not self.heap or (until is not None and self.heap[0][0] > until):
            if until is not None:
                self.clock = max(self.clock, until)
            return []
        t, _, kind, item = heapq.heappop(self.heap)
        self.clock = max(self.clock, t)
        if kind == "outcome" and item.kind == "succeeded":
            self._record_effect(item.request)
        return [(kind, item)]

    def reconcile(self, req: StepRequest) -> bool | None:
        return bool(self._effects.get(req.key))

    def idle(self) -> bool:
        return not self.heap


class RealEnvironment(Environment):
    """Registered handlers, run in threads, on the wall clock (ms since the epoch)."""

    def __init__(self, registry: Registry, workers: int = 8, poll_s: float = 0.2):
        self.registry = registry
        self.pool = ThreadPoolExecutor(max_workers=workers)
        self.futures: dict[Future, StepRequest] = {}
        self.started: dict[Future, int] = {}
        self.poll_s = poll_s
        #: For the engine: finished futures, in order, and an event to set when one finishes.
        self._done: queue.SimpleQueue[Future] | None = None
        self._wake: threading.Event | None = None
        self._lock = threading.Lock()

    def notify(self, wake: threading.Event) -> None:
        """Report finished steps to `collect` (and set ``wake``) instead of `wait`'s polling."""
        self._done = queue.SimpleQueue()
        self._wake = wake

    def _finished(self, fut: Future) -> None:
        if self._done is not None:
            self._done.put(fut)
            self._wake.set()

    def now(self) -> int:
        return int(time.time() * 1000)

    def _call(self, req: StepRequest):
        fn = self.registry.find(req.action, req.provider)
        if fn is None:
            raise PermanentError(f"no handler registered for `{req.action}` via `{req.provider}`")
        ctx = StepContext(req.run, req.action, req.provider, req.attempt, req.key, req.context)
        return fn(ctx)

    def dispatch(self, req: StepRequest) -> None:
        with self._lock:
            fut = self.pool.submit(self._call, req)
            self.futures[fut] = req
            self.started[fut] = self.now()
        fut.add_done_callback(self._finished)

    def in_flight(self, run_id: str) -> bool:
        """Whether a handler of this run is still running (or queued) in the pool."""
        with self._lock:
            return any(r.run == run_id for r in self.futures.values())

    def collect(self, timeout: float = 0) -> list[tuple[str, Any]]:
        """The outcomes of steps that finished (after `notify`), waiting up to ``timeout``
        seconds for the first; each outcome's request names its run."""
        out = []
        if self._done is None:
            return out
        block = timeout > 0
        while True:
            try:
                fut = self._done.get(block=block, timeout=timeout if block else None)
            except queue.Empty:
                return out
            block = False
            with self._lock:
                req = self.futures.pop(fut, None)
                started = self.started.pop(fut, None)
            if req is not None:  # None: abandoned (timed out) meanwhile
                out.append(("outcome", self._outcome(fut, req, started)))

    def _outcome(self, fut: Future, req: StepRequest, started: int) -> Outcome:
        now = self.now()
        try:
            result = fut.result() or {}
            return Outcome("succeeded", req, now, int(result.get("latency_ms", now - started)), list(result.get("facts", [])))
        except PermanentError as e:
            return Outcome("failed", req, now, now - started, error=str(e) or "permanent error", retryable=False)
        except RetryableError as e:
            return Outcome("failed", req, now, now - started, error=str(e) or "retryable error")
        except Exception as e:  # a handler bug is a failure of the step, never a crash of the run
            logging.getLogger("intento.handlers").error(
                "handler of %s via %s raised", req.action, req.provider, exc_info=e,
                extra={"fields": {"run": req.run, "action": req.action, "provider": req.provider, "attempt": req.attempt}},
            )
            return Outcome("failed", req, now, now - started, error=f"{type(e).__name__}: {e}")

    def wait(self, until: int | None) -> list[tuple[str, Any]]:
        timeout = self.poll_s if until is None else max(0.0, min(self.poll_s, (until - self.now()) / 1000))
        done, _ = wait(list(self.futures), timeout=timeout, return_when=FIRST_COMPLETED) if self.futures else (set(), set())
        if not self.futures:
            time.sleep(timeout)
        out = []
        for fut in done:
            with self._lock:
                req = self.futures.pop(fut)
                started = self.started.pop(fut)
            out.append(("outcome", self._outcome(fut, req, started)))
        return out

    def abandon(self, req: StepRequest) -> None:
        """A timed-out step: its eventual result is ignored."""
        with self._lock:
            for fut, r in list(self.futures.items()):
                if r.key == req.key and r.attempt == req.attempt:
                    self.futures.pop(fut)
                    self.started.pop(fut, None)

    def reconcile(self, req: StepRequest) -> bool | None:
        fn = self.registry.reconcilers.get(req.action)
        if fn is None:
            return None
        return bool(fn(StepContext(req.run, req.action, req.provider, req.attempt, req.key, req.context)))

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
