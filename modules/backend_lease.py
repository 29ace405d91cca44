"""A readers-writer lock around the loaded backend.

Tokenising a long text (the Notebook's Tokens view, a chat prompt being measured) runs
on the caller's thread, while an admin may unload the model at the same moment: freeing
llama.cpp's vocabulary under a running `llama_tokenize` is a use after free that takes
the whole server down. Readers (tokenisers) share the lease; swapping or unloading the
backend takes it alone and waits for the readers to finish. Writers go first once they
wait, so a stream of tokenisers cannot hold an unload off for ever.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager


class BackendLease:
    def __init__(self):
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def shared(self):
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self):
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()
