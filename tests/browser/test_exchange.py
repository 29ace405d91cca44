"""Export and import as a person does them in Chromium, on the real server and model: the chat
on screen downloaded as Markdown and as text-generation-webui JSON, a TGW history uploaded and
found in the chat list, a SillyTavern PNG card imported into the character editor and exported
again, and bad files answered with their message. Screenshots go to $EXCHANGE_SHOTS (default:
exchange-shots in the temp folder)."""
from __future__ import annotations

import base64
import io
import json
import os
import shutil
import sqlite3
import tempfile
import uuid
from pathlib import Path

from PIL import Image
from playwright.sync_api import Page, expect

from tests.browser.test_chat_tab import chat_entries, selected_chat, stored_chats, toast
from tests.browser.test_parameters_tab import button, text_field
from tests.browser.test_ui import (FRANCE, bot_messages, open_app, send, status, tab, user_messages,
                                   wait_finished)
from tests.test_character_cards import V2, V2_CONTEXT, b64, picture_png, with_text_chunk

SHOTS = Path(os.environ.get("EXCHANGE_SHOTS") or Path(tempfile.gettempdir()) / "exchange-shots")
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tgw_chat_history.json"
FIXTURE_TITLE = "Can you explain what <div> & <span> do in HTML?"
WAIT = 30_000          # ms for what follows a click or an upload: the box is shared and busy


def shot(page: Page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def open_exchange(page: Page) -> None:
    page.get_by_role("button", name="Export / import").click()
    expect(page.locator("#chat-export-json")).to_be_visible(timeout=WAIT)


def upload(page: Page, button_name: str, path: Path) -> None:
    """Clicks the upload button and picks the file in the file chooser."""
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name=button_name).click()
    chooser.value.set_files(str(path))


def download(page: Page, offered: str, suffix: str, tmp_path: Path) -> Path:
    """Clicks the download button an export shows (`offered`) once it offers a file ending
    in `suffix`, and returns the downloaded file."""
    button = page.locator(offered)
    expect(button).to_contain_text(suffix, timeout=WAIT)
    with page.expect_download() as info:
        button.click()
    target = tmp_path / info.value.suggested_filename
    info.value.save_as(target)
    return target


def newest_reply_after(server, text: str) -> str:
    """The stored reply in the chat most recently sent `text` (the server is shared by the
    session's browser tests: earlier tests, as other people, sent the same message)."""
    path = server.workdir / "data" / "chats" / "history.sqlite3"
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (chat_id,) = db.execute("SELECT chat_id FROM messages WHERE content LIKE ? ORDER BY id DESC LIMIT 1",
                                (f"%{text}%",)).fetchone()
        (reply,) = db.execute("SELECT content FROM messages WHERE chat_id = ? AND role = 'assistant' "
                              "ORDER BY id DESC LIMIT 1", (chat_id,)).fetchone()
        return reply
    finally:
        db.close()


# ---- the chat on screen, out -----------------------------------------------------------------

def test_the_chat_on_screen_downloads_as_markdown_and_as_tgw_json(page, server, server_url, tmp_path):
    open_app(page, server_url)
    send(page, FRANCE)
    wait_finished(page)
    reply = newest_reply_after(server, FRANCE)

    open_exchange(page)
    page.locator("#chat-export-markdown").click()
    markdown = download(page, "#chat-export-file", ".md", tmp_path)
    assert markdown.name == "Tell me the capital of France.md"
    text = markdown.read_text(encoding="utf-8")
    assert text.startswith(f"# {FRANCE}\n")
    assert f"### You\n\n{FRANCE}\n\n### Assistant\n\n{reply.strip()}" in text

    page.locator("#chat-export-json").click()
    exported = download(page, "#chat-export-file", ".json", tmp_path)
    history = json.loads(exported.read_text(encoding="utf-8"))
    assert history["internal"] == [[FRANCE, reply]]
    assert history["visible"][0][0] == FRANCE
    assert set(history["metadata"]) == {"user_0", "assistant_0"}
    shot(page, "chat-exported")


def test_export_with_no_chat_on_screen_says_why(page, server_url):
    open_app(page, server_url)
    open_exchange(page)
    page.locator("#chat-export-json").click()
    expect(toast(page, "There is no chat on screen to export yet")).to_be_visible(timeout=WAIT)
    expect(page.locator("#chat-export-file")).to_be_hidden(timeout=WAIT)


# ---- a TGW history, in ------------------------------------------------------------------------

def test_a_tgw_history_imports_and_is_in_the_list_with_its_messages(page, server, server_url, tmp_path):
    upload_file = tmp_path / "20260503-14-02-11.json"          # the name TGW gives its files
    shutil.copy(FIXTURE, upload_file)
    open_app(page, server_url)
    open_exchange(page)
    upload(page, "Import a text-generation-webui chat", upload_file)

    expect(selected_chat(page)).to_have_count(1, timeout=WAIT)
    expect(chat_entries(page).filter(has_text=FIXTURE_TITLE)).to_have_count(1, timeout=WAIT)
    expect(status(page)).to_contain_text(f"Imported “{FIXTURE_TITLE}” (9 messages).", timeout=WAIT)
    expect(user_messages(page)).to_have_count(3, timeout=WAIT)
    expect(user_messages(page).first).to_contain_text("do in HTML?", timeout=WAIT)
    expect(bot_messages(page).first).to_contain_text("Hey! I'm Chiharu. What's up?", timeout=WAIT)
    expect(bot_messages(page).filter(has_text="12 × 7 = 84.")).to_have_count(1, timeout=WAIT)
    expect(bot_messages(page).filter(has_text="calculate")).to_have_count(1, timeout=WAIT)   # its tool call
    expect(bot_messages(page).last).to_contain_text("はい、もちろん！", timeout=WAIT)
    path = shot(page, "chat-imported")

    page.reload()                                              # stored, not only shown
    expect(chat_entries(page).filter(has_text=FIXTURE_TITLE)).to_have_count(1, timeout=60_000)
    assert path.stat().st_size > 0
    # stored as TGW's "internal" text, not its HTML-escaped "visible" one
    messages = [m for m in stored_chats(server, "do in HTML?").values() if m][0]
    assert ("user", FIXTURE_TITLE) in messages
    assert ("assistant", "*Chiharu looks up from her laptop* Hey! I'm Chiharu. What's up?") == messages[0]


def test_a_bad_chat_file_shows_its_message_and_adds_nothing(page, server_url, tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"internal": [["Hello", 5]]}', encoding="utf-8")
    open_app(page, server_url)
    open_exchange(page)
    upload(page, "Import a text-generation-webui chat", bad)
    message = 'Not imported: Entry 1 of "internal" holds something other than text.'
    expect(toast(page, message)).to_be_visible(timeout=WAIT)
    expect(status(page)).to_contain_text(message, timeout=WAIT)
    expect(chat_entries(page)).to_have_count(0, timeout=WAIT)
    shot(page, "chat-import-refused")


# ---- a SillyTavern card, in and out -------------------------------------------------------------

def open_character_editor(page: Page, url: str) -> None:
    open_app(page, url)
    tab(page, "Parameters")
    page.get_by_role("tab", name="Character", exact=True).click()
    expect(text_field(page, "Name")).to_be_visible(timeout=WAIT)


def test_a_sillytavern_png_card_imports_into_the_editor_and_exports_again(page, server_url, tmp_path):
    name = f"Seraphina {uuid.uuid4().hex[:6]}"
    card = dict(V2, data=dict(V2["data"], name=name))
    card_file = tmp_path / "seraphina.png"
    card_file.write_bytes(with_text_chunk(picture_png((30, 140, 60), (120, 180)), "chara", b64(card)))
    open_character_editor(page, server_url)
    upload(page, "Import card", card_file)

    expect(page.locator("#character-status")).to_contain_text(f"Imported SillyTavern card (V2) {name}",
                                                              timeout=WAIT)
    expect(text_field(page, "Name")).to_have_value(name, timeout=WAIT)
    expect(text_field(page, "Greeting")).to_have_value(V2["data"]["first_mes"], timeout=WAIT)
    expect(text_field(page, "Context")).to_have_value(V2_CONTEXT.replace("Seraphina's", f"{name}'s"),
                                                      timeout=WAIT)
    expect(page.locator("img[src*='seraphina']").first).to_be_visible(timeout=WAIT)     # its picture
    shot(page, "card-imported")

    button(page, "Save character").click()
    expect(page.get_by_text(f"Saved character {name} (private")).to_be_visible(timeout=WAIT)

    button(page, "Export card").click()
    exported = download(page, "#character-card-file", ".png", tmp_path)
    with Image.open(exported) as image:
        data = json.loads(base64.b64decode(image.info["chara"]))
        assert image.size == (120, 180)
    assert data["spec"] == "chara_card_v2"
    assert (data["data"]["name"], data["data"]["first_mes"]) == (name, V2["data"]["first_mes"])
    assert data["data"]["description"] == V2_CONTEXT.replace("Seraphina's", f"{name}'s")


def test_a_png_that_is_not_a_card_shows_its_message_and_changes_nothing(page, server_url, tmp_path):
    plain = tmp_path / "holiday.png"
    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), (200, 200, 0)).save(buffer, format="PNG")
    plain.write_bytes(buffer.getvalue())
    open_character_editor(page, server_url)
    before = [text_field(page, label).input_value() for label in ("Name", "Context", "Greeting")]
    upload(page, "Import card", plain)
    message = "Not imported: holiday.png is a PNG picture without a character in it"
    expect(page.locator("#character-status")).to_contain_text(message, timeout=WAIT)
    expect(toast(page, message)).to_be_visible(timeout=WAIT)
    assert [text_field(page, label).input_value() for label in ("Name", "Context", "Greeting")] == before
    shot(page, "card-refused")
