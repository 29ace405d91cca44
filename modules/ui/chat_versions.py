"""The Chat tab's "‹ 2/3 ›" controls under the chat view: the versions of the last reply
(Regenerate keeps the earlier ones) and the branches of the last message of the person's
that an edit made into several (modules/chat_tree.py). Each shows only when there is more
than one; moving changes what the view shows and what the next prompt is built from.

create_ui builds them; wire connects the arrows; `refresh` gives the updates that show the
chat on screen's versions, for the tab's other events to chain with .then.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from modules.chat_service import VersionsShown
from modules.chat_tree import Versions
from modules.history_store import ChatNotFound, MessageNotFound
from modules.ui import common, notify

SNIPPET_CHARS = 40
BUSY = "A reply is still being written: wait for it or press Stop."


@dataclass
class Control:
    row: gr.Row
    back: gr.Button
    label: gr.Markdown
    forward: gr.Button

    @property
    def outputs(self) -> list:
        return [self.row, self.back, self.label, self.forward]


@dataclass
class VersionsUI:
    reply: Control
    message: Control

    @property
    def outputs(self) -> list:
        return [*self.reply.outputs, *self.message.outputs]


def create_ui() -> VersionsUI:
    with gr.Row(elem_id="chat-versions"):
        reply = _control("chat-reply", 110)
        message = _control("chat-branch", 400)
    return VersionsUI(reply, message)


def _control(elem_id: str, label_width: int) -> Control:
    with gr.Row(visible=False, elem_id=elem_id, equal_height=True) as row:
        back = gr.Button("‹", size="sm", scale=0, min_width=36, elem_id=f"{elem_id}-back")
        with gr.Column(scale=0, min_width=label_width):     # not stretched: the arrows stay close
            label = gr.Markdown(elem_id=f"{elem_id}-version", container=False)
        forward = gr.Button("›", size="sm", scale=0, min_width=36, elem_id=f"{elem_id}-forward")
    return Control(row, back, label, forward)


def updates(shown: VersionsShown) -> list:
    """Updates for VersionsUI.outputs."""
    message_label = f"Your message “{_snippet(shown.message_text)}”" if shown.message else ""
    return [*_control_updates(shown.reply, "Reply"), *_control_updates(shown.message, message_label)]


def _control_updates(versions: Versions | None, what: str) -> list:
    if versions is None:
        return [gr.Row(visible=False), gr.Button(), gr.Markdown(""), gr.Button()]
    label = f"{notify.plain(what)} **{versions.number}/{versions.count}**"
    return [gr.Row(visible=True), gr.Button(interactive=versions.number > 1), gr.Markdown(label),
            gr.Button(interactive=versions.number < versions.count)]


def _snippet(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= SNIPPET_CHARS else line[:SNIPPET_CHARS - 1] + "…"


def wire(ui: VersionsUI, service, owner: gr.State, page: gr.State, chatbot: gr.Chatbot,
         status: gr.Markdown) -> None:
    def step(which: str, by: int):
        def handler(who, chat_page):
            if not (who and chat_page.chat_id):
                return (gr.skip(),) * (2 + len(ui.outputs))
            if chat_page.begin_reply() is None:
                notify.warn(BUSY)
                return (gr.skip(), BUSY, *([gr.skip()] * len(ui.outputs)))
            try:
                shown = service.versions(who.owner, chat_page.chat_id)
                versions = getattr(shown, which)
                if versions is not None:
                    service.show_version(who.owner, chat_page.chat_id, versions.message_id, by)
                return (service.messages(who.owner, chat_page.chat_id), "",
                        *updates(service.versions(who.owner, chat_page.chat_id)))
            except (ChatNotFound, MessageNotFound) as exc:
                notify.warn(str(exc))
                return (gr.skip(), f"Error: {exc}", *([gr.skip()] * len(ui.outputs)))
            finally:
                chat_page.end_reply()
        return handler

    for control, which in ((ui.reply, "reply"), (ui.message, "message")):
        for button, by in ((control.back, -1), (control.forward, 1)):
            button.click(step(which, by), [owner, page], [chatbot, status, *ui.outputs], queue=False,
                         **common.QUIET)


def refresher(service):
    """The handler that shows the versions of the chat on screen: inputs (owner, page),
    outputs VersionsUI.outputs."""
    def refresh(who, chat_page):
        try:
            shown = service.versions(who.owner, chat_page.chat_id) if who else VersionsShown()
        except ChatNotFound:
            shown = VersionsShown()
        return updates(shown)
    return refresh
