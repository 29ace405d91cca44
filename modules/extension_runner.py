"""Calls the hooks of one request, for one person, so that no extension can break it.

Each hook runs in a worker thread under the registry's time limit with CURRENT_OWNER set
(the extension's `params` then mean this person's copy). A hook that raises, returns the
wrong type or runs past the limit is logged with the extension's name and the hook,
marked failing in the Extensions tab, told to this person once (a notice, shown escaped
by the UI), and skipped: the request goes on with the value it had before that hook.
An extension with a call still running past the limit is skipped until it returns.
"""
from __future__ import annotations

import copy
import inspect
import logging
import traceback
from typing import Any, Callable, Iterator

from modules.extension_guard import HookTimeout, call_with_time_limit, iterate_with_time_limit
from modules.extension_compat import TOKENIZER
from modules.extension_params import CURRENT_OWNER

log = logging.getLogger("extensions")

_SKIP = object()


class HookRunner:
    def __init__(self, registry, owner: str):
        self.registry = registry
        self.owner = owner
        self.extensions = registry.enabled()        # the same set for the whole request
        self.notices: list[str] = []
        self.tgw_tokenizer = None                   # what modules.text_generation.encode uses

    def has(self, hook: str) -> bool:
        return any(hook in extension.hooks for extension in self.extensions)

    def take_notices(self) -> list[str]:
        notices, self.notices = self.notices, []
        return notices

    # ---- the hooks, as text-generation-webui calls them ------------------------------------------
    def state(self, state: dict) -> dict:
        return self._chain("state_modifier", state, lambda fn, s: fn(copy.deepcopy(s)), _is(dict))

    def history(self, history: dict) -> dict:
        return self._chain("history_modifier", history, lambda fn, h: fn(copy.deepcopy(h)), _is_history)

    def chat_input(self, text: str, visible_text: str, state: dict) -> tuple[str, str]:
        pair = self._chain("chat_input_modifier", (text, visible_text),
                           lambda fn, p: fn(p[0], p[1], state), _is_text_pair)
        return str(pair[0]), str(pair[1])

    def input(self, string: str, state: dict, is_chat: bool = False) -> str:
        return self._text_chain("input_modifier", string, state, is_chat)

    def output(self, string: str, state: dict, is_chat: bool = False) -> str:
        return self._text_chain("output_modifier", string, state, is_chat)

    def bot_prefix(self, string: str, state: dict) -> str:
        return self._text_chain("bot_prefix_modifier", string, state, None)

    def tokenizer(self, state: dict, prompt: str, input_ids, input_embeds):
        return self._chain("tokenizer_modifier", (prompt, input_ids, input_embeds),
                           lambda fn, v: fn(state, v[0], v[1], v[2]), _is_triple)

    def custom_chat_prompt(self, user_input: str, state: dict, **kwargs) -> str | None:
        return self._first("custom_generate_chat_prompt", (user_input, state), kwargs, _is(str))

    def tokenized_length(self, prompt: str) -> int | None:
        return self._first("custom_tokenized_length", (prompt,), {}, _is_count)

    def custom_reply(self, question: str, original_question: str, state: dict, stopping_strings: list,
                     is_chat: bool = False) -> Iterator[str] | None:
        """The first extension's custom_generate_reply as an iterator of the reply so far,
        each item under the time limit; None when no extension replaces the model. A failure
        mid-way ends the iterator there (the text so far stands) with a notice."""
        for extension in self.extensions:
            fn = getattr(extension.module, "custom_generate_reply", None)
            if callable(fn) and not extension.is_stuck():
                return self._reply_items(extension, fn, (question, original_question, state, stopping_strings),
                                         {"is_chat": is_chat})
        return None

    # ---- how hooks are called ------------------------------------------------------------------------
    def _text_chain(self, hook: str, string: str, state: dict, is_chat: bool | None) -> str:
        def call(fn, text):
            args, kwargs = _text_arguments(fn, text, state, is_chat)
            return fn(*args, **kwargs)
        return self._chain(hook, string, call, _is(str))

    def _chain(self, hook: str, value: Any, call: Callable, valid: Callable[[Any], bool]) -> Any:
        for extension in self.extensions:
            fn = getattr(extension.module, hook, None)
            if not callable(fn):
                continue
            result = self._call(extension, hook, lambda: call(fn, value), valid)
            if result is not _SKIP:
                value = result
        return value

    def _first(self, hook: str, args: tuple, kwargs: dict, valid: Callable[[Any], bool]) -> Any:
        for extension in self.extensions:
            fn = getattr(extension.module, hook, None)
            if callable(fn):
                result = self._call(extension, hook, lambda: fn(*args, **kwargs), valid)
                return None if result is _SKIP else result
        return None

    def _call(self, extension, hook: str, thunk: Callable, valid: Callable[[Any], bool]) -> Any:
        if extension.is_stuck():
            self._fail(extension, hook, "skipped: an earlier call is still running past the time limit",
                       log_it=False)
            return _SKIP
        token = CURRENT_OWNER.set(self.owner)
        tokenizer = TOKENIZER.set(self.tgw_tokenizer) if self.tgw_tokenizer is not None else None
        try:
            result = call_with_time_limit(thunk, (), {}, self.registry.timeout, f"{extension.name}.{hook}")
        except HookTimeout as exc:
            extension.stuck.append(exc.thread)
            self._fail(extension, hook, str(exc))
            return _SKIP
        except BaseException as exc:
            self._fail(extension, hook, f"raised {_describe(exc)}", trace=traceback.format_exc())
            return _SKIP
        finally:
            CURRENT_OWNER.reset(token)
            if tokenizer is not None:
                TOKENIZER.reset(tokenizer)
        if not valid(result):
            self._fail(extension, hook, f"returned {_type_name(result)}, which is not what {hook} must return")
            return _SKIP
        self.registry.record_success(extension, hook)
        return result

    def _reply_items(self, extension, fn, args: tuple, kwargs: dict) -> Iterator[str]:
        hook = "custom_generate_reply"
        owner = self.owner

        def make():
            token = CURRENT_OWNER.set(owner)
            try:
                yield from fn(*args, **kwargs)
            finally:
                CURRENT_OWNER.reset(token)
        try:
            for item in iterate_with_time_limit(make, self.registry.timeout, f"{extension.name}.{hook}"):
                if not isinstance(item, str):
                    self._fail(extension, hook, f"yielded {_type_name(item)}, not the reply text")
                    return
                yield item
        except HookTimeout as exc:
            extension.stuck.append(exc.thread)
            self._fail(extension, hook, str(exc))
            return
        except Exception as exc:
            self._fail(extension, hook, f"raised {_describe(exc)}", trace=traceback.format_exc())
            return
        self.registry.record_success(extension, hook)

    def _fail(self, extension, hook: str, problem: str, trace: str = "", log_it: bool = True) -> None:
        if log_it:
            log.error("Extension '%s', hook %s: %s%s", extension.name, hook, problem,
                      f"\n{trace}" if trace else "")
            self.registry.record_failure(extension, hook, problem)
        if self.registry.first_warning(self.owner, extension, hook):
            self.notices.append(f"The extension '{extension.name}' failed in {hook} ({problem}); "
                                f"this reply was made without it. An admin can see it in the Extensions tab.")


def _text_arguments(fn: Callable, text: str, state: dict, is_chat: bool | None) -> tuple[tuple, dict]:
    """TGW's rule for string hooks: pass `state` when the function takes two positional
    parameters, and `is_chat` when it names that parameter, so the old one-argument forms
    (input_modifier(string)) keep working."""
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return (text, state), {}
    count = sum(1 for name in parameters if name != "is_chat")
    args = (text, state) if count >= 2 else (text,)
    kwargs = {"is_chat": bool(is_chat)} if "is_chat" in parameters and is_chat is not None else {}
    return args, kwargs


def _is(kind: type) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, kind)


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_history(value) -> bool:
    return (isinstance(value, dict) and isinstance(value.get("internal"), list)
            and all(isinstance(row, (list, tuple)) and len(row) == 2 for row in value["internal"]))


def _is_text_pair(value) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, str) for v in value)


def _is_triple(value) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 3 and isinstance(value[0], str)


def _type_name(value) -> str:
    return "None" if value is None else type(value).__name__


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__
