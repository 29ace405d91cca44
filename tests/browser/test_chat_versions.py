"""Versions and branches in the Chat tab, as a person uses them: Regenerate keeps the earlier
reply, "‹ 2/2 ›" under the chat moves between them, an edit of an earlier message starts a
branch that "‹ ›" can leave again, and a reload finds the chat as it was left. Against the
real server and model in Chromium; screenshots go to $CHAT_VERSIONS_SHOTS (default:
chat-versions-shots in the temp folder).
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.test_chat_tab import send_with_button
from tests.browser.test_ui import (FRANCE, GENERATION_TIMEOUT, GERMANY, bot_messages, open_app, set_number,
                                   tab, user_messages, wait_finished, wait_ready)

SHOTS = Path(os.environ.get("CHAT_VERSIONS_SHOTS") or Path(tempfile.gettempdir()) / "chat-versions-shots")


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def reply_version(page: Page):
    return page.locator("#chat-reply-version")


def branch_version(page: Page):
    return page.locator("#chat-branch-version")


def short_replies(page: Page, tokens: int) -> None:
    """A different length for the next reply (the Parameters tab, as a person would set it):
    the server is greedy, so this is what makes a regenerated reply differ."""
    tab(page, "Parameters")
    set_number(page, "max_new_tokens", tokens)
    time.sleep(1)         # the settings reach this session's state
    tab(page, "Chat")


def test_regenerate_keeps_the_first_reply_and_a_reload_shows_the_version_chosen(page, server_url):
    open_app(page, server_url)
    send_with_button(page, FRANCE)
    wait_finished(page)
    first = bot_messages(page).last.inner_text()
    expect(page.locator("#chat-reply")).to_be_hidden()          # one version: nothing to move between

    short_replies(page, 4)
    page.locator("#chat-regenerate").click()
    expect(reply_version(page)).to_have_text("Reply 2/2", timeout=GENERATION_TIMEOUT)
    second = bot_messages(page).last.inner_text()
    assert second != first
    expect(page.locator("#chat-reply-forward")).to_be_disabled()
    shot(page, "versions-1-regenerated")

    page.locator("#chat-reply-back").click()
    expect(bot_messages(page).last).to_have_text(first)
    expect(reply_version(page)).to_have_text("Reply 1/2")
    expect(page.locator("#chat-reply-back")).to_be_disabled()
    expect(bot_messages(page)).to_have_count(1)
    shot(page, "versions-2-first-again")

    page.reload()
    wait_ready(page)
    expect(bot_messages(page).last).to_have_text(first, timeout=30_000)
    expect(reply_version(page)).to_have_text("Reply 1/2")
    shot(page, "versions-3-after-reload")

    page.locator("#chat-reply-forward").click()
    expect(bot_messages(page).last).to_have_text(second)
    expect(reply_version(page)).to_have_text("Reply 2/2")


def test_editing_an_earlier_message_starts_a_branch_and_the_old_one_can_come_back(page, server_url):
    open_app(page, server_url)
    send_with_button(page, FRANCE)
    wait_finished(page)
    send_with_button(page, "Thank you.")
    wait_finished(page)
    expect(bot_messages(page)).to_have_count(2)
    expect(bot_messages(page).first).to_contain_text("Paris")

    user_messages(page).first.hover()
    page.locator('#chat-view button[aria-label="Edit"]').first.click()     # the first message's
    editor = page.locator("#chat-view textarea.edit-textarea")
    expect(editor).to_be_visible()
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(GERMANY)
    page.keyboard.press("Enter")

    # the edited message starts a new branch, answered at once; the old one is out of view
    expect(user_messages(page)).to_have_count(1, timeout=GENERATION_TIMEOUT)
    expect(user_messages(page).first).to_have_text(GERMANY)
    expect(branch_version(page)).to_contain_text("2/2", timeout=GENERATION_TIMEOUT)
    expect(branch_version(page)).to_contain_text("Tell me the capital of Germany")
    expect(bot_messages(page).last).to_contain_text("Berlin", timeout=GENERATION_TIMEOUT)
    expect(page.locator("#chat-view")).not_to_contain_text("Paris")
    shot(page, "branch-1-edited")

    page.locator("#chat-branch-back").click()
    expect(user_messages(page)).to_have_count(2)
    expect(user_messages(page).first).to_have_text(FRANCE)
    expect(user_messages(page).last).to_have_text("Thank you.")
    expect(bot_messages(page).first).to_contain_text("Paris")
    expect(branch_version(page)).to_contain_text("1/2")
    shot(page, "branch-2-old-branch")

    page.reload()
    wait_ready(page)
    expect(user_messages(page).first).to_have_text(FRANCE, timeout=30_000)
    expect(user_messages(page)).to_have_count(2)
    expect(branch_version(page)).to_contain_text("1/2")
    page.locator("#chat-branch-forward").click()
    expect(user_messages(page)).to_have_count(1)
    expect(bot_messages(page).last).to_contain_text("Berlin")
