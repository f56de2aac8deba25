"""The HTTP service, tested against a real `intento serve` process on a loopback port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).parent / "intento")
US = {"customer.region": "us", "order.amount": "80 USD", "customer.email": "api@example.com"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(tmp: Path, env_extra: dict | None = None, project=None, scenario=None, extra=()):
    port = _free_port()
    scen = scenario or ROOT / "examples" / "order_fulfilment" / "scenarios" / "stripe_outage.json"
    project = project or [ROOT / "examples" / "order_fulfilment", ROOT / "policies"]
    args = [EXE, "serve", *project, "--store", tmp / "s.db", "--port", port, "--simulate", scen, *extra]
    # its logs (a line per run event and request) go to a file: a pipe nobody reads would fill and block it
    log_path = tmp / f"serve-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(a) for a in args], stdout=subprocess.DEVNULL, stderr=log, env=dict(os.environ, **(env_extra or {})))
    base = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            return proc, base
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(log_path.read_text(errors="replace"))
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the server did not come up")


def wait_for_outcome(base, run_id: str, seconds: float = 120) -> dict:
    """Poll a run until it has an outcome, within a bound (never a fixed sleep for ordering)."""
    end = time.monotonic() + seconds
    while True:
        status, body = call(base, "GET", f"/v1/runs/{run_id}")
        if status == 200 and body["status"] in ("succeeded", "escalated", "failed"):
            return body
        assert time.monotonic() < end, f"run {run_id} has no outcome after {seconds} s: {body}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc, base = _serve(tmp_path_factory.mktemp("svc"))
    yield base
    proc.terminate()
    proc.wait(timeout=10)


def call(base, method, path, body=None, headers=None, raw: bytes | None = None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(base + path, data=data, method=method, headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read().decode()
            return r.status, (json.loads(text) if r.headers.get_content_type() == "application/json" else text)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode())


def test_plan_explain_check(server):
    status, plan = call(server, "POST", "/v1/plan", {"intent": "fulfil_order", "given": US})
    assert status == 200 and plan["status"] == "optimal" and plan["steps"]
    status, plan = call(server, "POST", "/v1/plan", {"intent": "fulfil_order", "given": dict(US, **{"customer.region": "eu"}), "state": {"providers": {"adyen": {"status": "down"}}}})
    assert status == 200 and plan["status"] == "infeasible" and plan["explanation"]["conflict"]
    status, expl = call(server, "POST", "/v1/explain", {"intent": "fulfil_order", "given": US})
    assert status == 200 and expl["level"] == "full" and expl["prices"] and expl["complete"]
    status, part = call(server, "POST", "/v1/explain", {"intent": "fulfil_order", "given": US, "max_questions": 1})
    assert status == 200 and part["complete"] is False and part["truncated_reason"] == "max_questions" and not part["prices"]
    assert call(server, "POST", "/v1/explain", {"intent": "fulfil_order", "given": US, "max_questions": -1})[0] == 422
    status, body = call(server, "POST", "/v1/check", {"sources": {"x.intent": "action a { achieves b; via nope { latency 1s } }"}})
    assert status == 200 and body["ok"] is False and body["diagnostics"][0]["code"] == "E012"


def test_why_not_over_http(server):
    status, w = call(server, "POST", "/v1/why-not", {"intent": "fulfil_order", "given": US, "questions": ["charge_payment via adyen"]})
    assert status == 200 and w["feasible"] and w["base"]["status"] == "optimal"
    assert {s["action"]: s["provider"] for s in w["plan"]["steps"]}["charge_payment"] == "adyen" and w["delta"]["cost"].startswith("+")
    eu = dict(US, **{"customer.region": "eu"})
    status, w = call(server, "POST", "/v1/why-not", {"intent": "fulfil_order", "given": eu, "questions": ["charge_payment via stripe"]})
    assert status == 200 and not w["feasible"]
    assert {c["policy"] for c in w["conflict"]} >= {"eu_data_residency", "why-not"} and all(c["location"] for c in w["conflict"])
    status, body = call(server, "POST", "/v1/why-not", {"intent": "fulfil_order", "given": US, "questions": ["charge_paymnt via adyen"]})
    assert status == 422 and body["diagnostics"][0]["code"] == "E121" and "charge_payment" in json.dumps(body)
    status, body = call(server, "POST", "/v1/why-not", {"intent": "fulfil_order", "given": US, "questions": []})
    assert status == 422


def test_bad_input_is_a_4xx_with_a_json_error(server):
    status, body = call(server, "POST", "/v1/plan", {"intent": "fulfil_order", "given": {"customer.region": 3}})
    assert status == 422 and body["code"] == "invalid_input" and {d["code"] for d in body["diagnostics"]} >= {"E103", "E104"}
    status, body = call(server, "POST", "/v1/plan", {"intent": "nope"})
    assert status == 422 and body["diagnostics"][0]["code"] == "E102"
    # A body that is not JSON at all (cut short, bad UTF-8, a number too long to read) is a 400
    # in the same error shape as every other refusal; so are an unknown path and a wrong method.
    for raw in (b'{"intent": ', b'\xff\xfe{', b'{"intent": "fulfil_order", "given": {"order.amount": 1' + b"1" * 5000 + b"}}"):
        status, body = call(server, "POST", "/v1/plan", raw=raw)
        assert status == 400 and body["code"] == "malformed_body", (raw[:20], body)
    status, body = call(server, "POST", "/v1/plan", {"intent": "fulfil_order", "given": []})
    assert status == 422 and body["code"] == "invalid_request"
    status, body = call(server, "GET", "/no/such/page")
    assert status == 404 and body["code"] == "not_found" and body["type"] == "urn:intento:problem:not_found" and body["status"] == 404
    status, body = call(server, "GET", "/v1/check")
    assert status == 405 and body["code"] == "method_not_allowed"
    status, body = call(server, "POST", "/v1/plan", {"intent": "fulfil_order", "given": US, "time_limit_s": 1000})
    assert status == 422
    # An oversize body is refused from its declared length, before it is read.
    import http.client

    host, port = server.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.putrequest("POST", "/v1/plan")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", "1000001")
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413 and json.loads(resp.read())["code"] == "too_large"
    conn.close()
    status, body = call(server, "GET", "/v1/runs/nope")
    assert status == 404 and body["code"] == "not_found"


def test_runs_idempotency_under_concurrency_status_observations(server):
    key = {"Idempotency-Key": "order-4711"}
    with ThreadPoolExecutor(max_workers=25) as pool:
        answers = list(pool.map(lambda _: call(server, "POST", "/v1/runs", {"intent": "fulfil_order", "given": US}, key), range(100)))
    assert all(s == 202 for s, _ in answers)
    assert len({b["run"] for _, b in answers}) == 1
    assert sum(b["created"] for _, b in answers) == 1
    run_id = answers[0][1]["run"]
    body = wait_for_outcome(server, run_id)
    assert body["status"] == "succeeded" and body["steps"]["charge_payment"]["provider"] == "braintree"
    assert "api@example.com" not in json.dumps(body)
    # a finished run takes no observations (409), a fact no action or goal names is refused (422)
    assert call(server, "POST", f"/v1/runs/{run_id}/observations", {"fact": "payment.captured"})[0] == 409
    assert call(server, "POST", f"/v1/runs/{run_id}/observations", {"fact": "x.y"})[0] == 422
    assert call(server, "POST", f"/v1/runs/{run_id}/observations", {"provider": "stripe"})[0] == 422
    assert call(server, "POST", f"/v1/runs/{run_id}/observations", {"provider": "nope", "status": "down"})[0] == 422
    assert call(server, "POST", "/v1/runs/nope/observations", {"fact": "x"})[0] == 404


def test_audit_and_metrics(server):
    _, started = call(server, "POST", "/v1/runs", {"intent": "fulfil_order", "given": dict(US, **{"customer.email": "m@example.com"})}, {"Idempotency-Key": "m1"})
    wait_for_outcome(server, started["run"])
    status, page = call(server, "GET", "/v1/audit?offset=0&limit=2")
    assert status == 200 and page["total"] >= 2 and len(page["records"]) == 2 and page["records"][0]["seq"] == 1
    assert call(server, "GET", "/v1/audit?limit=0")[0] == 422
    status, v = call(server, "GET", "/v1/audit/verify")
    assert status == 200 and v["ok"]
    # a decision made through /v1/plan is audited like `intento plan --audit`, secrets hashed
    before = call(server, "GET", "/v1/audit?limit=1")[1]["total"]
    assert call(server, "POST", "/v1/plan", {"intent": "fulfil_order", "given": dict(US, **{"customer.email": "audited@example.com"})})[0] == 200
    page = call(server, "GET", f"/v1/audit?offset={before}&limit=500")[1]
    mine = [r for r in page["records"] if r["reason"] == "POST /v1/plan request"]
    assert len(mine) == 1 and mine[0]["kind"] == "plan" and mine[0]["run"] is None
    assert "audited@example.com" not in json.dumps(mine) and mine[0]["context"]["customer.email"].startswith("hmac-sha256:")
    assert call(server, "GET", "/v1/audit/verify")[1]["ok"]
    status, text = call(server, "GET", "/metrics")
    assert status == 200 and 'intento_plans_total{source="api",status="optimal"}' in text and 'intento_steps_total{' in text and "intento_solve_seconds_bucket" in text and 'intento_runs{state="succeeded"}' in text


def test_bearer_token(tmp_path):
    proc, base = _serve(tmp_path, {"INTENTO_TOKEN": "s3cret"})
    try:
        assert call(base, "POST", "/v1/plan", {"intent": "fulfil_order", "given": US})[0] == 401
        assert call(base, "POST", "/v1/plan", {"intent": "fulfil_order", "given": US}, {"Authorization": "Bearer wrong"})[0] == 401
        assert call(base, "POST", "/v1/plan", {"intent": "fulfil_order", "given": US}, {"Authorization": "Bearer s3cret"})[0] == 200
        assert call(base, "GET", "/healthz")[0] == 200
        # every error is an RFC 9457 problem; a 401 says how to authenticate
        req = urllib.request.Request(base + "/v1/runs")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == 401 and e.value.headers["WWW-Authenticate"].startswith("Bearer")
        assert e.value.headers.get_content_type() == "application/problem+json"
        problem = json.loads(e.value.read())
        assert problem["type"] == "urn:intento:problem:unauthorized" and problem["status"] == 401 and problem["detail"] and problem["title"]
        # liveness and readiness need no token; ready means the store is writable and the engine runs
        assert call(base, "GET", "/livez") == (200, {"ok": True})
        assert call(base, "GET", "/readyz") == (200, {"ok": True, "engine": True})
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_an_intent_with_a_number_given_runs_over_http(tmp_path):
    quote = ROOT / "examples" / "insurance_quote"
    proc, base = _serve(tmp_path, project=[quote, ROOT / "policies" / "common"], scenario=quote / "scenarios" / "model_down.json")
    try:
        given = json.loads((quote / "requests" / "large_premium.json").read_text())
        status, started = call(base, "POST", "/v1/runs", {"intent": "progress_quote", "given": given})
        assert status == 202, started
        body = wait_for_outcome(base, started["run"])
        # the number decided the guards: a human visitor (0.1) with a large premium goes to an adviser
        assert body["status"] == "succeeded", body["outcome"]
        assert body["steps"]["hand_to_adviser"]["status"] == "succeeded" and "close_as_bot" not in body["steps"]
        assert given["visitor.email"] not in json.dumps(body)
        status, page = call(base, "GET", "/v1/audit?limit=500")
        assert status == 200 and page["records"] and all(r["context"]["visitor.bot_score"] == "0.1" for r in page["records"])
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_every_body_is_bounded_whatever_its_framing_and_speed(server):
    import http.client

    host, port = server.removeprefix("http://").split(":")
    # chunked: no declared length, 2 MB sent in 64 KB chunks; refused once past 1 MB
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest("POST", "/v1/check")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    chunk = b"x" * 65536
    try:
        for _ in range(32):
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may close as soon as it answered
    resp = conn.getresponse()
    assert resp.status == 413 and json.loads(resp.read())["code"] == "too_large"
    conn.close()
    # a small chunked body is read and answered as usual
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    body = json.dumps({"sources": {"a.intent": "provider p { region \"eu\" }"}}).encode()
    conn.putrequest("POST", "/v1/check")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    conn.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read())["ok"] is True
    conn.close()


def test_an_empty_token_refuses_to_start(tmp_path):
    for token in ("", "   "):
        r = subprocess.run([EXE, "serve", str(ROOT / "examples" / "order_fulfilment"), str(ROOT / "policies"), "--store", str(tmp_path / "t.db"), "--port", "0"],
                           capture_output=True, text=True, env=dict(os.environ, INTENTO_TOKEN=token), timeout=60)
        assert r.returncode == 1 and "INTENTO_TOKEN is set but empty" in r.stderr and "Traceback" not in r.stderr
    from intento import load
    from intento.service import create_app

    with pytest.raises(ValueError):
        create_app(load(ROOT / "examples" / "order_fulfilment", ROOT / "policies").spec, tmp_path / "u.db", token="  ")


def test_slow_clients_are_cut_off(tmp_path):
    proc, base = _serve(tmp_path, extra=["--client-timeout", "1"])
    try:
        host, port = base.removeprefix("http://").split(":")

        def answer(sock) -> bytes:
            sock.settimeout(60)  # a bound for the test, far above the server's 1 s
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            return data

        # headers that never end: the connection is closed without an answer
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b"POST /v1/plan HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
            assert answer(sock) == b""
        # a body that never ends: 408 in the documented shape
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b"POST /v1/plan HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
            got = answer(sock)
            assert got.startswith(b"HTTP/1.1 408") and b'"too_slow"' in got, got[:200]
        # the service still answers others
        assert call(base, "GET", "/healthz")[0] == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_api_docs_page_works_offline(server):
    import re

    with urllib.request.urlopen(server + "/docs", timeout=10) as r:
        page = r.read().decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets and all(a.startswith("/docs/assets/") for a in assets), assets  # nothing from a CDN
    assert "https://" not in page and "http://" not in page
    for a in assets:
        with urllib.request.urlopen(server + a, timeout=10) as r:
            assert r.status == 200 and len(r.read()) > 100
