"""Versions and branches: the message tree in the store (history_schema version 4) and the
chat actions on it, on the real model. Regenerate and an edit keep what they replace, the
path on screen is remembered, and the prompt is built from that path only."""
from __future__ import annotations

import sqlite3

import pytest

from modules import chat_tree, history_schema
from modules.chat_service import ChatService, ChatSettings
from modules.chat_session import SessionControl
from modules.front_door import FrontDoor, ParamsTooLarge
from modules.history_store import HistoryStore, StorageFull, StorageUsage
from modules.limits import Limits
from modules.params import GenerationParams
from tests.chat_helpers import person, run

GREEDY = GenerationParams(do_sample=False, max_new_tokens=16)


def contents(store, owner, chat_id) -> list[str]:
    return [m.content for m in store.get_chat(owner, chat_id).messages]


def titles(store, owner, query) -> list[str]:
    return [c.title for c in store.list_chats(owner, query)]


# ---- the tree in the store ---------------------------------------------------------------------

@pytest.fixture
def store(tmp_path):
    with HistoryStore(tmp_path) as opened:
        yield opened


def test_a_new_version_is_shown_and_the_old_one_kept_and_remembered(tmp_path):
    with HistoryStore(tmp_path) as store:
        chat = store.create_chat("alice", "t")
        question = store.append_message("alice", chat, "user", "question")
        first = store.append_message("alice", chat, "assistant", "first answer")
        store.end_path_at("alice", chat, question)
        assert contents(store, "alice", chat) == ["question"]
        second = store.append_message("alice", chat, "assistant", "second answer")
        assert contents(store, "alice", chat) == ["question", "second answer"]
        versions = store.get_chat("alice", chat).versions(second)
        assert (versions.number, versions.count, versions.step(-1), versions.step(1)) == (2, 2, first, None)
        store.show_message("alice", chat, first)
    with HistoryStore(tmp_path) as reopened:                 # the path on screen is stored
        assert contents(reopened, "alice", chat) == ["question", "first answer"]
        assert [m.content for m in reopened.get_chat("alice", chat).tree] == [
            "question", "first answer", "second answer"]


def test_a_branch_keeps_its_own_later_messages(store):
    chat = store.create_chat("alice", "t")
    first_question = store.append_message("alice", chat, "user", "a")
    store.append_message("alice", chat, "assistant", "b")
    store.append_message("alice", chat, "user", "c")
    store.append_message("alice", chat, "assistant", "d")
    edited = store.append_message("alice", chat, "user", "a, edited", parent=None)   # a new first message
    store.append_message("alice", chat, "assistant", "b2")
    assert contents(store, "alice", chat) == ["a, edited", "b2"]
    store.show_message("alice", chat, first_question)        # back to the old branch, all of it
    assert contents(store, "alice", chat) == ["a", "b", "c", "d"]
    store.show_message("alice", chat, edited)
    assert contents(store, "alice", chat) == ["a, edited", "b2"]


def test_deleting_a_version_falls_back_to_the_newest_left(store):
    chat = store.create_chat("alice", "t")
    question = store.append_message("alice", chat, "user", "q")
    store.append_message("alice", chat, "assistant", "one")
    store.end_path_at("alice", chat, question)
    failed = store.append_message("alice", chat, "assistant", "", status="streaming")
    store.delete_message("alice", chat, failed)               # a reply that failed before any text
    assert contents(store, "alice", chat) == ["q", "one"]


def test_every_version_counts_in_the_totals_and_is_found_by_search(store):
    chat = store.create_chat("alice", "Versions")
    question = store.append_message("alice", chat, "user", "Which fruit?")
    store.append_message("alice", chat, "assistant", "A mango.")
    store.end_path_at("alice", chat, question)
    store.append_message("alice", chat, "assistant", "A papaya.")
    assert store.usage("alice") == StorageUsage(1, len("Which fruit?A mango.A papaya."))
    assert titles(store, "alice", "mango") == ["Versions"]          # not on screen, still found
    assert titles(store, "alice", "papaya") == ["Versions"]
    store.delete_message("alice", chat, question)                   # with every version after it
    assert store.usage("alice") == StorageUsage(1, 0)
    assert titles(store, "alice", "mango") == []


def test_a_version_past_the_storage_limit_is_refused(tmp_path):
    with HistoryStore(tmp_path, Limits(max_stored_chars_per_user=30)) as store:
        chat = store.create_chat("alice", "t")
        question = store.append_message("alice", chat, "user", "q" * 10)
        store.append_message("alice", chat, "assistant", "a" * 15)
        store.end_path_at("alice", chat, question)
        with pytest.raises(StorageFull):
            store.append_message("alice", chat, "assistant", "b" * 15)
        assert store.usage("alice").chars == 25


def test_another_owner_cannot_choose_or_end_a_path(store):
    from modules.history_store import ChatNotFound
    chat = store.create_chat("alice", "t")
    question = store.append_message("alice", chat, "user", "q")
    for action in (lambda: store.show_message("bob", chat, question),
                   lambda: store.end_path_at("bob", chat, question),
                   lambda: store.append_message("bob", chat, "user", "x", parent=question)):
        with pytest.raises(ChatNotFound):
            action()
    assert contents(store, "alice", chat) == ["q"]


VERSION_3_MESSAGES = [("c-one", "user", "hello there"), ("c-two", "user", "soup?"),
                      ("c-one", "assistant", "hi"), ("c-two", "assistant", "minestrone"),
                      ("c-one", "user", "bye")]


def make_version_3_file(folder) -> None:
    """A file as version 3 left it: the store's own tables, rolled back to before the tree."""
    with HistoryStore(folder):
        pass
    db = sqlite3.connect(folder / "history.sqlite3", isolation_level=None)
    db.executescript("""
        DROP TRIGGER chat_deleting;
        DROP TRIGGER attachment_added; DROP TRIGGER attachment_deleted; DROP TABLE attachments;
        DROP INDEX messages_by_parent;
        ALTER TABLE messages DROP COLUMN parent_id; ALTER TABLE messages DROP COLUMN active_child;
        ALTER TABLE chats DROP COLUMN active_root;
        CREATE TRIGGER chat_deleting BEFORE DELETE ON chats BEGIN
            UPDATE owner_usage SET chats = chats - 1,
                chars = chars - (SELECT coalesce(sum(length(content)), 0) FROM messages WHERE chat_id = old.id)
                WHERE owner = old.owner;
            INSERT INTO title_search (title_search, rowid, title) VALUES ('delete', old.num, old.title);
        END;
        PRAGMA user_version = 3;""")
    db.executemany("INSERT INTO chats (id, owner, title, mode, character, created_at, updated_at)"
                   " VALUES (?, 'alice', ?, 'chat', '', 1, 1)", [("c-one", "One"), ("c-two", "Two")])
    db.executemany("INSERT INTO messages (chat_id, role, content, status, meta, created_at, updated_at)"
                   " VALUES (?, ?, ?, 'done', '{}', 1, 1)", VERSION_3_MESSAGES)
    db.close()


def test_a_version_3_file_becomes_one_branch_per_chat(tmp_path):
    make_version_3_file(tmp_path)
    with HistoryStore(tmp_path) as store:
        assert contents(store, "alice", "c-one") == ["hello there", "hi", "bye"]
        assert contents(store, "alice", "c-two") == ["soup?", "minestrone"]
        chat = store.get_chat("alice", "c-one")
        assert [m.parent_id for m in chat.messages] == [None, chat.messages[0].id, chat.messages[1].id]
        assert all(chat.versions(m.id).count == 1 for m in chat.messages)
        assert store.usage("alice") == StorageUsage(2, sum(len(text) for _, _, text in VERSION_3_MESSAGES))
        assert titles(store, "alice", "minestrone") == ["Two"]
        # Regenerate's steps work on the migrated chat, and deleting keeps the totals right.
        store.end_path_at("alice", "c-two", chat_tree_first(store, "c-two"))
        store.append_message("alice", "c-two", "assistant", "gazpacho")
        assert contents(store, "alice", "c-two") == ["soup?", "gazpacho"]
        store.delete_chat("alice", "c-two")
        assert store.usage("alice") == StorageUsage(1, len("hello therehibye"))
    db = sqlite3.connect(tmp_path / "history.sqlite3")
    assert db.execute("PRAGMA user_version").fetchone()[0] == history_schema.VERSION == 4
    db.close()


def chat_tree_first(store, chat_id) -> int:
    return store.get_chat("alice", chat_id).messages[0].id


def test_the_path_is_read_from_pointers_with_the_newest_as_default():
    class Node:
        def __init__(self, id, parent_id, active_child=None):
            self.id, self.parent_id, self.active_child = id, parent_id, active_child
    nodes = [Node(1, None), Node(2, 1), Node(3, 1), Node(4, 2), Node(5, None)]
    assert chat_tree.path_ids(nodes, None) == [5]
    assert chat_tree.path_ids(nodes, 1) == [1, 3]
    nodes[0].active_child = 2
    assert chat_tree.path_ids(nodes, 1) == [1, 2, 4]
    nodes[0].active_child = chat_tree.END
    assert chat_tree.path_ids(nodes, 1) == [1]
    nodes[0].active_child = 99                    # a version that was deleted: the newest left
    assert chat_tree.path_ids(nodes, 1) == [1, 3]


# ---- the chat actions, on the real model ----------------------------------------------------------

@pytest.fixture
def service(scheduler, tmp_path):
    store = HistoryStore(tmp_path)
    yield ChatService(FrontDoor(scheduler, Limits(max_requests_per_user=2)), store)
    store.close()


def instruct(**changes) -> ChatSettings:
    return ChatSettings(GREEDY.replace(**changes), mode="instruct")


def test_regenerate_keeps_the_earlier_reply_and_the_prompt_follows_the_version_shown(service):
    alice = person("alice")
    first = run(service.send(alice, None, "Tell me the capital of France.", instruct(), SessionControl()))
    chat_id, first_reply = first.chat_id, first.messages[-1]["content"]
    assert "Paris" in first_reply and service.versions("alice", chat_id).reply is None
    second = run(service.regenerate(alice, chat_id, instruct(max_new_tokens=3), SessionControl()))
    second_reply = second.messages[-1]["content"]
    assert second_reply != first_reply
    shown = service.versions("alice", chat_id)
    assert (shown.reply.number, shown.reply.count) == (2, 2) and shown.message is None

    assert service.show_version("alice", chat_id, shown.reply.message_id, -1)
    assert [m["content"] for m in service.messages("alice", chat_id)][-1] == first_reply
    assert not service.show_version("alice", chat_id, service.versions("alice", chat_id).reply.message_id, -1)

    control = SessionControl()                 # the next message is read after the version shown
    run(service.send(alice, chat_id, "And of Germany?", instruct(max_new_tokens=4), control))
    prompt = control.request.prompt
    # the short second reply may be the start of the first: then it is there once, inside it
    assert first_reply in prompt and prompt.count(second_reply) == (1 if second_reply in first_reply else 0)


def test_editing_an_earlier_message_starts_a_branch_and_the_old_one_comes_back(service):
    alice = person("alice")
    first = run(service.send(alice, None, "Tell me the capital of France.", instruct(), SessionControl()))
    chat_id = first.chat_id
    run(service.send(alice, chat_id, "Thank you.", instruct(max_new_tokens=4), SessionControl()))
    old = [m["content"] for m in service.messages("alice", chat_id)]
    assert len(old) == 4

    assert service.edit_message("alice", chat_id, 0, "Tell me the capital of Germany.") is True
    assert [m["content"] for m in service.messages("alice", chat_id)] == ["Tell me the capital of Germany."]
    control = SessionControl()
    reply = run(service.regenerate(alice, chat_id, instruct(), control))       # what the tab does next
    assert "Berlin" in reply.messages[-1]["content"]
    assert "France" not in control.request.prompt                              # the old branch is not read

    branch = service.versions("alice", chat_id).message
    assert (branch.number, branch.count) == (2, 2)
    assert service.versions("alice", chat_id).message_text == "Tell me the capital of Germany."
    service.show_version("alice", chat_id, branch.message_id, -1)
    assert [m["content"] for m in service.messages("alice", chat_id)] == old    # all of the old branch


def test_remove_last_takes_every_version_of_the_reply_and_leaves_the_rest(service):
    alice = person("alice")
    first = run(service.send(alice, None, "Tell me the capital of France.", instruct(), SessionControl()))
    chat_id = first.chat_id
    run(service.send(alice, chat_id, "Thank you.", instruct(max_new_tokens=4), SessionControl()))
    run(service.regenerate(alice, chat_id, instruct(max_new_tokens=2), SessionControl()))
    assert service.remove_last("alice", chat_id) == "Thank you."
    shown = [m["content"] for m in service.messages("alice", chat_id)]
    assert shown == [m["content"] for m in first.messages]
    assert len(service.store.get_chat("alice", chat_id).tree) == 2
    assert service.versions("alice", chat_id).reply is None


def test_a_refused_regenerate_leaves_the_reply_on_screen(service):
    alice = person("alice")
    first = run(service.send(alice, None, "Tell me the capital of France.", instruct(), SessionControl()))
    with pytest.raises(ParamsTooLarge):        # refused at the front door, before any reply is stored
        run(service.regenerate(alice, first.chat_id, instruct(custom_stopping_strings=["x" * 10_000]),
                               SessionControl()))
    assert service.messages("alice", first.chat_id) == first.messages
