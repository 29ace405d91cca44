"""Renders Jinja2 chat templates (the `chat_template` of Hugging Face tokenizers and GGUF
files, and text-generation-webui's instruction templates) safely on a shared server.

Templates are untrusted code from model files and from people typing in the editor. They
run in a sandbox that refuses expensive expressions (modules/template_sandbox.py), inside
a separate worker process with a memory cap, under a time limit (modules/template_pool.py,
modules/template_worker.py): a runaway template is stopped and cannot hold the server's
GIL or memory while it runs. server.py calls configure() once with the server's limits.
"""
from __future__ import annotations

import json
import threading

from modules.limits import Limits
from modules.template_pool import TemplateWorkers, WorkerGone, close_at_exit
from modules.template_sandbox import TemplateError, check_size
from modules.template_worker import ENCODING, max_output_chars

__all__ = ["TemplateError", "configure", "compile_template", "render_chat_template"]

MEMORY_MB = 1024            # a worker's address space: far above any real prompt, far below the box

_limits = Limits()
_workers: TemplateWorkers | None = None
_lock = threading.Lock()


def configure(limits: Limits) -> None:
    """Applies the server's limits (max_template_chars, template_timeout) and starts a
    worker, so the first chat turn does not wait for one."""
    global _limits
    _limits = limits            # read once per render; workers need no restart for it
    _pool().warm_up_in_background()


def compile_template(source: str) -> None:
    """Checks that the template compiles (in a worker, under the time limit).
    Raises TemplateError with the line of a syntax error."""
    _run({"op": "compile", "source": source, "variables": {}})


def render_chat_template(source: str, messages: list[dict], add_generation_prompt: bool = True,
                         bos_token: str = "", eos_token: str = "", **extra) -> str:
    """The prompt text for `messages` ([{"role": ..., "content": ...}, ...]).
    `extra` reaches the template as further variables (tools, date_string, ...)."""
    variables = dict(extra, messages=messages, add_generation_prompt=add_generation_prompt,
                     bos_token=bos_token, eos_token=eos_token)
    return _run({"op": "render", "source": source, "variables": variables})


def _run(request: dict) -> str:
    limits = _limits
    check_size(request["source"], limits.max_template_chars)
    try:
        payload = json.dumps(dict(request, timeout=limits.template_timeout),
                             ensure_ascii=False).encode(**ENCODING)
    except (TypeError, ValueError) as exc:
        raise TemplateError(f"the conversation holds a value a template cannot be given ({exc}).") from None
    # UTF-8 bytes and JSON escapes: at most 6 bytes a character of the text the worker may send
    max_reply_bytes = 6 * max_output_chars(len(payload)) + 4096
    try:
        reply = _pool().call(payload, limits.template_timeout, max_reply_bytes)
    except WorkerGone:
        raise TemplateError("the template stopped the process rendering it (it may have needed "
                            "more memory than a template may use).") from None
    if reply is None or reply.get("timeout"):
        raise TemplateError(f"the template took longer than {limits.template_timeout:g} s to render "
                            f"and was stopped.", (reply or {}).get("lineno"))
    if not reply["ok"]:
        raise TemplateError(reply["message"], reply.get("lineno"))
    return reply["text"]


def _pool() -> TemplateWorkers:
    global _workers
    with _lock:
        if _workers is None:
            _workers = TemplateWorkers(MEMORY_MB)
            close_at_exit(_workers)
        return _workers
