"""A template extension that defines every hook, with text-generation-webui's signatures.

Copy this folder to extensions/<your name>/ and change what you need; delete the hooks
you do not use (an extension only needs the ones it defines). As shipped it changes
nothing, except that each person can tick "Sign my replies" under its name in the
Extensions tab (when it is on at start) to have their own chat replies signed.

The hooks are declared in the order they are called for a chat reply. What each may
change is specified once, in modules/extension_hooks.py (and docs/extensions.md).
Everything runs on a server several people share:
- `params` is one copy per person: a value changed by this person's controls (ui()) is
  what their requests see, never someone else's. Values set in the settings file as
  `example-<key>: value` are everyone's starting values.
- A hook that raises, returns the wrong type or takes longer than --extension-timeout is
  skipped for that request; the person is told and the Extensions tab shows it.
"""

import gradio as gr

from modules import chat
from modules.text_generation import get_encoded_length

params = {
    "display_name": "Example",
    "is_tab": False,
    "signature": "",             # "Sign my replies" sets this, per person
}


class MyLogits:
    """A logits processor in transformers' shape: (input_ids, scores) -> scores.
    Note: this server does not apply processors (see logits_processor_modifier)."""

    def __call__(self, input_ids, scores):
        return scores


def setup():
    """Runs once, when the extension is first switched on."""
    pass


def state_modifier(state):
    """The request's settings (`temperature`, `max_new_tokens`, ..., `mode`, `name1`,
    `name2`, `context`). Change values and return the dict."""
    return state


def history_modifier(history):
    """Chat only: {"internal": [[user, reply], ...], "visible": [...]}; the returned
    `internal` rows are what the prompt is built from."""
    return history


def chat_input_modifier(text, visible_text, state):
    """Chat only: the message just sent. `text` is what the model reads, `visible_text`
    what the chat shows."""
    return text, visible_text


def input_modifier(string, state, is_chat=False):
    """Chat: the message the model reads. Default/Notebook: the whole prompt."""
    return string


def bot_prefix_modifier(string, state):
    """Chat modes: text the model's reply starts after (not shown)."""
    return string


def custom_generate_chat_prompt(user_input, state, **kwargs):
    """Builds the chat prompt; here the default one, as TGW's example does."""
    return chat.generate_chat_prompt(user_input, state, **kwargs)


def custom_tokenized_length(prompt):
    """The prompt's length in tokens (here: the model's own count)."""
    return get_encoded_length(prompt)


def tokenizer_modifier(state, prompt, input_ids, input_embeds):
    """The prompt's token ids ([1, n] tensor) just before the model reads them."""
    return prompt, input_ids, input_embeds


def logits_processor_modifier(processor_list, input_ids):
    """Adds logits processors. Not applied on this server (docs/extensions.md says why)."""
    processor_list.append(MyLogits())
    return processor_list


def _custom_generate_reply(question, original_question, state, stopping_strings, is_chat=False):
    """Rename to custom_generate_reply to write replies yourself instead of the model:
    yield the reply so far, each time the whole text."""
    yield "This reply was written by the example extension."


def output_modifier(string, state, is_chat=False):
    """The finished reply; what it returns is shown (and, in chat, stored)."""
    if is_chat and params["signature"]:
        return f"{string}\n\n{params['signature']}"
    return string


def custom_css():
    return ".extension-example-note { opacity: 0.8; }"


def custom_js():
    return ""


def ui():
    """Controls under this extension's name in the Extensions tab; changes are per person."""
    sign = gr.Checkbox(label="Sign my replies", value=bool(params["signature"]), elem_id="example-sign")
    sign.change(lambda on: params.update({"signature": "— signed by the example extension" if on else ""}),
                sign, None)
