"""The chat's extension hooks, at the points text-generation-webui calls them.

ChatService (modules/chat_service.py) makes one ChatHooks per action and calls it at four
points; with no extension on, each call hands back what it was given:

    hooks = ChatHooks(door, who, settings, lambda: history)
    text, meta = hooks.user_message(text)      # chat_input_modifier, input_modifier (send)
    settings = hooks.settings                  # after state_modifier
    history = hooks.prompt_history(history)    # history_modifier
    stream = hooks.stream(admission, mode_prompt, template, control, continue_last=...)
                                               # custom_generate_chat_prompt or the default
                                               # prompt + bot_prefix_modifier
    text = hooks.output(text, update)          # output_modifier, on the finished reply

A message whose model text (`internal`) differs from what is shown is stored with
meta {"internal", "visible"}; the prompt uses `internal` while the message is unedited.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterator

from modules.chat_modes import Character, prompt_messages
from modules.chat_prompt import PromptTooLong
from modules.chat_session import ReplyUpdate, failure_update
from modules.extension_compat import PROMPT_BUILDER
from modules.extension_generation import tokenizer_in_context
from modules.extension_state import history_from_tgw, history_to_tgw, read_state, tgw_state
from modules.template_render import TemplateError

CHAT_MODES_WITH_PREFIX = ("chat", "chat-instruct")


def model_text(message) -> str:
    """What the model reads for a stored message: an extension's `internal` text while the
    message still shows what it was stored with, else its content."""
    meta = getattr(message, "meta", None) or {}
    if "internal" in meta and meta.get("visible") == message.content:
        return str(meta["internal"])
    return message.content


class ChatHooks:
    def __init__(self, door, who, settings, history: Callable[[], list[dict]]):
        self.runner = door.hooks(who)
        self._given = settings
        self._history = history
        self._settings = None
        self.state: dict | None = None
        self._visible_new: str | None = None

    # ---- before the reply ----------------------------------------------------------------------
    @property
    def settings(self):
        """The chat settings after the extensions' state_modifier."""
        if self.runner is None:
            return self._given
        if self._settings is None:
            given = self._given
            state = tgw_state(given.params, mode=given.mode, character=given.character,
                              history=history_to_tgw(self._history()), template=given.template,
                              character_file=getattr(given, "character_file", ""))
            self.state = self.runner.state(state)
            result = read_state(self.state, given.params, given.mode, given.character)
            self.runner.notices += result.notices
            self._settings = dataclasses.replace(given, params=result.params, mode=result.mode,
                                                 character=result.character)
        return self._settings

    def user_message(self, text: str) -> tuple[str, dict | None]:
        """(text to show and store, meta for the store)."""
        if self.runner is None:
            return text, None
        state = self._state()
        internal, visible = self.runner.chat_input(text, text, state)
        internal = self.runner.input(internal, state, is_chat=True)
        self._visible_new = visible
        return visible, ({"internal": internal, "visible": visible} if internal != visible else None)

    def prompt_history(self, history: list[dict]) -> list[dict]:
        if self.runner is None or not self.runner.has("history_modifier"):
            return history
        shown = {len(history) - 1: self._visible_new} if self._visible_new is not None and history else {}
        return history_from_tgw(self.runner.history(history_to_tgw(history, shown)))

    # ---- the reply ---------------------------------------------------------------------------------
    def stream(self, admission, mode_prompt, template: str | None, control, *,
               continue_last: bool = False, tools: list | None = None) -> Iterator[ReplyUpdate]:
        """tools: the chat's tools for the template's `tools` variable (not for a custom prompt)."""
        if self.runner is None:
            yield from admission.stream_chat(mode_prompt.messages, template, control, continue_last=continue_last,
                                             tools=tools)
            return
        admission.hooks, admission.state = self.runner, self._state()
        prompt = None
        if self.runner.has("custom_generate_chat_prompt"):
            prompt = self._custom_prompt(admission, mode_prompt, template, continue_last)
        if prompt is None:
            try:
                built = admission.chat_prompt(mode_prompt.messages, template, continue_last=continue_last,
                                              tools=tools)
            except (PromptTooLong, TemplateError, LookupError) as exc:
                yield failure_update(str(exc))
                return
            admission.notices += [built.notice] if built.notice else []
            prompt = built.text + self._bot_prefix(continue_last)
        admission.notices += self.runner.take_notices()
        yield from admission.stream_prompt(prompt, control, is_chat=True)

    def output(self, text: str, update: ReplyUpdate) -> str:
        """The finished reply after output_modifier; the update carries any notices."""
        if self.runner is None or update.finished is None or update.finished.reason == "error":
            return text
        text = self.runner.output(text, self._state(), is_chat=True)
        update.notices = list(update.notices) + self.runner.take_notices()
        return text

    # ---- helpers ---------------------------------------------------------------------------------
    def _state(self) -> dict:
        self.settings            # runs state_modifier once
        return self.state

    def _bot_prefix(self, continue_last: bool) -> str:
        state = self._state()
        if continue_last or state.get("mode") not in CHAT_MODES_WITH_PREFIX:
            return ""
        return self.runner.bot_prefix("", state)

    def _custom_prompt(self, admission, mode_prompt, template, continue_last: bool) -> str | None:
        """The first extension's custom_generate_chat_prompt, with TGW's arguments: the
        message being answered as user_input and the history without its row."""
        state = self._state()
        rows = history_to_tgw([m for m in mode_prompt.messages if m["role"] in ("user", "assistant")])
        user_input = ""
        if not continue_last and rows["internal"] and rows["internal"][-1][1] == "":
            user_input = rows["internal"][-1][0]
            rows = {k: (v[:-1] if k in ("internal", "visible") else v) for k, v in rows.items()}
        state["history"] = rows

        def default_prompt(user_input: str, state: dict, **kwargs) -> str:
            history = kwargs.get("history", state.get("history")) or {"internal": []}
            messages = history_from_tgw(history)
            if user_input and not kwargs.get("_continue"):
                messages.append({"role": "user", "content": user_input})
            character = Character(state.get("name2") or "Assistant", state.get("context") or "")
            mode = state.get("mode", "chat")
            built = prompt_messages(mode, messages, character, continue_last=bool(kwargs.get("_continue")),
                                    impersonate=bool(kwargs.get("impersonate")),
                                    user_name=state.get("name1") or "You")
            text = admission.chat_prompt(built.messages, template, continue_last=built.continue_last).text
            return text + self._bot_prefix(bool(kwargs.get("_continue") or kwargs.get("impersonate")))

        token = PROMPT_BUILDER.set(default_prompt)
        try:
            with tokenizer_in_context(admission._door.scheduler):
                return self.runner.custom_chat_prompt(user_input, state, _continue=continue_last, history=rows)
        finally:
            PROMPT_BUILDER.reset(token)
