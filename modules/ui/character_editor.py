"""The character editor (Parameters > Character): the character this chat session uses,
every field of it, and the characters to choose from, save and delete.

The editor shows ctx.character_state, whoever set it: choosing here, or the Chat tab's
Character box. Reading and writing files is done by modules.characters over the server's
Library; layout (create_ui) and events (create_event_handlers) are apart.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from modules import characters
from modules.ui import file_choices
from modules.ui.file_choices import FileButtons, FileForm, choices, refused, visitor

# Set in the state by this editor's own handlers: the editor already shows that state, so
# it must not be written back into the boxes (that would undo what is being typed).
SHOWN_HERE = "shown_in_editor"
_LIVE = dict(trigger_mode="always_last", show_progress="hidden", api_visibility="undocumented")
_QUIET = dict(show_progress="hidden", api_visibility="undocumented")
LIST_INFO = "Yours are marked (private); only an admin can change the shared ones."


@dataclass
class CharacterUI:
    choice: gr.Dropdown
    shared: gr.Checkbox
    name: gr.Textbox
    context: gr.Textbox
    greeting: gr.Textbox
    picture: gr.Image
    buttons: FileButtons
    status: gr.Markdown

    @property
    def editors(self) -> list:
        return [self.name, self.context, self.greeting, self.picture]


def create_ui(ctx) -> CharacterUI:
    store = file_choices.library(ctx).characters
    initial = getattr(ctx.character_state, "value", None) or {}
    with gr.Row():
        choice = gr.Dropdown(choices(store, None), value=None, label="Character", scale=3,
                             info=f"Choosing one loads it into this chat session. {LIST_INFO}",
                             elem_id="character-choice")
        shared = file_choices.shared_box()
    with gr.Row():
        with gr.Column(scale=3):
            name = gr.Textbox(initial.get("name", ""), label="Name", elem_id="character-name",
                              info="The character's name in the chat; also the name it is saved under.")
            greeting = gr.Textbox(initial.get("greeting", ""), label="Greeting", lines=2,
                                  elem_id="character-greeting", info="The first message of a new chat.")
            context = gr.Textbox(initial.get("context", ""), label="Context", lines=8,
                                 elem_id="character-context",
                                 info="Who the character is; it starts every prompt.")
        with gr.Column(scale=1):
            picture = gr.Image(initial.get("picture"), label="Picture (optional)", type="filepath",
                               image_mode=None, height=240)
    with gr.Row():
        buttons = file_choices.file_buttons("character", elem_id="character")
    status = gr.Markdown(elem_id="character-status")
    return CharacterUI(choice, shared, name, context, greeting, picture, buttons, status)


def create_event_handlers(ctx, ui: CharacterUI, shown_by: list) -> None:
    """`shown_by`: the events on which the editor comes into view (its tabs' .select)."""
    store = file_choices.library(ctx).characters
    file_choices.list_on_load(ctx, store, ui.choice, ui.shared)

    def edit(name, context, greeting, picture):
        return {"name": name, "context": context, "greeting": greeting, "picture": picture,
                SHOWN_HERE: True}

    gr.on([ui.name.input, ui.context.input, ui.greeting.input, ui.picture.upload, ui.picture.clear],
          edit, ui.editors, ctx.character_state, **_LIVE)

    def choose(chosen, key, request: gr.Request):
        if not chosen:
            return [gr.skip()] * 5 + [""]
        try:
            character = characters.load_character(chosen, store, visitor(ctx, request, key))
        except ValueError as exc:
            return [gr.skip()] * 5 + [refused("Not loaded", exc)]
        state = {**character.to_state(), SHOWN_HERE: True}
        return [state, state["name"], state["context"], state["greeting"], state["picture"],
                f"Character **{character.name}** loaded."]

    ui.choice.input(choose, [ui.choice, ctx.browser_key], [ctx.character_state, *ui.editors, ui.status],
                    **_QUIET)

    def file_of(state, who):
        """The file the state was loaded from: one of its name holding the same character
        (the page's blank start is called "Assistant" too, but is not that file)."""
        try:
            stored = characters.load_character(state.get("name") or "", store, who)
        except ValueError:
            return None
        same = (stored.context, stored.greeting) == (state.get("context"), state.get("greeting"))
        return stored.file_name if same else None

    def follow(state, key, request: gr.Request):
        """The session's character may have been set elsewhere (the Chat tab's Character
        box): show all of it here, and choose its file in the list if it has one."""
        if not state or state.get(SHOWN_HERE):
            return [gr.skip()] * 5
        return [gr.Dropdown(value=file_of(state, visitor(ctx, request, key))), state.get("name", ""),
                state.get("context", ""), state.get("greeting", ""), state.get("picture")]

    # When the editor comes into view, rather than on the state's change: a change made by
    # an unqueued event (queue=False) does not fire the state's .change.
    gr.on(shown_by, follow, [ctx.character_state, ctx.browser_key], [ui.choice, *ui.editors],
          **_QUIET)

    file_choices.wire_save_and_delete(ctx, FileForm(
        store=store, noun="character", dropdown=ui.choice, name_box=ui.name,
        contents=[ui.context, ui.greeting, ui.picture], shared=ui.shared, status=ui.status,
        buttons=ui.buttons,
        write=lambda name, values, who, scope: characters.save_character(
            name, values[0], values[1], values[2], store, who, scope),
        deleted_note=" This session keeps using it until you choose another."))
