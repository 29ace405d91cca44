"""The Instruction template editor puts a template in use only when the person applies one
that renders. Half-typed text (`{% if %}`, or the `{}` the editor's bracket closing leaves
for a moment while `{%` is typed) never reaches a prompt, and the page never says it does.

What the model reads is taken from the server's --verbose log, which prints the prompt of
every request: each template here writes a marker word into every turn.
"""
from __future__ import annotations

import os
import re
import tempfile
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ServerProcess, serve
from tests.browser.test_ui import choose_option, logged_prompt, open_app, paste_template, send, tab, wait_finished

SHOTS = Path(os.environ.get("TEMPLATE_EDITOR_SHOTS") or Path(tempfile.gettempdir()) / "template-editor-shots")
SHORT_REPLIES = "preset: Deterministic\nmax_new_tokens: 8\n"
# Each marks every turn with its word, so a prompt shows which template wrote it.
ALPHA = ("{% for m in messages %}[ALPHA {{ m.role }}] {{ m.content }}\n{% endfor %}"
         "{% if add_generation_prompt %}[ALPHA assistant] {% endif %}")
BRAVO = ALPHA.replace("ALPHA", "BRAVO")
APPLIED = re.compile(r"In use: the template you edited, applied at \d\d:\d\d\.")


@pytest.fixture(scope="module")
def verbose_server(tmp_path_factory):
    yield from serve(tmp_path_factory.mktemp("template-editor"), extra_args=["--verbose"], settings=SHORT_REPLIES)


@pytest.fixture(autouse=True)
def patient_expect():
    """Renders and replies wait their turn on a shared, busy box: 30 s for each expectation
    in this module, then Playwright's default again."""
    expect.set_options(timeout=30_000)
    yield
    expect.set_options(timeout=None)


# ---- helpers ----------------------------------------------------------------------------

def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def editor(page: Page):
    return page.locator(".cm-content").nth(0)


def preview(page: Page):
    return page.locator(".cm-content").nth(1)


def in_use(page: Page):
    return page.locator("#template-in-use")


def box_note(page: Page):
    return page.locator("#template-box-status")


def apply_button(page: Page):
    return page.locator("#template-apply")


def as_shown(source: str) -> str:
    """The editor's text as the page has it: one element per line, no line breaks."""
    return source.replace("\n", "")


def chat(page: Page, server: ServerProcess, message: str) -> str:
    """Sends `message` from the Chat tab, waits for the reply, returns the prompt the model read."""
    tab(page, "Chat")
    send(page, message)
    wait_finished(page)
    prompt = logged_prompt(server, message)
    tab(page, "Instruction template")
    return prompt


def expect_unchanged_in_use(page: Page, line: str) -> None:
    """The in-use line still names the template in use before the edit, and nothing on
    the page claims the box's text is in use."""
    expect(in_use(page)).to_have_text(line)
    expect(page.get_by_text("as edited")).to_have_count(0)


# ---- the test ---------------------------------------------------------------------------

def test_only_an_applied_template_that_renders_is_used(verbose_server, page):
    open_app(page, verbose_server.url)
    tab(page, "Instruction template")
    expect(preview(page)).to_contain_text("<|im_start|>user")
    expect(in_use(page)).to_contain_text("In use: the model's own template")
    expect(box_note(page)).to_contain_text("The box shows the template in use.")
    expect(apply_button(page)).to_be_disabled()
    model_own = in_use(page).inner_text()

    # A complete template in the box renders in the preview but is not in use yet.
    paste_template(page, ALPHA)
    expect(preview(page)).to_contain_text("[ALPHA user] What is the capital of France?")
    expect(box_note(page)).to_contain_text("not in use yet")
    expect(apply_button(page)).to_be_enabled()
    expect_unchanged_in_use(page, model_own)
    shot(page, "1-edited-not-applied")
    prompt = chat(page, verbose_server, "Name a color.")
    assert "<|im_start|>user\nName a color." in prompt, prompt
    assert "ALPHA" not in prompt, prompt

    apply_button(page).click()
    expect(in_use(page)).to_have_text(APPLIED)
    expect(box_note(page)).to_have_text("The box shows the template in use.")
    expect(apply_button(page)).to_be_disabled()
    applied_line = in_use(page).inner_text()
    shot(page, "2-applied")

    # Typed at the end, key by key, pausing where a person might: "{" becomes "{}" (the
    # editor closes the bracket), which renders, and is still not put in use.
    editor(page).click()
    page.keyboard.press("Control+End")
    page.keyboard.type("{")
    expect(editor(page)).to_have_text(as_shown(ALPHA + "{}"))
    expect(preview(page)).to_contain_text("[ALPHA assistant] {}")
    expect(box_note(page)).to_contain_text("not in use yet")
    expect_unchanged_in_use(page, applied_line)
    shot(page, "3-half-typed-renders")
    page.keyboard.type("% if %}", delay=60)
    expect(editor(page)).to_have_text(as_shown(ALPHA + "{% if %}"))
    expect(box_note(page)).to_contain_text("Template error on line 2")
    expect(box_note(page)).to_contain_text("cannot be put in use")
    expect(apply_button(page)).to_be_disabled()
    expect_unchanged_in_use(page, applied_line)
    shot(page, "4-half-typed-error")
    prompt = chat(page, verbose_server, "Name a fruit.")
    assert "[ALPHA user] Name a fruit." in prompt, prompt
    assert "{}" not in prompt and "{%" not in prompt, prompt

    # A valid template typed over it: still the applied one until Apply.
    paste_template(page, BRAVO)
    expect(preview(page)).to_contain_text("[BRAVO user] What is the capital of France?")
    expect(box_note(page)).to_contain_text("not in use yet")
    expect_unchanged_in_use(page, applied_line)
    prompt = chat(page, verbose_server, "Name an animal.")
    assert "[ALPHA user] Name an animal." in prompt and "BRAVO" not in prompt, prompt

    apply_button(page).click()
    expect(box_note(page)).to_have_text("The box shows the template in use.")
    expect(in_use(page)).to_have_text(APPLIED)
    shot(page, "5-second-applied")
    prompt = chat(page, verbose_server, "Name a planet.")
    assert "[BRAVO user] Name a planet." in prompt and "ALPHA" not in prompt, prompt

    # Choosing from the list applies at once: a saved template, then the model's own.
    choose_option(page, "Instruction template", "Alpaca")
    expect(in_use(page)).to_have_text("In use: the saved template Alpaca.")
    expect(box_note(page)).to_have_text("The box shows the template in use.")
    prompt = chat(page, verbose_server, "Name a river.")
    assert "### Instruction:\nName a river." in prompt and "BRAVO" not in prompt, prompt
    choose_option(page, "Instruction template", "(the model's own template)")
    expect(in_use(page)).to_have_text(model_own)
    prompt = chat(page, verbose_server, "Name a city.")
    assert "<|im_start|>user\nName a city." in prompt, prompt
    shot(page, "6-model-own-again")


def test_saving_puts_the_saved_template_in_use(server_url, page):
    name = f"marked-{uuid.uuid4().hex[:8]}"
    open_app(page, server_url)
    tab(page, "Instruction template")
    expect(preview(page)).to_contain_text("<|im_start|>user")
    paste_template(page, BRAVO)
    expect(box_note(page)).to_contain_text("not in use yet")
    page.get_by_label("Save as").fill(name)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#template-file-status")).to_contain_text(f"Saved template {name}")
    expect(in_use(page)).to_have_text(f"In use: the saved template {name}.")
    expect(box_note(page)).to_have_text("The box shows the template in use.")
    expect(apply_button(page)).to_be_disabled()
    shot(page, "7-saved")

    page.get_by_role("button", name="Delete", exact=True).click()
    expect(page.locator("#template-file-status")).to_contain_text(f"Deleted the private template {name}")
    expect(in_use(page)).to_have_text(f"In use: the saved template {name}.")
