"""The load settings each model was last loaded with, remembered across restarts.

One YAML file (default data/model-settings.yaml) maps a model's name in models/ to its
LoadSettings fields:

    SmolLM2-135M-Instruct.Q4_1.gguf:
      loader: llama.cpp
      ctx_size: 2048
      parallel: 4
      ...

Written atomically, so a crash never leaves half a file. A file someone broke by hand
is reported with its line number and never crashes the server; the next save keeps the
broken file next to it as model-settings.yaml.broken instead of overwriting it.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import threading
from pathlib import Path

import yaml

from loaders.settings import LoadSettings
from loaders.specs import LOAD_FIELDS, LOADER_NAMES
from modules.safe_files import atomic_write_text, read_yaml_mapping

log = logging.getLogger(__name__)

FILE_NAME = "model-settings.yaml"
_FIELD_TYPES = {f.name: type(f.default) for f in dataclasses.fields(LoadSettings) if f.name != "loader"}
# Never written to the file nor read from it: the command line's decision (running a
# folder's own code) and secrets (a remote server's key).
NOT_REMEMBERED = frozenset({"trust_remote_code"} | {field.name for field in LOAD_FIELDS if field.secret})


class ModelSettingsError(ValueError):
    """The settings file cannot be read; the message names the file and the problem."""


class ModelSettingsStore:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()     # several browsers may load models at once

    @classmethod
    def in_folder(cls, data_dir: str | os.PathLike) -> "ModelSettingsStore":
        return cls(Path(data_dir) / FILE_NAME)

    def get(self, model_name: str) -> LoadSettings | None:
        """The settings model_name was last loaded with, or None if it never was.
        Raises ModelSettingsError when the file is broken."""
        with self._lock:
            entry = self._read().get(model_name)
        if not isinstance(entry, dict):
            return None
        return LoadSettings.from_dict(_valid_values(entry, model_name))

    def remember(self, model_name: str, settings: LoadSettings) -> str:
        """Saves settings for model_name. Returns a note for the user ('' normally)."""
        note = ""
        with self._lock:
            try:
                data = self._read()
            except ModelSettingsError as exc:
                kept = self.path.with_name(self.path.name + ".broken")
                os.replace(self.path, kept)
                note = f"{exc} It was kept as {kept.name} and a new file was started."
                log.warning(note)
                data = {}
            values = settings.to_dict()
            for name in NOT_REMEMBERED:
                values.pop(name, None)
            data[model_name] = values
            text = yaml.safe_dump(data, sort_keys=True, allow_unicode=True, default_flow_style=False)
            atomic_write_text(self.path, text)
        return note

    def _read(self) -> dict:
        if not self.path.exists():
            return {}
        try:
            return read_yaml_mapping(self.path, ModelSettingsError)
        except OSError as exc:
            raise ModelSettingsError(f"{self.path.name}: cannot be read ({exc}).") from None


def _valid_values(entry: dict, model_name: str) -> dict:
    """Keeps the values of the right type; a value edited into nonsense falls back to its default."""
    values = {}
    for key, value in entry.items():
        if key == "loader":
            if value is None or value in LOADER_NAMES:
                values[key] = value
            else:
                log.warning("%s: unknown loader %r for %s ignored", FILE_NAME, value, model_name)
            continue
        expected = _FIELD_TYPES.get(key)
        if expected is None or key in NOT_REMEMBERED:
            continue          # a setting from another version: ignored
        if expected is int and isinstance(value, bool) or not isinstance(value, expected):
            log.warning("%s: %s=%r for %s is not a %s; the default is used",
                        FILE_NAME, key, value, model_name, expected.__name__)
            continue
        values[key] = value
    return values
