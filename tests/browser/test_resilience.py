"""The server under the worst a shared box sees: killed mid-reply, browsers closing mid-stream."""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.browser.conftest import ServerProcess

# Replies run long (end-of-text banned) unless the stop string ends them.
LONG_REPLIES = ("preset: Deterministic\nmax_new_tokens: 1500\nban_eos_token: true\n"
                "custom_stopping_strings: ['Paris']\n")


def send(page, text: str) -> None:
    page.fill("#chat-input textarea", text)
    page.click("#chat-send")



def wait_reply_finished(page, timeout: float = 120) -> None:
    """The status line shows the reply's summary ("N tokens, X tokens/s"), not progress."""
    page.wait_for_function(
        "() => { const s = document.querySelector('#chat-status')?.innerText || '';"
        " return s.includes('tokens') && !s.includes('Writing'); }", timeout=timeout * 1000)


def stored_replies(workdir: Path) -> list[tuple[str, str]]:
    """(status, content) of every assistant message in the server's history database."""
    path = workdir / "data" / "chats" / "history.sqlite3"
    if not path.exists():
        return []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
        return db.execute("SELECT status, content FROM messages WHERE role = 'assistant' ORDER BY id").fetchall()


def wait_stored(workdir: Path, check, what: str, timeout: float = 120) -> list[tuple[str, str]]:
    """Polls the history database until check(replies) holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = stored_replies(workdir)
        if check(replies):
            return replies
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout:.0f} s: {stored_replies(workdir)}")


# Installed before a send: every status line the page shows, none missed between polls.
RECORD_STATUS = """
() => {
  const line = document.querySelector('#chat-status');
  const seen = window.__statuses = [];
  new MutationObserver(() => seen.push(line.innerText.trim()))
    .observe(line, {childList: true, subtree: true, characterData: true});
}
"""


def test_killed_server_keeps_finished_messages_and_marks_the_cut_reply(tmp_path, new_context):
    server = ServerProcess(tmp_path, settings=LONG_REPLIES)
    server.wait_ready()
    page = new_context().new_page()
    try:
        page.goto(server.url)
        send(page, "Tell me the capital of France.")
        wait_reply_finished(page)                         # first reply finished (stop string)
        send(page, "Write a long story about a dragon.")
        page.wait_for_function(
            "() => (document.querySelector('#chat-view')?.innerText || '').length > 250", timeout=120_000)
        # the reply is saved as it grows: kill once the store holds a good part of it
        wait_stored(tmp_path, lambda replies: len(replies) == 2 and replies[1][0] == "streaming"
                    and len(replies[1][1]) > 150, "the growing reply was not saved")
        server.process.kill()                             # SIGKILL: no clean-up runs
        server.process.wait(timeout=10)
    finally:
        server.stop()

    # The same address: the browser keeps its key per origin (host and port).
    restarted = ServerProcess(tmp_path, settings=LONG_REPLIES, port=server.port)
    try:
        restarted.wait_ready()
        page.goto(restarted.url)                          # same browser: same key, same chats
        page.wait_for_function(
            "() => (document.querySelector('#chat-view')?.innerText || '').includes('interrupted')",
            timeout=30_000)
        view = page.inner_text("#chat-view")
        assert "Tell me the capital of France." in view
        assert "The capital of France is" in view
        assert "Write a long story about a dragon." in view
        story = view.split("Write a long story about a dragon.", 1)[1]
        assert len(story.split("interrupted")[0].strip()) > 60, "the partial reply was not kept"
        assert page.locator("#chat-list label").count() == 1
    finally:
        restarted.stop()


def test_closing_the_browser_frees_the_model_for_others(tmp_path, new_context):
    # One slot: if the closed tab's generation went on, the second user would wait for it.
    server = ServerProcess(tmp_path, extra_args=["--parallel", "1"], settings=LONG_REPLIES)
    server.wait_ready()
    try:
        leaving = new_context().new_page()
        leaving.goto(server.url)
        send(leaving, "Write a long story about a dragon.")
        leaving.wait_for_function(
            "() => (document.querySelector('#chat-view')?.innerText || '').length > 150", timeout=120_000)
        leaving.context.close()
        # The server notices the closed tab, ends its generation and keeps what was written.
        [(status, story)] = wait_stored(tmp_path, lambda replies: replies and replies[0][0] != "streaming",
                                        "the closed tab's reply was not ended")
        assert status == "stopped" and story.strip()

        staying = new_context().new_page()
        staying.goto(server.url)
        staying.locator("#chat-input textarea").wait_for()
        staying.evaluate(RECORD_STATUS)
        send(staying, "Tell me the capital of France.")
        wait_reply_finished(staying)
        assert "The capital of France is" in staying.inner_text("#chat-view")
        statuses = staying.evaluate("window.__statuses")
        assert statuses and not [line for line in statuses if "Waiting" in line], statuses
        # The closed tab's reply stayed as it was when the tab closed: nothing generated since.
        assert stored_replies(tmp_path)[0] == (status, story)
    finally:
        server.stop()
