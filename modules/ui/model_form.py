"""The Model tab's settings form, built from loaders/specs.py: one box per section, a field
for every LOAD_FIELDS entry the form offers, shown while the chosen loader reads it; read
back into LoadSettings with each field's range checked; and the settings to show for a
model (how it runs now, how it was last loaded, or the server's flags)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from loaders.settings import LoadSettings
from loaders.specs import CONTEXT, LOAD_FIELDS, SECTIONS, SPECS_BY_NAME
from modules import model_files
from modules.model_settings_store import ModelSettingsError, ModelSettingsStore
from modules.ui.model_view import division_text, loaded_name

# The fields the form offers, in order; the rest are the command line's (LoadField.form).
FORM_FIELDS = [field for field in LOAD_FIELDS if field.form]
FIELDS = [field.name for field in FORM_FIELDS]
COMMAND_LINE_ONLY = [field for field in LOAD_FIELDS if not field.form]

_QUIET = dict(show_progress="hidden", api_visibility="undocumented")


def settings_form(ctx) -> SimpleNamespace:
    """The components for FORM_FIELDS (form.fields, in FIELDS order), in one box per section
    (form.boxes, in SECTIONS order)."""
    defaults = ctx.default_load_settings or LoadSettings()
    made, boxes = {}, []
    for section in SECTIONS:
        in_section = [field for field in FORM_FIELDS if field.section == section]
        with gr.Column(visible=False) as box:
            gr.Markdown(f"#### {section}")
            for start in range(0, len(in_section), 3):
                with gr.Row():
                    for field in in_section[start:start + 3]:
                        made[field.name] = _component(field, getattr(defaults, field.name))
            _command_line_note(section, defaults)
            if section == CONTEXT:
                made["division"] = gr.Markdown(division_text(defaults.ctx_size, defaults.parallel),
                                               elem_id="model-division")
        boxes.append(box)
    gr.on([made["ctx_size"].change, made["parallel"].change], division_text,
          [made["ctx_size"], made["parallel"]], made["division"], **_QUIET)
    return SimpleNamespace(fields=[made[name] for name in FIELDS], boxes=boxes)


def _component(field, value):
    """One field's component. Number boxes get no minimum or maximum: Gradio would refuse an
    out-of-range value with a traceback on the console; settings_from_form says what is wrong."""
    common = dict(label=field.label, info=field.help)
    if field.kind is bool:
        return gr.Checkbox(value, **common)
    if field.kind is int:
        return gr.Number(value, precision=0, **common)
    if field.choices:
        return gr.Dropdown([(choice or "default", choice) for choice in field.choices], value=value, **common)
    if field.secret:        # never sent to the page: empty means "keep the one given before"
        return gr.Textbox("", type="password", placeholder="empty: keep the key given before", **common)
    return gr.Textbox(value, placeholder=field.placeholder, max_length=field.max_length, **common)


def _command_line_note(section, defaults) -> None:
    flags = [f"`{field.flag}` (now {_shown(field, getattr(defaults, field.name))})"
             for field in COMMAND_LINE_ONLY if field.section == section]
    if flags:
        gr.Markdown("Set on the server's command line only: " + ", ".join(flags) + ".")


def _shown(field, value) -> str:
    if field.kind is bool:
        on = value if not field.flag.startswith("--no-") else not value
        return "on" if on else "off"
    return str(value)


def visibility(loader_name) -> list:
    """Shows the boxes and fields the chosen loader reads, and hides the rest: the updates
    for form.boxes, then form.fields."""
    return _box_updates(loader_name) + [gr.update(visible=shown) for shown in _fields_shown(loader_name)]


def form_view(settings: LoadSettings) -> list:
    """The updates for form.boxes, then form.fields, showing settings (secrets never leave
    the server: their boxes stay empty) with only what its loader reads visible."""
    values = ["" if field.secret else getattr(settings, field.name) for field in FORM_FIELDS]
    return _box_updates(settings.loader) + [gr.update(value=value, visible=shown) for value, shown
                                            in zip(values, _fields_shown(settings.loader))]


def _reads(loader_name) -> set[str]:
    spec = SPECS_BY_NAME.get(loader_name)
    return set(spec.fields) if spec else set()


def _box_updates(loader_name) -> list:
    reads = _reads(loader_name)
    return [gr.Column(visible=any(f.name in reads for f in LOAD_FIELDS if f.section == section))
            for section in SECTIONS]


def _fields_shown(loader_name) -> list[bool]:
    reads = _reads(loader_name)
    return [field.name in reads for field in FORM_FIELDS]


def settings_from_form(loader_name, values, server_settings: LoadSettings | None = None,
                       current: LoadSettings | None = None) -> LoadSettings:
    """LoadSettings from the form; an emptied number box means its default, every value is
    checked against its field's range. Settings the form does not offer (trust_remote_code)
    come from the server's command line; an empty secret is the one given before."""
    if loader_name not in SPECS_BY_NAME:
        raise ValueError("Choose a loader.")
    defaults = LoadSettings()
    chosen = {}
    for field, value in zip(FORM_FIELDS, values):
        default = getattr(defaults, field.name)
        if field.kind is bool:
            chosen[field.name] = bool(value)
        elif field.kind is int:
            chosen[field.name] = default if value is None or value == "" else _whole_number(field.label, value)
        else:
            chosen[field.name] = (value or "").strip()[:field.max_length]
        field.check(chosen[field.name])
    for field in COMMAND_LINE_ONLY:
        chosen[field.name] = getattr(server_settings or defaults, field.name)
    settings = LoadSettings(loader=loader_name, **chosen)
    return _keep_secrets(settings, [current, server_settings])


def _keep_secrets(settings: LoadSettings, earlier: list) -> LoadSettings:
    """An empty secret means the one given before (the page never holds it), taken from the
    loaded model's settings or the server's flags, and only for the same remote address:
    a key is never sent to an address it was not given for."""
    for field in FORM_FIELDS:
        if not field.secret or getattr(settings, field.name):
            continue
        for source in earlier:
            if source is not None and getattr(source, field.name) and \
                    getattr(source, "remote_url", None) == getattr(settings, "remote_url", None):
                settings = dataclasses.replace(settings, **{field.name: getattr(source, field.name)})
                break
    return settings


def _whole_number(label: str, value) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{label} must be a whole number.") from None
    if number != int(number):
        raise ValueError(f"{label} must be a whole number (got {value}).")
    return int(number)


def settings_for(ctx, store: ModelSettingsStore, name: str | None) -> tuple[LoadSettings, str]:
    """What the form shows for a model: how it is loaded now, else how it was last loaded,
    else the server's flags with the loader detected from the files."""
    defaults = ctx.default_load_settings or LoadSettings()
    if not name and ctx.models.current_settings is not None and ctx.models.current_path is None:
        return ctx.models.current_settings, "Settings the remote model is running with."
    if not name:
        return dataclasses.replace(defaults, loader=defaults.loader or "llama.cpp"), ""
    if name == loaded_name(ctx) and ctx.models.current_settings is not None:
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


def remember(store: ModelSettingsStore, name: str, settings: LoadSettings) -> str:
    try:
        note = store.remember(name, settings)
    except OSError as exc:
        return f"\n\n⚠️ The settings could not be remembered: {exc}"
    return f"\n\n⚠️ {note}" if note else ""


