"""How a model is loaded: the load-time flags of text-generation-webui, one dataclass
shared by server flags, the Model tab and every loader. Each field's flag, range and help
are in loaders/specs.py (LOAD_FIELDS), which tests/test_loader_specs.py keeps in step."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field


def available_cores() -> int:
    """Cores this process may really use (a container may allow fewer than the host has)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


@dataclass
class LoadSettings:
    loader: str | None = None          # None: detected from the files
    # llama.cpp
    ctx_size: int = 0                  # tokens per sequence; 0: the model's own, capped at 4096
    gpu_layers: int = 0
    threads: int = 0                   # 0: the cores available
    threads_batch: int = 0
    batch_size: int = 512
    cache_type: str = "fp16"           # K and V cache: fp16, q8_0, q4_0 (quantised ones turn on flash attention)
    flash_attn: bool = False           # flash attention (q8_0 and q4_0 caches turn it on anyway)
    no_mmap: bool = False
    mlock: bool = False
    parallel: int = 4                  # sequences decoded together (users served at once)
    cache_reuse: bool = True           # keep each slot's cache; read only what a prompt adds
    cache_ram: int = 1024              # MiB of host memory for caches of reclaimed slots; 0: none
    prefill_chunk: int = 0             # prompt tokens a pass reads while others generate; 0: measured
    # Transformers / GPTQ
    cpu: bool = False
    bf16: bool = False
    cpu_memory: str = ""               # e.g. "16GiB"
    gpu_split: str = ""                # e.g. "20,24" (GiB per GPU)
    load_in_8bit: bool = False
    load_in_4bit: bool = False
    trust_remote_code: bool = False
    attn_implementation: str = ""      # "", "sdpa", "eager", "flash_attention_2"
    # Remote (an OpenAI-compatible server elsewhere)
    remote_url: str = ""               # e.g. http://gpu-node:8000/v1
    remote_key: str = field(default="", repr=False)    # never shown, stored or logged
    remote_model: str = ""             # "": the first model the server lists
    remote_engine: str = "auto"        # which server it is, for its sampler names and tokenizer

    def resolved_threads(self) -> int:
        return self.threads or available_cores()

    def resolved_threads_batch(self) -> int:
        return self.threads_batch or self.resolved_threads()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "LoadSettings":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})
