"""Plans from observed performance (issue 16): the store keeps every step's outcome and measured
latency per provider and action; a run started with learning plans with the observed latency
quantile and success rate (the declared values as the prior), the decision says which figures
it used, its audit record replays, and `intento providers` shows declared against observed."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from intento.audit import AuditLog, replay
from intento.check import check_sources
from intento.cli import app
from intento.diagnostics import Source
from intento.execute import Executor, Scenario, SimEnvironment, Store
from intento.learn import Learning, figures

SRC = """
provider fast { region "eu" }
provider slow { region "eu" }
action work {
  achieves job.done
  via fast { latency 100ms; reliability 0.99 }
  via slow { latency 300ms; reliability 0.99 }
}
intent job { goal job.done; minimize latency }
"""
#: fast has drifted: its steps take ten times what it declares.
DRIFT = {"seed": 1, "default": {"latency_sigma": 0}, "providers": {"fast": {"latency_sigma": 0, "spikes": [{"from": 0, "factor": 10}]}}}


@pytest.fixture()
def project(tmp_path):
    (tmp_path / "p.intent").write_text(SRC)
    spec = check_sources([Source(str(tmp_path / "p.intent"), SRC)]).spec
    store = Store(tmp_path / "s.db")
    for i in range(20):
        ex = Executor(spec, store, SimEnvironment(Scenario.model_validate(DRIFT)), new_id=lambda i=i: f"warm-{i}")
        assert ex.drive(ex.start("job", {}, key=f"k{i}")).steps["work"].provider == "fast"  # as declared
    return spec, store, tmp_path


def _run(spec, store, tmp_path, learning, rid):
    audit = AuditLog(tmp_path / "a.jsonl")
    ex = Executor(spec, store, SimEnvironment(Scenario.model_validate(DRIFT)), audit=audit, new_id=lambda: rid, learning=learning)
    return ex.drive(ex.start("job", {}, key=rid))


def test_the_store_keeps_what_each_provider_did(project):
    spec, store, _ = project
    stats = store.step_stats()
    assert stats[("work", "fast")]["total"] == 20 and stats[("work", "fast")]["succeeded"] == 20
    assert set(stats[("work", "fast")]["latencies"]) == {1000} and ("work", "slow") not in stats
    f = figures(spec, stats, Learning())
    assert f["work|fast"]["latency_ms"] == 1000 and "observed p90 1s over 20 steps (declared 100ms)" in f["work|fast"]["source"]
    assert figures(spec, stats, Learning(min_samples=21))["work|fast"]["latency_ms"] == 100  # too few samples: declared


def test_a_learned_figure_changes_the_decision_and_the_explanation_cites_it(project):
    spec, store, tmp_path = project
    assert _run(spec, store, tmp_path, None, "declared").steps["work"].provider == "fast"
    learned = _run(spec, store, tmp_path, Learning(), "learned")
    assert learned.steps["work"].provider == "slow"
    planned = next(e for e in store.events("learned") if e["type"] == "planned")
    cited = {f["provider"]: f for f in planned["data"]["figures"]}
    assert cited["fast"]["latency_ms"] == 1000 and "observed p90 1s over" in cited["fast"]["source"]
    rec = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines() if '"learned"' in line][-1]
    assert rec["inputs"]["learned"]["work|fast"]["latency_ms"] == 1000
    assert rec["plan"]["explanation"]["figures"][0]["provider"] == "fast"
    # Learning only some providers: not fast, so fast is planned with what it declares.
    assert _run(spec, store, tmp_path, Learning(providers=["slow"]), "only-slow").steps["work"].provider == "fast"
    # The project decides first: `learn false` on a provider pins its declared figures.
    pinned = check_sources([Source("p.intent", SRC.replace('provider fast { region "eu" }', 'provider fast { region "eu"; learn false }'))]).spec
    assert _run(pinned, store, tmp_path, Learning(), "pinned").steps["work"].provider == "fast"
    assert "work|fast" not in figures(pinned, store.step_stats(), Learning())
    always = check_sources([Source("p.intent", SRC.replace('provider fast { region "eu" }', 'provider fast { region "eu"; learn true }'))]).spec
    assert "work|fast" in figures(always, store.step_stats(), Learning(providers=["slow"]))
    # Every decision replays from its record, learned figures included.
    results = replay(tmp_path / "a.jsonl", spec)
    assert results and all(r.same for r in results), [r.diffs for r in results]


def test_intento_providers_and_run_learn_on_the_command_line(project):
    _, _, tmp_path = project
    db = str(tmp_path / "s.db")
    r = CliRunner().invoke(app, ["providers", str(tmp_path / "p.intent"), "--store", db])
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if x.startswith("fast"))
    assert "observed 20 steps, 100.0% ok" in line and "p90 1s" in line and "declared     100ms" in line
    assert "not observed" in next(x for x in r.output.splitlines() if x.startswith("slow"))
    j = json.loads(CliRunner().invoke(app, ["providers", str(tmp_path / "p.intent"), "--store", db, "--format", "json"]).output)
    fast = next(x for x in j["rows"] if x["provider"] == "fast")
    assert fast["observed"]["steps"] == 20 and fast["learned"]["latency_ms"] == 1000
    scen = tmp_path / "drift.json"
    scen.write_text(json.dumps(DRIFT))
    r = CliRunner().invoke(app, ["run", str(tmp_path / "p.intent"), "-i", "job", "--simulate", str(scen), "--store", db, "--learn", "--key", "cli", "-q"])
    assert r.exit_code == 0, r.output
    assert "via slow" in r.output
    bad = CliRunner().invoke(app, ["run", str(tmp_path / "p.intent"), "-i", "job", "--simulate", str(scen), "--store", db, "--learn", "--learn-provider", "fats"])
    assert bad.exit_code == 1 and "unknown provider `fats`" in bad.output and "fast" in bad.output
    missing = CliRunner().invoke(app, ["providers", str(tmp_path / "p.intent"), "--store", str(tmp_path / "none.db")])
    assert missing.exit_code == 1


def test_the_engine_plans_every_run_it_drives_with_learned_figures(project):
    """`intento serve --learn` and `intento resume --learn`: the world's executors learn."""
    from intento.execute.world import World

    spec, store, tmp_path = project
    w = World(spec, tmp_path / "s.db", scenario=Scenario.model_validate(DRIFT), learning=Learning())
    ex = w.executor(store)
    assert ex.drive(ex.start("job", {}, key="engine")).steps["work"].provider == "slow"
    plain = World(spec, tmp_path / "s.db", scenario=Scenario.model_validate(DRIFT)).executor(store)
    assert plain.drive(plain.start("job", {}, key="engine-plain")).steps["work"].provider == "fast"


BOUND = """
policy no_slower_than_contracted "Never plan an option observed slower than half a second" {
  owner "sre@example.com"
  forbid via where observed_latency > 500ms
}
"""


def test_a_policy_bounds_learned_figures_through_the_observed_attributes(project, tmp_path):
    from intento.check import check_sources as check

    spec, store, _ = project
    result = check([Source("p.intent", SRC), Source("bound.intent", BOUND)])
    assert result.ok and not [d for d in result.diagnostics if d.code in ("W105", "E025")]
    bounded = result.spec
    # Learning, fast's observed latency (1s) is known: the policy forbids it, and says so.
    store2 = Store(tmp_path / "s.db")
    final = _run(bounded, store2, tmp_path, Learning(), "bounded")
    assert final.steps["work"].provider == "slow"
    rec = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()][-1]
    (step,) = rec["plan"]["explanation"]["steps"]
    (fast,) = [a for a in step["alternatives"] if a["provider"] == "fast"]
    assert fast["reason"] == "forbidden" and fast["by"][0]["policy"] == "no_slower_than_contracted"
    # Not learning, nothing is observed: the bound does not apply, and fast is planned as declared.
    assert _run(bounded, store2, tmp_path, None, "unbounded").steps["work"].provider == "fast"
