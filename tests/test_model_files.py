"""Bad model files get a clear message, and the server's model keeps working."""
from __future__ import annotations

import shutil

import pytest

from loaders.base import ModelLoadError
from loaders.settings import LoadSettings
from modules import model_files
from modules.model_manager import ModelManager
from modules.params import GenerationParams
from modules.scheduler import Scheduler
from tests.conftest import DEFAULT_GGUF


def load_llama(path):
    from loaders.llama_cpp_loader import load
    return load(str(path), LoadSettings(ctx_size=512, parallel=1), lambda f, m: None)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load_llama(tmp_path / "nothing.gguf")


def test_text_file_renamed_gguf_is_recognised(tmp_path):
    fake = tmp_path / "fake.gguf"
    fake.write_text("<html>404 Not Found</html>")
    with pytest.raises(ModelLoadError, match="not a GGUF model file"):
        load_llama(fake)


def test_truncated_gguf_is_reported_as_damaged(tmp_path):
    broken = tmp_path / "broken.gguf"
    with open(DEFAULT_GGUF, "rb") as source, open(broken, "wb") as target:
        target.write(source.read(3_000_000))
    with pytest.raises(ModelLoadError, match="damaged or incomplete"):
        load_llama(broken)


def test_loader_detection(tmp_path):
    assert model_files.detect_loader(DEFAULT_GGUF) == "llama.cpp"
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text('{"model_type": "llama"}')
    assert model_files.detect_loader(hf) == "Transformers"
    (hf / "config.json").write_text('{"quantization_config": {"quant_method": "gptq", "bits": 4}}')
    assert model_files.detect_loader(hf) == "GPTQ"
    assert model_files.detect_loader(tmp_path / "notes.txt") is None


def test_failed_switch_keeps_the_previous_model_serving(tmp_path):
    shutil.copy(DEFAULT_GGUF, tmp_path / DEFAULT_GGUF.name)
    (tmp_path / "fake.gguf").write_text("not a model")
    manager = ModelManager(Scheduler(), tmp_path)
    settings = LoadSettings(ctx_size=512, parallel=1)
    assert manager.load(DEFAULT_GGUF.name, settings).ok
    result = manager.load("fake.gguf", settings)
    assert not result.ok
    assert "not a GGUF model file" in result.message and "loaded back" in result.message
    assert manager.current_path.name == DEFAULT_GGUF.name
    prompt = "<|im_start|>user\nTell me the capital of France.<|im_end|>\n<|im_start|>assistant\n"
    reply = manager.scheduler.submit(prompt, GenerationParams(do_sample=False, max_new_tokens=12))
    assert "Paris" in reply.text()
    missing = manager.load("nope.gguf", settings)
    assert not missing.ok and "not found" in missing.message
    manager.unload()


def test_switch_mid_stream_ends_that_stream_with_a_message(tmp_path):
    shutil.copy(DEFAULT_GGUF, tmp_path / DEFAULT_GGUF.name)
    manager = ModelManager(Scheduler(), tmp_path)
    settings = LoadSettings(ctx_size=512, parallel=1)
    assert manager.load(DEFAULT_GGUF.name, settings).ok
    request = manager.scheduler.submit("Once upon a time", GenerationParams(
        max_new_tokens=400, ban_eos_token=True, seed=1))
    for event in request.events():
        if getattr(event, "n_tokens", 0) >= 3:
            break
    assert manager.reload().ok
    result = request.result()
    assert result.reason == "error" and "switched" in result.error
    manager.unload()


def test_a_loader_that_cannot_read_the_model_is_refused_before_anything_is_unloaded(tmp_path):
    shutil.copy(DEFAULT_GGUF, tmp_path / DEFAULT_GGUF.name)
    manager = ModelManager(Scheduler(), tmp_path)
    settings = LoadSettings(ctx_size=512, parallel=1)
    assert manager.load(DEFAULT_GGUF.name, settings).ok
    backend = manager.backend
    result = manager.load(DEFAULT_GGUF.name, LoadSettings(loader="Transformers", ctx_size=512, parallel=1))
    assert not result.ok
    assert "GGUF file: choose llama.cpp" in result.message and "stays loaded" in result.message
    assert "Errno" not in result.message
    assert manager.backend is backend            # never unloaded, not even for a moment
    manager.unload()
