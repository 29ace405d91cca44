"""Assembles the page: the shared per-browser state, then one tab module per tab."""
from __future__ import annotations

import html

import gradio as gr

from modules.params import GenerationParams
from modules.ui import chat_tab, default_tab, model_tab, notebook_tab, parameters_tab, template_tab
from modules.ui import extensions_tab
from modules.ui.context import UIContext

CSS = """
#chat-status, #model-status { min-height: 1.5em; }
/* sampler fields keep room for their whole name (Gradio squeezes checkboxes to nothing);
   a name longer than the field wraps instead of being cut */
.sampler-fields .sampler-field { flex: 1 1 240px !important; min-width: min(240px, 100%) !important; }
.sampler-field .label-text, .sampler-field [data-testid="block-info"] { overflow-wrap: anywhere; }
/* Gradio 6 draws its "processing | 0.1s" tracker over Markdown even with show_progress="hidden" */
#chat-status [data-testid="status-tracker"], #template-in-use [data-testid="status-tracker"],
#template-box-status [data-testid="status-tracker"] { display: none !important; }
/* the chat view's message editor as wide as a message may be (Gradio sizes it to the bubble
   and the text wraps); the row keeps Gradio's max-width */
#chat-view .message-row:has(.edit-textarea), #chat-view .message-row:has(.edit-textarea) .role,
#chat-view .message-row:has(.edit-textarea) .message { width: 100%; }
#chat-view .edit-textarea { width: 100% !important; }
"""


def build_app(ctx: UIContext, *, banner: str = "", default_params: GenerationParams | None = None) -> gr.Blocks:
    with gr.Blocks(title="LLM Workbench") as app:
        account_bar(ctx)
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
            with gr.Tab("Extensions", id="extensions"):
                extensions_tab.build(ctx)
            extensions_tab.build_extension_tabs(ctx)     # extensions whose params say is_tab
        for fn, inputs, outputs in ctx.on_load:
            app.load(fn, inputs, outputs)
    return app


def account_bar(ctx: UIContext) -> None:
    """With accounts on: whose page this is, and a way to leave it on a shared computer.
    Gradio's own /logout clears the log-in cookie and ends this account's sessions."""
    if not (ctx.policy and ctx.policy.accounts_on):
        return
    with gr.Row(elem_id="account-bar"):
        who = gr.HTML(elem_id="account-name", scale=1, padding=False)
        # a relative link, so it also works behind a proxy that serves the page under a path
        gr.Button("Log out", link="logout", size="sm", variant="secondary", scale=0, min_width=90,
                  elem_id="log-out")

    def show_who(request: gr.Request) -> str:
        try:
            identity = ctx.identify(request, need_owner=False)
        except PermissionError:          # not logged in: Gradio would not have served the page
            return ""
        role = " (admin)" if identity.is_admin else ""
        return f"Logged in as <strong>{html.escape(identity.user)}</strong>{role}"

    ctx.on_load.append((show_who, None, who))
