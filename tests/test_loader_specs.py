"""loaders/specs.py is the one description of each loader: every field it lists has a flag,
a place in the Model tab (or is named as the command line's only), and a range that the
command line, the Model tab and the model manager all enforce with the same message."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import gradio as gr
import pytest

from loaders.settings import LoadSettings
from loaders.specs import FIELDS_BY_NAME, LOAD_FIELDS, LOADER_SPECS
from modules import cli
from modules.model_manager import ModelManager
from modules.scheduler import Scheduler
from modules.ui.model_form import FIELDS, settings_form, settings_from_form
from tests.conftest import DEFAULT_GGUF

# Settings deliberately kept off the page: the operator's decision or the server's tuning.
COMMAND_LINE_ONLY = {"trust_remote_code", "cache_reuse", "cache_ram", "prefill_chunk"}
RANGED = [field for field in LOAD_FIELDS if field.kind is int]


def test_load_settings_and_the_specs_describe_the_same_fields():
    settings_fields = {f.name: f.default for f in dataclasses.fields(LoadSettings) if f.name != "loader"}
    assert settings_fields == {field.name: field.default for field in LOAD_FIELDS}
    for spec in LOADER_SPECS:
        assert set(spec.fields) <= set(FIELDS_BY_NAME), spec.name
    read = {name for spec in LOADER_SPECS for name in spec.fields}
    assert read == set(FIELDS_BY_NAME), "a field no loader reads"


@pytest.mark.parametrize("field", LOAD_FIELDS, ids=lambda field: field.name)
def test_every_field_has_a_flag(field):
    parser = cli.build_parser()
    options = {option: action for action in parser._actions for option in action.option_strings}
    assert field.flag in options and options[field.flag].dest == field.name
    assert options[field.flag].help == field.help
    assert getattr(cli.load_settings_from_args(parser.parse_args([])), field.name) == field.default


def test_every_field_but_the_command_lines_own_is_in_the_model_tab():
    with gr.Blocks():
        form = settings_form(SimpleNamespace(default_load_settings=None))
    labels = [component.label for component in form.fields]
    offered = {field.name for field in LOAD_FIELDS if field.label in labels}
    assert offered == set(FIELDS_BY_NAME) - COMMAND_LINE_ONLY == set(FIELDS)
    assert len(form.boxes) == len({field.section for field in LOAD_FIELDS})


@pytest.mark.parametrize("field", RANGED, ids=lambda field: field.name)
def test_every_number_has_a_range_the_flag_the_form_and_the_manager_enforce(field, tmp_path, capsys):
    assert field.minimum is not None and field.maximum is not None
    too_big = field.maximum + 1
    message = f"{field.label} must be between {field.minimum:,} and {field.maximum:,}"
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args([field.flag, str(too_big)])
    assert message in capsys.readouterr().err
    if field.form:
        values = [getattr(LoadSettings(), name) for name in FIELDS]
        values[FIELDS.index(field.name)] = too_big
        with pytest.raises(ValueError, match=message):
            settings_from_form("llama.cpp", values)
    # The API hands its settings to the manager unchecked: the manager refuses them too.
    result = ModelManager(Scheduler(), DEFAULT_GGUF.parent).load(
        DEFAULT_GGUF.name, dataclasses.replace(LoadSettings(), **{field.name: too_big}))
    assert not result.ok and message in result.message


@pytest.mark.parametrize("field", [f for f in LOAD_FIELDS if f.choices], ids=lambda field: field.name)
def test_every_choice_field_refuses_others(field, capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args([field.flag, "nonsense"])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(ValueError, match=f"{field.label} must be one of"):
        field.check("nonsense")
