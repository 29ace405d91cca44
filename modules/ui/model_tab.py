"""The Model tab: the models in models/, the loader and its settings, Load / Unload /
Reload with progress, and downloads from a Hugging Face repository.

Loading is done by ModelManager, remembering settings by ModelSettingsStore and
downloading by hub_download; this module builds components and wires events. The
loaded model is shared by everyone using the server, so its status is read fresh on
each page load rather than kept in the page.

Only admins change the model (modules/roles.py): every handler that loads, unloads,
reloads or downloads checks the caller's role itself, because a client can call the
queue endpoints without the page; for everyone else the tab is read-only. Trusting a
model folder's own code is decided on the command line only (--trust-remote-code).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import gradio as gr
import psutil

from loaders import LOADERS
from loaders.settings import LoadSettings, available_cores
from modules import hub_download, model_files
from modules.model_settings_store import ModelSettingsError, ModelSettingsStore
from modules.roles import NotAdmin, require_admin
from modules.ui import notify

# Which settings each loader reads (the rest are hidden while it is chosen).
LLAMA_FIELDS = ["ctx_size", "gpu_layers", "threads", "threads_batch", "batch_size", "parallel",
                "no_mmap", "mlock"]
HF_FIELDS = ["cpu", "cpu_memory", "gpu_split"]          # Transformers and GPTQ
TRANSFORMERS_FIELDS = ["bf16", "load_in_8bit", "load_in_4bit", "attn_implementation"]
FIELDS = LLAMA_FIELDS + HF_FIELDS + TRANSFORMERS_FIELDS
COMMAND_LINE_ONLY = {"trust_remote_code"}      # runs a folder's code: the operator's decision
assert set(FIELDS) == {f.name for f in dataclasses.fields(LoadSettings)} - {"loader"} - COMMAND_LINE_ONLY, \
    "every LoadSettings field needs a place in the Model tab"
# Ranges the form accepts; the loaders check what the model itself allows.
RANGES = {"ctx_size": (0, 1_048_576), "parallel": (1, 256), "gpu_layers": (-1, 100_000),
          "threads": (0, 1024), "threads_batch": (0, 1024), "batch_size": (1, 65_536)}

_QUIET = dict(show_progress="hidden", api_visibility="undocumented")
_MODEL_ACTION = dict(concurrency_limit=1, concurrency_id="model-load", api_visibility="undocumented")
TABLE_HEADERS = ["Model", "Format", "Size", "Loader", "Note"]


def build(ctx) -> None:
    store = ModelSettingsStore.in_folder(_data_dir(ctx))
    role_note = gr.Markdown(elem_id="model-role-note")      # who may change the model
    with gr.Row():
        model = gr.Dropdown(_choices(ctx), value=_loaded_name(ctx), label="Model", scale=6,
                            elem_id="model-choice", info=f"Files and folders in {ctx.models.model_dir}")
        refresh = gr.Button("↻ Refresh", size="sm", scale=0, min_width=100, elem_id="model-refresh")
    with gr.Accordion("All models", open=False):
        table = gr.Dataframe(_table(ctx), headers=TABLE_HEADERS, interactive=False,
                             elem_id="model-table", label="Click a row to choose that model")

    with gr.Row():
        loader = gr.Radio(list(LOADERS), value=None, label="Loader", elem_id="model-loader",
                          info="Preselected from the files; change it only to force another.")
    settings_note = gr.Markdown(elem_id="model-settings-note")
    fields, llama_box, hf_box, transformers_box = _settings_form(ctx)

    with gr.Row():
        load = gr.Button("Load", variant="primary", elem_id="model-load")
        unload = gr.Button("Unload", elem_id="model-unload")
        reload = gr.Button("Reload", elem_id="model-reload")
    status = gr.Markdown(elem_id="model-status")
    info = gr.Markdown(elem_id="model-info")

    with gr.Accordion("Download from Hugging Face", open=False) as download_box:
        with gr.Row():
            repo = gr.Textbox(label="Repository", placeholder="bartowski/SmolLM2-135M-Instruct-GGUF",
                              scale=3, elem_id="download-repo")
            pattern = gr.Textbox(label="File (optional)", placeholder="*Q4_K_M.gguf", scale=2,
                                 elem_id="download-file",
                                 info="A name or pattern; empty: the whole repository.")
        download = gr.Button("Download", elem_id="download-start")
        download_status = gr.Markdown(f"From {hub_download.endpoint()} (set HF_ENDPOINT for a mirror). "
                                      "A single GGUF file goes into the models folder, anything else "
                                      "into a folder named owner_name.", elem_id="download-status")

    # ---- choosing a model restores its settings --------------------------------------------
    form_view = [loader, *fields, settings_note, llama_box, hf_box, transformers_box]

    def choose(name):
        settings, note = _settings_for(ctx, store, name)
        return [settings.loader, *[getattr(settings, f) for f in FIELDS], note, *_boxes(settings.loader)]

    model.change(choose, model, form_view, **_QUIET)
    loader.change(_boxes, loader, [llama_box, hf_box, transformers_box], **_QUIET)

    def pick_row(evt: gr.SelectData):
        row = evt.row_value or []
        names = [value for _, value in _choices(ctx)]
        return row[0] if row and row[0] in names else gr.skip()

    table.select(pick_row, None, model, **_QUIET)

    def refresh_list(current):
        names = [value for _, value in _choices(ctx)]
        return (gr.Dropdown(choices=_choices(ctx), value=current if current in names else None),
                _table(ctx))

    refresh.click(refresh_list, model, [model, table], **_QUIET)

    # The page is built once at start; each new page shows the list, the status and the
    # form of now (triggers=None: on page load).
    def on_page_load():
        name = _loaded_name(ctx)
        return [gr.Dropdown(choices=_choices(ctx), value=name), _table(ctx), "", _info_text(ctx),
                *choose(name)]

    gr.on(None, on_page_load, None, [model, table, status, info, *form_view], **_QUIET)

    # What a non-admin sees: the same facts, nothing that changes them.
    controls = [loader, *fields]
    admin_only = [load, unload, reload, download_box]

    def show_role(request: gr.Request):
        who = ctx.identify(request, need_owner=False)
        admins = _admins_text(ctx)
        note = ("You are an admin: loading, unloading and downloading here change the model for everyone."
                if who.is_admin else
                f"The model is shared by everyone on this server; only admins can change it ({admins}). "
                f"You can see what is loaded and how.")
        return [note, *[gr.update(interactive=who.is_admin) for _ in controls],
                *[gr.update(visible=who.is_admin) for _ in admin_only]]

    gr.on(None, show_role, None, [role_note, *controls, *admin_only], **_QUIET)

    # ---- load, unload, reload ------------------------------------------------------------
    # Gradio passes the request and a progress tracker only to positional parameters that
    # come before *values, hence this order.
    def do_load(request: gr.Request, progress=gr.Progress(), name=None, loader_name=None, *values):
        try:
            require_admin(ctx.identify(request, need_owner=False), "load or switch the model")
        except NotAdmin as exc:
            notify.warn(str(exc))
            return f"⚠️ {exc}", _info_text(ctx)
        if not name:
            return "Choose a model first.", _info_text(ctx)
        try:
            settings = _settings_from_form(loader_name, values, ctx.default_load_settings)
        except ValueError as exc:
            return f"⚠️ {exc}", _info_text(ctx)
        result = ctx.models.load(name, settings, progress=lambda f, m: progress(f, desc=m))
        if not result.ok:
            notify.warn(result.message)
            return f"⚠️ {result.message}", _info_text(ctx)
        return f"{result.message}{_remember(store, name, settings)}", _info_text(ctx)

    def do_reload(request: gr.Request, progress=gr.Progress(), name=None, loader_name=None, *values):
        # The form's settings apply when it shows the loaded model; otherwise the
        # model is loaded again exactly as before.
        try:
            require_admin(ctx.identify(request, need_owner=False), "reload the model")
        except NotAdmin as exc:
            notify.warn(str(exc))
            return f"⚠️ {exc}", _info_text(ctx)
        if ctx.models.current_path is not None and name == _loaded_name(ctx):
            return do_load(request, progress, name, loader_name, *values)
        result = ctx.models.reload(progress=lambda f, m: progress(f, desc=m))
        if not result.ok:
            notify.warn(result.message)
        return ("" if result.ok else "⚠️ ") + result.message, _info_text(ctx)

    form = [model, loader, *fields]
    load.click(do_load, form, [status, info], **_MODEL_ACTION)
    reload.click(do_reload, form, [status, info], **_MODEL_ACTION)
    def do_unload(request: gr.Request):
        try:
            require_admin(ctx.identify(request, need_owner=False), "unload the model")
        except NotAdmin as exc:
            notify.warn(str(exc))
            return f"⚠️ {exc}", _info_text(ctx)
        return ctx.models.unload().message, _info_text(ctx)

    unload.click(do_unload, None, [status, info], **_MODEL_ACTION)

    # ---- download --------------------------------------------------------------------------
    def do_download(repo_id, file_pattern, request: gr.Request, progress=gr.Progress()):
        limits = ctx.limits
        margin = int((limits.download_margin_gb if limits else 5) * 2**30)
        try:
            who = ctx.identify(request, need_owner=False)
            require_admin(who, "download models")
            result = hub_download.download(repo_id, file_pattern, ctx.models.model_dir,
                                           progress=lambda f, m: progress(f, desc=m),
                                           use_token=who.is_admin, margin_bytes=margin)
        except (hub_download.DownloadError, NotAdmin) as exc:
            notify.warn(str(exc))
            return f"⚠️ {exc}", gr.skip(), gr.skip()
        # choosing the new model right away makes Load the next and only step
        return (result.message, gr.Dropdown(choices=_choices(ctx), value=result.path.name), _table(ctx))

    download.click(do_download, [repo, pattern], [download_status, model, table],
                   concurrency_limit=1, concurrency_id="model-download", api_visibility="undocumented")


# ---- the settings form --------------------------------------------------------------------

def _settings_form(ctx):
    """The components for every LoadSettings field, in FIELDS order, in one box per loader."""
    defaults = ctx.default_load_settings or LoadSettings()
    made = {}
    # No minimum/maximum on the number boxes: Gradio would refuse an out-of-range value with
    # a traceback on the console; _settings_from_form checks RANGES and says what is wrong.
    with gr.Column(visible=False) as llama_box:
        gr.Markdown("#### llama.cpp settings")
        with gr.Row():
            made["ctx_size"] = gr.Number(defaults.ctx_size, precision=0, label="ctx-size",
                                         info="Tokens of context for each sequence; 0: the model's own, "
                                              "at most 4096.")
            made["parallel"] = gr.Number(defaults.parallel, precision=0,
                                         label="parallel", info="Sequences decoded together: how many "
                                         "users are answered at once. Each gets ctx-size tokens.")
            made["gpu_layers"] = gr.Number(defaults.gpu_layers, precision=0, label="gpu-layers",
                                           info="Layers on the GPU; -1: all. Needs a CUDA build.")
        with gr.Row():
            made["threads"] = gr.Number(defaults.threads, precision=0, label="threads",
                                        info=f"0: the {available_cores()} cores available.")
            made["threads_batch"] = gr.Number(defaults.threads_batch, precision=0,
                                              label="threads-batch", info="For prompt processing; 0: as threads.")
            made["batch_size"] = gr.Number(defaults.batch_size, precision=0, label="batch-size",
                                           info="Most prompt tokens in one pass.")
        with gr.Row():
            made["no_mmap"] = gr.Checkbox(defaults.no_mmap, label="no-mmap",
                                          info="Read the whole file into memory instead of mapping it.")
            made["mlock"] = gr.Checkbox(defaults.mlock, label="mlock", info="Keep the model in RAM, never swapped.")
        division = gr.Markdown(_division_text(defaults.ctx_size, defaults.parallel), elem_id="model-division")
    with gr.Column(visible=False) as hf_box:
        gr.Markdown("#### Transformers and GPTQ settings")
        with gr.Row():
            made["cpu"] = gr.Checkbox(defaults.cpu, label="cpu", info="Run on the CPU even with a GPU present.")
            gr.Markdown("Model folders' own code runs only when the server was started with "
                        f"`--trust-remote-code` (now: {'on' if defaults.trust_remote_code else 'off'}).")
        with gr.Row():
            made["cpu_memory"] = gr.Textbox(defaults.cpu_memory, label="cpu-memory", placeholder="e.g. 16GiB",
                                            info="Most CPU memory for weights; empty: no limit.")
            made["gpu_split"] = gr.Textbox(defaults.gpu_split, label="gpu-split", placeholder="e.g. 20,24",
                                           info="GiB of weights per GPU, comma separated.")
    with gr.Column(visible=False) as transformers_box:
        gr.Markdown("#### Transformers only")
        with gr.Row():
            made["bf16"] = gr.Checkbox(defaults.bf16, label="bf16", info="Weights in bfloat16.")
            made["load_in_8bit"] = gr.Checkbox(defaults.load_in_8bit, label="load-in-8bit",
                                               info="Quantize at load (bitsandbytes, GPU only).")
            made["load_in_4bit"] = gr.Checkbox(defaults.load_in_4bit, label="load-in-4bit",
                                               info="Quantize at load (bitsandbytes, GPU only).")
            made["attn_implementation"] = gr.Dropdown(
                [("default", ""), ("sdpa", "sdpa"), ("eager", "eager"),
                 ("flash_attention_2", "flash_attention_2")], value=defaults.attn_implementation,
                label="attn-implementation")
    gr.on([made["ctx_size"].change, made["parallel"].change], _division_text,
          [made["ctx_size"], made["parallel"]], division, **_QUIET)
    return [made[name] for name in FIELDS], llama_box, hf_box, transformers_box


def _boxes(loader_name):
    """Shows the settings of the chosen loader only."""
    return (gr.Column(visible=loader_name == "llama.cpp"),
            gr.Column(visible=loader_name in ("Transformers", "GPTQ")),
            gr.Column(visible=loader_name == "Transformers"))


def _settings_from_form(loader_name, values, server_settings: LoadSettings | None = None) -> LoadSettings:
    """LoadSettings from the form; an emptied number box means its default. Settings the
    form does not offer (trust_remote_code) come from the server's command line."""
    if loader_name not in LOADERS:
        raise ValueError("Choose a loader.")
    defaults = LoadSettings()
    chosen = {}
    for name, value in zip(FIELDS, values):
        default = getattr(defaults, name)
        if isinstance(default, bool):
            chosen[name] = bool(value)
        elif isinstance(default, int):
            chosen[name] = default if value is None or value == "" else _whole_number(name, value)
        else:
            chosen[name] = (value or "").strip()[:100]
    for name, (low, high) in RANGES.items():
        if not low <= chosen[name] <= high:
            raise ValueError(f"{name.replace('_', '-')} must be between {low:,} and {high:,} "
                             f"(got {chosen[name]:,}).")
    for name in COMMAND_LINE_ONLY:
        chosen[name] = getattr(server_settings or defaults, name)
    return LoadSettings(loader=loader_name, **chosen)


def _whole_number(name: str, value) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name.replace('_', '-')} must be a whole number.") from None
    if number != int(number):
        raise ValueError(f"{name.replace('_', '-')} must be a whole number (got {value}).")
    return int(number)


def _settings_for(ctx, store: ModelSettingsStore, name: str | None) -> tuple[LoadSettings, str]:
    """What the form shows for a model: how it is loaded now, else how it was last loaded,
    else the server's flags with the loader detected from the files."""
    defaults = ctx.default_load_settings or LoadSettings()
    if not name:
        return dataclasses.replace(defaults, loader=defaults.loader or "llama.cpp"), ""
    if name == _loaded_name(ctx) and ctx.models.current_settings is not None:
        current = ctx.models.current_settings
        loader = current.loader or model_files.detect_loader(ctx.models.current_path)
        return dataclasses.replace(current, loader=loader), "Settings the loaded model is running with."
    detected = model_files.detect_loader(Path(ctx.models.model_dir) / name)
    problem = ""
    try:
        remembered = store.get(name)
    except ModelSettingsError as exc:
        remembered, problem = None, f" ⚠️ Remembered settings unavailable: {exc}"
    if remembered is not None:
        loader = remembered.loader or detected or "llama.cpp"
        return (dataclasses.replace(remembered, loader=loader),
                "Settings restored from the last time this model was loaded." + problem)
    loader = detected or defaults.loader or "llama.cpp"
    source = "detected from the files" if detected else "not detected; check it"
    return (dataclasses.replace(defaults, loader=loader),
            f"Server defaults; loader {source}." + problem)


def _remember(store: ModelSettingsStore, name: str, settings: LoadSettings) -> str:
    try:
        note = store.remember(name, settings)
    except OSError as exc:
        return f"\n\n⚠️ The settings could not be remembered: {exc}"
    return f"\n\n⚠️ {note}" if note else ""


# ---- what is shown --------------------------------------------------------------------------

def _choices(ctx) -> list[tuple[str, str]]:
    return [(_label(e), e.name) for e in model_files.list_models(ctx.models.model_dir)]


def _label(entry) -> str:
    if entry.loader is None:
        return f"{entry.name}  ·  {entry.problem}"
    return f"{entry.name}  ·  {entry.format}, {_size(entry.size_bytes)}  ·  {entry.loader}"


def _table(ctx) -> list[list[str]]:
    rows = [[e.name, e.format, _size(e.size_bytes), e.loader or "—", e.problem]
            for e in model_files.list_models(ctx.models.model_dir)]
    return rows or [["(no models yet: download one below)", "", "", "", ""]]


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _loaded_name(ctx) -> str | None:
    """The models/ entry of the loaded model (a GGUF inside a folder counts as the folder)."""
    path = ctx.models.current_path
    if path is None:
        return None
    root = Path(ctx.models.model_dir).resolve()
    resolved = Path(path).resolve()
    if resolved.parent.parent == root:
        return resolved.parent.name
    return resolved.name


def _division_text(ctx_size, parallel) -> str:
    per_sequence = f"{int(ctx_size)} tokens" if ctx_size else "the model's context (at most 4096)"
    n = max(1, int(parallel or 1))
    return f"Context: {n} sequence{'s' if n > 1 else ''} × {per_sequence} each."


def _info_text(ctx) -> str:
    info = ctx.models.info
    if info is None:
        return ctx.models.status_line()
    lines = [f"**{info.name}** with {info.loader}: {info.max_sequences} "
             f"sequence{'s' if info.max_sequences != 1 else ''} × {info.n_ctx} tokens"
             f" ({info.max_sequences * info.n_ctx} in total); trained with {info.n_ctx_train} tokens."]
    lines += [f"- {key}: {value}" for key, value in info.details.items()]
    rss = psutil.Process().memory_info().rss / 2**20
    lines.append(f"- server process memory: {rss:.0f} MiB")
    return "\n".join(lines)


def _admins_text(ctx) -> str:
    policy = ctx.policy
    if policy is None or not policy.accounts_on:
        if policy is not None and policy.everyone_admin:
            return "everyone"
        return "people at the server machine itself"
    return ", ".join(sorted(policy.admin_users)) or "nobody is named admin"


def _data_dir(ctx) -> Path:
    """--data-dir when the server passes it on, else <project>/data."""
    found = getattr(ctx, "data_dir", None) or ctx.extras.get("data_dir")
    return Path(found) if found else Path(ctx.root) / "data"
