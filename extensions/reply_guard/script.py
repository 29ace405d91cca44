"""Long-reply guard: keeps replies short enough to share the box.

Every request's max_new_tokens is lowered to a ceiling (a runaway 4,000-token essay holds
a slot other people are waiting for), and a reply that was cut there ends at its last
full sentence, with a note saying so, instead of mid-word. The ceiling is everyone's
(settings file: `reply_guard-max_tokens: 300`); each person may pick a lower one for
themselves in the Extensions tab.
"""

import re

import gradio as gr

from modules.text_generation import get_encoded_length

params = {
    "display_name": "Long-reply guard",
    "is_tab": False,
    "max_tokens": 400,           # the ceiling for everyone
    "my_max_tokens": 0,          # a lower one for this person (0: the ceiling)
}

SENTENCE_END = re.compile(r"[.!?…](?:[\"')\]]*)(?=\s|$)")


def limit():
    ceiling = int(params["max_tokens"])
    mine = int(params["my_max_tokens"] or 0)
    return min(ceiling, mine) if mine > 0 else ceiling


def state_modifier(state):
    state["max_new_tokens"] = min(int(state.get("max_new_tokens", limit())), limit())
    return state


def output_modifier(string, state, is_chat=False):
    cap = int(state.get("max_new_tokens", limit()))
    if not string.strip() or get_encoded_length(string) < cap - 1:
        return string                   # ended by itself
    ends = [m.end() for m in SENTENCE_END.finditer(string)]
    if ends and ends[-1] < len(string.rstrip()) and ends[-1] >= len(string) // 3:
        string = string[:ends[-1]]
    return f"{string.rstrip()}\n\n*(The long-reply guard ended this reply at {cap} tokens.)*"


def ui():
    mine = gr.Slider(0, int(params["max_tokens"]), step=8, value=int(params["my_max_tokens"]),
                     label="My reply limit in tokens (0: the server's)", elem_id="reply-guard-mine")
    mine.change(lambda value: params.update({"my_max_tokens": int(value)}), mine, None)
