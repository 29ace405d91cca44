"""JSON schemas -> llama.cpp grammars (GBNF), with llama-cpp-python's own converter.

Kept in loaders/ because it is llama.cpp's grammar format (and its package); the API uses
it for response_format and for tool calls that tool_choice makes compulsory.
"""
from __future__ import annotations

import json

from llama_cpp.llama_grammar import json_schema_to_gbnf


class SchemaGrammarError(ValueError):
    """The schema cannot be turned into a grammar; the message says why."""


def grammar_for_schema(schema: dict, root_name: str = "root") -> str:
    """A GBNF grammar whose `root_name` rule matches JSON valid under `schema`."""
    try:
        grammar = json_schema_to_gbnf(json.dumps(schema))
    except Exception as exc:        # the converter asserts on what it does not understand
        raise SchemaGrammarError(f"The JSON schema cannot be used to constrain the output: {exc}") from None
    if root_name != "root":
        grammar = "\n".join(root_name + line[4:] if line.startswith("root ::=") else line
                            for line in grammar.splitlines())
    return grammar
