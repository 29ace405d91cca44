"""Assembles the page: the shared per-browser state, then one tab module per tab."""
from __future__ import annotations

import gradio as gr

from modules.params import GenerationParams
from modules.ui import chat_tab, default_tab, model_tab, notebook_tab, parameters_tab, template_tab
from modules.ui.context import UIContext

CSS = """
#chat-status, #model-status { min-height: 1.5em; }
"""


def build_app(ctx: UIContext, *, banner: str = "", default_params: GenerationParams | None = None) -> gr.Blocks:
    with gr.Blocks(title="LLM Workbench") as app:
        if banner:
            gr.Markdown(banner, elem_id="banner")
        ctx.params_state = gr.State((default_params or GenerationParams()).to_dict())
        ctx.template_state = gr.State(None)
        ctx.character_state = gr.State({"name": "Assistant", "context": "", "greeting": "", "picture": None})
        # Without accounts, this random key is whose chats and private files these are.
        ctx.browser_key = gr.BrowserState("", storage_key="llm-workbench-browser-key",
                                          secret=ctx.extras.get("browser_secret"))
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                chat_tab.build(ctx)
            with gr.Tab("Default", id="default"):
                default_tab.build(ctx)
            with gr.Tab("Notebook", id="notebook"):
                notebook_tab.build(ctx)
            with gr.Tab("Parameters", id="parameters"):
                parameters_tab.build(ctx)
            with gr.Tab("Model", id="model"):
                model_tab.build(ctx)
            with gr.Tab("Instruction template", id="template"):
                template_tab.build(ctx)
        for fn, inputs, outputs in ctx.on_load:
            app.load(fn, inputs, outputs)
    return app
