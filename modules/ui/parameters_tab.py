"""The Parameters tab: sampler settings (from PARAM_SPECS) and presets; the character
editor is modules/ui/character_editor.py.

As in text-generation-webui, the layout (create_generation_ui) and the events
(create_generation_handlers) are apart. Reading and writing files is done by
modules.presets over the server's Library; what a person changes goes into that browser
session's gr.State (ctx.params_state), never a global, and is remembered for their next
visit by modules.user_settings (per account with log-in, per browser without).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import partial

import gradio as gr
from gradio.context import Context, get_render_context

from modules import presets, user_settings
from modules.params import PARAM_SPECS, GenerationParams, ParamError, ParamSpec
from modules.ui import character_editor, file_choices
from modules.ui.file_choices import FileButtons, FileForm, choices, refused, visitor

PARAM_NAMES = [spec.name for spec in PARAM_SPECS]
_TEXT_AREAS = {"grammar_string": 4, "custom_stopping_strings": 1}
# UI plumbing, not an API: kept out of the API page. "always_last" on live edits makes
# sure the final value of a fast drag or typing burst is never dropped.
_LIVE = dict(trigger_mode="always_last", show_progress="hidden", api_visibility="undocumented")
_QUIET = dict(show_progress="hidden", api_visibility="undocumented")
LIST_INFO = "Yours are marked (private); only an admin can change the shared ones."
MODIFIED = ", modified"      # after the preset's name in the box once the values differ
THINKING_INFO = ("Passes enable_thinking to the chat template. Templates that take it (Qwen3 and others) "
                 "let the model reason before it answers when on, and answer at once when off; others "
                 "ignore it. The reasoning shows in the chat as a Thinking block above the answer.")


def build(ctx) -> None:
    page_tab = get_render_context()      # the page's "Parameters" tab, built around this
    with gr.Tabs():
        with gr.Tab("Generation"):
            generation = create_generation_ui(ctx)
        with gr.Tab("Character") as character_tab:
            character = character_editor.create_ui(ctx)
    create_generation_handlers(ctx, generation)
    shown_by = [character_tab.select] + ([page_tab.select] if isinstance(page_tab, gr.Tab) else [])
    character_editor.create_event_handlers(ctx, character, shown_by)


# ---- layout -------------------------------------------------------------------------------

@dataclass
class GenerationUI:
    preset_choice: gr.Dropdown
    preset_name: gr.Textbox
    shared: gr.Checkbox
    buttons: FileButtons
    defaults: gr.Button
    thinking: gr.Checkbox      # enable_thinking for chat templates (thinking_state holds it)
    status: gr.Markdown
    fields: list               # one component per PARAM_SPECS entry, in table order
    in_use: gr.State           # {"name", "params"}: the preset the values came from, or None


def create_generation_ui(ctx) -> GenerationUI:
    store = file_choices.library(ctx).presets
    initial = _initial_params(ctx)
    start = ctx.extras.get("start_preset")
    with gr.Row():
        preset_choice = gr.Dropdown(choices(store, None), value=start, label="Preset", scale=3,
                                    info=f"Choosing one applies it. {LIST_INFO}",
                                    elem_id="preset-choice")
        preset_name = gr.Textbox(label="Save as", placeholder="preset name", scale=2)
        shared = file_choices.shared_box()
    with gr.Row():
        buttons = file_choices.file_buttons("preset", elem_id="preset")
        defaults = gr.Button("Restore defaults", size="sm")
    thinking = gr.Checkbox(value=True, label="Thinking", info=THINKING_INFO, elem_id="enable-thinking")
    status = gr.Markdown()
    fields = []
    for group in _groups():
        with gr.Accordion(group, open=group in ("Length", "Randomness", "Candidates")):
            with gr.Row(elem_classes="sampler-fields"):
                for spec in (s for s in PARAM_SPECS if s.group == group):
                    fields.append(_field(spec, initial[spec.name]))
    in_use = gr.State({"name": start, "params": initial} if start else None)
    return GenerationUI(preset_choice, preset_name, shared, buttons, defaults, thinking, status, fields, in_use)


def thinking_state(ctx) -> gr.State:
    """This page's Thinking switch (bool), which the Chat tab reads: one per page, made by
    whichever tab asks first."""
    made = ctx.extras.get("thinking_state")
    if made is None or made[0] is not Context.root_block:
        made = ctx.extras["thinking_state"] = (Context.root_block, gr.State(True))
    return made[1]


def _initial_params(ctx) -> dict:
    state_value = getattr(ctx.params_state, "value", None)
    return state_value if isinstance(state_value, dict) else GenerationParams().to_dict()


def _groups() -> list[str]:
    return list(dict.fromkeys(spec.group for spec in PARAM_SPECS))   # table order, no repeats


def _field(spec: ParamSpec, value):
    shown = _display_value(spec, value)
    # The class lets the CSS in modules/ui/app.py give each field room for its whole label.
    common = dict(label=spec.name, info=spec.help, elem_classes="sampler-field")
    if isinstance(spec.default, bool):
        return gr.Checkbox(value=shown, **common)
    if spec.name == "seed":   # a slider over two billion values is unusable
        return gr.Number(value=shown, precision=0, minimum=spec.minimum, maximum=spec.maximum, **common)
    if spec.minimum is not None:
        is_int = isinstance(spec.default, int)
        return gr.Slider(spec.minimum, spec.maximum, value=shown, step=spec.step,
                         precision=0 if is_int else None, **common)
    return gr.Textbox(value=shown, lines=_TEXT_AREAS.get(spec.name, 1), **common)


def _on_screen(values) -> GenerationParams:
    """The fields' values (one per PARAM_SPECS entry, in table order) as checked params;
    raises ParamError for a value out of range or malformed."""
    return GenerationParams.from_dict(dict(zip(PARAM_NAMES, values)))


def _display_value(spec: ParamSpec, value):
    """How a param value shows in its component; the reverse is GenerationParams.from_dict."""
    if spec.name == "custom_stopping_strings":
        return ", ".join(json.dumps(item, ensure_ascii=False) for item in value)
    if spec.name == "logit_bias":
        return json.dumps({str(k): v for k, v in value.items()}) if value else ""
    return value


def _display_values(params: dict) -> list:
    return [_display_value(spec, params[spec.name]) for spec in PARAM_SPECS]


def _differs(in_use: dict | None, params: dict) -> bool:
    """Do the values differ from the preset in use? Floats within rounding count as equal
    (a slider's value can come back as 0.7000000000000001)."""
    if not in_use:
        return False
    for name, value in in_use["params"].items():
        other = params.get(name)
        if isinstance(value, float) and isinstance(other, (int, float)) and not isinstance(other, bool):
            if not math.isclose(value, other, rel_tol=1e-9, abs_tol=1e-9):
                return True
        elif value != other:
            return True
    return False


# ---- events -------------------------------------------------------------------------------

def _preset_box(store, who, in_use: dict | None, params: dict) -> gr.Dropdown:
    """This person's presets, the one in use chosen and marked when the values differ."""
    name = in_use["name"] if in_use else None
    listed = [(label + MODIFIED if value == name and _differs(in_use, params) else label, value)
              for label, value in choices(store, who)]
    return gr.Dropdown(choices=listed, value=name if name in {v for _, v in listed} else None)


def _remember(data_dir, who, params: dict, in_use: dict | None, enable_thinking: bool | None = None) -> str:
    """Keeps the values for this person's next visit; returns a warning line if that fails.
    enable_thinking None: the switch stays as kept."""
    if who is None:          # a new browser before it has its key: nothing to keep them under
        return ""
    try:
        kept = user_settings.remember(data_dir, who, GenerationParams.from_dict(params),
                                      in_use["name"] if in_use else None, enable_thinking)
    except OSError as exc:
        return f"⚠️ Not kept for your next visit: {exc.strerror or exc}"
    return "" if kept else "⚠️ Too large to be kept for your next visit."


def create_generation_handlers(ctx, ui: GenerationUI) -> None:
    library = file_choices.library(ctx)
    store, fields, key = library.presets, ui.fields, ctx.browser_key
    unchanged_fields = [gr.skip()] * len(fields)

    preset_box = partial(_preset_box, store)                 # (who, in_use, params)
    remember = partial(_remember, library.data_dir)          # (who, params, in_use)
    start_in_use, start_params = ui.in_use.value, _initial_params(ctx)

    def restore(key_value, request: gr.Request):
        """On page load (and once a new browser has its key): the values this person used
        last, with the preset they came from; else the page's start values stay."""
        who = visitor(ctx, request, key_value)
        kept = user_settings.recall(library.data_dir, who) if who else None
        admins_box = file_choices.show_to_admins(ctx, request)
        if kept is None:
            return [gr.skip(), *unchanged_fields, gr.skip(),
                    preset_box(who, start_in_use, start_params), admins_box, gr.skip(), gr.skip()]
        values = kept.params.to_dict()
        in_use = None
        if kept.preset:
            try:
                in_use = {"name": kept.preset,
                          "params": presets.load_preset(kept.preset, store, who)[0].to_dict()}
            except ValueError:
                in_use = None        # the preset is gone; the values stay
        return [values, *_display_values(values), in_use, preset_box(who, in_use, values), admins_box,
                kept.enable_thinking, kept.enable_thinking]

    thinking = thinking_state(ctx)
    # triggers=None: on load and when the key changes (the key is the only input).
    gr.on(None, restore, [key],
          [ctx.params_state, *fields, ui.in_use, ui.preset_choice, ui.shared, ui.thinking, thinking], **_QUIET)

    def switch_thinking(request: gr.Request, on, params, in_use, key_value):
        note = remember(visitor(ctx, request, key_value), params, in_use, bool(on))
        return bool(on), note or f"Thinking is {'on' if on else 'off'} for your chats."

    ui.thinking.input(switch_thinking, [ui.thinking, ctx.params_state, ui.in_use, key], [thinking, ui.status],
                      **_QUIET)

    def apply_edits(request: gr.Request, state, in_use, key_value, *values):
        try:
            params = _on_screen(values).to_dict()
        except ParamError as exc:
            return state, f"⚠️ Not applied: {exc}", gr.skip()
        who = visitor(ctx, request, key_value)
        box = gr.skip()
        if _differs(in_use, state) != _differs(in_use, params):
            box = preset_box(who, in_use, params)
        return params, remember(who, params, in_use), box

    # .input fires on user edits only, not when a preset fills the fields (that handler
    # sets the state itself). Every field is read so the state always matches the page.
    gr.on([field.input for field in fields], apply_edits, [ctx.params_state, ui.in_use, key, *fields],
          [ctx.params_state, ui.status, ui.preset_choice], **_LIVE)

    def choose_preset(name, key_value, request: gr.Request):
        if not name:
            return [gr.skip()] * (len(fields) + 4) + [""]
        try:
            who = visitor(ctx, request, key_value)
            params, warnings = presets.load_preset(name, store, who)
        except ValueError as exc:
            return [gr.skip()] * (len(fields) + 4) + [refused("Not applied", exc)]
        values = params.to_dict()
        in_use = {"name": name, "params": values}
        lines = [f"Preset **{name}** applied."] + [f"- ⚠️ {w}" for w in warnings]
        lines.append(remember(who, values, in_use))
        return [values, *_display_values(values), name, in_use, preset_box(who, in_use, values),
                "\n".join(line for line in lines if line)]

    ui.preset_choice.input(choose_preset, [ui.preset_choice, key],
                           [ctx.params_state, *fields, ui.preset_name, ui.in_use, ui.preset_choice,
                            ui.status], **_QUIET)

    def restore_defaults(key_value, request: gr.Request):
        who = visitor(ctx, request, key_value)
        defaults = presets.default_params().to_dict()
        note = remember(who, defaults, None)
        return [defaults, *_display_values(defaults), None, preset_box(who, None, defaults),
                "Defaults restored." + (f" {note}" if note else "")]

    ui.defaults.click(restore_defaults, [key],
                      [ctx.params_state, *fields, ui.in_use, ui.preset_choice, ui.status], **_QUIET)

    # Save reads the fields themselves, not the state: a value typed just before the click
    # is saved even while its own edit event is still on its way.
    def saved(name, who, values):       # the saved preset is now the one in use
        params = _on_screen(values).to_dict()
        in_use = {"name": name, "params": params}
        remember(who, params, in_use)
        return [in_use, params]

    def deleted(name, who, values):     # the deleted one was in use (choosing applies)
        try:
            remember(who, _on_screen(values).to_dict(), None)
        except ParamError:              # a field being edited is not valid yet: kept as it was
            pass
        return [None, gr.skip()]

    file_choices.wire_save_and_delete(ctx, FileForm(
        store=store, noun="preset", dropdown=ui.preset_choice, name_box=ui.preset_name,
        contents=fields, shared=ui.shared, status=ui.status, buttons=ui.buttons,
        write=lambda name, values, who, scope: presets.save_preset(
            name, _on_screen(values), store, who, scope),
        extra_outputs=[ui.in_use, ctx.params_state], after_save=saved, after_delete=deleted))
