"""What the Model tab shows: the model list and table, the loaded model's facts, how the
context is divided, and who may change the model."""
from __future__ import annotations

from pathlib import Path

import psutil

from modules import model_files

TABLE_HEADERS = ["Model", "Format", "Size", "Loader", "Note"]


def choices(ctx) -> list[tuple[str, str]]:
    return [(label(e), e.name) for e in model_files.list_models(ctx.models.model_dir)]


def label(entry) -> str:
    if entry.loader is None:
        return f"{entry.name}  ·  {entry.problem}"
    return f"{entry.name}  ·  {entry.format}, {size(entry.size_bytes)}  ·  {entry.loader}"


def table(ctx) -> list[list[str]]:
    rows = [[e.name, e.format, size(e.size_bytes), e.loader or "—", e.problem]
            for e in model_files.list_models(ctx.models.model_dir)]
    return rows or [["(no models yet: download one below)", "", "", "", ""]]


def size(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def loaded_name(ctx) -> str | None:
    """The models/ entry of the loaded model (a GGUF inside a folder counts as the folder)."""
    path = ctx.models.current_path
    if path is None:
        return None
    root = Path(ctx.models.model_dir).resolve()
    resolved = Path(path).resolve()
    if resolved.parent.parent == root:
        return resolved.parent.name
    return resolved.name


def division_text(ctx_size, parallel) -> str:
    per_sequence = f"{int(ctx_size)} tokens" if ctx_size else "the model's context (at most 4096)"
    n = max(1, int(parallel or 1))
    return f"Context: {n} sequence{'s' if n > 1 else ''} × {per_sequence} each."


def info_text(ctx) -> str:
    info = ctx.models.info
    if info is None:
        return ctx.models.status_line()
    lines = [f"**{info.name}** with {info.loader}: {info.max_sequences} "
             f"sequence{'s' if info.max_sequences != 1 else ''} × {info.n_ctx} tokens"
             f" ({info.max_sequences * info.n_ctx} in total); trained with {info.n_ctx_train} tokens."]
    lines += [f"- {key}: {value}" for key, value in info.details.items()]
    rss = psutil.Process().memory_info().rss / 2**20
    lines.append(f"- server process memory: {rss:.0f} MiB")
    return "\n".join(lines)


def admins_text(ctx) -> str:
    policy = ctx.policy
    if policy is None or not policy.accounts_on:
        if policy is not None and policy.everyone_admin:
            return "everyone"
        return "people at the server machine itself"
    return ", ".join(sorted(policy.admin_users)) or "nobody is named admin"


def data_dir(ctx) -> Path:
    """--data-dir when the server passes it on, else <project>/data."""
    found = getattr(ctx, "data_dir", None) or ctx.extras.get("data_dir")
    return Path(found) if found else Path(ctx.root) / "data"
