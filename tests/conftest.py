"""Shared fixtures: the real default model, loaded once per test session."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_GGUF = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
# The loader of each Hugging Face folder tools/make_test_models.py makes from DEFAULT_GGUF.
TEST_MODEL_LOADERS = {"fp16": "Transformers", "gptq": "GPTQ"}


def loaded_test_model(kind: str, parallel: int):
    """For a fixture to `yield from`: the "fp16" or "gptq" test model, loaded with a
    2,048-token context, unloaded when the fixture ends."""
    from loaders import load_backend
    from loaders.settings import LoadSettings
    from tools.make_test_models import ensure_test_models
    folder = ensure_test_models()[kind]
    loaded = load_backend(TEST_MODEL_LOADERS[kind], str(folder), LoadSettings(ctx_size=2048, parallel=parallel))
    yield loaded
    loaded.unload()


def scheduler_over(backend, ending: str):
    """For a fixture to `yield from`: a scheduler for `backend`. It hands the backend back
    (with `ending` for anything still queued) before the backend's own fixture frees it: the
    scheduler thread may still be closing a cancelled request's sequence."""
    from modules.scheduler import Scheduler
    scheduler = Scheduler(backend)
    yield scheduler
    scheduler.swap_backend(None, ending)


@pytest.fixture(scope="session")
def llama_backend():
    from loaders.llama_cpp_loader import load
    from loaders.settings import LoadSettings
    if not DEFAULT_GGUF.exists():
        pytest.fail(f"{DEFAULT_GGUF} is missing: run ./run_tests.sh, which installs it.")
    # Flash attention on: llama.cpp's results then do not depend on how a pass batches the
    # sequences, which the tests comparing a reply alone and inside a batch rely on.
    backend = load(str(DEFAULT_GGUF), LoadSettings(ctx_size=2048, parallel=4, flash_attn=True), lambda f, m: None)
    yield backend
    backend.unload()


@pytest.fixture(scope="session")
def scheduler(llama_backend):
    yield from scheduler_over(llama_backend, "The test session is over.")


@pytest.fixture(scope="session")
def chat_prompt(llama_backend):
    """Renders one user message with the model's own chat template."""
    from modules.template_render import render_chat_template

    def render(text: str) -> str:
        return render_chat_template(llama_backend.info.chat_template,
                                    [{"role": "user", "content": text}], add_generation_prompt=True)
    return render
