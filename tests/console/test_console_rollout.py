"""The console's rollout pages (issue 17): a policy set pasted into `/policies/rollout`, its
impact on the runs in flight, a rollout through a confirmation, and the history of rollouts and
versions at `/policies/rollouts`.

Over HTTP (FastAPI's TestClient), against `intento serve`'s own app with its engine driving the
settlement example: every run waits for the bank's file (`tests.console.settlement_handlers`),
as in tests/executor/test_policy_versions.py, whose tightened policy sets are used here. The
figures the page shows are compared with `execute.rollout.impact` called directly, and what the
runs do after a rollout from the page is read from the store. One browser test drives the same
pages in Debian's chromium, with the fixtures of test_console_browser.py."""

from __future__ import annotations

import html
import os
import re
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest

pytest.importorskip("httpx")
from fastapi.testclient import TestClient

import intento
from intento.console._rollout import MAX_CHARS
from intento.diagnostics import Source
from intento.execute import Store, post
from intento.execute.rollout import impact
from intento.service import create_app
from intento.versions import policy_set_of, texts_hash, with_policy_set
from tests.console.settlement_handlers import registry
from tests.executor.test_engine import _until
from tests.executor.test_policy_versions import BREAKS, CHANGED, GIVEN

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "rollout-console-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


# ---- helpers ------------------------------------------------------------------------------------


def _spec():
    return intento.load(ROOT / "examples/settlement", ROOT / "policies/common").spec


def _read(path: Path, fn):
    """``fn(store)`` on a store opened for it, closed after."""
    s = Store(path)
    try:
        return fn(s)
    finally:
        s.close()


def _rollouts(path: Path) -> list[dict]:
    return _read(path, lambda s: s.rollouts())


def _types(path: Path, rid: str) -> list[str]:
    s = Store(path)
    try:
        return [e["type"] for e in s.events(rid)]
    finally:
        s.close()


def _waits(path: Path, rid: str) -> bool:
    s = Store(path)
    try:
        return any(e["type"] == "step_dispatched" and e["data"]["action"] == "settlement_file_lands" for e in s.events(rid))
    finally:
        s.close()


def _start(c: TestClient, path: Path, n: int, first_day: int = 1) -> list[str]:
    """``n`` settlement runs started over the API, each waiting for the bank's file."""
    ids = []
    for i in range(n):
        r = c.post("/v1/runs", headers=BEARER, json={"intent": "settle_daily", "given": dict(GIVEN, **{"settlement.date": f"2026-11-{first_day + i:02d}"})})
        assert r.status_code in (200, 201, 202), r.text
        ids.append(r.json()["run"])
    for rid in ids:
        _until(lambda rid=rid: _waits(path, rid), f"{rid} to wait for the bank's file")
    return ids


@contextmanager
def _served(tmp: Path, n: int):
    """`intento serve`'s app (engine included, as `--handlers` starts it) on a fresh store with
    ``n`` waiting runs: (client, store path, run ids, spec)."""
    spec = _spec()
    path = tmp / "s.db"
    with TestClient(create_app(spec, path, registry=registry, token=TOKEN)) as c:
        yield c, path, _start(c, path, n), spec


def _login(c: TestClient) -> None:
    r = c.post("/login", data={"token": TOKEN, "next": "/"}, follow_redirects=False)
    assert r.status_code == 303


def _csrf(page: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', page)
    assert m, "no CSRF field on the page"
    return m.group(1)


def _hidden(page: str, form_id: str | None = None) -> dict[str, str]:
    """The hidden fields of a form (the first one, or the one with this id), unescaped as a browser reads them."""
    if form_id is not None:
        m = re.search(rf'<form [^>]*id="{form_id}".*?</form>', page, re.DOTALL)
        assert m, f"no form {form_id} on the page"
        page = m.group(0)
    else:
        page = page[page.index("<form method=\"post\" action=\"/policies"):]
    return {html.unescape(k): html.unescape(v) for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)}


def _set(name: str, text: str) -> list[dict]:
    return policy_set_of([Source(name, text)])


def _impact_rows(page: str) -> dict[str, dict]:
    """Each run's row of an impact table: its impact, deltas, moves and conflict as shown."""
    rows = {}
    for rid, kind, body in re.findall(r'<tr id="impact-([^"]+)" data-impact="([a-z]+)"[^>]*>(.*?)</tr>', page, re.DOTALL):
        cost = re.search(r'class="cost-delta" data-value="([^"]*)"', body)
        lat = re.search(r'class="latency-delta" data-value="([^"]*)"', body)
        rows[rid] = {"impact": kind, "cost": cost and cost.group(1), "latency_ms": lat and lat.group(1),
                     "moves": [html.unescape(m) for m in re.findall(r"<li><code>([^<]*)</code></li>", body)],
                     "conflict": re.findall(r"<li><strong>([^<]+)</strong>", body), "body": body}
    return rows


def _count(page: str, kind: str) -> int:
    m = re.search(rf'id="count-{kind}">(\d+)<', page)
    assert m, f"no {kind} count on the page"
    return int(m.group(1))


def _assess(c: TestClient, files: dict[str, str], label: str = "") -> tuple[str, object]:
    page = c.get("/policies/rollout").text
    data = {"csrf": _csrf(page), "label": label}
    for i, (name, text) in enumerate(files.items()):
        data[f"name-{i}"], data[f"text-{i}"] = name, text
    r = c.post("/policies/rollout/impact", data=data)
    return r.text, r


def _roll_out(c: TestClient, impact_page: str, mode: str, by: str = "") -> tuple[str, dict]:
    """Roll out from an impact page's form, through the confirmation: the done page, and the
    confirmation's fields."""
    fields = _hidden(impact_page, "rollout-form") | {"mode": mode, "by": by}
    asked = c.post("/policies/rollout", data=fields)
    assert asked.status_code == 200 and 'id="confirm"' in asked.text, asked.text
    confirmed = _hidden(asked.text)
    done = c.post("/policies/rollout", data=confirmed)
    assert done.status_code == 200, done.text
    return done.text, confirmed


# ---- a store with waiting runs, only read ------------------------------------------------------


@pytest.fixture(scope="module")
def waiting(tmp_path_factory):
    with _served(tmp_path_factory.mktemp("rollout-console"), 3) as (c, path, ids, spec):
        yield c, path, ids, spec


@pytest.fixture
def client(waiting):
    """The module's app, with a fresh signed-in session (cookies of its own)."""
    c, path, ids, spec = waiting
    c.cookies.clear()
    _login(c)
    yield c, path, ids, spec
    c.cookies.clear()


def test_the_impact_shown_is_what_impact_says(client):
    c, path, ids, _ = client
    page, r = _assess(c, {"retire-eu.intent": CHANGED}, label="retire-etl-eu")
    assert r.status_code == 200, page
    store = Store(path)
    try:
        said = impact(store, _set("retire-eu.intent", CHANGED))
    finally:
        store.close()
    for kind in ("unchanged", "changed", "infeasible", "unknown"):
        assert _count(page, kind) == said["counts"][kind], kind
    assert said["counts"]["changed"] == len(ids)  # the set does change these runs: the comparison has something to compare
    rows = _impact_rows(page)
    assert set(rows) == {r["run"] for r in said["runs"]} == set(ids)
    for want in said["runs"]:
        got = rows[want["run"]]
        assert got["impact"] == want["impact"]
        assert Decimal(got["cost"]) == Decimal(want["delta"]["cost"]) and int(got["latency_ms"]) == want["delta"]["latency_ms"]
        assert got["moves"] == want["moves"] and got["moves"]  # e.g. transform_file: etl_eu -> etl_burst
        assert f'href="/runs/{want["run"]}"' in got["body"] and "settle_daily" in got["body"]
    # What each mode would do, as `rollout` decides it: here every run would migrate.
    assert f"Here: {len(ids)} would migrate, 0 stay, 0 escalate." in page
    assert texts_hash(_set("retire-eu.intent", CHANGED))[:12] in page
    assert _rollouts(path) == []  # assessing changes nothing


def test_an_infeasible_run_shows_its_minimal_conflict_in_policy_terms(client):
    c, path, ids, _ = client
    page, r = _assess(c, {"breaks.intent": BREAKS})
    assert r.status_code == 200, page
    store = Store(path)
    try:
        said = impact(store, _set("breaks.intent", BREAKS))
    finally:
        store.close()
    assert _count(page, "infeasible") == said["counts"]["infeasible"] == len(ids)
    rows = _impact_rows(page)
    for want in said["runs"]:
        got = rows[want["run"]]
        assert got["impact"] == "infeasible"
        assert got["conflict"] == [x["policy"] for x in want["conflict"]] and "ledger_data_in_eu" in got["conflict"]
        assert want["why"] in html.unescape(got["body"])
    assert f"Here: 0 would migrate, 0 stay, {len(ids)} escalate." in page  # migrate
    assert f"Here: 0 would migrate, {len(ids)} stay, 0 escalate." in page  # new-runs and migrate-if-feasible


def test_policies_that_do_not_check_are_shown_located_and_nothing_is_assessed(client):
    c, path, _, _ = client
    page, r = _assess(c, {"ok.intent": CHANGED, "typo.intent": "policy p {\n  forbid provider etl_nowhere\n}\n"})
    assert r.status_code == 422 and 'id="impact-report"' not in page
    assert re.search(r'data-where="typo\.intent:2:\d+"', page) and "etl_nowhere" in page and "E012" in page
    page, r = _assess(c, {"mixed.intent": "provider x { }\n"})
    assert r.status_code == 422 and "mixed.intent:1:1" in page and "E130" in page
    page, r = _assess(c, {"open.intent": "policy p {\n  forbid provider etl_eu\n"})
    assert r.status_code == 422 and "open.intent:1:" in page and "help:" in page  # the parser's help, too
    # The files come back in the form, to be fixed.
    assert 'value="open.intent"' in page and "forbid provider etl_eu" in page
    assert "Traceback" not in page and _rollouts(path) == []


def test_bad_forms_are_a_clear_page_never_a_500(client):
    c, path, _, _ = client
    csrf = _csrf(c.get("/policies/rollout").text)
    empty = c.post("/policies/rollout/impact", data={"csrf": csrf, "name-0": "", "text-0": ""})
    assert empty.status_code == 422 and "the policy set is empty" in empty.text
    nameless = c.post("/policies/rollout/impact", data={"csrf": csrf, "name-0": "", "text-0": CHANGED})
    assert nameless.status_code == 422 and "has no name" in nameless.text
    twice = c.post("/policies/rollout/impact", data={"csrf": csrf, "name-0": "a.intent", "text-0": CHANGED, "name-1": "a.intent", "text-1": CHANGED})
    assert twice.status_code == 422 and "two files are named" in twice.text
    huge = c.post("/policies/rollout/impact", data={"csrf": csrf, "name-0": "big.intent", "text-0": "x" * (MAX_CHARS + 1)})
    assert huge.status_code == 413 and f"{MAX_CHARS:,}" in huge.text and "intento policy impact" in huge.text
    # Past the service's request limit the body is refused before the console reads it.
    over = c.post("/policies/rollout/impact", data={"csrf": csrf, "name-0": "big.intent", "text-0": "x" * 1_100_000})
    assert over.status_code == 413 and over.headers["content-type"].startswith("application/problem+json")
    page = c.get("/policies/rollout").text
    fields = {"csrf": _csrf(page), "name-0": "p.intent", "text-0": CHANGED}
    for mode, want in (("sometimes", "unknown mode `sometimes`"), ("", "choose a mode")):
        bad = c.post("/policies/rollout", data=fields | {"mode": mode})
        assert bad.status_code == 422 and want in bad.text and "migrate-if-feasible" in bad.text
    long_label = c.post("/policies/rollout/impact", data=fields | {"label": "l" * 201})
    assert long_label.status_code == 422 and "label" in long_label.text
    missing = c.get("/policies/rollout", params={"from": "99"})
    assert missing.status_code == 404 and "no rollout `99`" in missing.text
    odd = c.get("/policies/rollout", params={"from": "<x>" * 50})
    assert odd.status_code == 404 and "&lt;x&gt;" in odd.text
    none = c.get("/policies/rollouts/7")
    assert none.status_code == 404 and "no rollout `7`" in none.text
    word = c.get("/policies/rollouts/latest")
    assert word.status_code == 404 and "no rollout `latest`" in word.text
    for r in (empty, nameless, twice, huge, bad, long_label, missing, odd, none, word):
        assert "Traceback" not in r.text
    assert _rollouts(path) == []


def test_what_is_typed_is_escaped(client):
    c, _, _, _ = client
    page, r = _assess(c, {"<b>x</b>.intent": "// <script>alert(1)</script>\npolicy p {\n  forbid provider <img>\n}\n"}, label="<i>label</i>")
    assert r.status_code == 422
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;.intent" in page and "<i>label</i>" not in page


def test_signed_out_is_refused(waiting):
    c, path, _, _ = waiting
    c.cookies.clear()
    for page in ("/policies/rollout", "/policies/rollouts", "/policies/rollouts/1"):
        r = c.get(page, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), page
    for action in ("/policies/rollout/impact", "/policies/rollout"):
        r = c.post(action, data={"name-0": "p.intent", "text-0": CHANGED, "mode": "migrate", "confirmed": "yes", "after": "0"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), action
    assert _rollouts(path) == []
    # A bearer header is let in (and needs no CSRF token: a browser never sends that header on its own).
    assert c.get("/policies/rollouts", headers=BEARER).status_code == 200
    assert c.get("/policies/rollout", headers={"Authorization": "Bearer wrong"}, follow_redirects=False).status_code == 303


def test_actions_need_the_sessions_csrf_token(client):
    c, path, _, _ = client
    data = {"name-0": "p.intent", "text-0": CHANGED, "mode": "migrate", "confirmed": "yes", "after": "0"}
    for action in ("/policies/rollout/impact", "/policies/rollout"):
        assert c.post(action, data=data).status_code == 403
        assert c.post(action, data=data | {"csrf": "0" * 64}).status_code == 403
    other = TestClient(c.app)  # another session's token is not this session's
    _login(other)
    assert c.post("/policies/rollout", data=data | {"csrf": _csrf(other.get("/policies/rollout").text)}).status_code == 403
    assert _rollouts(path) == []


def test_the_rollout_asks_for_a_confirmation_first(client):
    c, path, _, _ = client
    page, _ = _assess(c, {"retire-eu.intent": CHANGED})
    asked = c.post("/policies/rollout", data=_hidden(page, "rollout-form") | {"mode": "migrate"})
    assert asked.status_code == 200 and 'id="confirm"' in asked.text and "mode migrate" in asked.text and "retire-eu.intent" in asked.text
    assert _rollouts(path) == []  # nothing recorded before the confirmation
    stale = _hidden(asked.text) | {"after": "7"}
    refused = c.post("/policies/rollout", data=stale)
    assert refused.status_code == 409 and "assess the policy set's impact again" in html.unescape(refused.text)
    back = c.post("/policies/rollout/impact", data=_hidden(asked.text))  # "Go back": the impact again, with the same files
    assert back.status_code == 200 and 'id="impact-report"' in back.text and 'value="retire-eu.intent"' in back.text
    assert _rollouts(path) == []


def test_project_policies_fill_the_form_and_check(client):
    c, _, _, spec = client
    page = c.get("/policies/rollout", params={"from": "project"}).text
    names = re.findall(r'<input id="name-\d+" name="name-\d+" type="text" value="([^"]*)"', page)
    assert "policies/common/spend.intent" in names and len(names) == 3
    data = _hidden(page, "policy-set-form")
    for i, name in enumerate(names):
        data[f"name-{i}"] = html.unescape(name)
        data[f"text-{i}"] = html.unescape(re.search(rf'<textarea id="text-{i}"[^>]*>\n(.*?)</textarea>', page, re.DOTALL).group(1))
    r = c.post("/policies/rollout/impact", data=data)
    assert r.status_code == 200 and _count(r.text, "changed") == 0 and _count(r.text, "infeasible") == 0  # the same policies: no run moves
    assert set(with_policy_set(spec, [{"name": n, "text": data[f"text-{i}"]} for i, n in enumerate(names)]).policies) == set(spec.policies)
    added = c.post("/policies/rollout/impact", data=data | {"add": "1"})
    assert added.status_code == 200 and f'id="name-{len(names)}"' in added.text and 'id="impact-report"' not in added.text


def test_the_nav_and_the_policies_page_link_to_the_rollout_pages(client):
    c, _, _, _ = client
    policies = c.get("/policies").text
    assert 'href="/policies/rollout"' in policies and 'href="/policies/rollouts"' in policies
    assert 'id="nav-rollout"' in c.get("/").text


# ---- rollouts from the console, each on a store of its own --------------------------------------


def test_a_migrating_rollout_from_the_console_moves_the_runs_as_its_impact_said(tmp_path):
    with _served(tmp_path, 3) as (c, path, ids, spec):
        _login(c)
        page, _ = _assess(c, {"retire-eu.intent": CHANGED}, label="retire-etl-eu")
        shown = _impact_rows(page)
        done, confirmed = _roll_out(c, page, "migrate", by="Ops Olga")
        assert "Rollout 1 recorded" in done
        store = Store(path)
        try:
            [recorded] = store.rollouts(with_policies=True)
            assert recorded["mode"] == "migrate" and recorded["label"] == "retire-etl-eu" and recorded["by"] == "Ops Olga (console)"
            assert recorded["policies"] == [{"name": "retire-eu.intent", "text": CHANGED}]  # the texts as typed
            said = {r["run"]: r for r in recorded["report"]["runs"]}
            assert {r["outcome"] for r in said.values()} == {"migrates"}
            for rid in ids:
                assert f'id="outcome-{rid}" data-impact="changed" data-outcome="migrates"' in done
                _until(lambda rid=rid: "policy_migrated" in _types(path, rid) and _types(path, rid)[-1] != "policy_migrated", f"{rid} to migrate and re-plan")
                evs = store.events(rid)
                mig = next(e["data"] for e in evs if e["type"] == "policy_migrated")
                assert mig["rollout"] == 1 and mig["mode"] == "migrate" and mig["from"] == spec.fingerprint
                assert mig["to"] == said[rid]["new_version"] and mig["to_label"] == "retire-etl-eu" and "no_etl_eu" in mig["added"]
                after = [e["data"] for e in evs if e["type"] == "planned"][-1]
                assert after["version"] == mig["to"] and after["reason"].startswith("policy migrated")
                steps = {s["action"]: s["provider"] for s in after["steps"]}
                for m in shown[rid]["moves"]:  # each move the page showed is in the run's new plan
                    action, change = m.split(": ")
                    assert steps.get(action, "-") == change.split(" -> ")[1], (m, steps)
            new_version = said[ids[0]]["new_version"]
            versions = {v["version"]: v for v in store.versions()}
        finally:
            store.close()
        # The done page links to the history, which lists the rollout and the versions in use.
        assert 'href="/policies/rollouts"' in done and 'href="/policies/rollouts/1"' in done
        hist = c.get("/policies/rollouts").text
        row = re.search(r'<tr id="rollout-1" data-mode="migrate">(.*?)</tr>', hist, re.DOTALL).group(1)
        assert "retire-etl-eu" in row and "Ops Olga (console)" in row and recorded["policy_set"][:12] in row and new_version[:12] in row
        assert f"{len(ids)} runs: {len(ids)} migrate, 0 stay, 0 escalate" in row and " UTC" in row
        for v in versions:
            vrow = re.search(rf'<tr id="version-{v[:12]}">(.*?)</tr>', hist, re.DOTALL).group(1)
            want = len(ids) if v == new_version else 0
            assert re.search(rf'class="runs">{want}<', vrow) and re.search(rf'class="unfinished">{want}<', vrow), (v, vrow)
        assert set(versions) == {spec.fingerprint, new_version}
        assert f"start on version retire-etl-eu <code title=\"{new_version}\">" in hist  # new runs: this project with the set
        detail = c.get("/policies/rollouts/1").text
        for rid in ids:
            assert re.search(rf'<tr id="outcome-{rid}"[^>]*>.*?migrated to <code>{new_version[:12]}</code>', detail, re.DOTALL)
        # The same confirmation sent again (a double click, a reload) records nothing more.
        again = c.post("/policies/rollout", data=confirmed)
        assert again.status_code == 409 and "rollout 1 was recorded since" in again.text
        assert _read(path, lambda s: s.last_rollout_seq()) == 1


def test_migrate_if_feasible_keeps_breaking_runs_and_new_runs_leaves_them(tmp_path):
    with _served(tmp_path, 2) as (c, path, ids, spec):
        _login(c)
        page, _ = _assess(c, {"breaks.intent": BREAKS})
        done, _ = _roll_out(c, page, "migrate-if-feasible")
        assert done.count('data-outcome="stays"') == len(ids)
        for rid in ids:
            _until(lambda rid=rid: "policy_kept" in _types(path, rid), f"{rid} to stay on its version")
        store = Store(path)
        try:
            for rid in ids:
                kept = next(e["data"] for e in store.events(rid) if e["type"] == "policy_kept")
                assert kept["rollout"] == 1 and kept["version"] == spec.fingerprint and "no plan under the new policy set" in kept["reason"]
                assert "policy_migrated" not in _types(path, rid) and store.run(rid)["status"] == "running"
            assert store.rollouts()[0]["by"].startswith("console (")  # no name typed: the console and the client's address
        finally:
            store.close()
        detail = c.get("/policies/rollouts/1").text
        assert detail.count("kept on its version:") == len(ids)

        page, _ = _assess(c, {"retire-eu.intent": CHANGED})
        done, _ = _roll_out(c, page, "new-runs")
        assert "Rollout 2 recorded" in done and done.count('data-outcome="stays"') == len(ids)
        [late] = _start(c, path, 1, first_day=20)
        store = Store(path)
        try:
            on = store.events(late)[0]["data"]
            assert on["version"] == with_policy_set(spec, _set("retire-eu.intent", CHANGED)).fingerprint and on["rollout"] == 2
            assert {e["data"]["rollout"] for rid in ids for e in store.events(rid) if e["type"].startswith("policy_")} == {1}
        finally:
            store.close()
        hist = c.get("/policies/rollouts").text
        assert 'id="rollout-2" data-mode="new-runs"' in hist and 'id="rollout-1" data-mode="migrate-if-feasible"' in hist
        assert re.search(rf'<tr id="version-{on["version"][:12]}">.*?class="runs">1<', hist, re.DOTALL)
        assert re.search(rf'<tr id="version-{spec.fingerprint[:12]}">.*?class="runs">{len(ids)}<.*?class="unfinished">{len(ids)}<', hist, re.DOTALL)
        # The bank's file lands for one of the kept runs: it finishes on its own version.
        _read(path, lambda s: post(s, ids[0], {"fact": "settlement.received", "source": "test"}))
        _until(lambda: _read(path, lambda s: s.run(ids[0])["status"]) == "succeeded", "the kept run to finish")
        hist = c.get("/policies/rollouts").text
        assert re.search(rf'<tr id="version-{spec.fingerprint[:12]}">.*?class="runs">{len(ids)}<.*?class="unfinished">{len(ids) - 1}<', hist, re.DOTALL)


# ---- in a browser ------------------------------------------------------------------------------

try:
    from selenium.webdriver.common.by import By

    from tests.console.test_console_browser import (  # noqa: F401  (fixtures: pytest finds them by name)
        CHROMIUM, DRIVER, SETTLE, _shot, _text, _wait, _wait_waiting, browser, settlement, shots, tmp,
    )
    from tests.console.test_console_browser import _login as _browser_login

    HAVE_BROWSER = os.path.exists(CHROMIUM) and os.path.exists(DRIVER)
except (ImportError, pytest.skip.Exception):
    HAVE_BROWSER = False


@pytest.mark.skipif(not HAVE_BROWSER, reason="needs selenium, Debian's chromium and chromium-driver (as test_console_browser.py)")
def test_an_operator_pastes_a_policy_sees_its_impact_and_rolls_it_out(browser, settlement, shots):
    a = settlement.start_run("settle_daily", dict(SETTLE, **{"settlement.date": "2026-12-01"}))
    b = settlement.start_run("settle_daily", dict(SETTLE, **{"settlement.date": "2026-12-02"}))
    for r in (a, b):
        _wait_waiting(settlement, r)
    _browser_login(browser, settlement)
    browser.find_element(By.LINK_TEXT, "Policies").click()
    _wait(browser, lambda d: d.find_elements(By.ID, "rollout-link"), "the policies page's rollout link")[0].click()
    _wait(browser, lambda d: d.current_url.endswith("/policies/rollout") and d.find_elements(By.ID, "text-0"), "the rollout page")
    name = browser.find_element(By.ID, "name-0")
    name.clear()
    name.send_keys("retire-eu.intent")
    browser.find_element(By.ID, "text-0").send_keys(CHANGED)
    browser.find_element(By.ID, "label").send_keys("retire-etl-eu")
    browser.find_element(By.ID, "impact-button").click()
    report = _wait(browser, lambda d: d.find_elements(By.ID, "impact-report"), "the impact report")[0]
    for rid in (a, b):
        row = report.find_element(By.ID, f"impact-{rid}")
        assert row.get_attribute("data-impact") == "changed" and "transform_file: etl_eu -> etl_burst" in row.text, row.text
        assert row.find_element(By.LINK_TEXT, rid).get_attribute("href").endswith(f"/runs/{rid}")
    assert int(browser.find_element(By.ID, "count-changed").text) == 2
    _shot(browser, shots, "rollout-impact")
    browser.find_element(By.CSS_SELECTOR, "label[for=mode-migrate]").click()
    browser.find_element(By.ID, "rollout-button").click()
    confirm = _wait(browser, lambda d: d.find_elements(By.ID, "confirm"), "the rollout's confirmation")[0]
    assert "mode migrate" in _text(browser) and "retire-eu.intent" in _text(browser)
    assert settlement.api("GET", "/v1/policy/rollouts")["rollouts"] == []  # nothing recorded before confirming
    _shot(browser, shots, "rollout-confirm")
    confirm.click()
    _wait(browser, lambda d: "Rollout 1 recorded" in d.find_element(By.TAG_NAME, "h1").text, "the rollout's report")
    for rid in (a, b):
        assert browser.find_element(By.ID, f"outcome-{rid}").get_attribute("data-outcome") == "migrates"
    _shot(browser, shots, "rollout-done")
    [recorded] = settlement.api("GET", "/v1/policy/rollouts")["rollouts"]
    # The textarea's text arrived as typed (its line ends as a file's): the same hash as the file.
    assert recorded["policy_set"] == texts_hash([{"name": "retire-eu.intent", "text": CHANGED}]) and recorded["label"] == "retire-etl-eu"
    for rid in (a, b):  # the service's engine migrates the waiting runs
        _wait(browser, lambda d, rid=rid: any(m.get("kind") == "migrated" for m in settlement.api("GET", f"/v1/runs/{rid}").get("migrations") or []),
              f"{rid} to migrate")
    browser.find_element(By.ID, "rollouts-link").click()
    row = _wait(browser, lambda d: d.find_elements(By.ID, "rollout-1"), "the rollout history")[0]
    assert row.get_attribute("data-mode") == "migrate" and "retire-etl-eu" in row.text and "2 migrate" in row.text
    _shot(browser, shots, "rollouts")
    row.find_element(By.LINK_TEXT, "1").click()
    _wait(browser, lambda d: all("migrated to" in d.find_element(By.ID, f"outcome-{rid}").text for rid in (a, b)), "the rollout's runs, migrated")
