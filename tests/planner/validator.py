"""An independent validator of plans against LANGUAGE.md "Plans".

It reads the checked Spec (names, options, policies as written) and a Plan's JSON, and re-derives
everything else itself: option attributes after degraded overrides (and whether they still finish
within their action's `timeout`), which policies apply, predicate values, fact times, earliest
starts, totals. It shares no code with intento's problem.py,
compile.py, semantics.py or evaluate.py, so a bug there cannot hide here.
"""

from __future__ import annotations

import math
from decimal import Decimal

from intento.syntax import ast
from intento.values import Duration, Money

INF = float("inf")


def _val(v):
    if isinstance(v, Money):
        return v.amount
    if isinstance(v, Duration):
        return v.ms
    return v


def _get(e, env):
    if isinstance(e, ast.Literal):
        return e.value
    return env.get(e.name, "<missing>")


def pred(e, env) -> bool:
    if isinstance(e, ast.And):
        return all(pred(x, env) for x in e.items)
    if isinstance(e, ast.Or):
        return any(pred(x, env) for x in e.items)
    if isinstance(e, ast.Not):
        return not pred(e.item, env)
    if isinstance(e, ast.Ref):
        return env.get(e.name) is True
    if isinstance(e, ast.Literal):
        return e.value is True
    if isinstance(e, ast.In):
        lst, item = _get(e.right, env), _get(e.left, env)
        return isinstance(lst, tuple) and item != "<missing>" and _val(item) in [_val(x) for x in lst]
    left, right = _get(e.left, env), _get(e.right, env)
    if left == "<missing>" or right == "<missing>":
        return e.op == "!="
    a, b = _val(left), _val(right)
    if type(a) is not type(b):
        if isinstance(a, (int, Decimal)) and isinstance(b, (int, Decimal)) and not isinstance(a, bool) and not isinstance(b, bool):
            a, b = Decimal(a), Decimal(b)
        else:
            return e.op == "!="
    if e.op == "==":
        return a == b
    if e.op == "!=":
        return a != b
    if isinstance(a, (str, bool, tuple)):
        return False
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[e.op]


def ftime(e, facts_at) -> float:
    if e is None:
        return 0
    if isinstance(e, ast.Ref):
        return facts_at.get(e.name, INF)
    ts = [ftime(x, facts_at) for x in e.items]
    return max(ts) if isinstance(e, ast.And) else min(ts)


def names(e) -> set:
    if isinstance(e, ast.Ref):
        return {e.name}
    if isinstance(e, (ast.And, ast.Or)):
        return set().union(*(names(x) for x in e.items))
    if isinstance(e, ast.Not):
        return names(e.item)
    if isinstance(e, (ast.Compare, ast.In)):
        return names(e.left) | names(e.right)
    return set()


def effective_option(spec, action, provider, state):
    opt = spec.actions[action].option(provider)
    attrs = dict(opt.attrs)
    cost, lat, rel = opt.cost, opt.latency_ms, opt.reliability
    ps = (state or {}).get("providers", {}).get(provider, {})
    if ps.get("status") == "degraded":
        if ps.get("latency") is not None:
            lat = ps["latency"] if isinstance(ps["latency"], int) else _ms(ps["latency"])
            attrs["latency"] = Duration(lat)
        if ps.get("cost") is not None:
            cost = Decimal(str(ps["cost"]).split()[0])
            attrs["cost"] = Money(cost, spec.currency)
        if ps.get("reliability") is not None:
            rel = Decimal(str(ps["reliability"]))
            attrs["reliability"] = rel
    return cost, lat, rel, attrs


def _ms(text: str) -> int:
    units = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000}
    for u in ("ms", "s", "m", "h", "d"):
        if text.endswith(u) and text[: -len(u)].replace(".", "").isdigit():
            return int(Decimal(text[: -len(u)]) * units[u])
    raise ValueError(text)


def typed_context(spec, intent, context) -> dict:
    """The request's given values as the language's values, by each name's declared type."""
    out = {}
    for name, v in (context or {}).items():
        t = intent.given[name].type if name in intent.given else None
        if t == "money":
            amount = str(v).split()[0] if isinstance(v, str) else str(v)
            out[name] = Money(Decimal(amount), spec.currency)
        elif t == "number":
            out[name] = Decimal(str(v))
        elif t == "duration":
            out[name] = Duration(v if isinstance(v, int) else _ms(v))
        else:
            out[name] = v
    return out


class _Undecidable(Exception):
    pass


def _guard_type(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, Money):
        return "money " + v.currency
    if isinstance(v, Duration):
        return "duration"
    if isinstance(v, (int, Decimal)):
        return "number"
    if isinstance(v, str):
        return "string"
    return "list" if isinstance(v, tuple) else "?"


def _guard_get(e, env):
    if isinstance(e, ast.Literal):
        return e.value
    if isinstance(e, ast.Ref) and env.get(e.name) is not None:
        return env[e.name]
    raise _Undecidable


def guard(e, env) -> bool:
    """LANGUAGE.md guards, failing closed: any comparison that cannot be decided (a missing
    value, mismatched types, an ordering of strings, a non-list right of `in`) raises."""
    if isinstance(e, (ast.And, ast.Or)):
        values = [guard(x, env) for x in e.items]
        return all(values) if isinstance(e, ast.And) else any(values)
    if isinstance(e, ast.Not):
        return not guard(e.item, env)
    if isinstance(e, (ast.Ref, ast.Literal)):
        v = _guard_get(e, env)
        if not isinstance(v, bool):
            raise _Undecidable
        return v
    if isinstance(e, ast.In):
        lst, item = _guard_get(e.right, env), _guard_get(e.left, env)
        if not isinstance(lst, tuple):
            raise _Undecidable
        same = [x for x in lst if _guard_type(x) == _guard_type(item)]
        if lst and not same:
            raise _Undecidable
        return _val(item) in [_val(x) for x in same]
    a, b = _guard_get(e.left, env), _guard_get(e.right, env)
    if _guard_type(a) != _guard_type(b):
        raise _Undecidable
    a, b = _val(a), _val(b)
    if e.op == "==":
        return a == b
    if e.op == "!=":
        return a != b
    if isinstance(a, (str, bool, tuple)):
        raise _Undecidable
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[e.op]


def applies(policy, intent, context) -> bool:
    """A policy applies unless its guard is decided false (undeclared names fail closed)."""
    if policy.when is None:
        return True
    if not names(policy.when) <= set(intent.given):
        return True
    try:
        return guard(policy.when, {k: v for k, v in context.items() if k in intent.given})
    except _Undecidable:
        return True


def check_plan(spec, intent_name, context, state, plan: dict, batch: bool = False) -> list[str]:
    """Every way the plan breaks the contract (empty: valid). ``batch``: the plan is one of a
    batch, whose other plans may hold a provider's slots, so a step may wait past its requirements."""
    problems: list[str] = []
    intent = spec.intents[intent_name]
    context = typed_context(spec, intent, context)
    state = state or {}
    observed = set(state.get("facts", []))
    down = {p for p, s in state.get("providers", {}).items() if s.get("status") == "down"}
    # Slots other work holds now: each a run from 0 to the time it is back (ms, as the test writes them).
    held = {p: [(0, int(str(ms).removesuffix("ms"))) for ms in s.get("busy", [])] for p, s in state.get("providers", {}).items()}
    steps = plan["steps"]
    acts = [s["action"] for s in steps]
    if len(acts) != len(set(acts)):
        problems.append("an action appears twice")
    env_steps = {}
    total_cost, total_rel, latency = Decimal(0), Decimal(1), 0
    for s in steps:
        a = spec.actions.get(s["action"])
        if a is None or a.compensation:
            problems.append(f"{s['action']} is not plannable")
            continue
        if a.option(s["provider"]) is None:
            problems.append(f"{s['action']} has no option via {s['provider']}")
            continue
        cost, lat, rel, attrs = effective_option(spec, s["action"], s["provider"], state)
        if Decimal(s["cost"]) != cost or s["latency_ms"] != lat or s["end_ms"] != s["start_ms"] + lat:
            problems.append(f"{s['action']}: cost/latency do not match the option")
        if s["provider"] in down:
            problems.append(f"{s['action']} uses {s['provider']}, observed down")
        if a.timeout_ms is not None and lat > a.timeout_ms:
            problems.append(f"{s['action']} via {s['provider']} takes {lat}ms, longer than its timeout {a.timeout_ms}ms")
        total_cost += cost
        total_rel *= rel
        latency = max(latency, s["end_ms"])
        env_steps[s["action"]] = (s, attrs)
    if problems:
        return problems
    # Facts over time.
    facts_at = {f: 0 for f in observed}
    for name, (s, _) in env_steps.items():
        for f in spec.actions[name].achieves:
            facts_at[f] = min(facts_at.get(f, INF), s["end_ms"])
    hard = [p for p in spec.policies.values() if p.soft is None and applies(p, intent, context)]
    soft = [p for p in spec.policies.values() if p.soft is not None and applies(p, intent, context)]
    on = {}
    for s, _ in env_steps.values():
        on[s["provider"]] = on.get(s["provider"], 0) + 1
    # Only a capacity the plan could exceed lets a step wait past its requirements.
    capacity_binding = batch or any(spec.providers[p].capacity is not None and n + len(held.get(p, [])) > spec.providers[p].capacity for p, n in on.items())
    for name, (s, attrs) in env_steps.items():
        req = spec.actions[name].requires
        befores = [st.formula for p in hard for st in p.statements if isinstance(st, ast.RequireBefore) and st.action.name == name]
        ready = max([ftime(req, facts_at)] + [ftime(f, facts_at) for f in befores])
        if ready > s["start_ms"]:
            problems.append(f"{name} starts at {s['start_ms']} before its requirements hold ({ready})")
        elif ready < s["start_ms"] and not capacity_binding:
            # Soft `before` statements the plan honours may also delay a step.
            soft_befores = [st.formula for p in soft for st in p.statements if isinstance(st, ast.RequireBefore) and st.action.name == name]
            honoured = [ftime(f, facts_at) for f in soft_befores if ftime(f, facts_at) <= s["start_ms"]]
            if max([ready] + honoured) != s["start_ms"]:
                problems.append(f"{name} starts at {s['start_ms']}, later than its requirements allow ({ready})")
    if ftime(intent.goal, facts_at) == INF:
        problems.append("the goal does not hold")
    # Hard policies.
    for p in hard:
        for st in p.statements:
            bad = _statement_broken(spec, st, env_steps, facts_at, total_cost, latency, total_rel)
            if bad:
                problems.append(f"{p.name}: {bad}")
    if intent.budget is not None and total_cost > intent.budget:
        problems.append("over budget")
    if intent.deadline_ms is not None and latency > intent.deadline_ms:
        problems.append("past the deadline")
    for pname, prov in spec.providers.items():
        if prov.capacity is None:
            continue
        runs = [(s["start_ms"], s["end_ms"]) for s, _ in env_steps.values() if s["provider"] == pname] + held.get(pname, [])
        for t, _ in runs:
            if sum(1 for a, b in runs if a <= t < b) > prov.capacity:
                problems.append(f"capacity of {pname} exceeded at {t}")
    # Totals.
    if plan["cost"] is not None and Decimal(plan["cost"]) != total_cost:
        problems.append(f"cost {plan['cost']} != {total_cost}")
    if plan["latency_ms"] != latency:
        problems.append(f"latency {plan['latency_ms']} != {latency}")
    if not math.isclose(plan["reliability"], float(total_rel), rel_tol=1e-9):
        problems.append("reliability is not the product")
    # Broken soft statements are reported, exactly (a reliability limit within the contract's
    # rounding of its edge may be judged either way).
    must, may = set(), set()
    for p in soft:
        for st in p.statements:
            if _statement_broken(spec, st, env_steps, facts_at, total_cost, latency, total_rel):
                must.add(p.name)
            if _statement_broken(spec, st, env_steps, facts_at, total_cost, latency, total_rel, edge_ok=False):
                may.add(p.name)
    reported = {b["policy"] for b in plan["broken"]}
    if not must <= reported <= may:
        problems.append(f"broken soft policies {sorted(reported)} != {sorted(must)}")
    return problems


def _in_scope(st_actions, name):
    return st_actions is None or name in {a.name for a in st_actions}


def _statement_broken(spec, st, env_steps, facts_at, cost, latency, rel, edge_ok: bool = True) -> str | None:
    cmp = {"<=": lambda a, b: a <= b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "==": lambda a, b: a == b}
    if isinstance(st, ast.ForbidVia):
        for name, (_, attrs) in env_steps.items():
            if _in_scope(st.actions, name) and pred(st.pred, attrs):
                return f"{name} chosen via a forbidden option"
    elif isinstance(st, ast.RequireFor):
        for name, (_, attrs) in env_steps.items():
            if name in {a.name for a in st.actions} and not pred(st.pred, attrs):
                return f"{name} chosen via an option that is not allowed"
    elif isinstance(st, ast.ForbidProvider):
        if any(s["provider"] == st.provider.name for s, _ in env_steps.values()):
            return "forbidden provider used"
    elif isinstance(st, ast.ForbidAction):
        if st.action.name in env_steps:
            return "forbidden action used"
    elif isinstance(st, ast.RequireFact):
        if ftime(st.formula, facts_at) == INF:
            return "required fact does not hold"
    elif isinstance(st, ast.RequireBefore):
        if st.action.name in env_steps and ftime(st.formula, facts_at) > env_steps[st.action.name][0]["start_ms"]:
            return "required fact not before the step"
    elif isinstance(st, ast.Limit):
        v = _val(st.value.value)
        m = st.metric.name
        if m == "cost" and not cmp[st.op](cost, v):
            return "cost limit"
        if m == "latency" and not cmp[st.op](latency, v):
            return "latency limit"
        if m == "reliability":
            # The contract compares sums of -ln, rounded at 1e-6: allow that rounding at the edge.
            lhs = -sum(Decimal(math.log(float(x))) for x in [rel]) if rel > 0 else Decimal("inf")
            rhs = -Decimal(math.log(float(v))) if v > 0 else Decimal("inf")
            flip = {"<=": ">=", "<": ">", ">=": "<=", ">": "<", "==": "=="}[st.op]
            if not cmp[flip](lhs, rhs) and (not edge_ok or abs(lhs - rhs) > Decimal("0.00001")):
                return "reliability limit"
    elif isinstance(st, ast.LimitCount):
        n = sum(1 for name, (_, attrs) in env_steps.items() if _in_scope(st.actions, name) and pred(st.pred, attrs))
        if not cmp[st.op](n, int(st.value.value)):
            return "count limit"
    elif isinstance(st, ast.Distinct):
        used = [env_steps[a.name][0]["provider"] for a in st.actions if a.name in env_steps]
        if len(used) != len(set(used)):
            return "distinct providers"
    return None
