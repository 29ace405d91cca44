import os
from pathlib import Path

import pytest
import yaml

from modules.params import GenerationParams
from modules.presets import (
    PRESETS_FOLDER, PresetError, default_params, delete_preset, list_presets, load_preset,
    preset_yaml, save_preset,
)
from modules.safe_files import UnsafeNameError

TGW_PRESET = """\
temperature: 0.82
top_p: 0.21
top_k: 72
repetition_penalty: 1.19
tfs: 0.95
top_a: 0.2
do_sample: true
"""


def test_text_generation_webui_preset_loads_with_unsupported_keys_reported(tmp_path):
    (tmp_path / "tgw.yaml").write_text(TGW_PRESET)
    params, warnings = load_preset("tgw", tmp_path)
    assert (params.temperature, params.top_p, params.top_k) == (0.82, 0.21, 72)
    assert params.repetition_penalty == 1.19 and params.do_sample is True
    assert len(warnings) == 1
    assert "tfs" in warnings[0] and "top_a" in warnings[0] and "ignored" in warnings[0]


def test_unknown_key_and_out_of_range_value_are_named_and_rest_applied(tmp_path):
    (tmp_path / "odd.yaml").write_text("temperature: 9\nflux_capacitor: 3\ntop_k: 40\n")
    params, warnings = load_preset("odd", tmp_path)
    assert params.top_k == 40
    assert params.temperature == GenerationParams().temperature
    text = "\n".join(warnings)
    assert "flux_capacitor" in text
    assert "temperature must be between 0 and 5, got 9" in text


def test_wrong_type_is_named(tmp_path):
    (tmp_path / "t.yaml").write_text("top_k: lots\n")
    params, warnings = load_preset("t", tmp_path)
    assert params.top_k == 0
    assert any("top_k" in w for w in warnings)


def test_broken_yaml_names_file_and_line_and_others_still_list(tmp_path):
    (tmp_path / "good.yaml").write_text("top_k: 5\n")
    (tmp_path / "broken.yaml").write_text("temperature: 0.5\ntop_p: [0.9\ntop_k: 3\n")
    assert list_presets(tmp_path) == ["broken", "good"]
    with pytest.raises(PresetError, match=r"broken\.yaml: invalid YAML at line \d"):
        load_preset("broken", tmp_path)
    assert load_preset("good", tmp_path)[0].top_k == 5


def test_non_mapping_file_is_a_clear_error(tmp_path):
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(PresetError, match="list.yaml"):
        load_preset("list", tmp_path)


def test_inconsistent_combination_is_a_clear_error(tmp_path):
    (tmp_path / "dyn.yaml").write_text("dynamic_temperature: true\ndynatemp_low: 2\ndynatemp_high: 1\n")
    with pytest.raises(PresetError, match="dyn.yaml: dynatemp_low"):
        load_preset("dyn", tmp_path)


def test_empty_file_is_the_defaults(tmp_path):
    (tmp_path / "empty.yaml").write_text("")
    assert load_preset("empty", tmp_path) == (GenerationParams(), [])


def test_saved_file_holds_only_non_default_keys(tmp_path):
    save_preset("mine", GenerationParams(temperature=0.5, top_k=10), tmp_path)
    assert yaml.safe_load((tmp_path / "mine.yaml").read_text()) == {"temperature": 0.5, "top_k": 10}
    save_preset("plain", default_params(), tmp_path)
    assert load_preset("plain", tmp_path) == (GenerationParams(), [])


def test_special_values_round_trip(tmp_path):
    params = GenerationParams(
        custom_stopping_strings=("\n", "User:", 'say "hi"', "#", "- item", "yes", "a, b", "ünï",
                                 "\nUser:", "  lead", "end\n\n", "\t", "two\nlines  ", "null", "1.5"),
        logit_bias={13: -100.0, 7: 2.5},
        grammar_string='root ::= answer\nanswer ::= "yes" | "no"\n',
        dry_sequence_breakers='"\\n", ":"',
        custom_token_bans="13, 2",
        seed=42,
    )
    save_preset("special", params, tmp_path)
    loaded, warnings = load_preset("special", tmp_path)
    assert warnings == []
    assert loaded == params


def test_save_is_atomic_and_overwrites(tmp_path, monkeypatch):
    save_preset("p", GenerationParams(top_k=3), tmp_path)

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        save_preset("p", GenerationParams(top_k=9), tmp_path)
    monkeypatch.undo()
    assert load_preset("p", tmp_path)[0].top_k == 3
    assert sorted(os.listdir(tmp_path)) == ["p.yaml"]
    save_preset("p", GenerationParams(top_k=9), tmp_path)
    assert load_preset("p", tmp_path)[0].top_k == 9


def test_yml_files_are_read_too(tmp_path):
    (tmp_path / "old.yml").write_text("top_k: 4\n")
    assert list_presets(tmp_path) == ["old"]
    assert load_preset("old", tmp_path)[0].top_k == 4


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".hidden", ""])
def test_unsafe_names_are_refused_and_nothing_outside_is_touched(tmp_path, name):
    folder = tmp_path / "presets"
    folder.mkdir()
    outside = tmp_path / "escape.yaml"
    outside.write_text("top_k: 1\n")
    with pytest.raises(UnsafeNameError):
        save_preset(name, GenerationParams(), folder)
    with pytest.raises(UnsafeNameError):
        delete_preset(name, folder)
    with pytest.raises(UnsafeNameError):
        load_preset(name, folder)
    assert outside.read_text() == "top_k: 1\n"
    assert os.listdir(folder) == []


def test_delete(tmp_path):
    save_preset("gone", GenerationParams(top_k=2), tmp_path)
    delete_preset("gone", tmp_path)
    assert list_presets(tmp_path) == []
    with pytest.raises(PresetError, match="no preset named 'gone'"):
        delete_preset("gone", tmp_path)


def test_missing_folder_lists_nothing(tmp_path):
    assert list_presets(tmp_path / "nope") == []


def test_shipped_presets_load_cleanly_and_store_only_differences():
    names = list_presets()
    for expected in ("Balanced", "Creative", "Deterministic", "min_p"):
        assert expected in names
    for name in names:
        params, warnings = load_preset(name)
        assert warnings == [], name
        on_disk = yaml.safe_load((PRESETS_FOLDER / f"{name}.yaml").read_text())
        assert yaml.safe_load(preset_yaml(params)) == on_disk, name
    assert load_preset("Deterministic")[0].is_greedy
    balanced = load_preset("Balanced")[0]
    assert (balanced.temperature, balanced.top_p, balanced.top_k) == (0.7, 0.9, 20)
