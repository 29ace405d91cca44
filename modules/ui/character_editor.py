"""The character editor (Parameters > Character): the character this chat session uses,
every field of it, and the characters to choose from, save and delete.

The editor shows ctx.character_state, whoever set it: choosing here, or the Chat tab's
Character box. Reading and writing files is done by modules.characters over the server's
Library; layout (create_ui) and events (create_event_handlers) are apart.

Import card reads a SillyTavern card (.png or .json) or a TGW .yaml character into the
editor and this session, as choosing one does; Save character then keeps it, through the
same store and scope rules as any character. Export card gives what the editor shows as a
V2 PNG card (modules/character_cards.py), written at the click and then offered by a
download button (as the Chat tab's export; modules/ui/chat_exchange.py says why).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from modules import character_cards, characters
from modules.ui import file_choices, notify
from modules.ui.chat_exchange import download_button, download_path, offer
from modules.ui.file_choices import FileButtons, FileForm, choices, refused, visitor

# Set in the state by this editor's own handlers: the editor already shows that state, so
# it must not be written back into the boxes (that would undo what is being typed).
SHOWN_HERE = "shown_in_editor"
_LIVE = dict(trigger_mode="always_last", show_progress="hidden", api_visibility="undocumented")
_QUIET = dict(show_progress="hidden", api_visibility="undocumented")
LIST_INFO = "Yours are marked (private); only an admin can change the shared ones."
CARD_FILE_TYPES = (".png", ".json", ".yaml", ".yml")


@dataclass
class CharacterUI:
    choice: gr.Dropdown
    shared: gr.Checkbox
    name: gr.Textbox
    context: gr.Textbox
    greeting: gr.Textbox
    picture: gr.Image
    buttons: FileButtons
    import_card: gr.UploadButton
    export_card: gr.Button
    card_file: gr.DownloadButton  # the exported card, to download
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
    with gr.Row():
        import_card = gr.UploadButton("Import card", file_types=list(CARD_FILE_TYPES), size="sm",
                                      variant="secondary", elem_id="character-import")
        export_card = gr.Button("Export card", size="sm", elem_id="character-export")
    card_file = download_button("character-card-file")
    status = gr.Markdown(elem_id="character-status")
    return CharacterUI(choice, shared, name, context, greeting, picture, buttons, import_card, export_card,
                       card_file, status)


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

    _wire_cards(ctx, ui)


def _wire_cards(ctx, ui: CharacterUI) -> None:
    max_bytes = int((ctx.limits.max_upload_mb if ctx.limits else 10) * 2**20)

    def import_card(path):
        """Into the editor and this session, unsaved; a bad file changes nothing."""
        if not path:
            return [gr.skip()] * 6 + [""]
        upload = Path(path)
        try:
            if upload.stat().st_size > max_bytes:
                raise character_cards.CardError(f"{upload.name} is over the upload limit of "
                                                f"{max_bytes / 2**20:.0f} MiB.")
            card = character_cards.read_character_file(upload.read_bytes(), upload.name, max_bytes)
        except (ValueError, OSError) as exc:
            return [gr.skip()] * 6 + [refused("Not imported", exc)]
        picture = str(upload) if card.picture else None
        state = {"name": card.name, "context": card.context, "greeting": card.greeting, "picture": picture,
                 SHOWN_HERE: True}
        note = (f"Imported {card.kind} **{notify.plain(card.name)}**: this session uses it now. "
                "Press Save character to keep it.")
        return [state, gr.Dropdown(value=None), card.name, card.context, card.greeting, picture, note]

    ui.import_card.upload(import_card, [ui.import_card], [ctx.character_state, ui.choice, *ui.editors, ui.status],
                          **_QUIET)

    def export_card(name, context, greeting, picture):
        if not (name or "").strip():
            return gr.DownloadButton(visible=False), refused("Not exported",
                                                             ValueError("type the character's name first."))
        try:
            data = character_cards.card_png(name.strip(), context or "", greeting or "", picture)
        except (ValueError, OSError) as exc:
            return gr.DownloadButton(visible=False), refused("Not exported", exc)
        path = download_path(name.strip(), ".png", data)
        return offer(path), f"Card of **{notify.plain(name.strip())}** ready: the button above downloads it."

    ui.export_card.click(export_card, ui.editors, [ui.card_file, ui.status], **_QUIET)
