"""Checker stages 6-7: facts nothing achieves (warnings) and `test` blocks.

Input: the `_Checker` state after stages 1-5. Output: test specs and diagnostics on it.
"""

from __future__ import annotations


from intento.syntax import ast
from intento.values import type_name

from intento.check._declarations import (
    _actions_exist,
    _check_bound,
    _single,
    _typed_option_attr,
    check_predicate,
    fact_names,
    option_attr_reader,
)
from intento.check._state import BECAUSE_WORDS, EXPECT_METRICS, OVERRIDABLE, STATUS_WORDS, _Checker
from intento.spec import TestSpec

# ---- stage 6: facts --------------------------------------------------------------------------


def check_facts(c: _Checker) -> None:
    """Warn about facts that something needs but no action achieves (only an observation could)."""
    achieved = {f for a in c.actions.values() if not a.compensation for f in a.achieves}
    needs: list[tuple[ast.Ref, str]] = []
    for a in c.actions.values():
        needs += [(r, f"`requires` of action `{a.name}`") for r in fact_names(a.requires)]
    for i in c.intents.values():
        needs += [(r, f"the goal of intent `{i.name}`") for r in fact_names(i.goal)]
    for p in c.policies.values():
        for st in p.statements:
            if isinstance(st, (ast.RequireFact, ast.RequireBefore)):
                needs += [(r, f"policy `{p.name}`") for r in fact_names(st.formula)]
    for ref, who in needs:
        if ref.name not in achieved:
            c.warn(
                "W101",
                f"no action achieves fact `{ref.name}`, needed by {who}",
                ref.span,
                help=c.suggest(ref.name, achieved, "only an observation can make it true"),
            )


# ---- stage 7: tests --------------------------------------------------------------------------


def resolve_tests(c: _Checker) -> None:
    names: dict[str, ast.TestDecl] = {}
    for t in c.tests:
        if t.name in names:
            c.error("E011", f"test \"{t.name}\" is declared twice", t.span, help=f"the first is at {names[t.name].span.location}")
            continue
        names[t.name] = t
        owner = f'test "{t.name}"'
        plan = _single(c, t.items, ast.PlanStep, "plan", owner)
        expects = tuple(it for it in t.items if not isinstance(it, ast.PlanStep))
        if plan is None:
            c.error("E030", f"{owner} has no `plan`", t.span, help="start with `plan INTENT given { ... }`")
        else:
            _check_plan_step(c, plan)
        if not expects:
            c.error("E030", f"{owner} has no `expect`", t.span, help="add at least one `expect`, e.g. `expect feasible`")
        for ex in expects:
            _check_expect(c, ex)
        c.test_specs.append(TestSpec(t.name, plan, expects, t.span))


def _check_plan_step(c: _Checker, plan: ast.PlanStep) -> None:
    if not c.known("intent", plan.intent, "E014"):
        return
    intent = c.intents.get(plan.intent.name)
    if intent is None:
        return
    seen: set[str] = set()
    for gv in plan.given or ():
        n = gv.name.name
        if n in seen:
            c.error("E034", f"given value `{n}` is set twice", gv.name.span, help="set each once")
            continue
        seen.add(n)
        param = intent.given.get(n)
        if param is None:
            c.error("E015", f"intent `{intent.name}` has no given `{n}`", gv.name.span, help=c.suggest(n, intent.given, "declare it in the intent's `given`"))
            continue
        got = type_name(gv.value.value)
        if got != param.type:
            c.error("E018", f"`{n}` takes a {param.type} value, found {got}", gv.value.span, help=f"give a {param.type} value, as declared at {param.span.location}")
        else:
            c.scan_money(gv.value)
    missing = [n for n in intent.given if n not in seen]
    if missing:
        c.error(
            "E030",
            "missing given value" + ("s " if len(missing) > 1 else " ") + ", ".join(f"`{m}`" for m in missing),
            plan.intent.span,
            help=f"intent `{intent.name}` needs every `given` value",
        )
    for ob in plan.observe or ():
        _check_observation(c, ob)


def _check_observation(c: _Checker, ob: ast.Observation) -> None:
    if ob.subject.name == "fact" and ob.word.name not in STATUS_WORDS:
        if ob.attrs is not None:
            c.error("E031", "a fact observation takes no attributes", ob.span)
        return
    if ob.word.name not in STATUS_WORDS:
        c.error(
            "E031",
            f"unknown provider status `{ob.word.name}`",
            ob.word.span,
            help="write `P up`, `P down`, `P degraded { latency 2s }`, or `fact some.fact`",
        )
        return
    c.known("provider", ob.subject, "E012")
    for a in ob.attrs or ():
        if a.name.name not in OVERRIDABLE:
            c.error("E031", f"an observation can override `latency`, `cost` or `reliability`, not `{a.name.name}`", a.name.span)
        else:
            _typed_option_attr(c, a, f"the observation of `{ob.subject.name}`")


def _check_expect(c: _Checker, ex: ast.Expectation) -> None:
    match ex:
        case ast.ExpectInfeasible():
            for n in ex.because:
                if n.name not in c.decls["policy"] and n.name not in c.decls["provider"] and n.name not in BECAUSE_WORDS:
                    c.error(
                        "E035",
                        f"`{n.name}` names no policy, provider, `goal`, `budget` or `deadline`",
                        n.span,
                        help=c.suggest(n.name, [*c.decls["policy"], *BECAUSE_WORDS]),
                    )
        case ast.ExpectVia():
            c.known("provider", ex.provider, "E012")
            c.plannable(ex.action)
        case ast.ExpectNoVia():
            _actions_exist(c, ex.actions)
            check_predicate(c, ex.pred, option_attr_reader(c), "a predicate")
        case ast.ExpectStep():
            c.plannable(ex.action)
        case ast.ExpectMetric():
            want = EXPECT_METRICS.get(ex.metric.name)
            if want is None:
                c.error("E028", f"unknown metric `{ex.metric.name}`", ex.metric.span, help="expect `cost`, `latency` or `reliability`")
            else:
                _check_bound(c, ex.value, want, f"`expect {ex.metric.name}`")
        case ast.ExpectBroken():
            if c.known("policy", ex.policy, "E035"):
                p = c.decls["policy"][ex.policy.name]
                if not any(isinstance(it, ast.Soft) for it in p.items):
                    c.error("E030", f"policy `{ex.policy.name}` is hard, so it is never broken", ex.policy.span, help="`expect broken` names a `soft` policy")

