"""Template worker processes, kept alive and reused, replaced when one is killed.

A chat turn renders its prompt through an idle worker (a round trip over a pipe, about a
millisecond); the server thread waits on the pipe without the GIL, so a runaway template
slows nobody else. A worker that does not answer in time is killed and a fresh one is
started in the background for the next render.

Workers are started as fresh interpreters (`python -m modules.template_worker`), never by
forking the server: the server has threads and native libraries (llama.cpp) loaded, which
a forked child cannot safely carry. Exec'ing a clean interpreter is what multiprocessing's
'spawn' does, without spawn's re-import of the server's __main__ module in every worker.
"""
from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path

from modules.template_worker import ENCODING, READY

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 60.0     # a fresh interpreter importing jinja2, on a busy shared box
GRACE = 1.0              # the worker stops a render itself at the limit; this is the kill after


class WorkerGone(Exception):
    """The worker died (a crash, or the kernel ended it) or sent something unreadable."""


class TemplateWorker:
    """One worker process and the two pipe ends the server talks to it through."""

    def __init__(self, memory_mb: int):
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "modules.template_worker",
                 str(to_worker_r), str(from_worker_w), str(memory_mb)],
                cwd=ROOT, pass_fds=(to_worker_r, from_worker_w),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        finally:
            os.close(to_worker_r)
            os.close(from_worker_w)
        self._send = Connection(to_worker_w, readable=False)
        self._receive = Connection(from_worker_r, writable=False)
        try:
            ready = self._receive.poll(START_TIMEOUT) and self._receive.recv_bytes() == READY
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.kill()
            raise WorkerGone("the template renderer did not start.")

    def call(self, payload: bytes, timeout: float, max_reply_bytes: int) -> dict | None:
        """The worker's reply to `payload` (a JSON request, see modules/template_worker.py),
        or None when it has not answered within `timeout` seconds."""
        try:
            self._send.send_bytes(payload)
            if not self._receive.poll(timeout):
                return None
            return json.loads(self._receive.recv_bytes(max_reply_bytes).decode(**ENCODING))
        except (EOFError, OSError, ValueError) as exc:
            raise WorkerGone(str(exc) or type(exc).__name__) from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.close_pipes()

    def close_pipes(self) -> None:
        """Closing its input makes an idle worker exit by itself."""
        for connection in (getattr(self, "_send", None), getattr(self, "_receive", None)):
            if connection is not None and not connection.closed:
                connection.close()


class TemplateWorkers:
    """Up to `max_workers` workers, so that one slow template does not make others wait."""

    def __init__(self, memory_mb: int = 1024, max_workers: int = 4):
        self.memory_mb = memory_mb
        self.max_workers = max_workers
        self._idle: list[TemplateWorker] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_workers)
        self._closed = False

    def call(self, payload: bytes, timeout: float, max_reply_bytes: int) -> dict | None:
        """The reply, or None when the worker ran past `timeout` (+ GRACE) and was killed.
        Raises WorkerGone when the worker died on its own."""
        with self._slots:
            worker = self._take_idle() or TemplateWorker(self.memory_mb)
            try:
                reply = worker.call(payload, timeout + GRACE, max_reply_bytes)
            except WorkerGone:
                worker.kill()
                self.warm_up_in_background()
                raise
            if reply is None:
                worker.kill()
                self.warm_up_in_background()
                return None
            self._give_back(worker)
            return reply

    def warm_up_in_background(self) -> None:
        """Starts a worker for the next render if none is idle, so it does not wait for
        the start."""
        threading.Thread(target=self._warm_up, name="template-worker-start", daemon=True).start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.close_pipes()
            try:
                worker.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                worker.kill()

    def _warm_up(self) -> None:
        with self._lock:
            if self._closed or self._idle:
                return
        try:
            self._give_back(TemplateWorker(self.memory_mb))
        except WorkerGone:
            pass                     # the next render starts one itself and reports failures

    def _take_idle(self) -> TemplateWorker | None:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.process.poll() is None:
                    return worker
                worker.kill()
        return None

    def _give_back(self, worker: TemplateWorker) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self.max_workers:
                self._idle.append(worker)
                return
        worker.close_pipes()
        worker.process.wait()


def close_at_exit(workers: TemplateWorkers) -> None:
    atexit.register(workers.close)
