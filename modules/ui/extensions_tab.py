"""Extensions tab: which extensions are on (admins switch them), how each is doing, and
the controls of those enabled at start (their ui()).

Switching is checked on the server (roles.require_admin), whatever the page shows. An
extension switched on takes effect with the next request; its own controls need a
restart (the page is built once), and the list says so.
"""
from __future__ import annotations

import html
import logging
import traceback
from dataclasses import dataclass

import gradio as gr

from modules.roles import NotAdmin, require_admin
from modules.ui import common, notify
from modules.ui.context import UIContext

log = logging.getLogger("extensions")

INTRO = ("Extensions add to what the server does (text-generation-webui's extension scripts: "
         "`extensions/<name>/script.py`). Their hooks run in the order they were switched on. "
         "Settings inside an extension's own controls are yours alone.")
STATUS_MARKS = {"ok": "on", "failing": "on, failing", "not loaded": "could not be loaded", "off": "off"}


@dataclass
class ExtensionsUI:
    role_note: gr.Markdown
    enabled: gr.CheckboxGroup
    apply: gr.Button
    refresh: gr.Button
    status: gr.HTML
    table: gr.HTML


def build(ctx: UIContext) -> None:
    registry = ctx.extensions
    if registry is None:
        gr.Markdown("Extensions are not set up on this server.")
        return
    ui = create_ui(ctx)
    create_event_handlers(ctx, ui)
    draw_extension_controls(registry, tabs=False)


def create_ui(ctx: UIContext) -> ExtensionsUI:
    registry = ctx.extensions
    gr.Markdown(INTRO)
    role_note = gr.Markdown(elem_id="extensions-role-note")
    enabled = gr.CheckboxGroup(choices=_choices(registry), value=registry.enabled_names(),
                               label="Switched on", elem_id="extensions-enabled", interactive=False)
    with gr.Row():
        apply = gr.Button("Apply", variant="primary", elem_id="extensions-apply", visible=False, scale=0,
                          min_width=120)
        refresh = gr.Button("Refresh the list", elem_id="extensions-refresh", scale=0, min_width=160)
    status = gr.HTML(elem_id="extensions-status")
    table = gr.HTML(_table(registry), elem_id="extensions-list")
    return ExtensionsUI(role_note, enabled, apply, refresh, status, table)


def create_event_handlers(ctx: UIContext, ui: ExtensionsUI) -> None:
    registry = ctx.extensions

    def on_load(key, request: gr.Request):
        admin = common_is_admin(ctx, request)
        bind_session(ctx, request, key)
        note = ("You are an admin: switch extensions on or off for everyone here." if admin else
                "Only admins can switch extensions on or off; the list shows what is on.")
        return (note, gr.CheckboxGroup(choices=_choices(registry), value=registry.enabled_names(),
                                       interactive=admin),
                gr.Button(visible=admin), _table(registry))
    ctx.on_load.append((on_load, [ctx.browser_key], [ui.role_note, ui.enabled, ui.apply, ui.table]))
    # A new browser gets its key from the Chat tab's start-up event, after this one ran.
    def on_key(key, request: gr.Request):
        bind_session(ctx, request, key)
    ctx.browser_key.change(on_key, [ctx.browser_key], None, queue=False, show_progress="hidden")

    def apply(names, request: gr.Request):
        try:
            require_admin(ctx.identify(request, need_owner=False), "switch extensions on or off")
        except (NotAdmin, PermissionError) as exc:
            notify.warn(exc)
            return _paragraph(str(exc)), gr.skip(), _table(registry)
        messages = registry.set_enabled([n for n in names or [] if isinstance(n, str)])
        log.info("Extensions switched by an admin; now on: %s", ", ".join(registry.enabled_names()) or "none")
        return (_paragraph(" ".join(messages) or "Nothing changed."),
                gr.CheckboxGroup(choices=_choices(registry), value=registry.enabled_names()), _table(registry))
    ui.apply.click(apply, [ui.enabled], [ui.status, ui.enabled, ui.table], **common.QUIET)
    ui.refresh.click(lambda: _table(registry), None, ui.table, **common.QUIET)


def common_is_admin(ctx: UIContext, request) -> bool:
    try:
        return ctx.identify(request, None, need_owner=False).is_admin
    except PermissionError:
        return False


def bind_session(ctx: UIContext, request, key) -> None:
    """Ties this page's Gradio session to its owner, so the controls an extension made
    change this person's copy of its params."""
    try:
        who = ctx.identify(request, key)
    except (ValueError, PermissionError):
        return
    ctx.extensions.sessions.bind(getattr(request, "session_hash", None), who.owner)


def build_extension_tabs(ctx: UIContext) -> None:
    """Tabs of the extensions whose params say is_tab (inside the page's gr.Tabs)."""
    if ctx.extensions is not None:
        draw_extension_controls(ctx.extensions, tabs=True)


def draw_extension_controls(registry, *, tabs: bool) -> None:
    """Runs the ui() of each extension on at start, as TGW does: in its own tab when its
    params say is_tab, else here under its name. A ui() that fails is reported and the
    rest of the page is built."""
    for extension in registry.enabled():
        if "ui" not in extension.hooks or extension.is_tab != tabs:
            continue
        if tabs:
            with gr.Tab(extension.display_name, elem_classes="extension-tab"):
                _run_ui(registry, extension)
        else:
            with gr.Column(elem_classes="extension-controls"):
                gr.Markdown(f"### {html.escape(extension.display_name)}")
                _run_ui(registry, extension)
    registry.page_built = True


def _run_ui(registry, extension) -> None:
    try:
        extension.module.ui()
        extension.ui_on_page = True
    except Exception as exc:
        log.error("Extension '%s': ui() failed:\n%s", extension.name, traceback.format_exc())
        registry.record_failure(extension, "ui", f"ui() raised {type(exc).__name__}: {exc}")
        gr.Markdown(notify.plain(f"This extension's controls could not be built: {exc}"))


def _paragraph(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


def _choices(registry) -> list[tuple[str, str]]:
    rows = registry.rows()
    return [(row.display_name if row.display_name == row.name else f"{row.display_name} ({row.name})", row.name)
            for row in rows]


def _table(registry) -> str:
    """The extensions with their state and problems, escaped (errors quote extensions' text)."""
    rows = registry.rows()
    if not rows:
        return "<p>No extensions found in extensions/.</p>"
    lines = ['<table class="extensions-table"><tr><th>Extension</th><th>State</th><th>Notes</th></tr>']
    for row in rows:
        notes = "<br>".join(html.escape(note) for note in row.notes if note) or ""
        state = STATUS_MARKS.get(row.status, row.status)
        if row.status == "failing" and not row.enabled:
            state = "off (was failing)"
        lines.append(f'<tr data-extension="{html.escape(row.name)}"><td>{html.escape(row.display_name)}'
                     f'<br><code>{html.escape(row.name)}</code></td><td class="extension-state">'
                     f'{html.escape(state)}</td><td>{notes}</td></tr>')
    lines.append("</table>")
    return "\n".join(lines)
