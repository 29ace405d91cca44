"""The Chat tab's attach button and the chips of the files waiting to go with the next message.

The files are read as they are chosen (modules/attachments.py), so a file that is too large,
one too many or not text is refused at once with a message, before anything is sent; the
ones accepted wait on the page's server-side state (ChatPage.attachments) until Send takes
them, and show as chips above the message box until then.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import gradio as gr

from modules.attachments import Attachment, add_files, chips
from modules.limits import Limits
from modules.ui import common, notify

ATTACH_HELP = "Attach text, Markdown, code or PDF files to the next message"


@dataclass
class AttachUI:
    button: gr.UploadButton
    chips: gr.Markdown
    clear: gr.Button

    @property
    def outputs(self) -> list:
        return [self.chips, self.clear]


def create_chips() -> tuple[gr.Markdown, gr.Button]:
    """The files waiting to be sent, and a way to take them back (hidden while none wait)."""
    with gr.Row(elem_id="chat-files-row", equal_height=True):
        shown = gr.Markdown(elem_id="chat-files")
        clear = gr.Button("Remove files", size="sm", scale=0, min_width=120, visible=False,
                          elem_id="chat-files-clear")
    return shown, clear


def create_button() -> gr.UploadButton:
    # No file_types: the reader says itself, by name and content, why a file cannot come.
    return gr.UploadButton("Attach files", file_count="multiple", type="filepath", size="sm", scale=0,
                           min_width=110, elem_id="chat-attach")


def waiting(attachments: list[Attachment]) -> list:
    """Updates for AttachUI.outputs showing these files."""
    line = chips(attachments)
    return [gr.Markdown(f"{line}  *(sent with your next message)*" if line else ""),
            gr.Button(visible=bool(attachments))]


def wire(ui: AttachUI, limits: Limits, owner: gr.State, page: gr.State, status: gr.Markdown) -> None:
    def attach(files, who, chat_page):
        if not who:
            return (gr.skip(),) * 2 + ("The page is still loading; try again.",)
        chosen = [(path, os.path.basename(path)) for path in (files or [])]
        chat_page.attachments, problems = add_files(chat_page.attachments, chosen, limits)
        for problem in problems:
            notify.warn(problem)
        return (*waiting(chat_page.attachments), notify.plain(" ".join(problems)))
    ui.button.upload(attach, [ui.button, owner, page], [*ui.outputs, status], **common.QUIET)

    def clear(chat_page):
        chat_page.attachments = []
        return waiting([])
    ui.clear.click(clear, [page], ui.outputs, queue=False, **common.QUIET)
