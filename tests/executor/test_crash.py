"""Crash tests: a run killed with SIGKILL just before each event-log write in turn (and at random
points over many runs) is restarted with the same command; it must reach its outcome with nothing
lost or duplicated: `PRAGMA integrity_check` is ok, the simulated providers' journal holds exactly
one effect per step the log says succeeded, and no idempotency key ever has two effects (so no
non-idempotent step was executed twice)."""

from __future__ import annotations

import json
import os
import random
import signal
from collections import Counter
from pathlib import Path

import pytest

import intento
from intento.execute import Executor, Scenario, SimEnvironment, Store
from intento.execute.state import fold

ROOT = Path(__file__).resolve().parents[2]
GIVEN = {"customer.region": "us", "order.amount": "1500 USD", "customer.email": "crash@example.com"}


@pytest.fixture(scope="module")
def spec():
    return intento.load(ROOT / "examples" / "order_fulfilment", ROOT / "policies").spec


def _executor(spec, db: Path, journal: Path, scenario: Scenario) -> Executor:
    store = Store(db)
    last = max((e["at"] for r in store.runs() for e in store.events(r["id"])[-1:]), default=0)
    env = SimEnvironment(scenario, start=last, journal=journal)
    return Executor(spec, store, env, new_id=lambda: "run-crash")


def _run_once(spec, db, journal, scenario):
    ex = _executor(spec, db, journal, scenario)
    rid = ex.start("fulfil_order", GIVEN, key="crash-test")
    return ex, ex.drive(rid)


def crash_then_restart(spec, tmp: Path, scenario: Scenario, k: int):
    db, journal = tmp / "c.db", tmp / "c.journal"
    pid = os.fork()
    if pid == 0:  # the child: crash just before write k
        code = 0
        try:
            os.environ["INTENTO_CRASH_AT"] = str(k)
            _run_once(spec, db, journal, scenario)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert killed or os.WEXITSTATUS(status) == 0, f"the child failed without being killed (k={k})"
    ex, final = _run_once(spec, db, journal, scenario)  # the restart: the same command again
    return killed, final, ex.store, journal


def check_nothing_lost_or_doubled(final, store, journal: Path):
    assert final.terminal, f"the run did not reach an outcome: {final.status}"
    assert store.integrity() == "ok"
    effects = [json.loads(line) for line in journal.read_text().splitlines()] if journal.exists() else []
    counts = Counter(e["key"] for e in effects)
    assert all(n == 1 for n in counts.values()), f"an idempotency key has two effects: {counts}"
    succeeded = {s.key for s in final.steps.values() if s.status == "succeeded"}
    succeeded |= {s.key for s in final.compensations.values() if s.status == "succeeded"}
    assert set(counts) == succeeded, f"journal {sorted(counts)} != succeeded steps {sorted(succeeded)}"
    # The log replays to the same state: nothing in the run depends on memory lost in the crash.
    assert fold(store.events(final.run)).status == final.status


def test_kill_before_every_write(spec, tmp_path):
    scenario = Scenario.model_validate({"seed": 5, "providers": {"stripe": {"outages": [{"from": 0, "to": "1h"}]}}})
    clean = tmp_path / "clean"
    clean.mkdir()
    _, final = _run_once(spec, clean / "c.db", clean / "c.journal", scenario)
    assert final.status == "succeeded"
    writes = len(Store(clean / "c.db").events(final.run))  # the run and its first event are one write
    assert writes > 15
    killed_at, reconciled = [], set()
    for k in range(1, writes + 1):
        tmp = tmp_path / f"k{k}"
        tmp.mkdir()
        killed, final, store, journal = crash_then_restart(spec, tmp, scenario, k)
        killed_at.append(killed)
        assert final.status == "succeeded", (k, final.outcome)
        check_nothing_lost_or_doubled(final, store, journal)
        reconciled |= {e["data"]["happened"] for e in store.events(final.run) if e["type"] == "reconciled"}
    assert all(killed_at), "every write index must actually have been crashed at"
    # Non-idempotent steps caught in flight were reconciled both ways: their effect had happened
    # (recorded, not re-run) and had not (re-sent once).
    assert reconciled == {True, False}


def _random_runs(spec, tmp_path, n: int, seed: int):
    rng = random.Random(seed)
    for i in range(n):
        scenario = Scenario.model_validate(
            {
                "seed": rng.randrange(10**6),
                "default": {"failure_rate": rng.choice([0, 0.05, 0.2])},
                "providers": {rng.choice(["stripe", "wh_newark", "postnl", "adyen"]): {"outages": [{"from": rng.choice([0, 200, 3000]), "to": rng.choice(["10s", "1h", None])}]}},
            }
        )
        tmp = tmp_path / f"r{i}"
        tmp.mkdir()
        killed, final, store, journal = crash_then_restart(spec, tmp, scenario, rng.randint(1, 30))
        check_nothing_lost_or_doubled(final, store, journal)


def test_kill_at_random_points_bounded(spec, tmp_path):
    _random_runs(spec, tmp_path, int(os.environ.get("INTENTO_CRASH_RUNS", "25")), seed=1)


@pytest.mark.slow
def test_kill_at_random_points_soak(spec, tmp_path):
    _random_runs(spec, tmp_path, 200, seed=2)
