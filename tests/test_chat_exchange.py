"""Chats out as text-generation-webui's history JSON and Markdown, and TGW histories in, on the
real history store: round trips, a file written as TGW writes it, and every kind of bad file
refused with a message and nothing stored."""
from __future__ import annotations

import html
import json
from pathlib import Path

import pytest

from modules.chat_exchange import (GREETING_MARK, ChatImportError, import_tgw_chat, read_tgw_history,
                                   to_markdown, to_tgw_history, to_tgw_json)
from modules.history_store import MAX_MESSAGE_CHARS, DiskFull, HistoryStore, StorageFull, TooManyChats
from modules.limits import Limits

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "tgw_chat_history.json"
CALL = {"id": "call_k3x9q2ab", "name": "calculate", "arguments": {"expression": "12*7"}}


@pytest.fixture
def store(tmp_path):
    with HistoryStore(tmp_path) as store:
        yield store


def stored(store, owner, chat_id):
    return [(m.role, m.content, m.meta) for m in store.get_chat(owner, chat_id).messages]


def make_chat(store, owner="alice"):
    """A chat as the Chat tab leaves it: greeting, a plain turn, a turn with a tool call."""
    chat_id = store.create_chat(owner, "Sums & <tags>", character="Chiharu")
    store.append_message(owner, chat_id, "assistant", "Hi! I'm Chiharu.")
    store.append_message(owner, chat_id, "user", 'What does <b>"bold"</b> do?')
    store.append_message(owner, chat_id, "assistant", "It makes text **bold** & strong.")
    store.append_message(owner, chat_id, "user", "What's 12*7?")
    store.append_message(owner, chat_id, "assistant", "Let me check.", meta={"tool_calls": [CALL]})
    store.append_message(owner, chat_id, "tool", "84", meta={"tool_call_id": CALL["id"], "name": "calculate",
                                                             "ok": True})
    store.append_message(owner, chat_id, "assistant", "12 × 7 = 84.")
    return chat_id


# ---- a file as TGW writes it ------------------------------------------------------------------

def test_a_history_written_by_tgw_imports_with_its_own_text_greeting_and_tool_call(store):
    chat_id = import_tgw_chat(store, "alice", FIXTURE.read_bytes(), "20260503-14-02-11.json")
    chat = store.get_chat("alice", chat_id)
    assert chat.title == "Can you explain what <div> & <span> do in HTML?"   # as TGW's list names it
    assert stored(store, "alice", chat_id) == [
        ("assistant", "*Chiharu looks up from her laptop* Hey! I'm Chiharu. What's up?", {}),
        ("user", "Can you explain what <div> & <span> do in HTML?", {}),
        ("assistant", "Sure! A <div> is a block element and a <span> is inline. \"Quotes\" & "
                      "'apostrophes' stay as typed.", {}),
        ("user", "What's 12*7? Use the calculator.", {}),
        ("assistant", "", {"tool_calls": [CALL]}),
        ("tool", "84", {"tool_call_id": CALL["id"], "name": "calculate", "ok": True}),
        ("assistant", "12 × 7 = 84.", {}),
        ("user", "Does 日本語 work too? 🙂", {}),
        ("assistant", "はい、もちろん！\n\nYes, of course.", {}),
    ]


def test_a_named_tgw_file_keeps_its_name_as_the_title(store):
    chat_id = import_tgw_chat(store, "alice", FIXTURE.read_bytes(), "/tmp/up/Tea with Chiharu.json")
    assert store.get_chat("alice", chat_id).title == "Tea with Chiharu"


def test_the_old_data_and_data_visible_format_imports(store):
    old = {"data": [[GREETING_MARK, "Hello."], ["Hi", "How are you?"]],
           "data_visible": [["", "Hello."], ["Hi", "How are you?"]]}
    chat_id = import_tgw_chat(store, "alice", json.dumps(old).encode(), "old.json")
    assert [(r, c) for r, c, _ in stored(store, "alice", chat_id)] == [
        ("assistant", "Hello."), ("user", "Hi"), ("assistant", "How are you?")]


# ---- export -----------------------------------------------------------------------------------

def test_export_has_tgws_shape_greeting_row_escaped_visible_and_tool_sequence(store):
    chat_id = make_chat(store)
    history = json.loads(to_tgw_json(store.get_chat("alice", chat_id)))
    assert history["internal"] == [
        [GREETING_MARK, "Hi! I'm Chiharu."],
        ['What does <b>"bold"</b> do?', "It makes text **bold** & strong."],
        ["What's 12*7?", "12 × 7 = 84."]]
    assert history["visible"] == [
        ["", "Hi! I&#x27;m Chiharu."],
        ["What does &lt;b&gt;&quot;bold&quot;&lt;/b&gt; do?", "It makes text **bold** &amp; strong."],
        ["What&#x27;s 12*7?", "12 × 7 = 84."]]
    sequence = history["metadata"]["assistant_2"]["tool_sequence"]
    assert sequence == [
        {"tool_calls": [{"id": CALL["id"], "type": "function",
                         "function": {"name": "calculate", "arguments": '{"expression": "12*7"}'}}],
         "content": "Let me check."},
        {"role": "tool", "content": "84", "tool_call_id": CALL["id"]}]
    assert set(history["metadata"]) == {"assistant_0", "user_1", "assistant_1", "user_2", "assistant_2"}
    assert all(isinstance(entry["timestamp"], str) for entry in history["metadata"].values())


def test_export_then_import_gives_the_same_messages(store):
    chat_id = make_chat(store)
    exported = to_tgw_json(store.get_chat("alice", chat_id)).encode("utf-8")
    again = import_tgw_chat(store, "bob", exported, "sums.json")
    assert stored(store, "bob", again) == stored(store, "alice", chat_id)


def test_tgws_fixture_round_trips_through_our_store_and_back(store):
    """Imported, then exported: the same internal rows and tool calls TGW wrote."""
    original = json.loads(FIXTURE.read_text(encoding="utf-8"))
    chat_id = import_tgw_chat(store, "alice", FIXTURE.read_bytes(), "x.json")
    exported = to_tgw_history(store.get_chat("alice", chat_id))
    assert exported["internal"] == original["internal"]
    assert exported["metadata"]["assistant_2"]["tool_sequence"] == original["metadata"]["assistant_2"]["tool_sequence"]
    # visible is what TGW's page showed; ours is the same text escaped the same way
    assert [html.unescape(r) for r, _ in exported["visible"]] == ["", *[u for u, _ in original["internal"][1:]]]


def test_messages_after_a_reply_that_was_not_answered_keep_their_order(store):
    chat_id = store.create_chat("alice", "t")
    for role, text in [("user", "one"), ("user", "two"), ("assistant", "reply"), ("assistant", "more")]:
        store.append_message("alice", chat_id, role, text)
    history = to_tgw_history(store.get_chat("alice", chat_id))
    assert history["internal"] == [["one", ""], ["two", "reply"], ["", "more"]]
    again = import_tgw_chat(store, "alice", json.dumps(history).encode(), "t.json")
    assert stored(store, "alice", again) == stored(store, "alice", chat_id)


def test_markdown_has_the_title_character_and_each_speaker(store):
    chat_id = make_chat(store)
    text = to_markdown(store.get_chat("alice", chat_id))
    assert text.startswith("# Sums & <tags>\n")
    assert "- Character: Chiharu" in text
    assert text.index("### Chiharu\n\nHi! I'm Chiharu.") < text.index('### You\n\nWhat does <b>"bold"</b> do?')
    assert "Called calculate with:" in text and '"expression": "12*7"' in text
    assert "### Result of calculate\n\n```\n84\n```" in text
    assert text.rstrip().endswith("12 × 7 = 84.")


def test_markdown_fences_a_result_that_holds_a_fence(store):
    chat_id = store.create_chat("alice", "t")
    store.append_message("alice", chat_id, "tool", "```\ncode\n```", meta={"name": "run"})
    assert "````\n```\ncode\n```\n````" in to_markdown(store.get_chat("alice", chat_id))


# ---- bad files: a message, nothing stored --------------------------------------------------------

BAD_FILES = {
    "not JSON": (b'{"internal": [["hi", "there"]', "not valid JSON"),
    "not text": (b"\xff\xfe\x00bad", "not text (UTF-8)"),
    "a list": (b'[["hi", "there"]]', "not a TGW chat history"),
    "no internal": (b'{"visible": [["hi", "there"]]}', 'no "internal" list'),
    "a row of three": (b'{"internal": [["a", "b", "c"]]}', 'Entry 1 of "internal" is not a'),
    "a row that is text": (b'{"internal": [["a", "b"], "c"]}', 'Entry 2 of "internal" is not a'),
    "a number for text": (b'{"internal": [["a", 5]]}', 'Entry 1 of "internal" holds something other than text'),
    "null for text": (b'{"internal": [[null, "b"]]}', "holds something other than text"),
    "metadata not an object": (b'{"internal": [["a", "b"]], "metadata": [1]}', '"metadata" should be an object'),
    "a bad tool step": (b'{"internal": [["a", "b"]], "metadata": {"assistant_0": {"tool_sequence": [{"x": 1}]}}}',
                        "neither tool calls nor a tool's result"),
    "tool arguments not JSON": (
        b'{"internal": [["a", "b"]], "metadata": {"assistant_0": {"tool_sequence": '
        b'[{"tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{oops"}}]}]}}}',
        "arguments in the metadata"),
    "no messages": (b'{"internal": [], "visible": []}', "no messages"),
    "deeply nested": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
}


@pytest.mark.parametrize("kind", BAD_FILES)
def test_a_bad_file_is_refused_with_a_message_and_nothing_is_stored(store, kind):
    data, message = BAD_FILES[kind]
    before = store.list_chats("alice")
    with pytest.raises(ChatImportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_tgw_chat(store, "alice", data, "bad.json")
    assert store.list_chats("alice") == before
    assert store.usage("alice").chats == len(before)


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(store):
    data = json.dumps({"internal": [["x" * 2000, "y"]]}).encode()
    with pytest.raises(ChatImportError, match="may be at most"):
        import_tgw_chat(store, "alice", data, "big.json", max_bytes=1000)
    assert store.list_chats("alice") == []


def test_a_message_longer_than_the_store_takes_is_refused(store):
    data = json.dumps({"internal": [["x" * (MAX_MESSAGE_CHARS + 1), "y"]]}).encode()
    with pytest.raises(ChatImportError, match="characters long"):
        import_tgw_chat(store, "alice", data, "long.json", max_bytes=2 * MAX_MESSAGE_CHARS)
    assert store.list_chats("alice") == []


# ---- the importer's caps -----------------------------------------------------------------------

def test_an_import_over_the_chat_cap_gets_the_caps_message_and_stores_nothing(tmp_path):
    with HistoryStore(tmp_path, Limits(max_chats_per_user=1)) as store:
        store.create_chat("alice", "the only one")
        with pytest.raises(TooManyChats, match="delete some in the chat list"):
            import_tgw_chat(store, "alice", FIXTURE.read_bytes(), "x.json")
        assert [c.title for c in store.list_chats("alice")] == ["the only one"]
        assert import_tgw_chat(store, "bob", FIXTURE.read_bytes(), "x.json")     # bob has room


def test_an_import_over_the_stored_characters_cap_stores_nothing(tmp_path):
    with HistoryStore(tmp_path, Limits(max_stored_chars_per_user=100)) as store:
        with pytest.raises(StorageFull, match="over the limit of 100"):
            import_tgw_chat(store, "alice", FIXTURE.read_bytes(), "x.json")
        assert store.list_chats("alice") == []
        assert store.usage("alice").chars == 0


class FailingStore(HistoryStore):
    """The real store whose disk fills up after a few messages of an import."""

    def __init__(self, folder, fail_at: int):
        super().__init__(folder)
        self.appends, self.fail_at = 0, fail_at

    def append_message(self, *args, **kwargs):
        self.appends += 1
        if self.appends == self.fail_at:
            raise DiskFull("The server's disk is full, so this was not saved.")
        return super().append_message(*args, **kwargs)


def test_a_failure_half_way_through_leaves_no_half_chat(tmp_path):
    with FailingStore(tmp_path, fail_at=3) as store:
        with pytest.raises(DiskFull):
            import_tgw_chat(store, "alice", FIXTURE.read_bytes(), "x.json")
        assert store.list_chats("alice") == []
        assert store.usage("alice") == store.usage("nobody")
