"""A damaged chat history at start-up: the server says so, keeps the damaged file aside for
recovery and serves with a fresh history, instead of refusing to start."""
from __future__ import annotations

import sqlite3
import urllib.request

import pytest

from modules.history_store import DB_FILENAME, HistoryStore
from tests.browser.conftest import ServerProcess

OWNER = "someone"


def fill(folder, chats: int = 40) -> bytes:
    """A real history with enough rows to span many pages; returns the file's bytes."""
    with HistoryStore(folder) as store:
        for number in range(chats):
            chat = store.create_chat(OWNER, f"Chat {number}")
            store.append_message(OWNER, chat, "user", f"Question {number} " + "words " * 200)
            store.append_message(OWNER, chat, "assistant", f"Answer {number} " + "more words " * 200)
    return (folder / DB_FILENAME).read_bytes()


def assert_fresh_and_usable(store: HistoryStore) -> None:
    assert store.list_chats(OWNER) == []
    chat = store.create_chat(OWNER, "After the damage")
    store.append_message(OWNER, chat, "user", "Still works")
    assert [m.content for m in store.get_chat(OWNER, chat).messages] == ["Still works"]


@pytest.mark.parametrize("damage", ["not a database", "truncated", "pages overwritten"])
def test_a_damaged_history_is_set_aside_and_a_fresh_one_started(tmp_path, damage, caplog):
    path = tmp_path / DB_FILENAME
    if damage == "not a database":
        original = b"These are my notes, not a database.\n" * 100
    else:
        original = fill(tmp_path)
        if damage == "truncated":
            original = original[: len(original) // 2]
        else:               # a stretch of the file zeroed, as a failing disk leaves it
            middle = len(original) // 2
            original = original[:middle] + bytes(8192) + original[middle + 8192:]
    path.write_bytes(original)

    with HistoryStore(tmp_path) as store:
        assert store.recovered_from is not None and store.recovered_from.parent == tmp_path
        assert store.recovered_from.read_bytes() == original, "the damaged file was not kept as it was"
        assert str(store.recovered_from) in store.recovery_notice and "damaged" in store.recovery_notice
        assert store.recovery_notice in caplog.text
        assert_fresh_and_usable(store)
    with HistoryStore(tmp_path) as again:       # the next start finds a sound file
        assert again.recovered_from is None
        assert [c.title for c in again.list_chats(OWNER)] == ["After the damage"]


def test_a_sound_history_is_left_alone(tmp_path):
    fill(tmp_path, chats=3)
    with HistoryStore(tmp_path) as store:
        assert store.recovered_from is None and store.recovery_notice == ""
        assert len(store.list_chats(OWNER)) == 3
    assert [p.name for p in tmp_path.iterdir() if "damaged" in p.name] == []


def test_a_locked_history_is_not_mistaken_for_a_damaged_one(tmp_path):
    fill(tmp_path, chats=1)
    holder = sqlite3.connect(tmp_path / DB_FILENAME, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")    # another process holds the whole file
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("UPDATE chats SET title = title")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            HistoryStore(tmp_path)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert [p.name for p in tmp_path.iterdir() if "damaged" in p.name] == []


def test_the_server_starts_on_a_damaged_history_and_says_so(tmp_path):
    chats = tmp_path / "data" / "chats"
    chats.mkdir(parents=True)
    (chats / DB_FILENAME).write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)
    server = ServerProcess(tmp_path)
    try:
        server.wait_ready()
        with urllib.request.urlopen(server.url, timeout=30) as response:
            assert response.status == 200
        log = server.log_tail(20_000)
        assert "chat history database" in log and "damaged" in log, log
        aside = [p for p in chats.iterdir() if p.name.startswith(f"{DB_FILENAME}.damaged-")]
        assert len(aside) == 1 and aside[0].read_bytes().startswith(b"SQLite format 3\x00")
        assert str(aside[0]) in log
        with HistoryStore(chats) as store:           # the running server's fresh history
            assert store.recovered_from is None
    finally:
        server.stop()
