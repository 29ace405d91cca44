import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from modules import history_schema
from modules.history_store import (MAX_MESSAGE_CHARS, ChatNotFound, HistoryStore, MessageNotFound,
                                   MessageTooLong, StorageFull, StorageUsage, TooManyChats)
from modules.limits import Limits
from modules.request_limits import LimitExceeded

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def store(tmp_path):
    with HistoryStore(tmp_path) as store:
        yield store


def test_create_append_and_read_back(store):
    chat_id = store.create_chat("alice", "Cooking", mode="instruct", character="Chef")
    first = store.append_message("alice", chat_id, "user", "How do I boil an egg?")
    second = store.append_message("alice", chat_id, "assistant", "Eight minutes.", meta={"seed": 7})
    chat = store.get_chat("alice", chat_id)
    assert (chat.title, chat.mode, chat.character) == ("Cooking", "instruct", "Chef")
    assert [(m.id, m.role, m.content, m.status) for m in chat.messages] == [
        (first, "user", "How do I boil an egg?", "done"),
        (second, "assistant", "Eight minutes.", "done")]
    assert chat.messages[1].meta == {"seed": 7}


def test_chat_ids_are_unguessable(store):
    ids = {store.create_chat("alice", "t") for _ in range(20)}
    assert len(ids) == 20
    assert all(len(chat_id) >= 20 for chat_id in ids)


def test_list_newest_first_and_search_titles_and_text(store):
    soup = store.create_chat("alice", "Soup recipes")
    cars = store.create_chat("alice", "Cars")
    store.append_message("alice", cars, "user", "Which engine oil is best?")
    bikes = store.create_chat("alice", "Bikes")
    store.append_message("alice", soup, "user", "More salt?")      # soup becomes the newest
    assert [c.id for c in store.list_chats("alice")] == [soup, bikes, cars]
    assert [c.id for c in store.list_chats("alice", "SOUP")] == [soup]
    assert [c.id for c in store.list_chats("alice", "engine oil")] == [cars]
    assert store.list_chats("alice", "100%") == []          # % is no wildcard
    store.append_message("alice", bikes, "user", "a 100% carbon frame")
    assert [c.id for c in store.list_chats("alice", "100%")] == [bikes]


def test_rename_and_delete(store):
    chat_id = store.create_chat("alice", "Old")
    store.append_message("alice", chat_id, "user", "hi")
    store.rename_chat("alice", chat_id, "  New\ntitle ")
    assert store.get_chat("alice", chat_id).title == "New title"
    store.delete_chat("alice", chat_id)
    assert store.list_chats("alice") == []
    with pytest.raises(ChatNotFound):
        store.get_chat("alice", chat_id)


def test_another_owner_cannot_touch_a_chat(store):
    alice_chat = store.create_chat("alice", "Alice's secrets")
    alice_msg = store.append_message("alice", alice_chat, "user", "my password is hunter2")
    bob_chat = store.create_chat("bob", "Bob's")
    bob_msg = store.append_message("bob", bob_chat, "user", "hello")

    assert [c.id for c in store.list_chats("bob")] == [bob_chat]
    assert store.list_chats("bob", "hunter2") == []
    forged = [
        lambda: store.get_chat("bob", alice_chat),
        lambda: store.rename_chat("bob", alice_chat, "mine now"),
        lambda: store.delete_chat("bob", alice_chat),
        lambda: store.append_message("bob", alice_chat, "user", "injected"),
        lambda: store.update_message("bob", alice_chat, alice_msg, content="changed"),
        lambda: store.delete_message("bob", alice_chat, alice_msg),
        lambda: store.truncate_after("bob", alice_chat, alice_msg),
    ]
    for attempt in forged:
        with pytest.raises(ChatNotFound) as foreign:
            attempt()
        assert str(foreign.value) == "No such chat."
    # A message id from Alice's chat used through Bob's own chat is no better.
    for attempt in (lambda: store.update_message("bob", bob_chat, alice_msg, content="changed"),
                    lambda: store.delete_message("bob", bob_chat, alice_msg),
                    lambda: store.truncate_after("bob", bob_chat, alice_msg)):
        with pytest.raises(MessageNotFound):
            attempt()
    # A foreign id and a made-up id give the very same error.
    with pytest.raises(ChatNotFound) as missing:
        store.get_chat("bob", "no-such-chat-id-at-all")
    assert str(missing.value) == "No such chat."

    chat = store.get_chat("alice", alice_chat)
    assert chat.title == "Alice's secrets"
    assert [m.content for m in chat.messages] == ["my password is hunter2"]
    assert [m.id for m in store.get_chat("bob", bob_chat).messages] == [bob_msg]


def test_streaming_update_then_finish(store):
    chat_id = store.create_chat("alice", "t")
    reply = store.append_message("alice", chat_id, "assistant", "", status="streaming")
    store.update_message("alice", chat_id, reply, content="Hel")
    store.update_message("alice", chat_id, reply, content="Hello.", status="done", meta={"tokens": 2})
    message = store.get_chat("alice", chat_id).messages[0]
    assert (message.content, message.status, message.meta) == ("Hello.", "done", {"tokens": 2})


def test_delete_message_and_truncate_after(store):
    chat_id = store.create_chat("alice", "t")
    ids = [store.append_message("alice", chat_id, role, text)
           for role, text in [("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d")]]
    assert store.truncate_after("alice", chat_id, ids[1]) == 2
    store.delete_message("alice", chat_id, ids[1])
    assert [m.content for m in store.get_chat("alice", chat_id).messages] == ["a"]
    with pytest.raises(MessageNotFound):
        store.delete_message("alice", chat_id, ids[3])


def test_bad_input_is_refused_clearly(store):
    chat_id = store.create_chat("alice", "t")
    with pytest.raises(MessageTooLong, match="limit is"):
        store.append_message("alice", chat_id, "user", "x" * (MAX_MESSAGE_CHARS + 1))
    with pytest.raises(ValueError, match="role"):
        store.append_message("alice", chat_id, "wizard", "hi")
    with pytest.raises(ValueError, match="status"):
        store.append_message("alice", chat_id, "user", "hi", status="maybe")
    with pytest.raises(ValueError, match="owner"):
        store.create_chat("", "t")
    assert store.get_chat("alice", chat_id).messages == []


def test_survives_reopening(tmp_path):
    with HistoryStore(tmp_path) as first:
        chat_id = first.create_chat("alice", "Kept")
        first.append_message("alice", chat_id, "user", "still here?")
    with HistoryStore(tmp_path) as second:
        assert [m.content for m in second.get_chat("alice", chat_id).messages] == ["still here?"]
        assert second.list_chats("alice")[0].title == "Kept"


def test_mark_interrupted_keeps_partial_text(tmp_path):
    with HistoryStore(tmp_path) as store:
        chat_id = store.create_chat("alice", "t")
        reply = store.append_message("alice", chat_id, "assistant", "", status="streaming")
        store.update_message("alice", chat_id, reply, content="half a")
    with HistoryStore(tmp_path) as store:
        assert store.mark_interrupted() == 1
        message = store.get_chat("alice", chat_id).messages[0]
        assert (message.content, message.status) == ("half a", "interrupted")
        assert store.mark_interrupted() == 0


CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from modules.history_store import HistoryStore
    store = HistoryStore(sys.argv[2])
    chat = store.create_chat("alice", "before the crash")
    print("chat", chat, flush=True)
    for i in range(5):
        print("done", store.append_message("alice", chat, "user", f"finished {i}"), flush=True)
    reply = store.append_message("alice", chat, "assistant", "", status="streaming")
    for partial in ("The", "The answer", "The answer is"):
        store.update_message("alice", chat, reply, content=partial)
        print("partial", reply, partial.replace(" ", "_"), flush=True)
    other = store.create_chat("alice", "busy")
    i = 0
    while True:   # keeps committing until it is killed
        print("done", store.append_message("alice", other, "user", f"more {i}"), flush=True)
        i += 1
""")


def test_finished_messages_survive_sigkill(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(ROOT), str(tmp_path)],
                             stdout=subprocess.PIPE, text=True)
    finished_ids, partial = [], None
    try:
        for line in child.stdout:
            kind, *rest = line.split()
            if kind == "chat":
                chat_id = rest[0]
            elif kind == "partial":
                partial = (int(rest[0]), rest[1].replace("_", " "))
            elif kind == "done":
                finished_ids.append(int(rest[0]))
            if len(finished_ids) >= 25:
                break
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    with HistoryStore(tmp_path) as store:
        assert store.mark_interrupted() == 1
        stored = {m.id: m for c in store.list_chats("alice")
                  for m in store.get_chat("alice", c.id).messages}
        assert all(stored[i].status == "done" for i in finished_ids)     # every acknowledged one
        reply_id, partial_text = partial
        assert stored[reply_id].status == "interrupted"
        assert stored[reply_id].content == partial_text
        assert [m.content for m in store.get_chat("alice", chat_id).messages][:5] == [
            f"finished {i}" for i in range(5)]


def test_threads_appending_at_once_lose_nothing(store):
    owners = [f"user{n}" for n in range(6)]
    chats = {owner: store.create_chat(owner, "t") for owner in owners}
    errors = []

    def write(owner):
        try:
            for i in range(40):
                reply = store.append_message(owner, chats[owner], "assistant", "", status="streaming")
                store.update_message(owner, chats[owner], reply, content=f"{owner} {i}", status="done")
                store.list_chats(owner, "zzz")          # readers interleave with writers
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(owner,)) for owner in owners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for owner in owners:
        messages = store.get_chat(owner, chats[owner]).messages
        assert [m.content for m in messages] == [f"{owner} {i}" for i in range(40)]
        assert {m.status for m in messages} == {"done"}


# ---- storage limits -----------------------------------------------------------------------------
def small_store(tmp_path, chats=1_000, chars=50_000_000) -> HistoryStore:
    return HistoryStore(tmp_path, Limits(max_chats_per_user=chats, max_stored_chars_per_user=chars))


def test_limits_default_to_the_limits_table(store):
    assert store.limits.max_chats_per_user == 1_000
    assert store.limits.max_stored_chars_per_user == 50_000_000


def test_chat_limit_refuses_one_more_chat_with_a_clear_message(tmp_path):
    with small_store(tmp_path, chats=3) as store:
        kept = [store.create_chat("alice", f"chat {n}") for n in range(3)]
        with pytest.raises(TooManyChats) as refused:
            store.create_chat("alice", "one too many")
        assert isinstance(refused.value, LimitExceeded)         # the Chat tab shows it as a warning
        assert str(refused.value) == ("You have 3 stored chats, the limit: "
                                      "delete some in the chat list to make room.")
        assert sorted(c.id for c in store.list_chats("alice")) == sorted(kept)
        store.create_chat("bob", "Bob has his own allowance")
        store.delete_chat("alice", kept[0])
        store.create_chat("alice", "room again")
        assert store.usage("alice").chats == 3


def test_character_limit_stores_nothing_past_it(tmp_path):
    with small_store(tmp_path, chars=100) as store:
        chat_id = store.create_chat("alice", "t")
        first = store.append_message("alice", chat_id, "user", "x" * 60)
        with pytest.raises(StorageFull) as refused:
            store.append_message("alice", chat_id, "assistant", "y" * 41)
        assert isinstance(refused.value, LimitExceeded)
        assert str(refused.value) == ("You have 60 stored characters and this needs 41 more, over the "
                                      "limit of 100: delete some chats in the chat list to make room.")
        with pytest.raises(StorageFull):                       # an edit may not grow past it either
            store.update_message("alice", chat_id, first, content="x" * 101)
        assert [m.content for m in store.get_chat("alice", chat_id).messages] == ["x" * 60]
        store.append_message("alice", chat_id, "assistant", "y" * 40)          # exactly the limit
        with pytest.raises(StorageFull, match="You have 100 stored characters, the limit: delete some"):
            store.append_message("alice", chat_id, "user", "z")
        store.update_message("alice", chat_id, first, content="short")          # shrinking is fine
        store.append_message("alice", chat_id, "user", "z" * 55)
        assert store.usage("alice") == StorageUsage(chats=1, chars=100)
        store.append_message("bob", store.create_chat("bob", "t"), "user", "b" * 100)


def test_a_reply_reaching_the_limit_is_cut_there_and_kept(tmp_path):
    with small_store(tmp_path, chars=50) as store:
        chat_id = store.create_chat("alice", "t")
        store.append_message("alice", chat_id, "user", "q" * 20)
        reply = store.append_message("alice", chat_id, "assistant", "", status="streaming")
        assert store.update_message("alice", chat_id, reply, content="The answer", cut_to_fit=True) == 10
        long_reply = "The answer is " + "very " * 20
        assert store.update_message("alice", chat_id, reply, content=long_reply, cut_to_fit=True) == 30
        store.update_message("alice", chat_id, reply, status="stopped")
        message = store.get_chat("alice", chat_id).messages[-1]
        assert (message.content, message.status) == (long_reply[:30], "stopped")
        assert store.usage("alice").chars == 50


def test_totals_match_a_recount_after_every_kind_of_change(store):
    def recount(owner):
        chats = [store.get_chat(owner, c.id) for c in store.list_chats(owner)]
        return StorageUsage(len(chats), sum(len(m.content) for c in chats for m in c.messages))

    first, second = store.create_chat("alice", "a"), store.create_chat("alice", "b")
    ids = [store.append_message("alice", first, "user", "hello " * n) for n in range(1, 6)]
    store.append_message("alice", second, "user", "über café ☕ \x00 after a NUL")
    store.update_message("alice", first, ids[0], content="changed")
    store.update_message("alice", first, ids[1], status="done")
    store.delete_message("alice", first, ids[2])
    assert store.usage("alice") == recount("alice")
    store.truncate_after("alice", first, ids[0])
    assert store.usage("alice") == recount("alice")
    store.delete_chat("alice", second)                 # its messages go by cascade
    assert store.usage("alice") == recount("alice") == StorageUsage(1, len("changed"))
    assert store.usage("nobody") == StorageUsage(0, 0)


# ---- search -----------------------------------------------------------------------------------
def titles(store, owner, query):
    return [c.title for c in store.list_chats(owner, query)]


def test_search_finds_words_in_titles_and_messages_newest_first(store):
    soup = store.create_chat("alice", "Soup recipes")
    store.append_message("alice", soup, "user", "How much salt for a minestrone?")
    cars = store.create_chat("alice", "Cars")
    store.append_message("alice", cars, "assistant", "Use synthetic engine oil in a Peugeot.")
    store.create_chat("alice", "Café visits")
    store.append_message("alice", soup, "user", "And pepper?")          # soup is now the newest
    assert titles(store, "alice", "minestrone") == ["Soup recipes"]
    assert titles(store, "alice", "soup") == ["Soup recipes"]
    assert titles(store, "alice", "ENGINE oil") == ["Cars"]
    assert titles(store, "alice", "pepper salt soup") == ["Soup recipes"]    # title and two messages
    assert titles(store, "alice", "cafe") == ["Café visits"]                # accents folded
    assert titles(store, "alice", "pe") == ["Soup recipes", "Cars"]          # peugeot, pepper; by recency
    assert titles(store, "alice", '"engine oil"') == ["Cars"]
    assert titles(store, "alice", '"oil engine"') == []
    assert titles(store, "alice", "engine butter") == []


def test_search_sees_edits_renames_and_deletions(store):
    chat_id = store.create_chat("alice", "Plans")
    message = store.append_message("alice", chat_id, "assistant", "", status="streaming")
    store.update_message("alice", chat_id, message, content="Visit Lisbon")
    assert titles(store, "alice", "lisbon") == ["Plans"]                    # found while being written
    store.update_message("alice", chat_id, message, content="Visit Porto", status="done")
    assert titles(store, "alice", "lisbon") == []
    assert titles(store, "alice", "porto") == ["Plans"]
    store.rename_chat("alice", chat_id, "Holidays")
    assert titles(store, "alice", "plans") == [] and titles(store, "alice", "holidays") == ["Holidays"]
    store.delete_message("alice", chat_id, message)
    assert titles(store, "alice", "porto") == []
    store.delete_chat("alice", chat_id)
    assert titles(store, "alice", "holidays") == []


def test_search_shows_only_the_owners_chats(store):
    store.append_message("alice", store.create_chat("alice", "Alice's secret plans"), "user", "hunter2")
    bob_chat = store.create_chat("bob", "Bob's plans")
    assert titles(store, "bob", "hunter2") == []
    assert titles(store, "bob", "secret") == []
    assert [c.id for c in store.list_chats("bob", "plans")] == [bob_chat]


ODD_QUERIES = ['"', '""', '"unclosed', 'a"b', "*", "-", "-engine", "engine*", "NOT", "AND", "OR",
               "engine AND", "NEAR(engine oil)", "NEAR", "title:engine", "content:oil", "^engine",
               "(engine", "engine)", "{title}: x", "+", "'", "\\", "%", "_", "engine -oil", "e*n*g",
               "\x00", "🚗", "a " * 50, "x" * 5000]


@pytest.mark.parametrize("query", ODD_QUERIES)
def test_search_takes_any_text_without_error(store, query):
    chat_id = store.create_chat("alice", "Cars")
    store.append_message("alice", chat_id, "user", "engine oil, NEAR and AND: title content")
    found = titles(store, "alice", query)
    assert found in ([], ["Cars"])


def test_typed_fts_syntax_is_searched_as_words(store):
    store.append_message("alice", store.create_chat("alice", "Cars"), "user", "engine oil")
    store.append_message("alice", store.create_chat("alice", "Logic"), "user", "true AND false, NEAR x")
    assert titles(store, "alice", "AND") == ["Logic"]          # a word, not an operator
    assert titles(store, "alice", "NEAR(x") == ["Logic"]
    assert titles(store, "alice", "engine*") == ["Cars"]
    assert titles(store, "alice", "content:engine") == []     # not a column filter: no such word


# ---- migrating a file written by the first version ------------------------------------------------
# Written out here rather than taken from history_schema, which builds new files: the old
# file this test starts from must stay what version 1 wrote whatever happens to that module.
VERSION_1_SCHEMA = """
CREATE TABLE IF NOT EXISTS chats (
    id          TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    title       TEXT NOT NULL,
    mode        TEXT NOT NULL,
    character   TEXT NOT NULL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS chats_by_owner ON chats(owner, updated_at);
CREATE TABLE IF NOT EXISTS messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id     TEXT NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    role        TEXT NOT NULL,
    content     TEXT NOT NULL,
    status      TEXT NOT NULL,
    meta        TEXT NOT NULL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_chat ON messages(chat_id, id);
CREATE INDEX IF NOT EXISTS messages_streaming ON messages(status) WHERE status = 'streaming';
PRAGMA user_version = 1;
"""


def make_version_1_file(folder: Path) -> None:
    db = sqlite3.connect(folder / "history.sqlite3")
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(VERSION_1_SCHEMA)
    chats = [("c-soup", "alice", "Soup recipes", 1.0), ("c-cars", "alice", "Cars", 3.0),
             ("c-same", "alice", "Same time", 3.0), ("c-bob", "bob", "Bob's garden", 2.0)]
    db.executemany("INSERT INTO chats VALUES (?, ?, ?, 'chat', '', ?, ?)",
                   [(i, o, t, at, at) for i, o, t, at in chats])
    messages = [("c-soup", "user", "more salt?", "done"), ("c-soup", "assistant", "A pinch.", "done"),
                ("c-cars", "user", "engine oil", "done"), ("c-cars", "assistant", "Synthe", "streaming"),
                ("c-bob", "user", "tomatoes", "done")]
    db.executemany("INSERT INTO messages (chat_id, role, content, status, meta, created_at, updated_at)"
                   " VALUES (?, ?, ?, ?, '{}', 1, 1)", messages)
    db.commit()
    db.close()


def test_a_version_1_file_is_migrated_on_open(tmp_path):
    make_version_1_file(tmp_path)
    with small_store(tmp_path, chats=3) as store:
        # Order (ties broken by insertion), ids and texts are as they were.
        assert [c.id for c in store.list_chats("alice")] == ["c-same", "c-cars", "c-soup"]
        assert [m.content for m in store.get_chat("alice", "c-soup").messages] == ["more salt?", "A pinch."]
        # The existing rows are in the index and in the totals.
        assert titles(store, "alice", "salt") == ["Soup recipes"]
        assert titles(store, "alice", "cars") == ["Cars"]
        assert titles(store, "alice", "tomatoes") == [] and titles(store, "bob", "tomatoes") == ["Bob's garden"]
        assert store.usage("alice") == StorageUsage(3, len("more salt?A pinch.engine oilSynthe"))
        assert store.usage("bob") == StorageUsage(1, len("tomatoes"))
        with pytest.raises(TooManyChats):
            store.create_chat("alice", "a fourth")
        assert store.mark_interrupted() == 1
        # Deleting still cascades, and everything stays in step afterwards.
        store.delete_chat("alice", "c-soup")
        assert titles(store, "alice", "salt") == [] and store.usage("alice").chars == len("engine oilSynthe")
        new_chat = store.create_chat("alice", "Fresh")
        store.append_message("alice", new_chat, "user", "after the migration")
        assert titles(store, "alice", "migration") == ["Fresh"]
    with HistoryStore(tmp_path) as reopened:                      # the second open changes nothing
        assert titles(reopened, "alice", "migration") == ["Fresh"]
        assert reopened.usage("alice") == StorageUsage(3, len("engine oilSynthe") + len("after the migration"))
    db = sqlite3.connect(tmp_path / "history.sqlite3")
    assert db.execute("PRAGMA user_version").fetchone()[0] == history_schema.VERSION     # and on to the latest
    assert db.execute("SELECT count(*) FROM messages WHERE chat_id = 'c-soup'").fetchone()[0] == 0
    db.close()


# ---- one person's long search does not hold up another's writes ----------------------------------
def fill_many_chats(store: HistoryStore, owner: str, chats: int, messages_per_chat: int) -> None:
    """Rows written straight into the file, in one transaction, to build a big history fast
    (the store's triggers keep the index and the totals as the store would)."""
    text = "apple banana cherry date egg fig grape honey"
    db = sqlite3.connect(store.path, isolation_level=None)
    db.execute("BEGIN")
    db.executemany("INSERT INTO chats (id, owner, title, mode, character, created_at, updated_at)"
                   " VALUES (?, ?, ?, 'chat', '', ?, ?)",
                   [(f"{owner}-{n}", owner, f"chat {n}", n, n) for n in range(chats)])
    db.executemany("INSERT INTO messages (chat_id, role, content, status, meta, created_at, updated_at)"
                   " VALUES (?, 'user', ?, 'done', '{}', 0, 0)",
                   ((f"{owner}-{n % chats}", text) for n in range(chats * messages_per_chat)))
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def test_a_long_search_does_not_hold_up_another_users_writes(store):
    fill_many_chats(store, "alice", chats=1000, messages_per_chat=60)
    query = "a b c d e f g h"                       # every word matches every message
    started = time.perf_counter()
    assert len(store.list_chats("alice", query)) == 500
    search_seconds = time.perf_counter() - started
    bob_chat = store.create_chat("bob", "t")
    store.append_message("bob", bob_chat, "user", "warm-up")

    searching, stop, searches = threading.Event(), threading.Event(), []

    def search_until_stopped():
        while not stop.is_set():
            searching.set()
            searches.append(len(store.list_chats("alice", query)))

    searcher = threading.Thread(target=search_until_stopped)
    searcher.start()
    try:
        assert searching.wait(timeout=30)
        waits = []
        for n in range(9):
            begun = time.perf_counter()
            store.append_message("bob", bob_chat, "user", f"message {n}")
            waits.append(time.perf_counter() - begun)
    finally:
        stop.set()
        searcher.join()
    # Behind a lock held for each search, an append would wait on average half a search.
    assert sorted(waits)[len(waits) // 2] < search_seconds / 5, (waits, search_seconds)
    assert searches and set(searches) == {500}
    assert len(store.get_chat("bob", bob_chat).messages) == 10
