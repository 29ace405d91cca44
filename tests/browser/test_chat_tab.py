"""The Chat tab as a person uses it: typing on the keyboard, pressing keys, clicking what is
visible and reading what is shown, against the real server and model in Chromium.

Replies are greedy and at most 48 tokens unless a test asks for a long one (the Parameters
tab: max_new_tokens 2000, end-of-text banned), which runs until Stop. Screenshots of the
states these tests check go to $CHAT_TAB_SHOTS (default: chat-tab-shots in the temp folder).
"""
from __future__ import annotations

import os
import re
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ROOT
from tests.browser.test_ui import (
    FRANCE, GENERATION_TIMEOUT, GERMANY, bot_messages, open_app, set_number, status, tab, user_messages,
    wait_finished,
)

SHOTS = Path(os.environ.get("CHAT_TAB_SHOTS") or Path(tempfile.gettempdir()) / "chat-tab-shots")
STORY = "Write a long story about a dragon."
BUSY = "A reply is still being written"
# Gradio's own progress text ("processing | 0.1s", "queue: 1/1 | 0.1/2.3s", "0.4s")
GRADIO_PROGRESS = re.compile(r"processing|queue:|(?<![\w/.])\d+(\.\d+)?(/\d+(\.\d+)?)?s\b")


# ---- helpers ----------------------------------------------------------------------------

def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def input_box(page: Page):
    return page.locator("#chat-input textarea")


def type_message(page: Page, text: str) -> None:
    """Clicks into the message box and types, key by key."""
    input_box(page).click()
    page.keyboard.type(text)


def send_with_enter(page: Page, text: str) -> None:
    type_message(page, text)
    page.keyboard.press("Enter")
    expect(user_messages(page).filter(has_text=text)).to_have_count(1, timeout=GENERATION_TIMEOUT)


def send_with_button(page: Page, text: str) -> None:
    """Types and clicks Send: the tests of other points do not depend on Enter."""
    type_message(page, text)
    page.locator("#chat-send").click()
    expect(user_messages(page).filter(has_text=text)).to_have_count(1, timeout=GENERATION_TIMEOUT)


def ask_for_long_replies(page: Page) -> None:
    """Replies that go on until Stop (the Parameters tab, as a person would set it)."""
    tab(page, "Parameters")
    set_number(page, "max_new_tokens", 2000)
    page.get_by_label("ban_eos_token").check()
    time.sleep(1)         # the settings reach this session's state
    tab(page, "Chat")


def wait_writing(page: Page) -> None:
    expect(status(page)).to_contain_text("Writing...", timeout=GENERATION_TIMEOUT)
    expect(bot_messages(page).last).not_to_be_empty()


def stop_reply(page: Page) -> None:
    page.locator("#chat-stop").click()
    expect(status(page)).to_contain_text("(stopped)", timeout=60_000)


def chat_entries(page: Page):
    return page.locator("#chat-list label")


def selected_chat(page: Page):
    return page.locator("#chat-list input:checked")


def open_chat(page: Page, title: str) -> None:
    chat_entries(page).filter(has_text=title).first.click()


def toast(page: Page, text: str):
    return page.locator("[data-testid='toast-body']").filter(has_text=text)


def stored_chats(server, text: str) -> dict[str, list[tuple[str, str]]]:
    """From the server's history store: the owner of the chat holding a message that
    contains `text`, and all of that owner's chats as {chat id: [(role, content)]}."""
    path = server.workdir / "data" / "chats" / "history.sqlite3"
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT c.owner FROM messages m JOIN chats c ON c.id = m.chat_id "
                         "WHERE m.content LIKE ?", (f"%{text}%",)).fetchone()
        assert row, f"no stored message contains {text!r}"
        chats: dict[str, list[tuple[str, str]]] = {}
        for chat_id, role, content in db.execute(
                "SELECT c.id, m.role, m.content FROM chats c LEFT JOIN messages m ON m.chat_id = c.id "
                "WHERE c.owner = ? ORDER BY m.id", (row[0],)):
            chats.setdefault(chat_id, [])
            if role:
                chats[chat_id].append((role, content))
        return chats
    finally:
        db.close()


def chat_with(chats: dict, text: str) -> list[tuple[str, str]]:
    found = [messages for messages in chats.values() if any(text in c for _, c in messages)]
    assert len(found) == 1, (text, chats)
    return found[0]


@pytest.fixture
def character_files():
    """Writes characters into the shared characters/ folder while the server runs (as an
    admin would); removes them afterwards."""
    written = []

    def write(greeting: str) -> str:
        name = f"Tester-{uuid.uuid4().hex[:8]}"
        path = ROOT / "characters" / f"{name}.yaml"
        path.write_text(f"name: {name}\ngreeting: {greeting}\n"
                        f"context: {name} is a friendly guide who answers briefly.\n", encoding="utf-8")
        written.append(path)
        return name
    yield write
    for path in written:
        path.unlink(missing_ok=True)


def choose_character(page: Page, name: str) -> None:
    page.get_by_label("Character", exact=True).click()
    page.get_by_role("option", name=name, exact=True).click()


# ---- 1. Enter sends, Shift+Enter adds a line ------------------------------------------------

def test_enter_sends_and_shift_enter_adds_a_line(page, server_url):
    open_app(page, server_url)
    type_message(page, "Tell me the capital")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("of France.")
    expect(input_box(page)).to_have_value("Tell me the capital\nof France.")
    expect(user_messages(page)).to_have_count(0)
    shot(page, "enter-1-shift-enter-new-line")

    page.keyboard.press("Enter")
    expect(user_messages(page)).to_have_count(1, timeout=GENERATION_TIMEOUT)
    expect(user_messages(page).first).to_contain_text("of France.")
    expect(input_box(page)).to_have_value("")
    wait_finished(page)
    expect(bot_messages(page).last).to_contain_text("Paris")
    shot(page, "enter-2-sent")


def test_enter_saves_an_edited_message_in_an_editor_as_wide_as_the_message(page, server_url):
    open_app(page, server_url)
    send_with_button(page, FRANCE)
    wait_finished(page)
    reply = bot_messages(page).last
    expect(reply).to_contain_text("Paris")
    # the width the reply's text takes on screen (its widest line)
    text_width = reply.evaluate("e => { const r = document.createRange(); r.selectNodeContents(e);"
                                " return Math.max(...[...r.getClientRects()].map(x => x.width)); }")

    reply.hover()
    page.locator('#chat-view button[aria-label="Edit"]').last.click()
    editor = page.locator("#chat-view textarea.edit-textarea")
    expect(editor).to_be_visible()
    # as wide as the message: its text fits the editor's lines as it fitted the message's
    room = editor.evaluate("e => e.clientWidth - parseFloat(getComputedStyle(e).paddingLeft)"
                           " - parseFloat(getComputedStyle(e).paddingRight)")
    assert room >= text_width, (room, text_width)
    shot(page, "edit-1-editor")

    editor.click()
    page.keyboard.press("Control+End")
    page.keyboard.type(" Edited by hand.")
    page.keyboard.press("Enter")
    expect(editor).to_have_count(0)
    expect(bot_messages(page).last).to_contain_text("Paris. Edited by hand.")
    shot(page, "edit-2-saved")
    page.reload()
    expect(bot_messages(page).last).to_contain_text("Paris. Edited by hand.", timeout=30_000)


# ---- 2. typing during a reply is kept; sending then says why it waits ---------------------------

def test_typing_during_a_reply_is_kept_and_sending_then_says_why(page, server_url):
    open_app(page, server_url)
    ask_for_long_replies(page)
    send_with_button(page, STORY)
    wait_writing(page)

    type_message(page, GERMANY)
    written = bot_messages(page).last.inner_text()
    # the reply goes on writing; what was typed stays
    expect(bot_messages(page).last).not_to_have_text(written, timeout=GENERATION_TIMEOUT)
    expect(bot_messages(page).last).not_to_have_text(bot_messages(page).last.inner_text(),
                                                     timeout=GENERATION_TIMEOUT)
    expect(input_box(page)).to_have_value(GERMANY)

    page.locator("#chat-send").click()                # while the reply is being written
    expect(toast(page, BUSY).first).to_be_visible()
    expect(input_box(page)).to_have_value(GERMANY)
    expect(user_messages(page)).to_have_count(1)
    shot(page, "busy-1-send-during-reply")

    stop_reply(page)
    expect(input_box(page)).to_have_value(GERMANY)
    page.locator("#chat-send").click()
    expect(user_messages(page)).to_have_count(2, timeout=GENERATION_TIMEOUT)
    expect(user_messages(page).last).to_have_text(GERMANY)
    expect(input_box(page)).to_have_value("")
    wait_writing(page)
    stop_reply(page)
    shot(page, "busy-2-sent-after-stop")


# ---- 3. New chat or another chat during a reply goes where the person clicked ------------------

def test_new_chat_during_a_reply_stays_new_and_takes_the_next_message(page, server, server_url):
    open_app(page, server_url)
    ask_for_long_replies(page)
    story = f"{STORY} Call the dragon Ember{uuid.uuid4().hex[:6]}."
    send_with_button(page, story)
    wait_writing(page)

    page.locator("#chat-new").click()
    expect(user_messages(page)).to_have_count(0)
    expect(chat_entries(page).filter(has_text="Write a long story")).to_have_count(1)
    # the stopped reply's last update does not bring the old chat back
    page.wait_for_timeout(3000)
    expect(user_messages(page)).to_have_count(0)
    expect(bot_messages(page)).to_have_count(0)
    expect(selected_chat(page)).to_have_count(0)
    shot(page, "switch-1-new-chat-during-reply")

    tab(page, "Parameters")
    set_number(page, "max_new_tokens", 48)
    page.get_by_label("ban_eos_token").uncheck()
    time.sleep(1)
    tab(page, "Chat")
    send_with_button(page, GERMANY)
    wait_finished(page)
    expect(user_messages(page)).to_have_count(1)
    expect(bot_messages(page).last).to_contain_text("Berlin")
    expect(chat_entries(page)).to_have_count(2)
    expect(selected_chat(page)).to_have_count(1)
    shot(page, "switch-2-next-message-in-the-new-chat")

    chats = stored_chats(server, story)
    assert [role for role, _ in chat_with(chats, story)] == ["user", "assistant"]
    assert [content for role, content in chat_with(chats, GERMANY) if role == "user"] == [GERMANY]


def test_opening_another_chat_during_a_reply_sends_there(page, server, server_url):
    open_app(page, server_url)
    send_with_button(page, FRANCE)
    wait_finished(page)
    ask_for_long_replies(page)
    page.locator("#chat-new").click()
    expect(user_messages(page)).to_have_count(0)
    story = f"{STORY} Call the dragon Cinder{uuid.uuid4().hex[:6]}."
    send_with_button(page, story)
    wait_writing(page)

    open_chat(page, FRANCE)
    expect(user_messages(page)).to_have_count(1)
    expect(user_messages(page).first).to_have_text(FRANCE)
    page.wait_for_timeout(3000)
    expect(user_messages(page)).to_have_count(1)          # still the chat that was clicked
    expect(user_messages(page).first).to_have_text(FRANCE)
    expect(selected_chat(page)).to_have_count(1)
    expect(chat_entries(page).filter(has=page.locator("input:checked"))).to_contain_text(FRANCE)
    shot(page, "switch-3-other-chat-during-reply")

    send_with_button(page, GERMANY)
    wait_writing(page)
    stop_reply(page)
    expect(user_messages(page)).to_have_count(2)
    chats = stored_chats(server, story)
    assert [c for r, c in chat_with(chats, FRANCE) if r == "user"] == [FRANCE, GERMANY]
    assert [c for r, c in chat_with(chats, story) if r == "user"] == [story]


# ---- 4. characters --------------------------------------------------------------------------

def test_a_character_saved_after_start_up_is_listed_greets_and_stays_chosen(page, server_url, character_files):
    open_app(page, server_url)
    name = character_files(greeting="Ahoy! Ask me anything.")      # after the page opened
    choose_character(page, name)
    expect(bot_messages(page)).to_have_count(1)
    expect(bot_messages(page).first).to_have_text("Ahoy! Ask me anything.")
    expect(page.locator("#chat-character input")).to_have_value(name)
    shot(page, "character-1-greeting")

    send_with_button(page, GERMANY)
    wait_finished(page)
    expect(page.locator("#chat-character input")).to_have_value(name)
    expect(bot_messages(page).first).to_have_text("Ahoy! Ask me anything.")
    shot(page, "character-2-still-chosen")


def test_a_reopened_chat_brings_back_its_mode_and_character(page, server_url, character_files):
    open_app(page, server_url)
    first, second = character_files(greeting="Hello from the first."), character_files(greeting="")
    choose_character(page, first)
    send_with_button(page, FRANCE)
    wait_finished(page)

    choose_character(page, second)
    expect(user_messages(page)).to_have_count(0)
    page.locator("#chat-mode").get_by_label("instruct", exact=True).check()
    send_with_button(page, GERMANY)
    wait_finished(page)

    open_chat(page, FRANCE)
    expect(page.locator("#chat-character input")).to_have_value(first)
    expect(page.locator("#chat-mode").get_by_label("chat", exact=True)).to_be_checked()
    expect(bot_messages(page).first).to_have_text("Hello from the first.")
    shot(page, "character-3-reopened")

    open_chat(page, GERMANY)
    expect(page.locator("#chat-character input")).to_have_value(second)
    expect(page.locator("#chat-mode").get_by_label("instruct", exact=True)).to_be_checked()

    page.reload()                                          # the latest chat, as it was left
    expect(user_messages(page).first).to_have_text(GERMANY, timeout=30_000)
    expect(page.locator("#chat-character input")).to_have_value(second)
    expect(page.locator("#chat-mode").get_by_label("instruct", exact=True)).to_be_checked()


# ---- 5. destructive actions are safe ----------------------------------------------------------

def test_the_trash_icon_starts_a_new_chat(page, server_url):
    open_app(page, server_url)
    send_with_button(page, FRANCE)
    wait_finished(page)
    page.locator('#chat-view button[aria-label="Clear"]').click()
    expect(user_messages(page)).to_have_count(0)
    expect(selected_chat(page)).to_have_count(0)

    send_with_button(page, GERMANY)
    wait_finished(page)
    expect(bot_messages(page).last).to_contain_text("Berlin")
    expect(user_messages(page)).to_have_count(1)          # the old chat neither shown nor sent
    expect(page.locator("#chat-view")).not_to_contain_text(FRANCE)
    expect(chat_entries(page)).to_have_count(2)
    shot(page, "trash-new-chat")


def test_delete_asks_first_and_rename_starts_with_the_title(page, server_url):
    open_app(page, server_url)
    page.get_by_text("Rename or delete").click()
    page.locator("#chat-rename").click()
    expect(status(page)).to_contain_text("Open a chat first: there is no chat to rename.")
    page.locator("#chat-delete").click()
    expect(status(page)).to_contain_text("Open a chat first: there is no chat to delete.")
    shot(page, "delete-1-nothing-selected")

    send_with_button(page, FRANCE)
    wait_finished(page)
    title = page.locator("#chat-title textarea, #chat-title input").first
    expect(title).to_have_value(FRANCE)
    title.click()
    page.keyboard.press("Control+End")
    page.keyboard.type(" (renamed)")
    page.locator("#chat-rename").click()
    expect(chat_entries(page).first).to_have_text(f"{FRANCE} (renamed)")

    page.locator("#chat-delete").click()
    confirm = page.locator("#chat-delete-confirm")
    expect(confirm).to_contain_text(f"Delete “{FRANCE} (renamed)”? This cannot be undone.")
    shot(page, "delete-2-asks")
    page.locator("#chat-delete-cancel").click()
    expect(confirm).to_be_hidden()
    expect(chat_entries(page)).to_have_count(1)
    expect(user_messages(page)).to_have_count(1)

    page.locator("#chat-delete").click()
    confirm.click()
    expect(chat_entries(page)).to_have_count(0)
    expect(user_messages(page)).to_have_count(0)
    expect(status(page)).to_contain_text("Deleted")
    page.reload()
    expect(input_box(page)).to_be_visible()
    expect(chat_entries(page)).to_have_count(0)


# ---- 6. small things -----------------------------------------------------------------------

def test_the_status_line_shows_only_the_tab_s_own_words(page, server_url):
    open_app(page, server_url)
    type_message(page, FRANCE)
    page.locator("#chat-send").click()
    seen = set()
    deadline = time.monotonic() + GENERATION_TIMEOUT / 1000
    while time.monotonic() < deadline:
        line = status(page).inner_text()
        seen.add(line)
        if "tokens/s" in line:
            break
        time.sleep(0.02)
    page.locator("#chat-new").click()
    for _ in range(50):
        seen.add(status(page).inner_text())
        time.sleep(0.02)
    assert not [line for line in seen if GRADIO_PROGRESS.search(line)], seen


def test_a_search_with_no_match_says_so(page, server_url):
    open_app(page, server_url)
    send_with_button(page, FRANCE)
    wait_finished(page)
    search = page.locator("#chat-search textarea, #chat-search input").first
    search.click()
    page.keyboard.type("zebra")
    expect(page.get_by_text("No chats match")).to_be_visible()
    expect(chat_entries(page)).to_have_count(0)
    shot(page, "search-no-match")
    page.keyboard.press("Control+A")
    page.keyboard.type("capital")
    expect(page.get_by_text("No chats match")).to_be_hidden()
    expect(chat_entries(page)).to_have_count(1)
