"""A phone-sized page and dark mode, as a person sees them in Chromium, against the real server
and model.

At 390x844 the Chat tab shows the message box and the last messages without scrolling; the
chat list folds away behind the header's Chats button. The Dark mode button darkens the page
and the browser remembers it. Screenshots at 390x844 and 1280x800, light and dark, go to
$UI_SHOTS (default: phone-and-dark-shots in the temp folder).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_ui import FRANCE, GERMANY, bot_messages, status, user_messages, wait_finished, wait_ready

SHOTS = Path(os.environ.get("UI_SHOTS") or Path(tempfile.gettempdir()) / "phone-and-dark-shots")
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
THEME_KEY = "llm-workbench-theme"


@pytest.fixture
def sized(new_visitor):
    """Pages of new visitors with a given viewport."""
    return lambda viewport: new_visitor(viewport=viewport)


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def within_view(page: Page, locator) -> bool:
    """Whole inside the window as it is, the page not scrolled."""
    box = locator.bounding_box()
    size = page.viewport_size
    scrolled = page.evaluate("() => window.scrollY")
    return (box is not None and scrolled == 0 and box["y"] >= 0 and box["x"] >= 0
            and box["y"] + box["height"] <= size["height"] and box["x"] + box["width"] <= size["width"])


def send_with_enter(page: Page, text: str) -> None:
    box = page.locator("#chat-input textarea")
    box.click()
    page.keyboard.type(text)
    page.keyboard.press("Enter")
    expect(user_messages(page).filter(has_text=text)).to_have_count(1, timeout=60_000)
    wait_finished(page)


def background_lightness(page: Page) -> float:
    """0 (black) to 1 (white): the page's background (Gradio paints it on gradio-app)."""
    rgb = page.evaluate("""() => getComputedStyle(document.querySelector('gradio-app')).backgroundColor
        .match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number)""")
    return sum(rgb) / (3 * 255)


def test_on_a_phone_the_box_and_the_last_messages_show_without_scrolling(sized, server_url):
    page = sized(PHONE)
    page.goto(server_url)
    wait_ready(page)
    expect(page.locator("#chat-list")).to_be_hidden()           # folded away
    expect(page.locator("#chats-toggle")).to_be_visible()
    send_with_enter(page, FRANCE)                                # Enter still sends
    expect(bot_messages(page).last).to_contain_text("Paris")
    shot(page, "phone-chat-light")
    assert within_view(page, page.locator("#chat-input textarea"))
    assert within_view(page, page.locator("#chat-send"))
    assert within_view(page, bot_messages(page).last)
    assert within_view(page, status(page))

    # a second chat, then back to the first through the folded list
    page.locator("#chats-toggle").click()
    expect(page.locator("#chat-list")).to_be_visible()
    shot(page, "phone-chats-open")
    page.locator("#chat-new").click()
    expect(page.locator("#chat-list")).to_be_hidden()          # starting a chat folds the list
    send_with_enter(page, GERMANY)
    expect(bot_messages(page).last).to_contain_text("Berlin")
    page.locator("#chats-toggle").click()
    page.locator("#chat-list").get_by_text(FRANCE).click()
    expect(page.locator("#chat-list")).to_be_hidden()          # picking a chat shows it
    expect(user_messages(page).first).to_have_text(FRANCE)
    expect(bot_messages(page).last).to_contain_text("Paris")
    assert within_view(page, bot_messages(page).last)
    assert within_view(page, page.locator("#chat-input textarea"))


def test_the_chats_button_is_for_phones_only(sized, server_url):
    page = sized(DESKTOP)
    page.goto(server_url)
    wait_ready(page)
    expect(page.locator("#chat-list")).to_be_visible()
    expect(page.locator("#chats-toggle")).to_be_hidden()
    shot(page, "desktop-chat-light")


def test_dark_mode_darkens_the_page_and_the_browser_remembers_it(sized, server_url):
    page = sized(DESKTOP)
    page.goto(server_url)
    wait_ready(page)
    page.evaluate(f"() => localStorage.removeItem('{THEME_KEY}')")
    page.reload()
    wait_ready(page)
    assert background_lightness(page) > 0.8, "headless Chromium prefers light: the page starts light"

    page.get_by_role("button", name="Dark mode").click()
    page.wait_for_function("() => document.body.classList.contains('dark')")
    page.wait_for_function("() => getComputedStyle(document.querySelector('#chat-view')).backgroundColor "
                           "!== 'rgb(255, 255, 255)'")
    assert background_lightness(page) < 0.3
    shot(page, "desktop-chat-dark")

    page.reload()
    wait_ready(page)
    page.wait_for_function("() => document.body.classList.contains('dark')")
    assert background_lightness(page) < 0.3

    page.set_viewport_size(PHONE)
    send_with_enter(page, FRANCE)
    shot(page, "phone-chat-dark")

    page.get_by_role("button", name="Dark mode").click()          # and back
    page.wait_for_function("() => !document.body.classList.contains('dark')")
    page.reload()
    wait_ready(page)
    assert background_lightness(page) > 0.8
    assert not page.evaluate("() => document.body.classList.contains('dark')")
