"""The Model tab's settings form: one box of fields per loader, read back into LoadSettings
with plain messages for values out of range, and the settings to show for a model (how it
runs now, how it was last loaded, or the server's flags)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import gradio as gr

from loaders import LOADERS
from loaders.settings import LoadSettings, available_cores
from modules import model_files
from modules.model_settings_store import ModelSettingsError, ModelSettingsStore
from modules.ui.model_view import division_text, loaded_name

# Which settings each loader reads (the rest are hidden while it is chosen).
LLAMA_FIELDS = ["ctx_size", "gpu_layers", "threads", "threads_batch", "batch_size", "parallel",
                "no_mmap", "mlock"]
HF_FIELDS = ["cpu", "cpu_memory", "gpu_split"]          # Transformers and GPTQ
TRANSFORMERS_FIELDS = ["bf16", "load_in_8bit", "load_in_4bit", "attn_implementation"]
FIELDS = LLAMA_FIELDS + HF_FIELDS + TRANSFORMERS_FIELDS
# trust_remote_code runs a folder's code: the operator's decision; the prompt-cache tuning
# (--no-cache-reuse, --cache-ram, --prefill-chunk) is the server's, not the form's.
COMMAND_LINE_ONLY = {"trust_remote_code", "cache_reuse", "cache_ram", "prefill_chunk"}
assert set(FIELDS) == {f.name for f in dataclasses.fields(LoadSettings)} - {"loader"} - COMMAND_LINE_ONLY, \
    "every LoadSettings field needs a place in the Model tab"
# Ranges the form accepts; the loaders check what the model itself allows.
RANGES = {"ctx_size": (0, 1_048_576), "parallel": (1, 256), "gpu_layers": (-1, 100_000),
          "threads": (0, 1024), "threads_batch": (0, 1024), "batch_size": (1, 65_536)}

_QUIET = dict(show_progress="hidden", api_visibility="undocumented")


def settings_form(ctx):
    """The components for every LoadSettings field, in FIELDS order, in one box per loader."""
    defaults = ctx.default_load_settings or LoadSettings()
    made = {}
    # No minimum/maximum on the number boxes: Gradio would refuse an out-of-range value with
    # a traceback on the console; _settings_from_form checks RANGES and says what is wrong.
    with gr.Column(visible=False) as llama_box:
        gr.Markdown("#### llama.cpp settings")
        with gr.Row():
            made["ctx_size"] = gr.Number(defaults.ctx_size, precision=0, label="ctx-size",
                                         info="Tokens of context for each sequence; 0: the model's own, "
                                              "at most 4096.")
            made["parallel"] = gr.Number(defaults.parallel, precision=0,
                                         label="parallel", info="Sequences decoded together: how many "
                                         "users are answered at once. Each gets ctx-size tokens.")
            made["gpu_layers"] = gr.Number(defaults.gpu_layers, precision=0, label="gpu-layers",
                                           info="Layers on the GPU; -1: all. Needs a CUDA build.")
        with gr.Row():
            made["threads"] = gr.Number(defaults.threads, precision=0, label="threads",
                                        info=f"0: the {available_cores()} cores available.")
            made["threads_batch"] = gr.Number(defaults.threads_batch, precision=0,
                                              label="threads-batch", info="For prompt processing; 0: as threads.")
            made["batch_size"] = gr.Number(defaults.batch_size, precision=0, label="batch-size",
                                           info="Most prompt tokens in one pass.")
        with gr.Row():
            made["no_mmap"] = gr.Checkbox(defaults.no_mmap, label="no-mmap",
                                          info="Read the whole file into memory instead of mapping it.")
            made["mlock"] = gr.Checkbox(defaults.mlock, label="mlock", info="Keep the model in RAM, never swapped.")
        division = gr.Markdown(division_text(defaults.ctx_size, defaults.parallel), elem_id="model-division")
    with gr.Column(visible=False) as hf_box:
        gr.Markdown("#### Transformers and GPTQ settings")
        with gr.Row():
            made["cpu"] = gr.Checkbox(defaults.cpu, label="cpu", info="Run on the CPU even with a GPU present.")
            gr.Markdown("Model folders' own code runs only when the server was started with "
                        f"`--trust-remote-code` (now: {'on' if defaults.trust_remote_code else 'off'}).")
        with gr.Row():
            made["cpu_memory"] = gr.Textbox(defaults.cpu_memory, label="cpu-memory", placeholder="e.g. 16GiB",
                                            info="Most CPU memory for weights; empty: no limit.")
            made["gpu_split"] = gr.Textbox(defaults.gpu_split, label="gpu-split", placeholder="e.g. 20,24",
                                           info="GiB of weights per GPU, comma separated.")
    with gr.Column(visible=False) as transformers_box:
        gr.Markdown("#### Transformers only")
        with gr.Row():
            made["bf16"] = gr.Checkbox(defaults.bf16, label="bf16", info="Weights in bfloat16.")
            made["load_in_8bit"] = gr.Checkbox(defaults.load_in_8bit, label="load-in-8bit",
                                               info="Quantize at load (bitsandbytes, GPU only).")
            made["load_in_4bit"] = gr.Checkbox(defaults.load_in_4bit, label="load-in-4bit",
                                               info="Quantize at load (bitsandbytes, GPU only).")
            made["attn_implementation"] = gr.Dropdown(
                [("default", ""), ("sdpa", "sdpa"), ("eager", "eager"),
                 ("flash_attention_2", "flash_attention_2")], value=defaults.attn_implementation,
                label="attn-implementation")
    gr.on([made["ctx_size"].change, made["parallel"].change], division_text,
          [made["ctx_size"], made["parallel"]], division, **_QUIET)
    return [made[name] for name in FIELDS], llama_box, hf_box, transformers_box


def boxes(loader_name):
    """Shows the settings of the chosen loader only."""
    return (gr.Column(visible=loader_name == "llama.cpp"),
            gr.Column(visible=loader_name in ("Transformers", "GPTQ")),
            gr.Column(visible=loader_name == "Transformers"))


def settings_from_form(loader_name, values, server_settings: LoadSettings | None = None) -> LoadSettings:
    """LoadSettings from the form; an emptied number box means its default. Settings the
    form does not offer (trust_remote_code) come from the server's command line."""
    if loader_name not in LOADERS:
        raise ValueError("Choose a loader.")
    defaults = LoadSettings()
    chosen = {}
    for name, value in zip(FIELDS, values):
        default = getattr(defaults, name)
        if isinstance(default, bool):
            chosen[name] = bool(value)
        elif isinstance(default, int):
            chosen[name] = default if value is None or value == "" else _whole_number(name, value)
        else:
            chosen[name] = (value or "").strip()[:100]
    for name, (low, high) in RANGES.items():
        if not low <= chosen[name] <= high:
            raise ValueError(f"{name.replace('_', '-')} must be between {low:,} and {high:,} "
                             f"(got {chosen[name]:,}).")
    for name in COMMAND_LINE_ONLY:
        chosen[name] = getattr(server_settings or defaults, name)
    return LoadSettings(loader=loader_name, **chosen)


def _whole_number(name: str, value) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name.replace('_', '-')} must be a whole number.") from None
    if number != int(number):
        raise ValueError(f"{name.replace('_', '-')} must be a whole number (got {value}).")
    return int(number)


def settings_for(ctx, store: ModelSettingsStore, name: str | None) -> tuple[LoadSettings, str]:
    """What the form shows for a model: how it is loaded now, else how it was last loaded,
    else the server's flags with the loader detected from the files."""
    defaults = ctx.default_load_settings or LoadSettings()
    if not name:
        return dataclasses.replace(defaults, loader=defaults.loader or "llama.cpp"), ""
    if name == loaded_name(ctx) and ctx.models.current_settings is not None:
        current = ctx.models.current_settings
        loader = current.loader or model_files.detect_loader(ctx.models.current_path)
        return dataclasses.replace(current, loader=loader), "Settings the loaded model is running with."
    detected = model_files.detect_loader(Path(ctx.models.model_dir) / name)
    problem = ""
    try:
        remembered = store.get(name)
    except ModelSettingsError as exc:
        remembered, problem = None, f" ⚠️ Remembered settings unavailable: {exc}"
    if remembered is not None:
        loader = remembered.loader or detected or "llama.cpp"
        return (dataclasses.replace(remembered, loader=loader),
                "Settings restored from the last time this model was loaded." + problem)
    loader = detected or defaults.loader or "llama.cpp"
    source = "detected from the files" if detected else "not detected; check it"
    return (dataclasses.replace(defaults, loader=loader),
            f"Server defaults; loader {source}." + problem)


def remember(store: ModelSettingsStore, name: str, settings: LoadSettings) -> str:
    try:
        note = store.remember(name, settings)
    except OSError as exc:
        return f"\n\n⚠️ The settings could not be remembered: {exc}"
    return f"\n\n⚠️ {note}" if note else ""


