"""Logging in and out as a person does, and what the log-in page says when the throttle
refuses an attempt."""
from __future__ import annotations

import re

import argon2
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ACCOUNTS, ServerProcess
from tests.browser.test_ui import open_app, wait_ready

THROTTLED = re.compile(r"Too many attempts: try again in \d+ (second|minute)s?")


def type_log_in(page: Page, user: str, password: str) -> None:
    """Types into the log-in form and presses Enter."""
    page.get_by_label("username").click()
    page.keyboard.press("Control+A")
    page.keyboard.type(user)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")


def test_the_page_says_who_is_logged_in_and_log_out_leads_back_to_the_log_in_page(new_context, auth_server, tmp_path):
    bob = new_context().new_page()
    bob.goto(auth_server.url)
    type_log_in(bob, "bob", ACCOUNTS["bob"])
    wait_ready(bob)
    who = bob.locator("#account-name")
    expect(who).to_have_text("Logged in as bob")            # not an admin: no "(admin)"
    bob.locator("#account-bar").screenshot(path=str(tmp_path / "account-bar.png"))

    bob.get_by_role("link", name="Log out").click()
    expect(bob.get_by_label("password")).to_be_visible()
    expect(bob.locator("#chat-input")).to_have_count(0)
    assert bob.request.get(auth_server.url + "config").status == 401    # the old session is gone
    bob.reload()
    expect(bob.get_by_label("password")).to_be_visible()
    expect(bob.locator("#chat-input")).to_have_count(0)

    alice = new_context().new_page()
    alice.goto(auth_server.url)
    type_log_in(alice, "alice", ACCOUNTS["alice"])
    wait_ready(alice)
    expect(alice.locator("#account-name")).to_have_text("Logged in as alice (admin)")


def test_without_accounts_the_page_shows_no_log_in_bar(page, server_url):
    open_app(page, server_url)
    expect(page.locator("#account-bar")).to_have_count(0)
    expect(page.get_by_text("Log out")).to_have_count(0)


@pytest.fixture(scope="module")
def throttle_server(tmp_path_factory):
    """A server of its own, so the failures here slow no other test's log-ins: accounts in a
    file, as tools/accounts.py writes it (argon2 hashes, alice marked admin)."""
    workdir = tmp_path_factory.mktemp("throttle-server")
    hasher = argon2.PasswordHasher()
    accounts = workdir / "accounts.txt"
    accounts.write_text(f"alice:{hasher.hash(ACCOUNTS['alice'])}:admin\nbob:{hasher.hash(ACCOUNTS['bob'])}\n",
                        encoding="utf-8")
    accounts.chmod(0o600)
    server = ServerProcess(workdir, extra_args=["--gradio-auth-path", str(accounts)])
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_a_throttled_log_in_says_how_long_to_wait(new_context, throttle_server, tmp_path):
    page = new_context().new_page()
    page.goto(throttle_server.url)
    answers = []
    for attempt in range(10):       # the throttle lets a few typos through, then makes them wait
        with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/login")) as answer:
            type_log_in(page, "bob", f"not-his-password-{attempt}")
        answers.append(answer.value.status)
        if answer.value.status == 429:
            break
    assert answers[0] == 400 and answers[-1] == 429, answers
    expect(page.get_by_text("Incorrect Credentials")).to_be_hidden()
    expect(page.get_by_role("alert")).to_have_text(THROTTLED)
    expect(page.get_by_label("password")).to_have_value("")
    page.screenshot(path=str(tmp_path / "throttled-log-in.png"))

    # a colleague at the same address is not locked out by bob's failures
    alice = new_context().new_page()
    alice.goto(throttle_server.url)
    type_log_in(alice, "alice", ACCOUNTS["alice"])
    wait_ready(alice)
    expect(alice.locator("#account-name")).to_have_text("Logged in as alice (admin)")
