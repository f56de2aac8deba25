"""A seeded generator of planning estates: N actions x M providers with realistic spreads.

Each action achieves its own fact and requires one or two earlier facts (sometimes either of
two), so the goal pulls in a large part of the estate; every action has 3-5 options across a pool
of providers with region, tags, cost, latency and reliability drawn from skewed distributions.
A shared policy set applies: EU data residency (guarded by the request's region), PCI for
payment-like actions, a cost ceiling, a separation-of-duties rule and a soft green preference.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Estate:
    source: str
    intent: str
    actions: int
    providers: int

    def given(self, region: str = "eu") -> dict:
        return {"request.region": region}


def estate(n_actions: int, n_providers: int | None = None, seed: int = 0, options=(3, 5), timeouts: bool = False) -> Estate:
    """``timeouts``: every action gets a `timeout` of 5 x its slowest option's latency (drawn
    from nothing random, so the estate is otherwise the same), for fault schedules with spikes."""
    rng = random.Random(seed)
    n_providers = n_providers or max(6, n_actions // 3)
    lines = []
    providers = []
    for i in range(n_providers):
        name = f"prov{i}"
        region = rng.choice(["eu", "eu", "us", "apac"])
        tags = [t for t in ("pci", "green", "soc2") if rng.random() < 0.4]
        cap = f"; capacity {rng.randint(5, 50)}" if rng.random() < 0.2 else ""
        lines.append(f'provider {name} {{ region "{region}"; tags [{", ".join(chr(34) + t + chr(34) for t in tags)}]{cap} }}')
        providers.append(name)
    for i in range(n_actions):
        body = [f"achieves f{i}"]
        if i > 0:
            k = rng.sample(range(max(0, i - 6), i), min(i, rng.choice([1, 1, 2])))
            if len(k) == 2 and rng.random() < 0.3:
                body.append(f"requires f{k[0]} or f{k[1]}")
            else:
                body.append("requires " + " and ".join(f"f{j}" for j in k))
        slowest = 0
        for p in rng.sample(providers, rng.randint(*options)):
            cost = round(rng.lognormvariate(-1.0, 0.8), 2)
            latency = max(1, int(rng.lognormvariate(6.0, 1.0)))
            slowest = max(slowest, latency)
            rel = round(1 - rng.betavariate(1, 150), 4)
            body.append(f"via {p} {{ cost {cost} USD; latency {latency}ms; reliability {max(rel, 0.5)} }}")
        if timeouts:
            body.append(f"timeout {5 * slowest}ms")
        lines.append(f"action a{i} {{ " + "; ".join(body) + " }")
    goal_facts = sorted({n_actions - 1, *rng.sample(range(n_actions), min(n_actions, max(1, n_actions // 10)))})
    lines.append(
        "intent job { given request.region: string; goal "
        + " and ".join(f"f{j}" for j in goal_facts)
        + " ; minimize cost then latency }"
    )
    lines.append('policy residency { when request.region == "eu"; forbid via where region != "eu" and region != "apac" }')
    pci = " , ".join(f"a{j}" for j in range(0, n_actions, 7))
    lines.append(f'policy pci {{ require "pci" in tags or "soc2" in tags for {pci} }}')
    lines.append(f"policy ceiling {{ limit cost <= {n_actions * 3} USD }}")
    if n_actions >= 2:
        lines.append(f"policy duties {{ distinct provider for a0, a{n_actions // 2} }}")
    lines.append("policy green { soft 1; require \"green\" in tags for a1 }" if n_actions > 1 else "")
    return Estate("\n".join(lines) + "\n", "job", n_actions, n_providers)
