"""The Instruction template tab: which chat template formats the prompt.

The code box holds the template in use, as in text-generation-webui: choosing a template
loads it there, and edits apply as soon as they render. ctx.template_state holds that
source, or None for the loaded model's own template. Storage and preview live in
modules.instruction_templates; saved templates are the shared ones and each person's
private ones (the server's Library).
"""
from __future__ import annotations

import re

import gradio as gr

from modules import instruction_templates as templates
from modules.ui import file_choices
from modules.template_render import TemplateError

MODEL_OWN = "(the model's own template)"
# UI plumbing, not an API: kept out of the API page. "always_last" on live edits makes
# sure the final value of a typing burst is never dropped.
_LIVE = dict(trigger_mode="always_last", show_progress="hidden", api_visibility="undocumented")
_QUIET = dict(show_progress="hidden", api_visibility="undocumented")
# Runs in the browser before an edit is rendered: waits until typing pauses, and settles
# only for the last keystroke of a burst, so the server renders once per pause.
_AFTER_TYPING_PAUSES = """() => new Promise((resolve) => {
    clearTimeout(window.templatePreviewTimer);
    window.templatePreviewTimer = setTimeout(() => resolve([]), 400);
})"""


def build(ctx) -> None:
    store = file_choices.library(ctx).templates
    with gr.Row():
        choice = gr.Dropdown(file_choices.choices(store, None, [MODEL_OWN]), value=MODEL_OWN,
                             label="Instruction template", scale=3,
                             info="How the chat is written out for the model. Most models "
                                  "bring their own; choose another only if the replies look wrong.")
        refresh_button = gr.Button("↻ Refresh", size="sm", scale=0, min_width=100)
    in_use = gr.Markdown()
    with gr.Row():
        with gr.Column():
            source_box = gr.Code("", language="jinja2", interactive=True, lines=18,
                                 label="Template (Jinja2: messages, add_generation_prompt, "
                                       "bos_token, eos_token)")
            error = gr.Markdown()
            with gr.Row():
                save_name = gr.Textbox(label="Save as", placeholder="template name", scale=3)
                save_button = gr.Button("Save", size="sm", scale=1)
                delete_button = gr.Button("Delete", size="sm", variant="stop", scale=1)
            save_shared = file_choices.shared_box()
            status = gr.Markdown()
        with gr.Column():
            preview = gr.Code("", language=None, interactive=False, lines=18, wrap_lines=True,
                              label="Preview: a sample conversation (bos/eos shown as <s> and </s>)")

    def refresh(state, key, request: gr.Request):
        """Fresh template list, and the loaded model's template while following the model."""
        model_now = _model_template(ctx)
        choices = file_choices.choices(store, file_choices.visitor(ctx, request, key), [MODEL_OWN])
        if state is None:
            preview_value, error_value = _preview(model_now or "")
            return (gr.Dropdown(choices=choices, value=MODEL_OWN), model_now or "", preview_value,
                    error_value, _in_use_text(MODEL_OWN, None, model_now))
        return gr.Dropdown(choices=choices), gr.skip(), gr.skip(), gr.skip(), gr.skip()

    view = [choice, source_box, preview, error, in_use]
    refresh_button.click(refresh, [ctx.template_state, ctx.browser_key], view, **_QUIET)
    # The page was built when the server started, before models were loaded or templates
    # saved: fill it on each page load (gr.on without triggers), when the session starts
    # out following the model, and again once a new browser has its key (its own templates).
    def refresh_on_load(key, request: gr.Request):
        return *refresh(None, key, request), file_choices.show_to_admins(ctx, request)

    gr.on(None, refresh_on_load, ctx.browser_key, view + [save_shared], **_QUIET)

    def choose(name, key, request: gr.Request):
        if not name:
            return [gr.skip()] * 7
        model_now = _model_template(ctx)
        if name == MODEL_OWN:
            source, state = model_now or "", None
        else:
            try:
                source = templates.load_template(name, store, file_choices.visitor(ctx, request, key))
            except ValueError as exc:
                return [gr.skip()] * 6 + [f"⚠️ {exc}"]
            state = source
        preview_value, error_value = _preview(source)
        save_as = "" if name == MODEL_OWN else name
        if error_value:   # shown for fixing, but not put in use
            return [gr.skip(), source, "", error_value, gr.skip(), save_as, ""]
        return [state, source, preview_value, error_value, _in_use_text(name, state, model_now),
                save_as, ""]

    outputs = [ctx.template_state, source_box, preview, error, in_use, save_name, status]
    choice.input(choose, [choice, ctx.browser_key], outputs, **_QUIET)

    def edit(source, name, state):
        preview_value, error_value = _preview(source)
        if error_value:
            # A template that does not render is never put in use; the last good one stays.
            return state, gr.skip(), error_value, gr.skip()
        model_now = _model_template(ctx)
        # An emptied box, or the model's own template unchanged, means: follow the model.
        follows_model = not source.strip() or (name == MODEL_OWN and source == (model_now or ""))
        new_state = None if follows_model else source
        return new_state, preview_value, "", _in_use_text(name, new_state, model_now, edited=True)

    source_box.input(None, js=_AFTER_TYPING_PAUSES).then(
        edit, [source_box, choice, ctx.template_state],
        [ctx.template_state, preview, error, in_use], **_LIVE)

    def save(name, source, to_shared, key, request: gr.Request):
        if (name or "").strip() == MODEL_OWN:
            return gr.skip(), gr.skip(), gr.skip(), "⚠️ Not saved: choose another name."
        scope = file_choices.scope_for(to_shared)
        try:   # TemplateError and unsafe names are ValueErrors, NotAdmin a PermissionError
            who = ctx.identify(request, key)
            path = templates.save_template(name, source, store, who, scope)
        except file_choices.FAILURES as exc:
            return gr.skip(), gr.skip(), gr.skip(), file_choices.refused("Not saved", exc)
        saved = path.stem
        return (gr.Dropdown(choices=file_choices.choices(store, who, [MODEL_OWN]), value=saved),
                source, _in_use_text(saved, source, None),
                f"Saved template **{saved}** ({file_choices.where(scope)}).")

    save_button.click(save, [save_name, source_box, save_shared, ctx.browser_key],
                      [choice, ctx.template_state, in_use, status], **_QUIET)

    def delete(name, key, request: gr.Request):
        if not name or name == MODEL_OWN:
            return gr.skip(), "Choose a saved template to delete first."
        try:
            who = ctx.identify(request, key)
            scope = templates.delete_template(name, store, who)
        except file_choices.FAILURES as exc:
            return gr.skip(), file_choices.refused("Not deleted", exc)
        return (gr.Dropdown(choices=file_choices.choices(store, who, [MODEL_OWN]), value=None),
                f"Deleted the {scope} template **{name}**. This session keeps using it until "
                f"you choose another.")

    delete_button.click(delete, [choice, ctx.browser_key], [choice, status], **_QUIET)


def _model_template(ctx) -> str | None:
    # The model manager may not offer this (or no model is loaded): then there is none.
    getter = getattr(ctx.models, "current_chat_template", None)
    if getter is None:
        return None
    try:
        return getter() or None
    except Exception:
        return None


def _preview(source: str) -> tuple[str, str]:
    """(preview text, error message); exactly one of them is non-empty unless source is empty."""
    if not source or not source.strip():
        return "", ""
    try:
        return templates.render_preview(source), ""
    except TemplateError as exc:
        return "", f"⚠️ {_literal(str(exc))}\n\nThe last template that worked stays in use."


def _literal(text: str) -> str:
    """Template errors quote template code (`'x' * 10`, `__class__`): shown as typed, not
    read as Markdown."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~])", r"\\\1", text)


def _in_use_text(name: str, state, model_source, edited: bool = False) -> str:
    if state is None:
        if model_source:
            return "**In use:** the model's own template (auto-detected from the model)."
        return ("**In use:** the model's own template, auto-detected once a model is loaded "
                "(none is loaded now, or it has no template).")
    if edited or name == MODEL_OWN:
        return "**In use:** the template in the box below, as edited."
    return f"**In use:** {name}."
