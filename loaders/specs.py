"""Every loader described once: its name, the load-time fields it reads (flag, type, range,
default, help), how a model is recognised as its own, and how it is loaded.

The command-line flags (modules/cli.py), the Model tab's fields and their range checks
(modules/ui/model_form.py) and the model list's detection (modules/model_files.py) are all
derived from LOAD_FIELDS and LOADER_SPECS, as PARAM_SPECS drives the sampler settings.
Flag names are text-generation-webui's. Adding a loader is one LoaderSpec here plus its
module; adding a setting is one LoadField here plus its LoadSettings attribute.

Nothing here imports a model library: the load function is named as "module:function"
and imported only when a model is loaded.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from loaders.base import ModelLoadError
from loaders.hf_folder import is_gptq_folder, is_hf_folder

# The Model tab's boxes, in order; each field sits in one.
CONTEXT = "Context and sequences"
LLAMA = "llama.cpp settings"
HF = "Transformers and GPTQ settings"
REMOTE = "Remote server settings"
SECTIONS = (CONTEXT, LLAMA, HF, REMOTE)


@dataclass(frozen=True)
class LoadField:
    name: str                  # the LoadSettings attribute
    flag: str                  # the command-line flag; for a bool that defaults to True, its negation
    default: Any
    section: str
    help: str
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    form: bool = True          # False: command line only (the operator's decision, or server tuning)
    secret: bool = False       # never sent to a page, written to disk or logged
    placeholder: str = ""
    max_length: int = 100

    @property
    def label(self) -> str:
        """The flag without its dashes: what the Model tab and messages call the field."""
        return self.flag.lstrip("-")

    @property
    def kind(self) -> type:
        return type(self.default)

    def check(self, value) -> None:
        """ValueError with a plain message when value is outside the field's range or choices."""
        if self.minimum is not None and not self.minimum <= value <= self.maximum:
            raise ValueError(f"{self.label} must be between {self.minimum:,} and {self.maximum:,} "
                             f"(got {value:,}).")
        if self.choices and value not in self.choices:
            shown = ", ".join(c or "(default)" for c in self.choices)
            raise ValueError(f"{self.label} must be one of {shown} (got {value!r}).")


def _f(name, flag, default, section, help, **more) -> LoadField:
    return LoadField(name, flag, default, section, help, **more)


LOAD_FIELDS: tuple[LoadField, ...] = (
    _f("ctx_size", "--ctx-size", 0, CONTEXT, "Context length of each sequence in tokens; 0 uses the "
       "model's trained length, capped at 4096 (a remote server's: what it tells, else 2048).",
       minimum=0, maximum=1_048_576),
    _f("parallel", "--parallel", 4, CONTEXT, "Sequences decoded together (users served at once; for a "
       "remote server, requests forwarded at once); each gets ctx-size tokens of context.",
       minimum=1, maximum=256),
    _f("threads", "--threads", 0, CONTEXT, "Threads for generation on the CPU; 0 uses the cores available.",
       minimum=0, maximum=1024),
    # llama.cpp
    _f("gpu_layers", "--gpu-layers", 0, LLAMA, "Layers to offload to the GPU (needs a CUDA build of "
       "llama-cpp-python; -1 for all).", minimum=-1, maximum=100_000, aliases=("--n-gpu-layers",)),
    _f("threads_batch", "--threads-batch", 0, LLAMA, "Threads for prompt processing; 0: same as threads.",
       minimum=0, maximum=1024),
    _f("batch_size", "--batch-size", 512, LLAMA, "Most prompt tokens processed in one pass.",
       minimum=1, maximum=65_536),
    _f("cache_type", "--cache-type", "fp16", LLAMA, "Number format of the K and V cache: q8_0 about halves "
       "its memory and q4_0 quarters it, for a little accuracy. A quantised V cache needs flash "
       "attention, so q8_0 and q4_0 turn it on.", choices=("fp16", "q8_0", "q4_0")),
    _f("flash_attn", "--flash-attn", False, LLAMA, "Use flash attention. Off by default: on the CPU it "
       "made a chat's next turn slower after a long history (docs/prompt_cache.md). A q8_0 or q4_0 "
       "--cache-type turns it on whatever this says (llama.cpp needs it for a quantised V cache)."),
    _f("no_mmap", "--no-mmap", False, LLAMA, "Read the whole model into memory instead of mapping it."),
    _f("mlock", "--mlock", False, LLAMA, "Lock the model in RAM so the system never swaps it out."),
    _f("cache_reuse", "--no-cache-reuse", True, LLAMA, "Read every prompt from its first token instead "
       "of keeping each slot's cache for the next prompt that starts the same way (the next turn of "
       "a chat).", form=False),
    _f("cache_ram", "--cache-ram", 1024, LLAMA, "MiB of host memory for the caches of slots handed to "
       "other chats, so a chat taken up again is restored, not read again; 0: none.",
       minimum=0, maximum=1_048_576, form=False),
    _f("prefill_chunk", "--prefill-chunk", 0, LLAMA, "Prompt tokens one pass reads while others are "
       "generating; 0: sized from measured times so their replies keep their pace.",
       minimum=0, maximum=1_048_576, form=False),
    # Transformers and GPTQ
    _f("cpu", "--cpu", False, HF, "Run on the CPU even if a GPU is present."),
    _f("cpu_memory", "--cpu-memory", "", HF, "Most CPU memory to use for weights, e.g. 16GiB; "
       "empty: no limit.", placeholder="e.g. 16GiB"),
    _f("gpu_split", "--gpu-split", "", HF, "GiB of weights per GPU, comma separated, e.g. 20,24.",
       placeholder="e.g. 20,24"),
    _f("bf16", "--bf16", False, HF, "Load the weights in bfloat16."),
    _f("load_in_8bit", "--load-in-8bit", False, HF, "Quantize to 8 bits at load (bitsandbytes, GPU only)."),
    _f("load_in_4bit", "--load-in-4bit", False, HF, "Quantize to 4 bits at load (bitsandbytes, GPU only)."),
    _f("attn_implementation", "--attn-implementation", "", HF, "Attention implementation for "
       "Transformers models; empty: the model's default.", choices=("", "sdpa", "eager", "flash_attention_2")),
    _f("trust_remote_code", "--trust-remote-code", False, HF, "Allow model folders' own Python code to run "
       "when they are loaded. Only here, on the command line: the Model tab has no such switch.", form=False),
    # Remote: an OpenAI-compatible server elsewhere (docs/remote_backend.md)
    _f("remote_url", "--remote-url", "", REMOTE, "Address of an OpenAI-compatible server (vLLM, llama.cpp's "
       "server, TGI, Ollama) to send generation to, e.g. http://gpu-node:8000/v1.",
       placeholder="http://gpu-node:8000/v1", max_length=500),
    _f("remote_key", "--remote-key", "", REMOTE, "Its API key, sent as 'Authorization: Bearer'; never "
       "shown, stored or logged. On the command line other local users can read it in the process "
       "list: prefer the Model tab.", secret=True, max_length=500),
    _f("remote_model", "--remote-model", "", REMOTE, "The model name it serves (an id from its "
       "/v1/models); empty: the first it lists.", max_length=300),
    _f("remote_engine", "--remote-engine", "auto", REMOTE, "Which server it is, for its sampler names and "
       "tokenizer; auto: detected from its /v1/models. 'openai' sends the standard fields only.",
       choices=("auto", "vllm", "llama.cpp", "llama-cpp-python", "tgi", "openai")),
)

FIELDS_BY_NAME = {field.name: field for field in LOAD_FIELDS}


# ---- recognising a model as a loader's own ------------------------------------------------------
def _is_gguf_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".gguf"


def _gguf_claims(path: Path) -> bool:
    """A .gguf file, or a folder of GGUF files that is not a Hugging Face folder."""
    return _is_gguf_file(path) or (path.is_dir() and not is_hf_folder(path) and any(path.glob("*.gguf")))


def _gguf_refuses(path: Path) -> str | None:
    if _is_gguf_file(path):
        return None
    return (f"llama.cpp reads .gguf files, and {path.name} is a folder without one. "
            f"Choose Transformers or GPTQ for it.")


def _hf_refuses(loader: str, path: Path) -> str | None:
    if is_hf_folder(path):
        return None
    what = "a GGUF file: choose llama.cpp" if path.suffix.lower() == ".gguf" else "not one"
    return f"{loader} reads Hugging Face folders (with a config.json), and {path.name} is {what}."


def _gptq_refuses(path: Path) -> str | None:
    problem = _hf_refuses("GPTQ", path)
    if problem is None and not is_gptq_folder(path):
        return f"{path.name} is not a GPTQ-quantized folder; choose Transformers for it."
    return problem


@dataclass(frozen=True)
class LoaderSpec:
    name: str                             # what --loader and the Model tab call it
    format: str                           # how the model list names the files it reads
    fields: tuple[str, ...]               # the LOAD_FIELDS it reads
    load: str                             # "module:function", (path, LoadSettings, progress) -> Backend
    claims: Callable[[Path], bool]        # is this file or folder one of its models?
    refuses: Callable[[Path], str | None]   # why it cannot read this path; None when it can
    reads_files: bool = True              # False: the model is elsewhere, the path is unused

    def reads(self, field_name: str) -> bool:
        return field_name in self.fields


_SHARED = ("ctx_size", "parallel", "threads")
_HF_SHARED = _SHARED + ("cpu", "cpu_memory", "gpu_split", "trust_remote_code")

LOADER_SPECS: tuple[LoaderSpec, ...] = (
    LoaderSpec("llama.cpp", "GGUF",
               _SHARED + ("gpu_layers", "threads_batch", "batch_size", "cache_type", "flash_attn", "no_mmap", "mlock",
                          "cache_reuse", "cache_ram", "prefill_chunk"),
               "loaders.llama_cpp_loader:load", _gguf_claims, _gguf_refuses),
    LoaderSpec("Transformers", "Hugging Face folder",
               _HF_SHARED + ("bf16", "load_in_8bit", "load_in_4bit", "attn_implementation"),
               "loaders.transformers_loader:load",
               lambda path: is_hf_folder(path) and not is_gptq_folder(path),
               lambda path: _hf_refuses("Transformers", path)),
    LoaderSpec("GPTQ", "GPTQ 4-bit folder", _HF_SHARED, "loaders.gptq_loader:load",
               lambda path: is_hf_folder(path) and is_gptq_folder(path), _gptq_refuses),
    LoaderSpec("Remote", "OpenAI-compatible server",
               ("ctx_size", "parallel", "remote_url", "remote_key", "remote_model", "remote_engine"),
               "loaders.remote_openai:load", lambda path: False, lambda path: None, reads_files=False),
)

SPECS_BY_NAME = {spec.name: spec for spec in LOADER_SPECS}
LOADER_NAMES = tuple(SPECS_BY_NAME)


def spec_for(loader: str) -> LoaderSpec:
    if loader not in SPECS_BY_NAME:
        raise ModelLoadError(f"Unknown loader '{loader}'. Choose one of: {', '.join(LOADER_NAMES)}.")
    return SPECS_BY_NAME[loader]


def detect(path) -> str | None:
    """The loader whose models include this file or folder; None when no loader claims it."""
    path = Path(path)
    return next((spec.name for spec in LOADER_SPECS if spec.claims(path)), None)


def check_settings(settings) -> None:
    """ValueError naming the first field of settings outside its range or choices."""
    for field in LOAD_FIELDS:
        field.check(getattr(settings, field.name))


def load(loader: str, path: str, settings, progress=None):
    """Loads path with the named loader; progress(fraction, message) is called while it loads."""
    spec = spec_for(loader)
    module_name, function_name = spec.load.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelLoadError(f"The {loader} loader is not available: {exc}") from exc
    return getattr(module, function_name)(path, settings, progress or (lambda fraction, message: None))
