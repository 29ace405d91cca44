"""One API generation: admitted by the front door, its prompt built, submitted to the
scheduler, its events read without holding the event loop, and cancelled the moment the
client goes away.

The person's slot is taken before anything is sent (so a refusal is a proper 4xx) and held
until close(), which every route calls however the response ends. The blocking work before
the first token (reading how the template reasons, rendering it, tokenising under the backend
lease, submitting) is one trip to the thread pool: on a busy machine each hop waits for a
core. The events of the engine request are read by one small thread per request and handed
to the event loop, so a long queue wait never holds a pool thread.

Text is streamed at most every STREAM_INTERVAL: the first delta goes out at once, later ones
that arrive within the interval go out together. On loopback most of a chunk's cost is the
socket write and the client's parse of it (in the openai client, a few hundred microseconds of
CPU each side), taken from the cores the model decodes on.
"""
from __future__ import annotations

import asyncio
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from queue import Empty
from typing import AsyncIterator, Callable

from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from modules.api.errors import ApiError, as_api_error
from modules.events import Finished, TextDelta
from modules.front_door import FrontDoor
from modules.params import GenerationParams
from modules.roles import Identity

# At most one text chunk a stream every 20 ms (50 a second): finer than a screen shows text,
# and at this model's 100+ tokens/s it sends about a third of the chunks, each costing a
# socket write here and a parse in the client on the cores the model needs.
STREAM_INTERVAL = 0.02


@dataclass
class ChatPrompt:
    messages: list[dict]
    template: str | None
    tools: list | None = None
    variables: dict | None = None        # further template variables (enable_thinking, ...)
    read_reasoning: Callable[[], object] | None = None   # blocking: run in the same pool trip


@dataclass
class Generation:
    request: object                      # modules.request.Request
    prompt_tokens: int
    notices: list[str] = field(default_factory=list)
    _stack: ExitStack = field(default_factory=ExitStack)
    reasoning: object = None             # what ChatPrompt.read_reasoning returned

    def cancel(self) -> None:
        self.request.cancel()

    def close(self) -> None:
        """Cancels the engine request if it still runs and frees the person's slot."""
        self.request.cancel()
        self._stack.close()

    async def events(self, interval: float = STREAM_INTERVAL) -> AsyncIterator[TextDelta | Finished]:
        """The request's text deltas and its Finished event (queue places are left out).
        A delta comes `interval` after the one before at the earliest, holding all the text
        that arrived meanwhile; the Finished event comes at once, after any text held."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        def hand_over(event) -> bool:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, event)
                return True
            except RuntimeError:          # the loop is gone (shutting down): stop reading
                self.request.cancel()
                return False

        def pump() -> None:
            # Waits on the request's queue in this thread, so the event loop wakes once a
            # chunk rather than once a token.
            text, n_tokens, due, last = "", 0, None, -interval     # due: when the text held goes out
            while True:
                wait = None if due is None else max(0.0, due - time.monotonic())
                try:
                    event = next(self.request.events(wait), None)
                except Empty:
                    event = TextDelta("", n_tokens)                  # the text held is due
                if event is None:                                    # read to the end already
                    return
                if isinstance(event, TextDelta):
                    text, n_tokens = text + event.text, event.n_tokens
                    due = last + interval if due is None else due
                    if time.monotonic() < due:
                        continue
                elif not isinstance(event, Finished):
                    continue                                         # a queue place
                if text and not hand_over(TextDelta(text, n_tokens)):
                    return
                text, due, last = "", None, time.monotonic()
                if isinstance(event, Finished):
                    hand_over(event)
                    return
        threading.Thread(target=pump, name=f"api-request-{self.request.id}", daemon=True).start()
        while True:
            event = await queue.get()
            yield event
            if isinstance(event, Finished):
                return


async def start(door: FrontDoor, who: Identity, params: GenerationParams, *, typed: str,
                chat: ChatPrompt | None = None, prompt: str | list[int] | None = None,
                logprobs: int | None = None) -> Generation:
    """Admits, builds the prompt and submits, in one trip to the thread pool (none for a
    prompt given as token ids). Raises ApiError for every refusal."""
    if chat is None and isinstance(prompt, list):
        return open_generation(door, who, params, typed=typed, prompt=prompt, logprobs=logprobs)
    task = asyncio.ensure_future(run_in_threadpool(
        lambda: open_generation(door, who, params, typed=typed, chat=chat, prompt=prompt, logprobs=logprobs)))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:        # nobody will close what the pool thread opens: close it then
        task.add_done_callback(lambda done: done.cancelled() or done.exception() or done.result().close())
        raise


def open_generation(door: FrontDoor, who: Identity, params: GenerationParams, *, typed: str,
                    chat: ChatPrompt | None = None, prompt: str | list[int] | None = None,
                    logprobs: int | None = None) -> Generation:
    """start()'s blocking part."""
    stack = ExitStack()
    try:
        admission = stack.enter_context(door.admit(who, params, text=typed))
        reasoning = None
        if chat is not None:
            reasoning = chat.read_reasoning() if chat.read_reasoning else None
            admission.template_variables = dict(chat.variables or {})
            built = admission.chat_prompt(chat.messages, chat.template, tools=chat.tools)
            submitted, n_prompt = built.text, built.n_tokens
        else:
            tokens = prompt if isinstance(prompt, list) else admission.tokenize(prompt)
            check_fits(door, len(tokens))
            submitted, n_prompt = tokens, len(tokens)
        request = admission.submit(submitted, logprobs=logprobs)
    except BaseException as exc:
        stack.close()
        raise as_api_error(exc) if isinstance(exc, Exception) else exc
    return Generation(request, n_prompt, list(admission.notices), stack, reasoning)


def check_fits(door: FrontDoor, n_tokens: int) -> None:
    backend = door.scheduler.backend
    n_ctx = backend.info.n_ctx if backend else None
    if n_tokens == 0:
        raise ApiError(400, "The prompt is empty.", param="prompt")
    if n_ctx is not None and n_tokens >= n_ctx:
        raise ApiError(400, f"The prompt is {n_tokens:,} tokens long but the context holds {n_ctx:,}. "
                       f"Shorten it.", code="context_length_exceeded", param="prompt")


@contextmanager
def closing_on_error(generation: Generation):
    """Closes the generation if building the response fails before the response owns it."""
    try:
        yield generation
    except BaseException:
        generation.close()
        raise


async def until_disconnected(receive) -> None:
    """Returns when the client has gone (the request body has been read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def watch_disconnect(receive, generation: Generation) -> asyncio.Future:
    """A task that cancels the generation when the client leaves; cancel the task when done."""
    watcher = asyncio.ensure_future(until_disconnected(receive))
    watcher.add_done_callback(lambda task: task.cancelled() or generation.cancel())
    return watcher


async def opened(generation: Generation, receive) -> AsyncIterator[TextDelta | Finished]:
    """The events, once the first has come: a request the engine refuses as it opens it (a
    grammar it cannot parse...) becomes an ApiError while a proper status can still be sent."""
    events = generation.events()
    watcher = watch_disconnect(receive, generation)
    try:
        first = await events.__anext__()
    finally:
        watcher.cancel()
    if isinstance(first, Finished):
        error = finish_error(first)
        if error is not None:
            generation.close()
            raise error

    async def chained():
        yield first
        async for event in events:
            yield event
    return chained()


async def collect(generation: Generation, receive) -> tuple[str, Finished, list]:
    """A whole reply for a non-streamed response; the generation is cancelled if the client
    leaves while it waits, and closed in any case. An engine error is raised as ApiError."""
    watcher = watch_disconnect(receive, generation)
    text = ""
    try:
        async for event in generation.events():
            if isinstance(event, TextDelta):
                text += event.text
            else:
                error = finish_error(event)
                if error is not None:
                    raise error
                return text, event, list(generation.request.token_logprobs)
    finally:
        watcher.cancel()
        generation.close()


class EventStream(StreamingResponse):
    """Server-sent events from an async iterator of ready-made `data:` blocks. Watches for
    the client leaving and cancels the generation at once (before its next token), and
    closes it however the stream ends."""
    media_type = "text/event-stream"

    def __init__(self, blocks: AsyncIterator[str], generation: Generation):
        super().__init__(blocks, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.blocks = blocks
        self.generation = generation

    async def __call__(self, scope, receive, send) -> None:
        watcher = watch_disconnect(receive, self.generation)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for block in self.blocks:
                await send({"type": "http.response.body", "body": block.encode(), "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:                 # the client went away mid-write
            pass
        finally:
            watcher.cancel()
            self.generation.close()


def finish_error(finished: Finished) -> ApiError | None:
    """An engine error that ended the request before it wrote anything, as an ApiError."""
    if finished.reason != "error":
        return None
    message = finished.error or "The generation failed."
    if "context holds" in message or "outside the vocabulary" in message or "grammar" in message:
        return ApiError(400, message)
    return ApiError(500, message)
