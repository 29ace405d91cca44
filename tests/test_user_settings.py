"""Remembered sampler settings: per owner, exact, and forgiving about old or broken files."""
from __future__ import annotations

from modules import user_settings
from modules.params import GenerationParams
from modules.roles import Identity


def person(owner: str) -> Identity:
    return Identity(owner=owner, user=owner, address="127.0.0.1", is_admin=False)


def test_the_values_and_preset_come_back_for_their_owner_only(tmp_path):
    params = GenerationParams(temperature=0.37, top_k=17, custom_stopping_strings=("\n", "User:"),
                              logit_bias={13: -100.0})
    assert user_settings.remember(tmp_path, person("ann"), params, "Balanced")
    kept = user_settings.recall(tmp_path, person("ann"))
    assert kept.params == params and kept.preset == "Balanced"
    assert user_settings.recall(tmp_path, person("bob")) is None


def test_without_a_preset_and_with_defaults_only(tmp_path):
    user_settings.remember(tmp_path, person("ann"), GenerationParams(), None)
    kept = user_settings.recall(tmp_path, person("ann"))
    assert kept.params == GenerationParams() and kept.preset is None


def test_a_broken_file_or_a_value_out_of_range_is_not_a_failure(tmp_path):
    path = user_settings.settings_path(tmp_path, person("ann"))
    path.parent.mkdir(parents=True)
    path.write_text("temperature: [unclosed\n", encoding="utf-8")
    assert user_settings.recall(tmp_path, person("ann")) is None
    path.write_text("preset: Creative\ntemperature: 99\ntop_k: 5\n", encoding="utf-8")
    kept = user_settings.recall(tmp_path, person("ann"))
    assert kept.params == GenerationParams(top_k=5) and kept.preset == "Creative"


def test_settings_too_large_to_keep_are_not_written(tmp_path):
    huge = GenerationParams(grammar_string="x" * (user_settings.MAX_CHARS + 1))
    assert not user_settings.remember(tmp_path, person("ann"), huge, None)
    assert user_settings.recall(tmp_path, person("ann")) is None
