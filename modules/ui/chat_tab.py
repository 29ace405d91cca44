"""The Chat tab: stored conversations with the loaded model, streamed as they are written.

Builds components and wires events only; the actions live in modules/chat_service.py.
Whose chats these are comes from the login, or from a random key kept in the browser.
"""
from __future__ import annotations

import secrets

import gradio as gr

from modules import characters
from modules.chat_modes import MODES, Character
from modules.chat_service import ChatSettings
from modules.chat_session import SessionControl
from modules.history_store import ChatNotFound
from modules.params import GenerationParams, ParamError
from modules.request_limits import LimitExceeded
from modules.ui import file_choices, notify
from modules.ui.context import UIContext

NO_CHANGE = gr.skip()
BUSY = "A reply is still being written in this browser: wait for it or press Stop."


def build(ctx: UIContext) -> None:
    service = ctx.chat
    browser_key = ctx.browser_key
    owner = gr.State(None)                     # this person's roles.Identity, derived on the server at page load
    chat_id = gr.State(None)                   # the open chat; None = a new one, not stored yet
    control = gr.State(SessionControl)         # this browser's request in flight

    with gr.Row():
        with gr.Column(scale=1, min_width=220):
            new_chat = gr.Button("New chat", variant="secondary", elem_id="chat-new")
            search = gr.Textbox(placeholder="Search chats", show_label=False, elem_id="chat-search")
            chat_list = gr.Radio([], label="Chats", elem_id="chat-list")
            with gr.Accordion("Rename or delete", open=False):
                new_title = gr.Textbox(show_label=False, placeholder="New title", elem_id="chat-title")
                rename = gr.Button("Rename", size="sm", elem_id="chat-rename")
                delete = gr.Button("Delete this chat", size="sm", variant="stop", elem_id="chat-delete")
        with gr.Column(scale=4):
            with gr.Row():
                mode = gr.Radio(list(MODES), value="chat", label="Mode", elem_id="chat-mode",
                                info="chat: the character's context is the system prompt; chat-instruct: "
                                     "the dialogue is given as an instruction; instruct: no character.")
                character = gr.Dropdown(file_choices.choices(file_choices.library(ctx).characters, None),
                                        value=None, label="Character",
                                        elem_id="chat-character")
            chatbot = gr.Chatbot(label="Chat", height=520, buttons=["copy", "copy_all"], editable="all",
                                 elem_id="chat-view", feedback_options=None)
            status = gr.Markdown(elem_id="chat-status")
            with gr.Row():
                # Enabled once the page knows whose chats these are (see on_load).
                textbox = gr.Textbox(placeholder="Send a message (Enter to send, Shift+Enter for a new line)",
                                     show_label=False, scale=8, lines=2, elem_id="chat-input",
                                     interactive=False)
                send = gr.Button("Send", variant="primary", scale=1, elem_id="chat-send", interactive=False)
                stop = gr.Button("Stop", variant="stop", scale=1, elem_id="chat-stop")
            with gr.Row():
                regenerate = gr.Button("Regenerate", size="sm", elem_id="chat-regenerate")
                continue_ = gr.Button("Continue", size="sm", elem_id="chat-continue")
                impersonate = gr.Button("Impersonate", size="sm", elem_id="chat-impersonate")
                remove_last = gr.Button("Remove last", size="sm", elem_id="chat-remove-last")

    # ---- helpers ------------------------------------------------------------------------
    def chat_choices(who, query="", selected=None):
        if not who:
            return gr.Radio(choices=[])
        return gr.Radio(choices=[(c.title, c.id) for c in service.store.list_chats(who.owner, query)],
                        value=selected)

    def settings_from(params_values, template, character_state, chat_mode) -> ChatSettings:
        params = GenerationParams.from_dict(params_values or {}, strict=False)
        return ChatSettings(params, template, chat_mode, Character.from_state(character_state))

    def greeting_view(character_state, chat_mode):
        greeting = Character.from_state(character_state).greeting.strip()
        if greeting and chat_mode != "instruct":
            return [{"role": "assistant", "content": Character.from_state(character_state).fill(greeting)}]
        return []

    def run(action, who, current_id, session, *, list_outputs=True):
        """Streams a chat action's updates to (chatbot, chat_id, status, textbox, chat_list)."""
        if not who:
            yield NO_CHANGE, current_id, "The page is still loading; try again.", NO_CHANGE, NO_CHANGE
            return
        if session.request is not None and session.request.finished is None:
            notify.warn(BUSY)
            yield NO_CHANGE, current_id, BUSY, NO_CHANGE, NO_CHANGE
            return
        try:
            first = True
            for update in action():
                for notice in update.notices:
                    notify.info(notice)
                if update.error:
                    notify.warn(update.error)
                refresh_list = list_outputs and (first or update.done)
                first = False
                yield (update.messages, update.chat_id or current_id, update.status,
                       update.draft if update.draft is not None else NO_CHANGE,
                       chat_choices(who, selected=update.chat_id) if refresh_list else NO_CHANGE)
        except (ParamError, LimitExceeded, ChatNotFound, ValueError) as exc:
            notify.warn(str(exc))
            yield NO_CHANGE, current_id, f"Error: {exc}", NO_CHANGE, NO_CHANGE

    # ---- events ----------------------------------------------------------------------------
    def on_load(key, request: gr.Request):
        if not key or len(key) < 16:
            key = secrets.token_urlsafe(24)
        who = ctx.identify(request, key)
        chats = service.store.list_chats(who.owner)
        current = chats[0].id if chats else None
        return (key, who, current, gr.Radio(choices=[(c.title, c.id) for c in chats], value=current),
                service.messages(who.owner, current), gr.Textbox(interactive=True), gr.Button(interactive=True))
    ctx.on_load.append((on_load, [browser_key],
                        [browser_key, owner, chat_id, chat_list, chatbot, textbox, send]))

    def send_message(text, who, current_id, params_values, template, character_state, chat_mode, session):
        text = (text or "").strip()
        if not text:
            yield NO_CHANGE, current_id, NO_CHANGE, NO_CHANGE, NO_CHANGE
            return
        def action():
            settings = settings_from(params_values, template, character_state, chat_mode)
            return service.send(who, current_id, text, settings, session)
        for out in run(action, who, current_id, session):
            messages, new_id, line, box, listing = out
            # the input box empties once the message is taken; it keeps the text on an error
            yield messages, new_id, line, ("" if messages is not NO_CHANGE else box), listing

    def simple_action(method):
        def handler(who, current_id, params_values, template, character_state, chat_mode, session):
            if not current_id:
                yield NO_CHANGE, current_id, "Send a message first.", NO_CHANGE, NO_CHANGE
                return
            def action():
                settings = settings_from(params_values, template, character_state, chat_mode)
                return method(who, current_id, settings, session)
            yield from run(action, who, current_id, session, list_outputs=False)
        return handler

    def impersonate_message(draft, who, current_id, params_values, template, character_state, chat_mode, session):
        def action():
            settings = settings_from(params_values, template, character_state, chat_mode)
            return service.impersonate(who, current_id, draft or "", settings, session)
        yield from run(action, who, current_id, session, list_outputs=False)

    generation_inputs = [owner, chat_id, ctx.params_state, ctx.template_state, ctx.character_state, mode, control]
    outputs = [chatbot, chat_id, status, textbox, chat_list]
    streaming = dict(concurrency_limit=None, show_progress="hidden")
    for trigger in (send.click, textbox.submit):
        trigger(send_message, [textbox] + generation_inputs, outputs, **streaming)
    regenerate.click(simple_action(service.regenerate), generation_inputs, outputs, **streaming)
    continue_.click(simple_action(service.continue_reply), generation_inputs, outputs, **streaming)
    impersonate.click(impersonate_message, [textbox] + generation_inputs, outputs, **streaming)
    stop.click(lambda session: session.stop() and None, [control], None, queue=False)

    def do_remove_last(who, current_id):
        if not (who and current_id):
            return NO_CHANGE, NO_CHANGE
        text = service.remove_last(who.owner, current_id)
        return service.messages(who.owner, current_id), text
    remove_last.click(do_remove_last, [owner, chat_id], [chatbot, textbox], queue=False)

    def do_edit(who, current_id, edit: gr.EditData):
        if not (who and current_id):
            return NO_CHANGE
        try:
            service.edit_message(who.owner, current_id, edit.index if isinstance(edit.index, int) else edit.index[0],
                                 edit.value)
        except (IndexError, LimitExceeded, ChatNotFound) as exc:
            notify.warn(str(exc))
        return service.messages(who.owner, current_id)
    chatbot.edit(do_edit, [owner, chat_id], [chatbot])

    def start_new_chat(session, character_state, chat_mode):
        session.stop()
        return None, greeting_view(character_state, chat_mode), "", gr.Radio(value=None)
    new_chat.click(start_new_chat, [control, ctx.character_state, mode], [chat_id, chatbot, status, chat_list],
                   queue=False)

    def open_chat(who, selected, session):
        if not (who and selected):
            return NO_CHANGE, NO_CHANGE, NO_CHANGE
        session.stop()
        try:
            return selected, service.messages(who.owner, selected), ""
        except ChatNotFound as exc:
            return None, [], f"Error: {exc}"
    chat_list.input(open_chat, [owner, chat_list, control], [chat_id, chatbot, status], queue=False)
    search.change(lambda who, query: chat_choices(who, query), [owner, search], [chat_list], queue=False)

    def do_rename(who, current_id, title):
        if who and current_id and title.strip():
            service.store.rename_chat(who.owner, current_id, title)
        return chat_choices(who, selected=current_id), ""
    rename.click(do_rename, [owner, chat_id, new_title], [chat_list, new_title], queue=False)

    def do_delete(who, current_id, session):
        if who and current_id:
            session.stop()
            service.store.delete_chat(who.owner, current_id)
        return None, [], chat_choices(who)
    delete.click(do_delete, [owner, chat_id, control], [chat_id, chatbot, chat_list], queue=False)

    def pick_character(name, chat_mode, key, request: gr.Request):
        if not name:
            return NO_CHANGE, NO_CHANGE
        try:
            state = characters.load_character(name, file_choices.library(ctx).characters,
                                              file_choices.visitor(ctx, request, key)).to_state()
        except ValueError as exc:
            notify.warn(str(exc))
            return NO_CHANGE, NO_CHANGE
        return state, NO_CHANGE
    character.input(pick_character, [character, mode, browser_key], [ctx.character_state, status],
                    queue=False)
    file_choices.list_on_load(ctx, file_choices.library(ctx).characters, character)   # this person's too
