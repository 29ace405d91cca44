"""The Extensions tab in a real browser: an admin switches the word filter on while the
server runs and the next chat reply shows its effect; a colleague cannot switch it, neither
on the page nor by calling the server's endpoint directly."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ACCOUNTS, ADMIN, TEST_SETTINGS, ServerProcess
from tests.browser.test_roles import log_in_with_keyboard
from tests.browser.test_ui import FRANCE, bot_messages, send, tab, wait_finished
from tests.test_hostile_client import QueueCaller

# Everyone's hidden word, from the settings file as text-generation-webui names it.
SETTINGS = TEST_SETTINGS + 'word_filter-words: "Paris"\n'


@pytest.fixture(scope="module")
def extension_server(tmp_path_factory):
    auth = ",".join(f"{user}:{password}" for user, password in ACCOUNTS.items())
    server = ServerProcess(tmp_path_factory.mktemp("extensions-server"), settings=SETTINGS,
                           extra_args=["--gradio-auth", auth, "--admin-users", ADMIN])
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_a_colleague_cannot_switch_extensions(new_context, extension_server, tmp_path):
    bob = new_context().new_page()
    log_in_with_keyboard(bob, extension_server.url, "bob", ACCOUNTS["bob"])
    tab(bob, "Extensions")
    expect(bob.locator("#extensions-role-note")).to_contain_text("Only admins can switch extensions")
    expect(bob.locator("#extensions-apply")).to_be_hidden()
    expect(bob.get_by_label("word_filter")).to_be_disabled()
    expect(bob.locator('#extensions-list tr[data-extension="word_filter"]')).to_contain_text("off")
    bob.screenshot(path=str(tmp_path / "extensions-colleague.png"), full_page=True)

    # The page hides the button; the server refuses on its own.
    caller = QueueCaller(extension_server.url, "bob", ACCOUNTS["bob"])
    result = caller.call("extensions-apply", {"extensions-enabled": ["word_filter"]})
    assert any("Only an admin can switch extensions on or off" in log for log in result["logs"]), result
    bob.reload()
    tab(bob, "Extensions")
    expect(bob.locator('#extensions-list tr[data-extension="word_filter"] .extension-state')).to_have_text("off")


def test_an_admin_switches_the_word_filter_on_and_the_next_reply_shows_it(new_context, extension_server,
                                                                          tmp_path):
    alice = new_context().new_page()
    log_in_with_keyboard(alice, extension_server.url, "alice", ACCOUNTS["alice"])
    tab(alice, "Extensions")
    expect(alice.locator("#extensions-role-note")).to_contain_text("You are an admin")
    alice.get_by_label("word_filter").check()
    alice.locator("#extensions-apply").click()
    expect(alice.locator("#extensions-status")).to_contain_text("'word_filter' is on.")
    expect(alice.locator('#extensions-list tr[data-extension="word_filter"] .extension-state')).to_have_text("on")
    alice.screenshot(path=str(tmp_path / "extensions-admin.png"), full_page=True)

    tab(alice, "Chat")
    send(alice, FRANCE)
    wait_finished(alice)
    reply = bot_messages(alice).last
    expect(reply).to_contain_text("[redacted]")
    expect(reply).not_to_contain_text("Paris")
    alice.screenshot(path=str(tmp_path / "extensions-reply.png"), full_page=True)
