"""The runtime keeps the promises docs/executor.md makes: every given type runs and reads back
typed; a deadline ends a run once, cleanly; a run never ends before its policies' `require`s
hold; waits are durable; a run's decisions replay; status is measured against now."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

import intento
from intento.audit import AuditLog, replay
from intento.execute import Executor, RealEnvironment, Registry, Scenario, SimEnvironment, Store
from intento.execute.report import run_view, status_text
from intento.values import Duration, Money

ROOT = Path(__file__).resolve().parents[2]

TYPES = """
provider desk { region "eu" }
provider robot { region "eu" }

action check_quote {
  achieves quote.checked
  idempotent
  via desk { cost 1 USD; latency 1s }
  via robot { cost 2 USD; latency 1s }
}

intent typed {
  given who: string, score: number, premium: money, wait: duration, vip: bool,
        token: string secret, pin: number secret, cap: money secret, grace: duration secret, flag: bool secret
  goal quote.checked
  deadline 1h
  minimize cost
}

policy careful_scores "High scores are checked by the robot" {
  when score >= 0.5
  forbid provider desk
}
"""

GIVEN = {
    "who": "ana",
    "score": Decimal("0.75"),
    "premium": "120.50 USD",
    "wait": "90s",
    "vip": True,
    "token": "t0ps3cret",
    "pin": 4321,
    "cap": "99.99 USD",
    "grace": 1500,
    "flag": False,
}
SECRETS = ("t0ps3cret", "4321", "99.99")


def _project(tmp_path: Path, text: str, name: str = "p.intent"):
    d = tmp_path / "project"
    d.mkdir(exist_ok=True)
    (d / name).write_text(text)
    return intento.load(d).spec, d


def test_every_given_type_reads_back_typed_for_handlers_replay_and_the_store(tmp_path):
    spec, _ = _project(tmp_path, TYPES)
    seen = []
    reg = Registry()

    @reg.handler("check_quote")
    def check(ctx):
        seen.append(dict(ctx.context))

    store = Store(tmp_path / "t.db")
    audit = AuditLog(tmp_path / "t.db.audit.jsonl")
    ex = Executor(spec, store, RealEnvironment(reg, poll_s=0.01), reg, audit, new_id=lambda: "run-typed")
    final = ex.drive(ex.start("typed", GIVEN))
    ex.env.close()
    assert final.status == "succeeded", final.outcome
    # the number decided the guard on every (re-)plan: the robot, never the desk
    assert final.steps["check_quote"].provider == "robot"
    ctx = seen[0]
    assert ctx["who"] == "ana" and ctx["score"] == Decimal("0.75") and isinstance(ctx["score"], Decimal)
    assert ctx["premium"] == Money(Decimal("120.50"), "USD") and ctx["wait"] == Duration(90_000) and ctx["vip"] is True
    assert ctx["token"] == "t0ps3cret" and ctx["pin"] == Decimal(4321) and ctx["cap"] == Money(Decimal("99.99"), "USD")
    assert ctx["grace"] == Duration(1500) and ctx["flag"] is False
    # secrets are kept typed apart from the log, and never written into it or the audit log
    assert store.secrets("run-typed") == {"token": "t0ps3cret", "pin": "4321", "cap": "99.99 USD", "grace": 1500, "flag": False}
    logs = json.dumps(store.events("run-typed")) + (tmp_path / "t.db.audit.jsonl").read_text()
    assert not any(s in logs for s in SECRETS)
    # every decision of the run replays identically from the audit log
    results = replay(tmp_path / "t.db.audit.jsonl", spec)
    assert results and all(r.same for r in results), [r.differences for r in results]


DEADLINE = """
provider quick { region "eu" }
provider slow { region "eu" }
provider bank { region "eu" }

action prepare {
  achieves work.prepared
  undo unprepare
  idempotent
  via quick { cost 1 USD; latency 1s }
}

action unprepare {
  achieves work.unprepared
  via quick { latency 1s }
}

action long_step {
  requires work.prepared
  achieves work.done
  via slow { cost 1 USD; latency 30m }
}

action file_arrives {
  external
  requires work.prepared
  achieves file.received
  timeout 3h
  via bank { latency 10m }
}

intent step_mid_deadline {
  goal work.done
  deadline 1h
  minimize cost
}

intent wait_mid_deadline {
  goal file.received
  deadline 1h
  minimize cost
}
"""


@pytest.mark.parametrize(
    "intent, scenario",
    [
        # the long step is sent at 1 s, takes 4 x 30 m: the deadline passes while it runs
        ("step_mid_deadline", {"seed": 1, "default": {"latency_sigma": 0}, "providers": {"slow": {"latency_sigma": 0, "spikes": [{"from": 0, "factor": 4}]}}}),
        # the bank's file never comes: the deadline passes during the wait
        ("wait_mid_deadline", {"seed": 1, "default": {"latency_sigma": 0}, "facts": {"file.received": {"at": None}}}),
    ],
)
def test_a_deadline_passing_mid_step_or_mid_wait_gives_up_once(tmp_path, intent, scenario):
    spec, _ = _project(tmp_path, DEADLINE)
    store = Store(tmp_path / "d.db")
    ex = Executor(spec, store, SimEnvironment(Scenario.model_validate(scenario)), new_id=lambda: "run-dl")
    final = ex.drive(ex.start(intent, {}))
    events = store.events("run-dl")
    types = [e["type"] for e in events]
    assert final.status == "escalated"
    assert types.count("planned") <= 2, types  # today: 200 identical infeasible plans
    assert types.count("giving_up") == 1
    give_up = next(e for e in events if e["type"] == "giving_up")
    assert give_up["at"] == 3_600_000  # at the deadline itself, not later
    assert {"kind": "deadline", "policy": "deadline"}.items() <= give_up["data"]["conflict"][0].items()
    assert "deadline 1h" in give_up["data"]["summary"]
    # the prepared work is undone (after the step in flight answered), then the run escalates
    assert "compensated" in types and types[-1] == "escalated"
    if intent == "wait_mid_deadline":
        assert "wait_dropped" in types and "step_timed_out" not in types


REQUIRE = """
provider crm { region "eu" }
provider mail { region "eu" }

action hand_over {
  achieves case.progressed, case.with_adviser
  via crm { cost 1 USD; latency 1h }
}

action tell_customer {
  requires case.with_adviser
  achieves customer.informed
  via mail { cost 1 USD; latency 1s }
}

intent progress {
  goal case.progressed
  minimize cost
}

policy customers_are_told "A case handed over is followed by a message" {
  require case.with_adviser and customer.informed
}
"""


def test_a_run_does_not_end_before_its_policies_requirements_hold(tmp_path):
    spec, _ = _project(tmp_path, REQUIRE)
    store = Store(tmp_path / "r.db")
    ex = Executor(spec, store, SimEnvironment(Scenario(seed=0)), new_id=lambda: "run-req")
    final = ex.drive(ex.start("progress", {}))
    assert final.status == "succeeded"
    # the goal held after `hand_over`; the policy's `require` needed `tell_customer` too
    assert final.completed == ["hand_over", "tell_customer"] and "customer.informed" in final.facts


def test_status_is_measured_against_now_and_names_a_run_nobody_drives(tmp_path):
    spec, _ = _project(tmp_path, DEADLINE)
    store = Store(tmp_path / "s.db")
    ex = Executor(spec, store, SimEnvironment(Scenario(seed=1, facts={"file.received": {"at": None}})), new_id=lambda: "run-st")
    rid = ex.start("wait_mid_deadline", {})
    # a driver that starts, dispatches and is never heard of again (its process died)
    ex._plan(rid, ex._state(rid), {}, "run started")
    ex._dispatch_ready(rid, ex._state(rid), {})
    events = store.events(rid)
    run = store.run(rid)
    at_30m = run_view(run, events, now=30 * 60_000, driver=None, wall_now=0)
    assert at_30m["deadline"]["left_ms"] == 30 * 60_000 and not at_30m["at_risk"]
    assert at_30m["driven"] is False and at_30m["stalled"] is True
    late = run_view(run, events, now=2 * 3_600_000, driver=None, wall_now=0)
    assert late["deadline"]["left_ms"] == -3_600_000 and late["at_risk"]
    text = status_text(run, events, now=2 * 3_600_000, driver=None, wall_now=0)
    assert "NOT DRIVEN" in text and "passed 1h ago" in text and "awaiting the fact of prepare" not in text
    # a driver whose heartbeat is recent counts as driving
    alive = {"host": "elsewhere", "pid": 1, "since": 0, "heartbeat": 1_000}
    assert run_view(run, events, now=0, driver=alive, wall_now=2_000)["driven"] is True
    assert run_view(run, events, now=0, driver=alive, wall_now=10**9)["driven"] is False
