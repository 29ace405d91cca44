"""Assembles the page: the shared per-browser state, then one tab module per tab."""
from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from modules.params import GenerationParams
from modules.ui import chat_tab, default_tab, model_tab, notebook_tab, parameters_tab, template_tab
from modules.ui import extensions_tab, i18n
from modules.ui.context import UIContext

ASSETS = Path(__file__).resolve().parent
# server.py passes CSS to launch(); the head script and the translations come with the page
# itself (Workbench.launch), so a page built here is whole wherever it is launched.
CSS = (ASSETS / "style.css").read_text(encoding="utf-8")
HEAD = (f"<style>{(ASSETS / 'layout.css').read_text(encoding='utf-8')}</style>"
        f"<script>{(ASSETS / 'theme.js').read_text(encoding='utf-8')}</script>")


class Workbench(gr.Blocks):
    """The page: a gr.Blocks that launches with its translations and its head script."""

    def launch(self, *args, **kwargs):
        kwargs.setdefault("i18n", i18n.I18N)
        kwargs["head"] = HEAD + (kwargs.get("head") or "")
        return super().launch(*args, **kwargs)


def build_app(ctx: UIContext, *, banner: str = "", default_params: GenerationParams | None = None) -> gr.Blocks:
    with Workbench(title="LLM Workbench") as app:
        header(ctx)
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
    # after everything, so every label and every handler of every tab is covered
    i18n.translate_page(app)
    i18n.translate_replies(app)
    return app


def header(ctx: UIContext) -> None:
    """The bar above the tabs: with accounts on, whose page this is and a way to leave it on a
    shared computer (Gradio's own /logout clears the log-in cookie and ends this account's
    sessions); always the Dark mode button, and on phones the Chats button (style.css)."""
    accounts_on = bool(ctx.policy and ctx.policy.accounts_on)
    with gr.Row(elem_id="account-bar" if accounts_on else "workbench-header", elem_classes="workbench-header"):
        who = gr.HTML(elem_id="account-name", scale=1, padding=False) if accounts_on else None
        chats = gr.Button("Chats", size="sm", variant="secondary", scale=0, min_width=80, elem_id="chats-toggle")
        theme = gr.Button("Dark mode", size="sm", variant="secondary", scale=0, min_width=110,
                          elem_id="theme-toggle")
        if accounts_on:
            # a relative link, so it also works behind a proxy that serves the page under a path
            gr.Button("Log out", link="logout", size="sm", variant="secondary", scale=0, min_width=90,
                      elem_id="log-out")
    chats.click(None, js="() => window.workbenchToggleChats()")
    theme.click(None, js="() => window.workbenchToggleTheme()")
    if accounts_on:
        ctx.on_load.append((_who_is_logged_in(ctx), None, who))


def _who_is_logged_in(ctx: UIContext):
    def show_who(request: gr.Request) -> str:
        try:
            identity = ctx.identify(request, need_owner=False)
        except PermissionError:          # not logged in: Gradio would not have served the page
            return ""
        role = " (admin)" if identity.is_admin else ""
        return f"Logged in as <strong>{html.escape(identity.user)}</strong>{role}"
    return show_who
