"""The Chat tab's tools: which tool files (user_data/tools, modules/chat_tools.py) the model
may call in this chat, and whether each reply must begin with a call.

The choice is stored with the chat, so reopening a chat brings it back; a new chat keeps
what is ticked. Files that cannot be loaded are named under the list with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from modules.chat_tools import ToolCatalog
from modules.ui import common, notify

CHOICES = [("When the model decides", "auto"), ("Every reply begins with a call", "required")]


@dataclass
class ToolsUI:
    chosen: gr.CheckboxGroup
    choice: gr.Radio
    note: gr.Markdown

    @property
    def inputs(self) -> list:
        return [self.chosen, self.choice]

    @property
    def outputs(self) -> list:
        return [self.chosen, self.choice, self.note]


def create_ui(catalog: ToolCatalog) -> ToolsUI:
    with gr.Accordion("Tools", open=False, elem_id="chat-tools-panel"):
        chosen = gr.CheckboxGroup(catalog.names(), value=[], label="Tools the model may call",
                                  elem_id="chat-tools",
                                  info="Calls and their results show in the chat as blocks you can open.")
        choice = gr.Radio(CHOICES, value="auto", label="Tool calls", elem_id="chat-tool-choice",
                          info="Every reply begins with a call: for models that do not call tools on "
                               "their own (llama.cpp models only).")
        note = gr.Markdown(elem_id="chat-tools-note")
    return ToolsUI(chosen, choice, note)


def shown(catalog: ToolCatalog, tools: list[str] | None = None, tool_choice: str | None = None):
    """Updates for (chosen, choice, note): the tools there are now, the chat's choice
    among them (None: keep what is ticked), and what did not load or is gone."""
    names = catalog.names()
    problems = catalog.problems()
    if tools is None:
        return gr.CheckboxGroup(choices=names), gr.skip(), _note(problems)
    gone = [name for name in tools if name not in names]
    if gone:
        problems.append("This chat's tool(s) " + ", ".join(gone) + " are no longer on the server.")
    return (gr.CheckboxGroup(choices=names, value=[n for n in tools if n in names]),
            tool_choice or "auto", _note(problems))


def _note(problems: list[str]) -> str:
    return "\n".join(f"- {notify.plain(problem)}" for problem in problems)


def wire(ui: ToolsUI, owner: gr.State, page: gr.State, store) -> None:
    """A change is stored with the chat on screen at once (a new chat: with its first message)."""

    def remember(who, page, tools, tool_choice):
        if who and page.chat_id:
            try:
                store.set_chat_settings(who.owner, page.chat_id, tools=list(tools or []),
                                        tool_choice=tool_choice or "auto")
            except (LookupError, ValueError) as exc:
                notify.warn(str(exc))
    for component in ui.inputs:
        component.input(remember, [owner, page, *ui.inputs], None, queue=False, **common.QUIET)
