"""An option that cannot finish within its action's `timeout` is never planned: the executor
would fail the step before it could end. Its latency is the effective one (declared, or observed
degraded); equal to the timeout is allowed. Both back-ends and the independent validator agree,
and explanations say which timeout ruled the option out."""

from __future__ import annotations

import pytest

from intento.check import check_sources
from intento.diagnostics import Source
from intento.render import explanation_markdown, plan_text
from intento.solve import plan
from tests.planner.validator import check_plan

BACKENDS = ["cpsat", "constraint"]


def _spec(text):
    result = check_sources([Source("pay.intent", text)])
    assert result.ok, "\n".join(d.render() for d in result.errors)
    return result.spec


def _project(slow_latency: str, *, timeout: str = "30m", external: bool = False):
    """`pay` through `slow` (cheap) or `fast` (dear): the objective prefers `slow` whenever it may."""
    flags = "external; " if external else ""
    return _spec(
        f"""
        provider slow {{ }}
        provider fast {{ }}
        action pay {{
          {flags}achieves paid; timeout {timeout}
          via slow {{ cost 1 USD; latency {slow_latency} }}
          via fast {{ cost 5 USD; latency 20m }}
        }}
        intent job {{ goal paid }}
        """
    )


def _alternative(p, action, provider):
    return next(a for st in p.explanation.steps if st.action == action for a in st.alternatives if a.provider == provider)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_declared_latency_over_the_timeout_is_never_planned(backend):
    spec = _project("40m")
    p = plan(spec, "job", {}, None, backend=backend)
    assert p.status == "optimal"
    assert p.step("pay").provider == "fast"
    assert check_plan(spec, "job", {}, None, p.model_dump()) == []
    alt = _alternative(p, "pay", "slow")
    assert alt.reason == "too_slow"
    assert [(r.kind, r.policy, r.statement) for r in alt.by] == [("timeout", "slow", "pay via slow: latency 40m exceeds the action's timeout 30m")]
    assert alt.by[0].location == "pay.intent:6:11"  # the `via slow` option
    assert "pay: not slow: would time out: latency 40m exceeds the action's timeout 30m" in plan_text(p)


@pytest.mark.parametrize("external", [False, True])
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_degraded_latency_over_the_timeout_is_never_planned(backend, external):
    spec = _project("10m", external=external)
    state = {"providers": {"slow": {"status": "degraded", "latency": "2h"}}}
    assert plan(spec, "job", {}, None, backend=backend).step("pay").provider == "slow"
    p = plan(spec, "job", {}, state, backend=backend, explain="full")
    assert p.status == "optimal"
    assert p.step("pay").provider == "fast"
    assert check_plan(spec, "job", {}, state, p.model_dump()) == []
    alt = _alternative(p, "pay", "slow")
    assert alt.reason == "too_slow"
    assert [(r.kind, r.policy, r.statement) for r in alt.by] == [("timeout", "slow", "pay via slow: degraded latency 2h exceeds the action's timeout 30m")]
    assert "would time out: degraded latency 2h exceeds the action's timeout 30m" in explanation_markdown(p, spec)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_latency_equal_to_the_timeout_is_allowed_one_ms_more_is_not(backend):
    assert plan(_project("30m"), "job", {}, None, backend=backend).step("pay").provider == "slow"
    assert plan(_project("1800001ms"), "job", {}, None, backend=backend).step("pay").provider == "fast"
    spec = _project("10m")
    exactly = {"providers": {"slow": {"status": "degraded", "latency": "30m"}}}
    over = {"providers": {"slow": {"status": "degraded", "latency": 1_800_001}}}
    assert plan(spec, "job", {}, exactly, backend=backend).step("pay").provider == "slow"
    assert plan(spec, "job", {}, over, backend=backend).step("pay").provider == "fast"


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_only_option_too_slow_is_infeasible_and_the_conflict_names_the_timeout(backend):
    spec = _spec(
        """
        provider slow { }
        action validate { achieves valid; via slow { latency 1s } }
        action pay { requires valid; achieves paid; timeout 30m; via slow { cost 1 USD; latency 10m } }
        intent job { goal paid }
        """
    )
    state = {"providers": {"slow": {"status": "degraded", "latency": "2h"}}}
    p = plan(spec, "job", {}, state, backend=backend)
    assert p.status == "infeasible" and p.steps == []
    conflict = {(r.kind, r.policy, r.statement) for r in p.explanation.conflict}
    assert conflict == {("goal", "goal", "goal paid"), ("timeout", "slow", "pay via slow: degraded latency 2h exceeds the action's timeout 30m")}
    assert "`pay` has no usable option (`slow` would time out: degraded latency 2h exceeds the action's timeout 30m)" in p.explanation.summary
    unused = {u.action: u for u in p.explanation.unused}
    assert unused["pay"].reason == "too_slow"
    # `validate` runs on the same degraded provider, but declares no timeout: nothing rules it out.
    assert unused["validate"].reason == "not_needed"
    assert "pay: not used: every option would time out" in plan_text(p)


def test_the_validator_rejects_a_step_slower_than_its_timeout():
    spec = _project("10m")
    state = {"providers": {"slow": {"status": "degraded", "latency": "2h"}}}
    good = plan(spec, "job", {}, None).model_dump()
    assert good["steps"][0]["provider"] == "slow"
    assert check_plan(spec, "job", {}, None, good) == []
    # The plan that was right before `slow` degraded, with the step at the latency observed now.
    stale = dict(good, latency_ms=7_200_000, steps=[dict(good["steps"][0], latency_ms=7_200_000, end_ms=7_200_000)])
    assert check_plan(spec, "job", {}, state, stale) == ["pay via slow takes 7200000ms, longer than its timeout 1800000ms"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_conflict_between_a_timeout_and_another_rule_names_both(backend):
    # `fast` is allowed on its own, so no action is left without options: the sentence names the
    # too-slow option itself, next to the budget that rules out the other one.
    spec = _spec(_project("40m").sources[0].text.replace("intent job { goal paid }", "intent job { goal paid; budget 3 USD }"))
    p = plan(spec, "job", {}, None, backend=backend)
    assert p.status == "infeasible"
    assert {(r.kind, r.policy) for r in p.explanation.conflict} == {("goal", "goal"), ("budget", "budget"), ("timeout", "slow")}
    assert "`pay` via `slow` would time out: latency 40m exceeds the action's timeout 30m" in p.explanation.summary


def test_an_option_failed_for_the_run_is_named_as_such_in_a_conflict():
    from intento.explain import conflict_sentence, minimal_conflict
    from intento.solve import prepare

    spec = _spec(_project("10m").sources[0].text.replace("intent job { goal paid }", "intent job { goal paid; budget 3 USD }"))
    problem = prepare(spec, "job", excluded={("pay", "slow"): "declined permanently"})
    conflict = minimal_conflict(problem)
    assert {m.kind for m in conflict} == {"goal", "budget", "failed"}
    assert "`pay` via `slow` failed for this run (declined permanently)" in conflict_sentence(problem, conflict)
