"""OpenAI's endpoints: /v1/models, /v1/completions, /v1/chat/completions.

Shapes follow the `openai` package's types (ChatCompletion, ChatCompletionChunk, Completion).
"""
from __future__ import annotations

import secrets
import time
from functools import partial

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from modules.api import sse
from modules.api.context import ApiContext, context_of
from modules.api.errors import ApiError, openai_body
from modules.api.generation import ChatPrompt, EventStream, Generation, closing_on_error, collect, opened, start
from modules.api.logprobs import chat_logprobs, completion_logprobs
from modules.api.request_params import build_params, check_model, openai_fields
from modules.api.schemas import ChatCompletionRequest, CompletionRequest, message_text, parse_body
from modules.api.structured import output_constraints
from modules.api.thinking import ReplyReasoning, read_reply_reasoning, template_variables
from modules.api.tool_plan import ToolPlan, plan_tools
from modules.events import Finished, TextDelta
from modules.tool_calls import ToolCallStream, messages_for_template, parse_tool_calls


def _id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def finish_reason(finished: Finished, calls) -> str:
    if calls:
        return "tool_calls"
    return "length" if finished.reason == "length" else "stop"


def usage(prompt_tokens: int, finished: Finished) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": finished.n_tokens,
            "total_tokens": prompt_tokens + finished.n_tokens}


# ---- /v1/models -------------------------------------------------------------------------------
async def list_models(request: Request) -> Response:
    ctx = context_of(request)
    ctx.keys.identify(request)
    info = ctx.loaded_info()
    names = ([info.name] if info else []) + [n for n in ctx.model_names() if not info or n != info.name]
    if "anthropic-version" in request.headers:       # the same path, Anthropic's shape
        data = [{"type": "model", "id": name, "display_name": name, "created_at": "1970-01-01T00:00:00Z"}
                for name in names]
        return JSONResponse({"data": data, "has_more": False, "first_id": names[0] if names else None,
                             "last_id": names[-1] if names else None})
    return JSONResponse({"object": "list", "data": [
        {"id": name, "object": "model", "created": 0, "owned_by": "local",
         "loaded": bool(info and name == info.name)} for name in names]})


# ---- shared by both generation endpoints ------------------------------------------------------
def request_params(ctx: ApiContext, who, body, plan: ToolPlan | None = None):
    info = ctx.loaded_info()
    check_model(body.model, info.name if info else None, ctx.model_names)
    params = build_params(body.model_extra, openai_fields(body), preset=body.preset,
                          preset_store=ctx.preset_store, who=who,
                          max_tokens_limit=ctx.limits.max_new_tokens_limit)
    return output_constraints(params, body.response_format, plan, info, body.model_extra or {})


# ---- /v1/chat/completions ------------------------------------------------------------------------
def chat_messages(messages) -> list[dict]:
    out = []
    for index, message in enumerate(messages):
        role = "system" if message.role == "developer" else message.role
        item = {"role": role, "content": message_text(message.content, f"messages.{index}.content")}
        if message.tool_calls:
            item["tool_calls"] = message.tool_calls
        if message.tool_call_id:
            item["tool_call_id"] = message.tool_call_id
        if message.name:
            item["name"] = message.name
        reasoning = (message.model_extra or {}).get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:       # as llama.cpp and vLLM return it
            item["reasoning_content"] = reasoning
        out.append(item)
    return out


def tool_choice_name(choice) -> str | None:
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict) and choice["function"].get("name"):
        return choice["function"]["name"]
    raise ApiError(400, "tool_choice must be 'auto', 'none', 'required' or "
                   "{'type': 'function', 'function': {'name': ...}}.", param="tool_choice")


async def chat_completions(request: Request) -> Response:
    ctx = context_of(request)
    who = ctx.keys.identify(request)
    body = parse_body(await request.body(), ChatCompletionRequest)
    messages = chat_messages(body.messages)
    template = ctx.template_for(body.chat_template)
    info = ctx.loaded_info()
    functions = [tool.function.model_dump(exclude_none=True) for tool in body.tools or []]
    plan = plan_tools(functions, tool_choice_name(body.tool_choice), template, info.loader if info else None)
    params = request_params(ctx, who, body, plan)
    logprobs = (body.top_logprobs or 0) if body.logprobs else None
    typed = max((m["content"] for m in messages), key=len)
    variables = template_variables(body.model_extra)
    chat = ChatPrompt(messages_for_template(messages), template, plan.template_tools, variables,
                      read_reasoning=partial(read_reply_reasoning, template, variables, body.model_extra))
    generation = await start(ctx.door, who, params, typed=typed, logprobs=logprobs, chat=chat)
    with closing_on_error(generation):
        reply = ChatReply(info.name if info else "", plan, generation, logprobs is not None, generation.reasoning)
        return await _respond(request, body, reply)


async def _respond(request: Request, body: ChatCompletionRequest | CompletionRequest,
                   reply: ChatReply | CompletionReply) -> Response:
    """Both endpoints answer the same way: server-sent chunks if the body asks to stream
    (with a usage chunk at the end if stream_options asks for one), else one JSON body."""
    if body.stream:
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        events = await opened(reply.generation, request.receive)
        return EventStream(reply.stream(events, include_usage), reply.generation)
    return JSONResponse(await reply.whole(request.receive))


class ChatReply:
    def __init__(self, model: str, plan: ToolPlan, generation: Generation, logprobs: bool,
                 reasoning: ReplyReasoning = ReplyReasoning()):
        self.id, self.created, self.model = _id("chatcmpl-"), int(time.time()), model
        self.plan, self.generation, self.logprobs = plan, generation, logprobs
        self.reasoning = reasoning      # the reply's reasoning goes out as reasoning_content

    def _envelope(self, obj: str, **fields) -> dict:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model, **fields}

    async def whole(self, receive) -> dict:
        text, finished, entries = await collect(self.generation, receive)
        split = self.reasoning.split(text)
        text = split.answer
        content, calls = parse_tool_calls(text, self.plan.names) if self.plan.parse else (text, [])
        message = {"role": "assistant", "content": content if (content or not calls) else None}
        if split.reasoning:
            message["reasoning_content"] = split.reasoning
        if calls:
            message["tool_calls"] = [_openai_call(call) for call in calls]
        choice = {"index": 0, "message": message, "finish_reason": finish_reason(finished, calls),
                  "logprobs": chat_logprobs(entries) if self.logprobs else None}
        return self._envelope("chat.completion", choices=[choice],
                              usage=usage(self.generation.prompt_tokens, finished))

    def _chunk(self, delta: dict, reason: str | None = None, logprobs: dict | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": reason, "logprobs": logprobs}
        return sse.data(self._envelope("chat.completion.chunk", choices=[choice]))

    async def stream(self, events, include_usage: bool):
        """The chunks of each event in one write (the role chunk with the first text)."""
        calls_stream = ToolCallStream(self.plan.names) if self.plan.parse else None
        thinking = self.reasoning.stream()
        taken = 0
        out = [self._chunk({"role": "assistant", "content": ""})]
        async for event in events:
            if isinstance(event, TextDelta):
                thought, said = thinking.feed(event.text) if thinking else ("", event.text)
                if thought:
                    out.append(self._chunk({"reasoning_content": thought}))
                text = calls_stream.feed(said) if calls_stream else said
                entries = self.generation.request.token_logprobs[taken:] if self.logprobs else []
                taken += len(entries)
                if text or entries:
                    out.append(self._chunk({"content": text}, logprobs=chat_logprobs(entries) if entries else None))
                if out:
                    yield "".join(out)
                    out = []
                continue
            if event.reason == "error":
                out.append(_error_chunk(event))
                break
            thought, said = thinking.finish() if thinking else ("", "")
            if thought:
                out.append(self._chunk({"reasoning_content": thought}))
            said = calls_stream.feed(said) if calls_stream else said
            rest, calls = calls_stream.finish() if calls_stream else ("", [])
            if said + rest:
                out.append(self._chunk({"content": said + rest}))
            for index, call in enumerate(calls):
                out.append(self._chunk({"tool_calls": [dict(_openai_call(call), index=index)]}))
            out.append(self._chunk({}, finish_reason(event, calls)))
            if include_usage:
                out.append(sse.data(self._envelope("chat.completion.chunk", choices=[],
                                                   usage=usage(self.generation.prompt_tokens, event))))
        yield "".join(out) + sse.DONE


def _error_chunk(finished: Finished) -> str:
    """A stream that fails after its status line was sent can only say so in a chunk."""
    return sse.data(openai_body(ApiError(500, finished.error or "The generation failed.")))


def _openai_call(call) -> dict:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments_json}}


# ---- /v1/completions ---------------------------------------------------------------------------------
async def completions(request: Request) -> Response:
    ctx = context_of(request)
    who = ctx.keys.identify(request)
    body = parse_body(await request.body(), CompletionRequest)
    if body.suffix:
        raise ApiError(400, "suffix is not supported.", param="suffix")
    if body.echo and not isinstance(body.prompt, str):
        raise ApiError(400, "echo needs the prompt as text.", param="echo")
    params = request_params(ctx, who, body)
    info = ctx.loaded_info()
    typed = body.prompt if isinstance(body.prompt, str) else ""
    generation = await start(ctx.door, who, params, typed=typed, prompt=body.prompt, logprobs=body.logprobs)
    with closing_on_error(generation):
        return await _respond(request, body, CompletionReply(info.name if info else "", generation, body))


class CompletionReply:
    def __init__(self, model: str, generation: Generation, body: CompletionRequest):
        self.id, self.created, self.model = _id("cmpl-"), int(time.time()), model
        self.generation = generation
        self.echo = body.prompt if body.echo else ""
        self.logprobs = body.logprobs is not None

    def _envelope(self, choices: list, **fields) -> dict:
        return {"id": self.id, "object": "text_completion", "created": self.created, "model": self.model,
                "choices": choices, **fields}

    async def whole(self, receive) -> dict:
        text, finished, entries = await collect(self.generation, receive)
        choice = {"index": 0, "text": self.echo + text, "finish_reason": finish_reason(finished, []),
                  "logprobs": completion_logprobs(entries, len(self.echo)) if self.logprobs else None}
        return self._envelope([choice], usage=usage(self.generation.prompt_tokens, finished))

    async def stream(self, events, include_usage: bool):
        """The chunks of each event in one write (the echo with the first text)."""
        taken, offset = 0, len(self.echo)
        out = [sse.data(self._envelope([{"index": 0, "text": self.echo, "finish_reason": None, "logprobs": None}]))
               ] if self.echo else []
        async for event in events:
            if isinstance(event, TextDelta):
                entries = self.generation.request.token_logprobs[taken:] if self.logprobs else []
                taken += len(entries)
                logprobs = completion_logprobs(entries, offset) if self.logprobs else None
                offset += len(event.text)
                out.append(sse.data(self._envelope([{"index": 0, "text": event.text, "finish_reason": None,
                                                     "logprobs": logprobs}])))
                yield "".join(out)
                out = []
                continue
            if event.reason == "error":
                out.append(_error_chunk(event))
                break
            out.append(sse.data(self._envelope([{"index": 0, "text": "", "finish_reason": finish_reason(event, []),
                                                 "logprobs": None}])))
            if include_usage:
                out.append(sse.data(self._envelope([], usage=usage(self.generation.prompt_tokens, event))))
        yield "".join(out) + sse.DONE
