"""The Chat tab: stored conversations with the loaded model, streamed as they are written.

create_ui builds the components; create_event_handlers wires them. The actions live in
modules/chat_service.py. Whose chats these are comes from the login, or from a random key
kept in the browser; which chat is on screen, and the reply being written, are kept per
page on the server (ChatPage), so a message always goes to the chat the person sees.
Under the view, "‹ 2/3 ›" moves between versions (modules/ui/chat_versions.py); files chosen
with Attach wait as chips and go with the next message (modules/ui/chat_attachments.py).
"""
from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass

import gradio as gr

from modules import characters
from modules.attachments import shown_text
from modules.chat_modes import MODES, Character
from modules.chat_service import ChatSettings
from modules.chat_session import SessionControl
from modules.history_store import ChatNotFound
from modules.params import GenerationParams, ParamError
from modules.request_limits import LimitExceeded
from modules.ui import chat_exchange as exchange_ui
from modules.ui import chat_attachments as attach_ui
from modules.ui import chat_tools as tools_ui
from modules.ui import chat_versions as versions_ui
from modules.ui import common, file_choices, notify
from modules.ui.context import UIContext
from modules.ui.parameters_tab import thinking_state

SKIP = gr.skip()
BUSY = ("A reply is still being written: your message stays in the box. "
        "Send it when the reply ends, or press Stop.")
LOADING = "The page is still loading; try again."
REFUSALS = (ParamError, LimitExceeded, ChatNotFound, ValueError)
REPLY_END_WAIT = 15.0      # seconds a switch of chats waits for the stopped reply's last update
# Enter in the chat view's message editor saves the edit (Shift+Enter: a new line). Gradio's
# editor has no key handling of its own; its Submit button is the only other way.
EDIT_KEYS_JS = """() => {
  if (window.chatEditKeys) return;
  window.chatEditKeys = true;
  document.addEventListener('keydown', (event) => {
    const box = event.target;
    if (event.key !== 'Enter' || event.shiftKey || event.isComposing) return;
    if (!(box instanceof HTMLTextAreaElement) || !box.matches('#chat-view textarea.edit-textarea')) return;
    const save = document.querySelector('#chat-view button[aria-label="Submit"]');
    if (!save) return;
    event.preventDefault();
    event.stopPropagation();
    save.click();
  }, true);
}"""


@dataclass(frozen=True)
class Turn:
    """A reply's claim on the page: the view it was started in and the chat it goes to."""
    view: int
    chat_id: str | None


class ChatPage:
    """One browser page's Chat tab on the server: the chat on screen and the reply being
    written. Every event of the page gets this same object (a gr.State), so a switch of
    chats is seen at once by the reply it interrupts."""

    def __init__(self):
        self.chat_id: str | None = None        # None: a new chat, stored with its first message
        self.control = SessionControl()        # the request in flight, for Stop
        self._view = 0                         # counts switches of chats
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._stop_asked = False
        self.attachments: list = []            # files chosen for the next message (attachments.Attachment)
        self.edit_awaits_reply = False         # an edit made a new branch: its reply comes next

    def __deepcopy__(self, memo):
        return self        # gr.State copies a new session's value; this one was just made for it

    def begin_reply(self) -> Turn | None:
        """The page's claim for one reply, or None while another is being written. A reply
        already stopped is waited for (Stop, then Enter at once, sends)."""
        if self._stop_asked:
            self._idle.wait(REPLY_END_WAIT)
        with self._lock:
            if not self._idle.is_set():
                return None
            self._idle.clear()
            self._stop_asked = False
            return Turn(self._view, self.chat_id)

    def end_reply(self) -> None:
        self._idle.set()

    def shows(self, turn: Turn) -> bool:
        return turn.view == self._view

    def adopt(self, turn: Turn, chat_id: str) -> None:
        """The reply's new chat is the one on screen, unless the person has moved on."""
        with self._lock:
            if turn.view == self._view:
                self.chat_id = chat_id

    def stop(self) -> None:
        self._stop_asked = True                # also before the request exists (see follow)
        self.control.stop()

    def stop_if_asked(self, turn: Turn) -> None:
        if self._stop_asked or not self.shows(turn):
            self.control.stop()

    def go_to(self, chat_id: str | None) -> None:
        """Puts another chat on screen (None: a new one). A reply being written stops, and
        this returns once its last update is out, so that update cannot bring the old chat
        back over the caller's."""
        with self._lock:
            self._view += 1
            self.chat_id = chat_id
        self.stop()
        self._idle.wait(REPLY_END_WAIT)


@dataclass
class ChatUI:
    owner: gr.State               # this person's roles.Identity, derived on the server at page load
    page: gr.State                # ChatPage
    new_chat: gr.Button
    search: gr.Textbox
    chat_list: gr.Radio
    list_note: gr.Markdown
    new_title: gr.Textbox
    rename: gr.Button
    delete: gr.Button
    asking: common.AskFirst       # "Delete 'title'?" and Cancel in place of Rename and Delete
    mode: gr.Radio
    character: gr.Dropdown
    tools: tools_ui.ToolsUI       # which tools the model may call in this chat
    chatbot: gr.Chatbot
    status: gr.Markdown
    textbox: gr.Textbox
    send: gr.Button
    stop: gr.Button
    regenerate: gr.Button
    continue_: gr.Button
    impersonate: gr.Button
    remove_last: gr.Button
    exchange: exchange_ui.ExchangeUI   # Export / import of chats
    versions: versions_ui.VersionsUI   # "‹ 2/3 ›" under the chat view
    attach: attach_ui.AttachUI         # files for the next message


def build(ctx: UIContext) -> None:
    create_event_handlers(ctx, create_ui(ctx))


def create_ui(ctx: UIContext) -> ChatUI:
    owner, page = gr.State(None), gr.State(ChatPage)
    with gr.Row():
        with gr.Column(scale=1, min_width=220, elem_id="chat-sidebar"):   # folds on phones
            new_chat = gr.Button("New chat", variant="secondary", elem_id="chat-new")
            search = gr.Textbox(placeholder="Search chats", show_label=False, elem_id="chat-search")
            chat_list = gr.Radio([], label="Chats", elem_id="chat-list")
            list_note = gr.Markdown(elem_id="chat-list-note")
            with gr.Accordion("Rename or delete", open=False):
                new_title = gr.Textbox(show_label=False, placeholder="New title", elem_id="chat-title")
                with gr.Row():
                    rename = gr.Button("Rename", size="sm", elem_id="chat-rename")
                    delete = gr.Button("Delete this chat", size="sm", variant="stop", elem_id="chat-delete")
                    asking = common.ask_first([rename, delete], elem_id="chat-delete")
            exchange = exchange_ui.create_ui()
        with gr.Column(scale=4):
            with gr.Row():
                mode = gr.Radio(list(MODES), value="chat", label="Mode", elem_id="chat-mode",
                                info="chat: the character's context is the system prompt; chat-instruct: "
                                     "the dialogue is given as an instruction; instruct: no character.")
                character = gr.Dropdown(file_choices.choices(file_choices.library(ctx).characters, None),
                                        value=None, label="Character", elem_id="chat-character",
                                        info="Choosing one starts a new chat with it.")
            tools = tools_ui.create_ui(ctx.chat.tools)
            chatbot = gr.Chatbot(label="Chat", height=520, buttons=["copy", "copy_all"], editable="all",
                                 elem_id="chat-view", feedback_options=None)
            versions = versions_ui.create_ui()
            status = gr.Markdown(elem_id="chat-status")
            file_chips, clear_files = attach_ui.create_chips()
            with gr.Row():
                # One line that grows: Gradio sends a one-line box on Enter and leaves
                # Shift+Enter to the browser (a new line). Enabled once the page knows whose
                # chats these are (see on_load).
                textbox = gr.Textbox(placeholder="Send a message (Enter to send, Shift+Enter for a new line)",
                                     show_label=False, scale=8, lines=1, max_lines=12, elem_id="chat-input",
                                     interactive=False)
                attach = attach_ui.AttachUI(attach_ui.create_button(), file_chips, clear_files)
                send = gr.Button("Send", variant="primary", scale=1, elem_id="chat-send", interactive=False)
                stop = gr.Button("Stop", variant="stop", scale=1, elem_id="chat-stop")
            with gr.Row():
                regenerate = gr.Button("Regenerate", size="sm", elem_id="chat-regenerate")
                continue_ = gr.Button("Continue", size="sm", elem_id="chat-continue")
                impersonate = gr.Button("Impersonate", size="sm", elem_id="chat-impersonate")
                remove_last = gr.Button("Remove last", size="sm", elem_id="chat-remove-last")
    return ChatUI(owner, page, new_chat, search, chat_list, list_note, new_title, rename, delete, asking,
                  mode, character, tools, chatbot, status, textbox, send, stop, regenerate, continue_,
                  impersonate, remove_last, exchange, versions, attach)


def create_event_handlers(ctx: UIContext, ui: ChatUI) -> None:
    views = ChatViews(ctx)
    _wire_load(ctx, ui, views)
    reply_to_edit = _wire_replies(ctx, ui, views)
    _wire_navigation(ctx, ui, views)
    _wire_chat_edits(ctx, ui, views, reply_to_edit)
    _wire_characters(ctx, ui, views)
    versions_ui.wire(ui.versions, ctx.chat, ui.owner, ui.page, ui.chatbot, ui.status)
    attach_ui.wire(ui.attach, ctx.chat.store.limits, ui.owner, ui.page, ui.status)
    tools_ui.wire(ui.tools, ui.owner, ui.page, ctx.chat.store)
    _then_versions(ctx, ui, exchange_ui.create_event_handlers(ctx, ui.exchange, ui, views))
    gr.on(None, None, js=EDIT_KEYS_JS)


class ChatViews:
    """What the handlers show: the chat list, greetings, a reopened chat's mode and character."""

    def __init__(self, ctx: UIContext):
        self.ctx = ctx
        self.service = ctx.chat

    def chat_list(self, who, query="", selected=None):
        if not who:
            return gr.Radio(choices=[])
        chats = self.service.store.list_chats(who.owner, query or "")
        return gr.Radio(choices=[(c.title, c.id) for c in chats], value=selected)

    def greeting(self, character_state, chat_mode) -> list[dict]:
        character = Character.from_state(character_state)
        if character.greeting.strip() and chat_mode != "instruct":
            return [{"role": "assistant", "content": character.fill(character.greeting.strip())}]
        return []

    def settings(self, params_values, template, character_state, chat_mode, tools=(),
                 tool_choice="auto", enable_thinking=True) -> ChatSettings:
        params = GenerationParams.from_dict(params_values or {}, strict=False)
        return ChatSettings(params, template, chat_mode, Character.from_state(character_state),
                            character_file(character_state), list(tools or []), tool_choice or "auto",
                            enable_thinking is not False)

    def character(self, who, stored: str, character_state):
        """(character_state, dropdown, note) updates that bring back a chat's character."""
        if stored == character_file(character_state):
            return SKIP, SKIP, ""
        if not stored:
            return dict(self.ctx.character_state.value or {}, file=""), None, ""
        try:
            loaded = characters.load_character(stored, file_choices.library(self.ctx).characters, who)
        except ValueError:
            name = Character.from_state(character_state).name
            return SKIP, SKIP, f"This chat's character “{stored}” is no longer there; replies use {name}."
        return dict(loaded.to_state(), file=stored), stored, ""

    def open(self, who, chat_id, character_state):
        """Updates for (chatbot, mode, character_state, character, new_title, status,
        *tools.outputs)."""
        chat = self.service.store.get_chat(who.owner, chat_id)
        state, dropdown, note = self.character(who, chat.character, character_state)
        return (self.service.messages(who.owner, chat_id), chat.mode, state, dropdown, chat.title, note,
                *tools_ui.shown(self.service.tools, chat.tools, chat.tool_choice))


def character_file(character_state) -> str:
    """The name a chat stores for its character: the file it was chosen from in this tab,
    else (chosen or typed in the Parameters tab) its name."""
    state = character_state or {}
    return state["file"] if "file" in state else (state.get("name") or "")


# ---- page load -------------------------------------------------------------------------------

def _wire_load(ctx: UIContext, ui: ChatUI, views: ChatViews) -> None:
    service = ctx.chat

    def on_load(key, page, character_state, request: gr.Request):
        if not key or len(key) < 16:
            key = secrets.token_urlsafe(24)
        who = ctx.identify(request, key)
        chats = service.store.list_chats(who.owner)
        page.chat_id = chats[0].id if chats else None
        shown = (views.open(who, page.chat_id, character_state) if page.chat_id
                 else ([], SKIP, SKIP, SKIP, "", "", *tools_ui.shown(service.tools)))
        messages, chat_mode, state, dropdown, title, _, *tools = shown
        return (key, who, gr.Radio(choices=[(c.title, c.id) for c in chats], value=page.chat_id),
                messages, gr.Textbox(interactive=True), gr.Button(interactive=True),
                chat_mode, state, dropdown, title, *tools,
                *versions_ui.updates(service.versions(who.owner, page.chat_id)))
    ctx.on_load.append((on_load, [ctx.browser_key, ui.page, ctx.character_state],
                        [ctx.browser_key, ui.owner, ui.chat_list, ui.chatbot, ui.textbox, ui.send,
                         ui.mode, ctx.character_state, ui.character, ui.new_title, *ui.tools.outputs,
                         *ui.versions.outputs]))


# ---- replies -------------------------------------------------------------------------------

def _wire_replies(ctx: UIContext, ui: ChatUI, views: ChatViews) -> None:
    """Send, Regenerate, Continue, Impersonate: one reply at a time per page, streamed to
    (chatbot, new_title, status, textbox, chat_list) while its chat is on screen. The box is
    emptied once, when a message is taken; typing during the reply is never touched."""
    service = ctx.chat

    def follow(who, page, turn, updates, query, *, to_box=False):
        first = True
        try:
            for update in updates:
                common.announce(update.notices, update.error)
                page.stop_if_asked(turn)
                if not page.shows(turn):
                    yield SKIP, SKIP, SKIP, SKIP, SKIP      # the person has moved on: stay off screen
                    continue
                title = SKIP
                if first and turn.chat_id is None and update.chat_id:
                    page.adopt(turn, update.chat_id)
                    title = service.store.get_chat(who.owner, update.chat_id).title
                listing = views.chat_list(who, query, page.chat_id) if first or update.done else SKIP
                box = update.draft if to_box and update.draft is not None else SKIP
                first = False
                yield update.messages, title, update.status, box, listing
        except REFUSALS as exc:
            notify.warn(str(exc))
            yield SKIP, SKIP, f"Error: {exc}", SKIP, SKIP

    def claim(who, page):
        """The page's turn, or why not as (status line) after a warning toast."""
        if not who:
            return None, LOADING
        turn = page.begin_reply()
        if turn is None:
            notify.warn(BUSY)
            return None, BUSY
        return turn, None

    def send_message(text, who, page, params_values, template, character_state, chat_mode, query, *tools):
        text = (text or "").strip()
        files = list(page.attachments)
        if not (text or files):
            yield SKIP, SKIP, SKIP, SKIP, SKIP
            return
        turn, refusal = claim(who, page)
        if turn is None:
            yield SKIP, SKIP, refusal, SKIP, SKIP          # the text stays in the box
            return
        try:
            try:
                settings = views.settings(params_values, template, character_state, chat_mode, *tools)
                service.check_send(who.owner, turn.chat_id, text, files)
            except REFUSALS as exc:
                notify.warn(str(exc))
                yield SKIP, SKIP, f"Error: {exc}", SKIP, SKIP
                return
            shown = (service.messages(who.owner, turn.chat_id) if turn.chat_id
                     else views.greeting(character_state, chat_mode))
            page.attachments = []
            yield shown + [{"role": "user", "content": shown_text(text, files)}], SKIP, "Sending...", "", SKIP
            yield from follow(who, page, turn, service.send(who, turn.chat_id, text, settings, page.control,
                                                            attachments=files), query)
        finally:
            page.end_reply()

    def on_chat(method, *, needs_chat=True, to_box=False):
        def handler(draft, who, page, params_values, template, character_state, chat_mode, query, *tools):
            turn, refusal = claim(who, page)
            if turn is None:
                yield SKIP, SKIP, refusal, SKIP, SKIP
                return
            try:
                if needs_chat and not turn.chat_id:
                    yield SKIP, SKIP, "Send a message first.", SKIP, SKIP
                    return
                try:
                    settings = views.settings(params_values, template, character_state, chat_mode, *tools)
                except REFUSALS as exc:
                    yield SKIP, SKIP, f"Error: {exc}", SKIP, SKIP
                    return
                yield from follow(who, page, turn, method(who, turn.chat_id, draft, settings, page.control),
                                  query, to_box=to_box)
            finally:
                page.end_reply()
        return handler

    inputs = [ui.textbox, ui.owner, ui.page, ctx.params_state, ctx.template_state, ctx.character_state,
              ui.mode, ui.search, *ui.tools.inputs, thinking_state(ctx)]   # the Parameters tab's Thinking
    # status third: tests/load_client.py reads the finished reply's line there
    outputs = [ui.chatbot, ui.new_title, ui.status, ui.textbox, ui.chat_list]
    # "multiple": a second Send during a reply reaches the server and is answered (BUSY),
    # where Gradio's default would drop it without a word.
    streaming = dict(concurrency_limit=None, trigger_mode="multiple", **common.QUIET)
    def send_with_files(*args):
        """send_message, and the chips of the files waiting as they change (Send takes them)."""
        page, chips = args[2], list(args[2].attachments)
        for update in send_message(*args):
            changed = page.attachments != chips
            chips = list(page.attachments)
            yield (*update, *(attach_ui.waiting(chips) if changed else (SKIP, SKIP)))

    for trigger in (ui.send.click, ui.textbox.submit):
        _then_versions(ctx, ui, trigger(send_with_files, inputs, outputs + ui.attach.outputs, **streaming))
    regenerate = on_chat(lambda who, c, _, s, ctl: service.regenerate(who, c, s, ctl))
    _then_versions(ctx, ui, ui.regenerate.click(regenerate, inputs, outputs, **streaming))
    _then_versions(ctx, ui, ui.continue_.click(on_chat(lambda who, c, _, s, ctl: service.continue_reply(who, c, s, ctl)),
                                               inputs, outputs, **streaming))
    ui.impersonate.click(on_chat(lambda who, c, draft, s, ctl: service.impersonate(who, c, draft or "", s, ctl),
                                 needs_chat=False, to_box=True), inputs, outputs, **streaming)
    common.wire_stop(ui.stop, ui.page)

    def reply_to_edit(*args):
        """After an edit that made a new branch of the person's message: its reply."""
        page = args[2]
        if not page.edit_awaits_reply:
            yield SKIP, SKIP, SKIP, SKIP, SKIP
            return
        page.edit_awaits_reply = False
        yield from regenerate(*args)
    return lambda edited: _then_versions(ctx, ui, edited.then(reply_to_edit, inputs, outputs, **streaming))


def _then_versions(ctx: UIContext, ui: ChatUI, event) -> None:
    """After `event`, the "‹ 2/3 ›" controls show the versions of the chat then on screen."""
    event.then(versions_ui.refresher(ctx.chat), [ui.owner, ui.page], ui.versions.outputs, queue=False,
               **common.QUIET)


# ---- switching chats ---------------------------------------------------------------------

def _wire_navigation(ctx: UIContext, ui: ChatUI, views: ChatViews) -> None:
    """New chat, the chat view's trash icon, opening a chat, search: each puts on screen the
    chat that messages will go to, after the reply being written (if any) has stopped."""
    service = ctx.chat

    def start_new_chat(who, page, character_state, chat_mode, query):
        page.go_to(None)
        return (views.greeting(character_state, chat_mode), "", views.chat_list(who, query), "",
                *ui.asking.settle())
    new_chat_outputs = [ui.chatbot, ui.status, ui.chat_list, ui.new_title, *ui.asking.outputs]
    new_chat_inputs = [ui.owner, ui.page, ctx.character_state, ui.mode, ui.search]
    _then_versions(ctx, ui, ui.new_chat.click(start_new_chat, new_chat_inputs, new_chat_outputs, queue=False,
                                              **common.QUIET))
    # Gradio's trash icon has already emptied the view; the model must forget the chat too.
    _then_versions(ctx, ui, ui.chatbot.clear(start_new_chat, new_chat_inputs, new_chat_outputs, queue=False,
                                             **common.QUIET))

    def open_chat(who, selected, page, character_state):
        keep = (SKIP,) * len(ui.tools.outputs)
        if not (who and selected):
            return (SKIP,) * 6 + keep + tuple(ui.asking.settle())
        page.go_to(selected)
        try:
            return (*views.open(who, selected, character_state), *ui.asking.settle())
        except ChatNotFound as exc:
            page.go_to(None)
            return ([], SKIP, SKIP, SKIP, "", f"Error: {exc}", *keep, *ui.asking.settle())
    _then_versions(ctx, ui, ui.chat_list.input(open_chat, [ui.owner, ui.chat_list, ui.page, ctx.character_state],
                       [ui.chatbot, ui.mode, ctx.character_state, ui.character, ui.new_title, ui.status,
                        *ui.tools.outputs, *ui.asking.outputs], queue=False, **common.QUIET))

    def search_chats(who, query, page):
        listing = views.chat_list(who, query, page.chat_id)
        empty = bool((query or "").strip()) and who and not service.store.list_chats(who.owner, query, limit=1)
        return listing, "No chats match." if empty else ""
    ui.search.change(search_chats, [ui.owner, ui.search, ui.page], [ui.chat_list, ui.list_note],
                     queue=False, **common.QUIET)


# ---- rename, delete, edit, remove last, mode -------------------------------------------------

def _wire_chat_edits(ctx: UIContext, ui: ChatUI, views: ChatViews, reply_to_edit) -> None:
    service = ctx.chat

    def refuse(message):
        notify.warn(message)
        return message

    def do_rename(who, page, title, query):
        if not (who and page.chat_id):
            return SKIP, SKIP, refuse("Open a chat first: there is no chat to rename.")
        if not (title or "").strip():
            return SKIP, SKIP, refuse("Type the new title first.")
        service.store.rename_chat(who.owner, page.chat_id, title)
        title = service.store.get_chat(who.owner, page.chat_id).title
        return views.chat_list(who, query, page.chat_id), title, f"Renamed to “{title}”."
    ui.rename.click(do_rename, [ui.owner, ui.page, ui.new_title, ui.search],
                    [ui.chat_list, ui.new_title, ui.status], queue=False, **common.QUIET)

    def ask_delete(who, page):
        if not (who and page.chat_id):
            return (refuse("Open a chat first: there is no chat to delete."), *([SKIP] * len(ui.asking.outputs)))
        title = service.store.get_chat(who.owner, page.chat_id).title
        return "", *ui.asking.ask({"chat_id": page.chat_id}, f"Delete “{title}”? This cannot be undone.")
    ui.delete.click(ask_delete, [ui.owner, ui.page], [ui.status, *ui.asking.outputs], queue=False,
                    **common.QUIET)

    def confirm_delete(who, about, page, character_state, chat_mode, query):
        chat_id = (about or {}).get("chat_id")
        if not (who and chat_id):
            return (SKIP,) * 4 + tuple(ui.asking.settle())
        title = service.store.get_chat(who.owner, chat_id).title
        page.go_to(None)                     # a reply being written into it stops first
        service.store.delete_chat(who.owner, chat_id)
        return (views.greeting(character_state, chat_mode), views.chat_list(who, query), "",
                f"Deleted “{title}”.", *ui.asking.settle())
    _then_versions(ctx, ui, ui.asking.confirm.click(confirm_delete, [ui.owner, ui.asking.pending, ui.page, ctx.character_state,
                                             ui.mode, ui.search],
                            [ui.chatbot, ui.chat_list, ui.new_title, ui.status, *ui.asking.outputs],
                            queue=False, **common.QUIET))
    ui.asking.cancel.click(lambda: ui.asking.settle(), None, ui.asking.outputs, queue=False, **common.QUIET)

    def do_remove_last(who, page):
        if not (who and page.chat_id):
            return SKIP, SKIP, SKIP, SKIP, SKIP
        if page.begin_reply() is None:
            return SKIP, SKIP, refuse("A reply is still being written: wait for it or press Stop."), SKIP, SKIP
        try:
            text, files = service.take_last(who.owner, page.chat_id)
            page.attachments = files or page.attachments        # back with the text, to resend
            return (service.messages(who.owner, page.chat_id), text, "", *attach_ui.waiting(page.attachments))
        finally:
            page.end_reply()
    _then_versions(ctx, ui, ui.remove_last.click(do_remove_last, [ui.owner, ui.page],
                                                 [ui.chatbot, ui.textbox, ui.status, *ui.attach.outputs],
                                                 queue=False, **common.QUIET))

    def do_edit(who, page, edit: gr.EditData):
        if not (who and page.chat_id):
            return SKIP
        index = edit.index if isinstance(edit.index, int) else edit.index[0]
        try:
            # a new branch of the person's message: its reply follows (reply_to_edit)
            page.edit_awaits_reply = service.edit_message(who.owner, page.chat_id, index, edit.value)
        except (IndexError, LimitExceeded, ChatNotFound) as exc:
            notify.warn(str(exc))
        return service.messages(who.owner, page.chat_id)
    reply_to_edit(ui.chatbot.edit(do_edit, [ui.owner, ui.page], [ui.chatbot], **common.QUIET))

    def change_mode(who, page, chat_mode, character_state):
        if who and page.chat_id:             # the chat reopens in the mode it was left in
            service.store.set_chat_settings(who.owner, page.chat_id, mode=chat_mode)
            return SKIP
        return views.greeting(character_state, chat_mode)
    ui.mode.input(change_mode, [ui.owner, ui.page, ui.mode, ctx.character_state], [ui.chatbot],
                  queue=False, **common.QUIET)


# ---- characters --------------------------------------------------------------------------

def _wire_characters(ctx: UIContext, ui: ChatUI, views: ChatViews) -> None:
    store = file_choices.library(ctx).characters

    def list_characters(key, request: gr.Request):
        """This person's characters as they are now (saved in another tab, or by an admin,
        after the page opened)."""
        return gr.Dropdown(choices=file_choices.choices(store, file_choices.visitor(ctx, request, key)))
    file_choices.list_on_load(ctx, store, ui.character)
    ui.character.focus(list_characters, [ctx.browser_key], [ui.character], queue=False, **common.QUIET)

    def pick_character(name, who, page, chat_mode, query):
        if not (name and who):
            return (SKIP,) * 6
        try:
            state = dict(characters.load_character(name, store, who).to_state(), file=name)
        except ValueError as exc:
            notify.warn(str(exc))
            return (SKIP,) * 5 + (f"Error: {exc}",)
        page.go_to(None)                     # a new chat with this character, greeting first
        return (state, views.greeting(state, chat_mode), views.chat_list(who, query), "",
                gr.Dropdown(value=name), "")
    _then_versions(ctx, ui, ui.character.input(pick_character, [ui.character, ui.owner, ui.page, ui.mode, ui.search],
                       [ctx.character_state, ui.chatbot, ui.chat_list, ui.new_title, ui.character, ui.status],
                       queue=False, **common.QUIET))
