import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from modules.history_store import (MAX_MESSAGE_CHARS, ChatNotFound, HistoryStore, MessageNotFound,
                                   MessageTooLong)

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
    assert store.list_chats("alice", "100%") == []          # LIKE wildcards are taken literally
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
