"""A reply's reasoning in the Chat tab, as a person sees it: a "Thinking" block above the
answer that streams while the model thinks, then closes with its duration and opens on a
click; the next turn's prompt (the server's --verbose log) without it; the Parameters
tab's Thinking switch kept for the person and reaching the template.

The small default model does not think by itself, so the template in use opens the
reasoning in its generation prompt (as DeepSeek-R1's does: tests/fixtures/
opens_thinking_template.jinja) and a grammar typed in the Parameters tab makes the model
write a few words, close the reasoning with </think> and answer. Screenshots go to
$REASONING_SHOTS (default: reasoning-shots in the temp folder).
"""
from __future__ import annotations

import os
import re
import sqlite3
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from modules.reasoning import split_reasoning
from tests.browser.conftest import ROOT, TEST_SETTINGS, ServerProcess, serve
from tests.browser.test_ui import (
    FRANCE, GERMANY, logged_prompt, open_app, paste_template, send, tab, wait_finished,
)

SHOTS = Path(os.environ.get("REASONING_SHOTS") or Path(tempfile.gettempdir()) / "reasoning-shots")
TEMPLATE = (ROOT / "tests" / "fixtures" / "opens_thinking_template.jinja").read_text(encoding="utf-8")
THINK_GRAMMAR = 'root ::= [a-zA-Z ,.]{8,60} "</think>" [a-zA-Z ,.]{1,60}'
DURATION = re.compile(r"\(\d+(\.\d)?m?s\)")

# Installed before a send: whether the page showed a Thinking block still being written
# ("Thinking…") and, at those moments, closed: none of the reasoning on screen.
RECORD_WRITING = """
() => {
  window.__writingThinking = false;
  window.__openWhileWriting = false;
  const view = document.querySelector('#chat-view');
  new MutationObserver(() => {
    for (const group of view.querySelectorAll('.thought-group')) {
      if (!group.innerText.includes('Thinking…')) continue;
      window.__writingThinking = true;
      // what is left once the title, a duration and the arrow are taken out: reasoning text
      const rest = group.innerText.replace('Thinking…', '').replace(/\\(\\d+(\\.\\d+)?m?s\\)/, '');
      if (rest.replace(/[\\s▶▼►]/g, '').length > 0)
        window.__openWhileWriting = group.innerText;
    }
  }).observe(view, {childList: true, subtree: true, characterData: true});
}
"""


@pytest.fixture(scope="module")
def verbose_server(tmp_path_factory):
    yield from serve(tmp_path_factory.mktemp("reasoning"), extra_args=["--verbose"], settings=TEST_SETTINGS)


@pytest.fixture(autouse=True)
def patient_expect():
    """Replies wait their turn on a shared, busy box."""
    expect.set_options(timeout=60_000)
    yield
    expect.set_options(timeout=None)


# ---- helpers ----------------------------------------------------------------------------

def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def use_template(page: Page, source: str) -> None:
    """Pastes the template into the Instruction template tab's box and puts it in use."""
    tab(page, "Instruction template")
    paste_template(page, source)
    apply = page.locator("#template-apply")
    expect(apply).to_be_enabled()
    apply.click()
    expect(page.locator("#template-in-use")).to_contain_text("the template you edited, applied at")


def grammar_box(page: Page):
    tab(page, "Parameters")
    box = page.get_by_label("grammar_string")
    if not box.is_visible():
        page.get_by_role("button", name="Tokens").click()        # its group, closed at first
    return box


def type_grammar(page: Page, url: str, grammar: str) -> None:
    """Types the grammar in the Parameters tab, key by key, and waits until the server has it:
    it keeps each person's values for their next visit, so a new tab of the same browser
    shows it then. (Reloading this page instead could drop keys still on their way.)"""
    box = grammar_box(page)
    box.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(grammar)
    expect(box).to_have_value(grammar)
    for attempt in range(10):
        visit = page.context.new_page()
        try:
            open_app(visit, url)
            expect(grammar_box(visit)).to_have_value(grammar, timeout=5_000)
            return
        except AssertionError:
            if attempt == 9:
                raise
        finally:
            visit.close()


def thinking_switch(page: Page):
    return page.locator("#enable-thinking input[type=checkbox]")


def thinking_blocks(page: Page):
    return page.locator("#chat-view .thought-group").filter(has_text="Thinking")


def stored_reply(server: ServerProcess, question: str) -> str:
    """The stored reply that follows `question` in the server's history store."""
    db = sqlite3.connect(f"file:{server.workdir / 'data' / 'chats' / 'history.sqlite3'}?mode=ro", uri=True)
    try:
        (asked,) = db.execute("SELECT id, chat_id FROM messages WHERE content = ? ORDER BY id DESC LIMIT 1",
                              (question,)).fetchall()
        (reply,) = db.execute("SELECT content FROM messages WHERE chat_id = ? AND id > ? AND role = 'assistant' "
                              "ORDER BY id LIMIT 1", (asked[1], asked[0])).fetchone()
        return reply
    finally:
        db.close()


# ---- the tests ----------------------------------------------------------------------------

def test_reasoning_streams_into_a_thinking_block_above_the_answer_and_stays_out_of_the_next_prompt(
        verbose_server, page):
    open_app(page, verbose_server.url)
    type_grammar(page, verbose_server.url, THINK_GRAMMAR)
    use_template(page, TEMPLATE)
    tab(page, "Chat")
    page.evaluate(RECORD_WRITING)
    send(page, FRANCE)
    wait_finished(page)

    stored = stored_reply(verbose_server, FRANCE)
    assert stored.startswith("<think>\n"), stored           # the prompt opened it; the store says so
    reasoning, answer = split_reasoning(stored).reasoning, split_reasoning(stored).answer
    assert reasoning and answer

    block = thinking_blocks(page)
    expect(block).to_have_count(1)
    assert page.evaluate("window.__writingThinking"), "the block never showed as being written"
    assert not page.evaluate("window.__openWhileWriting"), "the block was open while being written: " + repr(page.evaluate("window.__openWhileWriting"))
    title = block.get_by_role("button", name=re.compile("^Thinking"))
    expect(title).to_contain_text("Thinking")
    expect(title).to_contain_text(DURATION)                  # e.g. "Thinking (2.4s)"
    # closed: the reasoning is not on screen, the answer is, below the block
    expect(page.locator("#chat-view").get_by_text(reasoning)).to_have_count(0)
    answer_text = page.locator("#chat-view .message-content").filter(has_text=answer.strip()[:20]).last
    expect(answer_text).to_be_visible()
    assert block.bounding_box()["y"] < answer_text.bounding_box()["y"]
    expect(page.locator("#chat-view")).not_to_contain_text("</think>")
    shot(page, "1-thinking-block-closed")

    title.click()
    expect(block).to_contain_text(reasoning)
    shot(page, "2-thinking-block-open")

    send(page, GERMANY)
    wait_finished(page)
    expect(thinking_blocks(page)).to_have_count(2)
    prompt = logged_prompt(verbose_server, GERMANY)
    assert answer.strip() in prompt and reasoning not in prompt, prompt
    assert prompt.count("<think>") == 1 and prompt.endswith("<|im_start|>assistant\n<think>"), prompt
    shot(page, "3-next-turn")


def test_the_thinking_switch_is_kept_and_reaches_the_template(verbose_server, page):
    open_app(page, verbose_server.url)
    tab(page, "Parameters")
    expect(thinking_switch(page)).to_be_checked()
    thinking_switch(page).uncheck()
    expect(page.get_by_text("Thinking is off for your chats.")).to_be_visible()
    shot(page, "4-switch-off")
    page.reload()                            # kept for this person: it comes back unchecked
    open_app(page, verbose_server.url)
    tab(page, "Parameters")
    expect(thinking_switch(page)).not_to_be_checked()

    use_template(page, TEMPLATE)
    tab(page, "Chat")
    send(page, FRANCE)
    wait_finished(page)
    prompt = logged_prompt(verbose_server, FRANCE + "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>")
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>"), prompt
    expect(thinking_blocks(page)).to_have_count(0)
    shot(page, "5-switch-off-reply")
