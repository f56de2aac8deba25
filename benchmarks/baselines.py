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
  providers), also retried 3 times.
* ``greedy``: the same steps, but each one, when it becomes ready, goes to the cheapest option
  that is compliant on its own and whose provider has not failed in this run (a common adaptive
  heuristic without a global view: it can break budgets, deadlines and `distinct` rules).
* ``intento``: the executor: plans, re-plans on every observation, compensates and escalates.
"""

from __future__ import annotations

from dataclasses import dataclass

from intento.evaluate import formula_holds
from intento.execute import Executor, Scenario, SimEnvironment, Store
from intento.execute.environment import StepRequest
from intento.solve import plan_problem, prepare
from intento.spec import Spec
from intento.values import format_decimal

RETRIES = 3
BACKOFF_MS = (1000, 2000, 4000)
STRATEGIES = ("static", "static+fallback", "greedy", "intento")


@dataclass
class Request:
    spec: Spec
    intent: str
    given: dict
    run_id: str


def run_strategy(strategy: str, req: Request, scenario: Scenario, store: Store) -> str:
    """Run one request under one strategy; returns the run id (its events are in ``store``)."""
    env = SimEnvironment(scenario)
    if strategy == "intento":
        ex = Executor(req.spec, store, env, new_id=lambda: req.run_id, time_limit_s=5.0)
        rid = ex.start(req.intent, req.given, key=f"{req.run_id}/{strategy}")
        ex.drive(rid)
        return rid
    return _Workflow(strategy, req, env, store).run()


class _Workflow:
    def __init__(self, strategy: str, req: Request, env: SimEnvironment, store: Store):
        self.strategy, self.req, self.env, self.store = strategy, req, env, store
        self.spec = req.spec
        self.seq = 0
        self.failed_providers: set[str] = set()

    def _event(self, type_: str, data: dict, status: str | None = None) -> None:
        self.seq += 1
        self.store.append(self.req.run_id, self.seq, type_, self.env.now(), data, status=status)

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
        compliant = {a.name: [o for o in sorted(a.options, key=lambda o: (o.cost, o.latency_ms, o.index)) if not o.forbidden_by] for a in problem.actions}
        route = {s.action: s.provider for s in nominal.steps}
        # Each step's list of providers to try, in order, with RETRIES retries each.
        if self.strategy == "static":
            choices = {a: [p] for a, p in route.items()}
        elif self.strategy == "static+fallback":
            # A careful author picks each fallback at design time so that it keeps the `distinct
            # provider` rules against the other steps' primary providers.
            apart = _distinct_partners(self.spec, problem)
            choices = {
                a: [p] + [o.provider for o in compliant[a] if o.provider != p and all(route.get(b) != o.provider for b in apart.get(a, ()))][:1]
                for a, p in route.items()
            }
        else:
            choices = {a: [o.provider for o in compliant[a]] for a in route}
        facts: set[str] = set()
        done: set[str] = set()
        running: dict[str, tuple[str, int, int]] = {}  # action -> (provider, try index, attempt)
        tries: dict[str, int] = {a: 0 for a in route}
        order = [s.action for s in nominal.steps]
        while True:
            if formula_holds(intent.goal, facts) and not running:
                self._event("succeeded", {"facts": sorted(facts)}, status="succeeded")
                return self.req.run_id
            for action in order:
                if action in done or action in running:
                    continue
                if formula_holds(self.spec.actions[action].requires, facts):
                    self._dispatch(action, choices, tries, running, 0)
            items = self.env.wait(None)
            if not items:
                if not running:
                    self._event("failed", {"reason": "stuck"}, status="failed")
                    return self.req.run_id
                continue
            for kind, item in items:
                if kind == "retry":
                    action = item
                    running.pop(action, None)
                    self._dispatch(action, choices, tries, running, 0)
                    continue
                if kind != "outcome":
                    if item.get("fact"):
                        facts.add(item["fact"])
                    continue
                r: StepRequest = item.request
                if r.action not in running or running[r.action][2] != r.attempt:
                    continue
                provider, _, attempt = running.pop(r.action)
                base = {"action": r.action, "provider": provider, "attempt": attempt, "latency_ms": item.latency_ms}
                if item.kind == "succeeded":
                    achieved = list(self.spec.actions[r.action].achieves)
                    facts |= set(achieved)
                    done.add(r.action)
                    cost = self.spec.actions[r.action].option(provider).cost
                    self._event("step_succeeded", base | {"facts": achieved, "cost": format_decimal(cost)})
                    continue
                self._event("step_failed" if item.kind == "failed" else "step_timed_out", base | {"error": item.error})
                self.failed_providers.add(provider)
                tries[r.action] += 1
                if not self._dispatch(r.action, choices, tries, running, BACKOFF_MS[min(attempt - 1, 2)] if self.strategy != "greedy" else 0):
                    self._event("failed", {"reason": f"{r.action} failed after every retry and fallback"}, status="failed")
                    return self.req.run_id

    def _dispatch(self, action: str, choices, tries, running, delay_ms: int) -> bool:
        options = choices[action]
        if self.strategy == "greedy":
            healthy = [p for p in options if p not in self.failed_providers]
            if not healthy or tries[action] > RETRIES * len(options):
                return False
            provider = healthy[0]
        else:
            index = tries[action] // (RETRIES + 1)
            if index >= len(options):
                return False
            provider = options[index]
        attempt = tries[action] + 1
        a = self.spec.actions[action]
        assert not a.external, "the benchmark workflows have no external actions"
        opt = a.option(provider)
        if delay_ms:
            # Back-off: the retry is an item in the simulation's queue, so other steps go on.
            self.env._push(self.env.now() + delay_ms, "retry", action)
            running[action] = (provider, tries[action], -1)
            return True
        req = StepRequest(self.req.run_id, action, provider, attempt, f"{self.req.run_id}/{action}/{provider}", opt.latency_ms, a.timeout_ms, a.idempotent, {})
        self._event("step_dispatched", {"action": action, "provider": provider, "attempt": attempt, "key": req.key})
        self.env.dispatch(req)
        running[action] = (provider, tries[action], attempt)
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
