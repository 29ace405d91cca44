"""What the tabs that list, save and delete named files share (presets, characters,
instruction templates, prompts): whose files to show, dropdown choices with private files
marked, the admins' "Shared with everyone" box, refusals shown as warnings, and Save and
Delete buttons that ask before they overwrite or delete a file (wire_save_and_delete).

Every handler derives the Identity on the server from its gr.Request and the browser key
(ctx.identify); the store (modules.named_files) refuses shared writes by non-admins even
when a client calls the queue endpoint directly, so hiding the box is only a courtesy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import gradio as gr

from modules.named_files import PRIVATE, SHARED, Library, NamedFiles
from modules.safe_files import safe_name
from modules.ui import notify
from modules.ui.common import AskFirst, ask_first

SHARED_LABEL = "Shared with everyone"
# Why a save or delete can fail: a bad name or file (ValueError), not an admin (NotAdmin is
# a PermissionError), the page still loading (ValueError from identify), the disk (OSError).
FAILURES = (ValueError, PermissionError, OSError)
# UI plumbing, not an API: kept out of the API page.
_QUIET = dict(show_progress="hidden", api_visibility="undocumented")


def library(ctx) -> Library:
    """The server's Library (ctx.files); one over the project and data folders if the
    server did not make one."""
    if ctx.files is None:
        ctx.files = Library(ctx.root, ctx.extras.get("data_dir") or Path(ctx.root) / "data")
    return ctx.files


def visitor(ctx, request, browser_key):
    """The Identity whose files to list, or None while the page does not know it yet (a
    new browser gets its key from the Chat tab's start-up event): then shared files only,
    which is all such a browser has."""
    try:
        return ctx.identify(request, browser_key)
    except (ValueError, PermissionError):
        return None


def is_admin(ctx, request) -> bool:
    try:
        return ctx.identify(request, None, need_owner=False).is_admin
    except PermissionError:
        return False


def choices(store, identity, first=()) -> list[tuple[str, str]]:
    """(label, name) pairs: `first` (fixed entries), then this person's files."""
    return [(item, item) for item in first] + [(e.label, e.name) for e in store.entries(identity)]


def shared_box() -> gr.Checkbox:
    """Hidden until the page's start-up shows it to admins (see show_to_admins)."""
    return gr.Checkbox(False, label=SHARED_LABEL, visible=False, min_width=160,
                       info="Admins: save into the project folder every user sees "
                            "(unticked: your private files).")


def show_to_admins(ctx, request) -> gr.Checkbox:
    return gr.Checkbox(visible=is_admin(ctx, request))


def list_on_load(ctx, store, dropdown, box=None, first=()) -> None:
    """Lists this person's files in `dropdown` when a page opens (choices are fixed when the
    page is built, before anyone's files are known) and again once a new browser has its key;
    shows the shared box, if any, to admins. triggers=None: on load and when the key changes."""
    def list_files(key, request: gr.Request):
        listed = gr.Dropdown(choices=choices(store, visitor(ctx, request, key), first))
        return (listed, show_to_admins(ctx, request)) if box is not None else listed

    gr.on(None, list_files, [ctx.browser_key], [dropdown] + ([box] if box is not None else []),
          show_progress="hidden", api_visibility="undocumented")


def scope_for(shared: bool) -> str:
    return SHARED if shared else PRIVATE


def where(scope: str) -> str:
    return "shared with everyone" if scope == SHARED else "private: only you see it"


def refused(action: str, error: Exception) -> str:
    """Shows why as a warning toast (escaped: toasts render HTML) and returns the status line."""
    message = f"{action}: {error}"
    notify.warn(message)
    return f"⚠️ {message}"


# ---- Save and Delete that ask first ---------------------------------------------------------

@dataclass
class FileButtons:
    save: gr.Button
    delete: gr.Button
    asking: AskFirst       # "Overwrite 'X'?" / "Delete 'X'?" and Cancel, in their place


def file_buttons(noun: str, elem_id: str | None = None) -> FileButtons:
    """Builds Save and Delete in the current row, with the hidden question beside them."""
    save = gr.Button(f"Save {noun}", size="sm", elem_id=f"{elem_id}-save" if elem_id else None)
    delete = gr.Button(f"Delete {noun}", size="sm", variant="stop",
                       elem_id=f"{elem_id}-delete" if elem_id else None)
    return FileButtons(save, delete, ask_first([save, delete], elem_id))


@dataclass
class FileForm:
    """One kind of named file on a page: `dropdown` holds the chosen name (what Delete
    deletes), `name_box` the name to save under, `contents` the components whose values
    `write(name, values, identity, scope) -> Path` saves."""
    store: NamedFiles
    noun: str
    dropdown: gr.Dropdown
    name_box: gr.Textbox
    contents: list
    shared: gr.Checkbox
    status: gr.Markdown
    buttons: FileButtons
    write: Callable
    # Optional: more outputs, and their updates after a save or delete, given
    # (name, identity, content values).
    extra_outputs: list = field(default_factory=list)
    after_save: Callable | None = None
    after_delete: Callable | None = None
    deleted_note: str = ""


def wire_save_and_delete(ctx, form: FileForm) -> None:
    """Save writes at once unless a file of that name is there in that place; then the
    buttons turn into "Overwrite 'X'?" and Cancel. Delete always asks. Who may write is
    checked (by the store) before any question, so a visitor is refused at once."""
    store, noun, ask = form.store, form.noun, form.buttons.asking
    untouched = [gr.skip()] * len(form.extra_outputs)

    def reply(status, asking, dropdown=gr.skip(), extras=None):
        return [dropdown, status, *asking, *(untouched if extras is None else extras)]

    def save_now(name, values, who, scope):
        path = form.write(name, values, who, scope)
        extras = form.after_save(path.stem, who, values) if form.after_save else None
        return reply(f"Saved {noun} **{path.stem}** ({where(scope)}).", ask.settle(),
                     gr.Dropdown(choices=choices(store, who), value=path.stem), extras)

    def save(request: gr.Request, name, *rest):
        *values, to_shared, key = rest
        scope = scope_for(to_shared)
        try:
            who = ctx.identify(request, key)
            name = safe_name(name)
            store.writable_folder(who, scope)
            if store.find(name, who, scope) is None:
                return save_now(name, values, who, scope)
        except FAILURES as exc:
            return reply(refused("Not saved", exc), ask.settle())
        return reply(f"A {noun} named **{name}** is already there ({where(scope)}). Overwrite it?",
                     ask.ask({"action": "save", "name": name, "scope": scope}, f"Overwrite '{name}'?"))

    def delete(chosen, key, request: gr.Request):
        if not chosen:
            return reply(f"Choose the {noun} to delete first.", ask.settle())
        try:
            who = ctx.identify(request, key)
            entry = store.get(chosen, who)
            store.writable_folder(who, entry.scope)
        except FAILURES as exc:
            return reply(refused("Not deleted", exc), ask.settle())
        about = {"action": "delete", "name": entry.name, "scope": entry.scope}
        return reply(f"Delete the {entry.scope} {noun} **{entry.name}**? This cannot be undone.",
                     ask.ask(about, f"Delete '{entry.name}'?"))

    def delete_now(about, values, who):
        store.delete(about["name"], who, about["scope"])
        extras = form.after_delete(about["name"], who, values) if form.after_delete else None
        return reply(_deleted(store, noun, about["name"], about["scope"], who) + form.deleted_note,
                     ask.settle(), gr.Dropdown(choices=choices(store, who), value=None), extras)

    def confirm(request: gr.Request, about, name, chosen, *rest):
        """The Yes: acts only if the question is still about what the page shows now; if
        the name or choice changed meanwhile, it asks again about the new one."""
        *values, to_shared, key = rest
        if not about:
            return reply("", ask.settle())
        if about["action"] == "delete" and chosen != about["name"]:
            return delete(chosen, key, request)
        if about["action"] == "save" and ((name or "").strip() != about["name"]
                                          or scope_for(to_shared) != about["scope"]):
            return save(request, name, *rest)
        try:
            who = ctx.identify(request, key)
            if about["action"] == "delete":
                return delete_now(about, values, who)
            return save_now(about["name"], values, who, about["scope"])
        except FAILURES as exc:
            return reply(refused("Not deleted" if about["action"] == "delete" else "Not saved", exc),
                         ask.settle())

    def cancel(about):
        return reply(f"Cancelled: **{about['name']}** is unchanged." if about else "", ask.settle())

    outputs = [form.dropdown, form.status, *ask.outputs, *form.extra_outputs]
    key = ctx.browser_key
    form.buttons.save.click(save, [form.name_box, *form.contents, form.shared, key], outputs, **_QUIET)
    form.buttons.delete.click(delete, [form.dropdown, key], outputs, **_QUIET)
    ask.confirm.click(confirm, [ask.pending, form.name_box, form.dropdown, *form.contents,
                                form.shared, key], outputs, **_QUIET)
    ask.cancel.click(cancel, [ask.pending], outputs, **_QUIET)


def _deleted(store, noun: str, name: str, scope: str, who) -> str:
    if scope == SHARED:
        return f"Deleted the shared {noun} **{name}**."
    again = " (the shared one of that name shows again)" if store.find(name, who) else ""
    return f"Deleted your private {noun} **{name}**{again}."
