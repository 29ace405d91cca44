"""Renders Jinja2 chat templates (the `chat_template` of Hugging Face tokenizers and GGUF
files, and text-generation-webui's instruction templates) in a sandbox.

Templates come from model files and users, so they run in an ImmutableSandboxedEnvironment:
no attribute access to Python internals, no mutation of the messages passed in. The
environment matches what transformers offers templates (trim_blocks, lstrip_blocks, loop
controls, {% generation %}, raise_exception, tojson, strftime_now) so templates written
for it work here.
"""
from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

_TEMPLATE_FILENAME = "<template>"   # what jinja2 names frames of a template compiled from a string


class TemplateError(ValueError):
    """A chat template that does not compile or fails while rendering.
    `lineno` is the template line the error comes from, when known."""

    def __init__(self, message: str, lineno: int | None = None):
        self.lineno = lineno
        self.detail = message
        where = f" on line {lineno}" if lineno else ""
        super().__init__(f"Template error{where}: {message}")


class _RaisedByTemplate(Exception):
    """raise_exception(...) called by the template itself (e.g. roles must alternate)."""


def _raise_exception(message):
    raise _RaisedByTemplate(str(message))


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent,
                      separators=separators, sort_keys=sort_keys)


def _strftime_now(format_string):
    return datetime.now().strftime(format_string)


class _GenerationBlock(jinja2.ext.Extension):
    """{% generation %}...{% endgeneration %}: transformers uses it to mark assistant text
    for training masks and some model templates contain it; here it renders its body."""

    tags = {"generation"}

    def parse(self, parser):
        next(parser.stream)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


def _make_environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols, _GenerationBlock])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


_ENVIRONMENT = _make_environment()


@lru_cache(maxsize=64)
def compile_template(source: str) -> jinja2.Template:
    """The compiled template (cached: the chat renders the same source for every message).
    Raises TemplateError with the line of a syntax error."""
    if not isinstance(source, str) or not source.strip():
        raise TemplateError("the template is empty.")
    try:
        return _ENVIRONMENT.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(exc.message or str(exc), exc.lineno) from None


def render_chat_template(source: str, messages: list[dict], add_generation_prompt: bool = True,
                         bos_token: str = "", eos_token: str = "", **extra) -> str:
    """The prompt text for `messages` ([{"role": ..., "content": ...}, ...]).
    `extra` reaches the template as further variables (tools, date_string, ...)."""
    template = compile_template(source)
    try:
        return template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                               bos_token=bos_token, eos_token=eos_token, **extra)
    except _RaisedByTemplate as exc:
        raise TemplateError(f"the template refused the conversation: {exc}", _template_line(exc)) from None
    except jinja2.exceptions.SecurityError as exc:
        raise TemplateError(f"not allowed in a template: {exc}", _template_line(exc)) from None
    except Exception as exc:   # UndefinedError, TypeError from bad operations, ...
        message = str(exc) or type(exc).__name__
        raise TemplateError(message, _template_line(exc)) from None


def _template_line(exc: BaseException) -> int | None:
    """jinja2 rewrites tracebacks so template frames carry template line numbers;
    the innermost such frame is where the error happened."""
    line = None
    traceback = exc.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == _TEMPLATE_FILENAME:
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line
