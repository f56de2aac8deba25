"""Why not X? A counterfactual re-solve of one request under a user's demand.

Input: a prepared `Problem` (or a `Spec` and a request), its base `Plan`, and questions in one
of three forms, which together make one combined demand:

* ``ACTION via PROVIDER``: that option must be in the plan (the action used, through it);
* ``use ACTION``: the action must be in the plan, through any of its options;
* ``no ACTION``: the action must not be in the plan.

Output: `WhyNot`: the plan under the demand with its delta per objective term against the base
plan (the shape `explain` uses for alternatives) and the soft policies it breaks; or, when no
plan meets the demand, the minimal conflict (explain.py) that forbids it, in which each question
that takes part appears as a member of kind ``demand``.

How a demand is made part of the model: each question becomes a `Member` (kind ``demand``,
name ``why-not``, text the question in its normal form) added to a copy of the problem, so that
both back-ends and the conflict search see it as they see any hard rule, with no change to
them. ``no A`` and ``A via P`` forbid options statically (``no A``: every option of A;
``A via P``: every other one), as a `forbid` statement would; ``use A`` and ``A via P`` add the
rule "at least one of these options is in the plan" (the ``count`` rule shape of `limit count`).
For ``A via P`` the count alone would do (an action runs through one option at most); the forbids
prune the search and let a conflict say which options the question ruled out. The result equals
`plan_problem(problem, force={A: P})`, which tests/planner/test_why_not.py checks.
The built problem is shared through the request cache and never mutated: the copy gets new
`Act`/`Option` objects wherever a question touches them.
"""

from __future__ import annotations

import dataclasses
import re
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from intento.diagnostics import Diagnostic, RequestError, Severity, Source, Span, did_you_mean
from intento.plan import Broken, Plan, PolicyRef
from intento.problem import Act, Member, Problem

#: The `policy` name every demand member carries in a conflict.
DEMAND_NAME = "why-not"

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_VIA = re.compile(rf"\s*(?P<action>{_IDENT})\s+via\s+(?P<provider>{_IDENT})\s*")
_USE = re.compile(rf"\s*use\s+(?P<action>{_IDENT})\s*")
_NO = re.compile(rf"\s*no\s+(?P<action>{_IDENT})\s*")
_FORMS = "`ACTION via PROVIDER`, `use ACTION` or `no ACTION`"


class Question(BaseModel):
    """One parsed question: what it demands of the plan."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["via", "use", "no"] = Field(description="via: that option must be used; use: the action must be used; no: it must not be")
    action: str = Field(description="the action the question is about")
    provider: str | None = Field(None, description="for `via`: the provider that must run it")

    @property
    def text(self) -> str:
        """The question in its normal form, as members and renderings name it."""
        match self.kind:
            case "via":
                return f"{self.action} via {self.provider}"
            case "use":
                return f"use {self.action}"
        return f"no {self.action}"


class WhyNot(BaseModel):
    """The answer to a combined demand (one or more questions) about one request."""

    model_config = ConfigDict(extra="forbid")

    question: list[str] = Field(description="the demand: every question in its normal form (`A via P`, `use A`, `no A`)")
    base: Plan = Field(description="the request's own plan, as `intento explain` gives it")
    status: str = Field(description="the solver's status under the demand: optimal | feasible | infeasible | unknown")
    feasible: bool = Field(description="whether a plan meets the demand")
    complete: bool = Field(
        True,
        description="false when the time limit ran out before the answer was established (no plan found in time, a plan not proven optimal, or no minimal conflict found)",
    )
    plan: Plan | None = Field(None, description="the optimal plan under the demand (its explanation is left out)")
    delta: dict[str, str] | None = Field(
        None,
        description="per objective term, the plan under the demand minus the base plan (e.g. `cost` `+0.05`, `latency_ms` `-1000`, `penalty` `+1`); None when either has no plan",
    )
    broken_soft: list[Broken] = Field(default_factory=list, description="the soft statements the plan under the demand breaks")
    conflict: list[PolicyRef] | None = Field(
        None,
        description="when no plan meets the demand: a minimal set of rules and observations (questions of kind `demand` among them) that admits no plan",
    )
    summary: str | None = Field(None, description="the conflict in one sentence")


# ---- questions: text to `Question`, with located diagnostics ------------------------------


def _source_name(i: int, n: int) -> str:
    return "--why-not" if n == 1 else f"--why-not#{i + 1}"


def parse_questions(problem: Problem, questions: list[str]) -> list[Question]:
    """Parse and check every question against the request; raises `RequestError` with every
    bad one located in its own text (the source `--why-not`, or `--why-not#N` for the N-th of
    several). Codes: E120 unparsable, E121 unknown action, E122 unknown provider, E123 a
    provider that is not an option of the action."""
    if not questions:
        raise RequestError([Diagnostic("E120", Severity.error, "no question given", None, help=f"ask {_FORMS}")])
    parsed: list[Question] = []
    diags: list[Diagnostic] = []
    by_name = {a.name: a for a in problem.actions}
    for i, text in enumerate(questions):
        src = Source(_source_name(i, len(questions)), text)
        q, d = _parse_one(problem, by_name, src)
        if q is not None:
            parsed.append(q)
        diags += d
    if diags:
        raise RequestError(diags)
    return parsed


def _parse_one(problem: Problem, by_name: dict[str, Act], src: Source) -> tuple[Question | None, list[Diagnostic]]:
    text = src.text
    m = _VIA.fullmatch(text)
    kind: Literal["via", "use", "no"] = "via"
    if m is None:
        m, kind = _USE.fullmatch(text), "use"
    if m is None:
        m, kind = _NO.fullmatch(text), "no"
    if m is None:
        span = Span.at_offset(src, 0, len(text))
        return None, [Diagnostic("E120", Severity.error, f"cannot read the question `{text.strip()}`", span, "not a question", help=f"ask {_FORMS}")]
    action = m.group("action")
    a_span = Span.at_offset(src, m.start("action"), m.end("action"))
    act = by_name.get(action)
    if act is None:
        spec_action = problem.spec.actions.get(action)
        if spec_action is not None and spec_action.compensation:
            why = f"`{action}` is a compensating action: the planner never chooses it"
            return None, [Diagnostic("E121", Severity.error, why, a_span, "not plannable", help="ask about an action the planner may choose")]
        names = [a.name for a in problem.actions]
        help_ = did_you_mean(action, names) or "actions: " + ", ".join(names)
        return None, [Diagnostic("E121", Severity.error, f"unknown action `{action}`", a_span, "no such action", help=help_)]
    if kind != "via":
        return Question(kind=kind, action=action), []
    provider = m.group("provider")
    p_span = Span.at_offset(src, m.start("provider"), m.end("provider"))
    options = [o.provider for o in act.options]
    if provider not in problem.spec.providers:
        help_ = did_you_mean(provider, options) or did_you_mean(provider, problem.spec.providers) or f"`{action}` runs via " + ", ".join(f"`{p}`" for p in options)
        return None, [Diagnostic("E122", Severity.error, f"unknown provider `{provider}`", p_span, "no such provider", help=help_)]
    if provider not in options:
        help_ = f"`{action}` runs via " + ", ".join(f"`{p}`" for p in options)
        return None, [Diagnostic("E123", Severity.error, f"`{provider}` is not an option of `{action}`", p_span, "not an option of this action", help=help_)]
    return Question(kind="via", action=action, provider=provider), []


# ---- the demand as members of a copy of the problem ---------------------------------------


def with_demand(problem: Problem, questions: list[Question]) -> tuple[Problem, list[Member]]:
    """A copy of ``problem`` in which every question is a hard member (see the module's
    docstring); the original, shared through the request cache, is left untouched."""
    actions = list(problem.actions)
    index = {a.name: i for i, a in enumerate(actions)}
    members = list(problem.members)
    rules = list(problem.rules)
    added: list[Member] = []
    for i, q in enumerate(questions):
        # Located at the question (`--why-not`, `--why-not#N`), as diagnostics about it are.
        span = Span.whole_text(Source(_source_name(i, len(questions)), q.text))
        m = Member(f"demand:{i}", "demand", DEMAND_NAME, q.text, span, action=q.action)
        added.append(m)
        members.append(m)
        act = actions[index[q.action]]
        if q.kind in ("no", "via"):
            opts = [
                dataclasses.replace(o, forbidden_by=o.forbidden_by + [m]) if q.kind == "no" or o.provider != q.provider else o
                for o in act.options
            ]
            act = dataclasses.replace(act, options=opts)
            actions[index[q.action]] = act
        if q.kind in ("use", "via"):
            wanted = [(q.action, o.provider) for o in act.options if q.kind == "use" or o.provider == q.provider]
            rules.append((m, ("count", wanted, ">=", 1)))
    demanded = dataclasses.replace(problem, actions=actions, members=members, rules=rules, shape=None)
    return demanded, added


# ---- the answer ---------------------------------------------------------------------------


def _terms(problem: Problem, p: Plan) -> dict[str, Decimal]:
    """A plan's objective, term by term (explain.py's `objective_terms`), re-evaluated from its
    steps: history (done steps) included, as the solver saw it."""
    from intento.explain import objective_terms
    from intento.semantics import evaluate_choice

    choice = {s.action: s.provider for s in p.steps}
    starts = {s.action: float(s.start_ms) for s in p.steps}
    for a in problem.actions:
        if a.done:
            choice[a.name] = a.options[0].provider
            starts[a.name] = 0.0
    return objective_terms(problem, evaluate_choice(problem, choice, starts))


def answer(
    problem: Problem,
    base: Plan,
    questions: list[Question],
    *,
    time_limit_s: float = 10.0,
    backend: Literal["cpsat", "constraint"] = "cpsat",
) -> WhyNot:
    """Re-solve ``problem`` under the demand and compare with ``base`` (its plan). The solve and
    the conflict search share ``time_limit_s``; the conflict is always CP-SAT's (explain.py), the
    plan the chosen back-end's."""
    from intento.backends import cpsat
    from intento.explain import _delta, conflict_sentence, minimal_conflict, ref
    from intento.solve import plan_problem

    end = cpsat.clock() + time_limit_s
    demanded, added = with_demand(problem, questions)
    texts = [q.text for q in questions]
    result = plan_problem(demanded, backend=backend, time_limit_s=time_limit_s, explain="none")
    if result.feasible:
        delta = _delta(_terms(demanded, result), _terms(problem, base)) if base.feasible else None
        return WhyNot(
            question=texts,
            base=base,
            status=result.status,
            feasible=True,
            complete=result.status == "optimal",
            plan=result,
            delta=delta,
            broken_soft=list(result.broken),
        )
    out = WhyNot(question=texts, base=base, status=result.status, feasible=False, complete=False)
    if result.status == "infeasible":
        left = end - cpsat.clock()
        conflict = minimal_conflict(demanded, max(left, 0.001), deadline=end, keep=frozenset(m.id for m in added)) if left > 0 else None
        if conflict is not None:
            out.conflict = [ref(m) for m in conflict]
            out.summary = conflict_sentence(demanded, conflict)
            out.complete = True
    return out


def why_not(
    spec: Any,
    intent: str,
    given: Any = None,
    state: Any = None,
    questions: list[str] | None = None,
    *,
    time_limit_s: float = 10.0,
    backend: Literal["cpsat", "constraint"] = "cpsat",
    explain: Literal["none", "basic", "full"] = "basic",
) -> WhyNot:
    """Plan a request, then answer "why not ...?" for the combined demand of ``questions``.

    Bad input (the request, or a question: unparsable, an unknown action or provider, a provider
    that is not an option of its action) raises `RequestError` with located diagnostics. The
    base plan is explained at ``explain``; base plan and answer get ``time_limit_s`` each."""
    from intento.solve import plan_problem, prepare

    problem = prepare(spec, intent, given, state)
    parsed = parse_questions(problem, list(questions or []))
    base = plan_problem(problem, backend=backend, time_limit_s=time_limit_s, explain=explain)
    return answer(problem, base, parsed, time_limit_s=time_limit_s, backend=backend)


# ---- renderings ---------------------------------------------------------------------------


def _demand_label(w: WhyNot) -> str:
    return " and ".join(f"`{q}`" for q in w.question)


def why_not_text(w: WhyNot) -> str:
    """The answer as text, printed under the base plan's `plan_text`."""
    from intento.render import _delta_text, _dur

    lines = [f"why not {_demand_label(w)}?"]
    if w.feasible and w.plan is not None:
        p = w.plan
        lines.append(f"  a plan exists ({w.status}):")
        rows = [(_dur(s.start_ms), _dur(s.end_ms), s.action, s.provider, f"{s.cost} {p.currency}") for s in p.steps]
        widths = [max([len(r[i]) for r in rows], default=0) for i in range(5)]
        for r in rows:
            lines.append("    " + "  ".join(c.ljust(wd) for c, wd in zip(r, widths)).rstrip())
        lines.append(f"  total: cost {p.cost} {p.currency}, latency {_dur(p.latency_ms)}")
        if w.delta is not None:
            lines.append(f"  against the base plan: {_delta_text(w.delta, p.currency)}")
        for b in w.broken_soft:
            lines.append(f"  breaks soft policy {b.policy} (penalty {b.penalty}): {b.statement}")
    elif w.conflict is not None:
        lines.append(f"  {w.summary}")
        for r in w.conflict:
            lines.append(f"  conflict: {r.kind} {r.policy}: {r.statement}" + (f"  [{r.location}]" if r.location else ""))
    elif w.status == "infeasible":
        lines.append("  no plan meets the demand; the time limit ran out before a minimal conflict was found")
    else:
        lines.append(f"  no plan was found in time ({w.status})")
    if w.feasible and not w.complete:
        lines.append("  (not proven optimal within the time limit)")
    return "\n".join(lines)


def why_not_markdown(w: WhyNot) -> str:
    """The answer as a section appended to the decision report (`explanation_markdown`)."""
    from intento.render import _delta_text, _dur, _md

    out = [f"## Why not {_md(_demand_label(w))}?", ""]
    if w.feasible and w.plan is not None:
        p = w.plan
        out.append(f"A plan meets the demand ({w.status}): cost **{p.cost} {p.currency}**, latency **{_dur(p.latency_ms)}**.")
        if w.delta is not None:
            out += ["", f"Against the base plan: {_delta_text(w.delta, p.currency)}."]
        out += ["", "| start | end | action | provider | cost |", "|---:|---:|---|---|---:|"]
        for s in p.steps:
            out.append(f"| {_dur(s.start_ms)} | {_dur(s.end_ms)} | `{s.action}` | `{s.provider}` | {s.cost} {p.currency} |")
        if w.broken_soft:
            out += ["", "Soft policies it breaks:", ""]
            out += [f"- **{b.policy}** (`{_md(b.statement)}`), penalty {b.penalty}" for b in w.broken_soft]
    elif w.conflict is not None:
        out += [(w.summary or "") + ".", "", "| rule, observation or question | kind | defined at |", "|---|---|---|"]
        for r in w.conflict:
            out.append(f"| **{r.policy}**: `{_md(r.statement)}` | {r.kind} | {r.location or ''} |")
    else:
        out.append(f"No answer within the time limit ({w.status}).")
    return "\n".join(out) + "\n"
