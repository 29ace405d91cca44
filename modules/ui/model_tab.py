"""The Model tab: the models in models/, the loader and its settings, Load / Unload /
Reload with progress, and downloads from a Hugging Face repository.

Loading is done by ModelManager, remembering settings by ModelSettingsStore and
downloading by hub_download; the form lives in model_form.py and what is shown in
model_view.py. The loaded model is shared by everyone using the server, so its status is
read fresh on each page load rather than kept in the page.

Only admins change the model (modules/roles.py): every handler that loads, unloads,
reloads or downloads checks the caller's role itself, because a client can call the
queue endpoints without the page; for everyone else the tab is read-only. Trusting a
model folder's own code is decided on the command line only (--trust-remote-code).
"""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from loaders.specs import LOADER_NAMES, SPECS_BY_NAME
from modules import hub_download
from modules.model_settings_store import ModelSettingsStore
from modules.roles import NotAdmin, require_admin
from modules.ui import memory_estimate
from modules.ui import model_view as view
from modules.ui import notify
from modules.ui.model_form import FIELDS, form_view, remember, settings_for, settings_form, settings_from_form, visibility

_QUIET = dict(show_progress="hidden", api_visibility="undocumented")
_MODEL_ACTION = dict(concurrency_limit=1, concurrency_id="model-load", api_visibility="undocumented")


def build(ctx) -> None:
    ui = create_ui(ctx)
    create_event_handlers(ctx, ui, ModelSettingsStore.in_folder(view.data_dir(ctx)))


def create_ui(ctx) -> SimpleNamespace:
    ui = SimpleNamespace()
    ui.role_note = gr.Markdown(elem_id="model-role-note")      # who may change the model
    with gr.Row():
        ui.model = gr.Dropdown(view.choices(ctx), value=view.loaded_name(ctx), label="Model", scale=6,
                               elem_id="model-choice", info=f"Files and folders in {ctx.models.model_dir}")
        ui.refresh = gr.Button("↻ Refresh", size="sm", scale=0, min_width=100, elem_id="model-refresh")
    with gr.Accordion("All models", open=False):
        ui.table = gr.Dataframe(view.table(ctx), headers=view.TABLE_HEADERS, interactive=False,
                                elem_id="model-table", label="Click a row to choose that model")
    with gr.Row():
        ui.loader = gr.Radio(list(LOADER_NAMES), value=None, label="Loader", elem_id="model-loader",
                             info="Preselected from the files; change it only to force another.")
    ui.settings_note = gr.Markdown(elem_id="model-settings-note")
    form = settings_form(ctx)
    ui.fields, ui.boxes = form.fields, form.boxes
    ui.memory = memory_estimate.create_ui(ctx.models.model_dir, getattr(ctx.default_load_settings, "cache_ram", 0))
    with gr.Row():
        ui.load = gr.Button("Load", variant="primary", elem_id="model-load")
        ui.unload = gr.Button("Unload", elem_id="model-unload")
        ui.reload = gr.Button("Reload", elem_id="model-reload")
    ui.status = gr.Markdown(elem_id="model-status")
    ui.info = gr.Markdown(elem_id="model-info")
    with gr.Accordion("Download from Hugging Face", open=False) as ui.download_box:
        with gr.Row():
            ui.repo = gr.Textbox(label="Repository", placeholder="bartowski/SmolLM2-135M-Instruct-GGUF",
                                 scale=3, elem_id="download-repo")
            ui.pattern = gr.Textbox(label="File (optional)", placeholder="*Q4_K_M.gguf", scale=2,
                                    elem_id="download-file",
                                    info="A name or pattern; empty: the whole repository.")
        ui.download = gr.Button("Download", elem_id="download-start")
        ui.download_status = gr.Markdown(
            f"From {hub_download.endpoint()} (set HF_ENDPOINT for a mirror). A single GGUF file goes "
            "into the models folder, anything else into a folder named owner_name.", elem_id="download-status")
    return ui


def create_event_handlers(ctx, ui: SimpleNamespace, store: ModelSettingsStore) -> None:
    _choosing_and_page_load(ctx, ui, store)
    fields = dict(zip(FIELDS, ui.fields))
    ui.memory.wire(ui.model, fields["ctx_size"], fields["parallel"], fields.get("cache_type"),
                   fields.get("batch_size"), fields.get("flash_attn"))
    _load_unload_reload(ctx, ui, store)
    _download(ctx, ui)


def _admin_refusal(ctx, request, action: str) -> str | None:
    """None for an admin; for anyone else the refusal, already shown as a warning."""
    try:
        require_admin(ctx.identify(request, need_owner=False), action)
    except NotAdmin as exc:
        notify.warn(str(exc))
        return f"⚠️ {exc}"
    return None


def _choosing_and_page_load(ctx, ui, store) -> None:
    shown_form = [ui.loader, ui.settings_note, *ui.boxes, *ui.fields]

    def choose(name):
        settings, note = settings_for(ctx, store, name)
        return [settings.loader, note, *form_view(settings)]

    ui.model.change(choose, ui.model, shown_form, **_QUIET)
    ui.loader.change(visibility, ui.loader, [*ui.boxes, *ui.fields], **_QUIET)

    def pick_row(evt: gr.SelectData):
        row = evt.row_value or []
        names = [value for _, value in view.choices(ctx)]
        return row[0] if row and row[0] in names else gr.skip()

    ui.table.select(pick_row, None, ui.model, **_QUIET)

    def refresh_list(current):
        names = [value for _, value in view.choices(ctx)]
        return (gr.Dropdown(choices=view.choices(ctx), value=current if current in names else None),
                view.table(ctx))

    ui.refresh.click(refresh_list, ui.model, [ui.model, ui.table], **_QUIET)

    # The page is built once at start; each new page shows the list, the status and the
    # form of now (triggers=None: on page load).
    def on_page_load():
        name = view.loaded_name(ctx)
        return [gr.Dropdown(choices=view.choices(ctx), value=name), view.table(ctx), "", view.info_text(ctx),
                *choose(name)]

    gr.on(None, on_page_load, None, [ui.model, ui.table, ui.status, ui.info, *shown_form], **_QUIET)

    # What a non-admin sees: the same facts, nothing that changes them.
    controls = [ui.loader, *ui.fields]
    admin_only = [ui.load, ui.unload, ui.reload, ui.download_box]

    def show_role(request: gr.Request):
        who = ctx.identify(request, need_owner=False)
        note = ("You are an admin: loading, unloading and downloading here change the model for everyone."
                if who.is_admin else
                f"The model is shared by everyone on this server; only admins can change it "
                f"({view.admins_text(ctx)}). You can see what is loaded and how.")
        return [note, *[gr.update(interactive=who.is_admin) for _ in controls],
                *[gr.update(visible=who.is_admin) for _ in admin_only]]

    gr.on(None, show_role, None, [ui.role_note, *controls, *admin_only], **_QUIET)


def _load_unload_reload(ctx, ui, store) -> None:
    # Gradio passes the request and a progress tracker only to positional parameters that
    # come before *values, hence this order.
    def do_load(request: gr.Request, progress=gr.Progress(), name=None, loader_name=None, *values):
        refusal = _admin_refusal(ctx, request, "load or switch the model")
        if refusal:
            return refusal, view.info_text(ctx)
        spec = SPECS_BY_NAME.get(loader_name)
        reads_files = spec is None or spec.reads_files      # a remote model needs no file
        if not name and reads_files:
            return "Choose a model first.", view.info_text(ctx)
        try:
            settings = settings_from_form(loader_name, values, ctx.default_load_settings,
                                          ctx.models.current_settings)
        except ValueError as exc:
            return f"⚠️ {notify.plain(exc)}", view.info_text(ctx)
        result = ctx.models.load(name or "", settings, progress=lambda f, m: progress(f, desc=m))
        if not result.ok:
            notify.warn(result.message)
            return f"⚠️ {notify.plain(result.message)}", view.info_text(ctx)
        kept = remember(store, name, settings) if reads_files else ""
        return notify.plain(result.message) + kept, view.info_text(ctx)

    def do_reload(request: gr.Request, progress=gr.Progress(), name=None, loader_name=None, *values):
        refusal = _admin_refusal(ctx, request, "reload the model")
        if refusal:
            return refusal, view.info_text(ctx)
        # The form's settings apply when it shows the loaded model; otherwise the
        # model is loaded again exactly as before.
        if ctx.models.current_settings is not None and name == view.loaded_name(ctx):
            return do_load(request, progress, name, loader_name, *values)
        result = ctx.models.reload(progress=lambda f, m: progress(f, desc=m))
        if not result.ok:
            notify.warn(result.message)
        return ("" if result.ok else "⚠️ ") + notify.plain(result.message), view.info_text(ctx)

    def do_unload(request: gr.Request):
        refusal = _admin_refusal(ctx, request, "unload the model")
        if refusal:
            return refusal, view.info_text(ctx)
        return notify.plain(ctx.models.unload().message), view.info_text(ctx)

    form = [ui.model, ui.loader, *ui.fields]
    ui.load.click(do_load, form, [ui.status, ui.info], **_MODEL_ACTION)
    ui.reload.click(do_reload, form, [ui.status, ui.info], **_MODEL_ACTION)
    ui.unload.click(do_unload, None, [ui.status, ui.info], **_MODEL_ACTION)


def _download(ctx, ui) -> None:
    def do_download(repo_id, file_pattern, request: gr.Request, progress=gr.Progress()):
        refusal = _admin_refusal(ctx, request, "download models")
        if refusal:
            return refusal, gr.skip(), gr.skip()
        margin = int((ctx.limits.download_margin_gb if ctx.limits else 5) * 2**30)
        try:
            result = hub_download.download(repo_id, file_pattern, ctx.models.model_dir,
                                           progress=lambda f, m: progress(f, desc=m),
                                           use_token=True, margin_bytes=margin)   # an admin's download
        except hub_download.DownloadError as exc:
            notify.warn(str(exc))
            return f"⚠️ {notify.plain(exc)}", gr.skip(), gr.skip()
        # choosing the new model right away makes Load the next and only step
        return (notify.plain(result.message), gr.Dropdown(choices=view.choices(ctx), value=result.path.name), view.table(ctx))

    ui.download.click(do_download, [ui.repo, ui.pattern], [ui.download_status, ui.model, ui.table],
                      concurrency_limit=1, concurrency_id="model-download", api_visibility="undocumented")
