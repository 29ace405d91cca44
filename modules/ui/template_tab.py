"""The Instruction template tab: which chat template formats the prompt.

A template goes into use in three ways only, each an explicit act that first renders the
sample conversation: choosing one in the list (a saved one, or the model's own), saving the
box under a name, or "Use this template" for the text in the box. Typing changes only the
preview (rendered once typing pauses) and the note under the box, so half-typed text, which
often renders (the editor closes "{" to "{}" at once), never reaches a prompt.

Two lines say where things stand and never overlap: above the box, which template is in use
(the model's own, a saved one by name, or an edited one and when it was applied); under the
box, whether its text is that template, has changes not in use yet, or has an error.

ctx.template_state holds the source in use, None for the loaded model's own template; the
Chat tab reads it. Storage and preview live in modules.instruction_templates; saved
templates are the shared ones and each person's private ones (the server's Library).
"""
from __future__ import annotations

import re
from datetime import datetime
from types import SimpleNamespace

import gradio as gr

from modules import instruction_templates as templates
from modules.template_render import TemplateError
from modules.ui import file_choices

MODEL_OWN = "(the model's own template)"
MATCHES_IN_USE = "The box shows the template in use."
HAS_CHANGES = "The box has changes that are not in use yet: *Use this template* puts them in use."
EMPTY = "The box is empty: write a template here, or choose one in the list."
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
# "Applied at HH:MM" in the person's own time: the browser's clock goes with the click.
_WITH_BROWSER_CLOCK = "(clock, ...rest) => [new Date().toTimeString().slice(0, 5), ...rest]"


def build(ctx) -> None:
    create_event_handlers(ctx, create_ui(ctx))


def create_ui(ctx) -> SimpleNamespace:
    ui = SimpleNamespace()
    # How the template in use was chosen, for the line above the box: {"name": saved name}
    # or {"at": "HH:MM"} (edited); with the model's own, {"shown": its source as put in the box}.
    ui.applied = gr.State({})
    ui.clock = gr.Textbox(visible=False)        # the browser's time of an Apply click
    store = file_choices.library(ctx).templates
    with gr.Row():
        ui.choice = gr.Dropdown(file_choices.choices(store, None, [MODEL_OWN]), value=MODEL_OWN,
                                label="Instruction template", scale=3, elem_id="template-choice",
                                info="How the chat is written out for the model. Most models "
                                     "bring their own; choose another only if the replies look wrong.")
        ui.refresh = gr.Button("↻ Refresh", size="sm", scale=0, min_width=100)
    ui.in_use = gr.Markdown(elem_id="template-in-use")
    with gr.Row():
        with gr.Column():
            ui.source = gr.Code("", language="jinja2", interactive=True, lines=18,
                                label="Template (Jinja2: messages, add_generation_prompt, "
                                      "bos_token, eos_token)")
            with gr.Row():
                ui.box_note = gr.Markdown(elem_id="template-box-status")
                ui.apply = gr.Button("Use this template", variant="primary", interactive=False, size="md",
                                     scale=0, min_width=210, elem_id="template-apply")
            with gr.Row():
                ui.save_name = gr.Textbox(label="Save as", placeholder="template name", scale=3)
                ui.save = gr.Button("Save", size="sm", scale=1)
                ui.delete = gr.Button("Delete", size="sm", variant="stop", scale=1)
            ui.save_shared = file_choices.shared_box()
            ui.status = gr.Markdown(elem_id="template-file-status")
        with gr.Column():
            ui.preview = gr.Code("", language=None, interactive=False, lines=18, wrap_lines=True,
                                 label="Preview: a sample conversation (bos/eos shown as <s> and </s>)")
    return ui


def create_event_handlers(ctx, ui: SimpleNamespace) -> None:
    store = file_choices.library(ctx).templates
    _page_load_and_refresh(ctx, ui, store)
    _choosing(ctx, ui, store)
    _editing_and_applying(ctx, ui)
    _saving_and_deleting(ctx, ui, store)


def _page_load_and_refresh(ctx, ui, store) -> None:
    def list_templates(key, request: gr.Request):
        return (gr.Dropdown(choices=file_choices.choices(store, file_choices.visitor(ctx, request, key),
                                                         [MODEL_OWN])),
                file_choices.show_to_admins(ctx, request))

    def follow_model(state, applied, source):
        """While following the model, its template of now in the box, if the box is empty or
        shows an earlier model's; never over the person's own text."""
        model_now = _model_template(ctx)
        shown = model_now or ""
        stale = not source or (source == applied.get("shown") and source != shown)
        if state is not None or not stale:
            return *[gr.skip()] * 5, _in_use_text(state, applied, model_now), gr.skip()
        preview, note, apply = _box_view(shown, None, model_now)
        return (gr.Dropdown(value=MODEL_OWN), shown, preview, note, apply, _in_use_text(None, {}, model_now),
                {"shown": shown})

    box = dict(fn=follow_model, inputs=[ctx.template_state, ui.applied, ui.source],
               outputs=[ui.choice, ui.source, ui.preview, ui.box_note, ui.apply, ui.in_use, ui.applied],
               **_QUIET)
    listing = dict(fn=list_templates, inputs=[ctx.browser_key], outputs=[ui.choice, ui.save_shared], **_QUIET)
    ui.refresh.click(**listing).then(**box)
    # The page was built when the server started, before models were loaded or templates
    # saved: fill it on each page load and again once a new browser has its key (its own
    # templates). gr.on without triggers runs then, and on every change of its inputs: the
    # box's state goes to .then, whose inputs trigger nothing.
    gr.on(None, **listing).then(**box)


def _choosing(ctx, ui, store) -> None:
    """Choosing in the list puts that template in use at once (it is whole, not half-typed),
    once it renders; one that does not is shown for fixing and the one in use stays."""
    def choose(name, state, key, request: gr.Request):
        if not name:
            return [gr.skip()] * 9
        model_now = _model_template(ctx)
        if name == MODEL_OWN:
            source, new_state, applied = model_now or "", None, {"shown": model_now or ""}
        else:
            try:
                source = templates.load_template(name, store, file_choices.visitor(ctx, request, key))
            except ValueError as exc:
                return [gr.skip()] * 8 + [file_choices.refused("Not opened", exc)]
            new_state, applied = source, {"name": name}
        save_as = "" if name == MODEL_OWN else name
        preview, error = _preview(source)
        if error:
            note, _ = _box_note(source, state, model_now, error)
            return [gr.skip(), gr.skip(), source, "", note, gr.Button(interactive=False), gr.skip(), save_as, ""]
        return [new_state, applied, source, preview, _box_note(source, new_state, model_now)[0],
                gr.Button(interactive=False), _in_use_text(new_state, applied, model_now), save_as, ""]

    outputs = [ctx.template_state, ui.applied, ui.source, ui.preview, ui.box_note, ui.apply, ui.in_use,
               ui.save_name, ui.status]
    ui.choice.input(choose, [ui.choice, ctx.template_state, ctx.browser_key], outputs, **_QUIET)


def _editing_and_applying(ctx, ui) -> None:
    def edit(source, state):
        return _box_view(source, state, _model_template(ctx))

    # Typing only previews: the template in use changes on Apply alone.
    ui.source.input(None, js=_AFTER_TYPING_PAUSES).then(
        edit, [ui.source, ctx.template_state], [ui.preview, ui.box_note, ui.apply], **_LIVE)

    def apply(clock, source, state):
        """Puts the box's text in use if it renders now: rendered here again, so a click
        before the preview caught up can never apply text that does not render."""
        model_now = _model_template(ctx)
        preview, error = _preview(source)
        note, can_apply = _box_note(source, state, model_now, error)
        if not can_apply:                 # empty, an error, or already the one in use
            return gr.skip(), gr.skip(), preview or gr.skip(), note, gr.Button(interactive=False), gr.skip()
        at = clock if re.fullmatch(r"\d\d:\d\d", clock or "") else datetime.now().strftime("%H:%M")
        applied = {"at": at}
        return (source, applied, preview, MATCHES_IN_USE, gr.Button(interactive=False),
                _in_use_text(source, applied, model_now))

    ui.apply.click(apply, [ui.clock, ui.source, ctx.template_state],
                   [ctx.template_state, ui.applied, ui.preview, ui.box_note, ui.apply, ui.in_use],
                   js=_WITH_BROWSER_CLOCK, **_QUIET)


def _saving_and_deleting(ctx, ui, store) -> None:
    def save(name, source, to_shared, state, key, request: gr.Request):
        """Saves the box and, if it renders, puts the saved template in use."""
        if (name or "").strip() == MODEL_OWN:
            return *[gr.skip()] * 6, "⚠️ Not saved: choose another name."
        scope = file_choices.scope_for(to_shared)
        try:   # TemplateError and unsafe names are ValueErrors, NotAdmin a PermissionError
            who = ctx.identify(request, key)
            path = templates.save_template(name, source, store, who, scope)
        except file_choices.FAILURES as exc:
            return *[gr.skip()] * 6, file_choices.refused("Not saved", exc)
        saved = path.stem
        listed = gr.Dropdown(choices=file_choices.choices(store, who, [MODEL_OWN]), value=saved)
        done = f"Saved template **{saved}** ({file_choices.where(scope)})."
        model_now = _model_template(ctx)
        _, error = _preview(source)
        if error:
            note, _ = _box_note(source, state, model_now, error)
            return listed, gr.skip(), gr.skip(), gr.skip(), note, gr.skip(), done + " It is not in use."
        applied = {"name": saved}
        return (listed, source, applied, _in_use_text(source, applied, model_now), MATCHES_IN_USE,
                gr.Button(interactive=False), done)

    ui.save.click(save, [ui.save_name, ui.source, ui.save_shared, ctx.template_state, ctx.browser_key],
                  [ui.choice, ctx.template_state, ui.applied, ui.in_use, ui.box_note, ui.apply, ui.status],
                  **_QUIET)

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

    ui.delete.click(delete, [ui.choice, ctx.browser_key], [ui.choice, ui.status], **_QUIET)


# ---- what the two lines say --------------------------------------------------------------

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
        return "", str(exc)


def _box_view(source: str, state, model_source) -> tuple:
    """(preview, note under the box, Apply button) for the box's text; a text that does not
    render keeps the last preview that did."""
    preview, error = _preview(source)
    note, can_apply = _box_note(source, state, model_source, error)
    return preview if not error else gr.skip(), note, gr.Button(interactive=can_apply)


def _box_note(source: str, state, model_source, error: str = "") -> tuple[str, bool]:
    """What the box's text is next to the template in use, and whether Apply may put it in use."""
    in_use = (model_source or "") if state is None else state
    if not source.strip():
        return EMPTY, False
    if error and source == in_use:
        return (f"⚠️ {_literal(error)}\n\nThis is the template in use: chats may fail with the "
                "same error. Choose or write another."), False
    if error:
        return (f"⚠️ {_literal(error)}\n\nThe box cannot be put in use until it renders; the "
                "template in use is unchanged."), False
    if source == in_use:
        return MATCHES_IN_USE, False
    return HAS_CHANGES, True


def _literal(text: str) -> str:
    """Template errors and names quote template code (`'x' * 10`, `__class__`): shown as
    typed, not read as Markdown."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~])", r"\\\1", text)


def _in_use_text(state, applied: dict, model_source) -> str:
    if state is None:
        if model_source:
            return "**In use:** the model's own template (auto-detected from the model)."
        return ("**In use:** the model's own template, auto-detected once a model is loaded "
                "(none is loaded now, or it has no template).")
    if applied.get("name"):
        return f"**In use:** the saved template **{_literal(applied['name'])}**."
    return f"**In use:** the template you edited, applied at {applied.get('at', 'an earlier time')}."
