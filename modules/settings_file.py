"""--settings FILE: the sampler values the page starts with.

The file is YAML: `preset: NAME` starts from a preset in presets/, and any
GenerationParams key (text-generation-webui's names) overrides it. As in
text-generation-webui, `default_extensions: [a, b]` enables extensions at start and
`<extension>-<key>: value` sets a value of that extension's `params`
(load_settings_mapping; modules/extensions.py).
"""
from __future__ import annotations

from pathlib import Path

import yaml

from modules.params import GenerationParams, ParamError
from modules.presets import PresetError, load_preset, params_from_preset_mapping


class SettingsError(ValueError):
    pass


def load_default_params(path: str | None, presets_dir: Path,
                        fallback_preset: str | None = None) -> GenerationParams | None:
    if not path:
        if fallback_preset and (presets_dir / f"{fallback_preset}.yaml").exists():
            return load_preset(fallback_preset, presets_dir)[0]
        return None
    values = load_settings_mapping(path)
    try:
        base = GenerationParams()
        if "preset" in values:
            base, _ = load_preset(str(values.pop("preset")), presets_dir)
        overrides, _ = params_from_preset_mapping(values)
        return base.replace(**overrides.non_default_items())
    except (PresetError, ParamError) as exc:
        raise SettingsError(f"{path}: {exc}") from None


def load_settings_mapping(path: str | None) -> dict:
    """The settings file's whole mapping ({} without a file): what is not a sampler value
    (default_extensions, extensions' `<name>-<key>` values) is read from here."""
    if not path:
        return {}
    try:
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise SettingsError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(values, dict):
        raise SettingsError(f"{path} must hold 'key: value' lines.")
    return values
