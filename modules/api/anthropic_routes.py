"""Anthropic's Messages API: /v1/messages (streamed as its named events) and
/v1/messages/count_tokens. Shapes follow the `anthropic` package's types (Message,
RawMessageStreamEvent); content is text, tool_use and tool_result blocks, and a thinking
block first when the reply reasons (modules/api/thinking.py; `thinking: {"type":
"disabled"}` passes enable_thinking=false to the template). Thinking blocks sent back
reach the template as the reply's reasoning_content; they carry no signature.
"""
from __future__ import annotations

import json
import secrets
from functools import partial

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from modules.api import sse
from modules.api.context import context_of
from modules.api.errors import ApiError, anthropic_body, as_api_error
from modules.api.generation import ChatPrompt, EventStream, Generation, closing_on_error, collect, opened, start
from modules.api.request_params import anthropic_fields, build_params, check_model
from modules.api.schemas import CountTokensRequest, MessagesRequest, message_text, parse_body
from modules.api.structured import output_constraints
from modules.api.thinking import ReplyReasoning, read_reply_reasoning, template_variables
from modules.api.tool_plan import ToolPlan, plan_tools
from modules.events import Finished, TextDelta
from modules.params import GenerationParams
from modules.chat_prompt import FALLBACK_TEMPLATE
from modules.reasoning import prompt_messages
from modules.template_render import render_chat_template
from modules.tool_calls import ToolCallStream, messages_for_template, parse_tool_calls


# ---- Anthropic messages -> the template's messages ----------------------------------------------
def template_messages(body) -> list[dict]:
    out = []
    if body.system:
        out.append({"role": "system", "content": message_text(body.system, "system")})
    for index, message in enumerate(body.messages):
        where = f"messages.{index}.content"
        if isinstance(message.content, str):
            out.append({"role": message.role, "content": message.content})
            continue
        texts, calls, thoughts = [], [], []
        for block in message.content:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text" and isinstance(block.get("text"), str):
                texts.append(block["text"])
            elif kind == "thinking" and message.role == "assistant" and isinstance(block.get("thinking"), str):
                thoughts.append(block["thinking"])
            elif kind == "redacted_thinking" and message.role == "assistant":
                continue
            elif kind == "tool_use" and message.role == "assistant":
                calls.append({"id": block.get("id", ""), "type": "function",
                              "function": {"name": block.get("name", ""), "arguments": block.get("input") or {}}})
            elif kind == "tool_result" and message.role == "user":
                out.append({"role": "tool", "tool_call_id": block.get("tool_use_id", ""),
                            "content": message_text(block.get("content"), where)})
            else:
                raise ApiError(400, f"{where}: a {kind!r} block is not supported here.", param=where)
        if texts or calls or not out or out[-1]["role"] != "tool":
            item = {"role": message.role, "content": "".join(texts)}
            if calls:
                item["tool_calls"] = calls
            if thoughts:
                item["reasoning_content"] = "\n".join(thoughts)
            out.append(item)
    return out


def thinking_switch(extra: dict | None) -> bool | None:
    """Anthropic's `thinking` field as enable_thinking: enabled, disabled, or not given."""
    given = (extra or {}).get("thinking")
    kind = given.get("type") if isinstance(given, dict) else None
    return {"enabled": True, "disabled": False}.get(kind)


def functions(body) -> list[dict]:
    return [{"name": t.name, "description": t.description or "", "parameters": t.input_schema}
            for t in body.tools or []]


def response_format(output_config: dict | None) -> dict | None:
    """Anthropic's structured outputs (output_config.format) as OpenAI's response_format."""
    output_format = (output_config or {}).get("format")
    if not output_format:
        return None
    if not isinstance(output_format, dict) or output_format.get("type") != "json_schema":
        raise ApiError(400, "output_config.format.type must be 'json_schema'.", param="output_config")
    return {"type": "json_schema", "json_schema": {"schema": output_format.get("schema")}}


def tool_choice_name(choice: dict | None) -> str | None:
    if choice is None:
        return None
    kind = choice.get("type")
    if kind in ("auto", "none"):
        return kind
    if kind == "any":
        return "required"
    if kind == "tool" and choice.get("name"):
        return choice["name"]
    raise ApiError(400, "tool_choice.type must be 'auto', 'any', 'tool' (with a name) or 'none'.",
                   param="tool_choice")


# ---- /v1/messages -----------------------------------------------------------------------------------
async def messages(request: Request) -> Response:
    ctx = context_of(request)
    who = ctx.keys.identify(request)
    body = parse_body(await request.body(), MessagesRequest)
    info = ctx.loaded_info()
    check_model(body.model, info.name if info else None, ctx.model_names)
    history = template_messages(body)
    template = ctx.template_for(body.chat_template)
    plan = plan_tools(functions(body), tool_choice_name(body.tool_choice), template, info.loader if info else None)
    params = build_params(body.model_extra, anthropic_fields(body), preset=body.preset,
                          preset_store=ctx.preset_store, who=who, max_tokens_limit=ctx.limits.max_new_tokens_limit)
    params = output_constraints(params, response_format(body.output_config), plan, info, body.model_extra or {})
    typed = max((m["content"] for m in history), key=len)
    variables = template_variables(body.model_extra, thinking_switch(body.model_extra))
    chat = ChatPrompt(messages_for_template(history), template, plan.template_tools, variables,
                      read_reasoning=partial(read_reply_reasoning, template, variables, body.model_extra))
    generation = await start(ctx.door, who, params, typed=typed, chat=chat)
    with closing_on_error(generation):
        reply = MessageReply(body.model or (info.name if info else ""), plan, generation, params,
                             generation.reasoning)
        if body.stream:
            events = await opened(generation, request.receive)
            return EventStream(reply.stream(events), generation)
        return JSONResponse(await reply.whole(request.receive))


class MessageReply:
    def __init__(self, model: str, plan: ToolPlan, generation: Generation, params: GenerationParams,
                 reasoning: ReplyReasoning = ReplyReasoning()):
        self.id, self.model, self.plan, self.generation = "msg_" + secrets.token_hex(12), model, plan, generation
        self.stops = set(params.custom_stopping_strings)
        self.reasoning = reasoning

    def _stop(self, finished: Finished, calls) -> tuple[str, str | None]:
        if calls:
            return "tool_use", None
        if finished.reason == "length":
            return "max_tokens", None
        stopped_by = self.generation.request.reply.stopped_by
        if stopped_by in self.stops:
            return "stop_sequence", stopped_by
        return "end_turn", None

    def _message(self, content: list, stop: tuple[str | None, str | None], output_tokens: int) -> dict:
        return {"id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": content,
                "stop_reason": stop[0], "stop_sequence": stop[1],
                "usage": {"input_tokens": self.generation.prompt_tokens, "output_tokens": output_tokens}}

    async def whole(self, receive) -> dict:
        text, finished, _ = await collect(self.generation, receive)
        split = self.reasoning.split(text)
        text = split.answer
        content_text, calls = parse_tool_calls(text, self.plan.names) if self.plan.parse else (text, [])
        content = [{"type": "thinking", "thinking": split.reasoning, "signature": ""}] if split.reasoning else []
        content += [{"type": "text", "text": content_text}] if content_text or not calls else []
        content += [_tool_use(call) for call in calls]
        return self._message(content, self._stop(finished, calls), finished.n_tokens)

    async def stream(self, events):
        """The events of each engine event in one write (message_start with the first text)."""
        calls_stream = ToolCallStream(self.plan.names) if self.plan.parse else None
        out = [sse.event("message_start", {"type": "message_start", "message": self._message([], (None, None), 0)}),
               sse.event("ping", {"type": "ping"})]
        blocks = TextBlocks()
        thinking = self.reasoning.stream()
        async for event in events:
            if isinstance(event, TextDelta):
                thought, said = thinking.feed(event.text) if thinking else ("", event.text)
                out += blocks.thinking(thought)
                out += blocks.text(calls_stream.feed(said) if calls_stream else said)
                if out:
                    yield "".join(out)
                    out = []
                continue
            if event.reason == "error":
                out.append(sse.event("error", anthropic_body(ApiError(500, event.error or "The generation failed."))))
                break
            thought, said = thinking.finish() if thinking else ("", "")
            out += blocks.thinking(thought)
            said = calls_stream.feed(said) if calls_stream else said
            rest, calls = calls_stream.finish() if calls_stream else ("", [])
            out += blocks.text(said + rest)
            out += blocks.close_text()
            for call in calls:
                out += blocks.tool_use(call)
            stop_reason, stop_sequence = self._stop(event, calls)
            out.append(sse.event("message_delta", {"type": "message_delta",
                                                   "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                                                   "usage": {"output_tokens": event.n_tokens}}))
            out.append(sse.event("message_stop", {"type": "message_stop"}))
        if out:
            yield "".join(out)


class TextBlocks:
    """Numbers the content blocks of a streamed message and opens/closes them in order."""

    def __init__(self):
        self.index = -1
        self.text_open = False
        self.thinking_open = False

    def thinking(self, text: str):
        """The reply's reasoning: one thinking block, before the rest."""
        if not text:
            return
        if not self.thinking_open:
            self.index += 1
            self.thinking_open = True
            yield sse.event("content_block_start", {"type": "content_block_start", "index": self.index,
                                                    "content_block": {"type": "thinking", "thinking": "",
                                                                      "signature": ""}})
        yield sse.event("content_block_delta", {"type": "content_block_delta", "index": self.index,
                                                "delta": {"type": "thinking_delta", "thinking": text}})

    def close_thinking(self):
        if self.thinking_open:
            self.thinking_open = False
            yield sse.event("content_block_stop", {"type": "content_block_stop", "index": self.index})

    def text(self, text: str):
        if not text:
            return
        yield from self.close_thinking()
        if not self.text_open:
            self.index += 1
            self.text_open = True
            yield sse.event("content_block_start", {"type": "content_block_start", "index": self.index,
                                                    "content_block": {"type": "text", "text": ""}})
        yield sse.event("content_block_delta", {"type": "content_block_delta", "index": self.index,
                                                "delta": {"type": "text_delta", "text": text}})

    def close_text(self):
        yield from self.close_thinking()
        if self.text_open:
            self.text_open = False
            yield sse.event("content_block_stop", {"type": "content_block_stop", "index": self.index})

    def tool_use(self, call):
        self.index += 1
        block = dict(_tool_use(call), input={})
        yield sse.event("content_block_start", {"type": "content_block_start", "index": self.index,
                                                "content_block": block})
        yield sse.event("content_block_delta", {"type": "content_block_delta", "index": self.index,
                                                "delta": {"type": "input_json_delta",
                                                          "partial_json": json.dumps(call.arguments)}})
        yield sse.event("content_block_stop", {"type": "content_block_stop", "index": self.index})


def _tool_use(call) -> dict:
    return {"type": "tool_use", "id": "toolu_" + call.id.removeprefix("call_"), "name": call.name,
            "input": call.arguments}


# ---- /v1/messages/count_tokens ----------------------------------------------------------------------
async def count_tokens(request: Request) -> Response:
    """Tokens of the whole prompt as the template renders it (nothing left out to fit)."""
    ctx = context_of(request)
    who = ctx.keys.identify(request)
    body = parse_body(await request.body(), CountTokensRequest)
    info = ctx.loaded_info()
    check_model(body.model, info.name if info else None, ctx.model_names)
    history = messages_for_template(template_messages(body))
    tools = [{"type": "function", "function": f} for f in functions(body)] or None
    template = ctx.template_for(body.chat_template)
    params = GenerationParams()
    try:
        with ctx.door.admit(who, params, text=max((m["content"] for m in history), key=len)) as admission:
            variables = template_variables(body.model_extra, thinking_switch(body.model_extra))
            text = await run_in_threadpool(_render, template, history, tools, info, variables)
            tokens = await run_in_threadpool(admission.tokenize, text)
    except Exception as exc:
        raise as_api_error(exc) from None
    return JSONResponse({"input_tokens": len(tokens)})


def _render(template, history, tools, info, variables) -> str:
    """The prompt as a generation would build it (earlier reasoning left out or handed over)."""
    extra = dict(variables, **({"tools": tools} if tools else {}))
    template = template or FALLBACK_TEMPLATE
    return render_chat_template(template, prompt_messages(history, template), add_generation_prompt=True,
                                bos_token=info.bos_token if info else "",
                                eos_token=info.eos_token if info else "", **extra)
