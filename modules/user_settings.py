"""The sampler settings each person last used (and their Thinking switch), so they survive a reload.

<data dir>/users/<owner folder>/settings.yaml, next to that owner's private presets:

    preset: Balanced      # the preset the values started from (absent: none)
    enable_thinking: false   # the Thinking switch, when off (modules/reasoning.py)
    temperature: 0.37     # every value that differs from the GenerationParams defaults

Kept on the server, per owner, rather than in the browser (gr.BrowserState): with accounts
the owner is the account, so the settings follow the person to any browser, and two
accounts used in one browser do not share them; without accounts the owner is the
browser's key, so it is per browser, as the chats are. The values go through the same
forgiving reader as preset files, so a file written before a setting changed its range
still loads (the bad value is dropped).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from modules.named_files import dump_yaml, owner_folder
from modules.params import GenerationParams
from modules.presets import PresetError, params_from_preset_mapping
from modules.roles import Identity
from modules.safe_files import atomic_write_text, read_yaml_mapping

FILE_NAME = "settings.yaml"
MAX_CHARS = 200_000     # a grammar fits; a file that would be larger is not kept
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Remembered:
    params: GenerationParams
    preset: str | None
    enable_thinking: bool = True


def settings_path(data_dir, identity: Identity) -> Path:
    return Path(data_dir) / "users" / owner_folder(identity.owner) / FILE_NAME


def remember(data_dir, identity: Identity, params: GenerationParams, preset: str | None,
             enable_thinking: bool | None = None) -> bool:
    """Writes this owner's settings; False (nothing written) when they are too large.
    enable_thinking None: as it was kept before."""
    if enable_thinking is None:
        kept = recall(data_dir, identity)
        enable_thinking = kept.enable_thinking if kept is not None else True
    values = {"preset": preset} if preset else {}
    if not enable_thinking:
        values["enable_thinking"] = False
    values.update(params.non_default_items())
    if "logit_bias" in values:
        values["logit_bias"] = dict(values["logit_bias"])
    text = dump_yaml(values)
    if len(text) > MAX_CHARS:
        return False
    atomic_write_text(settings_path(data_dir, identity), text)
    return True


def recall(data_dir, identity: Identity) -> Remembered | None:
    """This owner's last settings, or None when none are kept or the file cannot be read."""
    path = settings_path(data_dir, identity)
    if not path.is_file():
        return None
    try:
        values = read_yaml_mapping(path, PresetError)
        preset = values.pop("preset", None)
        enable_thinking = values.pop("enable_thinking", True) is not False
        params, warnings = params_from_preset_mapping(values)
    except (PresetError, OSError) as exc:
        log.warning("Remembered settings in %s not used: %s", path, exc)
        return None
    for warning in warnings:
        log.info("Remembered settings in %s: %s", path, warning)
    return Remembered(params, str(preset) if preset else None, enable_thinking)
