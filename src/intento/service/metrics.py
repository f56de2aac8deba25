"""Prometheus metrics of `intento serve`, through `prometheus_client`.

Input: the store (read at every scrape) and this process's planning times. Output: the text
`GET /metrics` answers.

What describes runs is read from the store at each scrape, never from this process's memory, so
two engines on one store report the same figures: runs by state, steps by outcome per provider,
plans and re-plans, holds, escalations, cancellations, the inbox queue, leases and the capacity
slots held. What only this process knows is its own: the planning-time histogram (every plan of
`/v1/plan`, `/v1/explain` and of the runs its engine drives) and plans by status.
"""

from __future__ import annotations

import threading
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from intento.execute.store import DRIVER_EXPIRY_MS, Store, wall_ms

#: Run states reported (every one, 0 when no run is in it).
STATES = ("running", "holding", "giving_up", "succeeded", "escalated", "cancelled", "failed")
_STEP_OUTCOMES = {"step_succeeded": "succeeded", "step_failed": "failed", "step_timed_out": "timed_out"}


class StoreCollector:
    """Figures read from the store at each scrape (one pass of a few aggregate queries)."""

    def __init__(self, store_path: Path):
        self.store_path = store_path

    def collect(self):
        store = Store(self.store_path)
        try:
            db = store.db
            runs = GaugeMetricFamily("intento_runs", "Runs in the store by state (holding: running with no plan until a cool-down ends or an outcome arrives).", labels=["state"])
            counts = dict.fromkeys(STATES, 0)
            for status, n in db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status"):
                counts[status] = counts.get(status, 0) + n
            holding = db.execute(
                "SELECT COUNT(*) FROM runs r JOIN events e ON e.run = r.id AND e.seq = (SELECT MAX(seq) FROM events WHERE run = r.id) "
                "WHERE r.status = 'running' AND e.type = 'holding'"
            ).fetchone()[0]
            counts["running"] -= holding
            counts["holding"] = holding
            for state, n in counts.items():
                runs.add_metric([state], n)
            yield runs

            steps = CounterMetricFamily("intento_steps", "Steps by provider and outcome, over every run in the store.", labels=["provider", "outcome"])
            for kind, provider, n in db.execute(
                "SELECT type, json_extract(data, '$.provider'), COUNT(*) FROM events WHERE type IN ('step_succeeded', 'step_failed', 'step_timed_out') "
                "AND json_extract(data, '$.compensation_for') IS NULL GROUP BY type, json_extract(data, '$.provider')"
            ):
                steps.add_metric([str(provider), _STEP_OUTCOMES[kind]], n)
            yield steps

            def total(name: str, text: str, sql: str) -> CounterMetricFamily:
                c = CounterMetricFamily(name, text)
                c.add_metric([], db.execute(sql).fetchone()[0] or 0)
                return c

            yield total("intento_run_plans", "Plans made by runs in the store (first plans and re-plans).", "SELECT COUNT(*) FROM events WHERE type = 'planned'")
            yield total("intento_replans", "Re-plans made by runs in the store.", "SELECT COUNT(*) - COUNT(DISTINCT run) FROM events WHERE type = 'planned'")
            yield total("intento_holds", "Times runs in the store held (no plan yet, waiting).", "SELECT COUNT(*) FROM events WHERE type = 'holding'")
            yield total("intento_escalations", "Runs in the store that escalated.", "SELECT COUNT(*) FROM runs WHERE status = 'escalated'")
            yield total("intento_cancellations", "Runs in the store that were cancelled.", "SELECT COUNT(*) FROM runs WHERE status = 'cancelled'")

            inbox = GaugeMetricFamily("intento_inbox_pending", "Observations and cancellations queued for runs, not yet taken by their engine.")
            inbox.add_metric([], db.execute("SELECT COUNT(*) FROM inbox WHERE taken = 0").fetchone()[0])
            yield inbox

            leases = GaugeMetricFamily("intento_leases", "Run leases (driver rows) by whether their driver still beats.", labels=["state"])
            cutoff = wall_ms() - DRIVER_EXPIRY_MS
            live = db.execute("SELECT COUNT(*) FROM drivers WHERE heartbeat >= ?", (cutoff,)).fetchone()[0]
            expired = db.execute("SELECT COUNT(*) FROM drivers WHERE heartbeat < ?", (cutoff,)).fetchone()[0]
            leases.add_metric(["live"], live)
            leases.add_metric(["expired"], expired)
            yield leases

            slots = GaugeMetricFamily("intento_capacity_slots_held", "Capacity slots held by steps in flight, by provider, across every run.", labels=["provider"])
            for provider, n in db.execute("SELECT provider, COUNT(*) FROM slots GROUP BY provider"):
                slots.add_metric([provider], n)
            yield slots
        finally:
            store.close()


class Metrics:
    """This process's metrics registry: the store's figures and its own planning times."""

    BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

    def __init__(self, store_path: Path):
        import prometheus_client

        if hasattr(prometheus_client, "disable_created_metrics"):
            prometheus_client.disable_created_metrics()  # no `_created` series: they only add noise here
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StoreCollector(store_path))
        self.solve = Histogram("intento_solve_seconds", "Planning time of this process's plans (requests and runs), in seconds.", ["source"], buckets=self.BUCKETS, registry=self.registry)
        self.plans = Counter("intento_plans", "Plans this process made, by status and source (`api`: /v1/plan and /v1/explain; `run`: its engine's runs).", ["status", "source"], registry=self.registry)
        self.lock = threading.Lock()

    def observe_plan(self, status: str, seconds: float, source: str = "api") -> None:
        self.plans.labels(status=status, source=source).inc()
        self.solve.labels(source=source).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
