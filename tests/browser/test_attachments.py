"""Files attached to a chat message, as a person attaches them: through the page's file
chooser (the one "Attach files" opens), seen as chips before and after sending, read into the
prompt (the server runs with --verbose, so its log shows every prompt), stored with the chat
for a reload and a Regenerate; a file over the limit is refused with a message and nothing is
sent. Screenshots go to $CHAT_ATTACHMENTS_SHOTS (default: chat-attachments-shots in the temp
folder).
"""
from __future__ import annotations

import os
import re
import sqlite3
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ServerProcess
from tests.browser.test_chat_tab import toast, type_message
from tests.browser.test_ui import GENERATION_TIMEOUT, bot_messages, open_app, status, user_messages, wait_ready
from tests.pdf_files import text_pdf

SHOTS = Path(os.environ.get("CHAT_ATTACHMENTS_SHOTS") or Path(tempfile.gettempdir()) / "chat-attachments-shots")
LIMIT_KB = 64
NOTES = "# Lighthouse notes\n\nThe keeper is called Marguerite Ollivier.\n"
PDF_LINE = "The lighthouse was built in 1871 on Cape Sable."
QUESTION = "Who keeps the lighthouse?"


@pytest.fixture(scope="module")
def verbose_server(tmp_path_factory):
    """A server of its own: --verbose (the prompts in its log) and a small per-file limit."""
    server = ServerProcess(tmp_path_factory.mktemp("attachments-server"),
                           extra_args=["--verbose", "--max-attachment-kb", str(LIMIT_KB)])
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def files(tmp_path):
    def write(name: str, data: bytes | str) -> str:
        path = tmp_path / name
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return str(path)
    return write


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def choose_files(page: Page, *paths: str) -> None:
    """Clicks "Attach files" and picks the files in the chooser it opens."""
    with page.expect_file_chooser() as chooser:
        page.locator("#chat-attach").click()
    chooser.value.set_files(list(paths))


def waiting_chips(page: Page):
    return page.locator("#chat-files")


def prompts_in_log(server: ServerProcess) -> list[str]:
    """The prompts the scheduler logged (--verbose), each up to the next log line."""
    log = server.log_tail(chars=10_000_000)
    return re.findall(r"prompt tokens:\n(.*?)(?=\n\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ |\Z)", log, re.S)


def stored_attachments(server: ServerProcess) -> list[tuple[str, str, str]]:
    path = server.workdir / "data" / "chats" / "history.sqlite3"
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT m.content, a.name, a.text FROM attachments a JOIN messages m"
                          " ON m.id = a.message_id ORDER BY a.id").fetchall()
    finally:
        db.close()


def test_a_markdown_and_a_pdf_file_go_with_the_message_into_the_prompt(page, verbose_server, files):
    open_app(page, verbose_server.url)
    choose_files(page, files("notes.md", NOTES), files("history.pdf", text_pdf(PDF_LINE)))
    expect(waiting_chips(page)).to_contain_text("notes.md")
    expect(waiting_chips(page)).to_contain_text("history.pdf")
    expect(page.locator("#chat-files-clear")).to_be_visible()
    shot(page, "attach-1-chips-before-sending")

    type_message(page, QUESTION)
    page.keyboard.press("Enter")                                   # Enter still sends
    sent = user_messages(page).filter(has_text=QUESTION)
    expect(sent).to_have_count(1, timeout=GENERATION_TIMEOUT)
    expect(sent.locator("code")).to_have_text(["notes.md", "history.pdf"])     # the chips on the message
    expect(waiting_chips(page)).not_to_contain_text("notes.md")             # taken by the message
    expect(page.locator("#chat-files-clear")).to_be_hidden()
    expect(status(page)).to_contain_text("tokens/s", timeout=GENERATION_TIMEOUT)
    shot(page, "attach-2-sent")

    with_files = [p for p in prompts_in_log(verbose_server) if QUESTION in p]
    assert len(with_files) == 1, with_files
    assert "File: notes.md\n```markdown\n# Lighthouse notes" in with_files[0]
    assert f"File: history.pdf\n```\n{PDF_LINE}\n```" in with_files[0]
    assert [(m, n) for m, n, _ in stored_attachments(verbose_server)] == [(QUESTION, "notes.md"),
                                                                         (QUESTION, "history.pdf")]

    page.reload()
    wait_ready(page)
    sent = user_messages(page).filter(has_text=QUESTION)
    expect(sent.locator("code")).to_have_text(["notes.md", "history.pdf"], timeout=30_000)
    first_reply = bot_messages(page).last.inner_text()
    page.locator("#chat-regenerate").click()
    expect(page.locator("#chat-reply-version")).to_have_text("Reply 2/2", timeout=GENERATION_TIMEOUT)
    again = [p for p in prompts_in_log(verbose_server) if QUESTION in p]
    assert len(again) == 2 and f"File: history.pdf\n```\n{PDF_LINE}\n```" in again[1]
    assert first_reply                                               # (the reply itself may be the same)
    shot(page, "attach-3-regenerated-after-reload")


def test_a_file_over_the_limit_is_refused_and_nothing_is_sent(page, verbose_server, files):
    open_app(page, verbose_server.url)
    choose_files(page, files("big.txt", "a" * (LIMIT_KB * 1024 + 512)), files("photo.png", b"\x89PNG\r\n"))
    expect(toast(page, f"big.txt is {LIMIT_KB}.5 KiB; one file may be at most {LIMIT_KB} KiB.").first).to_be_visible()
    expect(toast(page, "photo.png is not a text, Markdown, code or PDF file").first).to_be_visible()
    expect(status(page)).to_contain_text(f"big.txt is {LIMIT_KB}.5 KiB")
    expect(waiting_chips(page)).not_to_contain_text("big.txt")
    expect(page.locator("#chat-files-clear")).to_be_hidden()
    shot(page, "attach-4-over-the-limit")
    expect(user_messages(page)).to_have_count(0)                   # nothing was sent
    assert all(name != "big.txt" for _, name, _ in stored_attachments(verbose_server))

    choose_files(page, files("small.txt", "A short note."))        # one that fits still comes
    expect(waiting_chips(page)).to_contain_text("small.txt")
    page.locator("#chat-files-clear").click()                      # and can be taken back
    expect(waiting_chips(page)).not_to_contain_text("small.txt")
    expect(user_messages(page)).to_have_count(0)
