"""Output the model must follow: response_format (JSON, or JSON under a schema) and tool
calls made compulsory by tool_choice, as a grammar in GenerationParams.grammar_string.

llama.cpp enforces GBNF with its native grammar sampler; schemas become GBNF through
llama-cpp-python's converter (loaders/json_schema_grammar.py). Transformers and GPTQ enforce
grammars through llguidance (loaders/hf_grammar.py), which reads GBNF too, but there the
schema itself goes in, embedded in llguidance's Lark dialect, so that llguidance's own
JSON-schema compiler applies it.
"""
from __future__ import annotations

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from loaders.hf_grammar import GrammarError, lark_grammar, schema_rule
from loaders.json_schema_grammar import SchemaGrammarError, grammar_for_schema
from modules.api.errors import ApiError
from modules.tool_calls import HERMES, LLAMA3, MISTRAL

GRAMMAR_LOADERS = ("llama.cpp", "Transformers", "GPTQ")     # loaders that enforce a grammar
LLGUIDANCE_LOADERS = ("Transformers", "GPTQ")               # these read llguidance's Lark too
ANY_OBJECT = {"type": "object"}


def response_format_grammar(response_format: dict | None, loader: str | None = None) -> tuple[str, dict | None]:
    """(grammar, schema) for a response_format, in the loader's grammar format; ("", None)
    for plain text."""
    if not response_format:
        return "", None
    kind = response_format.get("type")
    if kind in (None, "text"):
        return "", None
    if kind == "json_object":
        return _schema_grammar(ANY_OBJECT, "response_format", loader), ANY_OBJECT
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise ApiError(400, "response_format.json_schema.schema must be a JSON schema object.",
                           param="response_format")
        return _schema_grammar(schema, "response_format", loader), schema
    raise ApiError(400, f"response_format.type must be 'text', 'json_object' or 'json_schema', got {kind!r}.",
                   param="response_format")


def tool_call_grammar(style: str, tools: list[dict], only: str | None = None,
                      loader: str | None = None) -> str:
    """A grammar that makes the reply one call, written the way the model's template
    teaches (modules/tool_calls.py reads it back). tools: [{"name", "parameters"}].
    GBNF unless the loader is one that reads llguidance's Lark (every loader that enforces
    grammars reads GBNF)."""
    chosen = [t for t in tools if only is None or t["name"] == only]
    if not chosen:
        raise ApiError(400, f"tool_choice names '{only}', which is not in tools.", param="tool_choice")
    key = "parameters" if style == LLAMA3 else "arguments"
    calls = [{"type": "object", "properties": {"name": {"const": t["name"]},
                                               key: t.get("parameters") or ANY_OBJECT},
              "required": ["name", key], "additionalProperties": False} for t in chosen]
    schema = calls[0] if len(calls) == 1 else {"anyOf": calls}
    wrapper = {HERMES: '"<tool_call>\\n" {call} "\\n</tool_call>"',
               MISTRAL: '"[TOOL_CALLS][" {call} "]"',
               LLAMA3: "{call}"}[style]
    if loader in LLGUIDANCE_LOADERS:
        _checked_schema(schema, "tools")
        return _checked_lark("tools", "start: " + wrapper.format(call="tool_call"), schema_rule(schema, "tool_call"))
    grammar = _gbnf(schema, "tools", root_name="tool-call")
    return "root ::= " + wrapper.format(call="tool-call") + "\n" + grammar


def check_loader(loader: str | None, what: str) -> None:
    """Refuses a loader that cannot enforce a grammar (none of today's three)."""
    if loader is not None and loader not in GRAMMAR_LOADERS:
        raise ApiError(400, f"{what} needs constrained decoding, which the {loader} loader does not offer.",
                       param=what)


def _schema_grammar(schema: dict, param: str, loader: str | None) -> str:
    """A whole grammar for JSON valid under the schema, in the loader's format."""
    if loader in LLGUIDANCE_LOADERS:
        _checked_schema(schema, param)
        return _checked_lark(param, schema_rule(schema, "start"))
    return _gbnf(schema, param)


def _checked_schema(schema: dict, param: str) -> dict:
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ApiError(400, f"{param}: the JSON schema is not valid: {exc.message}.", param=param) from None
    return schema


def _gbnf(schema: dict, param: str, root_name: str = "root") -> str:
    _checked_schema(schema, param)
    try:
        return grammar_for_schema(schema, root_name)
    except SchemaGrammarError as exc:
        raise ApiError(400, f"{param}: {exc}", param=param) from None


def _checked_lark(param: str, *rules: str) -> str:
    try:
        return lark_grammar(*rules)
    except GrammarError as exc:
        raise ApiError(400, f"{param}: the JSON schema cannot be used to constrain the output: {exc}",
                       param=param) from None


def output_constraints(params, response_format: dict | None, plan, info, extra: dict):
    """params with the grammar that response_format or a compulsory tool call asks for
    (plan: a tool_plan.ToolPlan or None); `extra` holds the fields the caller set by name."""
    loader = info.loader if info else None
    grammar, _schema = response_format_grammar(response_format, loader)
    forced = plan.grammar if plan else ""
    if grammar and forced:
        raise ApiError(400, "response_format and a required tool call cannot be combined.",
                       param="response_format")
    grammar = grammar or forced
    if grammar:
        if params.grammar_string:
            raise ApiError(400, "Give either grammar_string or response_format/tool_choice, not both.",
                           param="grammar_string")
        check_loader(loader, "tool_choice" if forced else "response_format")
        params = params.replace(grammar_string=grammar)
    if plan and plan.parse and plan.style != HERMES and "skip_special_tokens" not in extra:
        # Llama's <|python_tag|> and Mistral's [TOOL_CALLS] are special tokens: keep them to read calls.
        params = params.replace(skip_special_tokens=False)
    return params
