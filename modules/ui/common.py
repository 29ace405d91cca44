"""What several tabs share.

- Ask before destroying: a row of buttons whose destructive ones are replaced, for one
  click, by the question ("Overwrite 'X'?") and a Cancel. What the question is about is
  kept in the session's gr.State and checked again when the answer comes, so a stale
  "yes" never acts on something else.
- The named-files part (presets, characters, prompts: list on load, save that asks before
  overwriting, delete that asks first) is modules/ui/file_choices.py, built on this.
- Streaming a request: its notices and errors as toasts (through notify, which escapes
  them), quiet event settings for a tab's own status line, and a Stop button that stops
  only this browser's request.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from modules.ui import notify

# Events that write a tab's own status line: Gradio's "processing | 0.1s" would land in it
# (app.py's CSS also hides the tracker, which Gradio 6 draws over Markdown regardless).
QUIET = dict(show_progress="hidden")


@dataclass
class AskFirst:
    """Buttons hidden while a question is open, the question's Yes button (its label is the
    question) and Cancel, and what the open question is about (None while none is)."""
    buttons: list
    confirm: gr.Button
    cancel: gr.Button
    pending: gr.State

    @property
    def outputs(self) -> list:
        return [self.pending, *self.buttons, self.confirm, self.cancel]

    def ask(self, about: dict, question: str) -> list:
        """Updates for `outputs` that put the question in place of the buttons."""
        return [about, *[gr.Button(visible=False) for _ in self.buttons],
                gr.Button(question, visible=True), gr.Button(visible=True)]

    def settle(self) -> list:
        """Updates for `outputs` that close the question and bring the buttons back."""
        return [None, *[gr.Button(visible=True) for _ in self.buttons],
                gr.Button(visible=False), gr.Button(visible=False)]


def ask_first(buttons: list, elem_id: str | None = None) -> AskFirst:
    """Builds, in the current row after `buttons`, the hidden Yes and Cancel buttons."""
    confirm = gr.Button(visible=False, variant="stop", size="sm",
                        elem_id=f"{elem_id}-confirm" if elem_id else None)
    cancel = gr.Button("Cancel", visible=False, size="sm",
                       elem_id=f"{elem_id}-cancel" if elem_id else None)
    return AskFirst(list(buttons), confirm, cancel, gr.State(None))


def announce(notices=(), error: str | None = None) -> None:
    """A streamed update's notices as info toasts and its error, if any, as a warning."""
    for notice in notices:
        notify.info(notice)
    if error:
        notify.warn(error)


def wire_stop(button: gr.Button, control: gr.State) -> None:
    """Stop cancels this browser's request only: `control` holds an object with stop()
    (modules.chat_session.SessionControl, or a tab's own that wraps one). Not queued, so it
    is never stuck behind the request it stops."""
    button.click(lambda session: session.stop() and None, [control], None, queue=False,
                 show_progress="hidden", api_visibility="undocumented")
