"""Hugging Face folders through transformers (fp32/bf16 on the CPU, fp16/bf16 on a GPU).

Each sequence keeps its own KV cache (a transformers DynamicCache); a finished one's is kept
for the next prompt that starts the same way (loaders/hf_prefix_cache.py). forward() processes
new prompts one at a time and decodes the sequences that were fed a token together in
one batched call (DecodeGroup): with four users that serves 2-4 times the tokens of
decoding them one by one on the CPU. Sampling is ours (loaders/logits_processors.py),
one seeded torch.Generator per sequence; grammars are token masks from llguidance
(loaders/hf_grammar.py). The GPTQ loader reuses this class.
"""
from __future__ import annotations

import gc
import json
import re
from pathlib import Path

import torch

from loaders.base import Backend, ModelInfo, ModelLoadError, Sequence
from loaders.hf_folder import (
    chat_template_from_folder, check_folder, end_of_generation_ids, token_table, tokenizer_adds_bos,
    weights_size,
)
from loaders.hf_grammar import GrammarCompiler
from loaders.hf_prefix_cache import PrefixCachePool
from loaders.logits_processors import SequenceSampler
from loaders.settings import LoadSettings
from modules.params import GenerationParams

DEFAULT_CTX_CAP = 4096


class HFSequence(Sequence):
    def __init__(self, prompt_tokens: list[int], params: GenerationParams, sampler: SequenceSampler):
        super().__init__(prompt_tokens, params)
        self.sampler = sampler
        self.pending: list[int] = list(prompt_tokens)   # tokens not yet in the cache
        self.cache = None            # own KV cache; None before prefill and while in a group
        self.n_cached = 0            # tokens in the cache
        self.owner = ""
        self.prompt_logits: torch.Tensor | None = None   # scores after the whole prompt
        self.logits: torch.Tensor | None = None          # scores for the next token


class DecodeGroup:
    """Sequences that decode one token each in a single batched model call.

    Their caches are copied once, on joining, into one cache, each row left-padded to
    the longest (the attention mask hides the padding); every step then appends one
    column for all rows. Membership changes (a reply ends, a new one joins) rebuild it.
    """

    def __init__(self, seqs: list[HFSequence], device):
        self.seqs = seqs
        longest = max(s.n_cached for s in seqs)
        layers = []
        for layer in range(len(seqs[0].cache.layers)):
            keys, values = (_left_pad([getattr(s.cache.layers[layer], kind) for s in seqs], longest)
                            for kind in ("keys", "values"))
            layers.append((keys, values))
        from transformers import DynamicCache
        self.cache = DynamicCache(ddp_cache_data=layers)
        self.mask = torch.zeros(len(seqs), longest, dtype=torch.long, device=device)
        for row, seq in enumerate(seqs):
            self.mask[row, longest - seq.n_cached:] = 1
            seq.cache = None

    def release(self, seq: HFSequence):
        """Gives a member its own cache again (views of its real, unpadded columns)."""
        row = self.seqs.index(seq)
        start = self.mask.shape[1] - seq.n_cached
        from transformers import DynamicCache
        seq.cache = DynamicCache(ddp_cache_data=[
            (layer.keys[row:row + 1, :, start:], layer.values[row:row + 1, :, start:])
            for layer in self.cache.layers])


def _left_pad(tensors: list[torch.Tensor], length: int) -> torch.Tensor:
    first = tensors[0]
    out = first.new_zeros((len(tensors), first.shape[1], length, first.shape[3]))
    for row, t in enumerate(tensors):
        out[row, :, length - t.shape[2]:] = t[0]
    return out


class TransformersBackend(Backend):
    def __init__(self, model, tokenizer, info: ModelInfo, cache_reuse: bool = True):
        self.model = model
        self.tokenizer = tokenizer
        self.info = info
        self.device = model.get_input_embeddings().weight.device
        self.vocab_size = int(model.get_output_embeddings().weight.shape[0])
        self._pieces, self._special = token_table(tokenizer)
        self._eog = frozenset(end_of_generation_ids(model, tokenizer))
        self._bos_id = tokenizer.bos_token_id
        self._adds_bos = tokenizer_adds_bos(tokenizer)
        self._sequences: list[HFSequence] = []
        self._ready: list[HFSequence] = []         # scores ready without a pass (a kept prompt)
        self._group: DecodeGroup | None = None
        self._can_batch: bool | None = None       # known after the first prefill
        self._breakers: dict[tuple[str, ...], frozenset[int]] = {}
        self._grammars = GrammarCompiler(tokenizer, self.vocab_size, self._eog)
        self._prefix = PrefixCachePool(cache_reuse, info.max_sequences)
        # Present from the start: the Model tab reads details on another thread.
        info.details["prompt cache"] = (
            f"on, finished sequences' caches kept (with those running, at most {info.max_sequences})"
            if cache_reuse else "off (every prompt is read from its first token)")
        info.details["prompt cache use"] = self._prefix.summary()

    # ---- tokens ----------------------------------------------------------------------
    def tokenize(self, text: str, add_bos: bool, special: bool = True) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False,
                             split_special_tokens=not special)["input_ids"]
        # Only models whose tokenizer adds a BOS get one (as llama.cpp does): ChatML models
        # such as SmolLM2 call <|im_start|> their BOS and must not get it twice.
        if add_bos and self._adds_bos and self._bos_id is not None and ids[:1] != [self._bos_id]:
            ids = [self._bos_id] + ids
        return ids

    def token_bytes(self, token: int, skip_special: bool) -> bytes:
        if skip_special and token in self._special:
            return b""
        return self._pieces[token] if 0 <= token < len(self._pieces) else b""

    def is_end_of_generation(self, token: int) -> bool:
        return token in self._eog

    # ---- decoding --------------------------------------------------------------------
    def open_sequence(self, prompt_tokens: list[int], params: GenerationParams) -> HFSequence:
        return self.open_sequence_for("", prompt_tokens, params)

    def open_sequence_for(self, owner: str, prompt_tokens: list[int],
                          params: GenerationParams) -> HFSequence:
        # A bad grammar raises here: the scheduler fails this request alone.
        constraint = self._grammars.constraint(params.grammar_string) if params.grammar_string.strip() else None
        sampler = SequenceSampler(params, self._eog, self._dry_breakers(params), constraint)
        seq = HFSequence(prompt_tokens, params, sampler)
        seq.owner = owner
        cache, kept, logits = self._prefix.take(seq.prompt_tokens, owner, running=len(self._sequences))
        if kept:           # only the tokens after the common start are read
            seq.cache, seq.n_cached, seq.n_reused = cache, kept, kept
            seq.pending = seq.prompt_tokens[kept:]
        if logits is not None:      # the same prompt as a kept one: nothing to read
            seq.logits = seq.prompt_logits = logits
            self._ready.append(seq)
        self._sequences.append(seq)
        self.info.details["prompt cache use"] = self._prefix.summary()
        return seq

    def forward(self, feeds: dict[Sequence, int]) -> list[Sequence]:
        for seq, token in feeds.items():
            seq.pending.append(token)
        busy = [s for s in self._sequences if s.pending]
        ready, self._ready = [s for s in self._ready if s in self._sequences], []
        decoding = [s for s in busy if s.n_cached and len(s.pending) == 1]
        with torch.inference_mode():
            for seq in busy:
                if seq not in decoding:
                    self._run_alone(seq)            # a prompt (prefill)
            if len(decoding) > 1 and self._can_batch:
                self._run_group(decoding)
            else:
                self._dissolve_group()
                for seq in decoding:
                    self._run_alone(seq)
        return busy + ready

    def _run_alone(self, seq: HFSequence) -> None:
        ids = torch.tensor([seq.pending], dtype=torch.long, device=self.device)
        # logits_to_keep=1: the prompt's other positions never need the vocabulary head.
        out = self.model(input_ids=ids, past_key_values=seq.cache, use_cache=True, logits_to_keep=1)
        seq.cache = out.past_key_values
        seq.n_cached += len(seq.pending)
        seq.logits = out.logits[0, -1].float()
        seq.sampler.next_position()
        if not seq.generated:
            seq.prompt_logits = seq.logits
        seq.pending = []
        if self._can_batch is None:        # plain (not sliding-window) layers can be merged
            self._can_batch = all(type(layer).__name__ == "DynamicLayer" for layer in seq.cache.layers)

    def _run_group(self, seqs: list[HFSequence]) -> None:
        group = self._group
        if group is None or group.seqs != seqs:
            self._dissolve_group()
            group = self._group = DecodeGroup(seqs, self.device)
        rows = len(seqs)
        ids = torch.tensor([s.pending for s in seqs], dtype=torch.long, device=self.device)
        positions = torch.tensor([[s.n_cached] for s in seqs], dtype=torch.long, device=self.device)
        group.mask = torch.cat([group.mask, group.mask.new_ones(rows, 1)], dim=1)
        out = self.model(input_ids=ids, attention_mask=group.mask, position_ids=positions,
                         past_key_values=group.cache, use_cache=True, logits_to_keep=1)
        group.cache = out.past_key_values
        logits = out.logits[:, -1].float()
        for row, seq in enumerate(seqs):
            seq.logits = logits[row]
            seq.sampler.next_position()
            seq.n_cached += 1
            seq.pending = []

    def _dissolve_group(self) -> None:
        if self._group is None:
            return
        for seq in self._group.seqs:
            if seq in self._sequences:
                self._group.release(seq)
        self._group = None

    def sample(self, seq: HFSequence) -> int:
        with torch.inference_mode():
            return seq.sampler.sample(seq.logits.clone(), seq.prompt_tokens, seq.generated)

    def top_candidates(self, seq: HFSequence, count: int) -> list[tuple[int, float]]:
        if seq.logits is None:
            return []
        with torch.inference_mode():
            probs = seq.sampler.probabilities(seq.logits.clone(), seq.prompt_tokens, seq.generated)
            values, ids = torch.topk(probs, min(count, probs.shape[-1]))
        return [(int(i), float(v)) for i, v in zip(ids, values) if v > 0]

    def close_sequence(self, seq: HFSequence) -> None:
        if seq in self._sequences:
            in_group = self._group is not None and seq in self._group.seqs
            if in_group:
                self._group.release(seq)
            self._sequences.remove(seq)   # a group it was in is rebuilt on the next step
            # The cache holds the first n_cached tokens of prompt + reply (the last drawn
            # token was never fed back).
            tokens = (seq.prompt_tokens + seq.generated)[:seq.n_cached]
            self._prefix.keep(tokens, seq.cache, seq.owner, running=len(self._sequences), copy=in_group,
                              prompt_length=len(seq.prompt_tokens), prompt_logits=seq.prompt_logits)
            self.info.details["prompt cache use"] = self._prefix.summary()
        seq.cache = None
        seq.logits = None

    @property
    def cache_counters(self):
        """Prompt tokens reused and read since the model was loaded (tests, benchmarks)."""
        return self._prefix.counters

    def warnings_for(self, params: GenerationParams) -> list[str]:
        messages = []
        outside = [t for t in list(params.logit_bias) + params.banned_token_ids()
                   if not 0 <= t < self.vocab_size]
        if outside:
            messages.append(f"Token ids not in this model's vocabulary are ignored: {sorted(set(outside))}.")
        return messages

    def unload(self) -> None:
        self._prefix.enabled = False         # nothing is kept from here on
        for seq in list(self._sequences):
            self.close_sequence(seq)
        self._prefix.clear()
        self._group = None
        # Everything sized by the model goes now, not when the last reference to this
        # object does: the manager trims the heap right after unload().
        self.model = None
        self.tokenizer = None
        self._pieces, self._special, self._breakers = [], frozenset(), {}
        self._grammars = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # ---- helpers ---------------------------------------------------------------------
    def _dry_breakers(self, params: GenerationParams) -> frozenset[int]:
        """Token ids whose text contains a DRY sequence breaker (computed once per list)."""
        if params.dry_multiplier <= 0:
            return frozenset()
        key = tuple(params.dry_breakers())
        if key not in self._breakers:
            self._breakers[key] = frozenset(
                i for i, piece in enumerate(self._pieces)
                if any(b in piece.decode("utf-8", errors="ignore") for b in key))
        return self._breakers[key]


# ---- loading -------------------------------------------------------------------------------
def load(path: str, settings: LoadSettings, progress) -> TransformersBackend:
    return load_folder(path, settings, progress, loader_name="Transformers")


def load_folder(path: str, settings: LoadSettings, progress, loader_name: str,
                config_override=None, quantized: bool = False) -> TransformersBackend:
    """Loads a folder with AutoModelForCausalLM. The GPTQ loader passes quantized=True
    (its weights keep their packed size) and possibly a config with the quantization."""
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    progress = progress or (lambda fraction, message: None)
    path = str(Path(path))
    gpu = torch.cuda.is_available() and not settings.cpu
    dtype = _choose_dtype(settings, gpu, quantized)
    stored = check_folder(path, settings.trust_remote_code, _growth(path, dtype, quantized))
    kwargs = _model_kwargs(path, settings, gpu, dtype, quantized)
    if config_override is not None:
        kwargs["config"] = config_override
    if not gpu:
        torch.set_num_threads(settings.resolved_threads())

    progress(0.1, "Loading the tokenizer")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=settings.trust_remote_code)
    except Exception as exc:
        raise ModelLoadError(f"Could not load the tokenizer of '{Path(path).name}': {exc}") from exc
    progress(0.3, f"Loading the weights ({dtype_name(dtype)}, {'GPU' if gpu else 'CPU'})")
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()     # the Model tab shows its own progress
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"Could not load '{Path(path).name}': {exc}") from exc
    model.eval()
    progress(0.9, "Preparing the tokenizer tables")
    backend = TransformersBackend(model, tokenizer, _model_info(path, model, tokenizer, settings, loader_name, stored),
                                  cache_reuse=settings.cache_reuse)
    progress(1.0, "Ready")
    return backend


def _choose_dtype(settings: LoadSettings, gpu: bool, quantized: bool):
    if settings.bf16:
        return torch.bfloat16
    if quantized and not gpu:
        # gptqmodel's CPU kernel takes bf16 activations; with fp16 it falls back to a
        # path about 100x slower (0.4 against 41 tokens/s measured here).
        return torch.bfloat16
    if gpu:
        return torch.float16
    return torch.float32      # exact on any CPU; --bf16 halves the memory


def dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")


def _growth(path: str, dtype, quantized: bool) -> float:
    """How much the weight files grow in memory: fp16 files loaded as fp32 double."""
    if quantized:
        return 1.0
    config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    stored = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    stored_bytes = 2 if stored in ("float16", "bfloat16") else 4
    return (4 if dtype == torch.float32 else 2) / stored_bytes


def _model_kwargs(path: str, settings: LoadSettings, gpu: bool, dtype, quantized: bool) -> dict:
    kwargs = {"dtype": dtype, "trust_remote_code": settings.trust_remote_code,
              "low_cpu_mem_usage": True}
    if settings.attn_implementation:
        kwargs["attn_implementation"] = settings.attn_implementation
    if settings.load_in_8bit or settings.load_in_4bit:
        if not gpu:
            raise ModelLoadError("load-in-8bit and load-in-4bit use bitsandbytes, which needs a CUDA GPU. "
                                 "On the CPU use a GGUF or GPTQ model instead, or --bf16.")
        try:
            from transformers import BitsAndBytesConfig
            import bitsandbytes  # noqa: F401
        except ImportError as exc:
            raise ModelLoadError(f"load-in-8bit/4bit needs the bitsandbytes package: {exc}") from exc
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_8bit=settings.load_in_8bit, load_in_4bit=settings.load_in_4bit,
            bnb_4bit_compute_dtype=dtype)
    if gpu:
        kwargs["device_map"] = "auto"
        memory = _max_memory(settings)
        if memory:
            kwargs["max_memory"] = memory
    else:
        kwargs["device_map"] = "cpu"
        _check_cpu_memory_cap(path, settings, _growth(path, dtype, quantized))
    return kwargs


def _gib(text: str) -> str:
    text = text.strip()
    return f"{text}GiB" if re.fullmatch(r"\d+(\.\d+)?", text) else text


def _max_memory(settings: LoadSettings) -> dict:
    memory = {}
    for index, part in enumerate(p for p in settings.gpu_split.split(",") if p.strip()):
        memory[index] = _gib(part)
    if settings.cpu_memory.strip():
        memory["cpu"] = _gib(settings.cpu_memory)
    return memory


def _check_cpu_memory_cap(path: str, settings: LoadSettings, growth: float) -> None:
    """Without a GPU nothing can be offloaded, so --cpu-memory is a limit to respect."""
    if not settings.cpu_memory.strip():
        return
    from accelerate.utils import convert_file_size_to_int

    cap = convert_file_size_to_int(_gib(settings.cpu_memory))
    needed = weights_size(path) * growth
    if needed > cap:
        raise ModelLoadError(
            f"The model needs about {needed / 2**30:.1f} GiB but --cpu-memory allows "
            f"{cap / 2**30:.1f} GiB. Raise the limit, use --bf16, or a quantized model.")


def _model_info(path: str, model, tokenizer, settings: LoadSettings, loader_name: str,
                config: dict) -> ModelInfo:
    text_config = config.get("text_config") or config
    n_ctx_train = int(text_config.get("max_position_embeddings") or DEFAULT_CTX_CAP)
    n_ctx = min(n_ctx_train, settings.ctx_size or DEFAULT_CTX_CAP)
    template = chat_template_from_folder(path)
    details = {
        "dtype": dtype_name(model.dtype),
        "device": str(model.get_input_embeddings().weight.device),
        "parameters": sum(p.numel() for p in model.parameters()),
        "attention": getattr(model.config, "_attn_implementation", None),
        "threads": torch.get_num_threads(),
    }
    if getattr(model.config, "quantization_config", None) is not None:
        quant = model.config.quantization_config
        details["quantization"] = quant.to_dict() if hasattr(quant, "to_dict") else dict(quant)
    if template is None:
        details["chat_template"] = "none in the folder"
    return ModelInfo(
        name=Path(path).name, path=path, loader=loader_name, n_ctx=n_ctx, n_ctx_train=n_ctx_train,
        max_sequences=max(1, settings.parallel), chat_template=template,
        bos_token=tokenizer.bos_token or "", eos_token=tokenizer.eos_token or "",
        add_bos_default=tokenizer_adds_bos(tokenizer), details=details)
