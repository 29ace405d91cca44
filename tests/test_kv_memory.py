"""The memory estimate against what llama.cpp itself allocates for the default model.

The model is loaded for real with our llama.cpp loader at several context sizes, sequence
counts and cache types, and llama.cpp's own report of what it allocated (its log lines
"llama_kv_cache: size = ... MiB" and "compute buffer size = ... MiB") is compared with
the estimate made from the file's metadata alone.
"""
from __future__ import annotations

import logging
import re

import pytest

from loaders.settings import LoadSettings
from modules import kv_memory
from tests.conftest import DEFAULT_GGUF

MIB = 2**20
# llama.cpp prints MiB with two decimals; the KV cache estimate follows its sizing exactly,
# so the only difference allowed is that rounding, stated as 0.5%.
KV_TOLERANCE = 0.005
# The compute buffer is a rough term (docs/memory.md); measured within 4% here.
COMPUTE_TOLERANCE = 0.10


def _load_and_read_report(caplog, settings: LoadSettings) -> tuple[float, float, bool]:
    """Loads the default model; llama.cpp's reported KV cache and compute buffer, in MiB,
    and whether it ran with flash attention."""
    from loaders.llama_cpp_loader import load

    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="loaders.llama_cpp_loader"):
        backend = load(str(DEFAULT_GGUF), settings, lambda f, m: None)
        backend.unload()
    text = "\n".join(record.getMessage() for record in caplog.records)
    kv = re.search(r"llama_kv_cache: size =\s*([\d.]+) MiB", text)
    compute = re.search(r"CPU compute buffer size =\s*([\d.]+) MiB", text)
    assert kv and compute, "llama.cpp's allocation report was not in its log:\n" + text[-2000:]
    return float(kv.group(1)), float(compute.group(1)), bool(re.search(r"flash_attn\s*=\s*enabled|Flash Attention enabled", text))


@pytest.mark.parametrize("ctx_size, parallel, cache_type, batch_size", [
    (512, 1, "fp16", 512),
    (4096, 2, "fp16", 512),
    (1000, 3, "fp16", 256),        # llama.cpp rounds 1000 up to 1024 per sequence
    (0, 1, "fp16", 512),           # the model's own context, capped at 4096
    (8192, 1, "fp16", 512),        # without flash attention the scores outgrow the logits
    (2048, 2, "q8_0", 512),
    (2048, 1, "q4_0", 512),
])
def test_estimate_matches_what_llama_cpp_allocates(caplog, ctx_size, parallel, cache_type, batch_size):
    reported_kv, reported_compute, flash = _load_and_read_report(caplog, LoadSettings(
        ctx_size=ctx_size, parallel=parallel, cache_type=cache_type, batch_size=batch_size))
    shape = kv_memory.read_shape(DEFAULT_GGUF)
    estimate = kv_memory.estimate(shape, ctx_size, parallel, cache_type, batch_size, flash)
    assert estimate.kv_cache / MIB == pytest.approx(reported_kv, rel=KV_TOLERANCE)
    assert estimate.compute / MIB == pytest.approx(reported_compute, rel=COMPUTE_TOLERANCE)


def test_two_context_sizes_differ_by_the_estimated_cache(caplog):
    small, _, _ = _load_and_read_report(caplog, LoadSettings(ctx_size=1024, parallel=1))
    large, _, _ = _load_and_read_report(caplog, LoadSettings(ctx_size=8192, parallel=1))
    shape = kv_memory.read_shape(DEFAULT_GGUF)
    predicted = (kv_memory.estimate(shape, 8192, 1).kv_cache - kv_memory.estimate(shape, 1024, 1).kv_cache) / MIB
    assert predicted == pytest.approx(large - small, rel=KV_TOLERANCE)


def test_quantised_caches_shrink_by_ggml_block_sizes():
    assert kv_memory.bytes_per_element("fp16") == 2
    assert kv_memory.bytes_per_element("q8_0") == 34 / 32
    assert kv_memory.bytes_per_element("q4_0") == 18 / 32
    with pytest.raises(ValueError, match="Unknown cache type"):
        kv_memory.bytes_per_element("fp8")


def test_shape_read_from_metadata_agrees_with_the_gguf_package():
    """Our reader (ggml's C reader) against the gguf package's pure-Python one."""
    from gguf import GGUFReader

    from loaders.gguf_metadata import read_metadata

    ours = read_metadata(DEFAULT_GGUF)
    reference = GGUFReader(str(DEFAULT_GGUF)).fields
    for key in ("general.architecture", "llama.block_count", "llama.context_length",
                "llama.embedding_length", "llama.attention.head_count", "llama.attention.head_count_kv",
                "llama.vocab_size", "llama.rope.freq_base", "tokenizer.ggml.add_bos_token"):
        assert ours[key] == pytest.approx(reference[key].contents()), key
    assert ours["tokenizer.ggml.tokens"] == len(reference["tokenizer.ggml.tokens"].contents())


def test_curve_runs_from_512_to_the_trained_context_and_grows():
    shape = kv_memory.read_shape(DEFAULT_GGUF)
    points = kv_memory.curve(shape, parallel=2, cache_type="q8_0")
    sizes = [n for n, _ in points]
    assert sizes[0] == 512 and sizes[-1] == shape.n_ctx_train == 8192
    totals = [e.total for _, e in points]
    assert totals == sorted(totals) and totals[0] < totals[-1]
    assert all(e.sequences == 2 and e.cache_type == "q8_0" for _, e in points)


def test_summary_names_the_parts_and_the_settings():
    shape = kv_memory.read_shape(DEFAULT_GGUF)
    text = kv_memory.estimate(shape, 2048, 4, "q4_0").summary()
    assert text.startswith("About ") and "weights 94 MiB" in text
    assert "2,048 tokens × 4 sequences, q4_0" in text


def test_a_split_model_weighs_all_its_parts(tmp_path):
    for i, size in enumerate((1000, 2000, 500), start=1):
        (tmp_path / f"big-{i:05d}-of-00003.gguf").write_bytes(b"\0" * size)
    assert kv_memory._files_size(tmp_path / "big-00001-of-00003.gguf") == 3500


def test_describe_for_the_model_tab(tmp_path):
    from modules.ui.memory_estimate import describe

    models = DEFAULT_GGUF.parent
    line, frame = describe(models, DEFAULT_GGUF.name, 1024, 2, "fp16", None, 1024)
    assert "1,024 tokens × 2 sequences, fp16" in line and "--cache-ram" in line
    assert set(frame["part"]) == {"total", "KV cache"}
    assert frame["tokens per sequence"].min() == 512 and frame["tokens per sequence"].max() == 8192
    folder = tmp_path / "some-hf-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    line, frame = describe(tmp_path, folder.name, 1024, 2)
    assert "GGUF models (llama.cpp) only" in line and frame.empty
    line, _ = describe(models, DEFAULT_GGUF.name, 10.5, 2)
    assert line.startswith("Memory estimate unavailable") and "whole number" in line
    assert describe(models, None, 1024, 2)[0] == ""
