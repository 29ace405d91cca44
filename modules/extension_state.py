"""What a text-generation-webui extension expects to receive: its `state` dict and its
`{"internal": [...], "visible": [...]}` history, built from ours and read back.

`state` holds every GenerationParams field under its name (they are TGW's preset keys),
the chat fields TGW's UI puts there (`mode`, `name1`, `name2`, `context`, `greeting`,
`history`, the template strings, ...) and TGW's defaults for the keys that mean nothing
here (`stream`, `max_tokens_second`, ...), so an extension that reads them finds them.
"""
from __future__ import annotations

from dataclasses import dataclass

from modules.chat_modes import CHAT_INSTRUCT_COMMAND, USER_NAME, Character
from modules.params import SPECS_BY_NAME, GenerationParams, ParamError

BEGIN_VISIBLE_CHAT = "<|BEGIN-VISIBLE-CHAT|>"     # TGW's user half of the greeting's row

# Keys of TGW's state that have no meaning here, with TGW's default values.
TGW_ONLY_KEYS = {
    "stream": True, "max_tokens_second": 0, "auto_max_new_tokens": False, "temperature_last": False,
    "tfs": 1.0, "top_a": 0.0, "epsilon_cutoff": 0.0, "eta_cutoff": 0.0, "smoothing_factor": 0.0,
    "smoothing_curve": 1.0, "guidance_scale": 1.0, "negative_prompt": "", "penalty_alpha": 0.0,
    "encoder_repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "prompt_lookup_num_tokens": 0,
    "static_cache": False, "sampler_priority": "", "enable_thinking": True, "reasoning_effort": "medium",
    "user_bio": "", "custom_system_message": "", "chat_style": "cai-chat", "start_with": "",
    "textbox": "", "unique_id": "", "chat_template_str": "", "enable_web_search": False,
}


def tgw_state(params: GenerationParams, *, mode: str = "instruct", character: Character | None = None,
              user_name: str = USER_NAME, history: dict | None = None, template: str | None = None,
              character_file: str = "", truncation_length: int = 0) -> dict:
    character = character or Character()
    state = dict(TGW_ONLY_KEYS)
    state.update(params.to_dict())
    state.update({
        "mode": mode, "name1": user_name, "name2": character.name, "context": character.context,
        "greeting": character.greeting, "character_menu": character_file,
        "history": history or empty_history(), "instruction_template_str": template or "",
        "chat-instruct_command": CHAT_INSTRUCT_COMMAND, "truncation_length": truncation_length,
        "name1_instruct": "", "name2_instruct": "",
    })
    return state


@dataclass
class StateResult:
    params: GenerationParams
    mode: str
    character: Character
    user_name: str
    notices: list[str]


def read_state(state: dict, params: GenerationParams, mode: str, character: Character | None,
               user_name: str = USER_NAME) -> StateResult:
    """The settings a state_modifier's returned state asks for. Values that are not valid
    settings are reported and the earlier ones kept."""
    character = character or Character()
    notices = []
    changes = {key: state[key] for key in SPECS_BY_NAME if key in state}
    try:
        new_params = params.replace(**changes)
    except (ParamError, TypeError, ValueError) as exc:
        notices.append(f"An extension's state_modifier set a sampler value that is not valid ({exc}); "
                       "the earlier values were used.")
        new_params = params
    new_mode = state.get("mode", mode)
    if new_mode not in ("chat", "chat-instruct", "instruct"):
        notices.append(f"An extension's state_modifier set mode '{new_mode}', which is not a chat mode; "
                       f"'{mode}' was used.")
        new_mode = mode
    new_character = Character(_text(state.get("name2"), character.name),
                              _text(state.get("context"), character.context),
                              _text(state.get("greeting"), character.greeting))
    return StateResult(new_params, new_mode, new_character, _text(state.get("name1"), user_name), notices)


def _text(value, fallback: str) -> str:
    return value if isinstance(value, str) and value else fallback


# ---- history -------------------------------------------------------------------------------------
def empty_history() -> dict:
    return {"internal": [], "visible": [], "metadata": {}}


def history_to_tgw(messages: list[dict], visible: dict[int, str] | None = None) -> dict:
    """[{"role", "content"}, ...] -> TGW's rows of [user, reply]. A reply with no message
    before it (the greeting) gets TGW's marker as its user half. `visible` gives shown
    texts that differ from what the model reads, by message index."""
    visible = visible or {}
    internal_rows, visible_rows = [], []
    for index, message in enumerate(messages):
        role, text = message.get("role"), str(message.get("content", ""))
        shown = visible.get(index, text)
        if role == "user":
            internal_rows.append([text, ""])
            visible_rows.append([shown, ""])
        elif role == "assistant":
            if internal_rows and internal_rows[-1][1] == "" and not _answered(messages, index):
                internal_rows[-1][1], visible_rows[-1][1] = text, shown
            else:
                internal_rows.append([BEGIN_VISIBLE_CHAT if not internal_rows else "", text])
                visible_rows.append(["" if not visible_rows else "", shown])
    return {"internal": internal_rows, "visible": visible_rows, "metadata": {}}


def _answered(messages: list[dict], index: int) -> bool:
    """Whether the user message before messages[index] already has a reply."""
    before = messages[index - 1] if index > 0 else None
    return before is None or before.get("role") != "user"


def history_from_tgw(history: dict) -> list[dict]:
    """TGW's internal rows -> [{"role", "content"}, ...] (empty halves and the greeting
    marker left out)."""
    messages = []
    for user, reply in history.get("internal", []):
        if user and user != BEGIN_VISIBLE_CHAT:
            messages.append({"role": "user", "content": str(user)})
        if reply:
            messages.append({"role": "assistant", "content": str(reply)})
    return messages
