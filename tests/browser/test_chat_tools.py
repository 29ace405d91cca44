"""Tools in the Chat tab, against the real server and model in Chromium.

The small test model does not call tools on its own, so the test asks for what a person
with such a model would: "Every reply begins with a call", which makes llama.cpp's
grammar shape the model's first words into a call of a ticked tool. The rest is the real
round trip: the model's output is read as a call, the server runs the tool (the shipped
get_datetime: no arguments, so the call is always the same), the result shows as a
block, and the model writes on from it.
"""
from __future__ import annotations

from datetime import date, timedelta

from playwright.sync_api import Page, expect

from tests.browser.test_ui import GENERATION_TIMEOUT, bot_messages, open_app, send, wait_finished, wait_ready


def open_tools(page: Page) -> None:
    panel = page.locator("#chat-tools-panel")
    if not page.locator("#chat-tools").is_visible():
        panel.get_by_text("Tools", exact=True).first.click()
    expect(page.locator("#chat-tools")).to_be_visible()


def tool_blocks(page: Page):
    return page.locator("#chat-view .thought-group")


def test_a_tool_call_runs_shows_its_result_and_the_model_goes_on(page, server_url):
    open_app(page, server_url)
    open_tools(page)
    page.locator("#chat-tools").get_by_label("get_datetime").check()
    page.locator("#chat-tool-choice").get_by_label("Every reply begins with a call").check()
    days = {(date.today() + timedelta(days=d)).isoformat() for d in (0, 1)}    # a run over midnight

    send(page, "What is the date today?")
    wait_finished(page)

    block = tool_blocks(page).filter(has_text="Tool call: get_datetime")
    expect(block).to_have_count(1)
    block.locator(".title").click()                      # opens: the arguments and the tool's result
    expect(block).to_contain_text("Result")
    assert any(day in block.inner_text() for day in days), block.inner_text()
    # After the block, the model's own words, written with the result in its prompt.
    expect(bot_messages(page)).to_have_count(2)
    answer = bot_messages(page).last
    expect(answer).not_to_contain_text("Tool call")
    assert answer.inner_text().strip()

    # The call, its result and the choice of tools are stored with the chat.
    page.reload()
    wait_ready(page)
    expect(tool_blocks(page).filter(has_text="Tool call: get_datetime")).to_have_count(1, timeout=GENERATION_TIMEOUT)
    open_tools(page)
    expect(page.locator("#chat-tools").get_by_label("get_datetime")).to_be_checked()
    expect(page.locator("#chat-tools").get_by_label("calculate")).not_to_be_checked()
    expect(page.locator("#chat-tool-choice").get_by_label("Every reply begins with a call")).to_be_checked()


def test_a_new_visitor_has_no_tools_ticked_and_replies_call_none(page, server_url):
    open_app(page, server_url)
    open_tools(page)
    expect(page.locator("#chat-tools").get_by_label("calculate")).not_to_be_checked()
    expect(page.locator("#chat-tools").get_by_label("get_datetime")).not_to_be_checked()
    send(page, "Tell me the capital of France.")
    wait_finished(page)
    expect(tool_blocks(page)).to_have_count(0)
    expect(bot_messages(page).last).to_contain_text("Paris")
