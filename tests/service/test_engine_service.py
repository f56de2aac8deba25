"""`intento serve` as the engine: it drives every run of its store, survives SIGKILL (another
engine takes the runs over: every run ends, no effect twice, no run driven by two engines at
once), and gives the run lifecycle over HTTP: list with filters and wait groups, cancel with
compensation, events as Server-Sent Events, idempotency keys that cannot be reused."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from intento.execute import Store
from tests.executor.test_durable_waits import PROJECT

ROOT = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).parent / "intento")
ORDER = [ROOT / "examples" / "order_fulfilment", ROOT / "policies"]
SCENARIO = ROOT / "examples" / "order_fulfilment" / "scenarios" / "stripe_outage.json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _until(check, what: str, seconds: float = 120.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _serve(project, db: Path, world: list[str], env_extra: dict | None = None):
    port = _free_port()
    args = [EXE, "serve", *map(str, project), "--store", str(db), "--port", str(port), "--no-auth", *world]
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env_extra or {}))
    # its logs (a line per run event and request) go to a file: a pipe nobody reads would fill and block it
    log = open(db.with_name(f"serve-{port}.log"), "wb")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log, env=env, cwd=ROOT)
    log.close()
    base = f"http://127.0.0.1:{port}"

    def up():
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            return True
        except OSError:
            if proc.poll() is not None:
                raise AssertionError("the server stopped: " + db.with_name(f"serve-{port}.log").read_text(errors="replace")[-2000:])
            return False

    _until(up, "the server to come up", 60)
    return proc, base


def call(base, method, path, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode())


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


GIVEN = {"customer.region": "us", "order.amount": "80 USD"}


@pytest.mark.parametrize("seed", [1, 2])
def test_an_engine_killed_anywhere_is_taken_over_every_run_ends_no_effect_twice(tmp_path, seed):
    db = tmp_path / "s.db"
    crash_at = random.Random(seed).randint(40, 400)
    first, base = _serve(ORDER, db, ["--simulate", str(SCENARIO)], {"INTENTO_CRASH_AT": str(crash_at)})

    def start(i):
        try:
            return call(base, "POST", "/v1/runs", {"intent": "fulfil_order", "given": dict(GIVEN, **{"customer.email": f"c{i}@example.com"})}, {"Idempotency-Key": f"order-{i}"})
        except OSError:
            return None  # the engine died under this request

    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(start, range(120)))
        first.wait(timeout=120)  # it kills itself at its crash_at-th write
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    accepted = {a[1]["run"] for a in answers if a and a[0] == 202}
    assert accepted, "no run was accepted before the crash"
    second, base = _serve(ORDER, db, ["--simulate", str(SCENARIO)])
    try:
        store = Store(db)
        _until(lambda: all(r["status"] in ("succeeded", "escalated") for r in store.runs()), "every run to end after the takeover", 300)
        runs = store.runs()
        assert accepted <= {r["id"] for r in runs}
        for r in runs:
            drivers = [w for w in store.writers(r["id"]) if w is not None]
            # one engine, then (after the kill) the other: never both, never back and forth
            changes = sum(1 for a, b in zip(drivers, drivers[1:]) if a != b)
            assert changes <= 1, (r["id"], drivers)
        journal = db.with_name(db.name + ".journal.jsonl")
        keys = [json.loads(line)["key"] for line in journal.read_text().splitlines() if line.strip().endswith("}")]
        assert len(keys) == len(set(keys)), "an effect happened twice"
        assert not store.slots()
    finally:
        _stop(second)


def test_two_engines_on_one_store_never_drive_the_same_run(tmp_path):
    db = tmp_path / "s.db"
    a, base_a = _serve(ORDER, db, ["--simulate", str(SCENARIO), "--log-format", "json"])
    b, base_b = _serve(ORDER, db, ["--simulate", str(SCENARIO)])
    try:
        def start(i):
            base = base_a if i % 2 else base_b
            return call(base, "POST", "/v1/runs", {"intent": "fulfil_order", "given": dict(GIVEN, **{"customer.email": f"t{i}@example.com"})})

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(start, range(60)))
        assert all(s == 202 for s, _ in answers)
        store = Store(db)
        _until(lambda: all(r["status"] in ("succeeded", "escalated") for r in store.runs()) and len(store.runs()) == 60, "every run to end", 300)
        for r in store.runs():
            drivers = {w for w in store.writers(r["id"]) if w is not None}
            assert len(drivers) == 1, (r["id"], drivers)
        # both engines report the same counts: they come from the store
        metrics = [urllib.request.urlopen(base + "/metrics", timeout=10).read().decode() for base in (base_a, base_b)]
        runs_lines = [sorted(line for line in m.splitlines() if line.startswith("intento_runs{")) for m in metrics]
        assert runs_lines[0] == runs_lines[1] and runs_lines[0]
    finally:
        _stop(a)
        _stop(b)
    # structured logs: a JSON object per line, a line per run event and per request, no secret value
    port_a = base_a.rsplit(":", 1)[1]
    text = db.with_name(f"serve-{port_a}.log").read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert lines and len(lines) == len([x for x in text.splitlines() if x.strip() and not x.startswith("intento: WARNING")])
    assert {x["logger"] for x in lines} >= {"intento.run", "intento.http"}
    assert any(x.get("event") == "planned" and x.get("run") for x in lines)
    assert any(x.get("path") == "/v1/runs" and x.get("status") == 202 for x in lines)
    assert "@example.com" not in text


@pytest.fixture
def waiting_server(tmp_path):
    d = tmp_path / "project"
    d.mkdir()
    (d / "p.intent").write_text(PROJECT)
    db = tmp_path / "w.db"
    proc, base = _serve([d], db, ["--handlers", "tests.executor.wait_handlers:registry", "--otel", str(tmp_path / "spans.jsonl")])
    yield base, db
    _stop(proc)


def test_the_lifecycle_over_http_list_wait_groups_observe_cancel_and_follow(waiting_server):
    base, db = waiting_server
    ids = [call(base, "POST", "/v1/runs", {"intent": "settle", "given": {}}, {"Idempotency-Key": f"k{i}"})[1]["run"] for i in range(6)]
    # the same key with another request is refused; with the same request it is the same run
    status, body = call(base, "POST", "/v1/runs", {"intent": "settle", "given": {}, "state": {"facts": ["work.prepared"]}}, {"Idempotency-Key": "k0"})
    assert status == 422 and body["code"] == "idempotency_key_reused"
    assert call(base, "POST", "/v1/runs", {"intent": "settle", "given": {}}, {"Idempotency-Key": "k0"})[1] == {"run": ids[0], "created": False}

    def grouped():
        page = call(base, "GET", "/v1/runs?status=running")[1]
        return page if page["waits"] and page["waits"][0] == {"waits_on": "waiting for file.received", "count": 6, "runs": page["waits"][0]["runs"]} else None

    page = _until(grouped, "six runs waiting for file.received")
    assert page["total"] == 6 and {v["run"] for v in page["runs"]} == set(ids)
    assert sorted(page["waits"][0]["runs"]) == sorted(ids)
    first = call(base, "GET", "/v1/runs?limit=4")[1]
    rest = call(base, "GET", f"/v1/runs?limit=4&cursor={first['next_cursor']}")[1]
    assert len(first["runs"]) == 4 and len(rest["runs"]) == 2 and rest["next_cursor"] is None
    assert {v["run"] for v in first["runs"] + rest["runs"]} == set(ids)
    assert call(base, "GET", "/v1/runs?status=nope")[0] == 422
    assert call(base, "GET", "/v1/runs?cursor=x")[0] == 422

    for rid in ids[:3]:
        assert call(base, "POST", f"/v1/runs/{rid}/observations", {"fact": "file.received"})[0] == 202
    for rid in ids[3:]:
        assert call(base, "POST", f"/v1/runs/{rid}/cancel", {"reason": "order withdrawn"}) == (202, {"queued": True})

    # follow one cancelled run as Server-Sent Events, to its end
    with urllib.request.urlopen(base + f"/v1/runs/{ids[3]}/events", timeout=60) as r:
        assert r.headers.get_content_type() == "text/event-stream"
        text = r.read().decode()
    events = [json.loads(line[len("data: "):]) for line in text.splitlines() if line.startswith("data: ")]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "cancelled" and events[-1]["data"]["cancelled"]["reason"] == "order withdrawn"
    assert "compensated" in [e["type"] for e in events]
    # resuming after an event id gives only what follows it
    req = urllib.request.Request(base + f"/v1/runs/{ids[3]}/events", headers={"Last-Event-ID": str(events[-2]["seq"])})
    with urllib.request.urlopen(req, timeout=60) as r:
        again = [json.loads(line[6:]) for line in r.read().decode().splitlines() if line.startswith("data: ")]
    assert [e["seq"] for e in again] == [events[-1]["seq"]]

    _until(lambda: call(base, "GET", "/v1/runs?status=cancelled")[1]["total"] == 3, "three cancelled runs")
    _until(lambda: call(base, "GET", "/v1/runs?status=succeeded")[1]["total"] == 3, "three succeeded runs")
    view = call(base, "GET", f"/v1/runs/{ids[4]}")[1]
    assert view["status"] == "cancelled" and view["outcome"]["cancelled"]["by"].startswith("api")
    # a finished run can be neither cancelled nor observed
    assert call(base, "POST", f"/v1/runs/{ids[4]}/cancel", {"reason": "again"})[0] == 409
    assert call(base, "POST", f"/v1/runs/{ids[0]}/observations", {"fact": "file.received"})[0] == 409
    assert call(base, "POST", "/v1/runs/nope/cancel", {})[0] == 404
    assert call(base, "GET", "/v1/runs/nope/events")[0] == 404
    # --otel: a span per run (ended at its outcome), its steps inside it
    spans = [json.loads(line) for line in (db.parent / "spans.jsonl").read_text().splitlines()]
    run_spans = {x["attributes"]["intento.run"]: x for x in spans if x["name"] == "run settle"}
    assert set(run_spans) == set(ids) and {x["attributes"]["intento.outcome"] for x in run_spans.values()} == {"succeeded", "cancelled"}
    undo = [x for x in spans if x["name"].startswith("undo ")]
    assert len(undo) == 3 and all(x["parent_id"] == run_spans[x["attributes"]["intento.run"]]["context"]["span_id"] for x in undo)


def test_many_followers_at_once_each_see_the_run_end_and_the_api_answers_meanwhile(waiting_server):
    base, _ = waiting_server
    rid = call(base, "POST", "/v1/runs", {"intent": "settle", "given": {}}, {"Idempotency-Key": "followed"})[1]["run"]
    _until(lambda: call(base, "GET", f"/v1/runs/{rid}")[1]["waits_on"], "the run to wait for its file")
    followers = 60  # more than the server's pool of worker threads (40)
    opened = []

    def follow(_):
        with urllib.request.urlopen(base + f"/v1/runs/{rid}/events", timeout=120) as r:
            opened.append(1)
            return [json.loads(line[6:])["type"] for line in r.read().decode().splitlines() if line.startswith("data: ")]

    with ThreadPoolExecutor(followers) as pool:
        streams = [pool.submit(follow, i) for i in range(followers)]
        _until(lambda: len(opened) == followers, "every follower to be connected")
        # every follower waits on the run, and the API still answers
        status, page = call(base, "GET", "/v1/runs")
        assert status == 200 and page["total"] == 1
        assert call(base, "POST", f"/v1/runs/{rid}/observations", {"fact": "file.received"})[0] == 202
        seen = [s.result(timeout=120) for s in streams]
    assert all(kinds[-1] == "succeeded" and kinds[0] == "run_started" for kinds in seen)
    assert len({tuple(k) for k in seen}) == 1  # each saw the same events, in the same order


def test_streams_of_events_end_when_the_server_stops_and_never_hold_its_shutdown(tmp_path):
    # A run waits for its file; a follower of its events stays
    # open. SIGTERM ends the stream at once: the server stops well within a grace period of ten
    # minutes (it would wait that long for the stream otherwise).
    d = tmp_path / "project"
    d.mkdir()
    (d / "p.intent").write_text(PROJECT)
    db = tmp_path / "s.db"
    proc, base = _serve([d], db, ["--handlers", "tests.executor.wait_handlers:registry", "--shutdown-grace", "600"])
    try:
        rid = call(base, "POST", "/v1/runs", {"intent": "settle", "given": {}}, {"Idempotency-Key": "held"})[1]["run"]
        _until(lambda: call(base, "GET", f"/v1/runs/{rid}")[1].get("waits_on"), "the run to wait for its file")
        follower = urllib.request.urlopen(base + f"/v1/runs/{rid}/events", timeout=60)
        first = follower.readline()  # the stream is open and has started
        assert first.startswith(b"id: 1")
        proc.terminate()
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(follower.read()), daemon=True)  # until the server ends the stream
        reader.start()
        reader.join(60)
        assert not reader.is_alive(), "the stream of events did not end when the server was stopped"
        rest = got[0]
        follower.close()
        # Ended (uvicorn re-raises the SIGTERM it handled once it has shut down: -15), long
        # before the grace period.
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
        assert rest.startswith(b"event: run_started") and rest.endswith(b"\n\n")  # whole events, then its end
    finally:
        _stop(proc)
