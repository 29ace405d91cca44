"""The Model tab: choose a model in models/, load, unload or reload it."""
from __future__ import annotations

import gradio as gr

from modules import model_files
from modules.ui.context import UIContext


def _choices(ctx: UIContext) -> list[tuple[str, str]]:
    entries = model_files.list_models(ctx.models.model_dir)
    return [(f"{e.name}  ({e.format}, {e.size_bytes / 2**20:.0f} MiB)", e.name) for e in entries]


def build(ctx: UIContext) -> None:
    current = ctx.models.current_path.name if ctx.models.current_path else None
    with gr.Row():
        model = gr.Dropdown(_choices(ctx), value=current, label="Model", scale=6, elem_id="model-choice")
        refresh = gr.Button("Refresh list", size="sm", scale=1)
    with gr.Row():
        load = gr.Button("Load", variant="primary", elem_id="model-load")
        unload = gr.Button("Unload", elem_id="model-unload")
        reload = gr.Button("Reload", elem_id="model-reload")
    status = gr.Markdown(ctx.models.status_line(), elem_id="model-status")

    def do_load(name, progress=gr.Progress()):
        if not name:
            return "Choose a model first."
        result = ctx.models.load(name, ctx.default_load_settings,
                                 progress=lambda f, m: progress(f, desc=m))
        if not result.ok:
            gr.Warning(result.message)
        return f"{result.message}\n\n{ctx.models.status_line()}"

    def do_reload(progress=gr.Progress()):
        result = ctx.models.reload(progress=lambda f, m: progress(f, desc=m))
        if not result.ok:
            gr.Warning(result.message)
        return f"{result.message}\n\n{ctx.models.status_line()}"

    load.click(do_load, [model], [status], concurrency_limit=1, concurrency_id="model-load")
    reload.click(do_reload, None, [status], concurrency_limit=1, concurrency_id="model-load")
    unload.click(lambda: ctx.models.unload().message, None, [status], concurrency_limit=1,
                 concurrency_id="model-load")
    refresh.click(lambda: gr.update(choices=_choices(ctx)), None, [model], queue=False)
