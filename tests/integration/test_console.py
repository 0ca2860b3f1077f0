"""The admin console in a real browser (Debian's chromium through Selenium) against `voicebot run`:
logging in (a wrong password refused), a viewer who sees no rollback and whose forged rollback is
refused (and audited), an admin who rolls back a published dialplan so that the next real call runs
the old version, and a call that shows on the live page while it is up."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.browser import chromium
from support.net import free_port
from support.peers import call_bot

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
PLAN = """id: console_demo
version: {version}
settings: {{language: en}}
steps:
  greeting:
    say: This is version {version} of the demo.
  menu:
    menu:
      prompt: Press 1 to hear this again, or hash to hang up.
      options:
        - {{keys: "1", goto: greeting}}
        - {{keys: "#", goto: bye}}
      no_match: menu
      no_input: bye
  bye:
    hangup: Goodbye.
"""


def cli(env: dict[str, str], *args: str, stdin: str = "") -> str:
    done = subprocess.run(
        [sys.executable, "-m", "voicebot.cli", *args],
        cwd=REPO,
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    driver = chromium(tmp_path)
    yield driver
    driver.quit()


def click(driver: Any, element: Any) -> None:
    """Click and wait for the page it leads to (the old page's element goes stale)."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    element.click()
    WebDriverWait(driver, 15).until(expected_conditions.staleness_of(element))


def log_in(driver: Any, base: str, name: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(base + "/login?next=%2Fversions")  # a page that does not reload itself
    driver.find_element(By.ID, "name").clear()
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    click(driver, driver.find_element(By.ID, "login"))


def live_calls(driver: Any) -> str:
    """The live table's call rows as text ("" while none; the page reloads itself every few seconds,
    so a row read mid-reload is read again)."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By

    try:
        return " | ".join(r.text for r in driver.find_elements(By.CSS_SELECTOR, "#live tr.call"))
    except WebDriverException:
        return ""


def wait_for(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def test_console_login_roles_rollback_and_live_calls(voicebot: Any, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    plan = tmp_path / "console_demo.yaml"
    console = f"127.0.0.1:{free_port()}"
    plan.write_text(PLAN.format(version=1))
    server = voicebot(
        VOICEBOT_CALL__LOGIC="dialplan",
        VOICEBOT_ROUTES=json.dumps([{"match": "*", "dialplan": str(plan)}]),
        VOICEBOT_CONSOLE__LISTEN=console,
    )
    env = server.env
    refs = []
    for version in (1, 2):  # version 2 is live; version 1 is what a rollback goes back to
        plan.write_text(PLAN.format(version=version))
        out = cli(env, "dialplan", "publish", str(plan))
        refs.append(re.search(r"console_demo (\S+) is live", out).group(1))  # type: ignore[union-attr]
    cli(
        env,
        "console",
        "user",
        "add",
        "alice",
        "--role",
        "admin",
        "--password-stdin",
        stdin="alice-secret-1\n",
    )
    cli(env, "console", "user", "add", "bob", "--role", "viewer", "--password-stdin", stdin="bob-secret-22\n")
    base = f"http://{console}"

    # a wrong password is refused; the viewer logs in and sees the versions, but no rollback
    log_in(browser, base, "bob", "not-his-password")
    assert "Wrong user name or password" in browser.find_element(By.ID, "message").text
    log_in(browser, base, "bob", "bob-secret-22")
    assert browser.find_element(By.ID, "who").text == "bob (viewer)"
    browser.get(base + "/versions")
    assert browser.find_element(By.CSS_SELECTOR, "#plan-console_demo .live").text == refs[1]
    assert browser.find_elements(By.CSS_SELECTOR, "button.rollback") == []
    # the viewer's own session and CSRF token, posted by hand: still refused, and audited
    cookie = browser.get_cookie("vb_session")["value"]
    csrf = browser.find_element(By.CSS_SELECTOR, "form.who input[name=csrf]").get_attribute("value")
    forged = httpx.post(
        base + "/versions/console_demo/rollback", data={"csrf": csrf}, cookies={"vb_session": cookie}
    )
    assert forged.status_code == 403 and "may not rollback" in forged.text
    # without the CSRF token even the admin's session could not (checked below with the admin's)
    click(browser, browser.find_element(By.CSS_SELECTOR, "form.who button"))  # log out
    assert browser.current_url.endswith("/login")
    assert httpx.get(base + "/versions", cookies={"vb_session": cookie}).status_code in (303, 200)
    assert (
        "Log in" in httpx.get(base + "/versions", cookies={"vb_session": cookie}, follow_redirects=True).text
    )

    # the admin rolls back in the browser
    log_in(browser, base, "alice", "alice-secret-1")
    browser.get(base + "/versions")
    admin_cookie = browser.get_cookie("vb_session")["value"]
    no_token = httpx.post(base + "/versions/console_demo/rollback", cookies={"vb_session": admin_cookie})
    assert no_token.status_code == 403
    # a plan id that is not one the page lists is refused, whatever the URL says
    admin_csrf = browser.find_element(By.CSS_SELECTOR, "form.who input[name=csrf]").get_attribute("value")
    for plan_id in ("%2E%2E", "nosuchplan"):
        unknown = httpx.post(
            f"{base}/versions/{plan_id}/rollback",
            data={"csrf": admin_csrf},
            cookies={"vb_session": admin_cookie},
        )
        assert unknown.status_code == 404 and "has been published" in unknown.text, unknown.text[-500:]
    buttons = browser.find_elements(By.CSS_SELECTOR, "#plan-console_demo button.rollback")
    assert buttons, browser.page_source
    button = buttons[0]
    assert refs[0] in button.text
    click(browser, button)
    assert browser.find_element(By.CSS_SELECTOR, "#plan-console_demo .live").text == refs[0]

    # a call: shown live while it is up, then kept with the version it ran (the old one)
    browser.get(base + "/")
    caller = call_bot(tmp_path, server.port, "--duration", "9", name="console_caller")
    live_row = wait_for(lambda: live_calls(browser), 12)
    assert live_row and "talking" in live_row, browser.page_source[-2000:]
    caller.result()
    browser.get(base + "/calls")
    link = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#calls tr.call a"), 20)
    assert link
    click(browser, link[0])
    assert browser.find_element(By.ID, "version").text == refs[0]
    # the admin publishes the routed file (version 2 on disk) as a canary for half the new calls,
    # narrows it to a quarter, then promotes it
    from selenium.webdriver.support.ui import Select

    browser.get(base + "/versions")
    form = browser.find_element(By.CSS_SELECTOR, "form.publish")
    Select(form.find_element(By.NAME, "file")).select_by_visible_text(str(plan.resolve()))
    form.find_element(By.NAME, "canary").send_keys("50")
    click(browser, form.find_element(By.CSS_SELECTOR, "button"))
    canary = browser.find_element(By.CSS_SELECTOR, "#plan-console_demo .canary").text
    assert canary == f"{refs[1]} for 50 % of new calls", canary
    share = browser.find_element(By.CSS_SELECTOR, "#plan-console_demo input[name=percent]")
    share.clear()
    share.send_keys("25")
    click(browser, browser.find_element(By.CSS_SELECTOR, "#plan-console_demo button.canary-share"))
    assert "for 25 %" in browser.find_element(By.CSS_SELECTOR, "#plan-console_demo .canary").text
    click(browser, browser.find_element(By.CSS_SELECTOR, "#plan-console_demo button.promote"))
    assert browser.find_element(By.CSS_SELECTOR, "#plan-console_demo .live").text == refs[1]
    assert f'"live": "{refs[1]}"' in cli(env, "dialplan", "status", "console_demo")  # the CLI agrees

    # the admin reads what happened: the refused rollback, the done one
    browser.get(base + "/audit")
    audit = [
        (r.find_element(By.CSS_SELECTOR, ".action").text, r.get_attribute("class"))
        for r in browser.find_elements(By.CSS_SELECTOR, "#audit tbody tr")
    ]
    assert ("rollback", "ok") in audit and ("rollback", "refused") in audit
    assert ("login_failed", "refused") in audit, audit
    assert {("publish", "ok"), ("canary", "ok"), ("promote", "ok")} <= set(audit), audit

    # guessing is limited per address: after 5 failures even the right password waits (429)
    with httpx.Client(base_url=base) as guesser:
        form_page = guesser.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form_page.text).group(1)  # type: ignore[union-attr]
        codes = [
            guesser.post(
                "/login", data={"csrf": token, "name": "alice", "password": f"guess-{i}"}
            ).status_code
            for i in range(5)
        ]
        # (the browser's one wrong password for bob counted too)
        assert set(codes) <= {401, 429} and codes[-1] == 429, codes
        right = guesser.post("/login", data={"csrf": token, "name": "alice", "password": "alice-secret-1"})
        assert right.status_code == 429 and int(right.headers["Retry-After"]) > 0
