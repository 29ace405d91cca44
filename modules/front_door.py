"""The one way into the engine.

Every generation (Chat, Default, Notebook, the Tokens and Probabilities views, and the
API and extensions) enters here, never through the scheduler or the backend directly:

    with door.admit(who, params, text=typed) as admission:     # raises a LimitExceeded
        for update in admission.stream_chat(messages, template, control): ...

`admit` knows who is asking (an Identity derived on the server, modules/roles.py), takes
one of that person's slots under one set of limits (requests in flight, input length,
the max_new_tokens ceiling, the sizes of stop strings, grammar, logit bias and DRY
breakers; modules/limits.py), and checks that a model is loaded. Work on the backend from
the caller's thread (tokenising, reading token pieces) holds the scheduler's backend
lease, which unloading waits for, so an unload can never free a vocabulary in use.
The slot is freed when the `with` block ends, including when the browser goes away and
Gradio closes the generator.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Iterator

from modules.chat_prompt import BuiltPrompt, PromptTooLong, build_chat_prompt
from modules.chat_session import ReplyUpdate, SessionControl, failure_update, follow_request
from modules.extension_generation import (LeasedTokenizer, custom_reply_updates, modified_prompt,
                                          token_counter, tokenizer_in_context)
from modules.extension_state import read_state, tgw_state
from modules.limits import Limits
from modules.params import GenerationParams
from modules.request_limits import LimitExceeded, RequestLimits
from modules.roles import Identity
from modules.scheduler import Scheduler
from modules.template_render import TemplateError

__all__ = ["FrontDoor", "Admission", "Candidate", "NoModelLoaded", "ParamsTooLarge", "GenerationError",
           "ReplyUpdate", "SessionControl", "check_params"]

NO_MODEL = "No model is loaded. An admin can load one in the Model tab."


class NoModelLoaded(LimitExceeded):
    """Nothing to generate with; the message says who can change that."""


class ParamsTooLarge(LimitExceeded):
    """A setting bigger than this server allows one request."""


class GenerationError(RuntimeError):
    """A request that ended in an error the person must be told (prompt too long...)."""


@dataclass
class Candidate:
    token: int
    text: str             # how the token reads, for the chart label
    probability: float


def check_params(params: GenerationParams, limits: Limits) -> tuple[GenerationParams, list[str]]:
    """The settings a request may run with, and notices for the user. Sizes that would
    make one request costly for everyone are refused; max_new_tokens above the ceiling
    is lowered to it, with a notice (presets from elsewhere often ask for more)."""
    stops = params.custom_stopping_strings
    if len(stops) > limits.max_stop_strings:
        raise ParamsTooLarge(f"{len(stops)} stop strings: this server allows {limits.max_stop_strings}.")
    longest = max((len(s) for s in stops), default=0)
    if longest > limits.max_stop_string_chars:
        raise ParamsTooLarge(f"A stop string of {longest:,} characters: this server allows "
                             f"{limits.max_stop_string_chars}.")
    if len(params.grammar_string) > limits.max_grammar_chars:
        raise ParamsTooLarge(f"The grammar is {len(params.grammar_string):,} characters: this server allows "
                             f"{limits.max_grammar_chars:,}.")
    biases = len(params.logit_bias) + len(params.banned_token_ids())
    if biases > limits.max_logit_bias:
        raise ParamsTooLarge(f"{biases:,} logit_bias and banned-token entries: this server allows "
                             f"{limits.max_logit_bias:,}.")
    breakers = params.dry_breakers()
    if len(breakers) > limits.max_dry_breakers:
        raise ParamsTooLarge(f"{len(breakers)} DRY sequence breakers: this server allows "
                             f"{limits.max_dry_breakers}.")
    notices = []
    if params.max_new_tokens > limits.max_new_tokens_limit:
        notices.append(f"max_new_tokens {params.max_new_tokens:,} was lowered to this server's limit, "
                       f"{limits.max_new_tokens_limit:,}.")
        params = params.replace(max_new_tokens=limits.max_new_tokens_limit)
    return params, notices


class FrontDoor:
    def __init__(self, scheduler: Scheduler, limits: Limits | None = None, extensions=None):
        self.scheduler = scheduler
        self.limits = limits or Limits()
        self.extensions = extensions     # modules.extensions.ExtensionRegistry, or None
        self._slots = RequestLimits(self.limits.max_requests_per_user, self.limits.max_input_chars)
        self._address_slots = RequestLimits(self.limits.max_requests_per_address, self.limits.max_input_chars,
                                            who="Browsers at your address have")

    @contextmanager
    def admit(self, who: Identity, params: GenerationParams, *, text: str = "") -> Iterator["Admission"]:
        """Checks the request and holds one of the person's slots for the block.
        `text` is what the person typed or pasted (checked against max_input_chars)."""
        self._slots.check_input(text or "")
        checked, notices = check_params(params, self.limits)
        if self.scheduler.backend is None:
            raise NoModelLoaded(NO_MODEL)
        with self._slots.slot(who.limits_key), self._address_slot(who):
            yield Admission(self, who, checked, notices)

    def _address_slot(self, who: Identity):
        key = who.address_key
        return self._address_slots.slot(key) if key else nullcontext()

    def hooks(self, who: Identity):
        """The extension hooks of one request by `who` (modules/extension_runner.py), or
        None when no extension is on."""
        if self.extensions is None or not self.extensions.enabled():
            return None
        runner = self.extensions.runner(who)
        runner.tgw_tokenizer = LeasedTokenizer(self.scheduler)
        return runner

    def limits_check_input(self, text: str) -> None:
        """Raises InputTooLong when `text` is longer than one message may be."""
        self._slots.check_input(text or "")

    def active(self, who: Identity) -> int:
        """Requests the person has queued or running (all tabs together)."""
        return self._slots.active(who.limits_key)

    # ---- one-call forms for callers that need nothing between admitting and streaming ----
    def stream_completion(self, who: Identity, text: str, params: GenerationParams,
                          control: SessionControl | None = None, *, typed: str | None = None):
        """Raw completion (Notebook, Default). Refusals come as a failed update."""
        try:
            with self.admit(who, params, text=text if typed is None else typed) as admission:
                yield from admission.stream_completion(text, control)
        except LimitExceeded as exc:
            yield failure_update(str(exc))

    def token_view(self, who: Identity, text: str, params: GenerationParams) -> list[tuple[int, str]]:
        with self.admit(who, params, text=text) as admission:
            return admission.token_view(text)

    def next_token_probabilities(self, who: Identity, text: str, params: GenerationParams,
                                 count: int = 10) -> list[Candidate]:
        with self.admit(who, params, text=text) as admission:
            return admission.next_token_probabilities(text, count)


class Admission:
    """One admitted request's rights: valid only inside FrontDoor.admit's block."""

    def __init__(self, door: FrontDoor, who: Identity, params: GenerationParams, notices: list[str]):
        self._door = door
        self._scheduler = door.scheduler
        self.who = who
        self.params = params
        self.notices = notices
        self.hooks = door.hooks(who)      # extension hooks for this request, or None
        self.state: dict | None = None    # the extensions' TGW `state` (the chat sets its own)
        self.template_variables: dict = {}   # further chat template variables (enable_thinking)

    def replace_params(self, params: GenerationParams) -> None:
        """Settings an extension changed, checked against the same limits as the person's."""
        self.params, notices = check_params(params, self._door.limits)
        self.notices += notices

    def extension_state(self) -> dict:
        if self.state is None:
            self.state = tgw_state(self.params)
        return self.state

    def _submit(self, prompt, *, candidates: int = 0):
        return self._scheduler.submit(prompt, self.params, owner=self.who.limits_key, candidates=candidates)

    def submit(self, prompt: str | list[int], *, logprobs: int | None = None):
        """The engine request itself, for callers that read its events one by one (the API)."""
        return self._scheduler.submit(prompt, self.params, owner=self.who.limits_key, logprobs=logprobs)

    def chat_prompt(self, messages: list[dict], template: str | None, *, continue_last: bool = False,
                    tools: list | None = None) -> BuiltPrompt:
        """The prompt stream_chat submits (`tools` reach the template as `tools`).
        Raises NoModelLoaded, PromptTooLong or TemplateError."""
        params = self.params
        with self._scheduler.leased_backend() as backend:
            if backend is None:
                raise NoModelLoaded(NO_MODEL)
            info = backend.info
            reserve = min(params.max_new_tokens, info.n_ctx // 2)
            return build_chat_prompt(     # no template chosen: the model's own (a fallback if it has none)
                messages, template or info.chat_template, token_counter(self.hooks, backend, params.add_bos_token),
                info.n_ctx - reserve, bos_token=info.bos_token, eos_token=info.eos_token,
                continue_last=continue_last, tools=tools, variables=self.template_variables)

    def stream_chat(self, messages: list[dict], template: str | None, control: SessionControl | None = None,
                    *, continue_last: bool = False, tools: list | None = None) -> Iterator[ReplyUpdate]:
        """messages end with the user's message (or, with continue_last, a partial reply);
        the oldest turns are left out when the conversation does not fit the context."""
        try:
            prompt = self.chat_prompt(messages, template, continue_last=continue_last, tools=tools)
        except (NoModelLoaded, PromptTooLong, TemplateError) as exc:
            yield failure_update(str(exc))
            return
        self.notices += [prompt.notice] if prompt.notice else []
        yield from self.stream_prompt(prompt.text, control, is_chat=True)

    def stream_prompt(self, text: str, control: SessionControl | None = None, *, is_chat: bool = False,
                      original: str | None = None) -> Iterator[ReplyUpdate]:
        """Generates after a finished prompt: from an extension's custom_generate_reply when
        one is on, else from the model, with tokenizer_modifier applied to its tokens."""
        hooks = self.hooks
        if hooks is None:
            yield from follow_request(self._submit(text), control, self.notices)
            return
        state, stops = self.extension_state(), list(self.params.custom_stopping_strings)
        items = hooks.custom_reply(text, text if original is None else original, state, stops, is_chat)
        if items is not None:
            first = next(items, None)
            if first is not None:     # else it failed before writing anything: the model answers
                yield from custom_reply_updates(_chain(first, items), stops, control, self.notices, hooks)
                return
        with self._scheduler.leased_backend() as backend:
            if backend is None:
                yield failure_update(NO_MODEL)
                return
            ids = (backend.tokenize(text, add_bos=self.params.add_bos_token)
                   if hooks.has("tokenizer_modifier") else None)
        with tokenizer_in_context(self._scheduler):
            prompt = modified_prompt(hooks, state, text, ids)
        yield from follow_request(self._submit(prompt), control, self.notices + hooks.take_notices())

    def stream_completion(self, text: str, control: SessionControl | None = None) -> Iterator[ReplyUpdate]:
        """Continues `text`; each update's text is the continuation so far. Extensions'
        state_modifier and input_modifier see the request first, output_modifier the
        finished continuation (is_chat=False, as in TGW's Default and Notebook tabs)."""
        hooks = self.hooks
        if hooks is None:
            yield from follow_request(self._submit(text or ""), control, self.notices)
            return
        self.state = hooks.state(self.extension_state())
        result = read_state(self.state, self.params, "instruct", None)
        self.notices += result.notices
        if result.params != self.params:
            self.replace_params(result.params)
        prompt = hooks.input(text or "", self.state, is_chat=False)
        for update in self.stream_prompt(prompt, control, original=text or ""):
            if update.finished is not None and update.finished.ok:
                update.text = hooks.output(update.text, self.state, is_chat=False)
                update.notices = update.notices + hooks.take_notices()
            yield update

    def token_view(self, text: str) -> list[tuple[int, str]]:
        """(id, text) of each token the model reads for `text`, exactly as a generation
        would tokenize it (beginning-of-text token and special markers included)."""
        with self._scheduler.leased_backend() as backend:
            if backend is None:
                raise NoModelLoaded(NO_MODEL)
            tokens = backend.tokenize(text or "", add_bos=self.params.add_bos_token)
            return [(token, backend.token_text(token)) for token in tokens]

    def tokenize(self, text: str) -> list[int]:
        """The token ids a generation would read for `text`."""
        with self._scheduler.leased_backend() as backend:
            if backend is None:
                raise NoModelLoaded(NO_MODEL)
            return backend.tokenize(text or "", add_bos=self.params.add_bos_token)

    def detokenize(self, tokens: list[int]) -> str:
        """Token ids back to text; ValueError for an id outside the vocabulary."""
        with self._scheduler.leased_backend() as backend:
            if backend is None:
                raise NoModelLoaded(NO_MODEL)
            bad = [t for t in tokens if not 0 <= t < backend.vocab_size]
            if bad:
                raise ValueError(f"Token id {bad[0]} is outside the vocabulary (0-{backend.vocab_size - 1}).")
            data = b"".join(backend.token_bytes(t, self.params.skip_special_tokens) for t in tokens)
            return data.decode("utf-8", errors="replace")

    def next_token_probabilities(self, text: str, count: int = 10) -> list[Candidate]:
        """The likeliest next tokens after `text` under these sampler settings. Goes through
        the scheduler like any request, so it never races a generation for the model."""
        request = self._submit(text or "", candidates=count)
        try:
            finished = request.result()
        finally:
            request.cancel()
        if finished.reason == "error":
            raise GenerationError(finished.error)
        with self._scheduler.leased_backend() as backend:
            if backend is None:
                raise NoModelLoaded(NO_MODEL)
            return [Candidate(token, backend.token_text(token), probability)
                    for token, probability in (request.candidates or [])]


def _chain(first, rest):
    yield first
    yield from rest
