"""The Model tab's form: what an admin types becomes LoadSettings or a plain message."""
from __future__ import annotations

import pytest

from loaders.settings import LoadSettings
from modules.ui.model_form import FIELDS, settings_from_form as _settings_from_form


def form(**changes):
    values = {name: getattr(LoadSettings(), name) for name in FIELDS}
    values.update(changes)
    return [values[name] for name in FIELDS]


@pytest.mark.parametrize("changes, message", [
    ({"ctx_size": 10**9}, "ctx-size must be between 0 and 1,048,576"),
    ({"parallel": 0}, "parallel must be between 1 and 256"),
    ({"threads": -3}, "threads must be between 0 and 1,024"),
    ({"batch_size": 2.5}, "batch-size must be a whole number"),
])
def test_out_of_range_numbers_get_a_message(changes, message):
    with pytest.raises(ValueError, match=message):
        _settings_from_form("llama.cpp", form(**changes))


def test_trust_remote_code_comes_only_from_the_command_line():
    assert not _settings_from_form("Transformers", form()).trust_remote_code
    operator = LoadSettings(trust_remote_code=True)
    assert _settings_from_form("Transformers", form(), operator).trust_remote_code
