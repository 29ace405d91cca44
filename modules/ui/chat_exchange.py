"""The Chat tab's "Export / import": the chat on screen as text-generation-webui's history
JSON or as Markdown, and a TGW history imported as a new chat of this person.

Every handler takes the person from the Chat tab's owner state (an Identity derived on the
server when the page loaded) and the chat from the page's server-side ChatPage, never from
anything the browser sends, so an export only ever holds the person's own chat. The
conversions are modules/chat_exchange.py.

Export is a button that writes the file from the store at the click, then shows a
download button holding that file. A download button alone hands over the file it held
before the click, which would have to be rewritten on every streamed update of the chat to
be current, and could still be one update behind.
"""
from __future__ import annotations

import re
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from modules import characters, chat_exchange
from modules.history_store import ChatNotFound
from modules.request_limits import LimitExceeded
from modules.ui import common, file_choices, notify

SKIP = gr.skip()
LOADING = "The page is still loading; try again."
NOTHING = "There is no chat on screen to export yet: open one from the list, or send a message first."
KEEP_EXPORTS = 3600           # seconds an exported file stays in the server's temporary folder
_exports_lock = threading.Lock()
_exports: list[Path] = []     # this server's export folder (one, made on first use)


@dataclass
class ExchangeUI:
    export_json: gr.Button
    export_markdown: gr.Button
    exported: gr.DownloadButton   # the file just exported, to download
    upload: gr.UploadButton


def create_ui() -> ExchangeUI:
    with gr.Accordion("Export / import", open=False, elem_id="chat-exchange"):
        with gr.Row():
            export_json = gr.Button("Export as JSON", size="sm", elem_id="chat-export-json")
            export_markdown = gr.Button("Export as Markdown", size="sm", elem_id="chat-export-markdown")
        exported = download_button("chat-export-file")
        upload = gr.UploadButton("Import a text-generation-webui chat", file_types=[".json"], size="sm",
                                 variant="secondary", elem_id="chat-import")
    return ExchangeUI(export_json, export_markdown, exported, upload)


def create_event_handlers(ctx, ui: ExchangeUI, chat, views):
    """`chat`: the Chat tab's ChatUI (its owner and page states, and what an import puts on
    screen); `views`: its ChatViews, which open a chat the way the chat list does. Returns
    the import event, so the Chat tab can refresh what follows an opened chat."""
    store = ctx.chat.store
    characters_store = file_choices.library(ctx).characters
    max_bytes = int((ctx.limits.max_upload_mb if ctx.limits else 10) * 2**20)

    def refuse(message: str):
        notify.warn(message)
        return gr.DownloadButton(visible=False), message

    def export(kind: str):
        def handler(who, page, character_state):
            if not who:
                return refuse(LOADING)
            if not page.chat_id:
                return refuse(NOTHING)
            try:
                shown = store.get_chat(who.owner, page.chat_id)
            except ChatNotFound:
                return refuse(NOTHING)
            if kind == "json":
                data, suffix = chat_exchange.to_tgw_json(shown), ".json"
            else:
                name = speaker(who, shown.character, character_state)
                data, suffix = chat_exchange.to_markdown(shown, assistant_name=name), ".md"
            path = download_path(shown.title, suffix, data.encode("utf-8"))
            return offer(path), (f"Exported “{notify.plain(shown.title)}”: its Download button is under "
                                 "Export / import.")
        return handler

    def speaker(who, stored: str, character_state) -> str:
        """The name the chat's replies go under: its character's, as this person sees it."""
        if not stored:
            return (character_state or {}).get("name") or "Assistant"
        try:
            return characters.load_character(stored, characters_store, who).name
        except ValueError:
            return stored

    inputs = [chat.owner, chat.page, ctx.character_state]
    for button, kind in ((ui.export_json, "json"), (ui.export_markdown, "markdown")):
        button.click(export(kind), inputs, [ui.exported, chat.status], api_visibility="undocumented",
                     **common.QUIET)

    # views.open's updates, then the chat list
    outputs = [chat.chatbot, chat.mode, ctx.character_state, chat.character, chat.new_title, chat.status,
               *chat.tools.outputs, chat.chat_list]
    status_at = outputs.index(chat.status)

    def only_status(message: str) -> list:
        updates = [SKIP] * len(outputs)
        updates[status_at] = message
        return updates

    def import_chat(path, who, page, character_state, chat_mode, query):
        from modules.ui.chat_tab import character_file      # here: chat_tab imports this module
        if not who:
            notify.warn(LOADING)
            return only_status(LOADING)
        if not path:
            return [SKIP] * len(outputs)
        try:
            data = _read_upload(Path(path), max_bytes)
            chat_id = chat_exchange.import_tgw_chat(
                store, who.owner, data, Path(path).name, mode=chat_mode or "chat",
                character=character_file(character_state), max_bytes=max_bytes)
        except (ValueError, LimitExceeded, OSError) as exc:
            message = f"Not imported: {exc}"
            notify.warn(message)
            return only_status(notify.plain(message))
        page.go_to(chat_id)                  # like opening a chat: a reply being written stops first
        imported = store.get_chat(who.owner, chat_id)
        updates = [*views.open(who, chat_id, character_state), views.chat_list(who, query, chat_id)]
        done = f"Imported “{notify.plain(imported.title)}” ({len(imported.messages)} messages)."
        updates[status_at] = " ".join(filter(None, [done, updates[status_at]]))
        return updates

    return ui.upload.upload(import_chat, [ui.upload, chat.owner, chat.page, ctx.character_state, chat.mode,
                                          chat.search], outputs, api_visibility="undocumented", **common.QUIET)


def download_button(elem_id: str) -> gr.DownloadButton:
    """Hidden until an export has written its file (see offer)."""
    return gr.DownloadButton(visible=False, size="sm", variant="primary", elem_id=elem_id)


def offer(path: Path) -> gr.DownloadButton:
    """The download button holding `path`, named after it (a button's label wraps in a
    narrow column, where gr.File's row would cut the name)."""
    return gr.DownloadButton(f"⇣ Download {path.name}", value=str(path), visible=True)


def _read_upload(path: Path, max_bytes: int) -> bytes:
    """The uploaded file, refused before it is read if it is over the upload limit (Gradio
    checks too, but only for uploads through the page)."""
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"The file is {size / 2**20:.1f} MiB; the limit is {max_bytes / 2**20:.0f} MiB.")
    return path.read_bytes()


def download_path(title: str, suffix: str, data: bytes) -> Path:
    """Writes `data` to a file named after `title` in a folder of its own (only the server's
    user can read it; Gradio serves it from its cache to this page) and returns its path.
    Exports older than KEEP_EXPORTS are removed as new ones are made."""
    root = _exports_root()
    now = time.time()
    for old in root.iterdir():
        try:
            if now - old.stat().st_mtime > KEEP_EXPORTS:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass                              # removed by another export meanwhile
    folder = root / secrets.token_hex(8)
    folder.mkdir(mode=0o700)
    path = folder / (_file_stem(title) + suffix)
    path.write_bytes(data)
    return path


def _exports_root() -> Path:
    with _exports_lock:
        if not _exports or not _exports[0].is_dir():
            _exports[:] = [Path(tempfile.mkdtemp(prefix="workbench-exports-"))]
        return _exports[0]


def _file_stem(title: str) -> str:
    """A file name from a title: letters, digits and a few safe marks; never a path."""
    stem = re.sub(r"[^\w .,()-]+", "_", title or "", flags=re.UNICODE).strip(" ._")
    return stem[:80] or "chat"
