"""Seeded fault schedules: what goes wrong, when, and for how long, in one request's world.

Input: a kind, the request's spec, its horizon (the healthy-world plan's makespan) and a rate.
Output: a simulator `Scenario` (plus the providers out for the whole run, for a hindsight plan).

Kinds, each drawn per provider with probability ``rate`` (or per external fact):

* ``outages``: the provider is unavailable from the start for the whole run (the adaptivity
  table's schedule; a hindsight plan knows which providers these are).
* ``outage windows``: unavailable from a time in the first 1.5 horizons for a lognormal stretch
  (median 0.4 horizon), then back; every other window is announced on the status feed a
  twentieth of a horizon after it starts, and again when it ends.
* ``latency spikes``: every step sent in the window takes 5, 20 or 100 times longer; a step with
  a `timeout` may time out.
* ``error bursts``: every step sent in the window fails with probability 0.5-0.95.
* ``late events``: an external fact lands on time (about its option's latency), late (after its
  `timeout`, before a further two latencies) or never: late and never each with probability
  ``rate``.

Every kind adds the same background noise as the adaptivity table: a 1% error rate on every step
and a lognormal latency spread (sigma 0.2).
"""

from __future__ import annotations

import random

from intento.execute import Scenario
from intento.spec import Spec

KINDS = ("outage windows", "latency spikes", "error bursts", "late events")
NOISE = {"failure_rate": 0.01, "latency_sigma": 0.2}


def _window(rng: random.Random, horizon_ms: int) -> tuple[int, int]:
    start = int(rng.uniform(0, 1.5 * horizon_ms))
    return start, start + max(1, int(horizon_ms * rng.lognormvariate(-0.9, 0.7)))


def schedule(kind: str, spec: Spec, horizon_ms: int, rate: float, rng: random.Random) -> tuple[Scenario, list[str]]:
    """A scenario of ``kind`` for a request whose healthy plan takes ``horizon_ms``; and the
    providers out for the whole run (only ``outages`` has any)."""
    horizon_ms = max(horizon_ms, 1)
    providers: dict[str, dict] = {}
    observations: list[dict] = []
    facts: dict[str, dict] = {}
    down: list[str] = []
    if kind == "outages":
        down = [p for p in spec.providers if rng.random() < rate]
        providers = {p: {"outages": [{"from": 0}]} for p in down}
    elif kind == "outage windows":
        announce = False
        for p in spec.providers:
            if rng.random() >= rate:
                continue
            start, end = _window(rng, horizon_ms)
            providers[p] = {"outages": [{"from": start, "to": end}]}
            announce = not announce
            if announce:
                lag = max(1, horizon_ms // 20)
                observations += [{"at": start + lag, "provider": p, "status": "down"}, {"at": end + lag, "provider": p, "status": "up"}]
    elif kind == "latency spikes":
        for p in spec.providers:
            if rng.random() < rate:
                start, end = _window(rng, horizon_ms)
                providers[p] = {"spikes": [{"from": start, "to": end, "factor": rng.choice([5, 20, 100])}]}
    elif kind == "error bursts":
        for p in spec.providers:
            if rng.random() < rate:
                start, end = _window(rng, horizon_ms)
                providers[p] = {"bursts": [{"from": start, "to": end, "failure_rate": round(rng.uniform(0.5, 0.95), 2)}]}
    elif kind == "late events":
        for a in spec.actions.values():
            if not a.external:
                continue
            latency = min(o.latency_ms for o in a.options)
            timeout = a.timeout_ms if a.timeout_ms is not None else 3 * latency
            for fact in a.achieves:
                u = rng.random()
                if u < rate:
                    facts[fact] = {"at": None}
                elif u < 2 * rate:
                    facts[fact] = {"at": int(rng.uniform(timeout, timeout + 2 * latency))}
                else:
                    facts[fact] = {"at": min(int(latency * rng.lognormvariate(0, 0.2)), timeout - 1)}
    else:
        raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(('outages',) + KINDS)}")
    scenario = Scenario.model_validate({"seed": rng.randrange(10**6), "default": NOISE, "providers": {p: dict(NOISE, **v) for p, v in providers.items()}, "observations": observations, "facts": facts})
    return scenario, down
