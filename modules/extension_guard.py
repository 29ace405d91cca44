"""Runs an extension's function with a time limit, so a hook that hangs holds nobody.

Python cannot stop a thread, so the call runs in a fresh daemon thread and the caller
waits at most `seconds` for it; past that the caller goes on without the result and the
thread is abandoned (reported, so the extension is not called again while it is still
stuck). The caller's context variables (whose request this is) go with the call.
"""
from __future__ import annotations

import contextvars
import queue
import threading
from typing import Any, Callable, Iterator


class HookTimeout(TimeoutError):
    """The call ran past its time limit; `thread` is still running it."""

    def __init__(self, seconds: float, thread: threading.Thread):
        super().__init__(f"did not return within {seconds:g} s")
        self.thread = thread


def call_with_time_limit(fn: Callable, args: tuple, kwargs: dict, seconds: float, name: str) -> Any:
    context = contextvars.copy_context()
    box: dict[str, Any] = {}
    done = threading.Event()

    def run():
        try:
            box["value"] = context.run(fn, *args, **kwargs)
        except BaseException as exc:      # SystemExit from an extension must not end the server
            box["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=run, name=f"extension {name}", daemon=True)
    thread.start()
    if not done.wait(seconds):
        raise HookTimeout(seconds, thread)
    if "error" in box:
        raise box["error"]
    return box["value"]


_END = object()


def iterate_with_time_limit(make_iterator: Callable[[], Iterator], seconds: float, name: str) -> Iterator:
    """Items of the iterator make_iterator() returns, produced in a worker thread; each must
    come within `seconds` of the previous one, else HookTimeout. Closing this generator
    early asks the worker to stop after its current item."""
    context = contextvars.copy_context()
    items: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def run():
        try:
            for item in context.run(make_iterator):
                if stop.is_set():
                    return
                items.put(("item", item))
            items.put(("end", _END))
        except BaseException as exc:
            items.put(("error", exc))

    thread = threading.Thread(target=run, name=f"extension {name}", daemon=True)
    thread.start()
    try:
        while True:
            try:
                kind, value = items.get(timeout=seconds)
            except queue.Empty:
                raise HookTimeout(seconds, thread) from None
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        try:                       # let a worker blocked on put() see the stop flag
            items.get_nowait()
        except queue.Empty:
            pass
