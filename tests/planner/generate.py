"""Hypothesis strategies for small random planning problems (project text, context, state)."""

from __future__ import annotations

from hypothesis import strategies as st

FACTS = ["f0", "f1", "f2", "f3"]
COSTS = ["0", "0.5", "1", "1.25", "2", "3"]
RELS = ["1", "0.99", "0.95", "0.9"]


@st.composite
def formula(draw, facts=FACTS, depth=0):
    if depth >= 1 or draw(st.booleans()):
        return draw(st.sampled_from(facts))
    op = draw(st.sampled_from(["and", "or"]))
    parts = draw(st.lists(st.sampled_from(facts), min_size=2, max_size=2, unique=True))
    return f"({parts[0]} {op} {parts[1]})"


@st.composite
def planning_case(draw, busy: bool = True):
    nprov = draw(st.integers(2, 4))
    providers = [f"p{i}" for i in range(nprov)]
    lines = []
    capacities = {}
    for p in providers:
        region = draw(st.sampled_from(["eu", "us"]))
        tags = draw(st.lists(st.sampled_from(["pci", "green"]), unique=True, max_size=2))
        cap = draw(st.sampled_from([None, None, None, 1]))
        capacities[p] = cap
        tag_text = "[" + ", ".join(f'"{t}"' for t in tags) + "]"
        lines.append(f'provider {p} {{ region "{region}"; tags {tag_text}' + (f"; capacity {cap}" if cap else "") + " }")
    nact = draw(st.integers(2, 6))
    actions = [f"a{i}" for i in range(nact)]
    for i, a in enumerate(actions):
        # Mostly a chain: action i achieves fact i (mod 4) and requires earlier facts, so most
        # goals are reachable; sometimes anything goes (cycles, unreachable facts).
        wild = draw(st.integers(0, 4)) == 0
        own = FACTS[i % len(FACTS)]
        extra = draw(st.lists(st.sampled_from(FACTS), max_size=1))
        achieves = sorted({own, *extra}) if not wild else draw(st.lists(st.sampled_from(FACTS), min_size=1, max_size=2, unique=True))
        earlier = FACTS[: min(i, len(FACTS))]
        if wild:
            req = draw(st.one_of(st.none(), formula()))
        elif earlier and draw(st.booleans()):
            req = draw(formula(facts=earlier)) if len(earlier) >= 2 else earlier[0]
        else:
            req = None
        opts = draw(st.lists(st.sampled_from(providers), min_size=1, max_size=3, unique=True))
        body = [f"achieves {', '.join(achieves)}"]
        if req:
            body.append(f"requires {req}")
        for p in opts:
            cost = draw(st.sampled_from(COSTS))
            lat = draw(st.integers(1, 20))
            rel = draw(st.sampled_from(RELS))
            body.append(f"via {p} {{ cost {cost} USD; latency {lat}ms; reliability {rel} }}")
        extra_flags = draw(st.sampled_from(["", "", "external", "idempotent", "undo comp"]))
        if extra_flags:
            body.append(extra_flags)
        # Within the range of latencies, declared (1-20ms) and degraded (1-30ms): some options
        # are too slow for it, some exactly as slow.
        timeout = draw(st.sampled_from([None, None, None, 5, 12, 20]))
        if timeout is not None:
            body.append(f"timeout {timeout}ms")
        lines.append(f"action {a} {{ " + "; ".join(body) + " }")
    # A compensation: never chosen by the planner, whatever it would achieve.
    lines.append(f"action comp {{ achieves {draw(st.sampled_from(FACTS))}; via {providers[0]} {{ cost 0 USD; latency 1ms }} }}")
    goal_facts = draw(st.lists(st.sampled_from(FACTS[: min(nact, len(FACTS))]), min_size=1, max_size=3, unique=True))
    goal = " and ".join(goal_facts) if draw(st.integers(0, 3)) else draw(formula())
    intent = ["given region: string", f"goal {goal}"]
    if draw(st.booleans()):
        intent.append(f"deadline {draw(st.integers(10, 90))}ms")
    if draw(st.booleans()):
        intent.append(f"budget {draw(st.sampled_from(['1', '2.5', '4', '6']))} USD")
    intent.append(
        draw(
            st.sampled_from(
                [
                    "",
                    "minimize cost then latency",
                    "minimize latency then cost",
                    "minimize risk then cost",
                    "minimize cost then risk then latency",
                    "minimize 2 * cost + 0.5 * latency + 10 * risk",
                    "minimize latency + cost",
                ]
            )
        )
    )
    lines.append("intent job { " + "; ".join(i for i in intent if i) + " }")
    templates = [
        lambda: 'when region == "eu"; forbid via where region != "eu"',
        lambda: f'require "pci" in tags for {draw(st.sampled_from(actions))}',
        lambda: f"forbid provider {draw(st.sampled_from(providers))}",
        lambda: f"forbid action {draw(st.sampled_from(actions))}",
        lambda: f"require {draw(st.sampled_from(FACTS))} before {draw(st.sampled_from(actions))}",
        lambda: f"require {draw(st.sampled_from(FACTS))}",
        lambda: f"limit cost <= {draw(st.sampled_from(['2', '3.5', '6']))} USD",
        lambda: f"limit latency <= {draw(st.integers(10, 60))}ms",
        lambda: "limit reliability >= 0.9",
        lambda: 'limit count(via where region == "eu") >= 1',
        lambda: 'require "green" in tags for ' + draw(st.sampled_from(actions)),
        lambda: "distinct provider for " + ", ".join(draw(st.lists(st.sampled_from(actions), min_size=2, max_size=2, unique=True))),
        lambda: f"limit latency >= {draw(st.integers(1, 30))}ms",
        lambda: f'limit count(via where "pci" in tags) == {draw(st.integers(0, 2))}',
        lambda: f"limit reliability > {draw(st.sampled_from(['0.8', '0.95']))}",
        lambda: f"forbid via [{draw(st.sampled_from(actions))}] where cost > 1 USD or latency >= 15ms",
    ]
    for i in range(draw(st.integers(0, 3))):
        stmt = templates[draw(st.integers(0, len(templates) - 1))]()
        soft = f"soft {draw(st.sampled_from(['1', '2.5', '10']))}; " if draw(st.integers(0, 3)) == 0 else ""
        lines.append(f"policy q{i} {{ {soft}{stmt} }}")
    source = "\n".join(lines) + "\n"
    context = {"region": draw(st.sampled_from(["eu", "us"]))}
    state: dict = {}
    facts = draw(st.lists(st.sampled_from(FACTS), unique=True, max_size=1))
    if facts:
        state["facts"] = facts
    provs = {}
    for p in draw(st.lists(st.sampled_from(providers), unique=True, max_size=1)):
        provs[p] = {"status": "down"}
    if draw(st.booleans()):
        p = draw(st.sampled_from(providers))
        if p not in provs:
            provs[p] = {"status": "degraded", "latency": f"{draw(st.integers(1, 30))}ms"}
            if draw(st.booleans()):
                provs[p]["cost"] = draw(st.sampled_from(["0.25 USD", "4"]))
            if draw(st.booleans()):
                provs[p]["reliability"] = draw(st.sampled_from(["0.5", "0.99"]))
    # Sometimes other work holds a slot of a capacity-1 provider, for a while (`busy`; not in
    # batches, which share capacity among their own requests only).
    capped = [p for p in providers if capacities[p] and p not in provs]
    if busy and capped and draw(st.integers(0, 3)) == 0:
        p = draw(st.sampled_from(capped))
        provs[p] = {"busy": [f"{draw(st.integers(1, 40))}ms"]}
    if provs:
        state["providers"] = provs
    return source, context, state
