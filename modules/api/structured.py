"""Output the model must follow: response_format (JSON, or JSON under a schema) and tool
calls made compulsory by tool_choice, both as a llama.cpp grammar (GenerationParams.
grammar_string), which the llama.cpp loader enforces with its native grammar sampler.
Other loaders cannot enforce a grammar yet, so these requests are refused there rather
than answered unconstrained.
"""
from __future__ import annotations

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from loaders.json_schema_grammar import SchemaGrammarError, grammar_for_schema
from modules.api.errors import ApiError
from modules.tool_calls import HERMES, LLAMA3, MISTRAL

GRAMMAR_LOADERS = ("llama.cpp",)
ANY_OBJECT = {"type": "object"}


def response_format_grammar(response_format: dict | None) -> tuple[str, dict | None]:
    """(grammar, schema) for a response_format; ("", None) for plain text."""
    if not response_format:
        return "", None
    kind = response_format.get("type")
    if kind in (None, "text"):
        return "", None
    if kind == "json_object":
        return _grammar(ANY_OBJECT, "response_format"), ANY_OBJECT
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise ApiError(400, "response_format.json_schema.schema must be a JSON schema object.",
                           param="response_format")
        return _grammar(schema, "response_format"), schema
    raise ApiError(400, f"response_format.type must be 'text', 'json_object' or 'json_schema', got {kind!r}.",
                   param="response_format")


def tool_call_grammar(style: str, tools: list[dict], only: str | None = None) -> str:
    """A grammar that makes the reply one call, written the way the model's template
    teaches (modules/tool_calls.py reads it back). tools: [{"name", "parameters"}]."""
    chosen = [t for t in tools if only is None or t["name"] == only]
    if not chosen:
        raise ApiError(400, f"tool_choice names '{only}', which is not in tools.", param="tool_choice")
    key = "parameters" if style == LLAMA3 else "arguments"
    calls = [{"type": "object", "properties": {"name": {"const": t["name"]},
                                               key: t.get("parameters") or ANY_OBJECT},
              "required": ["name", key]} for t in chosen]
    schema = calls[0] if len(calls) == 1 else {"anyOf": calls}
    grammar = _grammar(schema, "tools", root_name="tool-call")
    wrapper = {HERMES: 'root ::= "<tool_call>\\n" tool-call "\\n</tool_call>"',
               MISTRAL: 'root ::= "[TOOL_CALLS][" tool-call "]"',
               LLAMA3: "root ::= tool-call"}[style]
    return wrapper + "\n" + grammar


def check_loader(loader: str | None, what: str) -> None:
    if loader is not None and loader not in GRAMMAR_LOADERS:
        raise ApiError(400, f"{what} needs constrained decoding, which works with the llama.cpp loader only "
                       f"so far; the loaded model uses {loader}.", param=what)


def _grammar(schema: dict, param: str, root_name: str = "root") -> str:
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ApiError(400, f"{param}: the JSON schema is not valid: {exc.message}.", param=param) from None
    try:
        return grammar_for_schema(schema, root_name)
    except SchemaGrammarError as exc:
        raise ApiError(400, f"{param}: {exc}", param=param) from None


def output_constraints(params, response_format: dict | None, plan, info, extra: dict):
    """params with the grammar that response_format or a compulsory tool call asks for
    (plan: a tool_plan.ToolPlan or None); `extra` holds the fields the caller set by name."""
    grammar, _schema = response_format_grammar(response_format)
    forced = plan.grammar if plan else ""
    if grammar and forced:
        raise ApiError(400, "response_format and a required tool call cannot be combined.",
                       param="response_format")
    grammar = grammar or forced
    if grammar:
        if params.grammar_string:
            raise ApiError(400, "Give either grammar_string or response_format/tool_choice, not both.",
                           param="grammar_string")
        check_loader(info.loader if info else None, "tool_choice" if forced else "response_format")
        params = params.replace(grammar_string=grammar)
    if plan and plan.parse and plan.style != HERMES and "skip_special_tokens" not in extra:
        # Llama's <|python_tag|> and Mistral's [TOOL_CALLS] are special tokens: keep them to read calls.
        params = params.replace(skip_special_tokens=False)
    return params
