"""Shared fixtures: the real default model, loaded once per test session."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_GGUF = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


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
    from modules.scheduler import Scheduler
    scheduler = Scheduler(llama_backend)
    yield scheduler
    # Hand the backend back before llama_backend's teardown frees it: the scheduler
    # thread may still be closing a cancelled request's sequence.
    scheduler.swap_backend(None, "The test session is over.")


@pytest.fixture(scope="session")
def chat_prompt(llama_backend):
    """Renders one user message with the model's own chat template."""
    from modules.template_render import render_chat_template

    def render(text: str) -> str:
        return render_chat_template(llama_backend.info.chat_template,
                                    [{"role": "user", "content": text}], add_generation_prompt=True)
    return render
