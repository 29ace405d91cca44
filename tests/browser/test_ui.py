"""What a user sees in a real browser, against the real server and the real model.

The server runs greedy (Deterministic preset) with max_new_tokens 48, so replies are
short; the prompts are ones the small default model answers robustly.
"""
from __future__ import annotations

import re
import time
import uuid

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ACCOUNTS, ROOT

GENERATION_TIMEOUT = 180_000      # ms; the box is shared and may be busy
FRANCE = "Tell me the capital of France."
GERMANY = "Tell me the capital of Germany."
COUNTING = "Count from one to twenty."     # a reply of dozens of tokens: several screen updates
SUMMARY = re.compile(r"\d+ tokens, [\d.]+ tokens/s")
# The start of each record in the server's log (server.py's format), which ends the one before.
LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ", re.MULTILINE)


# ---- helpers ----------------------------------------------------------------------------

def wait_ready(page: Page) -> None:
    """The page is up and its start-up event has run: that event stores this browser's
    key in localStorage (instant after a reload, where the key is already there)."""
    expect(page.locator("#chat-input textarea")).to_be_visible(timeout=60_000)
    page.wait_for_function("() => !!localStorage.getItem('llm-workbench-browser-key')",
                           timeout=60_000)


def open_app(page: Page, url: str) -> None:
    page.goto(url)
    wait_ready(page)


def tab(page: Page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def bot_messages(page: Page):
    return page.locator('#chat-view [data-testid="bot"]')


def user_messages(page: Page):
    return page.locator('#chat-view [data-testid="user"]')


def status(page: Page):
    return page.locator("#chat-status")


def send(page: Page, text: str) -> None:
    """Types a message and sends it. If the page answers that its start-up is still
    running (the user is asked to try again), tries again as a user would."""
    for _ in range(40):
        page.locator("#chat-input textarea").fill(text)
        page.locator("#chat-send").click()
        deadline = time.monotonic() + GENERATION_TIMEOUT / 1000
        while time.monotonic() < deadline:
            if "still loading" in status(page).inner_text():
                break
            if user_messages(page).filter(has_text=text).count():
                return
            time.sleep(0.05)
        else:
            break
        time.sleep(1.0)
    raise AssertionError(f"the message {text!r} never appeared in the chat")


def wait_finished(page: Page, timeout: int = GENERATION_TIMEOUT) -> str:
    """Waits for the summary line of a finished reply; returns the status text."""
    expect(status(page)).to_contain_text("tokens/s", timeout=timeout)
    return status(page).inner_text()


def number_input(page: Page, name: str):
    return page.locator(f'input[aria-label="number input for {name}"]')


def set_number(page: Page, name: str, value) -> None:
    box = number_input(page, name)
    box.fill(str(value))
    box.press("Enter")
    box.blur()


def choose_option(page: Page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def paste_template(page: Page, source: str) -> None:
    """Replaces the whole Instruction template box (its tab open) at once, as a paste would."""
    page.locator(".cm-content").nth(0).click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(source)


def logged_prompt(server, message: str) -> str:
    """The prompt the model read for the request that sent `message`, from the log of a
    server started with --verbose: the first logged prompt holding it (later requests
    repeat it as history)."""
    deadline = time.monotonic() + GENERATION_TIMEOUT / 1000
    while time.monotonic() < deadline:
        for record in LOG_RECORD.split(server.log_path.read_text(encoding="utf-8", errors="replace")):
            if "prompt tokens:" in record and message in record:
                return record.split("prompt tokens:\n", 1)[1].rstrip("\n")
        time.sleep(0.2)
    raise AssertionError(f"no prompt with {message!r} in the server log:\n{server.log_tail()}")


def wait_for_settings(page: Page, text: str) -> None:
    """The Parameters tab's status line, then a moment for the session state to settle."""
    expect(page.get_by_text(text).first).to_be_visible()


# ---- tabs -------------------------------------------------------------------------------

def test_every_tab_renders_its_main_controls(page, server_url):
    open_app(page, server_url)
    for selector in ("#chat-view", "#chat-input textarea", "#chat-send", "#chat-stop", "#chat-list",
                     "#chat-new", "#chat-regenerate", "#chat-remove-last"):
        expect(page.locator(selector)).to_be_visible()

    tab(page, "Default")
    for selector in ("#default-input textarea", "#default-output textarea", "#default-generate",
                     "#default-stop", "#default-continue"):
        expect(page.locator(selector)).to_be_visible()

    tab(page, "Notebook")
    for selector in ("#notebook-text textarea", "#notebook-generate", "#notebook-stop", "#notebook-undo"):
        expect(page.locator(selector)).to_be_visible()
    expect(page.get_by_role("tab", name="Tokens")).to_be_visible()
    expect(page.get_by_role("tab", name="Probabilities")).to_be_visible()

    tab(page, "Parameters")
    expect(page.get_by_label("Preset", exact=True)).to_be_visible()
    for name in ("max_new_tokens", "temperature", "top_p", "top_k"):
        expect(number_input(page, name)).to_be_visible()
    expect(page.get_by_role("button", name="Save preset")).to_be_visible()

    tab(page, "Model")
    for selector in ("#model-choice", "#model-load", "#model-unload", "#model-loader"):
        expect(page.locator(selector)).to_be_visible()
    expect(page.locator("#model-choice input")).to_have_value(re.compile("SmolLM2"))

    tab(page, "Instruction template")
    expect(page.get_by_label("Instruction template", exact=True)).to_be_visible()
    editor, preview = page.locator(".cm-content").nth(0), page.locator(".cm-content").nth(1)
    expect(editor).to_be_visible()
    # the loaded model's own (ChatML) template and its rendering of the sample conversation
    expect(editor).to_contain_text("im_start")
    expect(preview).to_contain_text("<|im_start|>user")


# ---- chat -------------------------------------------------------------------------------

# Installed in the page before a send: every text the last reply shows, and every status
# line, in the order the page showed them (nothing missed between two polls).
RECORD_UPDATES = """
() => {
  const rec = window.__updates = {reply: [], status: []};
  const view = document.querySelector('#chat-view'), line = document.querySelector('#chat-status');
  const push = (list, text) => { if (list[list.length - 1] !== text) list.push(text); };
  new MutationObserver(() => {
    const bots = view.querySelectorAll('[data-testid="bot"]');
    if (bots.length) push(rec.reply, bots[bots.length - 1].innerText.trim());
  }).observe(view, {childList: true, subtree: true, characterData: true});
  new MutationObserver(() => push(rec.status, line.innerText.trim()))
    .observe(line, {childList: true, subtree: true, characterData: true});
}
"""


def test_chat_reply_streams_in_and_reports_speed(page, server_url):
    open_app(page, server_url)
    page.evaluate(RECORD_UPDATES)
    send(page, COUNTING)
    final = wait_finished(page)
    assert SUMMARY.search(final), final
    updates = page.evaluate("window.__updates")
    replies = [text for text in updates["reply"] if text]
    shown = bot_messages(page).last.inner_text().strip()
    # Streaming: the reply grew on screen in several steps, each before the reply ended.
    partial = [text for text in replies if text != shown]
    assert len(partial) >= 2, replies
    assert len({len(text) for text in partial}) >= 2 and min(map(len, partial)) < len(shown)
    writing = [line for line in updates["status"] if line.startswith("Writing...")]
    assert len(writing) >= 2, updates["status"]
    assert page.locator("#chat-input textarea").input_value() == ""


# Tokens a reply may still gain after Stop is clicked: the screen's count lags the server
# by one coalesced update, and the click travels through the browser and Gradio's queue
# before the scheduler ends the request (within one token). Both shrink in tokens when
# the machine is slow, since generation slows with them.
TOKENS_AFTER_STOP = 64


def test_stop_ends_a_long_reply_and_keeps_the_partial_text(page, server_url):
    open_app(page, server_url)
    tab(page, "Parameters")
    set_number(page, "max_new_tokens", 2000)
    page.get_by_label("ban_eos_token").check()
    time.sleep(1)         # the settings reach this session's state
    tab(page, "Chat")
    send(page, "Write a long story about a dragon.")
    expect(status(page)).to_contain_text("Writing...", timeout=GENERATION_TIMEOUT)
    expect(bot_messages(page).last).not_to_be_empty()
    shown_at_stop = int(re.search(r"(\d+) tokens", status(page).inner_text()).group(1))
    page.locator("#chat-stop").click()
    expect(status(page)).to_contain_text("(stopped)", timeout=30_000)
    partial = bot_messages(page).last.inner_text()
    assert partial.strip()
    tokens = int(re.search(r"(\d+) tokens", status(page).inner_text()).group(1))
    assert tokens - shown_at_stop <= TOKENS_AFTER_STOP, f"{tokens - shown_at_stop} tokens after Stop"
    # the stopped reply is stored as it was shown: nothing more was written after Stop
    page.reload()
    expect(bot_messages(page).last).to_have_text(partial, timeout=30_000)


def test_regenerate_replaces_and_remove_last_restores_the_text(page, server_url):
    open_app(page, server_url)
    send(page, FRANCE)
    wait_finished(page)
    expect(bot_messages(page).last).to_contain_text("Paris")
    first = bot_messages(page).last.inner_text()

    # Regenerate with a 3-token limit: the new reply must differ and take the old one's place.
    tab(page, "Parameters")
    set_number(page, "max_new_tokens", 3)
    time.sleep(1)
    tab(page, "Chat")
    page.locator("#chat-regenerate").click()
    expect(status(page)).to_contain_text("stopped at the length limit", timeout=GENERATION_TIMEOUT)
    expect(bot_messages(page)).to_have_count(1)
    expect(user_messages(page)).to_have_count(1)
    second = bot_messages(page).last.inner_text()
    assert second != first and first.startswith(second.strip()), (first, second)

    page.locator("#chat-remove-last").click()
    expect(bot_messages(page)).to_have_count(0)
    expect(user_messages(page)).to_have_count(0)
    expect(page.locator("#chat-input textarea")).to_have_value(FRANCE)


def test_chat_survives_a_page_reload(page, server_url):
    open_app(page, server_url)
    send(page, GERMANY)
    wait_finished(page)
    expect(bot_messages(page).last).to_contain_text("Berlin")
    page.reload()
    expect(page.locator("#chat-list")).to_contain_text(GERMANY, timeout=30_000)
    expect(user_messages(page).first).to_have_text(GERMANY)
    expect(bot_messages(page).last).to_contain_text("Berlin")


def test_two_visitors_see_only_their_own_chats(new_context, server_url):
    first, second = new_context().new_page(), new_context().new_page()
    open_app(first, server_url)
    open_app(second, server_url)
    send(first, FRANCE)
    send(second, GERMANY)
    wait_finished(first)
    wait_finished(second)
    for page in (first, second):
        page.reload()
        expect(page.locator("#chat-input textarea")).to_be_visible()
    expect(first.locator("#chat-list")).to_contain_text(FRANCE)
    expect(second.locator("#chat-list")).to_contain_text(GERMANY)
    expect(first.locator("#chat-list")).not_to_contain_text(GERMANY)
    expect(second.locator("#chat-list")).not_to_contain_text(FRANCE)
    expect(first.locator("#chat-view")).not_to_contain_text(GERMANY)
    expect(second.locator("#chat-view")).not_to_contain_text(FRANCE)


# ---- parameters, presets ----------------------------------------------------------------

def test_saved_preset_survives_reload_and_sets_the_sliders(page, server_url):
    name = f"browser-test-{uuid.uuid4().hex[:8]}"
    try:
        open_app(page, server_url)
        tab(page, "Parameters")
        set_number(page, "temperature", 0.37)
        set_number(page, "top_k", 17)
        time.sleep(1)
        page.get_by_label("Save as", exact=True).fill(name)
        page.get_by_role("button", name="Save preset").click()
        expect(page.get_by_text(f"Saved preset {name}")).to_be_visible()
        assert not list((ROOT / "presets").glob(f"{name}.*"))    # private unless shared is ticked

        page.reload()
        expect(page.locator("#chat-input textarea")).to_be_visible()
        tab(page, "Parameters")
        # this browser's values and preset are kept over the reload
        expect(number_input(page, "temperature")).to_have_value("0.37")
        expect(page.get_by_label("Preset", exact=True)).to_have_value(f"{name} (private)")
        page.get_by_role("button", name="Restore defaults").click()
        expect(number_input(page, "temperature")).to_have_value("1")
        choose_option(page, "Preset", f"{name} (private)")
        expect(page.get_by_text(f"Preset {name} applied.")).to_be_visible()
        expect(number_input(page, "temperature")).to_have_value("0.37")
        expect(number_input(page, "top_k")).to_have_value("17")
    finally:
        for path in (ROOT / "presets").glob(f"{name}.*"):
            path.unlink()


# ---- instruction template -----------------------------------------------------------------

def replace_code(page: Page, source: str) -> None:
    editor = page.locator(".cm-content").nth(0)
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(source)


def test_template_edit_updates_preview_and_shows_syntax_errors(page, server_url):
    open_app(page, server_url)
    tab(page, "Instruction template")
    preview = page.locator(".cm-content").nth(1)
    expect(preview).to_contain_text("<|im_start|>user")
    replace_code(page, "{% for message in messages %}<<{{ message.role }}>> {{ message.content }}\n"
                       "{% endfor %}")
    expect(preview).to_contain_text("<<user>> What is the capital of France?")
    expect(preview).not_to_contain_text("<|im_start|>")

    replace_code(page, "{% for message in messages %}\n[{{ message.role }}]\n{{ message.content }\n"
                       "{% endfor %}")
    expect(page.get_by_text(re.compile(r"error on line 3"))).to_be_visible()
    expect(page.get_by_text("The box cannot be put in use until it renders; the template in use "
                            "is unchanged.")).to_be_visible()
    # Editing only previews: the model's own template stays in use until one is applied.
    expect(page.locator("#template-in-use")).to_contain_text("In use: the model's own template")
    expect(page.locator("#template-apply")).to_be_disabled()


# ---- notebook probabilities -----------------------------------------------------------------

def top_probability(page: Page) -> float:
    text = page.locator("#notebook-probability-chart span").first.inner_text()
    return float(text.rstrip("%"))


def test_notebook_probabilities_follow_the_temperature(page, server_url):
    open_app(page, server_url)
    tab(page, "Parameters")
    page.get_by_role("button", name="Restore defaults").click()    # sampling on, temperature 1
    expect(page.get_by_text("Defaults restored.")).to_be_visible()
    tab(page, "Notebook")
    page.locator("#notebook-text textarea").fill("The capital of France is")
    page.get_by_role("tab", name="Probabilities").click()
    chart = page.locator("#notebook-probability-chart")
    expect(chart).to_contain_text("temperature 1", timeout=60_000)
    at_one = top_probability(page)

    tab(page, "Parameters")
    set_number(page, "temperature", 0.3)
    tab(page, "Notebook")
    expect(chart).to_contain_text("temperature 0.3", timeout=60_000)
    at_low = top_probability(page)
    assert at_low > at_one, (at_one, at_low)      # a lower temperature sharpens the choice


# ---- accounts -------------------------------------------------------------------------------

def log_in(page: Page, url: str, user: str, password: str) -> None:
    page.goto(url)
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()


def test_accounts_keep_chats_apart_and_refuse_a_wrong_password(new_context, auth_server):
    url = auth_server.url
    intruder = new_context().new_page()
    log_in(intruder, url, "alice", "not-her-password")
    expect(intruder.get_by_text("Incorrect Credentials")).to_be_visible()
    expect(intruder.locator("#chat-input")).to_have_count(0)

    alice = new_context().new_page()
    log_in(alice, url, "alice", ACCOUNTS["alice"])
    wait_ready(alice)
    send(alice, GERMANY)
    wait_finished(alice)
    expect(alice.locator("#chat-list")).to_contain_text(GERMANY)

    bob = new_context().new_page()
    log_in(bob, url, "bob", ACCOUNTS["bob"])
    wait_ready(bob)       # the chat list is filled by then
    expect(bob.locator("#chat-list")).not_to_contain_text(GERMANY)
    expect(user_messages(bob)).to_have_count(0)
    send(bob, FRANCE)     # and the other way: bob's chat stays his
    wait_finished(bob)
    expect(bob.locator("#chat-list")).to_contain_text(FRANCE)
    expect(bob.locator("#chat-list")).not_to_contain_text(GERMANY)

    # alice's chats follow her log-in to another browser, and bob's do not
    again = new_context().new_page()
    log_in(again, url, "alice", ACCOUNTS["alice"])
    expect(again.locator("#chat-list")).to_contain_text(GERMANY, timeout=30_000)
    expect(again.locator("#chat-list")).not_to_contain_text(FRANCE)
    expect(again.locator("#chat-view")).not_to_contain_text(FRANCE)
    alice.reload()
    expect(alice.locator("#chat-list")).to_contain_text(GERMANY, timeout=30_000)
    expect(alice.locator("#chat-list")).not_to_contain_text(FRANCE)
