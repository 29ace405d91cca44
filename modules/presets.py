"""Sampler presets: presets/<name>.yaml files holding only the settings that differ
from the GenerationParams defaults, keyed by text-generation-webui's names, so its
preset files load here as they are and ours load there.

Loading is forgiving (a preset is the user's file, not an API call): each bad or
unknown value is skipped and named in a warning, the rest is applied.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from modules.params import GenerationParams, ParamError, split_preset_keys
from modules.safe_files import (
    atomic_write_text, find_named_file, list_names, path_in_folder, read_yaml_mapping,
)

PRESETS_FOLDER = Path(__file__).resolve().parents[1] / "presets"
SUFFIXES = (".yaml", ".yml")


class PresetError(ValueError):
    """A preset that cannot be read, saved or deleted; the message names the file."""


def list_presets(folder=PRESETS_FOLDER) -> list[str]:
    return list_names(folder, SUFFIXES)


def default_params() -> GenerationParams:
    return GenerationParams()


def load_preset(name: str, folder=PRESETS_FOLDER) -> tuple[GenerationParams, list[str]]:
    """The preset's params and warnings about what in the file was not applied."""
    path = find_named_file(folder, name, SUFFIXES)
    if path is None:
        raise PresetError(f"There is no preset named {name!r}.")
    values = read_yaml_mapping(path, PresetError)
    try:
        return params_from_preset_mapping(values)
    except PresetError as exc:
        raise PresetError(f"{path.name}: {exc}") from None


def params_from_preset_mapping(values: dict) -> tuple[GenerationParams, list[str]]:
    """Applies what it can of a preset mapping on top of the defaults."""
    known, unsupported, unknown = split_preset_keys(values)
    warnings = []
    if unsupported:
        warnings.append(f"Not supported here, ignored: {', '.join(unsupported)}.")
    if unknown:
        warnings.append(f"Unknown settings, ignored: {', '.join(map(str, unknown))}.")
    accepted = {}
    for key, value in known.items():
        # Checked one by one so a single bad value does not discard the whole preset.
        try:
            GenerationParams.from_dict({key: value})
        except ParamError as exc:
            warnings.append(f"{exc} Ignored; the default is used.")
            continue
        accepted[key] = value
    try:
        params = GenerationParams.from_dict(accepted)
    except ParamError as exc:
        # Values fine alone but not together (e.g. dynatemp_low > dynatemp_high).
        raise PresetError(str(exc)) from None
    return params, warnings


def preset_yaml(params: GenerationParams) -> str:
    """The YAML a preset file stores: only the non-default settings, in table order."""
    values = params.non_default_items()
    if "logit_bias" in values:
        values["logit_bias"] = dict(values["logit_bias"])
    if not values:
        return "{}\n"
    return yaml.dump(values, Dumper=_PresetDumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False)


class _PresetDumper(yaml.SafeDumper):
    """Writes strings with line breaks readably: a lone "\\n" stop string as "\\n",
    a multi-line grammar as a | block (PyYAML's default is hard to read for both)."""


def _represent_text(dumper, text: str):
    style = None
    if "\n" in text:
        style = "|" if text.strip() and "\n" in text.strip() else '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_PresetDumper.add_representer(str, _represent_text)


def save_preset(name: str, params: GenerationParams, folder=PRESETS_FOLDER) -> Path:
    path = path_in_folder(folder, name, ".yaml")
    _remove_other_suffixes(folder, name, keep=path)
    atomic_write_text(path, preset_yaml(params))
    return path


def delete_preset(name: str, folder=PRESETS_FOLDER) -> None:
    path = find_named_file(folder, name, SUFFIXES)
    if path is None:
        raise PresetError(f"There is no preset named {name!r}.")
    path.unlink()


def _remove_other_suffixes(folder, name: str, keep: Path) -> None:
    # A stale "name.yml" next to the new "name.yaml" would make the name ambiguous.
    for suffix in SUFFIXES:
        other = path_in_folder(folder, name, suffix)
        if other != keep and other.is_file():
            other.unlink()
