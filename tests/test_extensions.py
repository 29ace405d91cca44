"""Extensions on the real model: each hook at its call point with text-generation-webui's
arguments, a script written to TGW's documentation, misbehaving scripts that must not
break a chat, and two people using one extension."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from modules.chat_modes import Character
from modules.chat_service import ChatService, ChatSettings
from modules.chat_session import SessionControl
from modules.extension_hooks import HOOKS, hooks_markdown
from modules.extension_params import CURRENT_OWNER
from modules.extensions import ExtensionRegistry, registry_from_flags
from modules.front_door import FrontDoor
from modules.history_store import HistoryStore
from modules.limits import Limits
from modules.params import GenerationParams
from modules.roles import Identity

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "extensions"
GREEDY = GenerationParams(do_sample=False, max_new_tokens=24)
FRANCE = "Tell me the capital of France."


def person(name: str) -> Identity:
    return Identity(owner=name, user=name, address="127.0.0.1", is_admin=False)


def run(updates):
    last, notices = None, []
    for last in updates:
        notices += last.notices
    return last, notices


def make_registry(*names, timeout: float = 10.0, settings: dict | None = None) -> ExtensionRegistry:
    registry = ExtensionRegistry([FIXTURES, ROOT / "extensions"], settings=settings, timeout=timeout)
    messages = registry.enable(list(names))
    assert all(m.endswith(" is on.") for m in messages), messages
    return registry


@pytest.fixture
def chat(scheduler, tmp_path):
    """Builds a ChatService whose front door has the given registry."""
    stores = []

    def make(registry: ExtensionRegistry) -> ChatService:
        store = HistoryStore(tmp_path / f"chats{len(stores)}")
        stores.append(store)
        return ChatService(FrontDoor(scheduler, Limits(), extensions=registry), store)
    yield make
    for store in stores:
        store.close()


def settings(mode: str = "instruct", **changes) -> ChatSettings:
    return ChatSettings(GREEDY.replace(**changes) if changes else GREEDY, mode=mode,
                        character=Character("Assistant", "You are a helpful assistant."))


def calls(module, name: str) -> list[dict]:
    return [args for hook, args in module.CALLS if hook == name]


# ---- each hook at its point -------------------------------------------------------------------
def test_every_chat_hook_is_called_with_tgw_arguments_and_its_value_is_used(chat):
    registry = make_registry("recorder")
    recorder = registry.get("recorder").module
    service = chat(registry)
    update, notices = run(service.send(person("alice"), None, FRANCE, settings("chat"), SessionControl()))
    assert update.done and update.error is None, (update, notices)

    order = [hook for hook, _ in recorder.CALLS if hook != "custom_tokenized_length"]
    assert order == ["setup", "state_modifier", "chat_input_modifier", "input_modifier", "history_modifier",
                     "bot_prefix_modifier", "tokenizer_modifier", "output_modifier"]
    state = calls(recorder, "state_modifier")[0]
    for key in ("temperature", "top_p", "min_p", "repetition_penalty", "max_new_tokens", "mode", "name1",
                "name2", "context", "history", "stream", "custom_stopping_strings"):
        assert key in state["keys"]
    assert state["mode"] == "chat" and state["max_new_tokens"] == 24
    assert calls(recorder, "chat_input_modifier") == [{"text": FRANCE, "visible_text": FRANCE}]
    assert calls(recorder, "input_modifier")[0] == {"string": FRANCE + " Answer in French.", "is_chat": True,
                                                    "tag": "default-tag"}
    history = calls(recorder, "history_modifier")[0]["history"]
    assert history["internal"][-1] == [FRANCE + " Answer in French.", ""]     # TGW's row shape
    assert history["visible"][-1] == [FRANCE + " (seen)", ""]
    assert calls(recorder, "bot_prefix_modifier") == [{"string": ""}]
    tokens = calls(recorder, "tokenizer_modifier")[0]
    assert tokens["prompt"].endswith("Sure! The answer is") and "Answer in French." in tokens["prompt"]
    assert tokens["shape"][0] == 1 and tokens["embeds"] is None
    assert calls(recorder, "custom_tokenized_length")          # used to fit the chat in the context

    stored = service.store.get_chat("alice", update.chat_id).messages
    assert stored[0].content == FRANCE + " (seen)"                       # visible_text is what is kept
    assert stored[0].meta["internal"] == FRANCE + " Answer in French."   # the model's text beside it
    assert stored[1].content.startswith("<<default-tag>> ")               # output_modifier's value
    assert stored[1].meta["tokens"] <= 5                                  # state_modifier's max_new_tokens
    assert calls(recorder, "output_modifier")[0]["is_chat"] is True


def test_default_and_notebook_generations_go_through_the_text_hooks(scheduler):
    registry = make_registry("recorder")
    recorder = registry.get("recorder").module
    door = FrontDoor(scheduler, Limits(), extensions=registry)
    update, _ = run(door.stream_completion(person("bob"), "The capital of France is", GREEDY))
    assert update.finished is not None and update.finished.ok
    assert calls(recorder, "input_modifier")[-1]["is_chat"] is False
    assert calls(recorder, "output_modifier")[-1]["is_chat"] is False
    assert update.text.startswith("<<default-tag>> ") and update.finished.n_tokens <= 5


def test_an_old_one_argument_hook_still_works(scheduler, tmp_path):
    folder = tmp_path / "exts" / "old_style"
    folder.mkdir(parents=True)
    (folder / "script.py").write_text("def output_modifier(string):\n    return string.upper()\n\n"
                                      "def input_modifier(string):\n    return string\n")
    registry = ExtensionRegistry([tmp_path / "exts"])
    registry.enable(["old_style"])
    door = FrontDoor(scheduler, Limits(), extensions=registry)
    update, _ = run(door.stream_completion(person("carol"), "The capital of France is", GREEDY))
    assert update.text == update.text.upper() and "PARIS" in update.text


def test_custom_generate_reply_writes_the_reply_and_stop_strings_apply(chat):
    registry = make_registry("writer")
    service = chat(registry)
    update, _ = run(service.send(person("dora"), None, FRANCE, settings("chat"), SessionControl()))
    assert update.messages[-1]["content"] == "Written by the writer."      # cut at "\nYou:"
    seen = registry.get("writer").module.SEEN[-1]
    assert seen["is_chat"] is True and FRANCE in seen["question"]


# ---- a script written for text-generation-webui -----------------------------------------------
def test_a_script_written_to_tgws_documentation_loads_and_works(chat):
    registry = make_registry("tgw_doc_example")
    row = next(r for r in registry.rows() if r.name == "tgw_doc_example")
    assert row.display_name == "Example Extension" and row.status == "ok"
    assert any("logits_processor_modifier is not applied" in note for note in row.notes)
    service = chat(registry)
    update, notices = run(service.send(person("erin"), None, FRANCE, settings("instruct"), SessionControl()))
    reply = update.messages[-1]["content"]
    assert "Paris" in reply and reply.endswith(" [tgw-example]"), (reply, notices)
    assert not [n for n in notices if "failed" in n]


def test_the_shipped_extensions_load_cleanly():
    registry = ExtensionRegistry([ROOT / "extensions"])
    assert {"example", "word_filter", "reply_guard"} <= set(registry.available())
    messages = registry.enable(["example", "word_filter", "reply_guard"])
    assert all(m.endswith(" is on.") for m in messages), messages
    assert {r.name: r.status for r in registry.rows()} == {"example": "ok", "word_filter": "ok",
                                                            "reply_guard": "ok"}
    assert set(HOOKS) - {"custom_generate_reply"} <= registry.get("example").hooks


def test_the_word_filter_hides_words_both_ways_and_the_guard_caps_replies(chat):
    registry = make_registry("word_filter", "reply_guard",
                             settings={"word_filter-words": "Paris, France", "reply_guard-max_tokens": 6})
    service = chat(registry)
    update, _ = run(service.send(person("finn"), None, FRANCE + " Mail me at finn@example.org.",
                                 settings("instruct", max_new_tokens=64), SessionControl()))
    stored = service.store.get_chat("finn", update.chat_id).messages
    assert stored[0].content == "Tell me the capital of [redacted]. Mail me at [redacted]."
    assert "Paris" not in stored[1].content and stored[1].meta["tokens"] <= 6
    assert "long-reply guard ended this reply at 6 tokens" in stored[1].content


# ---- containment -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["misbehaving", "wrong_types"])
def test_a_broken_extension_leaves_the_chat_working(chat, name, caplog):
    registry = make_registry(name)
    service = chat(registry)
    who = person(f"gina-{name}")
    update, notices = run(service.send(who, None, FRANCE, settings("chat"), SessionControl()))
    assert update.done and update.error is None and "Paris" in update.messages[-1]["content"], (update, notices)
    told = [n for n in notices if f"'{name}'" in n]
    assert told and all("this reply was made without it" in n for n in told)
    assert len(told) == len({n.split(" failed in ")[1].split(" ")[0] for n in told})   # once per hook
    assert next(r for r in registry.rows() if r.name == name).status == "failing"
    assert any(name in record.getMessage() for record in caplog.records if record.levelname == "ERROR")
    again, notices = run(service.send(who, update.chat_id, "And of Germany?", settings("chat"), SessionControl()))
    assert again.done and again.error is None and not [n for n in notices if f"'{name}'" in n]  # told once


def test_a_hook_that_hangs_is_abandoned_after_the_time_limit(chat):
    registry = make_registry("sleeper", timeout=1.0)
    service = chat(registry)
    started = time.monotonic()
    update, notices = run(service.send(person("hana"), None, FRANCE, settings("instruct"), SessionControl()))
    assert "Paris" in update.messages[-1]["content"] and update.error is None
    assert any("did not return within 1 s" in n for n in notices)
    update, _ = run(service.send(person("ivan"), None, FRANCE, settings("instruct"), SessionControl()))
    assert "Paris" in update.messages[-1]["content"]
    assert time.monotonic() - started < 60          # two replies, not two 600 s sleeps
    row = next(r for r in registry.rows() if r.name == "sleeper")
    assert row.status == "failing" and any("still running" in n for n in row.notes)


def test_scripts_that_cannot_load_are_reported_and_never_installed():
    registry = ExtensionRegistry([FIXTURES])
    messages = registry.enable(["needs_packages", "broken_import", "no_such_extension"])
    assert len(messages) == 3 and not registry.enabled()
    rows = {r.name: r for r in registry.rows()}
    assert rows["needs_packages"].status == "not loaded"
    assert any("surely-not-installed-package-xyz>=1.0" in n for n in rows["needs_packages"].notes)
    assert not any("pyyaml" in n for n in rows["needs_packages"].notes)
    assert "SystemExit" in rows["broken_import"].notes[0]
    assert "no_such_extension" in messages[2]
    assert "surely_not_installed_package_xyz" not in sys.modules


# ---- per person ----------------------------------------------------------------------------------
def test_two_people_with_the_same_extension_keep_their_own_settings(chat):
    registry = make_registry("recorder", settings={"recorder-tag": "from-settings"})
    params = registry.get("recorder").module.params
    token = CURRENT_OWNER.set("alice")
    try:
        params["tag"] = "alice-tag"            # what alice's control in the Extensions tab does
    finally:
        CURRENT_OWNER.reset(token)
    assert params.for_owner("alice")["tag"] == "alice-tag"
    assert params.for_owner("bob")["tag"] == "from-settings" and params["tag"] == "from-settings"
    service = chat(registry)
    alice, _ = run(service.send(person("alice"), None, FRANCE, settings(), SessionControl()))
    bob, _ = run(service.send(person("bob"), None, FRANCE, settings(), SessionControl()))
    assert alice.messages[-1]["content"].startswith("<<alice-tag>>")
    assert bob.messages[-1]["content"].startswith("<<from-settings>>")


def test_a_page_event_changes_only_its_own_persons_copy():
    """An extension's own Gradio handler runs with Gradio's request in context; the page
    was tied to its owner when it loaded."""
    from types import SimpleNamespace

    from gradio.context import LocalContext
    registry = make_registry("recorder")
    registry.sessions.bind("session-of-alice", "browser:alice-key")
    params = registry.get("recorder").module.params
    token = LocalContext.request.set(SimpleNamespace(username=None, session_hash="session-of-alice"))
    try:
        params.update({"tag": "changed-on-alices-page"})
    finally:
        LocalContext.request.reset(token)
    assert params.for_owner("browser:alice-key")["tag"] == "changed-on-alices-page"
    assert params.for_owner("browser:bob-key")["tag"] == "default-tag"


# ---- start-up and documentation ------------------------------------------------------------------
def test_flags_and_the_settings_file_enable_extensions_in_order(tmp_path):
    registry, messages = registry_from_flags(ROOT, ["reply_guard"], {"default_extensions": ["word_filter",
                                                                                            "reply_guard"],
                                                                     "word_filter-replacement": "***"})
    assert registry.enabled_names() == ["reply_guard", "word_filter"] and messages == []
    assert registry.get("word_filter").module.params["replacement"] == "***"
    _, messages = registry_from_flags(ROOT, ["nope"], {"default_extensions": 5})
    assert any("default_extensions" in m for m in messages) and any("nope" in m for m in messages)


def test_admins_switching_keeps_the_order_and_says_when_a_restart_is_needed():
    registry = make_registry("recorder")
    registry.page_built = True
    messages = registry.set_enabled(["example", "recorder"])
    assert registry.enabled_names() == ["recorder", "example"]
    assert any("restart the server to show them" in m for m in messages)
    registry.set_enabled(["example"])
    assert registry.enabled_names() == ["example"]


def test_docs_list_every_hook_as_the_spec_declares_it():
    docs = (ROOT / "docs" / "extensions.md").read_text(encoding="utf-8")
    assert hooks_markdown() in docs, "regenerate the table: python -m modules.extension_hooks"
