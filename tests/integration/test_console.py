"""The console in a real browser: Debian's chromium, headless, driven through its
chromium-driver by Selenium, against the API's server (uvicorn, in a thread) over what the
real pipeline wrote for a small simulated history of two tenants.

A screenshot of each page goes to ``.churnwatch/artifacts/console/`` (the README's come
from there). Without chromium and chromium-driver (``make browser``) the tests skip and
say so.
"""

from __future__ import annotations

import base64
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from api import add_user
from churnwatch.api_server import api_config
from churnwatch.replay import replay_to_sinks
from churnwatch.settings import Settings, Topics
from churnwatch.simulator import simulate, write_jsonl
from sinks.postgres import connect
from tests.builders import event_bytes
from tests.integration.conftest import clean_up

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[2] / ".churnwatch" / "artifacts" / "console"
CHROMIUM = ("/usr/bin/chromium", "chromium")
CHROMEDRIVER = ("/usr/bin/chromedriver", "chromedriver")
TENANT, OTHER = "acme", "globex"


def _found(candidates: tuple[str, ...]) -> str | None:
    for name in candidates:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass(frozen=True)
class Console:
    settings: Settings
    base: str
    tokens: dict[str, str]  # "tenant:user" -> token
    agent_accounts: tuple[str, ...]

    def rows(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """As churnwatch's own role (the tables' owner): the ground truth."""
        assert self.settings.database_url
        with connect(self.settings.database_url, self.settings.database_schema) as conn:
            return list(conn.execute(query.encode(), params))

    def latest(self, tenant: str) -> dict[str, float]:
        return {r[0]: r[1] for r in self.rows(
            "SELECT DISTINCT ON (account_id) account_id, score FROM risk_scores"
            " WHERE tenant_id = %s AND NOT shadow ORDER BY account_id, score_time DESC,"
            " score_id DESC", tenant)}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def console(stack_settings: Settings,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    import uvicorn

    from api import create_app

    suffix = uuid.uuid4().hex[:10]
    name = f"tcon{suffix}"
    settings = stack_settings.replace(
        topics=Topics(events=f"{name}.events", dead_letters=f"{name}.dlq",
                      alerts=f"{name}.alerts", late=f"{name}.late", scores=f"{name}.scores",
                      workflows=f"{name}.workflows"),
        database_schema=f"cw_{name}", redis_key_prefix=f"cwt{suffix}", metrics_port=0,
        recovery_dir=None,
    )
    server = None
    thread = None
    try:
        history = tmp_path_factory.mktemp("console") / "history.jsonl"
        # The last 28 days: the alerts are recent enough to read as open, not expired.
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        write_jsonl(simulate(accounts=40, days=28, seed=11,
                             start=today - timedelta(days=28)), history)
        replay_to_sinks(history, settings)
        assert settings.database_url
        # Whether the window ends with an account at high risk and still active is the
        # simulation's luck, which moves with the date (on some days none is: its
        # churners are high only in their last days, and cancelled by then). So two
        # active accounts start to cancel an hour ago, as customers do: a decisive
        # event each, through the same dataflow, and they are high risk, still active.
        with connect(settings.database_url, settings.database_schema) as conn:
            active = [r[0] for r in conn.execute(
                "SELECT account_id FROM accounts WHERE tenant_id = %s AND status = 'active'"
                " ORDER BY account_id LIMIT 2", (TENANT,))]
        assert len(active) == 2, "the simulated history has active accounts"
        hour_ago = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
        intents = history.with_name("intents.jsonl")
        intents.write_bytes(b"".join(
            event_bytes(event_id=f"console-intent-{account}", tenant_id=TENANT,
                        account_id=account, event_type="subscription.cancel_intent",
                        source="billing", user_id=None,
                        event_time=hour_ago.isoformat().replace("+00:00", "Z")) + b"\n"
            for account in active))
        replay_to_sinks(intents, settings)
        tokens = {}
        with connect(settings.database_url, settings.database_schema, autocommit=True) as conn:
            for tenant, user, role in ((TENANT, "cole", "coordinator"),
                                       (TENANT, "agent-a", "agent"),
                                       (OTHER, "gus", "coordinator")):
                tokens[f"{tenant}:{user}"] = add_user(conn, tenant, user, role)[1]
            scored = [r[0] for r in conn.execute(
                "SELECT DISTINCT account_id FROM risk_scores WHERE tenant_id = %s ORDER BY 1",
                (TENANT,))]
            owned = tuple(scored[:2])
            for account in owned:
                conn.execute("INSERT INTO account_owners (tenant_id, account_id, owner,"
                             " updated_by) VALUES (%s, %s, 'agent-a', 'setup')",
                             (TENANT, account))
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(api_config(settings)),
                                               host="127.0.0.1", port=port, log_config=None))
        thread = threading.Thread(target=server.run, name="console-server", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        yield Console(settings, f"http://127.0.0.1:{port}", tokens, owned)
    finally:
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(timeout=15)
        clean_up(stack_settings, [settings])


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium, driver_path = _found(CHROMIUM), _found(CHROMEDRIVER)
    if chromium is None or driver_path is None:
        pytest.skip("no chromium or chromium-driver: install Debian's with `make browser`"
                    " (apt-get install chromium chromium-driver) to run the console's"
                    " browser tests")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,900",
                     "--force-device-scale-factor=1"):
        options.add_argument(argument)
    # An explicit driver: Selenium Manager neither looks for nor downloads one.
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: Any, console: Console) -> Iterator[Any]:
    """The browser, logged out (no cookie) at the start of each test."""
    browser.get(f"{console.base}/console/login")
    browser.delete_all_cookies()
    yield browser


def screenshot(driver: Any, name: str, max_height: int = 1800) -> Path:
    """The page as drawn, beyond the window too (up to ``max_height`` CSS pixels)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"console-{name}.png"
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"],
                 "height": min(size["height"], max_height), "scale": 1},
    })
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def log_in(driver: Any, console: Console, user: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{console.base}/console/accounts")
    assert driver.current_url == f"{console.base}/console/login"  # redirected there
    driver.find_element(By.ID, "token").send_keys(console.tokens[user])
    driver.find_element(By.ID, "log-in").click()
    wait_for_url(driver, f"{console.base}/console/accounts")


def wait_for_url(driver: Any, url: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 15).until(lambda d: d.current_url == url)


def texts(driver: Any, selector: str) -> list[str]:
    from selenium.webdriver.common.by import By

    # textContent, not the rendered text (which CSS may upper-case)
    return [e.get_attribute("textContent").strip()
            for e in driver.find_elements(By.CSS_SELECTOR, selector)]


def test_a_coordinator_logs_in_and_sees_each_page(page: Any, console: Console) -> None:
    from selenium.webdriver.common.by import By

    page.get(f"{console.base}/console/login")
    screenshot(page, "login")
    log_in(page, console, f"{TENANT}:cole")
    cookie = next(c for c in page.get_cookies() if c["name"] == "churnwatch_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert page.find_element(By.ID, "who").text == f"cole · coordinator · tenant {TENANT}"

    # At-risk accounts: the tenant's, riskiest first, with the count of high-risk ones.
    latest = console.latest(TENANT)
    listed = texts(page, "#accounts a.account")
    expected = sorted(latest, key=lambda a: (-latest[a], a))[:50]
    assert listed == expected
    high = console.rows("SELECT count(*) FROM (SELECT DISTINCT ON (account_id) tier FROM"
                        " risk_scores WHERE tenant_id = %s AND NOT shadow ORDER BY account_id,"
                        " score_time DESC, score_id DESC) l WHERE tier = 'high'", TENANT)[0][0]
    assert page.find_element(By.CSS_SELECTOR, "#count-high .figure").text == str(high)
    screenshot(page, "accounts")

    # An account: its chart (one marker per score) and its timeline.
    riskiest = listed[0]
    page.find_element(By.LINK_TEXT, riskiest).click()
    wait_for_url(page, f"{console.base}/console/accounts/{riskiest}")
    assert page.find_element(By.ID, "account-id").text == riskiest
    line = page.find_element(By.CSS_SELECTOR, "#risk-chart path.risk-line")
    assert line.get_attribute("d").startswith("M") and line.is_displayed()
    scores = console.rows("SELECT count(*) FROM risk_scores WHERE tenant_id = %s AND"
                          " account_id = %s AND NOT shadow", TENANT, riskiest)[0][0]
    assert len(page.find_elements(By.CSS_SELECTOR, "#risk-chart circle")) == scores > 0
    kinds = set(texts(page, "#timeline .kind"))
    assert "score" in kinds
    screenshot(page, "account")

    # The alert queue: the tenant's alerts, newest first, each with its forms.
    page.find_element(By.LINK_TEXT, "Alert queue").click()
    wait_for_url(page, f"{console.base}/console/alerts")
    alerts = console.rows("SELECT account_id FROM alerts WHERE tenant_id = %s"
                          " ORDER BY event_time DESC, alert_id DESC LIMIT 50", TENANT)
    assert texts(page, "#alerts a.account") == [r[0] for r in alerts] != []
    assert page.find_elements(By.CSS_SELECTOR, "#alerts form.assign")
    screenshot(page, "alerts")

    # Churn causes: one bar per reason, the table by month.
    page.find_element(By.LINK_TEXT, "Churn causes").click()
    wait_for_url(page, f"{console.base}/console/churn-causes")
    reasons = console.rows("SELECT coalesce(reason_code, 'no reason given'), count(*) FROM"
                           " cancellation_reasons WHERE tenant_id = %s GROUP BY 1", TENANT)
    assert reasons, "the simulated history has cancellations"
    bars = page.find_elements(By.CSS_SELECTOR, "#causes-chart rect.bar")
    assert len(bars) == len(reasons)
    assert {b.find_element(By.TAG_NAME, "title").get_attribute("textContent") for b in bars} \
        == {f"{reason}: {n}" for reason, n in reasons}
    screenshot(page, "churn-causes")

    # Log out: the cookie is gone, and pages send the browser to the login page again.
    page.find_element(By.ID, "logout").click()
    wait_for_url(page, f"{console.base}/console/login")
    assert not [c for c in page.get_cookies() if c["name"] == "churnwatch_console"]
    page.get(f"{console.base}/console/alerts")
    assert page.current_url == f"{console.base}/console/login"


def test_a_wrong_token_stays_on_the_login_page(page: Any, console: Console) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page.find_element(By.ID, "token").send_keys("cw_not-a-token")
    page.find_element(By.ID, "log-in").click()
    # The answer is on the same URL: wait for it (the click may return before it loads).
    problem = WebDriverWait(page, 15).until(lambda d: d.find_elements(By.ID, "problem"))[0]
    assert problem.text == "unknown or disabled token"
    assert not page.get_cookies()


def test_another_tenant_sees_none_of_it(page: Any, console: Console) -> None:
    from selenium.webdriver.common.by import By

    log_in(page, console, f"{OTHER}:gus")
    mine, theirs = console.latest(OTHER), console.latest(TENANT)
    assert set(texts(page, "#accounts a.account")) == set(
        sorted(mine, key=lambda a: (-mine[a], a))[:50])
    only_theirs = sorted(set(theirs) - set(mine))
    assert only_theirs, "the simulated tenants have accounts of their own"
    page.get(f"{console.base}/console/accounts/{only_theirs[0]}")
    assert page.find_element(By.ID, "problem").text == f"no account {only_theirs[0]}"
    page.get(f"{console.base}/console/alerts")
    other_alerts = {r[0] for r in console.rows(
        "SELECT DISTINCT account_id FROM alerts WHERE tenant_id = %s", OTHER)}
    assert set(texts(page, "#alerts a.account")) <= other_alerts


def test_an_agent_sees_only_its_accounts(page: Any, console: Console) -> None:
    from selenium.webdriver.common.by import By

    log_in(page, console, f"{TENANT}:agent-a")
    assert set(texts(page, "#accounts a.account")) == set(console.agent_accounts)
    assert int(page.find_element(By.CSS_SELECTOR, "#count-high .figure").text) <= 2
    not_mine = sorted(set(console.latest(TENANT)) - set(console.agent_accounts))[0]
    page.get(f"{console.base}/console/accounts/{not_mine}")
    assert page.find_element(By.ID, "problem").text == f"no account {not_mine}"
    page.get(f"{console.base}/console/alerts")
    assert set(texts(page, "#alerts a.account")) <= set(console.agent_accounts)


def test_a_coordinator_acts_on_alerts_from_the_queue(page: Any, console: Console) -> None:
    """Acknowledge, assign and resolve through the queue's forms (no script: plain POSTs,
    each back to the queue with what happened); a stale form's refused change is shown on
    the page. Each change is the lifecycle's: a history row per change."""
    import httpx2
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    log_in(page, console, f"{TENANT}:cole")
    page.get(f"{console.base}/console/alerts?status=open")
    first, second, third = (r.get_attribute("id").removeprefix("alert-") for r in
                            page.find_elements(By.CSS_SELECTOR, "#alerts tbody tr")[:3])

    def row(alert_id: str) -> Any:
        return page.find_element(By.ID, f"alert-{alert_id}")

    # Acknowledge.
    row(first).find_element(By.CSS_SELECTOR, "form.acknowledge button").click()
    wait_for_url(page, f"{console.base}/console/alerts?done=acknowledged")
    assert page.find_element(By.ID, "done").text == "Alert acknowledged."
    assert row(first).find_element(By.CSS_SELECTOR, "td.status").text == "acknowledged"
    assert not row(first).find_elements(By.CSS_SELECTOR, "form.acknowledge")
    assert console.rows(
        "SELECT action, by, from_status, to_status FROM alert_state_history"
        " WHERE alert_id = %s::uuid ORDER BY id", first) == [
        ("acknowledge", "cole", "open", "acknowledged")]
    screenshot(page, "alerts-acknowledged")

    # Assign, from a select of the tenant's enabled users.
    Select(row(first).find_element(By.CSS_SELECTOR, "form.assign select")).select_by_value(
        "cole")
    row(first).find_element(By.CSS_SELECTOR, "form.assign button").click()
    wait_for_url(page, f"{console.base}/console/alerts?done=assigned")
    assert row(first).find_elements(By.TAG_NAME, "td")[6].text == "cole"

    # Resolve, with a resolution code.
    Select(row(second).find_element(By.CSS_SELECTOR, "form.resolve select")).select_by_value(
        "false_alarm")
    row(second).find_element(By.CSS_SELECTOR, "form.resolve button").click()
    wait_for_url(page, f"{console.base}/console/alerts?done=resolved")
    assert row(second).find_element(By.CSS_SELECTOR, "td.status").text \
        == "resolved (false_alarm)"
    assert console.rows("SELECT action, to_status, resolution FROM alert_state_history"
                        " WHERE alert_id = %s::uuid", second) == [
        ("resolve", "resolved", "false_alarm")]

    # A stale form: acknowledged through the API meanwhile, the page's refusal shows why.
    answer = httpx2.post(f"{console.base}/v1/alerts/{third}/acknowledge", timeout=10,
                         headers={"Authorization": f"Bearer {console.tokens[TENANT + ':cole']}"})
    assert answer.status_code == 200, answer.text
    row(third).find_element(By.CSS_SELECTOR, "form.acknowledge button").click()
    wait_for_url(page, f"{console.base}/console/alerts?error=the+alert+is+acknowledged+already")
    assert page.find_element(By.ID, "problem").text == "the alert is acknowledged already"
    assert len(console.rows("SELECT 1 FROM alert_state_history WHERE alert_id = %s::uuid",
                            third)) == 1


def test_an_agent_sees_no_assign_form(page: Any, console: Console) -> None:
    from selenium.webdriver.common.by import By

    log_in(page, console, f"{TENANT}:agent-a")
    page.get(f"{console.base}/console/alerts")
    assert not page.find_elements(By.CSS_SELECTOR, "form.assign")
    rows = page.find_elements(By.CSS_SELECTOR, "#alerts tbody tr")
    if rows:  # its accounts' alerts, if any, have the other forms
        assert page.find_elements(By.CSS_SELECTOR, "#alerts form.resolve")


def test_the_at_risk_page_shows_mrr_at_risk(page: Any, console: Console) -> None:
    from selenium.webdriver.common.by import By

    # The simulated history has no traits: give the active high-risk accounts an MRR as a
    # traits event would (the stream's side is tests/integration/test_accounts.py).
    high = [r[0] for r in console.rows(
        "SELECT account_id FROM accounts WHERE tenant_id = %s AND latest_tier = 'high'"
        " AND status = 'active' ORDER BY 1", TENANT)]
    assert high, "the simulated history has high-risk accounts"
    priced = high[:-1] if len(high) > 1 else high  # one left without an MRR, if it can be
    assert console.settings.database_url
    with connect(console.settings.database_url, console.settings.database_schema) as conn:
        for i, account in enumerate(priced):
            conn.execute("UPDATE accounts SET mrr = %s, mrr_at = now(), plan = 'pro'"
                         " WHERE tenant_id = %s AND account_id = %s", (100 + i, TENANT, account))
    expected = sum(100 + i for i in range(len(priced)))

    log_in(page, console, f"{TENANT}:cole")
    card = page.find_element(By.ID, "mrr-at-risk")
    assert card.find_element(By.CSS_SELECTOR, ".figure").text == f"{expected:,.2f}"
    detail = card.find_element(By.CSS_SELECTOR, ".detail").get_attribute("textContent")
    assert f"{len(high)} active high-risk account" in detail
    if len(priced) < len(high):
        assert "1 without a known MRR" in detail
    # Each priced account's row shows its plan and MRR.
    rows = {r.find_element(By.CSS_SELECTOR, "a.account").text: r
            for r in page.find_elements(By.CSS_SELECTOR, "#accounts tbody tr")}
    shown = [a for a in priced if a in rows]
    assert shown, "the riskiest accounts are on the first page"
    first = rows[shown[0]]
    mrr = 100 + priced.index(shown[0])
    assert first.find_element(By.CSS_SELECTOR, "td.mrr").text == f"{mrr:,.2f}"
    assert first.find_element(By.CSS_SELECTOR, "td.plan").text == "pro"
    screenshot(page, "accounts-mrr")

    # An agent's figure is its own accounts' only.
    page.delete_all_cookies()
    log_in(page, console, f"{TENANT}:agent-a")
    owned = set(console.agent_accounts) & set(priced)
    agent_expected = sum(100 + priced.index(a) for a in owned)
    assert page.find_element(By.CSS_SELECTOR, "#mrr-at-risk .figure").text \
        == f"{agent_expected:,.2f}"


def test_the_win_back_log_page(page: Any, console: Console, tmp_path: Path) -> None:
    """The stream's workflow triggers with what became of them: outcome events
    (workflow.*) run through the dataflow, then the page lists every trigger with its
    campaign, status and next step, counts each status, and filters by one."""
    from selenium.webdriver.common.by import By

    triggers = console.rows(
        "SELECT trigger_id::text, account_id, workflow_key, variant FROM workflow_triggers"
        " WHERE tenant_id = %s ORDER BY triggered_at DESC, trigger_id DESC", TENANT)
    # The most recent trigger of each of three accounts: an outcome ends its account's
    # episode, so two triggers of one account would not keep their own outcomes apart.
    firsts: dict[str, tuple[str, str]] = {}
    for trigger, account, *_ in triggers:
        firsts.setdefault(account, (trigger, account))
    assert len(firsts) >= 3, "the simulated history starts workflows for three accounts"
    (engaged, engaged_account), (saved, saved_account), (lost, lost_account) = \
        list(firsts.values())[:3]
    now = datetime.now(UTC).replace(microsecond=0)

    def outcome(trigger: str, account: str, kind: str, minutes: int, **extra: str) -> bytes:
        return event_bytes(
            event_id=f"console-{kind}-{trigger}", tenant_id=TENANT, account_id=account,
            event_type=f"workflow.{kind}", source="crm", user_id=None,
            event_time=(now - timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z"),
            attributes={"trigger_id": trigger, **extra})

    history = tmp_path / "outcomes.jsonl"
    history.write_bytes(b"".join(line + b"\n" for line in (
        outcome(engaged, engaged_account, "delivered", 30),
        outcome(engaged, engaged_account, "engaged", 20, step="call_scheduled",
                note="asked for a call on Friday"),
        outcome(saved, saved_account, "saved", 10),
        outcome(lost, lost_account, "lost", 5, note="moved to a competitor"),
    )))
    replay_to_sinks(history, console.settings)

    log_in(page, console, f"{TENANT}:cole")
    page.find_element(By.LINK_TEXT, "Win-back log").click()
    wait_for_url(page, f"{console.base}/console/win-back")
    rows = page.find_elements(By.CSS_SELECTOR, "#win-back tbody tr")
    assert [r.get_attribute("id").removeprefix("trigger-") for r in rows] \
        == [t[0] for t in triggers[:50]]

    def cells(trigger: str) -> dict[str, str]:
        row = page.find_element(By.ID, f"trigger-{trigger}")
        return {name: row.find_element(By.CSS_SELECTOR, f"td.{name}").text
                for name in ("status", "result", "next-step", "note")}

    assert cells(engaged) == {"status": "engaged", "result": "open",
                              "next-step": "call_scheduled",
                              "note": "asked for a call on Friday"}
    assert cells(saved)["status"] == "saved" and cells(saved)["next-step"] == "—"
    assert cells(lost) == {"status": "lost", "result": "lost", "next-step": "—",
                           "note": "moved to a competitor"}
    workflow, variant = triggers[0][2], triggers[0][3]
    campaign = workflow if variant is None else f"{workflow}:{variant}"
    assert page.find_element(By.CSS_SELECTOR, f"#trigger-{engaged} a.campaign").text \
        == campaign
    # The counts per status are the log's, as the API reads it.
    api = console.rows("SELECT count(*) FROM workflow_triggers WHERE tenant_id = %s", TENANT)
    figures = {name: int(page.find_element(By.CSS_SELECTOR, f"#count-{name} .figure").text)
               for name in ("triggered", "delivered", "engaged", "saved", "lost")}
    assert sum(figures.values()) == api[0][0]
    assert figures["engaged"] >= 1 and figures["saved"] >= 1 and figures["lost"] >= 1
    screenshot(page, "win-back")

    # A status filter: only those entries.
    page.find_element(By.ID, "count-saved").click()
    wait_for_url(page, f"{console.base}/console/win-back?status=saved")
    statuses = texts(page, "#win-back td.status")
    assert statuses and set(statuses) == {"saved"}
    assert f"trigger-{saved}" in [r.get_attribute("id") for r in
                                  page.find_elements(By.CSS_SELECTOR, "#win-back tbody tr")]

    # An agent sees the entries of its own accounts only; another tenant none of these.
    page.delete_all_cookies()
    log_in(page, console, f"{TENANT}:agent-a")
    page.get(f"{console.base}/console/win-back")
    assert set(texts(page, "#win-back a.account")) <= set(console.agent_accounts)
    page.delete_all_cookies()
    log_in(page, console, f"{OTHER}:gus")
    page.get(f"{console.base}/console/win-back")
    theirs = {r[0] for r in console.rows(
        "SELECT account_id FROM workflow_triggers WHERE tenant_id = %s", OTHER)}
    assert set(texts(page, "#win-back a.account")) <= theirs
    assert not page.find_elements(By.ID, f"trigger-{engaged}")
