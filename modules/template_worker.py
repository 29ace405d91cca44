"""The process chat templates render in: `python -m modules.template_worker IN OUT MEMORY_MB`.

A template that runs away in this process cannot hold the server's GIL or eat its memory:
the server waits on a pipe while this process works, and kills it when it overruns.
The process caps its own address space (a template that builds huge strings gets a
MemoryError here, not the server), lowers its priority so a runaway template yields the
CPU to generation, and stops a render itself at the time limit where Python can be
interrupted (SIGALRM), which keeps the process for the next render.

Protocol, one JSON object per message over the pipes (multiprocessing.connection framing):
  -> {"op": "render" | "compile", "source": ..., "variables": {...}, "timeout": s}
  <- {"ok": true, "text": ...}  or  {"ok": false, "message": ..., "lineno": n | null}
The replies are JSON, never pickle: this process runs untrusted code, the server must
not unpickle what it says.
"""
from __future__ import annotations

import json
import math
import os
import resource
import signal
import sys
from multiprocessing.connection import Connection

from modules.template_sandbox import TemplateError, TimeUp, compile_in_sandbox, render_in_sandbox

READY = b'{"ready": true}'
ENCODING = dict(encoding="utf-8", errors="surrogatepass")   # text may hold lone surrogates
OUTPUT_ALLOWANCE = 1_000_000   # characters a template may write beyond twice what it was given
NICENESS = 10      # below generation, without starving a chat turn's render on a busy box


def _on_alarm(signum, frame):
    raise TimeUp()


def _limit_resources(memory_mb: int) -> None:
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        os.nice(NICENESS)
    except OSError:
        pass


def _cpu_backstop(timeout: float) -> None:
    """If the server is gone and a render cannot be interrupted (a long C call), the
    kernel ends this process once it has used `timeout` more seconds of CPU."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(math.ceil(used + timeout)) + 2
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def max_output_chars(request_bytes: int) -> int:
    """A prompt is the conversation plus the template's markup: far more is a template
    multiplying text (or building it up in a loop), which would only fill the server."""
    return 2 * request_bytes + OUTPUT_ALLOWANCE


def handle(request: dict, max_output: int) -> dict:
    timeout = float(request["timeout"])
    signal.setitimer(signal.ITIMER_REAL, timeout)
    _cpu_backstop(timeout)
    try:
        if request["op"] == "compile":
            compile_in_sandbox(request["source"])
            return {"ok": True, "text": ""}
        text = render_in_sandbox(request["source"], request["variables"])
        if len(text) > max_output:
            return {"ok": False, "lineno": None, "message":
                    f"the template wrote {len(text):,} characters; the limit for this "
                    f"conversation is {max_output:,}."}
        return {"ok": True, "text": text}
    except TemplateError as exc:
        return {"ok": False, "message": exc.detail, "lineno": exc.lineno}
    except TimeUp as exc:
        return {"ok": False, "timeout": True, "message": "", "lineno": exc.lineno}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def serve(connection_in: Connection, connection_out: Connection) -> None:
    connection_out.send_bytes(READY)
    while True:
        try:
            payload = connection_in.recv_bytes()
        except EOFError:
            return                      # the server closed the pipe or went away
        try:
            reply = handle(json.loads(payload.decode(**ENCODING)), max_output_chars(len(payload)))
        except TimeUp:                 # the alarm rang just outside the render
            reply = {"ok": False, "timeout": True, "message": "", "lineno": None}
        except MemoryError:
            reply = {"ok": False, "message": "the template needed more memory than a template "
                                             "may use.", "lineno": None}
        connection_out.send_bytes(json.dumps(reply, ensure_ascii=False).encode(**ENCODING))


def main(argv: list[str]) -> None:
    fd_in, fd_out, memory_mb = int(argv[0]), int(argv[1]), int(argv[2])
    _limit_resources(memory_mb)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # Ctrl+C on the server is the server's to handle
    serve(Connection(fd_in, writable=False), Connection(fd_out, readable=False))


if __name__ == "__main__":
    main(sys.argv[1:])
