"""`intento observe` refuses what a run's executor could only ignore: an unknown provider or
fact (checked against the run's project, `--project`), an unknown status, a latency without
`degraded`, and any observation for a finished run. Each is one line on stderr and exit 1, and
nothing reaches the run's inbox; a valid observation is queued as before."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from intento.execute import Store
from intento.execute.store import take

ROOT = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).parent / "intento")
ORDERS = ROOT / "examples" / "order_fulfilment"
PROJECT = ["--project", ORDERS, "--project", ROOT / "policies"]
REQ = ORDERS / "requests"
SCEN = ORDERS / "scenarios" / "stripe_outage.json"


def intento(*args, env=None):
    e = dict(os.environ, NO_COLOR="1")
    e.update(env or {})
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, env=e)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """A store with one finished run and one left running (its driver killed mid-run)."""
    db = tmp_path_factory.mktemp("obs") / "runs.db"
    done = intento("run", ORDERS, ROOT / "policies", "-i", "fulfil_order", "-g", REQ / "eu_order.json", "--simulate", SCEN, "--store", db, "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    crashed = intento("run", ORDERS, ROOT / "policies", "-i", "fulfil_order", "-g", REQ / "us_order.json", "--simulate", SCEN, "--store", db, "-q",
                      env={"INTENTO_CRASH_AT": "4"})
    assert crashed.returncode == -9
    s = Store(db)
    try:
        by_status = {r["status"]: r["id"] for r in s.runs()}
    finally:
        s.close()
    assert set(by_status) == {"succeeded", "running"}, by_status
    return {"db": db, "finished": by_status["succeeded"], "running": by_status["running"]}


def inbox(db: Path, run_id: str) -> list[dict]:
    s = Store(db)
    try:
        return [d for _, d in take(s, run_id)]
    finally:
        s.close()


def refused(r, message: str) -> None:
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("intento: "), r.stderr
    assert message in lines[0], lines[0]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--provider", "strpie", "--status", "down", *PROJECT], "unknown provider `strpie`; did you mean `stripe`?"),
        (["--fact", "payment.captrued", *PROJECT], "no action or goal of the project names fact `payment.captrued`; did you mean `payment.captured`?"),
        (["--fact", "weather.sunny", *PROJECT], "no action or goal of the project names fact `weather.sunny`; name a fact some action `achieves`"),
        (["--provider", "stripe", "--status", "sideways"], "unknown provider status `sideways`; give one of up, degraded or down"),
        (["--provider", "stripe", "--status", "dwn"], "unknown provider status `dwn`; did you mean `down`?"),
        (["--provider", "stripe"], "the observation of provider `stripe` has no status"),
        (["--provider", "stripe", "--status", "down", "--latency", "2s"], "a latency is observed only for a `degraded` provider"),
        (["--provider", "stripe", "--status", "degraded", "--latency", "fast"], "`--latency` must be a duration like 2s, not `fast`"),
        (["--fact", "payment.captured", "--provider", "stripe", "--status", "down"], "an observation is either a fact, or a provider with its status"),
        (["--fact", "payment.captured", "--status", "down"], "an observation is either a fact, or a provider with its status"),
    ],
)
def test_a_bad_observation_is_refused_in_one_line_and_never_queued(runs, args, message):
    before = inbox(runs["db"], runs["running"])
    r = intento("observe", runs["running"], *args, "--store", runs["db"])
    refused(r, message)
    assert inbox(runs["db"], runs["running"]) == before


@pytest.mark.parametrize("args", [["--fact", "payment.captured"], ["--provider", "stripe", "--status", "up"], ["--fact", "payment.captured", *PROJECT]])
def test_an_observation_for_a_finished_run_is_refused(runs, args):
    r = intento("observe", runs["finished"], *args, "--store", runs["db"])
    refused(r, f"run `{runs['finished']}` has finished (`succeeded`), so nothing observed can change it")
    assert inbox(runs["db"], runs["finished"]) == []


def test_valid_observations_are_queued_for_the_run(runs):
    before = inbox(runs["db"], runs["running"])
    ok = intento("observe", runs["running"], "--provider", "stripe", "--status", "degraded", "--latency", "2s", *PROJECT, "--store", runs["db"])
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == f"observation queued for run {runs['running']}"
    fact = intento("observe", runs["running"], "--fact", "payment.captured", *PROJECT, "--store", runs["db"])
    assert fact.returncode == 0, fact.stderr
    # Without --project the names cannot be checked, so a plausible fact is queued as before.
    bare = intento("observe", runs["running"], "--fact", "stock.reserved", "--store", runs["db"])
    assert bare.returncode == 0, bare.stderr
    assert inbox(runs["db"], runs["running"]) == before + [
        {"latency": 2000, "provider": "stripe", "source": "intento observe", "status": "degraded"},
        {"fact": "payment.captured", "source": "intento observe"},
        {"fact": "stock.reserved", "source": "intento observe"},
    ]


def test_an_unknown_run_or_store_is_one_line(runs, tmp_path: Path):
    refused(intento("observe", "run-nope", "--fact", "payment.captured", "--store", runs["db"]), "no run `run-nope`")
    refused(intento("observe", "run-nope", "--fact", "payment.captured", "--store", tmp_path / "none.db"), "no store at")
