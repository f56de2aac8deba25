"""The console in a real browser (issue 15): Debian's chromium, driven by Selenium through the
system's chromedriver (nothing is downloaded), against two `intento serve` processes started
here as a user starts them:

- the order example with the stripe-outage simulation, where a run started while the runs page
  is open is re-routed from stripe to another provider and appears, finished, without a reload;
- the settlement example with real handlers, where runs wait for the bank's file until the
  operator observes it, or cancels the run, from the page.

Screenshots of every page visited go to `$INTENTO_SCREENSHOTS` (default: the test's temporary
directory); docs/console.md shows the ones taken here. Skipped when chromium, chromedriver or
selenium is missing (`.ci/run` installs them)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "browser-test-token"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WAIT_S = 60  # the bound on every wait for the page to show something (a slow, busy machine)

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run does)",
)

US = {"customer.region": "us", "order.amount": "80 USD", "customer.email": "a@example.com"}
SETTLE = {"customer.region": "eu", "settlement.date": "2026-11-24", "settlement.expected_total": "1200000 USD"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`intento serve` in its own process, on a free port, with a bearer token."""

    def __init__(self, tmp: Path, name: str, args: list[str]):
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.store = tmp / f"{name}.db"
        self.log = open(tmp / f"{name}.log", "w")
        env = dict(os.environ, INTENTO_TOKEN=TOKEN, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        cmd = [sys.executable, "-m", "intento", "serve", *args, "--store", str(self.store), "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                with urllib.request.urlopen(self.base + "/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"intento serve did not become ready: {(tmp / f'{name}.log').read_text()}")
            time.sleep(0.1)

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        req = urllib.request.Request(self.base + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def start_run(self, intent: str, given: dict) -> str:
        return self.api("POST", "/v1/runs", {"intent": intent, "given": given})["run"]

    def wait_status(self, run_id: str, want: set[str]) -> dict:
        deadline = time.monotonic() + WAIT_S
        while True:
            view = self.api("GET", f"/v1/runs/{run_id}")
            if view["status"] in want or time.monotonic() > deadline:
                return view
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("browser")


@pytest.fixture(scope="module")
def orders(tmp):
    """The order example on the stripe-outage simulation: stripe is down for two hours."""
    s = Server(tmp, "orders", ["examples/order_fulfilment", "policies", "--simulate", "examples/order_fulfilment/scenarios/stripe_outage.json"])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def settlement(tmp):
    """The settlement example with real handlers: runs wait for the bank's file."""
    s = Server(tmp, "settlement", ["examples/settlement", "policies/common", "--handlers", "tests.console.settlement_handlers:registry"])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def shots(tmp) -> Path:
    d = Path(os.environ.get("INTENTO_SCREENSHOTS") or tmp / "screenshots")
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def browser(tmp):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        opts.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp)
    opts.add_argument(f"--user-data-dir={profile}")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never fetch a browser or a driver
    try:
        driver = webdriver.Chrome(options=opts, service=Service(executable_path=DRIVER))
    except WebDriverException as e:  # a chromium that cannot start here is a failure, not a skip
        raise AssertionError(f"chromium did not start through {DRIVER}: {e.msg}") from None
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


def _wait(browser, condition, what: str):
    """Wait (bounded) for ``condition(browser)`` to be truthy; a stale element means the htmx
    swap is under way, so it is tried again."""

    def check(d):
        try:
            return condition(d)
        except StaleElementReferenceException:
            return False

    return WebDriverWait(browser, WAIT_S, poll_frequency=0.1).until(check, message=f"timed out waiting for {what}")


def _shot(browser, shots: Path, name: str) -> None:
    height = browser.execute_script("return Math.min(document.documentElement.scrollHeight, 4000)")
    browser.set_window_size(1280, max(700, height))
    browser.save_screenshot(str(shots / f"{name}.png"))
    browser.set_window_size(1280, 1000)


def _login(browser, server: Server, shots: Path | None = None) -> None:
    browser.delete_all_cookies()
    browser.get(server.base + "/")
    _wait(browser, lambda d: "/login" in d.current_url, "the login page")
    field = browser.find_element(By.ID, "token")
    field.send_keys(TOKEN + Keys.ENTER)
    _wait(browser, lambda d: d.find_element(By.TAG_NAME, "h1").text == "Runs", "the runs page after logging in")


def _text(browser) -> str:
    return browser.find_element(By.TAG_NAME, "main").text


def _row_ids(browser) -> list[str]:
    return [r.get_attribute("id") for r in browser.find_elements(By.CSS_SELECTOR, "table.runs tbody tr[id^=row-]")]


def test_logging_in_takes_the_token_and_a_wrong_one_is_refused(browser, orders, shots):
    browser.delete_all_cookies()
    browser.get(orders.base + "/policies")
    _wait(browser, lambda d: "/login" in d.current_url, "the login page instead of the policies")
    assert "Policies" not in browser.find_element(By.TAG_NAME, "h1").text
    browser.find_element(By.ID, "token").send_keys("not-the-token" + Keys.ENTER)
    alert = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "[role=alert]"), "the refusal")
    assert "Refused" in alert[0].text
    _shot(browser, shots, "login-refused")
    browser.find_element(By.ID, "token").send_keys(TOKEN + Keys.ENTER)
    _wait(browser, lambda d: d.current_url.endswith("/policies"), "the page asked for, after logging in")
    assert TOKEN not in json.dumps(browser.get_cookies())  # the cookie holds an HMAC, never the token
    policies = _text(browser)
    assert "pci_payments" in policies and "compliance@example.com" in policies  # each policy with its owner


def test_a_reviewer_plans_a_request_without_a_run(browser, orders, shots):
    _login(browser, orders)
    browser.find_element(By.LINK_TEXT, "Plan").click()
    _wait(browser, lambda d: d.current_url.endswith("/plan") and d.find_elements(By.ID, "p-given"), "the plan page")
    given = browser.find_element(By.ID, "p-given")
    given.clear()
    given.send_keys('{"customer.region": "eu", "order.amount": "80 USD", "customer.email": "x@example.com"}')
    state = browser.find_element(By.ID, "p-state")
    state.clear()
    state.send_keys('{"providers": {"adyen": {"status": "down"}}}')
    browser.find_element(By.ID, "plan-button").click()
    report = _wait(browser, lambda d: d.find_elements(By.ID, "report"), "the decision report")[0].text
    assert "infeasible" in report.lower() and "adyen" in report  # no EU payment provider is up: the minimal conflict says why
    _shot(browser, shots, "plan")
    given = browser.find_element(By.ID, "p-given")
    given.clear()
    given.send_keys('{"customer.region": "eu", "order.amount": "lots"}')
    browser.find_element(By.ID, "plan-button").click()
    problems = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "pre.diagnostic"), "the request's problems")
    assert any("order.amount" in p.text for p in problems), [p.text for p in problems]  # located, not an error page


def test_a_run_re_routed_by_an_outage_appears_live_without_a_reload(browser, orders, shots):
    _login(browser, orders)
    browser.execute_script("window.__sameDocument = 'yes'")  # gone if the page reloads
    before = len(browser.find_elements(By.CSS_SELECTOR, "table.runs tbody tr[id^=row-]"))
    run_id = orders.start_run("fulfil_order", US)
    _wait(browser, lambda d: d.find_elements(By.ID, f"row-{run_id}"), "the new run's row to appear")
    _wait(browser, lambda d: d.find_element(By.ID, f"row-{run_id}").get_attribute("data-status") == "succeeded", "the run to show as succeeded")
    assert browser.execute_script("return window.__sameDocument") == "yes", "the page was reloaded"
    assert len(browser.find_elements(By.CSS_SELECTOR, "table.runs tbody tr[id^=row-]")) == before + 1
    # Looked up afresh (and again if a live refresh swaps the table meanwhile): an element found
    # before the last swap is stale.
    _wait(browser, lambda d: d.find_element(By.ID, f"row-{run_id}").is_displayed(), "the run's row to be shown")
    _shot(browser, shots, "runs")
    view = orders.api("GET", f"/v1/runs/{run_id}")
    assert view["plans"] >= 2 and view["steps"]["charge_payment"]["provider"] != "stripe"  # it was re-routed


def test_filters_and_search_narrow_the_list(browser, orders, shots):
    ids = [orders.start_run("fulfil_order", dict(US, **{"customer.email": f"f{i}@example.com"})) for i in range(2)]
    for r in ids:
        assert orders.wait_status(r, {"succeeded"})["status"] == "succeeded"
    _login(browser, orders)
    Select(browser.find_element(By.ID, "f-status")).select_by_value("escalated")
    browser.find_element(By.ID, "apply-filters").click()
    _wait(browser, lambda d: "status=escalated" in d.current_url and "No run matches." in _text(d), "the filtered list, empty")
    Select(browser.find_element(By.ID, "f-status")).select_by_value("succeeded")
    search = browser.find_element(By.ID, "f-q")
    search.clear()
    search.send_keys(ids[1][-6:].upper() + Keys.ENTER)  # part of the id, any case
    # (The new page may still be loading when its address changes: wait for its rows.)
    _wait(browser, lambda d: "q=" in d.current_url and _row_ids(d) == [f"row-{ids[1]}"], "only the searched run to be listed")
    _shot(browser, shots, "runs-filtered")


def test_the_run_page_gives_the_re_plan_its_reason_and_the_explanation(browser, orders, shots):
    run_id = orders.start_run("fulfil_order", dict(US, **{"customer.email": "r@example.com"}))
    assert orders.wait_status(run_id, {"succeeded"})["status"] == "succeeded"
    _login(browser, orders)
    browser.find_element(By.ID, "f-q").send_keys(run_id + Keys.ENTER)
    _wait(browser, lambda d: "q=" in d.current_url and _row_ids(d) == [f"row-{run_id}"], "the searched run alone in the list")
    _wait(browser, lambda d: d.find_elements(By.LINK_TEXT, run_id), "the run's link").pop().click()
    _wait(browser, lambda d: d.current_url.endswith(f"/runs/{run_id}") and d.find_elements(By.ID, "audit-h"), "the run page")
    replan = browser.find_element(By.ID, "plan-2")
    reason = replan.find_element(By.CSS_SELECTOR, ".reason").text
    assert "stripe" in reason and "fail" in reason.lower(), reason  # why it re-planned
    assert browser.find_elements(By.CSS_SELECTOR, "svg[role=img]"), "no timeline drawn"
    explanation = browser.find_element(By.CSS_SELECTOR, "section.explanation").text
    assert "charge_payment" in explanation and "stripe" in explanation  # why stripe lost the re-plan
    assert "observed down" in explanation or "unavailable" in explanation, explanation
    _shot(browser, shots, "run")
    replan.find_element(By.PARTIAL_LINK_TEXT, "report #2").click()
    _wait(browser, lambda d: d.current_url.endswith(f"/runs/{run_id}/decisions/2") and "charge_payment" in _text(d), "the decision report")
    report = _text(browser)
    assert "charge_payment" in report and "stripe" in report
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        hidden = [e for e in browser.find_elements(By.CSS_SELECTOR, "header.top, .noprint") if e.is_displayed()]
        assert not hidden, "the print view still shows the console's navigation"
        _shot(browser, shots, "decision-print")
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})


def test_the_policies_page_counts_the_decisions_they_shaped(browser, orders, shots):
    run_id = orders.start_run("fulfil_order", dict(US, **{"customer.email": "p@example.com"}))
    assert orders.wait_status(run_id, {"succeeded"})["status"] == "succeeded"
    _login(browser, orders)
    browser.find_element(By.LINK_TEXT, "Policies").click()
    row = _wait(browser, lambda d: d.find_elements(By.ID, "policy-pci_payments"), "the policies table")[0]
    assert row.find_element(By.CSS_SELECTOR, ".owner").text == "compliance@example.com"
    assert int(row.find_element(By.CSS_SELECTOR, ".applied").text) >= 3  # every plan of that run applied it
    assert "payments.intent" in row.text  # its source
    _shot(browser, shots, "policies")


def test_an_operator_observes_the_awaited_fact_and_cancels_another_run(browser, settlement, shots):
    a, b = settlement.start_run("settle_daily", SETTLE), settlement.start_run("settle_daily", dict(SETTLE, **{"settlement.date": "2026-11-25"}))
    for r in (a, b):
        _wait_waiting(settlement, r)
    _login(browser, settlement)
    group = _wait(browser, lambda d: [e for e in d.find_elements(By.CSS_SELECTOR, "a.wait-link") if "settlement.received" in e.text], "the stall-point group")
    assert group[0].text.startswith("2 runs"), group[0].text
    _shot(browser, shots, "runs-waiting")
    group[0].click()
    _wait(browser, lambda d: "waits_on=" in d.current_url and set(_row_ids(d)) == {f"row-{a}", f"row-{b}"}, "the group's runs")

    browser.get(f"{settlement.base}/runs/{a}")
    Select(browser.find_element(By.ID, "obs-fact")).select_by_value("settlement.received")
    browser.find_element(By.ID, "observe-fact-button").click()
    confirm = _wait(browser, lambda d: d.find_elements(By.ID, "confirm"), "the confirmation")
    assert "settlement.received" in _text(browser)
    assert settlement.api("GET", f"/v1/runs/{a}")["status"] == "running"  # nothing sent before confirming
    _shot(browser, shots, "observe-confirm")
    confirm[0].click()
    _wait(browser, lambda d: "Observation sent" in _text(d), "the observation's acknowledgement")
    assert settlement.wait_status(a, {"succeeded"})["status"] == "succeeded"

    browser.get(f"{settlement.base}/runs/{b}")
    browser.find_element(By.ID, "cancel-reason").send_keys("the bank re-sends tomorrow's file")
    browser.find_element(By.ID, "cancel-button").click()
    _wait(browser, lambda d: d.find_elements(By.ID, "confirm"), "the cancel confirmation")[0].click()
    _wait(browser, lambda d: "Cancellation sent" in _text(d), "the cancellation's acknowledgement")
    assert settlement.wait_status(b, {"cancelled"})["status"] == "cancelled"
    browser.get(f"{settlement.base}/runs/{b}")
    _wait(browser, lambda d: "cancelled" in d.find_element(By.ID, "run-status").text, "the cancelled status")
    assert "the bank re-sends tomorrow's file" in _text(browser)  # the reason, in the outcome and the audit records
    _shot(browser, shots, "run-cancelled")


def test_a_run_page_follows_its_run_live(browser, settlement, shots):
    run_id = settlement.start_run("settle_daily", dict(SETTLE, **{"settlement.date": "2026-11-26"}))
    _wait_waiting(settlement, run_id)
    _login(browser, settlement)
    browser.get(f"{settlement.base}/runs/{run_id}")
    assert "settlement.received" in browser.find_element(By.ID, "run-where").text
    browser.execute_script("window.__sameDocument = 'yes'")
    settlement.api("POST", f"/v1/runs/{run_id}/observations", {"fact": "settlement.received"})  # the bank's file lands, seen by another client
    _wait(browser, lambda d: "succeeded" in d.find_element(By.ID, "run-status").text, "the run page to show the run succeeded")
    assert browser.execute_script("return window.__sameDocument") == "yes", "the page was reloaded"
    assert "post_to_ledger" in _text(browser)


def _wait_waiting(server: Server, run_id: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while (server.api("GET", f"/v1/runs/{run_id}").get("waits_on") or "").find("settlement.received") < 0:
        assert time.monotonic() < deadline, f"run {run_id} never waited for settlement.received"
        time.sleep(0.1)


def test_the_console_works_from_the_keyboard(browser, orders):
    _login(browser, orders)
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    skip = browser.switch_to.active_element
    assert skip.text == "Skip to content"
    skip.send_keys(Keys.ENTER)
    _wait(browser, lambda d: d.switch_to.active_element.get_attribute("id") == "main", "focus on the main content")
    for _ in range(60):  # Tab through the filters to the first run's link
        browser.switch_to.active_element.send_keys(Keys.TAB)
        href = browser.switch_to.active_element.get_attribute("href") or ""
        if "/runs/" in href:
            break
    else:
        raise AssertionError("no run link reachable with Tab")
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    _wait(browser, lambda d: d.current_url == href, "the run page opened from the keyboard")
    outline = browser.execute_script(
        "const a = document.querySelector('main a'); a.focus(); const s = getComputedStyle(a); return s.outlineStyle + ' ' + s.outlineWidth;")
    assert not outline.startswith("none"), f"focused links show no outline: {outline}"
