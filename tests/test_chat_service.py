"""Chat actions on stored chats, on the real model."""
from __future__ import annotations

import pytest

from modules.chat_modes import Character, prompt_messages
from modules.chat_service import ChatService, ChatSettings
from modules.chat_session import SessionControl
from modules.history_store import ChatNotFound, HistoryStore, StorageFull, TooManyChats
from modules.params import GenerationParams
from modules.front_door import FrontDoor
from modules.limits import Limits
from modules.request_limits import InputTooLong, LimitExceeded
from tests.chat_helpers import person, run

GREEDY = GenerationParams(do_sample=False, max_new_tokens=24)


@pytest.fixture
def service(scheduler, tmp_path):
    store = HistoryStore(tmp_path)
    yield ChatService(FrontDoor(scheduler, Limits(max_requests_per_user=2, max_input_chars=2000)), store)
    store.close()


def instruct(**changes) -> ChatSettings:
    return ChatSettings(GREEDY.replace(**changes) if changes else GREEDY, mode="instruct")


def test_send_stores_both_messages_and_titles_the_chat(service):
    update = run(service.send(person("alice"), None, "Tell me the capital of France.", instruct(), SessionControl()))
    assert update.done and "Paris" in update.messages[-1]["content"]
    chat = service.store.get_chat("alice", update.chat_id)
    assert [m.role for m in chat.messages] == ["user", "assistant"]
    assert chat.messages[-1].status == "done" and chat.messages[-1].meta["tokens"] > 0
    assert chat.title == "Tell me the capital of France."


def test_regenerate_replaces_the_last_reply(service):
    first = run(service.send(person("alice"), None, "Write a word.", instruct(do_sample=True, seed=1,
                                                                      temperature=1.5), SessionControl()))
    chat_id = first.chat_id
    second = run(service.regenerate(person("alice"), chat_id, instruct(do_sample=True, seed=2, temperature=1.5),
                                    SessionControl()))
    chat = service.store.get_chat("alice", chat_id)
    assert [m.role for m in chat.messages] == ["user", "assistant"]
    assert chat.messages[-1].content == second.messages[-1]["content"]


def test_continue_extends_the_same_reply(service):
    first = run(service.send(person("alice"), None, "Write a long story about a dragon.",
                             instruct(max_new_tokens=10, ban_eos_token=True), SessionControl()))
    before = first.messages[-1]["content"]
    after = run(service.continue_reply(person("alice"), first.chat_id, instruct(max_new_tokens=10, ban_eos_token=True),
                                       SessionControl())).messages[-1]["content"]
    assert after.startswith(before) and len(after) > len(before)
    assert len(service.store.get_chat("alice", first.chat_id).messages) == 2


def test_impersonate_writes_a_draft_and_stores_nothing(service):
    first = run(service.send(person("alice"), None, "Hello!", instruct(), SessionControl()))
    update = run(service.impersonate(person("alice"), first.chat_id, "I would like", instruct(max_new_tokens=8),
                                     SessionControl()))
    assert update.draft.startswith("I would like") and len(update.draft) > len("I would like")
    assert len(service.store.get_chat("alice", first.chat_id).messages) == 2


def test_remove_last_gives_back_the_users_text(service):
    first = run(service.send(person("alice"), None, "Tell me the capital of France.", instruct(), SessionControl()))
    assert service.remove_last("alice", first.chat_id) == "Tell me the capital of France."
    assert service.store.get_chat("alice", first.chat_id).messages == []


def test_edit_changes_the_stored_message(service):
    first = run(service.send(person("alice"), None, "Tell me the capital of France.", instruct(), SessionControl()))
    service.edit_message("alice", first.chat_id, 1, "Paris, of course.")
    assert service.messages("alice", first.chat_id)[1]["content"] == "Paris, of course."


def test_stop_keeps_the_partial_reply_marked_stopped(service):
    control = SessionControl()
    updates = service.send(person("alice"), None, "Write a long story about a dragon.",
                           instruct(max_new_tokens=300, ban_eos_token=True), control)
    for update in updates:
        if len(update.messages[-1]["content"]) > 20:
            control.stop()
    chat = service.store.get_chat("alice", update.chat_id)
    assert chat.messages[-1].status == "stopped" and len(chat.messages[-1].content) > 20


def test_closing_the_stream_cancels_and_keeps_the_text(service, scheduler):
    updates = service.send(person("alice"), None, "Write a long story about a dragon.",
                           instruct(max_new_tokens=300, ban_eos_token=True), SessionControl())
    for update in updates:
        if len(update.messages[-1]["content"]) > 10:
            break
    updates.close()       # what happens when the browser goes away
    chat = service.store.get_chat("alice", update.chat_id)
    assert chat.messages[-1].status == "stopped"
    assert service.door.active(person("alice")) == 0


def test_another_users_chat_is_invisible(service):
    alice = run(service.send(person("alice"), None, "Tell me the capital of France.", instruct(), SessionControl()))
    assert service.store.list_chats("bob") == []
    with pytest.raises(ChatNotFound):
        service.messages("bob", alice.chat_id)
    with pytest.raises(ChatNotFound):
        run(service.send(person("bob"), alice.chat_id, "Let me in", instruct(), SessionControl()))
    assert len(service.store.get_chat("alice", alice.chat_id).messages) == 2


def test_oversized_message_is_refused_and_nothing_stored(service):
    with pytest.raises(InputTooLong):
        run(service.send(person("alice"), None, "x" * 3000, instruct(), SessionControl()))
    assert service.store.list_chats("alice") == []


def test_long_conversation_is_trimmed_keeping_the_system_prompt(service, llama_backend):
    character = Character("Guide", "You are a helpful guide. Always answer in English.", "")
    settings = ChatSettings(GREEDY, mode="chat", character=character)
    chat_id = service.new_chat("alice", settings)
    filler = "This is an old message about nothing in particular. " * 40
    for _ in range(12):
        service.store.append_message("alice", chat_id, "user", filler)
        service.store.append_message("alice", chat_id, "assistant", filler)
    updates = list(service.send(person("alice"), chat_id, "Tell me the capital of France.", settings, SessionControl()))
    notices = [n for u in updates for n in u.notices]
    assert any("oldest" in n for n in notices)
    assert "Paris" in updates[-1].messages[-1]["content"]


def test_chat_modes_shape_the_prompt():
    history = [{"role": "user", "content": "Hi"}]
    character = Character("Ada", "{{char}} is a mathematician talking to {{user}}.", "Hello!")
    chat = prompt_messages("chat", history, character)
    assert chat.messages[0] == {"role": "system", "content": "Ada is a mathematician talking to You."}
    assert "\nYou:" in chat.stop_strings
    instruct_mode = prompt_messages("instruct", history, character)
    assert instruct_mode.messages == history
    chat_instruct = prompt_messages("chat-instruct", history, character)
    assert len(chat_instruct.messages) == 1 and 'character "Ada"' in chat_instruct.messages[0]["content"]
    assert "You: Hi" in chat_instruct.messages[0]["content"]


def test_greeting_opens_a_new_chat_in_chat_mode(service):
    settings = ChatSettings(GREEDY, mode="chat", character=Character("Ada", "", "Hello {{user}}!"))
    chat_id = service.new_chat("alice", settings)
    assert service.messages("alice", chat_id) == [{"role": "assistant", "content": "Hello You!"}]


# ---- storage limits ------------------------------------------------------------------------------
@pytest.fixture
def limited(scheduler, tmp_path):
    """A service whose store allows 2 chats and 120 characters per person."""
    store = HistoryStore(tmp_path, Limits(max_chats_per_user=2, max_stored_chars_per_user=120))
    yield ChatService(FrontDoor(scheduler, Limits(max_requests_per_user=2, max_input_chars=2000)), store)
    store.close()


def test_a_new_chat_past_the_chat_limit_is_refused_and_nothing_stored(limited):
    first = run(limited.send(person("alice"), None, "Hi", instruct(max_new_tokens=4), SessionControl()))
    limited.new_chat("alice", instruct())
    before = [(c.id, c.title) for c in limited.store.list_chats("alice")]
    with pytest.raises(TooManyChats) as refused:
        run(limited.send(person("alice"), None, "A third chat", instruct(), SessionControl()))
    assert isinstance(refused.value, LimitExceeded)
    assert str(refused.value) == "You have 2 stored chats, the limit: delete some in the chat list to make room."
    assert [(c.id, c.title) for c in limited.store.list_chats("alice")] == before
    # The chats already there still take messages.
    run(limited.send(person("alice"), first.chat_id, "Again", instruct(max_new_tokens=4), SessionControl()))
    assert [m.content for m in limited.store.get_chat("alice", first.chat_id).messages][2] == "Again"


def test_a_message_past_the_character_limit_is_refused_whole(limited):
    chat_id = limited.new_chat("alice", instruct())
    limited.store.append_message("alice", chat_id, "user", "x" * 100)
    with pytest.raises(StorageFull) as refused:
        run(limited.send(person("alice"), None, "Tell me the capital of France.", instruct(), SessionControl()))
    assert str(refused.value) == ("You have 100 stored characters and this needs 30 more, over the limit "
                                  "of 120: delete some chats in the chat list to make room.")
    assert [c.id for c in limited.store.list_chats("alice")] == [chat_id]      # no empty chat left
    with pytest.raises(StorageFull):
        run(limited.send(person("alice"), chat_id, "Tell me the capital of France.", instruct(), SessionControl()))
    assert [m.content for m in limited.store.get_chat("alice", chat_id).messages] == ["x" * 100]
    assert limited.door.active(person("alice")) == 0


def test_a_reply_reaching_the_character_limit_stops_and_is_kept(limited):
    question = "Write a long story about a dragon."
    control = SessionControl()
    updates = list(limited.send(person("alice"), None, question,
                                instruct(max_new_tokens=300, ban_eos_token=True), control))
    last = updates[-1]
    assert last.done and "reached the limit of 120 characters" in last.error
    assert "what was written is kept" in last.error
    chat = limited.store.get_chat("alice", last.chat_id)
    reply = chat.messages[-1]
    assert chat.messages[0].content == question
    assert reply.status == "stopped" and reply.meta["finish_reason"] == "storage_limit"
    assert len(reply.content) == 120 - len(question)                # cut where the limit fell
    assert any(u.messages[-1]["content"].startswith(reply.content) for u in updates[:-1])
    assert last.messages[-1]["content"] == reply.content            # the view shows what is kept
    assert limited.store.usage("alice").chars == 120
    assert limited.door.active(person("alice")) == 0                # the request is over
    *_, finished = control.request.events(timeout=30)               # cancelled, unless it had ended
    assert finished.reason in ("cancelled", "length")
    with pytest.raises(StorageFull, match="You have 120 stored characters, the limit"):
        run(limited.send(person("alice"), last.chat_id, "More?", instruct(), SessionControl()))
