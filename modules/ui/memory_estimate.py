"""The Model tab's memory estimate: a line saying about how much memory the chosen GGUF
model will take with the chosen context, sequences and cache type, and a plot of that
against the context length, both updated as the settings change and before anything is
loaded. The numbers come from modules/kv_memory.py (the file's metadata, never its weights).

    estimate = memory_estimate.create_ui(model_dir, cache_ram_mib)
    estimate.wire(model_choice, ctx_size, parallel, cache_type)   # cache_type may be None
"""
from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd

from loaders.gguf_metadata import GgufReadError
from modules import kv_memory, model_files

_QUIET = dict(show_progress="hidden", api_visibility="undocumented")
X, Y, PART = "tokens per sequence", "MiB", "part"
COLORS = {"total": "#3b6ea5", "KV cache": "#f08c00"}


class MemoryEstimate:
    """The components, and how they follow the form's fields."""

    def __init__(self, model_dir, cache_ram_mib: int = 0):
        self.model_dir = Path(model_dir)
        self.cache_ram_mib = cache_ram_mib
        self.line = gr.Markdown(elem_id="memory-estimate")
        # Gradio clips the colour legend under the plot, so the label names the colours.
        self.plot = gr.LinePlot(_frame([]), x=X, y=Y, color=PART, height=300, x_title=X,
                                y_title="MiB", color_title="", color_map=COLORS,
                                label="Memory against context length: total (blue) and KV cache (orange)",
                                elem_id="memory-estimate-plot", tooltip="all")

    def wire(self, model_choice, ctx_size, parallel, cache_type=None, batch_size=None,
             flash_attn=None) -> None:
        """Updates on any change of the inputs and on page load. The last three are
        optional: without them the estimate assumes fp16, 512 and no flash attention,
        the loader's defaults."""
        optional = {"cache_type": cache_type, "batch_size": batch_size, "flash_attn": flash_attn}
        given = [name for name, component in optional.items() if component is not None]
        inputs = [model_choice, ctx_size, parallel] + [optional[name] for name in given]

        def update(name, ctx, sequences, *values):
            return describe(self.model_dir, name, ctx, sequences, cache_ram_mib=self.cache_ram_mib,
                            **dict(zip(given, values)))

        outputs = [self.line, self.plot]
        gr.on([c.change for c in inputs], update, inputs, outputs, **_QUIET)
        gr.on(None, update, inputs, outputs, **_QUIET)       # the form as the page opens


def create_ui(model_dir, cache_ram_mib: int = 0) -> MemoryEstimate:
    return MemoryEstimate(model_dir, cache_ram_mib)


def describe(model_dir, name, ctx_size, parallel, cache_type=None, batch_size=None,
             cache_ram_mib: int = 0, flash_attn=False) -> tuple[str, pd.DataFrame]:
    """The line and the plot's data for the form's values (an empty plot when there is
    nothing to estimate)."""
    if not name:
        return "", _frame([])
    try:
        ctx, sequences = _whole(ctx_size, 0), max(1, _whole(parallel, 1))
        batch = _whole(batch_size, 512) or 512
        path = model_files.resolve_model_path(str(name), model_dir)
        if not (path.is_file() and path.suffix.lower() == ".gguf"):
            return "Memory estimate: for GGUF models (llama.cpp) only.", _frame([])
        shape = kv_memory.read_shape(path)
        chosen = kv_memory.estimate(shape, ctx, sequences, cache_type, batch, bool(flash_attn))
        points = kv_memory.curve(shape, sequences, cache_type, batch, bool(flash_attn))
    except (OSError, GgufReadError, ValueError) as exc:
        return f"Memory estimate unavailable: {exc}", _frame([])
    notes = []
    if shape.recurrent:
        notes.append("the model's recurrent state is not included")
    if cache_ram_mib:
        notes.append(f"chats moved out of their slots may take up to {cache_ram_mib:,} MiB more (--cache-ram)")
    line = f"**{chosen.summary()}.**" + (f" Besides: {'; '.join(notes)}." if notes else "")
    return line, _frame(points)


def _frame(points) -> pd.DataFrame:
    rows = [(n, round(e.total / kv_memory.MIB, 1), "total") for n, e in points]
    rows += [(n, round(e.kv_cache / kv_memory.MIB, 1), "KV cache") for n, e in points]
    return pd.DataFrame(rows, columns=[X, Y, PART])


def _whole(value, default: int) -> int:
    if value is None or value == "":
        return default
    number = float(value)
    if number < 0 or number != int(number):
        raise ValueError(f"{value} is not a whole number of zero or more")
    return int(number)
