"""--flash-attn reaches llama.cpp: off by default, on when asked, and on whatever it says for
a quantised K and V cache (llama.cpp needs it for a quantised V cache). Read from llama.cpp's
own report of the context it made, on the real default model, which answers either way."""
from __future__ import annotations

import logging
import re

import pytest

from loaders.settings import LoadSettings
from modules.params import GenerationParams
from tests.conftest import DEFAULT_GGUF

PROMPT = "<|im_start|>user\nTell me the capital of France.<|im_end|>\n<|im_start|>assistant\n"


def _flash_attn_reported(caplog, settings: LoadSettings) -> tuple[str, str, str]:
    """(llama.cpp's flash_attn line, the model details' line, a short greedy reply)."""
    from loaders.llama_cpp_loader import load

    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="loaders.llama_cpp_loader"):
        backend = load(str(DEFAULT_GGUF), settings, lambda f, m: None)
    try:
        text = "\n".join(record.getMessage() for record in caplog.records)
        found = re.search(r"llama_context: flash_attn\s*=\s*(\w+)", text)
        assert found, "llama.cpp's context report was not in its log"
        seq = backend.open_sequence(backend.tokenize(PROMPT, add_bos=False),
                                    GenerationParams(do_sample=False, max_new_tokens=8))
        while not seq.generated or len(seq.generated) < 8:
            feeds = {seq: seq.generated[-1]} if seq.generated else {}
            if seq in backend.forward(feeds):
                seq.generated.append(backend.sample(seq))
        backend.close_sequence(seq)
        reply = b"".join(backend.token_bytes(t, True) for t in seq.generated).decode("utf-8", "replace")
        return found.group(1), backend.info.details["flash attention"], reply
    finally:
        backend.unload()


@pytest.mark.parametrize("flash_attn, cache_type, expected", [
    (False, "fp16", "disabled"),
    (True, "fp16", "enabled"),
    (False, "q8_0", "enabled"),
])
def test_flash_attention_as_asked_and_forced_on_for_a_quantised_cache(caplog, flash_attn, cache_type, expected):
    reported, shown, reply = _flash_attn_reported(caplog, LoadSettings(
        ctx_size=512, parallel=1, flash_attn=flash_attn, cache_type=cache_type))
    assert reported == expected
    assert shown == ("on" if expected == "enabled" else "off")
    assert "Paris" in reply


def test_it_is_off_unless_given():
    assert LoadSettings().flash_attn is False
