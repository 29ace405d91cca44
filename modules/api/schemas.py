"""Request bodies of the endpoints (pydantic). Fields we do not use are accepted and
ignored, as OpenAI's and Anthropic's clients send many; the sampler fields of
GenerationParams and `preset` ride along as extra fields and are read by request_params.
"""
from __future__ import annotations

import json
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from modules.api.errors import ApiError


class Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


# ---- OpenAI ---------------------------------------------------------------------------------
class FunctionDef(Lenient):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    description: Optional[str] = None
    parameters: Optional[dict] = None


class Tool(Lenient):
    type: Literal["function"] = "function"
    function: FunctionDef


class ChatMessage(Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Union[str, list[dict], None] = None
    name: Optional[str] = None
    tool_calls: Optional[list[dict]] = None
    tool_call_id: Optional[str] = None


class SamplingFields(Lenient):
    model: Optional[str] = None
    stream: bool = False
    stream_options: Optional[dict] = None
    max_tokens: Optional[int] = None
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    n: int = 1
    stop: Union[str, list[str], None] = None
    seed: Optional[int] = None
    frequency_penalty: Optional[float] = None
    presence_penalty: Optional[float] = None
    logit_bias: Optional[dict[str, float]] = None
    preset: Optional[str] = None
    response_format: Optional[dict] = None


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: Optional[int] = None
    logprobs: bool = False
    top_logprobs: Optional[int] = Field(default=None, ge=0, le=20)
    tools: Optional[list[Tool]] = None
    tool_choice: Union[str, dict, None] = None
    chat_template: Optional[str] = None        # vLLM's name: a template for this request only


class CompletionRequest(SamplingFields):
    prompt: Union[str, list[str], list[int]]
    echo: bool = False
    logprobs: Optional[int] = Field(default=None, ge=0, le=20)
    suffix: Optional[str] = None

    @field_validator("prompt")
    @classmethod
    def one_prompt(cls, value):
        if isinstance(value, list) and value and isinstance(value[0], str):
            if len(value) != 1:
                raise ValueError("one prompt per request is supported")
            return value[0]
        return value


# ---- Anthropic ------------------------------------------------------------------------------
class AnthropicTool(Lenient):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    description: Optional[str] = None
    input_schema: dict = Field(default_factory=lambda: {"type": "object"})


class AnthropicMessage(Lenient):
    role: Literal["user", "assistant"]
    content: Union[str, list[dict]]


class MessagesRequest(Lenient):
    model: Optional[str] = None
    max_tokens: int
    messages: list[AnthropicMessage] = Field(min_length=1)
    system: Union[str, list[dict], None] = None
    stop_sequences: Optional[list[str]] = None
    stream: bool = False
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    top_k: Optional[int] = None
    tools: Optional[list[AnthropicTool]] = None
    tool_choice: Optional[dict] = None
    output_config: Optional[dict] = None        # {"format": {"type": "json_schema", "schema": {...}}}
    preset: Optional[str] = None
    chat_template: Optional[str] = None         # as in chat completions: a template for this request only


class CountTokensRequest(Lenient):
    model: Optional[str] = None
    messages: list[AnthropicMessage] = Field(min_length=1)
    system: Union[str, list[dict], None] = None
    tools: Optional[list[AnthropicTool]] = None
    chat_template: Optional[str] = None


# ---- ours (text-generation-webui's internal endpoints) --------------------------------------
class TextBody(Lenient):
    text: str
    preset: Optional[str] = None


class TokensBody(Lenient):
    tokens: list[int]


class LoadModelBody(Lenient):
    model_name: str
    args: dict = Field(default_factory=dict)


def parse_body(raw: bytes, model: type[BaseModel]) -> BaseModel:
    """The body as `model`, or ApiError(400) saying what is wrong, in one sentence."""
    try:
        data = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise ApiError(400, f"{where}: {first['msg']}.", param=where) from None


def message_text(content: Any, where: str) -> str:
    """Text of an OpenAI/Anthropic content field: a string or a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        else:
            raise ApiError(400, f"{where}: only text content is supported here (got a {kind!r} part).",
                           param=where)
    return "".join(texts)
