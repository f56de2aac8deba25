"""The Plan: what the planner answers (JSON shape ``plan/v1``).

Input: built by `intento.solve`. Output: pydantic models with a JSON schema; every field is
documented. Everything in a plan is a deterministic function of the request, except the
solver's wall-clock and search counters, which are included only when asked for
(``include_timings``) so that the same request gives byte-identical JSON on every run.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class FrozenError(TypeError):
    """A frozen plan (one `intento.Project.plan` returned, shared with its cache) was changed."""


def _refuse(self, *args, **kwargs):
    raise FrozenError("this plan is frozen (shared with the project's plan cache); use plan.editable() for a copy you can change")


class FrozenList(list):
    """A list that refuses every change (the lists of a frozen plan). Still a `list`, so it
    serialises, compares and iterates as one."""

    __setitem__ = __delitem__ = __iadd__ = __imul__ = append = extend = insert = pop = remove = clear = sort = reverse = _refuse

    def __reduce__(self):  # copy, deepcopy and pickle build it whole, never item by item
        return (type(self), (list(self),))


class FrozenDict(dict):
    """A dict that refuses every change (the maps of a frozen plan)."""

    __setitem__ = __delitem__ = __ior__ = pop = popitem = clear = update = setdefault = _refuse

    def __reduce__(self):
        return (type(self), (dict(self),))


def _freeze(value: Any) -> Any:
    if isinstance(value, _Model):
        value.freeze()
        return value
    if isinstance(value, list):
        return FrozenList(_freeze(v) for v in value)
    if isinstance(value, dict):
        return FrozenDict((k, _freeze(v)) for k, v in value.items())
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The frozen mark lives in pydantic's private slot (None on every model that was never
    # frozen), so building a model costs nothing more for it.
    def freeze(self) -> "_Model":
        """Make this model, and everything in it, refuse changes (`FrozenError`); returns it.
        A frozen plan can be shared without copying: `intento.Project.plan` returns its cached
        plan itself."""
        if self.frozen:
            return self
        for name in type(self).model_fields:
            self.__dict__[name] = _freeze(self.__dict__[name])
        object.__setattr__(self, "__pydantic_private__", {"_frozen": True})
        return self

    @property
    def frozen(self) -> bool:
        private = self.__pydantic_private__
        return bool(private) and private.get("_frozen", False)

    def editable(self):
        """A copy of this model that can be changed (a frozen one cannot)."""
        return type(self).model_validate(self.model_dump())

    def __setattr__(self, name: str, value: Any) -> None:
        if self.frozen:
            _refuse(self)
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if self.frozen:
            _refuse(self)
        super().__delattr__(name)

    def __eq__(self, other: object) -> bool:
        # Equal when the fields are, frozen or not (pydantic's own equality also compares the
        # private slot that holds the frozen mark).
        if not isinstance(other, BaseModel):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]


class Step(_Model):
    action: str = Field(description="the action")
    provider: str = Field(description="the provider it runs through (the chosen option)")
    start_ms: int = Field(description="start, in ms from the plan's start: as early as its `requires` allows")
    end_ms: int = Field(description="start_ms + latency_ms")
    cost: str = Field(description="the option's cost, an exact decimal in the project currency")
    latency_ms: int = Field(description="the option's latency (after degraded-provider overrides)")
    reliability: float = Field(description="the option's reliability")
    achieves: list[str] = Field(description="facts true when the step ends")


class Broken(_Model):
    policy: str = Field(description="the soft policy")
    statement: str = Field(description="the statement broken, as written")
    penalty: str = Field(description="its penalty, in objective units")


class Objective(_Model):
    kind: Literal["lexicographic", "weighted"] = Field(description="how the terms combine")
    order: list[str] = Field(description="the optimisation stages, first is most important (`penalty` when soft policies apply)")
    penalty: str = Field(description="total soft penalty of broken statements")
    cost: str = Field(description="total cost")
    latency_ms: int = Field(description="makespan")
    risk: float = Field(description="1 - product of reliabilities")
    risk_ln: float = Field(description="sum of -ln(reliability), the risk term used inside weighted sums and reliability limits")
    value: str | None = Field(None, description="weighted objectives: the weighted sum (cost in currency units, latency in seconds, risk as sum of -ln) plus penalties")


class SolverInfo(_Model):
    backend: Literal["cpsat", "constraint"] = Field(description="which back-end answered")
    status: str = Field(description="the back-end's final status")
    variables: int = Field(description="variables in the model (cpsat), or assignments enumerated (constraint)")
    constraints: int = Field(description="constraints in the model (cpsat) or checked per assignment (constraint)")
    stages: int = Field(description="optimisation stages solved")
    workers: int | None = Field(None, description="CP-SAT workers")
    seed: int | None = Field(None, description="CP-SAT random seed")
    time_limit_s: float = Field(description="the per-request time limit")
    wall_ms: float | None = Field(None, description="solve wall time (only with include_timings)")
    build_ms: float | None = Field(None, description="model build time (only with include_timings)")
    branches: int | None = Field(None, description="search branches (only with include_timings)")
    conflicts: int | None = Field(None, description="search conflicts (only with include_timings)")


class PolicyRef(_Model):
    policy: str = Field(description="the policy (or `goal`, `budget`, `deadline`; for `down`, `failed` and `timeout`: the provider)")
    statement: str = Field(description="the statement or rule, as written")
    kind: str = Field(
        description=(
            "policy | require | goal | budget | deadline | down | failed (the option failed for this run) | "
            "timeout (the option's latency exceeds its action's `timeout`) | soft | "
            "demand (a `--why-not` question, docs/explanations.md)"
        )
    )
    location: str | None = Field(None, description="file:line:col of the rule")


class Alternative(_Model):
    provider: str = Field(description="an option of the same action that was not chosen")
    reason: Literal["forbidden", "unavailable", "too_slow", "worse", "tied"] = Field(
        description=(
            "forbidden: by hard rules (given the rest of the request, with full explanations); unavailable: provider down; "
            "too_slow: its latency (declared, or observed degraded) exceeds the action's `timeout`, so the step would time out; "
            "worse: allowed but worse under the objective; tied: as good, the tie-break rule chose the other"
        )
    )
    by: list[PolicyRef] = Field(
        default_factory=list,
        description=(
            "the rules that forbid it, the down observation, the timeout it exceeds (kind `timeout`, e.g. "
            "`pay via slow: degraded latency 2h exceeds the action's timeout 30m`), or (for `worse`) the soft statements it would break"
        ),
    )
    observed_at: str | None = Field(None, description="for `unavailable`: when the provider was observed down")
    delta: dict[str, str] | None = Field(
        None, description="full explanations: each objective term if this option were forced, minus the plan's (e.g. cost +0.05, latency_ms -200)"
    )


class StepExplanation(_Model):
    action: str
    provider: str
    alternatives: list[Alternative]


class UnusedAction(_Model):
    action: str = Field(description="a plannable action not in the plan")
    reason: Literal["forbidden", "unavailable", "too_slow", "not_needed"] = Field(
        description="why: every option forbidden, every provider down, every option slower than the action's `timeout`, or not needed for the goal"
    )
    by: list[PolicyRef] = Field(
        default_factory=list,
        description="what forbids it; for `not_needed` with `impossible` (full explanations): the minimal conflict that forbids using it at all",
    )
    delta: dict[str, str] | None = Field(
        None, description="full explanations, `not_needed`: each objective term if the best plan that uses this action were taken, minus the plan's"
    )
    via: str | None = Field(None, description="full explanations, `not_needed`: the provider that best plan would run it with")
    impossible: bool = Field(False, description="full explanations, `not_needed`: no plan that uses this action exists (see `by`)")


class PolicyPrice(_Model):
    policy: str = Field(description="a hard policy that applied to the request")
    statements: list[str] = Field(description="its statements, as written")
    binding: bool = Field(description="whether it changed the optimum (false: its price is zero)")
    price: dict[str, str] = Field(description="each objective term with the policy minus without it: what the rule costs")


class LearnedFigure(_Model):
    action: str
    provider: str
    latency_ms: int = Field(description="the latency planned with: the observed quantile, or the declared latency before there were enough samples")
    reliability: str = Field(description="the reliability planned with: the observed success rate, the declared one counted as prior samples")
    samples: int = Field(description="the steps observed")
    source: str = Field(description="where the figures came from, in words (e.g. `observed p90 620ms over 212 steps (declared 600ms)`)")


class SwitchTime(_Model):
    action: str = Field(description="an external action the run waits for")
    provider: str
    at_ms: int = Field(description="ms after the run started: the last moment the route around it still meets the deadline (less the margin)")
    then: list[str] = Field(description="the route the run takes if the action's facts have not landed by then (`action via provider`)")


class Explanation(_Model):
    level: Literal["none", "basic", "full"] = Field(description="how much was computed")
    steps: list[StepExplanation] = Field(default_factory=list, description="per chosen step, every other option and why it lost")
    unused: list[UnusedAction] = Field(default_factory=list, description="plannable actions left out and why")
    down: list[str] = Field(default_factory=list, description="providers observed down")
    applied_policies: list[str] = Field(default_factory=list, description="policies that applied to this request")
    skipped_policies: list[str] = Field(default_factory=list, description="policies whose `when` guard excluded this request")
    switches: list[SwitchTime] = Field(default_factory=list, description="runs: each awaited external action's switch time and the route after it (docs/executor.md, \"Switching before it is too late\")")
    figures: list[LearnedFigure] = Field(default_factory=list, description="runs planned with learned figures: those of every option of the actions the plan runs, and where they came from")
    conflict: list[PolicyRef] | None = Field(None, description="infeasible requests: a minimal set of rules and observations that admit no plan")
    summary: str | None = Field(None, description="one sentence a reviewer can act on")
    prices: list[PolicyPrice] = Field(default_factory=list, description="full explanations: what each binding hard policy costs")
    complete: bool = Field(True, description="false when the request's time limit ran out before the explanation was computed in full: the counterfactuals, prices or conflict present are right, the rest is missing")
    truncated_reason: Literal["time_limit", "max_questions"] | None = Field(None, description="why the explanation is partial (`time_limit`: the one budget of `time_limit_s` shared by the solve, the conflict search and every counterfactual was spent; `max_questions`: the request's bound on counterfactual solves was reached); null when complete")


class Plan(_Model):
    version: Literal["plan/v1"] = "plan/v1"
    status: Literal["optimal", "feasible", "infeasible", "unknown"] = Field(
        description="optimal: proven; feasible: a time limit stopped the search, best plan found; infeasible: no plan exists; unknown: no plan found in time"
    )
    intent: str
    steps: list[Step] = Field(default_factory=list, description="chosen steps, by start time then declaration order")
    cost: str | None = Field(None, description="sum of the steps' cost, exact decimal")
    currency: str = Field(description="the project currency")
    latency_ms: int | None = Field(None, description="makespan: the latest end time")
    reliability: float | None = Field(None, description="product of the steps' reliability")
    risk: float | None = Field(None, description="1 - reliability")
    objective: Objective | None = None
    broken: list[Broken] = Field(default_factory=list, description="soft policy statements the plan breaks")
    solver: SolverInfo
    explanation: Explanation

    @property
    def feasible(self) -> bool:
        return self.status in ("optimal", "feasible")

    def step(self, action: str) -> Step | None:
        return next((s for s in self.steps if s.action == action), None)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)
