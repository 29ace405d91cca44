"""Hugging Face folder detection and the plain-words errors for folders that cannot load."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from loaders.base import ModelLoadError
from loaders.hf_folder import chat_template_from_folder, check_folder, is_gptq_folder, is_hf_folder
from loaders.settings import LoadSettings

LLAMA_CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                "max_position_embeddings": 2048, "dtype": "float16"}


def make_folder(root: Path, name: str, config: dict | None = LLAMA_CONFIG, weights: bool = True) -> Path:
    folder = root / name
    folder.mkdir()
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    if weights:
        (folder / "model.safetensors").write_bytes(b"\0" * 64)
    return folder


@pytest.fixture(scope="module")
def test_models():
    from tools.make_test_models import ensure_test_models
    return ensure_test_models()


def test_detection(tmp_path, test_models):
    assert is_hf_folder(test_models["fp16"]) and not is_gptq_folder(test_models["fp16"])
    assert is_hf_folder(test_models["gptq"]) and is_gptq_folder(test_models["gptq"])
    assert not is_hf_folder(make_folder(tmp_path, "empty", config=None, weights=False))
    old_style = make_folder(tmp_path, "autogptq")
    (old_style / "quantize_config.json").write_text('{"bits": 4, "group_size": 128}')
    assert is_gptq_folder(old_style)


def test_chat_template_order(tmp_path):
    folder = make_folder(tmp_path, "m")
    assert chat_template_from_folder(folder) is None
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": "from tokenizer_config"}))
    assert chat_template_from_folder(folder) == "from tokenizer_config"
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": "from chat_template.json"}))
    assert chat_template_from_folder(folder) == "from chat_template.json"
    (folder / "chat_template.jinja").write_text("from jinja")
    assert chat_template_from_folder(folder) == "from jinja"


def test_real_folders_pass_the_checks(test_models):
    assert check_folder(test_models["fp16"])["model_type"] == "llama"
    assert "<|im_start|>" in chat_template_from_folder(test_models["fp16"])
    assert check_folder(test_models["gptq"])["quantization_config"]["bits"] == 4


def test_no_weights_is_explained(tmp_path):
    folder = make_folder(tmp_path, "half-downloaded", weights=False)
    with pytest.raises(ModelLoadError, match="no weights"):
        check_folder(folder)


def test_unknown_architecture_is_explained(tmp_path):
    folder = make_folder(tmp_path, "exotic", {"architectures": ["FluxCapacitorForCausalLM"],
                                              "model_type": "flux_capacitor"})
    with pytest.raises(ModelLoadError, match="flux_capacitor.*does not know"):
        check_folder(folder)
    known_type = make_folder(tmp_path, "not-a-text-model", {"architectures": ["LlamaForSomethingElse"],
                                                             "model_type": "llama"})
    with pytest.raises(ModelLoadError, match="not a text-generation architecture"):
        check_folder(known_type)


def test_remote_code_needs_consent(tmp_path):
    folder = make_folder(tmp_path, "custom", {**LLAMA_CONFIG, "auto_map": {"AutoModelForCausalLM": "x.Y"}})
    with pytest.raises(ModelLoadError, match="trust-remote-code"):
        check_folder(folder)
    check_folder(folder, trust_remote_code=True)


def test_model_bigger_than_memory_is_explained(tmp_path):
    folder = make_folder(tmp_path, "huge")
    with pytest.raises(ModelLoadError, match="GiB of memory but only"):
        check_folder(folder, bytes_per_stored_byte=1e12)


def test_transformers_loader_reports_folder_errors(tmp_path):
    from loaders import load_backend
    folder = make_folder(tmp_path, "no-weights", weights=False)
    with pytest.raises(ModelLoadError, match="no weights"):
        load_backend("Transformers", str(folder), LoadSettings())


def test_bitsandbytes_without_gpu_is_refused(test_models):
    import torch
    from loaders import load_backend
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ModelLoadError, match="needs a CUDA GPU"):
        load_backend("Transformers", str(test_models["fp16"]), LoadSettings(load_in_4bit=True))


def test_cpu_memory_limit_is_respected(test_models):
    import torch
    from loaders import load_backend
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ModelLoadError, match="--cpu-memory allows"):
        load_backend("Transformers", str(test_models["fp16"]), LoadSettings(cpu_memory="0.1"))


# ---- GPTQ settings ------------------------------------------------------------------------
def gptq_copy(tmp_path: Path, source: Path, quant_changes: dict | None = None,
              quantize_json: str | None = None) -> Path:
    """A copy of the GPTQ folder's small files (weights linked) with edited settings."""
    folder = tmp_path / "gptq-copy"
    folder.mkdir()
    for item in source.iterdir():
        if item.name.endswith(".safetensors"):
            (folder / item.name).symlink_to(item)
        elif item.is_file():
            shutil.copy2(item, folder / item.name)
    config = json.loads((folder / "config.json").read_text())
    if quantize_json is not None:
        del config["quantization_config"]
        (folder / "quantize_config.json").write_text(quantize_json)
    else:
        config["quantization_config"].update(quant_changes or {})
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_broken_quantize_config_is_explained(tmp_path, test_models):
    from loaders.gptq_loader import read_quantize_config
    bad_bits = gptq_copy(tmp_path, test_models["gptq"], {"bits": 5, "group_size": "big"})
    with pytest.raises(ModelLoadError, match="bits is 5.*group_size is 'big'"):
        read_quantize_config(str(bad_bits))


def test_unreadable_quantize_config_json_is_explained(tmp_path, test_models):
    from loaders import load_backend
    folder = gptq_copy(tmp_path, test_models["gptq"], quantize_json='{"bits": 4, "group_size": ')
    with pytest.raises(ModelLoadError, match="quantize_config.json .* not valid JSON"):
        load_backend("GPTQ", str(folder), LoadSettings())


def test_group_size_the_cpu_kernel_cannot_run_is_explained(tmp_path, test_models):
    import torch
    from loaders.gptq_loader import check_cpu_kernel, quantized_layer_widths
    widths = set(quantized_layer_widths(str(test_models["gptq"]), 4).values())
    assert widths == {576, 1536}            # SmolLM2-135M: hidden 576, MLP 1536
    with pytest.raises(ModelLoadError, match="not a multiple of 128.*group size that divides.*e.g. 64"):
        check_cpu_kernel(str(test_models["gptq"]), {"bits": 4, "group_size": 128})
    check_cpu_kernel(str(test_models["gptq"]), {"bits": 4, "group_size": 64})
    if not torch.cuda.is_available():
        from loaders import load_backend
        folder = gptq_copy(tmp_path, test_models["gptq"], {"group_size": 128})
        with pytest.raises(ModelLoadError, match="cannot run on the CPU"):
            load_backend("GPTQ", str(folder), LoadSettings())


def test_test_model_marker_makes_half_built_folders_rebuild(tmp_path):
    from tools.make_test_models import MARKER, _is_complete, _mark_complete
    folder = make_folder(tmp_path, "built")
    assert not _is_complete(folder)                 # no marker yet: an interrupted build
    _mark_complete(folder)
    assert _is_complete(folder) and not (folder / (MARKER + ".tmp")).exists()
    (folder / "model.safetensors").unlink()          # a file the marker lists went missing
    assert not _is_complete(folder)
