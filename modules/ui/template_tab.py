"""The Instruction template tab: which chat template formats the prompt.

The code box holds the template in use, as in text-generation-webui: choosing a template
loads it there, and edits apply as soon as they render. ctx.template_state holds that
source, or None for the loaded model's own template. Storage and preview live in
modules.instruction_templates.
"""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from modules import instruction_templates as templates
from modules.template_render import TemplateError

MODEL_OWN = "(the model's own template)"
# UI plumbing, not an API: kept out of the API page. "always_last" on live edits makes
# sure the final value of a typing burst is never dropped.
_LIVE = dict(trigger_mode="always_last", show_progress="hidden", api_visibility="undocumented")
_QUIET = dict(show_progress="hidden", api_visibility="undocumented")


def build(ctx) -> None:
    folder = Path(ctx.root) / "instruction-templates"
    with gr.Row():
        choice = gr.Dropdown([MODEL_OWN] + templates.list_templates(folder), value=MODEL_OWN,
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
            status = gr.Markdown()
        with gr.Column():
            preview = gr.Code("", language=None, interactive=False, lines=18, wrap_lines=True,
                              label="Preview: a sample conversation (bos/eos shown as <s> and </s>)")

    def refresh(state):
        """Fresh template list, and the loaded model's template while following the model."""
        model_now = _model_template(ctx)
        choices = [MODEL_OWN] + templates.list_templates(folder)
        if state is None:
            preview_value, error_value = _preview(model_now or "")
            return (gr.Dropdown(choices=choices, value=MODEL_OWN), model_now or "", preview_value,
                    error_value, _in_use_text(MODEL_OWN, None, model_now))
        return gr.Dropdown(choices=choices), gr.skip(), gr.skip(), gr.skip(), gr.skip()

    view = [choice, source_box, preview, error, in_use]
    refresh_button.click(refresh, ctx.template_state, view, **_QUIET)
    # The page was built when the server started, before models were loaded or templates
    # saved: fill it on each page load (gr.on without triggers or inputs), when the
    # session starts out following the model.
    gr.on(None, lambda: refresh(None), None, view, **_QUIET)

    def choose(name):
        if not name:
            return [gr.skip()] * 7
        model_now = _model_template(ctx)
        if name == MODEL_OWN:
            source, state = model_now or "", None
        else:
            try:
                source = templates.load_template(name, folder)
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
    choice.input(choose, choice, outputs, **_QUIET)

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

    source_box.input(edit, [source_box, choice, ctx.template_state],
                     [ctx.template_state, preview, error, in_use], **_LIVE)

    def save(name, source):
        if (name or "").strip() == MODEL_OWN:
            return gr.skip(), gr.skip(), gr.skip(), "⚠️ Not saved: choose another name."
        try:
            path = templates.save_template(name, source, folder)
        except (ValueError, OSError) as exc:   # TemplateError and unsafe names are ValueErrors
            return gr.skip(), gr.skip(), gr.skip(), f"⚠️ Not saved: {exc}"
        saved = path.stem
        return (gr.Dropdown(choices=[MODEL_OWN] + templates.list_templates(folder), value=saved),
                source, _in_use_text(saved, source, None), f"Saved template **{saved}**.")

    save_button.click(save, [save_name, source_box],
                      [choice, ctx.template_state, in_use, status], **_QUIET)

    def delete(name):
        if not name or name == MODEL_OWN:
            return gr.skip(), "Choose a saved template to delete first."
        try:
            templates.delete_template(name, folder)
        except (ValueError, OSError) as exc:
            return gr.skip(), f"⚠️ Not deleted: {exc}"
        return (gr.Dropdown(choices=[MODEL_OWN] + templates.list_templates(folder), value=None),
                f"Deleted template **{name}**. This session keeps using it until you choose another.")

    delete_button.click(delete, choice, [choice, status], **_QUIET)


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
        return "", f"⚠️ {exc}\n\nThe last template that worked stays in use."


def _in_use_text(name: str, state, model_source, edited: bool = False) -> str:
    if state is None:
        if model_source:
            return "**In use:** the model's own template (auto-detected from the model)."
        return ("**In use:** the model's own template, auto-detected once a model is loaded "
                "(none is loaded now, or it has no template).")
    if edited or name == MODEL_OWN:
        return "**In use:** the template in the box below, as edited."
    return f"**In use:** {name}."
