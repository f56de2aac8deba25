"""The strategies a user would otherwise pick, run in the same simulated world as intento.

Each runner drives one request against a `SimEnvironment` and writes the same event log as the
executor (run_started, step_dispatched, step_succeeded/failed/timed_out, succeeded/failed), so
every metric is computed from event logs by `benchmarks.metrics`, whatever the strategy claims.

* ``static``: the route a workflow author writes at design time: the cheapest compliant plan for
  a healthy world (intento's own nominal optimum, so the comparison is about adapting, not about
  planning), each step retried 3 times with exponential back-off (1 s, 2 s, 4 s), as in a
  Temporal workflow; then the workflow fails.
* ``static+fallback``: the same, with a hand-written fallback per step (its next-cheapest
  compliant option that keeps the `distinct provider` rules against the other steps' primary
  providers; failing that, the cheapest other action achieving the same facts, such as fetching
  a late file by hand), also retried 3 times.
* ``greedy``: the same steps, but each one, when it becomes ready, goes to the cheapest way to
  achieve its facts (its own options, or another action's) that is compliant on its own and whose
  provider has not failed in this run nor been reported down by the status feed (a common
  adaptive heuristic without a global view: it can break budgets, deadlines and `distinct` rules).
* An external step is waited for with a timer (its `timeout`, or 3 x its latency), as a workflow
  waits for a signal; when the timer fires the step moves to its next choice, if any.
* ``exhaustive``: the same executor with every plan and re-plan made by python-constraint
  enumeration: the optimality reference, where it finishes. A request whose model it would refuse
  (more than `MAX_ASSIGNMENTS` assignments) raises `TooLarge` and is left out of its rates.
* ``intento``: the executor: plans, re-plans on every observation, compensates and escalates.
"""

from __future__ import annotations

from dataclasses import dataclass

from intento.backends import constraint
from intento.evaluate import formula_holds
from intento.execute import Executor, Scenario, SimEnvironment, Store
from intento.execute.environment import StepRequest
from intento.solve import plan_problem, prepare
from intento.spec import Spec
from intento.values import format_decimal

RETRIES = 3
BACKOFF_MS = (1000, 2000, 4000)
STRATEGIES = ("static", "static+fallback", "greedy", "exhaustive", "intento")


class TooLarge(Exception):
    """The exhaustive strategy does not run a request whose model it would refuse to enumerate."""


@dataclass
class Request:
    spec: Spec
    intent: str
    given: dict
    run_id: str


def run_strategy(strategy: str, req: Request, scenario: Scenario, store: Store) -> str:
    """Run one request under one strategy; returns the run id (its events are in ``store``)."""
    env = SimEnvironment(scenario)
    if strategy == "exhaustive" and not constraint.fits(prepare(req.spec, req.intent, req.given)):
        raise TooLarge(req.intent)
    if strategy in ("intento", "exhaustive"):
        backend = "constraint" if strategy == "exhaustive" else "cpsat"
        ex = Executor(req.spec, store, env, new_id=lambda: req.run_id, time_limit_s=5.0 if backend == "cpsat" else 30.0, backend=backend)
        rid = ex.start(req.intent, req.given, key=f"{req.run_id}/{strategy}")
        ex.drive(rid)
        return rid
    return _Workflow(strategy, req, env, store).run()


class _Workflow:
    """One hand-written workflow run. Its steps are the nominal plan's actions; each step has a
    list of (action, provider) choices tried in order (an alternative action achieving the same
    facts is a fallback a workflow author writes too, e.g. fetching a late file by hand)."""

    def __init__(self, strategy: str, req: Request, env: SimEnvironment, store: Store):
        self.strategy, self.req, self.env, self.store = strategy, req, env, store
        self.spec = req.spec
        self.seq = 0
        self.failed_providers: set[str] = set()

    def _event(self, type_: str, data: dict, status: str | None = None) -> None:
        self.seq += 1
        self.store.append(self.req.run_id, self.seq, type_, self.env.now(), data, status=status)

    def _choices(self, problem, nominal) -> dict[str, list[tuple[str, str]]]:
        route = {s.action: s.provider for s in nominal.steps}
        compliant = {a.name: [o for o in sorted(a.options, key=lambda o: (o.cost, o.latency_ms, o.index)) if not o.forbidden_by] for a in problem.actions}

        def alternatives(step: str) -> list:
            """Options of other actions that achieve everything the step achieves, cheapest first."""
            goal = set(self.spec.actions[step].achieves)
            alts = [(o, a.name) for a in problem.actions if a.name != step and a.name not in route and goal <= set(a.achieves) for o in compliant[a.name]]
            return [(a, o.provider) for o, a in sorted(alts, key=lambda x: (x[0].cost, x[0].latency_ms))]

        if self.strategy == "static":
            return {a: [(a, p)] for a, p in route.items()}
        if self.strategy == "static+fallback":
            # A careful author picks each fallback at design time so that it keeps the `distinct
            # provider` rules against the other steps' primary providers.
            apart = _distinct_partners(self.spec, problem)
            out = {}
            for a, p in route.items():
                same = [(a, o.provider) for o in compliant[a] if o.provider != p and all(route.get(b) != o.provider for b in apart.get(a, ()))]
                out[a] = [(a, p)] + (same + alternatives(a))[:1]
            return out
        # greedy: every compliant way to achieve the step's facts, cheapest first.
        return {a: sorted([(a, o.provider) for o in compliant[a]] + alternatives(a), key=lambda c: (self.spec.actions[c[0]].option(c[1]).cost, self.spec.actions[c[0]].option(c[1]).latency_ms)) for a in route}

    def run(self) -> str:
        problem = prepare(self.spec, self.req.intent, self.req.given)
        nominal = plan_problem(problem, explain="none")
        intent = self.spec.intents[self.req.intent]
        first = {"run": self.req.run_id, "intent": self.req.intent, "context": {}, "deadline_ms": intent.deadline_ms,
                 "budget": format_decimal(intent.budget) if intent.budget is not None else None, "facts": [], "providers": {}, "strategy": self.strategy}
        self.store.create_run(self.req.run_id, f"{self.req.run_id}/{self.strategy}", self.req.intent, self.spec.fingerprint, self.env.now(), {}, first)
        self.seq = 1
        if not nominal.feasible:
            self._event("failed", {"reason": "no design-time plan"}, status="failed")
            return self.req.run_id
        choices = self._choices(problem, nominal)
        self.facts: set[str] = set()
        self.done: set[str] = set()
        #: step -> (action, provider, attempt); attempt -1 while backing off before a retry.
        running: dict[str, tuple[str, str, int]] = {}
        tries: dict[str, int] = {a: 0 for a in choices}
        order = [s.action for s in nominal.steps]
        while True:
            if formula_holds(intent.goal, self.facts) and not running:
                self._event("succeeded", {"facts": sorted(self.facts)}, status="succeeded")
                return self.req.run_id
            for step in order:
                if step in self.done or step in running:
                    continue
                if formula_holds(self.spec.actions[step].requires, self.facts) and not self._dispatch(step, choices, tries, running, 0):
                    self._event("failed", {"reason": f"{step}: no choice can start"}, status="failed")
                    return self.req.run_id
            items = self.env.wait(None)
            if not items:
                if not running:
                    self._event("failed", {"reason": "stuck"}, status="failed")
                    return self.req.run_id
                continue
            for kind, item in items:
                if kind == "retry":
                    running.pop(item, None)
                    if not self._dispatch(item, choices, tries, running, 0):
                        self._event("failed", {"reason": f"{item} failed after every retry and fallback"}, status="failed")
                        return self.req.run_id
                    continue
                if kind == "observation":
                    self._observe(item, running)
                    continue
                if kind == "external_due":
                    step, attempt = item
                    if step not in running or running[step][2] != attempt:
                        continue
                    action, provider, _ = running.pop(step)
                    self._event("step_timed_out", {"action": action, "provider": provider, "attempt": attempt, "external": True})
                    self.failed_providers.add(provider)
                    # Nobody can retry someone else's system: move on to the next choice.
                    tries[step] = (tries[step] // (RETRIES + 1) + 1) * (RETRIES + 1)
                    if not self._dispatch(step, choices, tries, running, 0):
                        self._event("failed", {"reason": f"the external fact of {action} did not arrive in time"}, status="failed")
                        return self.req.run_id
                    continue
                r: StepRequest = item.request
                step = next((s for s, (a, _, att) in running.items() if a == r.action and att == r.attempt), None)
                if step is None:
                    continue
                action, provider, attempt = running.pop(step)
                base = {"action": action, "provider": provider, "attempt": attempt, "latency_ms": item.latency_ms}
                if item.kind == "succeeded":
                    achieved = list(self.spec.actions[action].achieves)
                    self.facts |= set(achieved)
                    self.done.add(step)
                    self._event("step_succeeded", base | {"facts": achieved, "cost": format_decimal(self.spec.actions[action].option(provider).cost)})
                    continue
                self._event("step_failed" if item.kind == "failed" else "step_timed_out", base | {"error": item.error})
                self.failed_providers.add(provider)
                tries[step] += 1
                if not self._dispatch(step, choices, tries, running, BACKOFF_MS[min(attempt - 1, 2)] if self.strategy != "greedy" else 0):
                    self._event("failed", {"reason": f"{step} failed after every retry and fallback"}, status="failed")
                    return self.req.run_id

    def _observe(self, item: dict, running) -> None:
        """A fact landed (an awaited external step succeeds), or the status feed spoke (only
        `greedy` listens to it, as a health check)."""
        if item.get("fact"):
            self.facts.add(item["fact"])
            for step, (action, provider, attempt) in list(running.items()):
                a = self.spec.actions[action]
                if a.external and attempt > 0 and set(a.achieves) <= self.facts:
                    running.pop(step)
                    self.done.add(step)
                    self._event("step_succeeded", {"action": action, "provider": provider, "attempt": attempt, "external": True, "facts": list(a.achieves), "cost": format_decimal(a.option(provider).cost)})
        if self.strategy == "greedy" and item.get("provider") and item.get("status"):
            if item["status"] == "up":
                self.failed_providers.discard(item["provider"])
            elif item["status"] == "down":
                self.failed_providers.add(item["provider"])

    def _dispatch(self, step: str, choices, tries, running, delay_ms: int) -> bool:
        options = choices[step]
        if self.strategy == "greedy":
            healthy = [c for c in options if c[1] not in self.failed_providers and formula_holds(self.spec.actions[c[0]].requires, self.facts)]
            if not healthy or tries[step] > RETRIES * len(options):
                return False
            action, provider = healthy[0]
        else:
            index = tries[step] // (RETRIES + 1)
            if index >= len(options):
                return False
            action, provider = options[index]
            if not formula_holds(self.spec.actions[action].requires, self.facts):
                return False
        attempt = tries[step] + 1
        a = self.spec.actions[action]
        opt = a.option(provider)
        if delay_ms:
            # Back-off: the retry is an item in the simulation's queue, so other steps go on.
            self.env._push(self.env.now() + delay_ms, "retry", step)
            running[step] = (action, provider, -1)
            return True
        req = StepRequest(self.req.run_id, action, provider, attempt, f"{self.req.run_id}/{action}/{provider}", opt.latency_ms, a.timeout_ms, a.idempotent, {})
        now = self.env.now()
        if a.external:
            # Wait for the fact, as a workflow waits for a signal with a timer.
            self._event("step_dispatched", {"action": action, "provider": provider, "attempt": attempt, "key": req.key, "external": True})
            running[step] = (action, provider, attempt)
            if set(a.achieves) <= self.facts:  # it landed before anyone waited for it
                self._observe({"fact": next(iter(a.achieves))}, running)
                return True
            self.env.expect_external(req, list(a.achieves), now)
            self.env._push(now + (a.timeout_ms if a.timeout_ms is not None else 3 * opt.latency_ms), "external_due", (step, attempt))
            return True
        self._event("step_dispatched", {"action": action, "provider": provider, "attempt": attempt, "key": req.key})
        self.env.dispatch(req)
        running[step] = (action, provider, attempt)
        return True


def _distinct_partners(spec: Spec, problem) -> dict[str, set[str]]:
    """action -> the actions a hard `distinct provider` rule that applies keeps it apart from."""
    from intento.syntax import ast

    partners: dict[str, set[str]] = {}
    for p in problem.applicable:
        if p.soft is not None:
            continue
        for st in p.statements:
            if isinstance(st, ast.Distinct):
                names = [x.name for x in st.actions]
                for n in names:
                    partners.setdefault(n, set()).update(m for m in names if m != n)
    return partners
