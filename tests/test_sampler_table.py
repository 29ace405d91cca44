"""docs/samplers.md's table, checked against the code: every field of PARAM_SPECS, on every
backend, is carried out as the table says, or refused with a visible warning.

For each (field, backend) the table's cell starts with native, ours, engine or warning.
- native / ours / engine: the backend gives no warning for the field and the field's check
  in tests/sampler_checks.py passes (the setting changes what is drawn as its definition says);
- warning: Backend.warnings_for names the field.
The table itself must list exactly the fields of PARAM_SPECS, so neither can drift.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from modules.params import PARAM_SPECS, GenerationParams
from modules.scheduler import Scheduler
from tests.sampler_checks import CHECKS, NON_DEFAULT, Probe

DOC = Path(__file__).resolve().parents[1] / "docs" / "samplers.md"
KINDS = ("native", "ours", "engine", "warning")


def read_table() -> dict[str, dict[str, str]]:
    """{field: {backend: first word of its cell}} from the markdown table."""
    lines = [line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header[0] == "parameter", header
    table = {}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        table[cells[0]] = {backend: re.match(r"\w+", cell).group(0)
                           for backend, cell in zip(header[1:], cells[1:])}
    return table


TABLE = read_table()
BACKENDS = ("llama.cpp", "Transformers", "GPTQ")
CASES = [(backend, field) for backend in BACKENDS for field in TABLE]


def test_the_table_lists_every_field_once_and_only_known_kinds():
    assert list(TABLE) == [spec.name for spec in PARAM_SPECS]
    for field, cells in TABLE.items():
        assert set(cells) == set(BACKENDS), (field, cells)
        assert set(cells.values()) <= set(KINDS), (field, cells)
        # A setting llama.cpp carries out itself is "native" there; "ours" is the torch code.
        assert cells["llama.cpp"] != "ours", field
    assert set(NON_DEFAULT) == set(TABLE)
    assert set(TABLE) <= set(CHECKS), sorted(set(TABLE) - set(CHECKS))


@pytest.fixture(scope="module")
def probes(request):
    """Backends loaded on first use and kept for the module (one at a time in memory would
    reload for every field)."""
    loaded: dict[str, Probe] = {}
    owned = []

    def get(name: str) -> Probe:
        if name not in loaded:
            if name == "llama.cpp":
                loaded[name] = Probe(request.getfixturevalue("scheduler"), name)
            else:
                from loaders import load_backend
                from loaders.settings import LoadSettings
                from tools.make_test_models import ensure_test_models
                folder = ensure_test_models()["fp16" if name == "Transformers" else "gptq"]
                try:
                    backend = load_backend(name, str(folder), LoadSettings(ctx_size=2048, parallel=2))
                except ImportError as exc:          # GPTQ without its optional packages
                    pytest.skip(f"{name} cannot load here: {exc}")
                scheduler = Scheduler(backend)
                owned.append((scheduler, backend))
                loaded[name] = Probe(scheduler, name)
        return loaded[name]
    yield get
    for scheduler, backend in owned:
        scheduler.swap_backend(None, "The test module is over.")
        backend.unload()


@pytest.mark.parametrize("backend, field", CASES, ids=[f"{b}-{f}" for b, f in CASES])
def test_each_field_is_honoured_or_refused_with_a_warning(probes, backend, field):
    probe = probes(backend)
    kind = TABLE[field][backend]
    warnings = probe.backend.warnings_for(GenerationParams.from_dict({field: NON_DEFAULT[field]}))
    if kind == "warning":
        assert any(field in warning for warning in warnings), (field, warnings)
        return
    assert not any(field in warning for warning in warnings), warnings
    CHECKS[field](probe)
