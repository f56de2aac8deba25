"""The policy endpoints: `POST /v1/policy/impact`, `POST /v1/policy/rollout` and
`GET /v1/policy/rollouts` answer as the CLI does, and bad policy sets are located 422s."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import intento
from intento.execute import Store
from intento.execute.world import World
from intento.service import create_app
from tests.console.settlement_handlers import registry
from tests.executor.test_policy_versions import BREAKS, CHANGED, _start

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "policy-api-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def waiting(tmp_path):
    """A store with two runs of the settlement example waiting for the bank's file (driven by an
    engine of the test's own, then stopped: the runs stay unfinished)."""
    spec = intento.load(ROOT / "examples/settlement", ROOT / "policies/common").spec
    db = tmp_path / "s.db"
    w = World(spec, db, registry=registry, workers=2)
    store = Store(db)
    engine = w.engine(Store(db))
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    ids = _start(w, store, engine, 2, "api")
    engine.stop()
    thread.join(30)
    w.close()
    return spec, db, ids, store


def test_impact_and_rollout_over_http(waiting):
    spec, db, ids, store = waiting
    client = TestClient(create_app(spec, db, token=TOKEN))
    r = client.post("/v1/policy/impact", json={"policies": {"p.intent": BREAKS}}, headers=AUTH)
    assert r.status_code == 200 and r.json()["breaks"] == 2
    r = client.post("/v1/policy/impact", json={"policies": {"p.intent": CHANGED}}, headers=AUTH)
    body = r.json()
    assert body["counts"]["changed"] == 2 and {x["run"] for x in body["runs"]} == set(ids)
    r = client.post("/v1/policy/rollout", json={"policies": {"p.intent": CHANGED}, "mode": "migrate-if-feasible", "label": "v2"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["rollout"] == 1 and {x["outcome"] for x in r.json()["runs"]} == {"migrates"}
    listed = client.get("/v1/policy/rollouts", headers=AUTH).json()
    assert listed["rollouts"][0]["label"] == "v2" and listed["rollouts"][0]["by"].startswith("api")
    assert spec.fingerprint in {v["version"] for v in listed["versions"]}
    assert store.rollouts()[0]["mode"] == "migrate-if-feasible"


def test_bad_policy_sets_are_located_422s(waiting):
    spec, db, _, store = waiting
    client = TestClient(create_app(spec, db, token=TOKEN))
    mixed = client.post("/v1/policy/impact", json={"policies": {"x.intent": "provider p { region \"eu\" }"}}, headers=AUTH)
    assert mixed.status_code == 422 and any(d["code"] == "E130" for d in mixed.json()["diagnostics"])
    broken = client.post("/v1/policy/rollout", json={"policies": {"x.intent": "policy {"}, "mode": "migrate"}, headers=AUTH)
    d = broken.json()["diagnostics"][0]
    assert broken.status_code == 422 and (d["file"], d["line"], d["column"]) == ("x.intent", 1, 8)
    mode = client.post("/v1/policy/rollout", json={"policies": {"p.intent": CHANGED}, "mode": "sometimes"}, headers=AUTH)
    assert mode.status_code == 422
    unknown = client.post("/v1/policy/impact", json={"policies": {"p.intent": "policy q { forbid provider nowhere }"}}, headers=AUTH)
    assert unknown.status_code == 200 and unknown.json()["counts"]["unknown"] == 2  # does not check with the runs' project
    assert client.post("/v1/policy/impact", json={"policies": {"p.intent": CHANGED}}).status_code == 401
    assert store.rollouts() == []
