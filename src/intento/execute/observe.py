"""Observations sent to a run from outside (`intento observe`, the HTTP API), checked before they
are queued in the store's inbox.

Input: an observation as data (``fact``, or ``provider`` with ``status`` and an optional
``latency`` in milliseconds), the run's row in the store, and the project when it is known.
Output: None when the observation can be queued, else the one `Rejection` that says why not. An
observation the run's executor could only ignore (an unknown name, a finished run) is refused
here, where the sender still sees the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from intento.diagnostics import did_you_mean
from intento.spec import Spec

#: A provider's observable statuses (LANGUAGE.md "Observed state").
STATUSES = ("up", "degraded", "down")
#: Run statuses after which nothing observed changes anything.
FINISHED = ("succeeded", "escalated", "failed", "cancelled")


@dataclass(frozen=True)
class Rejection:
    """Why an observation is refused: a stable code (the API's error code), a one-sentence
    lowercase message with names in backticks, and what to do about it."""

    code: str  # invalid_observation | unknown_status | invalid_latency | unknown_provider | unknown_fact | run_finished
    message: str
    help: str = ""

    def one_line(self) -> str:
        return self.message + (f"; {self.help}" if self.help else "")


def achieved_facts(spec: Spec) -> set[str]:
    """The facts an observation may name: every fact some action of the project achieves, or
    that an action's `requires` or an intent's goal reads (a fact only the world makes true)."""
    from intento.evaluate import formula_facts

    facts = {f for a in spec.actions.values() for f in a.achieves}
    for a in spec.actions.values():
        facts |= formula_facts(a.requires)
    for i in spec.intents.values():
        facts |= formula_facts(i.goal)
    return facts


def validate_observation(data: Mapping[str, Any], run: Mapping[str, Any] | None, spec: Spec | None = None) -> Rejection | None:
    """Check an observation for a run. ``run`` is the run's store row (its ``status`` read);
    without ``spec`` the provider and fact names cannot be checked and are taken as given."""
    fact, provider, status, latency = (data.get(k) for k in ("fact", "provider", "status", "latency"))
    if (fact is None) == (provider is None) or (fact is not None and (status is not None or latency is not None)):
        return Rejection("invalid_observation", "an observation is either a fact, or a provider with its status", "give `fact`, or `provider` with `status`")
    if provider is not None:
        if status is None:
            return Rejection("invalid_observation", f"the observation of provider `{provider}` has no status", "give its status: `up`, `degraded` or `down`")
        if status not in STATUSES:
            return Rejection("unknown_status", f"unknown provider status `{status}`", did_you_mean(str(status), STATUSES) or "give one of up, degraded or down")
        if latency is not None:
            if status != "degraded":
                return Rejection("invalid_latency", f"a latency is observed only for a `degraded` provider, not a provider `{status}`", "drop the latency, or observe the provider `degraded`")
            if not isinstance(latency, int) or isinstance(latency, bool) or latency < 1:
                return Rejection("invalid_latency", "the observed latency must be at least 1ms", "give a duration like `2s`")
        if spec is not None and provider not in spec.providers:
            return Rejection("unknown_provider", f"unknown provider `{provider}`", did_you_mean(str(provider), spec.providers) or "name a provider the project declares")
    if fact is not None and spec is not None:
        facts = achieved_facts(spec)
        if fact not in facts:
            return Rejection("unknown_fact", f"no action or goal of the project names fact `{fact}`", did_you_mean(str(fact), facts) or "name a fact some action `achieves`")
    if run is not None and run.get("status") in FINISHED:
        return Rejection("run_finished", f"run `{run.get('id')}` has finished (`{run['status']}`), so nothing observed can change it", "observations are for runs still in progress")
    return None
