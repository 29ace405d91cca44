"""The Parameters tab (sampler settings, presets, the character editor) and the Default tab's
saved prompts, used as a person uses them: typing with the keyboard, clicking what is
visible, reading what is shown. Each test is a new visitor (a fresh browser context) on the
real server, so the files it saves are its own private ones.
"""
from __future__ import annotations

import re
import uuid

from playwright.sync_api import Page, expect

from modules.characters import load_character
from modules.params import PARAM_SPECS
from tests.browser.conftest import ACCOUNTS, ROOT
from tests.browser.test_roles import log_in_with_keyboard
from tests.browser.test_ui import number_input, open_app, tab, wait_ready

ASSISTANT = load_character("Assistant", ROOT / "characters")


# ---- helpers: what a person does --------------------------------------------------------

def combobox(page: Page, label: str):
    """The dropdown called `label` on the tab that is showing."""
    return page.get_by_role("combobox", name=label).locator("visible=true")


def choose_by_typing(page: Page, label: str, text: str) -> None:
    """Clicks the dropdown, types over what it shows and picks the match with Enter."""
    box = combobox(page, label)
    box.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(text)
    expect(page.get_by_role("option", name=text, exact=True)).to_be_visible()
    page.keyboard.press("Enter")


def type_over(box, text: str) -> None:
    """Clicks into a box, selects what is there and types the new text."""
    box.click()
    box.press("Control+A")
    box.press_sequentially(text)


def type_number(page: Page, name: str, value) -> None:
    box = number_input(page, name)
    type_over(box, str(value))
    box.press("Enter")


def options_of(page: Page, label: str) -> list[str]:
    """Opens the dropdown, reads its options, closes it again."""
    combobox(page, label).click()
    options = page.get_by_role("option")
    expect(options.first).to_be_visible()
    names = options.all_inner_texts()
    page.keyboard.press("Escape")
    return [name.strip().splitlines()[-1] for name in names]    # without the chosen one's ✓


def text_field(page: Page, label: str):
    """The visible text box whose label starts with `label` (its help text follows)."""
    return page.get_by_role("textbox", name=re.compile(rf"^{re.escape(label)}\b")).locator("visible=true")


def button(page: Page, name: str):
    return page.get_by_role("button", name=name, exact=True)


def open_parameters(page: Page, url: str) -> None:
    open_app(page, url)
    tab(page, "Parameters")


def save_preset(page: Page, name: str) -> None:
    type_over(page.get_by_label("Save as", exact=True), name)
    button(page, "Save preset").click()


# ---- 1. the character editor shows the whole character ------------------------------------

def test_a_character_chosen_in_the_chat_opens_in_the_editor_with_all_its_fields(page, server_url, tmp_path):
    open_app(page, server_url)
    choose_by_typing(page, "Character", "Assistant")          # on the Chat tab
    # the pick is done when its greeting opens a new chat, as the person sees it
    expect(page.locator('#chat-view [data-testid="bot"]').filter(has_text=ASSISTANT.greeting)).to_have_count(
        1, timeout=60_000)

    tab(page, "Parameters")
    page.get_by_role("tab", name="Character", exact=True).click()
    expect(text_field(page, "Name")).to_have_value(ASSISTANT.name)
    expect(text_field(page, "Greeting")).to_have_value(ASSISTANT.greeting, timeout=30_000)
    expect(text_field(page, "Context")).to_have_value(ASSISTANT.context)
    expect(combobox(page, "Character")).to_have_value("Assistant")
    page.screenshot(path=str(tmp_path / "character-editor.png"), full_page=True)


# ---- 2. settings survive a reload, per browser and per account ----------------------------

def test_sampler_values_and_the_chosen_preset_survive_a_reload(new_context, server_url, tmp_path):
    page = new_context().new_page()
    open_parameters(page, server_url)
    preset = combobox(page, "Preset")
    choose_by_typing(page, "Preset", "Creative")
    expect(page.get_by_text("Preset Creative applied.")).to_be_visible()
    expect(preset).to_have_value("Creative")
    type_number(page, "temperature", 0.55)
    expect(preset).to_have_value("Creative, modified")      # the values no longer match it

    page.reload()
    wait_ready(page)
    tab(page, "Parameters")
    expect(number_input(page, "temperature")).to_have_value("0.55")
    expect(number_input(page, "top_p")).to_have_value("0.95")            # from Creative
    expect(preset).to_have_value("Creative, modified")
    page.screenshot(path=str(tmp_path / "preset-modified-after-reload.png"))

    type_number(page, "temperature", 1.1)                                # Creative's own value
    expect(preset).to_have_value("Creative")

    other = new_context().new_page()                                     # another browser
    open_parameters(other, server_url)
    expect(number_input(other, "top_p")).to_have_value("1")
    expect(combobox(other, "Preset")).not_to_have_value("Creative")


def test_settings_follow_an_account_to_another_browser(new_context, auth_server):
    # bob only: the other tests that log in as bob do not generate, so his settings are his own
    first = new_context().new_page()
    log_in_with_keyboard(first, auth_server.url, "bob", ACCOUNTS["bob"])
    tab(first, "Parameters")
    choose_by_typing(first, "Preset", "Deterministic")
    type_number(first, "top_k", 23)
    expect(combobox(first, "Preset")).to_have_value("Deterministic, modified")

    second = new_context().new_page()
    log_in_with_keyboard(second, auth_server.url, "bob", ACCOUNTS["bob"])
    tab(second, "Parameters")
    expect(number_input(second, "top_k")).to_have_value("23")
    expect(combobox(second, "Preset")).to_have_value("Deterministic, modified")

    alice = new_context().new_page()
    log_in_with_keyboard(alice, auth_server.url, "alice", ACCOUNTS["alice"])
    tab(alice, "Parameters")
    expect(number_input(alice, "top_k")).not_to_have_value("23")


# ---- 3. deleting and overwriting ask first -------------------------------------------------

def test_deleting_a_preset_asks_first_and_cancel_keeps_it(page, server_url, tmp_path):
    name = f"trash-{uuid.uuid4().hex[:6]}"
    open_parameters(page, server_url)
    save_preset(page, name)
    expect(page.get_by_text(f"Saved preset {name} (private")).to_be_visible()

    button(page, "Delete preset").click()
    expect(button(page, f"Delete '{name}'?")).to_be_visible()
    expect(button(page, "Delete preset")).to_be_hidden()
    page.screenshot(path=str(tmp_path / "delete-preset-question.png"))
    button(page, "Cancel").click()
    expect(button(page, "Delete preset")).to_be_visible()
    expect(button(page, f"Delete '{name}'?")).to_be_hidden()
    assert f"{name} (private)" in options_of(page, "Preset")

    button(page, "Delete preset").click()
    button(page, f"Delete '{name}'?").click()
    expect(page.get_by_text(f"Deleted your private preset {name}")).to_be_visible()
    assert f"{name} (private)" not in options_of(page, "Preset")


def test_saving_a_preset_over_its_own_name_asks_first(page, server_url, tmp_path):
    name = f"mine-{uuid.uuid4().hex[:6]}"
    open_parameters(page, server_url)
    type_number(page, "temperature", 0.3)
    save_preset(page, name)
    expect(page.get_by_text(f"Saved preset {name} (private")).to_be_visible()

    type_number(page, "temperature", 0.9)
    save_preset(page, name)
    overwrite = button(page, f"Overwrite '{name}'?")
    expect(overwrite).to_be_visible()
    expect(page.get_by_text(f"A preset named {name} is already there")).to_be_visible()
    page.screenshot(path=str(tmp_path / "overwrite-preset-question.png"))
    button(page, "Cancel").click()
    button(page, "Restore defaults").click()
    choose_by_typing(page, "Preset", f"{name} (private)")
    expect(number_input(page, "temperature")).to_have_value("0.3")      # not overwritten

    type_number(page, "temperature", 0.9)
    save_preset(page, name)
    overwrite.click()
    expect(page.get_by_text(f"Saved preset {name} (private")).to_be_visible()
    button(page, "Restore defaults").click()
    expect(number_input(page, "temperature")).to_have_value("1")
    choose_by_typing(page, "Preset", f"{name} (private)")
    expect(number_input(page, "temperature")).to_have_value("0.9")


def test_deleting_a_character_asks_first(page, server_url):
    name = f"Tester {uuid.uuid4().hex[:6]}"
    open_parameters(page, server_url)
    page.get_by_role("tab", name="Character", exact=True).click()
    type_over(text_field(page, "Name"), name)
    type_over(text_field(page, "Context"), "A character made by a test.")
    button(page, "Save character").click()
    expect(page.get_by_text(f"Saved character {name} (private")).to_be_visible()

    button(page, "Delete character").click()
    expect(button(page, f"Delete '{name}'?")).to_be_visible()
    button(page, "Cancel").click()
    assert f"{name} (private)" in options_of(page, "Character")

    button(page, "Delete character").click()
    button(page, f"Delete '{name}'?").click()
    expect(page.get_by_text(f"Deleted your private character {name}")).to_be_visible()
    assert f"{name} (private)" not in options_of(page, "Character")


def test_a_saved_prompt_is_overwritten_or_deleted_only_after_a_yes(page, server_url, tmp_path):
    name = f"note-{uuid.uuid4().hex[:6]}"
    open_app(page, server_url)
    tab(page, "Default")
    text_box = page.locator("#default-input textarea")
    type_over(text_box, "First text")
    type_over(page.locator("#default-prompt-name textarea"), name)
    button(page, "Save prompt").click()
    status = page.locator("#default-prompt-status")
    expect(status).to_contain_text(f"Saved prompt {name} (private")

    type_over(text_box, "Second text")
    button(page, "Save prompt").click()
    expect(button(page, f"Overwrite '{name}'?")).to_be_visible()
    page.screenshot(path=str(tmp_path / "overwrite-prompt-question.png"))
    button(page, "Cancel").click()
    choose_by_typing(page, "Prompt", f"{name} (private)")
    expect(text_box).to_have_value("First text")                   # kept

    type_over(text_box, "Second text")
    button(page, "Save prompt").click()
    button(page, f"Overwrite '{name}'?").click()
    expect(status).to_contain_text(f"Saved prompt {name} (private")
    type_over(text_box, "something else")
    choose_by_typing(page, "Prompt", f"{name} (private)")
    expect(text_box).to_have_value("Second text")

    button(page, "Delete prompt").click()
    button(page, f"Delete '{name}'?").click()
    expect(status).to_contain_text(f"Deleted your private prompt {name}")
    assert f"{name} (private)" not in options_of(page, "Prompt")


# ---- 4. every sampler's name can be read whole ---------------------------------------------

CUT_LABELS = """names => names.filter(name => {
    const label = [...document.querySelectorAll('span.label-text, span[data-testid="block-info"]')]
        .find(el => el.textContent.trim() === name);
    if (!label) return true;                     // not shown at all
    const box = label.closest('.block').getBoundingClientRect(), text = label.getBoundingClientRect();
    return label.scrollWidth > label.clientWidth + 1 || text.left < box.left - 1 || text.right > box.right + 1;
})"""


def test_every_sampler_label_is_shown_whole(page, server_url, tmp_path):
    open_parameters(page, server_url)
    for group in ("Repetition", "Mirostat", "Tokens"):              # the closed ones
        page.get_by_role("button", name=group).click()
    names = [spec.name for spec in PARAM_SPECS]
    expect(page.get_by_text(names[-1], exact=True)).to_be_visible()
    for width in (1400, 1100, 800):
        page.set_viewport_size({"width": width, "height": 1000})
        cut = page.evaluate(CUT_LABELS, names)
        page.screenshot(path=str(tmp_path / f"sampler-labels-{width}.png"), full_page=True)
        assert cut == [], f"cut at {width} px wide: {cut}"
