"""Word filter: hides chosen words (and, if wished, e-mail addresses) in what people send
to the model and in what it writes back.

For a shared lab box: names of unreleased projects, colleagues' addresses or a client's
name stay out of prompts and replies. The server-wide list comes from the settings file:

    word_filter-words: "Project Falcon, ACME Corp"
    word_filter-replacement: "[redacted]"
    word_filter-emails: true

and each person can add words of their own in the Extensions tab (those apply to their
requests only). Matching ignores case and respects word boundaries. In chat, the message
is filtered before it is stored and the reply once it is finished (while a reply is
being written it shows unfiltered; the stored and final text is filtered).
"""

import re

import gradio as gr

params = {
    "display_name": "Word filter",
    "is_tab": False,
    "words": "",                 # comma-separated, for everyone (settings file)
    "my_words": "",              # comma-separated, per person (the Extensions tab)
    "replacement": "[redacted]",
    "emails": True,
}

EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")


def _words():
    text = f"{params['words']},{params['my_words']}"
    return sorted({w.strip() for w in text.split(",") if w.strip()}, key=len, reverse=True)


def redact(text):
    replacement = str(params["replacement"])
    words = _words()
    if words:
        pattern = r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)"
        text = re.sub(pattern, replacement, text, flags=re.IGNORECASE)
    if params["emails"]:
        text = EMAIL.sub(replacement, text)
    return text


def chat_input_modifier(text, visible_text, state):
    return redact(text), redact(visible_text)


def input_modifier(string, state, is_chat=False):
    return string if is_chat else redact(string)     # chat input was filtered above


def output_modifier(string, state, is_chat=False):
    return redact(string)


def ui():
    mine = gr.Textbox(label="Also hide these words in my requests (comma separated)",
                      value=params["my_words"], elem_id="word-filter-my-words")
    mine.change(lambda text: params.update({"my_words": text}), mine, None)
