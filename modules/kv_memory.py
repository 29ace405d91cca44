"""How much memory a GGUF model will take with llama.cpp, before it is loaded.

Read from the file's metadata only (loaders/gguf_metadata.py; the weights are never
loaded): the weights (the file's size), the KV cache, and llama.cpp's compute buffers.
The KV cache follows llama.cpp's own sizing, so it matches what llama.cpp reports
("llama_kv_cache: size = ...") to the byte; the compute buffer is a rough term.
docs/memory.md gives the formula and how it was checked.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from loaders.gguf_metadata import read_metadata

MIB = 2**20
# The Model tab's and the loader's rule for ctx-size 0: the model's own, at most this.
DEFAULT_CTX_CAP = 4096
# llama.cpp rounds each sequence's share of the cache up to a multiple of this.
CTX_PADDING = 256
DEFAULT_CACHE_TYPE = "fp16"
# --cache-type values (text-generation-webui's names) and the GGML types behind them.
CACHE_TYPES = {"fp16": "F16", "f16": "F16", "bf16": "BF16", "f32": "F32",
               "q8_0": "Q8_0", "q5_1": "Q5_1", "q5_0": "Q5_0", "q4_1": "Q4_1",
               "q4_0": "Q4_0", "iq4_nl": "IQ4_NL"}
_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs from a GGUF file."""
    name: str
    weights_bytes: int
    n_layer: int
    n_ctx_train: int
    n_vocab: int
    n_ff: int
    n_head: int                 # query heads (of the first layer)
    kv_per_token: int           # K and V elements per token, summed over the layers
    recurrent: bool             # a state per sequence instead of (or beside) a KV cache


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int
    kv_cache: int
    compute: int
    ctx_per_sequence: int       # after llama.cpp's rounding
    sequences: int
    cache_type: str

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.compute

    def summary(self) -> str:
        n = self.sequences
        return (f"About {mib(self.total)}: weights {mib(self.weights)}, cache {mib(self.kv_cache)} "
                f"({self.ctx_per_sequence:,} tokens × {n} sequence{'s' if n != 1 else ''}, "
                f"{self.cache_type}), compute ~{mib(self.compute)}")


def mib(n: int) -> str:
    return f"{n / MIB:,.0f} MiB" if n < 10 * 2**30 else f"{n / 2**30:.1f} GiB"


def bytes_per_element(cache_type: str) -> float:
    """From GGML's block layout: q8_0 keeps 32 values in 34 bytes, q4_0 in 18, f16 2 each."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    name = CACHE_TYPES.get((cache_type or DEFAULT_CACHE_TYPE).lower())
    if name is None:
        raise ValueError(f"Unknown cache type {cache_type!r}; one of {', '.join(CACHE_TYPES)}.")
    block, size = GGML_QUANT_SIZES[GGMLQuantizationType[name]]
    return size / block


def read_shape(path: str | Path) -> ModelShape:
    path = Path(path)
    meta = read_metadata(path)
    arch = meta.get("general.architecture", "")

    def get(key, default=0):
        return meta.get(f"{arch}.{key}", default)

    n_layer = int(get("block_count"))
    n_head = _per_layer(get("attention.head_count"), n_layer)
    n_head_kv = _per_layer(get("attention.head_count_kv", None) or n_head, n_layer)
    n_embd = int(get("embedding_length"))
    head = n_embd // n_head[0] if n_head and n_head[0] else 0
    k_dim, v_dim = int(get("attention.key_length", head)), int(get("attention.value_length", head))
    vocab = get("vocab_size", None) or meta.get("tokenizer.ggml.tokens", 0)
    return ModelShape(
        name=path.name, weights_bytes=_files_size(path), n_layer=n_layer,
        n_ctx_train=int(get("context_length")), n_vocab=int(vocab),
        n_ff=max(_per_layer(get("feed_forward_length"), n_layer) or [0]),
        n_head=n_head[0] if n_head else 0,
        kv_per_token=sum(h * (k_dim + v_dim) for h in n_head_kv),
        recurrent=any(k.startswith((f"{arch}.ssm.", f"{arch}.wkv.")) for k in meta))


def context_per_sequence(shape: ModelShape, ctx_size: int) -> int:
    """As the llama.cpp loader sizes it: ctx-size tokens per sequence (0: the model's own,
    capped), rounded up by llama.cpp to a multiple of CTX_PADDING."""
    wanted = ctx_size or min(shape.n_ctx_train or DEFAULT_CTX_CAP, DEFAULT_CTX_CAP)
    return -(-wanted // CTX_PADDING) * CTX_PADDING


def kv_cache_bytes(shape: ModelShape, cells: int, cache_type: str = DEFAULT_CACHE_TYPE) -> int:
    """K and V for every layer and cell: 2 x n_layer x cells x n_head_kv x head_dim x bytes
    per element when all layers are alike (kv_per_token sums K and V over the layers)."""
    return int(cells * shape.kv_per_token * bytes_per_element(cache_type))


def compute_bytes(shape: ModelShape, n_ubatch: int, sequences: int, cells_per_sequence: int,
                  flash_attn: bool) -> int:
    """Rough: llama.cpp reserves the graph of a full micro-batch and reuses its memory, so
    the buffer is the larger of its two big moments: the logits (n_vocab floats per token,
    with the feed-forward activations) and, without flash attention, the attention scores
    (n_head + 1 floats per token and cell of the sequence's cache), plus the f16 attention
    mask; and one row of logits per sequence for the output. Within a few per cent of
    llama.cpp's report for the default model (tests/test_kv_memory.py)."""
    logits = n_ubatch * (shape.n_vocab + shape.n_ff) * 4
    if flash_attn:
        attention = 0
    else:
        attention = n_ubatch * cells_per_sequence * ((shape.n_head + 1) * 4 + 2)
    return max(logits, attention) + 4 * sequences * shape.n_vocab


def estimate(shape: ModelShape, ctx_size: int, parallel: int, cache_type: str | None = None,
             batch_size: int = 512, flash_attn: bool = False) -> MemoryEstimate:
    """parallel sequences each get ctx_size tokens of cache (one context of
    ctx_size x parallel cells, not shared), as loaders/llama_cpp_loader.py creates it;
    a quantised cache turns flash attention on there, as llama.cpp needs."""
    cache_type = cache_type or DEFAULT_CACHE_TYPE
    sequences = max(1, int(parallel or 1))
    per_sequence = context_per_sequence(shape, int(ctx_size or 0))
    n_ubatch = max(int(batch_size or 512), sequences)
    flash = bool(flash_attn) or CACHE_TYPES.get(cache_type.lower()) != "F16"
    return MemoryEstimate(
        weights=shape.weights_bytes,
        kv_cache=kv_cache_bytes(shape, per_sequence * sequences, cache_type),
        compute=compute_bytes(shape, n_ubatch, sequences, per_sequence, flash),
        ctx_per_sequence=per_sequence, sequences=sequences, cache_type=cache_type)


def curve(shape: ModelShape, parallel: int, cache_type: str | None = None,
          batch_size: int = 512, flash_attn: bool = False) -> list[tuple[int, MemoryEstimate]]:
    """The estimate from 512 tokens per sequence to the model's trained context, doubling."""
    top = max(shape.n_ctx_train, 512)
    sizes, n = [], 512
    while n < top:
        sizes.append(n)
        n *= 2
    sizes.append(top)
    return [(n, estimate(shape, n, parallel, cache_type, batch_size, flash_attn)) for n in sizes]


def _per_layer(value, n_layer: int) -> list[int]:
    """GGUF stores per-layer counts as one number or as a list (one per layer)."""
    if isinstance(value, list):
        return [int(v) for v in value]
    return [int(value or 0)] * n_layer


def _files_size(path: Path) -> int:
    """A split model (name-00001-of-00003.gguf) weighs all its parts."""
    match = _SPLIT.search(path.name)
    if not match:
        return path.stat().st_size
    stem, count = path.name[:match.start()], int(match.group(2))
    parts = [path.with_name(f"{stem}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]
    return sum(p.stat().st_size for p in parts if p.exists())
