"""Two colleagues on the server with accounts: alice is an admin, bob is not. Each logs in
as a person does, and sees what their role allows."""
from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import ACCOUNTS, ADMIN
from tests.browser.test_ui import tab, wait_ready

SCREENSHOTS = "roles"


def log_in_with_keyboard(page: Page, url: str, user: str, password: str) -> None:
    page.goto(url)
    page.get_by_label("username").click()
    page.keyboard.type(user)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    wait_ready(page)


def test_the_model_tab_is_read_only_for_a_colleague_and_live_for_the_admin(new_context, auth_server, tmp_path):
    assert ADMIN == "alice"
    bob = new_context().new_page()
    log_in_with_keyboard(bob, auth_server.url, "bob", ACCOUNTS["bob"])
    tab(bob, "Model")
    note = bob.locator("#model-role-note")
    expect(note).to_contain_text("only admins can change it (alice)")
    expect(bob.locator("#model-info")).to_contain_text("SmolLM2-135M-Instruct")   # what is loaded
    for button in ("#model-load", "#model-unload", "#model-reload", "#download-start"):
        expect(bob.locator(button)).to_be_hidden()
    expect(bob.get_by_label("llama.cpp")).to_be_disabled()
    expect(bob.get_by_text("trust-remote-code", exact=True)).to_have_count(0)
    bob.screenshot(path=str(tmp_path / "model-tab-colleague.png"), full_page=True)

    alice = new_context().new_page()
    log_in_with_keyboard(alice, auth_server.url, "alice", ACCOUNTS["alice"])
    tab(alice, "Model")
    expect(alice.locator("#model-role-note")).to_contain_text("You are an admin")
    for button in ("#model-load", "#model-unload", "#model-reload"):
        expect(alice.locator(button)).to_be_visible()
    expect(alice.get_by_label("llama.cpp")).to_be_enabled()
    alice.screenshot(path=str(tmp_path / "model-tab-admin.png"), full_page=True)
