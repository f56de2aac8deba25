"""The console over HTTP (issue 15), on a store with real simulated runs: the token gates every
page (login sets a session cookie; a bearer header is let in), actions need the session's CSRF
token and a confirmation, and the pages show what the runs did."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

import intento  # noqa: E402
from intento.execute import Scenario, Store  # noqa: E402
from intento.execute.world import World  # noqa: E402
from intento.service import create_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "console-test-token"
US = {"customer.region": "us", "order.amount": "80 USD", "customer.email": "a@example.com"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    spec = intento.load(ROOT / "examples" / "order_fulfilment", ROOT / "policies").spec
    path = tmp_path_factory.mktemp("console") / "s.db"
    scenario = Scenario.model_validate(json.loads((ROOT / "examples/order_fulfilment/scenarios/stripe_outage.json").read_text()))
    w = World(spec, path, scenario=scenario)
    store = Store(path)
    ex = w.executor(store)
    done = ex.start("fulfil_order", US)
    ex.drive(done)
    waiting = w.executor(store).start("fulfil_order", dict(US, **{"customer.email": "b@example.com"}))  # never driven
    store.close()
    return spec, path, done, waiting


def _client(world) -> TestClient:
    spec, path, _, _ = world
    return TestClient(create_app(spec, path, token=TOKEN))


def _logged_in(world) -> TestClient:
    c = _client(world)
    r = c.post("/login", data={"token": TOKEN, "next": "/"}, follow_redirects=False)
    assert r.status_code == 303
    return c


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)


@pytest.mark.parametrize("page", ["/", "/policies", "/plan", "/runs/x"])
def test_no_page_without_the_token(world, page):
    r = _client(world).get(page, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


@pytest.mark.parametrize("path", ["/console/fragments/runs", "/console/events", "/runs/x/decisions/1"])
def test_no_fragment_or_stream_without_the_token(world, path):
    r = _client(world).get(path, follow_redirects=False)
    assert r.status_code in (401, 303) and "run-" not in r.text


def test_a_wrong_token_is_refused_and_the_cookie_is_no_token(world):
    c = _client(world)
    bad = c.post("/login", data={"token": "nope", "next": "/"}, follow_redirects=False)
    assert bad.status_code != 303 and "session" not in "".join(bad.headers.get_list("set-cookie")).lower().split("=")[0]
    assert c.get("/", follow_redirects=False).status_code == 303
    good = c.post("/login", data={"token": TOKEN, "next": "https://evil.example/"}, follow_redirects=False)
    cookie = good.headers["set-cookie"]
    assert good.status_code == 303 and good.headers["location"] == "/"  # never off-site
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower() and TOKEN not in cookie


def test_a_bearer_header_is_let_in_and_the_api_still_wants_it(world):
    c = _client(world)
    assert c.get("/policies", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    logged = _logged_in(world)
    assert logged.get("/v1/runs").status_code == 401  # a console session is not an API credential


def test_the_runs_page_lists_runs_and_groups_them_by_where_they_wait(world):
    _, _, done, waiting = world
    html = _logged_in(world).get("/").text
    assert done in html and waiting in html and "succeeded" in html
    assert "not driven" in html  # the never-driven run's stall point, as a group


def test_one_run_shows_its_re_plan_its_reason_and_a_timeline(world):
    _, _, done, _ = world
    r = _logged_in(world).get(f"/runs/{done}")
    assert r.status_code == 200
    assert "<svg" in r.text and "stripe" in r.text and "braintree" in r.text
    assert "failed" in r.text.lower()  # the re-plan's reason names the failure
    routes = re.search(r"<h3>Routes not taken</h3>(.*?)</table>", r.text, re.S)
    assert routes and "<code>fraud_check</code>" in routes.group(1) and "cost +" in routes.group(1)  # a route the plan left out, priced


def test_an_unknown_run_is_a_404_page(world):
    r = _logged_in(world).get("/runs/no-such-run")
    assert r.status_code == 404 and "no-such-run" in r.text and "Traceback" not in r.text


def test_actions_need_the_csrf_token_and_a_confirmation(world):
    _, path, _, waiting = world
    c = _logged_in(world)
    page = c.get(f"/runs/{waiting}").text
    assert c.post(f"/runs/{waiting}/cancel", data={"reason": "test"}).status_code == 403
    asked = c.post(f"/runs/{waiting}/cancel", data={"reason": "operator test", "csrf": _csrf(page)})
    assert asked.status_code == 200 and "Confirm" in asked.text
    from intento.execute.store import take

    store = Store(path)
    try:
        assert not [d for _, d in take(store, waiting) if "cancel" in d]  # nothing sent before the confirmation
    finally:
        store.close()
    sent = c.post(f"/runs/{waiting}/cancel", data={"reason": "operator test", "csrf": _csrf(page), "confirmed": "yes"})
    assert sent.status_code == 200 and "operator test" in sent.text

    store = Store(path)
    try:
        queued = [d for _, d in take(store, waiting)]
    finally:
        store.close()
    assert {"cancel": {"reason": "operator test", "by": "console"}, "source": "console"} in queued


def test_a_bad_observation_is_refused_on_the_page(world):
    _, _, _, waiting = world
    c = _logged_in(world)
    csrf = _csrf(c.get(f"/runs/{waiting}").text)
    r = c.post(f"/runs/{waiting}/observe", data={"kind": "fact", "fact": "order.payed", "csrf": csrf, "confirmed": "yes"})
    assert r.status_code == 422 and "order.payed" in r.text and "did you mean" in r.text and "Traceback" not in r.text


def test_the_plan_page_answers_why_not(world):
    c = _logged_in(world)
    csrf = _csrf(c.get("/plan").text)
    r = c.post("/plan", data={"intent": "fulfil_order", "given": json.dumps(US), "state": "", "why_not": "charge_payment via adyen\n", "csrf": csrf})
    assert r.status_code == 200 and "charge_payment via adyen" in r.text and "+0.05" in r.text
    bad = c.post("/plan", data={"intent": "fulfil_order", "given": json.dumps(US), "state": "", "why_not": "charge_payment via nobody", "csrf": csrf})
    assert bad.status_code == 422 and "E122" in bad.text and "Traceback" not in bad.text


def test_the_plan_page_plans_and_locates_bad_input(world):
    c = _logged_in(world)
    csrf = _csrf(c.get("/plan").text)
    ok = c.post("/plan", data={"intent": "fulfil_order", "given": json.dumps(US), "state": "", "csrf": csrf})
    assert ok.status_code == 200 and "charge_payment" in ok.text
    bad = c.post("/plan", data={"intent": "fulfil_order", "given": "{not json", "state": "", "csrf": csrf})
    assert bad.status_code == 422 and "given" in bad.text.lower() and "Traceback" not in bad.text


def test_the_policies_page_names_owners(world):
    spec = world[0]
    html = _logged_in(world).get("/policies").text
    owners = {p.owner for p in spec.policies.values() if getattr(p, "owner", None)}
    assert owners and all(o in html for o in owners)


def test_the_policies_page_prices_the_runs_recent_decisions(world):
    """Runs record basic explanations; the page re-derives the recent ones in full for prices."""
    spec, path, done, _ = world
    from intento.audit import read_records

    recs = [r for r in read_records(path.with_name(path.name + ".audit.jsonl"))[0] if r.get("run") == done and r.get("kind") != "cancel"]
    assert recs and not any((r["plan"].get("explanation") or {}).get("prices") for r in recs)  # none recorded a price
    html = _logged_in(world).get("/policies").text
    row = re.search(r'<tr id="policy-pci_payments">(.*?)</tr>', html, re.S).group(1)
    priced = re.search(r"\((\d+) priced\)", row)
    assert priced and int(priced.group(1)) >= len(recs), row  # each of the run's plans, re-derived
    assert re.search(r"cost [+-]", row)


def test_search_and_a_stall_point_narrow_the_list_but_not_its_groups(world):
    _, _, done, waiting = world
    c = _logged_in(world)
    found = c.get("/", params={"q": done[-6:].upper()}).text
    assert done in found and waiting not in found
    grouped = c.get("/", params={"waits_on": "not driven"}).text
    assert waiting in grouped and f'href="/runs/{done}"' not in grouped
    assert "not driven" in grouped  # the groups are still listed


def test_a_decision_report_shows_the_switch_time_the_decision_recorded(tmp_path):
    spec = intento.load(ROOT / "examples" / "settlement", ROOT / "policies" / "common").spec
    path = tmp_path / "late.db"
    scenario = Scenario.model_validate(json.loads((ROOT / "examples/settlement/scenarios/late_file.json").read_text()))
    w = World(spec, path, scenario=scenario)
    store = Store(path)
    ex = w.executor(store)
    run = ex.start("settle_daily", {"customer.region": "eu", "settlement.date": "2026-11-24", "settlement.expected_total": "1200000 USD"})
    ex.drive(run)
    store.close()
    c = TestClient(create_app(spec, path, token=TOKEN))
    report = c.get(f"/runs/{run}/decisions/1", headers={"Authorization": f"Bearer {TOKEN}"}).text
    table = report[report.index("Switch times"):]
    assert "settlement_file_lands" in table[:600] and "fetch_file_manually" in table[:600]
    page = c.get(f"/runs/{run}", headers={"Authorization": f"Bearer {TOKEN}"}).text
    assert "step_switched" in page and "would miss the deadline" in page  # the switch, in the run's events
