"""Unloading through the model manager really lets go of the model.

After load -> a short reply -> unload, nothing may still reference the backend or the
model it held: a weak reference to each must be dead (bench/bench_model_cycle.py shows
the resident memory side of the same thing).
"""
from __future__ import annotations

import gc
import weakref

import pytest

from tests.conftest import DEFAULT_GGUF

PROMPT = "<|im_start|>user\nTell me the capital of France.<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def manager(tmp_path_factory):
    from modules.model_manager import ModelManager
    from modules.scheduler import Scheduler
    return ModelManager(Scheduler(), tmp_path_factory.mktemp("models"))


def _model_path(kind: str) -> str:
    if kind == "gguf":
        return str(DEFAULT_GGUF)
    from tools.make_test_models import ensure_test_models
    return str(ensure_test_models()[kind])


def _load_reply_unload(manager, path: str) -> tuple[weakref.ref, weakref.ref | None]:
    from loaders.settings import LoadSettings
    from modules.params import GenerationParams

    result = manager.load(path, LoadSettings(ctx_size=512, parallel=2))
    assert result.ok, result.message
    backend = manager.backend
    backend_ref = weakref.ref(backend)
    model = getattr(backend, "model", None)
    model_ref = weakref.ref(model) if model is not None else None
    del backend, model
    reply = manager.scheduler.submit(PROMPT, GenerationParams(do_sample=False, max_new_tokens=6)).result()
    assert reply.ok, reply.error
    # One request still running when the model goes: its sequence must not keep it alive.
    running = manager.scheduler.submit(PROMPT, GenerationParams(do_sample=False, max_new_tokens=400))
    assert manager.unload().ok
    running.result()
    gc.collect()
    return backend_ref, model_ref


@pytest.mark.parametrize("kind", ["gguf", "fp16", "gptq"])
def test_unloaded_backend_and_model_are_collected(manager, kind):
    backend_ref, model_ref = _load_reply_unload(manager, _model_path(kind))
    assert manager.backend is None
    alive = backend_ref()
    assert alive is None, f"the {kind} backend is still referenced by: " + ", ".join(
        type(r).__name__ for r in gc.get_referrers(alive))
    if model_ref is not None:
        assert model_ref() is None, f"the {kind} model outlived its backend"
