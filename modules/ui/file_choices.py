"""What the tabs that list, save and delete named files share (presets, characters,
instruction templates, prompts): whose files to show, dropdown choices with private files
marked, the admins' "Shared with everyone" box, and refusals shown as warnings.

Every handler derives the Identity on the server from its gr.Request and the browser key
(ctx.identify); the store (modules.named_files) refuses shared writes by non-admins even
when a client calls the queue endpoint directly, so hiding the box is only a courtesy.
"""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from modules.named_files import PRIVATE, SHARED, Library
from modules.ui import notify

SHARED_LABEL = "Shared with everyone"
# Why a save or delete can fail: a bad name or file (ValueError), not an admin (NotAdmin is
# a PermissionError), the page still loading (ValueError from identify), the disk (OSError).
FAILURES = (ValueError, PermissionError, OSError)


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
