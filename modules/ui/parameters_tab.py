"""The Parameters tab: sampler settings (from PARAM_SPECS), presets and the character.

Builds components and wires events only; reading and writing files is done by
modules.presets and modules.characters over the server's Library (shared files, and each
person's private ones). Everything a user changes goes into that browser session's
gr.State (ctx.params_state, ctx.character_state), never a global.
"""
from __future__ import annotations

import json

import gradio as gr

from modules import characters, presets
from modules.named_files import PRIVATE
from modules.params import PARAM_SPECS, GenerationParams, ParamError, ParamSpec
from modules.ui import file_choices
from modules.ui.file_choices import FAILURES, choices, refused, scope_for, where

PARAM_NAMES = [spec.name for spec in PARAM_SPECS]
_TEXT_AREAS = {"grammar_string": 4, "custom_stopping_strings": 1}
# UI plumbing, not an API: kept out of the API page. "always_last" on live edits makes
# sure the final value of a fast drag or typing burst is never dropped.
_LIVE = dict(trigger_mode="always_last", show_progress="hidden", api_visibility="undocumented")
_QUIET = dict(show_progress="hidden", api_visibility="undocumented")
_LIST_INFO = "Yours are marked (private); only an admin can change the shared ones."


def build(ctx) -> None:
    with gr.Tabs():
        with gr.Tab("Generation"):
            _build_generation(ctx)
        with gr.Tab("Character"):
            _build_character(ctx)


# ---- sampler settings and presets ------------------------------------------------------

def _build_generation(ctx) -> None:
    store = file_choices.library(ctx).presets
    initial = _initial_params(ctx)
    with gr.Row():
        preset_choice = gr.Dropdown(choices(store, None), value=ctx.extras.get("start_preset"),
                                    label="Preset", info=f"Choosing one applies it. {_LIST_INFO}",
                                    scale=3)
        preset_name = gr.Textbox(label="Save as", placeholder="preset name", scale=2)
        shared = file_choices.shared_box()
    with gr.Row():
        save_button = gr.Button("Save preset", size="sm")
        delete_button = gr.Button("Delete preset", size="sm", variant="stop")
        defaults_button = gr.Button("Restore defaults", size="sm")
    status = gr.Markdown()
    file_choices.list_on_load(ctx, store, preset_choice, shared)

    fields = []
    for group in _groups():
        with gr.Accordion(group, open=group in ("Length", "Randomness", "Candidates")):
            with gr.Row():
                for spec in (s for s in PARAM_SPECS if s.group == group):
                    fields.append(_field(spec, initial[spec.name]))

    def apply_edits(state, *values):
        try:
            params = GenerationParams.from_dict(dict(zip(PARAM_NAMES, values)))
        except ParamError as exc:
            return state, f"⚠️ Not applied: {exc}"
        return params.to_dict(), ""

    # .input fires on user edits only, not when a preset fills the fields (that handler
    # sets the state itself). Every field is read so the state always matches the page.
    gr.on([field.input for field in fields], apply_edits, [ctx.params_state, *fields],
          [ctx.params_state, status], **_LIVE)

    def choose_preset(name, key, request: gr.Request):
        if not name:
            return [gr.skip()] * (len(fields) + 2) + [""]
        try:
            who = file_choices.visitor(ctx, request, key)
            params, warnings = presets.load_preset(name, store, who)
        except ValueError as exc:
            return [gr.skip()] * (len(fields) + 2) + [refused("Not applied", exc)]
        message = "\n".join([f"Preset **{name}** applied."] + [f"- ⚠️ {w}" for w in warnings])
        return [params.to_dict(), *_display_values(params.to_dict()), name, message]

    preset_choice.input(choose_preset, [preset_choice, ctx.browser_key],
                        [ctx.params_state, *fields, preset_name, status], **_QUIET)

    def save(name, state, to_shared, key, request: gr.Request):
        scope = scope_for(to_shared)
        try:
            who = ctx.identify(request, key)
            path = presets.save_preset(name, GenerationParams.from_dict(state), store, who, scope)
        except FAILURES as exc:
            return gr.skip(), refused("Not saved", exc)
        saved = path.stem
        return (gr.Dropdown(choices=choices(store, who), value=saved),
                f"Saved preset **{saved}** ({where(scope)}; only the settings that differ "
                f"from the defaults).")

    save_button.click(save, [preset_name, ctx.params_state, shared, ctx.browser_key],
                      [preset_choice, status], **_QUIET)

    def delete(name, key, request: gr.Request):
        if not name:
            return gr.skip(), "Choose the preset to delete first."
        try:
            who = ctx.identify(request, key)
            scope = presets.delete_preset(name, store, who)
        except FAILURES as exc:
            return gr.skip(), refused("Not deleted", exc)
        return gr.Dropdown(choices=choices(store, who), value=None), _deleted("preset", name, scope)

    delete_button.click(delete, [preset_choice, ctx.browser_key], [preset_choice, status], **_QUIET)

    def restore_defaults():
        defaults = presets.default_params().to_dict()
        return [defaults, *_display_values(defaults), gr.Dropdown(value=None), "Defaults restored."]

    defaults_button.click(restore_defaults, None,
                          [ctx.params_state, *fields, preset_choice, status], **_QUIET)


def _deleted(noun: str, name: str, scope: str) -> str:
    if scope == PRIVATE:
        return f"Deleted your private {noun} **{name}** (a shared one of that name shows again)."
    return f"Deleted the shared {noun} **{name}**."


def _initial_params(ctx) -> dict:
    state_value = getattr(ctx.params_state, "value", None)
    return state_value if isinstance(state_value, dict) else GenerationParams().to_dict()


def _groups() -> list[str]:
    return list(dict.fromkeys(spec.group for spec in PARAM_SPECS))   # table order, no repeats


def _field(spec: ParamSpec, value):
    shown = _display_value(spec, value)
    common = dict(label=spec.name, info=spec.help)
    if isinstance(spec.default, bool):
        return gr.Checkbox(value=shown, min_width=240, **common)
    if spec.name == "seed":   # a slider over two billion values is unusable
        return gr.Number(value=shown, precision=0, minimum=spec.minimum, maximum=spec.maximum,
                         min_width=240, **common)
    if spec.minimum is not None:
        is_int = isinstance(spec.default, int)
        return gr.Slider(spec.minimum, spec.maximum, value=shown, step=spec.step,
                         precision=0 if is_int else None, min_width=240, **common)
    return gr.Textbox(value=shown, lines=_TEXT_AREAS.get(spec.name, 1), min_width=240, **common)


def _display_value(spec: ParamSpec, value):
    """How a param value shows in its component; the reverse is GenerationParams.from_dict."""
    if spec.name == "custom_stopping_strings":
        return ", ".join(json.dumps(item, ensure_ascii=False) for item in value)
    if spec.name == "logit_bias":
        return json.dumps({str(k): v for k, v in value.items()}) if value else ""
    return value


def _display_values(params: dict) -> list:
    return [_display_value(spec, params[spec.name]) for spec in PARAM_SPECS]


# ---- character ---------------------------------------------------------------------------

def _build_character(ctx) -> None:
    store = file_choices.library(ctx).characters
    initial = getattr(ctx.character_state, "value", None) or {}
    with gr.Row():
        choice = gr.Dropdown(choices(store, None), value=None, label="Character", scale=3,
                             info=f"Choosing one loads it into this chat session. {_LIST_INFO}")
        shared = file_choices.shared_box()
    with gr.Row():
        with gr.Column(scale=3):
            name = gr.Textbox(initial.get("name", ""), label="Name", info="The character's name in the chat.")
            greeting = gr.Textbox(initial.get("greeting", ""), label="Greeting", lines=2,
                                  info="The first message of a new chat.")
            context = gr.Textbox(initial.get("context", ""), label="Context", lines=8,
                                 info="Who the character is; it starts every prompt.")
        with gr.Column(scale=1):
            picture = gr.Image(initial.get("picture"), label="Picture (optional)", type="filepath",
                               image_mode=None, height=240)
    with gr.Row():
        save_button = gr.Button("Save character", size="sm")
        delete_button = gr.Button("Delete character", size="sm", variant="stop")
    status = gr.Markdown()
    editors = [name, context, greeting, picture]
    file_choices.list_on_load(ctx, store, choice, shared)

    def edit(name_value, context_value, greeting_value, picture_value):
        return {"name": name_value, "context": context_value, "greeting": greeting_value,
                "picture": picture_value}

    gr.on([name.input, context.input, greeting.input, picture.upload, picture.clear],
          edit, editors, ctx.character_state, **_LIVE)

    def choose(chosen, key, request: gr.Request):
        if not chosen:
            return [gr.skip()] * 5 + [""]
        try:
            character = characters.load_character(chosen, store, file_choices.visitor(ctx, request, key))
        except ValueError as exc:
            return [gr.skip()] * 5 + [refused("Not loaded", exc)]
        state = character.to_state()
        return [state, state["name"], state["context"], state["greeting"], state["picture"],
                f"Character **{character.name}** loaded."]

    choice.input(choose, [choice, ctx.browser_key], [ctx.character_state, *editors, status], **_QUIET)

    def save(name_value, context_value, greeting_value, picture_value, to_shared, key,
             request: gr.Request):
        scope = scope_for(to_shared)
        try:
            who = ctx.identify(request, key)
            path = characters.save_character(name_value, context_value, greeting_value,
                                             picture_value, store, who, scope)
        except FAILURES as exc:
            return gr.skip(), refused("Not saved", exc)
        return (gr.Dropdown(choices=choices(store, who), value=path.stem),
                f"Saved character **{path.stem}** ({where(scope)}).")

    save_button.click(save, [*editors, shared, ctx.browser_key], [choice, status], **_QUIET)

    def delete(chosen, key, request: gr.Request):
        if not chosen:
            return gr.skip(), "Choose the character to delete first."
        try:
            who = ctx.identify(request, key)
            scope = characters.delete_character(chosen, store, who)
        except FAILURES as exc:
            return gr.skip(), refused("Not deleted", exc)
        return (gr.Dropdown(choices=choices(store, who), value=None),
                _deleted("character", chosen, scope) + " This session keeps using it until you "
                                                       "choose another.")

    delete_button.click(delete, [choice, ctx.browser_key], [choice, status], **_QUIET)
