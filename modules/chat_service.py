"""Chat actions (send, regenerate, continue, impersonate, remove last, edit) on stored chats.

The history store is the source of truth: every finished message is committed when it
finishes, and a reply being written is saved as it grows (status "streaming"), so a
server killed mid-reply comes back with that reply kept and marked "interrupted".
Each action is a generator of ChatUpdate for the UI; nothing here knows about Gradio.
Actions take the Identity of who asks: its owner scopes every store call, and replies
enter the engine through the front door under that person's limits.
At the owner's storage limits nothing is half-stored: a message that does not fit is refused
before anything else is written, and a reply that reaches the limit stops there and is kept.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator

from modules.chat_modes import Character, prompt_messages
from modules.chat_session import SessionControl
from modules.extension_chat import ChatHooks, model_text
from modules.front_door import FrontDoor
from modules.history_store import Chat, HistoryStore
from modules.params import GenerationParams
from modules.roles import Identity

SAVE_INTERVAL = 1.0           # seconds between saves of a reply being written
TITLE_LENGTH = 60
STATUS_MARKS = {"interrupted": "\n\n*(interrupted: the server stopped while writing this)*",
                "stopped": "", "error": ""}


@dataclass
class ChatSettings:
    params: GenerationParams
    template: str | None = None
    mode: str = "chat"
    character: Character = field(default_factory=Character)
    character_file: str = ""        # the character's file name, stored with the chat to reopen it


@dataclass
class ChatUpdate:
    chat_id: str
    messages: list[dict]            # what the chat view shows
    status: str = ""
    notices: list[str] = field(default_factory=list)
    error: str | None = None
    done: bool = False
    draft: str | None = None        # impersonate: text for the input box


def display_messages(chat: Chat | None) -> list[dict]:
    if chat is None:
        return []
    return [{"role": m.role, "content": m.content + STATUS_MARKS.get(m.status, "")}
            for m in chat.messages if m.role in ("user", "assistant")]


class ChatService:
    def __init__(self, door: FrontDoor, store: HistoryStore):
        self.door = door
        self.store = store

    # ---- chats -----------------------------------------------------------------------------
    def new_chat(self, owner: str, settings: ChatSettings, title: str = "New chat") -> str:
        greeting = settings.character.greeting.strip()
        greeting = settings.character.fill(greeting) if greeting and settings.mode != "instruct" else ""
        self.store.check_room(owner, len(greeting))        # no chat left behind without it
        chat_id = self.store.create_chat(owner, title, mode=settings.mode,
                                         character=settings.character_file)
        if greeting:
            self.store.append_message(owner, chat_id, "assistant", greeting)
        return chat_id

    def messages(self, owner: str, chat_id: str | None) -> list[dict]:
        return display_messages(self.store.get_chat(owner, chat_id)) if chat_id else []

    # ---- actions -------------------------------------------------------------------------------
    def check_send(self, owner: str, chat_id: str | None, text: str) -> None:
        """Raises what send() would refuse before storing anything (too long, no room, too
        many chats), so the UI can leave the text with the person instead."""
        self.door.limits_check_input(text)
        self.store.check_room(owner, len(text))     # before a new chat or a title is stored for it
        if chat_id:
            self.store.get_chat(owner, chat_id)     # ChatNotFound: deleted in another tab
        else:
            self.store.check_new_chat(owner)

    def send(self, who: Identity, chat_id: str | None, text: str, settings: ChatSettings,
             control: SessionControl) -> Iterator[ChatUpdate]:
        owner = who.owner
        self.check_send(owner, chat_id, text)
        hooks = ChatHooks(self.door, who, settings, lambda: self._history(owner, chat_id))
        text, meta = hooks.user_message(text)      # extensions' chat_input_modifier, input_modifier
        if not chat_id:
            chat_id = self.new_chat(owner, settings, title=_title(text))
        elif self._is_untitled(owner, chat_id):
            self.store.rename_chat(owner, chat_id, _title(text))
        self.store.append_message(owner, chat_id, "user", text, meta=meta)
        yield from self._reply(who, chat_id, settings, control, hooks=hooks)

    def regenerate(self, who: Identity, chat_id, settings, control) -> Iterator[ChatUpdate]:
        chat = self.store.get_chat(who.owner, chat_id)
        if chat.messages and chat.messages[-1].role == "assistant" and len(chat.messages) > 1:
            self.store.delete_message(who.owner, chat_id, chat.messages[-1].id)
        yield from self._reply(who, chat_id, settings, control)

    def continue_reply(self, who: Identity, chat_id, settings, control) -> Iterator[ChatUpdate]:
        chat = self.store.get_chat(who.owner, chat_id)
        if not chat.messages or chat.messages[-1].role != "assistant":
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
            for update in admission.stream_chat(mode_prompt.messages, settings.template, control,
                                                continue_last=True):
                yield ChatUpdate(chat_id or "", shown, update.status, update.notices,
                                 _error(update), update.finished is not None, draft + update.text)

    def remove_last(self, owner: str, chat_id: str) -> str:
        """Removes the last exchange; returns the user's text so it can be edited and resent."""
        chat = self.store.get_chat(owner, chat_id)
        messages = list(chat.messages)
        text = ""
        if messages and messages[-1].role == "assistant":
            self.store.delete_message(owner, chat_id, messages.pop().id)
        if messages and messages[-1].role == "user":
            text = messages[-1].content
            self.store.delete_message(owner, chat_id, messages.pop().id)
        return text

    def edit_message(self, owner: str, chat_id: str, index: int, text: str) -> None:
        """index counts the messages the chat view shows."""
        shown = [m for m in self.store.get_chat(owner, chat_id).messages if m.role in ("user", "assistant")]
        if not 0 <= index < len(shown):
            raise IndexError("That message no longer exists.")
        self.door.limits_check_input(text)
        self.store.update_message(owner, chat_id, shown[index].id, content=text, status="done")

    # ---- the reply ---------------------------------------------------------------------------
    def _reply(self, who: Identity, chat_id, settings: ChatSettings, control, continue_message=None,
               hooks: ChatHooks | None = None):
        owner = who.owner
        self._remember_settings(owner, chat_id, settings)
        history = self._history(owner, chat_id)
        hooks = hooks or ChatHooks(self.door, who, settings, lambda: history)
        settings = hooks.settings                     # after extensions' state_modifier
        history = hooks.prompt_history(history)       # extensions' history_modifier
        mode_prompt = prompt_messages(settings.mode, history, settings.character,
                                      continue_last=continue_message is not None)
        params = _with_stops(settings.params, mode_prompt.stop_strings)
        prefix = continue_message.content if continue_message else ""
        with self.door.admit(who, params) as admission:
            if continue_message is None:
                reply_id = self.store.append_message(owner, chat_id, "assistant", "", status="streaming")
            else:
                reply_id = continue_message.id
                self.store.update_message(owner, chat_id, reply_id, status="streaming")
            shown = self.messages(owner, chat_id)
            last_save, text, saved = time.monotonic(), prefix, False
            stream = hooks.stream(admission, mode_prompt, settings.template, control,
                                  continue_last=continue_message is not None)
            try:
                for update in stream:
                    text = prefix + update.text
                    if update.finished is not None:
                        text = hooks.output(text, update)     # extensions' output_modifier
                    shown[-1] = {"role": "assistant", "content": text}
                    kept = len(text)
                    if update.finished is not None:
                        kept = self._save_final(owner, chat_id, reply_id, text, update.finished,
                                                is_new=continue_message is None)
                        saved = True
                        if update.finished.reason == "error" and text == prefix:
                            shown = self.messages(owner, chat_id)
                    elif time.monotonic() - last_save >= SAVE_INTERVAL:
                        last_save = time.monotonic()
                        kept = self.store.update_message(owner, chat_id, reply_id, content=text,
                                                         cut_to_fit=True)
                    if kept < len(text):           # the owner's storage limit cut it
                        saved = True
                        yield self._stopped_at_storage_limit(owner, chat_id, reply_id, update.notices)
                        return                     # closing the stream cancels the request
                    yield ChatUpdate(chat_id, shown, update.status, update.notices, _error(update),
                                     update.finished is not None)
            finally:
                stream.close()
                if not saved:      # the browser went away mid-reply: keep what was written
                    self.store.update_message(owner, chat_id, reply_id, content=text, status="stopped",
                                              cut_to_fit=True)

    def _save_final(self, owner, chat_id, reply_id, text, finished, is_new: bool) -> int:
        """Returns how much of `text` was stored (less when the storage limit cut it)."""
        if finished.reason == "error" and is_new and not text:
            self.store.delete_message(owner, chat_id, reply_id)    # leave no empty reply behind
            return 0
        meta = {"tokens": finished.n_tokens, "tokens_per_second": finished.tokens_per_second,
                "finish_reason": finished.reason}
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

    def _history(self, owner, chat_id) -> list[dict]:
        if not chat_id:
            return []
        return [{"role": m.role, "content": model_text(m)}
                for m in self.store.get_chat(owner, chat_id).messages if m.role in ("user", "assistant")]

    def _remember_settings(self, owner, chat_id, settings: ChatSettings) -> None:
        """The chat keeps the mode and character it was last answered in (for reopening)."""
        chat = self.store.get_chat(owner, chat_id)
        if (chat.mode, chat.character) != (settings.mode, settings.character_file):
            self.store.set_chat_settings(owner, chat_id, mode=settings.mode,
                                         character=settings.character_file)

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
