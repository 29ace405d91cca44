"""The GPTQ backend on a real 4-bit model (quantized locally from the default GGUF),
driven through the scheduler."""
from __future__ import annotations

import pytest

from modules.scheduler import Scheduler
from tests.conftest import loaded_test_model, scheduler_over
from tests.test_transformers_backend import (
    FRANCE, chat, check_ban_eos, check_paris, check_same_seed_same_text, greedy,
)


@pytest.fixture(scope="module")
def backend():
    yield from loaded_test_model("gptq", parallel=2)


@pytest.fixture(scope="module")
def scheduler(backend):
    yield from scheduler_over(backend, "The test module is over.")


def test_model_info(backend):
    info = backend.info
    assert info.loader == "GPTQ" and info.max_sequences == 2 and info.n_ctx == 2048
    assert info.details["quantization"]["bits"] == 4
    assert info.details["gptq_kernel"], "no GPTQ layer was found in the loaded model"


def test_greedy_answer_names_paris(scheduler, backend):
    check_paris(scheduler, backend)


def test_same_seed_gives_same_text(scheduler, backend):
    check_same_seed_same_text(scheduler, backend)


def test_ban_eos_writes_until_max_new_tokens(scheduler, backend):
    check_ban_eos(scheduler, backend)


def test_emoji_reply_is_intact(scheduler, backend):
    result = scheduler.submit(chat(backend, "Write the pizza emoji 🍕 three times."), greedy(6)).result()
    assert "🍕" in result.text and "\ufffd" not in result.text


def test_two_requests_at_once(scheduler, backend):
    requests = [scheduler.submit(chat(backend, FRANCE), greedy()) for _ in range(2)]
    texts = [r.text() for r in requests]
    assert texts[0] == texts[1] and "Paris" in texts[0]


def test_older_layout_with_quantize_config_json_loads(tmp_path):
    """AutoGPTQ-era folders keep the settings in quantize_config.json, not config.json."""
    from loaders import load_backend
    from loaders.settings import LoadSettings
    from tests.test_hf_folder import gptq_copy
    from tools.make_test_models import ensure_test_models
    folder = gptq_copy(tmp_path, ensure_test_models()["gptq"],
                       quantize_json='{"bits": 4, "group_size": 64, "desc_act": false, "sym": true}')
    loaded = load_backend("GPTQ", str(folder), LoadSettings(parallel=1))
    try:
        assert "Paris" in Scheduler(loaded).submit(chat(loaded, FRANCE), greedy(10)).text()
    finally:
        loaded.unload()
