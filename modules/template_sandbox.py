"""The Jinja2 sandbox chat templates run in, and the errors they raise.

Templates come from model files and from people typing in the editor, so they are
untrusted code. jinja2's ImmutableSandboxedEnvironment keeps them away from Python's
internals and from mutating the messages; on top of that, this environment refuses the
cheap ways to make one expression very expensive:

- Nothing is evaluated while compiling. jinja2 folds constant expressions at compile time
  (`{{ 9**9**9 }}` never finishes compiling, and holds the GIL while it tries); with the
  optimizer off and output constants left to run time, every expression runs under the
  checks below and under the render time limit.
- `**` and `*` are intercepted: numbers, strings and lists they would make past a size
  limit are refused before Python starts building them.
- `range` has a length limit.

What is left (a loop that runs for long, memory grown a step at a time) is bounded by the
worker process the template renders in (modules/template_worker.py). The environment
matches what transformers offers templates (trim_blocks, lstrip_blocks, loop controls,
{% generation %}, raise_exception, tojson, strftime_now) so templates written for it work.
"""
from __future__ import annotations

import json
import math
import operator
from datetime import datetime
from functools import lru_cache

import jinja2
import jinja2.ext
from jinja2 import nodes
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment

TEMPLATE_FILENAME = "<template>"   # what jinja2 names frames of a template compiled from a string
MAX_NUMBER_DIGITS = 4300           # Python's own limit for turning an int into text
MAX_STRING_CHARS = 1_000_000       # one string made by `*`
MAX_LIST_ITEMS = MAX_RANGE         # one list made by `*`, one range(): jinja2's own 100,000
_MAX_NUMBER_BITS = int(MAX_NUMBER_DIGITS * math.log2(10))


class TemplateError(ValueError):
    """A chat template that does not compile or fails while rendering.
    `lineno` is the template line the error comes from, when known."""

    def __init__(self, message: str, lineno: int | None = None):
        self.lineno = lineno
        self.detail = message
        where = f" on line {lineno}" if lineno else ""
        super().__init__(f"Template error{where}: {message}")


class TimeUp(BaseException):
    """Raised into a render from a timer when its time is up. A BaseException, so that no
    `except Exception` in jinja2 or in a filter swallows it."""

    def __init__(self, lineno: int | None = None):
        super().__init__(lineno)
        self.lineno = lineno


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


class _NoFoldingCodeGenerator(CodeGenerator):
    """jinja2 evaluates the constant parts of `{{ ... }}` while compiling even with the
    optimizer off; only plain template text may be, everything else waits for run time."""

    def _output_child_to_const(self, node, frame, finalize):
        if not isinstance(node, nodes.TemplateData):
            raise nodes.Impossible()
        return super()._output_child_to_const(node, frame, finalize)


def _digits(bits: float) -> str:
    return f"{int(bits / math.log2(10)) + 1:,}"


def _checked_power(base, exponent):
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        bits = exponent * math.log2(abs(base))
        if bits > _MAX_NUMBER_BITS:
            raise SecurityError(
                f"{base} ** {exponent} would be a number of about {_digits(bits)} digits; "
                f"the limit is {MAX_NUMBER_DIGITS:,} digits.")
    return operator.pow(base, exponent)


def _checked_multiply(left, right):
    if isinstance(left, int) and not isinstance(right, int):
        left, right = right, left           # the sequence first: 3 * 'x' is 'x' * 3
    if isinstance(right, int) and isinstance(left, (str, list, tuple)):
        size = len(left) * right
        limit = MAX_STRING_CHARS if isinstance(left, str) else MAX_LIST_ITEMS
        if size > limit:
            kind = "a string of" if isinstance(left, str) else "a list of"
            unit = "characters" if isinstance(left, str) else "items"
            raise SecurityError(f"{_shown(left)} * {right} would make {kind} {size:,} {unit}; "
                                f"the limit is {limit:,}.")
    elif isinstance(left, int) and isinstance(right, int):
        bits = abs(left).bit_length() + abs(right).bit_length()
        if bits > _MAX_NUMBER_BITS:
            raise SecurityError(f"a product of about {_digits(bits)} digits is too large; "
                                f"the limit is {MAX_NUMBER_DIGITS:,} digits.")
    return operator.mul(left, right)


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 20 else text[:17] + "..."


def _limited_range(*args):
    numbers = range(*args)
    if len(numbers) > MAX_LIST_ITEMS:
        shown = ", ".join(str(a) for a in args)
        raise SecurityError(f"range({shown}) would have {len(numbers):,} numbers; "
                            f"the limit is {MAX_LIST_ITEMS:,}.")
    return numbers


class ChatTemplateEnvironment(ImmutableSandboxedEnvironment):
    code_generator_class = _NoFoldingCodeGenerator
    intercepted_binops = frozenset({"**", "*"})

    def __init__(self):
        super().__init__(trim_blocks=True, lstrip_blocks=True, optimized=False,
                         extensions=[jinja2.ext.loopcontrols, _GenerationBlock])
        self.binop_table = dict(self.binop_table, **{"**": _checked_power, "*": _checked_multiply})
        self.filters["tojson"] = _tojson
        self.globals.update(range=_limited_range, raise_exception=_raise_exception,
                            strftime_now=_strftime_now)


_ENVIRONMENT = ChatTemplateEnvironment()


def check_size(source: str, max_chars: int) -> None:
    if not isinstance(source, str) or not source.strip():
        raise TemplateError("the template is empty.")
    if len(source) > max_chars:
        raise TemplateError(f"the template is {len(source):,} characters long; "
                            f"the limit is {max_chars:,}.")


@lru_cache(maxsize=64)
def compile_in_sandbox(source: str) -> jinja2.Template:
    """The compiled template (cached: the chat renders the same source for every message).
    Raises TemplateError with the line of a syntax error."""
    try:
        return _ENVIRONMENT.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(exc.message or str(exc), exc.lineno) from None
    except RecursionError:
        raise TemplateError("the template is nested too deeply.") from None


def render_in_sandbox(source: str, variables: dict) -> str:
    """Renders here, in this process: only the template worker calls this."""
    template = compile_in_sandbox(source)
    try:
        return template.render(**variables)
    except TimeUp as exc:
        # jinja2 only maps Exceptions' frames to template lines; map this one here.
        raise TimeUp(_python_to_template_line(exc, template)) from None
    except _RaisedByTemplate as exc:
        raise TemplateError(f"the template refused the conversation: {exc}", template_line(exc)) from None
    except SecurityError as exc:
        raise TemplateError(f"not allowed in a template: {exc}", template_line(exc)) from None
    except MemoryError as exc:
        raise TemplateError("the template needed more memory than a template may use.",
                            template_line(exc)) from None
    except RecursionError as exc:
        raise TemplateError("the template calls itself too deeply.", template_line(exc)) from None
    except Exception as exc:   # UndefinedError, TypeError from bad operations, ...
        message = str(exc) or type(exc).__name__
        raise TemplateError(message, template_line(exc)) from None


def _python_to_template_line(exc: BaseException, template: jinja2.Template) -> int | None:
    line = None
    traceback = exc.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == TEMPLATE_FILENAME:
            line = template.get_corresponding_lineno(traceback.tb_lineno)
        traceback = traceback.tb_next
    return line


def template_line(exc: BaseException) -> int | None:
    """jinja2 rewrites tracebacks so template frames carry template line numbers;
    the innermost such frame is where the error happened."""
    line = None
    traceback = exc.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == TEMPLATE_FILENAME:
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line
