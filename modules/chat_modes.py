"""The three chat modes of text-generation-webui, as lists of messages for the template.

- instruct: the conversation as it is; the template's own system message applies.
- chat: the character's context is the system prompt; the greeting opens the chat.
- chat-instruct: the whole dialogue is handed to the model as one instruction
  ("write the next reply of <character>"), which helps instruction-tuned models stay
  in role. Replies go into that transcript without their reasoning.
"""
from __future__ import annotations

from dataclasses import dataclass

from modules.reasoning import KNOWN_MARKERS, split_reasoning

MODES = ("chat", "chat-instruct", "instruct")
USER_NAME = "You"

CHAT_INSTRUCT_COMMAND = (
    'Continue the chat dialogue below. Write a single reply for the character "{char}".\n\n'
    "{context}{transcript}")


@dataclass
class Character:
    name: str = "Assistant"
    context: str = ""
    greeting: str = ""

    @classmethod
    def from_state(cls, state: dict | None) -> "Character":
        state = state or {}
        return cls(state.get("name") or "Assistant", state.get("context") or "", state.get("greeting") or "")

    def fill(self, text: str, user_name: str = USER_NAME) -> str:
        """text-generation-webui's placeholders in character files."""
        return (text.replace("{{char}}", self.name).replace("{{user}}", user_name)
                .replace("<BOT>", self.name).replace("<USER>", user_name))


@dataclass
class ModePrompt:
    messages: list[dict]
    continue_last: bool
    stop_strings: list[str]


def prompt_messages(mode: str, history: list[dict], character: Character, *,
                    impersonate: bool = False, continue_last: bool = False,
                    user_name: str = USER_NAME) -> ModePrompt:
    """history: [{"role": "user"|"assistant", "content"}]; with continue_last its last
    message is a reply to carry on; with impersonate the model writes the user's next
    message, starting from an optional draft given as the last user message."""
    if mode not in MODES:
        raise ValueError(f"Unknown chat mode '{mode}'. Choose one of: {', '.join(MODES)}.")
    history = [dict(m) for m in history if m["role"] in ("user", "assistant", "tool")]   # tool: a call's result
    stops = [] if mode == "instruct" else [f"\n{user_name}:", f"\n{character.name}:"]
    if impersonate:
        stops = [f"\n{character.name}:"] if mode != "instruct" else []
    if mode == "chat-instruct" and not impersonate:
        return ModePrompt(_chat_instruct(history, character, user_name, continue_last),
                          continue_last, stops)
    messages = []
    if mode != "instruct" and character.context.strip():
        messages.append({"role": "system", "content": character.fill(character.context.strip(), user_name)})
    messages += history
    return ModePrompt(messages, continue_last or impersonate, stops)


def _chat_instruct(history: list[dict], character: Character, user_name: str,
                   continue_last: bool) -> list[dict]:
    partial = history.pop()["content"] if continue_last and history and history[-1]["role"] == "assistant" else None
    lines = [f"{user_name if m['role'] == 'user' else character.name}: {_without_reasoning(m)}" for m in history]
    context = character.fill(character.context.strip(), user_name)
    command = CHAT_INSTRUCT_COMMAND.format(
        char=character.name, context=f"{context}\n\n" if context else "", transcript="\n".join(lines))
    messages = [{"role": "user", "content": command}]
    if partial is not None:
        messages.append({"role": "assistant", "content": partial})
    return messages


def _without_reasoning(message: dict) -> str:
    """The transcript gives replies without their reasoning: the model reads what was said."""
    if message["role"] != "assistant":
        return message["content"]
    return split_reasoning(message["content"], KNOWN_MARKERS).answer
