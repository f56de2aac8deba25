"""Where a project's runs carry out their steps, as one object the CLI and the service share.

Input: the checked project, the store's path, and either a simulation scenario or a registry of
real handlers. Output: executors for runs (`executor`) and the engine that drives them all
(`engine`).

A simulated run lives in its own virtual world (its own `SimEnvironment`, on its own clock, from
its own start), so a run gives the same decisions whatever else runs next to it; every simulated
run of a store shares one effect journal (the providers' side, which answers reconciliation after
a crash). Real runs share one `RealEnvironment`: one pool of handler threads, the wall clock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from intento.execute.engine import Engine
from intento.execute.environment import Journal, RealEnvironment, Scenario, SimEnvironment
from intento.execute.executor import Executor
from intento.execute.handlers import Registry
from intento.execute.store import Store


class World:
    def __init__(
        self,
        spec,
        store_path: str | Path,
        *,
        scenario: Scenario | None = None,
        registry: Registry | None = None,
        journal: str | Path | None = None,
        time_limit_s: float = 10.0,
        progress: Callable | None = None,
        workers: int = 16,
        backend: str = "cpsat",
        plan_observer: Callable[[str, float], None] | None = None,
        learning=None,
        switch_margin: float | None = None,
    ):
        from intento.audit import AuditLog, secret_key

        if scenario is None and registry is None:
            raise ValueError("a world needs a simulation scenario or handlers")
        self.spec, self.scenario, self.registry = spec, scenario, registry
        self.store_path = Path(store_path)
        audit_path = self.store_path.with_name(self.store_path.name + ".audit.jsonl")
        self.audit = AuditLog(audit_path)
        self.secret_key = secret_key(audit_path)
        self.time_limit_s, self.progress, self.backend = time_limit_s, progress, backend
        self.plan_observer = plan_observer
        #: Plan with the figures observed in the store (`intento.learn.Learning`; None: declared).
        self.learning = learning
        #: The executors' switch margin (`Executor`; None: `SWITCH_MARGIN`).
        self.switch_margin = switch_margin
        self.journal = Journal(journal) if scenario is not None else None
        self.real_env = RealEnvironment(registry, workers=workers) if scenario is None else None

    def executor(self, store: Store, start: int = 0) -> Executor:
        """An executor on ``store``: a simulated one on a virtual world from ``start``."""
        env: Any = SimEnvironment(self.scenario, start=start, journal=self.journal) if self.scenario is not None else self.real_env
        ex = Executor(
            self.spec, store, env, self.registry, self.audit,
            time_limit_s=self.time_limit_s, secret_key=self.secret_key, progress=self.progress, backend=self.backend, learning=self.learning,
            switch_margin=self.switch_margin,
        )
        ex.plan_observer = self.plan_observer
        return ex

    def executor_for(self, run_id: str, store: Store) -> Executor | None:
        """The executor that drives an existing run (a simulated one goes on from its last event)."""
        row = store.run(run_id)
        if row is None:
            return None
        return self.executor(store, start=store.last_at(run_id) if self.scenario is not None else 0)

    def engine(self, store: Store, **kw) -> Engine:
        return Engine(store, self.executor_for, self.real_env, **kw)

    def close(self) -> None:
        if self.real_env is not None:
            self.real_env.close()
