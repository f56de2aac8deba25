"""Planning from observed performance: what the engine saw each provider do, per action.

Input: the step samples the store keeps (`Store.step_stats`: every step's outcome and measured
latency, by provider and action) and a `Learning` choice (which providers, which latency
quantile, how many samples are enough). Output: the figures a plan uses instead of the declared
ones (`figures`), recorded with the decision's inputs so a replay re-solves with the same, and
given to `solve.prepare` (``learned=``), which plans the options with them and shows them to
policies as the attributes `observed_latency`, `observed_reliability` and `observed_steps`.

The declared values are the prior: an option's latency is the observed quantile once there are
`min_samples` successful steps (before that, the declared latency); its reliability is the
observed success rate with the declared reliability counted as `PRIOR_WEIGHT` samples. Learned
figures change the objective, the deadline and the reliability floors (`require reliability`);
`where` conditions on `latency` and `reliability` and the actions' `timeout` still read the
declared values, and a policy bounds learned figures through the `observed_*` attributes
(docs/executor.md, "Learned figures").
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: How many samples the declared reliability counts for, against the observed rate.
PRIOR_WEIGHT = 10


class Learning(BaseModel):
    """Which options a run plans with observed figures, and from how many samples."""

    model_config = ConfigDict(extra="forbid")
    providers: list[str] | None = Field(None, description="the providers to learn; None: every provider (a provider or option with `learn false` never is; one with `learn true` always is)")
    quantile: float = Field(0.9, gt=0, le=1, description="the latency quantile planned with (0.9: the p90)")
    min_samples: int = Field(20, ge=1, description="successful steps of an option before its observed latency is used")


def learns(opt, learning: Learning | None) -> bool:
    """Whether an option is planned with observed figures. The project decides first: `learn
    false` on the option or its provider pins the declared figures whatever the engine is told,
    and `learn true` learns it whenever the engine learns at all; otherwise `learning.providers`
    (None: every provider)."""
    flag = opt.attrs.get("learn")
    if learning is None or flag is False:
        return False
    if flag is True:
        return True
    return learning.providers is None or opt.provider in learning.providers


def quantile(values: list[int], q: float) -> int:
    """The nearest-rank quantile of ``values`` (sorted in place)."""
    values.sort()
    return values[max(0, math.ceil(q * len(values)) - 1)]


def figures(spec, stats: dict[tuple[str, str], dict], learning: Learning) -> dict[str, dict]:
    """The learned figures of every option with samples: ``"action|provider"`` -> latency_ms,
    reliability (as text), samples and where they came from (``source``). Options without
    enough successful samples keep their declared latency, with the observed reliability."""
    out: dict[str, dict] = {}
    for (action, provider), s in sorted(stats.items()):
        a = spec.actions.get(action)
        opt = next((o for o in a.options if o.provider == provider), None) if a is not None else None
        if opt is None or not s["total"] or not learns(opt, learning):
            continue
        declared_r = Decimal(str(opt.reliability))
        reliability = (Decimal(s["succeeded"]) + declared_r * PRIOR_WEIGHT) / (s["total"] + PRIOR_WEIGHT)
        reliability = min(Decimal(1), max(Decimal("0.0001"), reliability)).quantize(Decimal("0.0001"))
        latencies = [x for x in s["latencies"] if x is not None]
        pct = f"p{round(learning.quantile * 100)}"
        if len(latencies) >= learning.min_samples:
            latency = max(1, quantile(latencies, learning.quantile))
            source = f"observed {pct} {_ms(latency)} over {len(latencies)} steps (declared {_ms(opt.latency_ms)})"
        else:
            latency = opt.latency_ms
            source = f"declared latency {_ms(opt.latency_ms)} ({len(latencies)} of {learning.min_samples} samples for a {pct})"
        source += f"; reliability {reliability} from {s['succeeded']} of {s['total']} steps and the declared {declared_r} as {PRIOR_WEIGHT} samples"
        out[f"{action}|{provider}"] = {"latency_ms": int(latency), "reliability": str(reliability), "samples": s["total"], "source": source}
    return out


def _ms(ms: int) -> str:
    from intento.render import _dur

    return _dur(ms)


def used(learned: dict[str, dict] | None, plan) -> list[dict[str, Any]]:
    """The learned figures a plan's decision used, for its explanation: those of every option
    of the actions it runs (the chosen ones and their alternatives)."""
    if not learned:
        return []
    actions = {s.action for s in plan.steps}
    return [{"action": k.split("|")[0], "provider": k.split("|")[1], **v} for k, v in sorted(learned.items()) if k.split("|")[0] in actions]
