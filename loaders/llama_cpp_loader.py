"""GGUF models through llama.cpp's low-level API (llama-cpp-python's ctypes bindings).

Decoding goes through `llama_decode` on a batch rather than the high-level completion
call, which costs about a quarter of the speed. One context holds `parallel` sequences,
each with its own slice of the context (`ctx_size` tokens), its own seq_id and its own
native sampler chain, so several users' tokens are decoded in one pass.

A finished sequence's cache stays in its slot, and a new prompt goes to the slot that
already holds the longest prefix of it, so a chat's next turn reads only its new tokens
(loaders/llama_cpp_cache.py). Long prompts are read in chunks while others generate
(loaders/prefill_budget.py).
"""
from __future__ import annotations

import ctypes
import logging
import os
import time

import llama_cpp as ll

from loaders.base import Backend, ModelInfo, ModelLoadError, Sequence
from loaders.llama_cpp_cache import CacheCounters, Plan, SavedState, SlotTable
from loaders.prefill_budget import PrefillBudget
from loaders.llama_cpp_sampling import SamplerChain
from loaders.settings import LoadSettings
from modules.params import GenerationParams

log = logging.getLogger(__name__)
DEFAULT_CTX_CAP = 4096
# --cache-type (text-generation-webui's names) -> the ggml type of the K and V cache
CACHE_TYPES = {"fp16": ll.GGML_TYPE_F16, "q8_0": ll.GGML_TYPE_Q8_0, "q4_0": ll.GGML_TYPE_Q4_0}

_backend_ready = False


def _init_llama_backend() -> None:
    global _backend_ready, _log_callback
    if _backend_ready:
        return
    ll.llama_backend_init()

    # Route llama.cpp's chatter to Python logging (warnings and errors only by default).
    @ll.llama_log_callback
    def _log_callback(level, text, _user):
        if level >= 3 or log.isEnabledFor(logging.DEBUG):   # 2 warn, 3 error (ggml_log_level)
            message = text.decode("utf-8", errors="replace").rstrip()
            if message:
                log.log(logging.ERROR if level >= 4 else logging.DEBUG, "llama.cpp: %s", message)
    ll.llama_log_set(_log_callback, ctypes.c_void_p(0))
    _backend_ready = True


def check_gguf_file(path: str) -> None:
    """Catches the common mistakes before llama.cpp sees the file."""
    if not os.path.exists(path):
        raise ModelLoadError(f"Model file not found: {path}")
    if os.path.isdir(path):
        raise ModelLoadError(f"{path} is a folder, not a GGUF file.")
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        raise ModelLoadError(
            f"{os.path.basename(path)} is not a GGUF model file (it does not start with the GGUF "
            f"signature). It may be another format renamed, or a download error page.")


class LlamaSequence(Sequence):
    def __init__(self, prompt_tokens, params, slot, sampler: SamplerChain, kept: int):
        super().__init__(prompt_tokens, params)
        self.slot = slot
        self.seq_id = slot.seq_id
        self.sampler = sampler
        self.n_past = kept           # tokens already in the KV cache
        self.n_reused = kept         # of those, kept from an earlier request (not read)
        self.cached = list(prompt_tokens[:kept])   # the token at each cache position
        self.logits_index = -1       # row of this sequence's logits in the last batch
        self.closed = False


class LlamaCppBackend(Backend):
    def __init__(self, path: str, settings: LoadSettings, progress):
        _init_llama_backend()
        check_gguf_file(path)
        self._model = None
        self._ctx = None
        self._batch = None
        self._load_model(path, settings, progress)
        try:
            self._create_context(settings)
        except Exception:
            self.unload()
            raise
        self._slots = SlotTable(self._parallel, self._cache_reuse, settings.cache_ram * 2**20)
        self._counters = CacheCounters()
        self._budget = PrefillBudget(self._n_batch, settings.prefill_chunk)
        self._pending: list[LlamaSequence] = []      # prompts not fully processed yet
        self._piece_cache: dict[tuple[int, bool], bytes] = {}
        self._end_tokens = [t for t in range(self._n_vocab) if ll.llama_vocab_is_eog(self._vocab, t)]
        self._end_set = frozenset(self._end_tokens)
        self.info = self._describe(path, settings)

    # ---- loading ---------------------------------------------------------------------
    def _load_model(self, path: str, settings: LoadSettings, progress) -> None:
        params = ll.llama_model_default_params()
        params.n_gpu_layers = settings.gpu_layers
        if settings.no_mmap:
            params.load_mode = ll.LLAMA_LOAD_MODE_MLOCK if settings.mlock else ll.LLAMA_LOAD_MODE_NONE
        else:
            params.load_mode = ll.LLAMA_LOAD_MODE_MMAP_MLOCK if settings.mlock else ll.LLAMA_LOAD_MODE_MMAP

        @ll.llama_progress_callback
        def on_progress(fraction, _user):
            progress(float(fraction), "Loading weights")
            return True
        params.progress_callback = on_progress
        self._model = ll.llama_model_load_from_file(path.encode(), params)
        if not self._model:
            raise ModelLoadError(
                f"llama.cpp could not load {os.path.basename(path)}: the file is damaged or "
                f"incomplete (a truncated download?), or its architecture is not supported.")
        self._vocab = ll.llama_model_get_vocab(self._model)
        self._n_vocab = self.vocab_size = ll.llama_vocab_n_tokens(self._vocab)
        self._n_ctx_train = ll.llama_model_n_ctx_train(self._model)

    def _create_context(self, settings: LoadSettings) -> None:
        self._parallel = max(1, settings.parallel)
        per_sequence = settings.ctx_size or min(self._n_ctx_train or DEFAULT_CTX_CAP, DEFAULT_CTX_CAP)
        params = ll.llama_context_default_params()
        params.n_ctx = per_sequence * self._parallel
        params.n_seq_max = self._parallel
        params.kv_unified = False             # each sequence owns ctx_size tokens of the cache
        params.n_batch = max(settings.batch_size, self._parallel)
        params.n_ubatch = params.n_batch
        # llama.cpp defaults to 4 threads; on fewer cores that oversubscribes them badly.
        params.n_threads = settings.resolved_threads()
        params.n_threads_batch = settings.resolved_threads_batch()
        params.no_perf = True
        params.type_k = params.type_v = CACHE_TYPES[settings.cache_type]
        # --flash-attn; llama.cpp refuses a quantised V cache without it, so q8_0 and q4_0 force it
        flash = settings.flash_attn or settings.cache_type != "fp16"
        params.flash_attn_type = ll.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash else ll.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self._cache_reuse = self._reuse_supported(settings)
        if self._cache_reuse and ll.llama_model_n_swa(self._model) > 0:
            params.swa_full = True            # a sliding window forgets the prefix to reuse
        self._ctx = ll.llama_init_from_model(self._model, params)
        if not self._ctx:
            raise ModelLoadError(
                f"llama.cpp could not create a context of {params.n_ctx} tokens "
                f"({self._parallel} x {per_sequence}); try a smaller --ctx-size or --parallel"
                + ("." if settings.cache_type == "fp16" else
                   f", or --cache-type fp16 (a {settings.cache_type} cache needs flash attention, "
                   f"which this model or build may lack)."))
        self._n_ctx_seq = ll.llama_n_ctx_seq(self._ctx)
        self._n_batch = params.n_batch
        self._batch = ll.llama_batch_init(self._n_batch, 0, 1)
        self._memory = ll.llama_get_memory(self._ctx)

    def _reuse_supported(self, settings: LoadSettings) -> bool:
        """Recurrent and hybrid models cannot drop the tail of a sequence's state."""
        if not settings.cache_reuse:
            return False
        if ll.llama_model_is_recurrent(self._model) or ll.llama_model_is_hybrid(self._model):
            log.info("prompt cache reuse is off: this model's memory cannot be cut at a position")
            return False
        return True

    def _describe(self, path: str, settings: LoadSettings) -> ModelInfo:
        template = ll.llama_model_chat_template(self._model, None)
        bos = ll.llama_vocab_bos(self._vocab)
        eos = ll.llama_vocab_eos(self._vocab)
        return ModelInfo(
            name=os.path.basename(path), path=path, loader="llama.cpp",
            n_ctx=self._n_ctx_seq, n_ctx_train=self._n_ctx_train, max_sequences=self._parallel,
            chat_template=template.decode("utf-8", errors="replace") if template else None,
            bos_token=self._piece(bos, True).decode(errors="replace") if bos >= 0 else "",
            eos_token=self._piece(eos, True).decode(errors="replace") if eos >= 0 else "",
            add_bos_default=bool(ll.llama_vocab_get_add_bos(self._vocab)),
            details={
                "context per sequence": self._n_ctx_seq,
                "sequences decoded together": self._parallel,
                "context in total": ll.llama_n_ctx(self._ctx),
                "KV cache type": settings.cache_type,
                "flash attention": "on" if settings.flash_attn or settings.cache_type != "fp16" else "off",
                "GPU layers": settings.gpu_layers,
                "GPU offload supported": bool(ll.llama_supports_gpu_offload()),
                "threads": settings.resolved_threads(),
                "parameters": ll.llama_model_n_params(self._model),
                "prompt cache": self._cache_description(settings),
                # Filled by _update_details; present from the start so that the Model tab,
                # reading on another thread, never sees the dict change size.
                "prompt cache use": "no prompts yet",
                "prompt cache in host memory": "off" if not self._cache_reuse else "none kept",
                "prompt reading while others generate": "measured while running",
            })

    def _cache_description(self, settings: LoadSettings) -> str:
        if not self._cache_reuse:
            return "off (every prompt is read from its first token)"
        return f"on, slots kept between requests; host memory up to {settings.cache_ram} MiB"

    def _update_details(self) -> None:
        """Live counters for the Model tab (it shows info.details as they are)."""
        details = self.info.details
        details["prompt cache use"] = self._counters.summary()
        host = self._slots.host
        details["prompt cache in host memory"] = (
            f"{len(host)} chats, {host.bytes / 2**20:.1f} of {host.capacity / 2**20:.0f} MiB"
            if host.capacity else "off")
        details["prompt reading while others generate"] = self._budget.describe()

    @property
    def cache_counters(self) -> CacheCounters:
        """Prompt tokens kept, restored and read since the model was loaded (tests, benchmarks)."""
        return self._counters

    # ---- tokens ----------------------------------------------------------------------
    def tokenize(self, text: str, add_bos: bool, special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        buffer = (ll.llama_token * capacity)()
        count = ll.llama_tokenize(self._vocab, data, len(data), buffer, capacity, add_bos, special)
        if count < 0:
            buffer = (ll.llama_token * -count)()
            count = ll.llama_tokenize(self._vocab, data, len(data), buffer, -count, add_bos, special)
        return list(buffer[:count])

    def _piece(self, token: int, special: bool) -> bytes:
        key = (token, special)
        piece = self._piece_cache.get(key)
        if piece is None:
            buffer = ctypes.create_string_buffer(64)
            size = ll.llama_token_to_piece(self._vocab, token, buffer, 64, 0, special)
            if size < 0:
                buffer = ctypes.create_string_buffer(-size)
                size = ll.llama_token_to_piece(self._vocab, token, buffer, -size, 0, special)
            piece = self._piece_cache[key] = buffer.raw[:size]
        return piece

    def token_bytes(self, token: int, skip_special: bool) -> bytes:
        return self._piece(token, not skip_special)

    def is_end_of_generation(self, token: int) -> bool:
        return token in self._end_set

    # ---- decoding ----------------------------------------------------------------------
    def open_sequence(self, prompt_tokens: list[int], params: GenerationParams) -> LlamaSequence:
        return self.open_sequence_for("", prompt_tokens, params)

    def open_sequence_for(self, owner: str, prompt_tokens: list[int],
                          params: GenerationParams) -> LlamaSequence:
        if not self._slots.free_slots():
            raise RuntimeError("All sequence slots are busy.")
        bad = [t for t in prompt_tokens if not 0 <= t < self._n_vocab]
        if bad:
            raise ValueError(f"Token id {bad[0]} is outside the vocabulary.")
        sampler = SamplerChain(self._vocab, self._n_vocab, params, self._end_tokens)
        plan = self._slots.plan(prompt_tokens, owner)
        kept = self._prepare_slot(plan)
        self._slots.occupy(plan.slot, owner)
        self._counters.record(len(prompt_tokens), kept, plan.restore is not None, plan.copy_from is not None)
        seq = LlamaSequence(prompt_tokens, params, plan.slot, sampler, kept)
        plan.slot.tokens = seq.cached      # what the cache holds as it is read: a source for copies
        self._pending.append(seq)
        if self._cache_reuse:
            how = ("restored from host memory" if plan.restore else
                   f"copied from slot {plan.copy_from.seq_id}" if plan.copy_from else "kept in the slot")
            log.debug("prompt cache: %d prompt tokens from %r on slot %d: %d %s, %d to read%s",
                      len(prompt_tokens), owner, plan.slot.seq_id, kept, how,
                      len(prompt_tokens) - kept, "; the slot's old chat saved" if plan.save_first else "")
        self._update_details()
        return seq

    def _prepare_slot(self, plan: Plan) -> int:
        """Saves, restores and trims the slot's cache as planned; returns the tokens kept."""
        slot, seq_id = plan.slot, plan.slot.seq_id
        if plan.save_first:
            self._save_slot(slot.seq_id, slot.tokens, slot.owner)
        if plan.restore is not None:
            ll.llama_memory_seq_rm(self._memory, seq_id, -1, -1)
            data = plan.restore.data
            if ll.llama_state_seq_set_data(self._ctx, data, len(data), seq_id) == 0:
                log.warning("prompt cache: restoring a saved chat failed; reading it again")
                slot.tokens = []
                ll.llama_memory_seq_rm(self._memory, seq_id, -1, -1)
                return 0
            slot.tokens = plan.restore.tokens
        if plan.copy_from is not None:
            # Across per-sequence streams llama.cpp copies a whole stream, at the next decode;
            # the tail beyond the shared start is dropped below.
            ll.llama_memory_seq_cp(self._memory, plan.copy_from.seq_id, seq_id, -1, -1)
            self._slots.copy_queued(plan.copy_from, slot)
            slot.tokens = list(plan.copy_from.tokens)
        kept = plan.keep
        if kept < len(slot.tokens) and not ll.llama_memory_seq_rm(self._memory, seq_id, kept, -1):
            kept = 0        # this memory cannot drop a tail: start from scratch
            ll.llama_memory_seq_rm(self._memory, seq_id, -1, -1)
        slot.tokens = slot.tokens[:kept]
        return kept

    def _save_slot(self, seq_id: int, tokens: list[int], owner: str) -> None:
        size = ll.llama_state_seq_get_size(self._ctx, seq_id)
        buffer = (ctypes.c_uint8 * size)()
        written = ll.llama_state_seq_get_data(self._ctx, buffer, size, seq_id)
        if written == 0:
            return
        if self._slots.host.put(SavedState(list(tokens), owner, buffer)):
            self._counters.saves += 1
            log.debug("prompt cache: saved %d tokens of %r's chat to host memory (%.1f MiB)",
                      len(tokens), owner, size / 2**20)

    def forward(self, feeds: dict[Sequence, int]) -> list[Sequence]:
        # Generating sequences give one token each; prompts fill the rest of the batch, in
        # small chunks while others are generating so their next token is not held up (a
        # long prompt continues in the next passes).
        parts: list[tuple[LlamaSequence, list[int], bool]] = [
            (seq, [token], True) for seq, token in feeds.items()]
        budget = self._budget.tokens(len(feeds))
        prompt_tokens = 0
        read_whole = 0
        for seq in self._pending:
            if prompt_tokens >= budget:
                break
            chunk = seq.prompt_tokens[seq.n_past:seq.n_past + budget - prompt_tokens]
            prompt_tokens += len(chunk)
            whole = seq.n_past + len(chunk) == len(seq.prompt_tokens)
            parts.append((seq, chunk, whole))
            read_whole += whole
        del self._pending[:read_whole]
        # With a cache per sequence llama.cpp splits a batch into micro-batches of
        # consecutive, increasing sequence ids (llama_batch_allocr::split_equal), and every
        # micro-batch is another pass over the weights: in seq_id order, the generating
        # sequences of adjacent slots share one pass.
        parts.sort(key=lambda part: part[0].seq_id)
        batch = self._batch
        tokens, positions, n_seq_ids, seq_ids, logits = (
            batch.token, batch.pos, batch.n_seq_id, batch.seq_id, batch.logits)
        n = 0
        with_logits: list[LlamaSequence] = []
        in_batch: list[LlamaSequence] = []
        for seq, chunk, wants_logits in parts:
            in_batch.append(seq)
            seq_id, past = seq.seq_id, seq.n_past
            for token in chunk:
                tokens[n] = token
                positions[n] = past
                n_seq_ids[n] = 1
                seq_ids[n][0] = seq_id
                logits[n] = 0
                past += 1
                n += 1
            seq.n_past = past
            seq.cached.extend(chunk)
            if wants_logits:
                logits[n - 1] = 1
                seq.logits_index = n - 1
                with_logits.append(seq)
        if n == 0:
            return []
        batch.n_tokens = n
        started = time.perf_counter()
        self._slots.copies_applied()        # llama_decode runs queued cache copies first
        status = ll.llama_decode(self._ctx, batch)
        if status != 0:
            for seq in in_batch:        # what the cache holds for them is unknown now
                seq.cached = None
            raise RuntimeError(f"llama_decode returned {status}" +
                               (" (no room left in the context)" if status == 1 else ""))
        self._budget.record(len(feeds), prompt_tokens, time.perf_counter() - started)
        return with_logits

    def sample(self, seq: LlamaSequence) -> int:
        return ll.llama_sampler_sample(seq.sampler.ptr, self._ctx, seq.logits_index)

    def top_candidates(self, seq: LlamaSequence, count: int) -> list[tuple[int, float]]:
        from loaders.llama_cpp_probabilities import top_candidates
        return top_candidates(self._ctx, self._vocab, self._n_vocab, seq, count)

    def close_sequence(self, seq: LlamaSequence) -> None:
        """Frees the slot for the next request but, with reuse on, leaves its cache there."""
        if seq.closed:
            return
        seq.closed = True
        if seq in self._pending:
            self._pending.remove(seq)
        seq.sampler.free()
        if not self._cache_reuse or seq.cached is None:
            ll.llama_memory_seq_rm(self._memory, seq.seq_id, -1, -1)
        self._slots.release(seq.slot, seq.cached or [])

    def unload(self) -> None:
        # Prompts not yet read free their native samplers too (there are none yet when
        # __init__ calls this after a failed context).
        for seq in list(getattr(self, "_pending", [])):
            seq.sampler.free()
        self._pending = []
        self._piece_cache = {}
        if getattr(self, "_slots", None) is not None:
            self._slots.host.clear()
        if self._batch is not None:
            ll.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            ll.llama_free(self._ctx)
            self._ctx = None
        if self._model:
            ll.llama_model_free(self._model)
            self._model = None


def load(path: str, settings: LoadSettings, progress) -> LlamaCppBackend:
    return LlamaCppBackend(path, settings, progress)
