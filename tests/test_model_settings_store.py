"""Per-model load settings: remembered per model, written atomically, robust to a broken file."""
from __future__ import annotations

import os

import pytest
import yaml

from loaders.settings import LoadSettings
from modules.model_settings_store import ModelSettingsError, ModelSettingsStore

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER = "SmolLM2-135M-Instruct"


def test_each_model_gets_back_its_own_settings(tmp_path):
    store = ModelSettingsStore.in_folder(tmp_path / "data")
    assert store.get(GGUF) is None                     # never loaded: no file, no error
    store.remember(GGUF, LoadSettings(loader="llama.cpp", ctx_size=2048, parallel=2, mlock=True))
    store.remember(FOLDER, LoadSettings(loader="Transformers", bf16=True, cpu_memory="8GiB"))

    again = ModelSettingsStore.in_folder(tmp_path / "data")   # as after a restart
    gguf, folder = again.get(GGUF), again.get(FOLDER)
    assert (gguf.loader, gguf.ctx_size, gguf.parallel, gguf.mlock) == ("llama.cpp", 2048, 2, True)
    assert (folder.loader, folder.bf16, folder.cpu_memory) == ("Transformers", True, "8GiB")
    assert folder.ctx_size == LoadSettings().ctx_size
    assert again.get("another-model.gguf") is None


def test_loading_again_replaces_the_remembered_settings(tmp_path):
    store = ModelSettingsStore(tmp_path / "model-settings.yaml")
    store.remember(GGUF, LoadSettings(ctx_size=2048))
    store.remember(GGUF, LoadSettings(ctx_size=1024, gpu_layers=-1))
    assert (store.get(GGUF).ctx_size, store.get(GGUF).gpu_layers) == (1024, -1)


def test_file_is_readable_yaml_and_written_atomically(tmp_path, monkeypatch):
    store = ModelSettingsStore(tmp_path / "model-settings.yaml")
    store.remember(GGUF, LoadSettings(ctx_size=2048))
    saved = yaml.safe_load(store.path.read_text())
    assert saved[GGUF]["ctx_size"] == 2048
    before = store.path.read_text()

    # a crash while writing (here: the rename fails) leaves the old file whole and no temp files
    def failing_replace(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        store.remember(FOLDER, LoadSettings(bf16=True))
    monkeypatch.undo()
    assert store.path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model-settings.yaml"]


def test_broken_file_gives_a_clear_message_and_is_kept(tmp_path):
    path = tmp_path / "model-settings.yaml"
    path.write_text(f"{GGUF}:\n  ctx_size: 2048\n   parallel: [oops\n")
    store = ModelSettingsStore(path)
    with pytest.raises(ModelSettingsError, match=r"model-settings.yaml: invalid YAML at line \d+"):
        store.get(GGUF)

    note = store.remember(GGUF, LoadSettings(ctx_size=512))    # saving still works
    assert "model-settings.yaml.broken" in note
    assert store.get(GGUF).ctx_size == 512
    assert "[oops" in (tmp_path / "model-settings.yaml.broken").read_text()


def test_nonsense_values_fall_back_to_defaults(tmp_path):
    path = tmp_path / "model-settings.yaml"
    path.write_text(yaml.safe_dump({GGUF: {"ctx_size": "big", "parallel": 2, "mlock": "yes",
                                           "loader": "exllama", "future_setting": 1},
                                    "odd-entry.gguf": "not a mapping"}))
    store = ModelSettingsStore(path)
    settings = store.get(GGUF)
    assert (settings.ctx_size, settings.parallel, settings.mlock, settings.loader) == (0, 2, False, None)
    assert store.get("odd-entry.gguf") is None


def test_a_list_instead_of_a_mapping_is_reported(tmp_path):
    path = tmp_path / "model-settings.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ModelSettingsError, match="expected 'key: value' lines"):
        ModelSettingsStore(path).get(GGUF)
