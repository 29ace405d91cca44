"""Sampler presets: <name>.yaml files holding only the settings that differ from the
GenerationParams defaults, keyed by text-generation-webui's names, so its preset files load
here as they are and ours load there. Shared ones live in presets/, private ones in each
owner's folder (modules.named_files).

Loading is forgiving (a preset is the user's file, not an API call): each bad or
unknown value is skipped and named in a warning, the rest is applied.

`folder` below is a named_files.NamedFiles store, used with the asker's Identity, or a
plain folder as before (scripts, tests, --settings).
"""
from __future__ import annotations

from pathlib import Path

from modules.named_files import NamedFiles, as_store, dump_yaml
from modules.params import GenerationParams, ParamError, split_preset_keys
from modules.roles import Identity

PRESETS_FOLDER = Path(__file__).resolve().parents[1] / "presets"
SUFFIXES = (".yaml", ".yml")


class PresetError(ValueError):
    """A preset that cannot be read, saved or deleted; the message names the file."""


def store(shared_folder=PRESETS_FOLDER, data_dir=None) -> NamedFiles:
    return NamedFiles("presets", shared_folder, data_dir, suffixes=SUFFIXES, noun="preset",
                      error=PresetError)


def list_presets(folder=PRESETS_FOLDER, identity: Identity | None = None) -> list[str]:
    files, identity = as_store(folder, identity, store)
    return files.names(identity)


def default_params() -> GenerationParams:
    return GenerationParams()


def load_preset(name: str, folder=PRESETS_FOLDER,
                identity: Identity | None = None) -> tuple[GenerationParams, list[str]]:
    """The preset's params and warnings about what in the file was not applied."""
    files, identity = as_store(folder, identity, store)
    entry = files.get(name, identity)
    values = files.read_yaml(entry)
    try:
        return params_from_preset_mapping(values)
    except PresetError as exc:
        raise PresetError(f"{entry.path.name}: {exc}") from None


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
    return dump_yaml(values)


def save_preset(name: str, params: GenerationParams, folder=PRESETS_FOLDER,
                identity: Identity | None = None, scope: str | None = None) -> Path:
    """Writes the preset to `scope` (default: private where there are private folders).
    Saving to the shared scope needs an admin (roles.NotAdmin)."""
    files, identity = as_store(folder, identity, store)
    return files.write_text(name, preset_yaml(params), identity, scope or files.default_scope)


def delete_preset(name: str, folder=PRESETS_FOLDER, identity: Identity | None = None,
                  scope: str | None = None) -> str:
    """Deletes the preset this person sees under `name`; returns its scope."""
    files, identity = as_store(folder, identity, store)
    return files.delete(name, identity, scope).scope
