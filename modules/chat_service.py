"""Chat actions (send, regenerate, continue, impersonate, remove last, edit) on stored chats.

The history store is the source of truth: every finished message is committed when it
finishes, and a reply being written is saved as it grows (status "streaming"), so a
server killed mid-reply comes back with that reply kept and marked "interrupted".
Each action is a generator of ChatUpdate for the UI; nothing here knows about Gradio.
Actions take the Identity of who asks: its owner scopes every store call, and replies
enter the engine through the front door under that person's limits.
At the owner's storage limits nothing is half-stored: a message that does not fit is refused
before anything else is written, and a reply that reaches the limit stops there and is kept.
A chat's tools (modules/chat_tools.py) are offered to the model; a reply that calls them is
stored, the calls run, their results are stored, and the model goes on from them
(modules/chat_tool_turns.py says how each is stored and read).
Regenerate and an edit of an earlier message keep what they replace, as versions
(modules/chat_tree.py): the view and the prompt follow the path on screen. Files attached to
a message (modules/attachments.py) show as chips under it and reach the prompt as text.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Iterator

from modules.attachments import Attachment, prompt_text, shown_text, without_chips
from modules.chat_display import ReplyThinking, chat_entries, edited_content, template_variables
from modules.chat_modes import Character, prompt_messages
from modules.chat_prompt import FALLBACK_TEMPLATE
from modules.chat_session import SessionControl
from modules.chat_tool_turns import (ReplyWatch, ToolTurns, plan_turns, stored_calls,
                                     template_messages)
from modules.chat_tools import ToolCatalog
from modules.extension_chat import ChatHooks, model_text
from modules.front_door import FrontDoor
from modules.chat_tree import Versions, versions_of
from modules.history_store import Chat, ChatNotFound, HistoryStore, Message, MessageNotFound, StorageLimitReached
from modules.params import GenerationParams
from modules.roles import Identity
from modules.tool_calls import HERMES, ToolCallStream

SAVE_INTERVAL = 1.0           # seconds between saves of a reply being written
TITLE_LENGTH = 60
STATUS_MARKS = {"interrupted": "\n\n*(interrupted: the server stopped while writing this)*",
                "stopped": "", "error": ""}
MAX_TOOL_ROUNDS = 4           # calls answered per reply; the model's next calls stay text


@dataclass
class ChatSettings:
    params: GenerationParams
    template: str | None = None
    mode: str = "chat"
    character: Character = field(default_factory=Character)
    character_file: str = ""        # the character's file name, stored with the chat to reopen it
    tools: list[str] = field(default_factory=list)     # tool file names chosen for the chat
    tool_choice: str = "auto"       # "required": the reply begins with a call
    enable_thinking: bool = True    # passed to the template (modules/reasoning.py)


@dataclass
class ChatUpdate:
    chat_id: str
    messages: list[dict]            # what the chat view shows
    status: str = ""
    notices: list[str] = field(default_factory=list)
    error: str | None = None
    done: bool = False
    draft: str | None = None        # impersonate: text for the input box


@dataclass(frozen=True)
class VersionsShown:
    """The versions the Chat tab lets a person move between: of the last reply, and of the
    last message of theirs that an edit made into branches (None: it has only one)."""
    reply: Versions | None = None
    message: Versions | None = None
    message_text: str = ""


def display_messages(chat: Chat | None, running: frozenset | set = frozenset()) -> list[dict]:
    if chat is None:
        return []
    return [shown for shown, _ in chat_entries(_with_chips(chat.messages), STATUS_MARKS, running)]


def _with_chips(messages: list[Message]) -> list[Message]:
    """The messages as the view shows them: a message's files as chips under its text."""
    return [dataclasses.replace(m, content=shown_text(m.content, m.attachments)) if m.attachments else m
            for m in messages]


class ChatService:
    def __init__(self, door: FrontDoor, store: HistoryStore, tools: ToolCatalog | None = None):
        self.door = door
        self.store = store
        self.tools = tools or ToolCatalog()

    # ---- chats -----------------------------------------------------------------------------
    def new_chat(self, owner: str, settings: ChatSettings, title: str = "New chat") -> str:
        greeting = settings.character.greeting.strip()
        greeting = settings.character.fill(greeting) if greeting and settings.mode != "instruct" else ""
        self.store.check_room(owner, len(greeting))        # no chat left behind without it
        chat_id = self.store.create_chat(owner, title, mode=settings.mode,
                                         character=settings.character_file)
        if settings.tools or settings.tool_choice != "auto":
            self.store.set_chat_settings(owner, chat_id, tools=settings.tools, tool_choice=settings.tool_choice)
        if greeting:
            self.store.append_message(owner, chat_id, "assistant", greeting)
        return chat_id

    def messages(self, owner: str, chat_id: str | None, running=frozenset()) -> list[dict]:
        """What the chat view shows; `running`: ids of tool calls shown as still running."""
        return display_messages(self.store.get_chat(owner, chat_id), running) if chat_id else []

    # ---- actions -------------------------------------------------------------------------------
    def check_send(self, owner: str, chat_id: str | None, text: str, attachments: list[Attachment] = ()) -> None:
        """Raises what send() would refuse before storing anything (too long, no room, too
        many chats), so the UI can leave the text with the person instead."""
        self.door.limits_check_input(text)
        # before a new chat or a title is stored for it
        self.store.check_room(owner, len(text) + sum(len(a.text) for a in attachments))
        if chat_id:
            self.store.get_chat(owner, chat_id)     # ChatNotFound: deleted in another tab
        else:
            self.store.check_new_chat(owner)

    def send(self, who: Identity, chat_id: str | None, text: str, settings: ChatSettings,
             control: SessionControl, attachments: list[Attachment] = ()) -> Iterator[ChatUpdate]:
        owner = who.owner
        self.check_send(owner, chat_id, text, attachments)
        hooks = ChatHooks(self.door, who, settings, lambda: self._history(owner, chat_id))
        text, meta = hooks.user_message(text)      # extensions' chat_input_modifier, input_modifier
        title = _title(text or (attachments[0].name if attachments else ""))
        if not chat_id:
            chat_id = self.new_chat(owner, settings, title=title)
        elif self._is_untitled(owner, chat_id):
            self.store.rename_chat(owner, chat_id, title)
        self.store.append_message(owner, chat_id, "user", text, meta=meta, attachments=attachments)
        yield from self._reply(who, chat_id, settings, control, hooks=hooks)

    def regenerate(self, who: Identity, chat_id, settings, control) -> Iterator[ChatUpdate]:
        """The reply to the last message again, as a new version of it (with its tool calls
        and results, if any); the earlier versions are kept."""
        owner = who.owner
        path = self.store.get_chat(owner, chat_id).messages
        users = [m for m in path if m.role == "user"]
        anchor = users[-1] if users else (path[-2] if len(path) > 1 and path[-1].role == "assistant" else None)
        if anchor is None:
            yield from self._reply(who, chat_id, settings, control)
            return
        replaced = path[path.index(anchor) + 1] if path[-1] is not anchor else None
        self.store.end_path_at(owner, chat_id, anchor.id)       # the prompt ends at the anchor
        try:
            yield from self._reply(who, chat_id, settings, control)
        finally:
            if replaced is not None:
                self._show_again_if_nothing_new(owner, chat_id, anchor.id, replaced.id)

    def _show_again_if_nothing_new(self, owner, chat_id, anchor_id, replaced_id) -> None:
        """A regenerate refused before it wrote anything (no model, too many requests) leaves
        the reply it would have replaced on screen."""
        try:
            path = self.store.get_chat(owner, chat_id).messages
            if path and path[-1].id == anchor_id:
                self.store.show_message(owner, chat_id, replaced_id)
        except (ChatNotFound, MessageNotFound):
            pass                          # deleted in another tab meanwhile

    def continue_reply(self, who: Identity, chat_id, settings, control) -> Iterator[ChatUpdate]:
        chat = self.store.get_chat(who.owner, chat_id)
        last = chat.messages[-1] if chat.messages else None
        if last is None or last.role != "assistant" or last.meta.get("tool_calls"):
            yield from self._reply(who, chat_id, settings, control)
            return
        yield from self._reply(who, chat_id, settings, control, continue_message=chat.messages[-1])

    def impersonate(self, who: Identity, chat_id, draft: str, settings, control) -> Iterator[ChatUpdate]:
        """Writes the user's next message into the input box; nothing is stored."""
        owner = who.owner
        history = self._history(owner, chat_id) + [{"role": "user", "content": draft}]
        mode_prompt = prompt_messages(settings.mode, history, settings.character, impersonate=True)
        params = _with_stops(settings.params, mode_prompt.stop_strings)
        shown = self.messages(owner, chat_id)
        with self.door.admit(who, params, text=draft) as admission:
            admission.template_variables = template_variables(settings)   # the prompt the reply would get
            for update in admission.stream_chat(mode_prompt.messages, settings.template, control,
                                                continue_last=True):
                yield ChatUpdate(chat_id or "", shown, update.status, update.notices,
                                 _error(update), update.finished is not None, draft + update.text)

    def remove_last(self, owner: str, chat_id: str) -> str:
        """Removes the last exchange; returns the user's text so it can be edited and resent."""
        return self.take_last(owner, chat_id)[0]

    def take_last(self, owner: str, chat_id: str) -> tuple[str, list[Attachment]]:
        """Removes the last exchange on screen (the user's message with every version of its
        reply); returns the user's text and files. Other branches stay as they were."""
        path = self.store.get_chat(owner, chat_id).messages
        cut = len(path)
        while cut and path[cut - 1].role in ("assistant", "tool"):     # a reply and its tool calls
            cut -= 1
        taken: tuple[str, list[Attachment]] = ("", [])
        if cut and path[cut - 1].role == "user":
            cut -= 1
            taken = (path[cut].content, path[cut].attachments)
        if cut == len(path):
            return taken
        self.store.delete_message(owner, chat_id, path[cut].id)       # what follows goes with it
        self.store.end_path_at(owner, chat_id, path[cut - 1].id if cut else None)
        return taken

    def edit_message(self, owner: str, chat_id: str, index: int, text: str) -> bool:
        """index counts the messages the chat view shows. True: the edit made a new version
        of the user's message (see _edit_users_message), which awaits its reply."""
        stored = self.store.get_chat(owner, chat_id).messages
        shown = chat_entries(stored, STATUS_MARKS)
        if not 0 <= index < len(shown):
            raise IndexError("That message no longer exists.")
        if shown[index][1] is None:
            raise IndexError("A tool call and its result cannot be edited.")
        handled = self._edit_users_message(owner, chat_id, shown[index][1], text)
        if handled is not None:
            return handled
        self.door.limits_check_input(text)
        self.store.update_message(owner, chat_id, shown[index][1], content=edited_content(stored, shown[index], text),
                                  status="done")

    def _edit_users_message(self, owner: str, chat_id: str, message_id: int, text: str) -> bool | None:
        """A message of the user's that has a reply gets a new version with the text (a branch;
        the old one is kept): True. The last message is changed where it is: False. None: not
        the user's message. Its files go with it; the chips line the editor showed does not."""
        path = self.store.get_chat(owner, chat_id).messages
        message = next(m for m in path if m.id == message_id)
        if message.role != "user":
            return None
        text = without_chips(text, message.attachments)
        self.door.limits_check_input(text)
        if message is path[-1] or text == message.content:
            self.store.update_message(owner, chat_id, message.id, content=text, status="done")
            return False
        self.store.append_message(owner, chat_id, "user", text, meta=message.meta, parent=message.parent_id,
                                  attachments=message.attachments)
        return True

    # ---- versions --------------------------------------------------------------------------------
    def versions(self, owner: str, chat_id: str | None) -> VersionsShown:
        if not chat_id:
            return VersionsShown()
        chat = self.store.get_chat(owner, chat_id)
        path, versions = chat.messages, versions_of(chat.tree)
        users = [i for i, m in enumerate(path) if m.role == "user"]
        after = users[-1] + 1 if users else len(path) - 1
        reply = versions[path[after].id] if 0 <= after < len(path) and path[after].role != "user" else None
        branched = [versions[path[i].id] for i in users if versions[path[i].id].count > 1]
        message = branched[-1] if branched else None
        text = next(m.content for m in path if m.id == message.message_id) if message else ""
        return VersionsShown(reply if reply is not None and reply.count > 1 else None, message, text)

    def show_version(self, owner: str, chat_id: str, message_id: int, step: int) -> bool:
        """Puts the version `step` places from this message on screen; False past either end."""
        target = self.store.get_chat(owner, chat_id).versions(message_id).step(step)
        if target is None:
            return False
        self.store.show_message(owner, chat_id, target)
        return True

    # ---- the reply ---------------------------------------------------------------------------
    def _reply(self, who: Identity, chat_id, settings: ChatSettings, control, continue_message=None,
               hooks: ChatHooks | None = None):
        """The model's reply; when it calls the chat's tools, the calls run and the model
        goes on from their results, up to MAX_TOOL_ROUNDS times, all under one admission."""
        owner = who.owner
        self._remember_settings(owner, chat_id, settings)
        history = self._history(owner, chat_id)
        hooks = hooks or ChatHooks(self.door, who, settings, lambda: history)
        settings = hooks.settings                     # after extensions' state_modifier
        turns = self._tool_turns(settings, hooks)
        stops = prompt_messages(settings.mode, [], settings.character).stop_strings
        params = _with_stops(settings.params, stops)
        if turns.active and turns.style != HERMES:     # Llama's and Mistral's call markers are special tokens
            params = params.replace(skip_special_tokens=False)
        forced = turns.grammar if continue_message is None else ""
        with self.door.admit(who, params.replace(grammar_string=forced) if forced else params) as admission:
            admission.notices += turns.notices
            admission.template_variables = template_variables(settings)
            for round_number in range(MAX_TOOL_ROUNDS + 1):
                if round_number:
                    admission.replace_params(params)       # after the results the model is free
                written = yield from self._write(who, chat_id, settings, control, admission, hooks, turns,
                                                 continue_message if not round_number else None,
                                                 may_call=round_number < MAX_TOOL_ROUNDS, after_tools=round_number > 0)
                if written is None:
                    return
                yield from self._run_calls(owner, chat_id, turns, *written)

    def _write(self, who, chat_id, settings, control, admission, hooks, turns: ToolTurns, continue_message,
               *, may_call: bool, after_tools: bool):
        """One message of the reply, streamed and saved as it grows. Returns (its tool
        calls, its id, its last update) when it ends in calls to run, else None."""
        owner = who.owner
        history = hooks.prompt_history(self._history(owner, chat_id, turns.native))    # history_modifier
        mode_prompt = prompt_messages(settings.mode, history, settings.character,
                                      continue_last=continue_message is not None)
        mode_prompt = dataclasses.replace(mode_prompt, messages=turns.with_instructions(mode_prompt.messages))
        prefix = continue_message.content if continue_message else ""
        if continue_message is None:
            reply_id = self.store.append_message(owner, chat_id, "assistant", "", status="streaming")
        else:
            reply_id = continue_message.id
            self.store.update_message(owner, chat_id, reply_id, status="streaming")
        shown = self.messages(owner, chat_id)
        watch = ReplyWatch(turns.toolset.names) if turns.active and may_call else None
        thinking = ReplyThinking.for_reply(self.door, settings, continue_message)   # its reasoning, shown apart
        last_save, text, saved = time.monotonic(), prefix, False
        stream = hooks.stream(admission, mode_prompt, settings.template, control,
                              continue_last=continue_message is not None, tools=turns.template_tools())
        try:
            for update in thinking.follow(stream):
                text, calls = prefix + update.text, []        # as written, tool call markup and all
                shown_text = text if watch is None else prefix + watch.update(update.text)
                if update.finished is not None:
                    if watch is not None and update.finished.ok:
                        shown_text, calls = watch.finish()
                        text = shown_text = prefix + shown_text
                    text = shown_text = hooks.output(text, update)     # extensions' output_modifier
                thinking.show(shown, shown_text, update.finished)
                kept = len(text)
                if update.finished is not None:
                    kept = self._save_final(owner, chat_id, reply_id, text, update.finished,
                                            is_new=continue_message is None, calls=calls, after_tools=after_tools,
                                            extra_meta=thinking.meta())
                    saved = True
                    if not text or update.finished.reason == "error" and text == prefix:
                        shown = self.messages(owner, chat_id)
                elif time.monotonic() - last_save >= SAVE_INTERVAL:
                    last_save = time.monotonic()
                    kept = self.store.update_message(owner, chat_id, reply_id, content=text, cut_to_fit=True)
                if kept < len(text):           # the owner's storage limit cut it
                    saved = True
                    yield self._stopped_at_storage_limit(owner, chat_id, reply_id, update.notices)
                    return None                # closing the stream cancels the request
                if calls:
                    return calls, reply_id, update
                yield ChatUpdate(chat_id, shown, update.status, update.notices, _error(update),
                                 update.finished is not None)
        finally:
            stream.close()
            if not saved:      # the browser went away mid-reply: keep what was written
                self.store.update_message(owner, chat_id, reply_id, content=text, status="stopped",
                                          cut_to_fit=True)
        return None

    def _run_calls(self, owner, chat_id, turns: ToolTurns, calls, reply_id, update) -> Iterator[ChatUpdate]:
        """Runs the calls one by one, each result stored as a "tool" message as it comes."""
        notices = list(update.notices)
        waiting = {call.id for call in calls}
        for call in calls:
            yield ChatUpdate(chat_id, self.messages(owner, chat_id, running=waiting),
                             f"Running the tool {call.name}...", notices)
            notices = []
            result = turns.toolset.run(call)
            try:
                self.store.append_message(owner, chat_id, "tool", result.content,
                                          meta={"tool_call_id": call.id, "name": call.name, "ok": result.ok})
            except StorageLimitReached:
                yield self._stopped_at_storage_limit(owner, chat_id, reply_id, [])
                return
            waiting.discard(call.id)
        yield ChatUpdate(chat_id, self.messages(owner, chat_id), "The model reads the results...", notices)

    def _save_final(self, owner, chat_id, reply_id, text, finished, is_new: bool, calls=(),
                    after_tools: bool = False, extra_meta: dict | None = None) -> int:
        """Returns how much of `text` was stored (less when the storage limit cut it)."""
        if is_new and not text and not calls and (finished.reason == "error" or after_tools):
            self.store.delete_message(owner, chat_id, reply_id)    # leave no empty reply behind
            return 0
        meta = {"tokens": finished.n_tokens, "tokens_per_second": finished.tokens_per_second,
                "finish_reason": finished.reason}
        if calls:
            meta["tool_calls"] = stored_calls(calls)
        meta.update(extra_meta or {})
        return self.store.update_message(owner, chat_id, reply_id, content=text, cut_to_fit=True,
                                         status=_final_status(finished.reason), meta=meta)

    def _stopped_at_storage_limit(self, owner, chat_id, reply_id, notices) -> ChatUpdate:
        """The reply keeps what fitted under the owner's character limit, marked stopped."""
        self.store.update_message(owner, chat_id, reply_id, status="stopped",
                                  meta={"finish_reason": "storage_limit"})
        limit = self.store.limits.max_stored_chars_per_user
        message = (f"Your stored chats reached the limit of {limit:,} characters, so this reply stops "
                   "here; what was written is kept. Delete some chats in the chat list to make room.")
        return ChatUpdate(chat_id, self.messages(owner, chat_id), "Stopped at the storage limit.",
                          list(notices), message, done=True)

    def _history(self, owner, chat_id, native_tools: bool = False) -> list[dict]:
        """The stored messages as the template's; tool calls and results as the template
        takes them (native_tools) or as text (modules/chat_tool_turns.py)."""
        if not chat_id:
            return []
        stored = [m for m in self.store.get_chat(owner, chat_id).messages if m.role in ("user", "assistant", "tool")]
        return template_messages(stored, native_tools, lambda m: prompt_text(model_text(m), m.attachments))

    def _tool_turns(self, settings: ChatSettings, hooks: ChatHooks) -> ToolTurns:
        if not settings.tools:
            return ToolTurns()
        backend = self.door.scheduler.backend
        text_only = hooks.runner is not None and hooks.runner.has("history_modifier")
        return plan_turns(self.tools.toolset(settings.tools), settings.tool_choice,
                          settings.template or FALLBACK_TEMPLATE, settings.mode,
                          backend.info.loader if backend is not None else None, text_only)

    def _remember_settings(self, owner, chat_id, settings: ChatSettings) -> None:
        """The chat keeps the mode, character and tools it was last answered with (for reopening)."""
        chat = self.store.get_chat(owner, chat_id)
        if ((chat.mode, chat.character, chat.tools, chat.tool_choice)
                != (settings.mode, settings.character_file, list(settings.tools), settings.tool_choice)):
            self.store.set_chat_settings(owner, chat_id, mode=settings.mode, character=settings.character_file,
                                         tools=list(settings.tools), tool_choice=settings.tool_choice)

    def _is_untitled(self, owner, chat_id) -> bool:
        chat = self.store.get_chat(owner, chat_id)
        return chat.title == "New chat" and not any(m.role == "user" for m in chat.messages)


def _title(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1] + "…"


def _with_stops(params: GenerationParams, stops: list[str]) -> GenerationParams:
    if not stops:
        return params
    merged = list(params.custom_stopping_strings) + [s for s in stops if s not in params.custom_stopping_strings]
    return params.replace(custom_stopping_strings=merged)


def _final_status(reason: str) -> str:
    return {"stop": "done", "length": "done", "cancelled": "stopped"}.get(reason, "error")


def _error(update) -> str | None:
    finished = update.finished
    return finished.error if finished is not None and finished.reason == "error" else None
