"""One visitor types template bombs into the Instruction template editor while another
visitor's chat reply streams: the reply runs to its end and the editor says what is wrong."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ServerProcess

REPLY_TOKENS = 600
# Greedy with end-of-text banned: the reply is exactly REPLY_TOKENS long and streams for
# several seconds even on an idle box, longer than typing the first bomb takes.
LONG_REPLIES = f"preset: Deterministic\nmax_new_tokens: {REPLY_TOKENS}\nban_eos_token: true\n"
FINISHED = re.compile(rf"{REPLY_TOKENS} tokens, [\d.]+ tokens/s")
TIMEOUT = 300_000      # ms: a long reply on a busy shared 2-core box


@pytest.fixture(scope="module")
def long_reply_server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("bomb-server"), settings=LONG_REPLIES)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def open_app(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.locator("#chat-input textarea")).to_be_visible(timeout=60_000)
    page.wait_for_function("() => !!localStorage.getItem('llm-workbench-browser-key')",
                           timeout=60_000)


def type_template(page: Page, source: str) -> None:
    """Clears the editor and types the source key by key, as a person would."""
    editor = page.locator(".cm-content").nth(0)
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.type(source, delay=40)
    expect(editor).to_have_text(source)      # the editor's bracket closing typed nothing extra


def test_template_bombs_leave_another_visitors_reply_streaming(long_reply_server, new_context):
    editor_page = new_context().new_page()
    chat_page = new_context().new_page()
    open_app(editor_page, long_reply_server.url)
    editor_page.get_by_role("tab", name="Instruction template", exact=True).click()
    preview = editor_page.locator(".cm-content").nth(1)
    expect(preview).to_contain_text("<|im_start|>user")
    open_app(chat_page, long_reply_server.url)

    chat_page.locator("#chat-input textarea").press_sequentially("Write a story about a lighthouse.")
    chat_page.locator("#chat-send").click()
    chat_status = chat_page.locator("#chat-status")
    expect(chat_status).to_contain_text("Writing", timeout=TIMEOUT)

    # jinja2 reads a**b**c as (a**b)**c; 9**(9**9) is the power that never finishes.
    type_template(editor_page, "{{ 9**(9**9) }}")
    expect(editor_page.get_by_text(
        "Template error on line 1: not allowed in a template: 9 ** 387420489 would be a number "
        "of about 369,693,100 digits")).to_be_visible()
    # That bomb was typed and refused while the reply was still being written.
    assert "Writing" in chat_status.inner_text(), chat_status.inner_text()
    type_template(editor_page, "{{ 'x' * 10**10 }}")
    expect(editor_page.get_by_text(
        "Template error on line 1: not allowed in a template: 'x' * 10000000000 would make a "
        "string of 10,000,000,000 characters; the limit is 1,000,000.")).to_be_visible()
    expect(editor_page.get_by_text("The box cannot be put in use until it renders; the template "
                                   "in use is unchanged.")).to_be_visible()
    # The preview keeps the last text that rendered: the sample conversation, or a part of a
    # bomb where typing paused (the box is busy), never a bomb's output.
    assert len(preview.inner_text()) < 1000, preview.inner_text()[:200]

    expect(chat_status).to_contain_text(FINISHED, timeout=TIMEOUT)
    reply = chat_page.locator('#chat-view [data-testid="bot"]').last
    assert len(reply.inner_text()) > 1000

    type_template(editor_page, "[{{ messages[1].content }}]")     # and the editor works on
    expect(preview).to_have_text("[What is the capital of France?]")
