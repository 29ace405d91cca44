"""What the HTTP API costs over calling the engine in-process, and whether it keeps the
engine's batching, measured in paired, interleaved rounds.

Each round runs, in turn: one chat request through the front door in this process
(in-process: chat template, tokenising, scheduler, events read as they come), the same
request streamed to the official `openai` client from server.py --api on loopback (same
model, same flags), then 4 concurrent requests each way (4 in-process owners, 4 API keys).
The order within a round alternates, so load from other work on this shared machine
touches both sides of a pair alike; each round gives one ratio, reported as the median and
range of the rounds (bench/pairs.py).

- Single stream: time to first token (request sent -> first reply text) and tokens/s
  (first text -> last), API against in-process.
- 4 clients against 1: aggregate tokens/s (all tokens / wall time from the first request
  to the last token) of 4 concurrent requests over that of 1, through the API next to the
  same ratio in-process; "kept" is the API's ratio over the engine's.

Every request is greedy with end-of-text banned, so each writes exactly --tokens tokens.

Wall-clock speeds on a shared 2-core machine swing with other people's work, so a last part
measures the streaming path's own cost in CPU time, which load moves far less: the API's
stream code (Generation.events, ChatReply, EventStream under uvicorn) fed by a thread that
adds a token to a real engine Request every --path-interval seconds (no model), read by the
openai client in a subprocess; CPU microseconds per token on each side, and chunks sent.
Results go to bench/results/api.md.

    .venv/bin/python bench/bench_api.py [--tokens 128] [--rounds 8] [--path-tokens 300]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.pairs import machine_load, paired, targets  # noqa: E402

MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
QUESTION = "Write a story about a lighthouse keeper."
PARALLEL, CTX, CLIENTS = 4, 2048, 4
KEYS = [f"bench-key-{i}-0123456789" for i in range(CLIENTS)]
TTFT_TARGET_MS, TPS_TARGET, KEPT_TARGET = 20.0, 0.95, 0.95


@dataclass
class Stream:
    start: float
    first: float
    end: float
    tokens: int
    chunks: int = 0            # API: content chunks the client received

    @property
    def ttft(self) -> float:
        return self.first - self.start

    @property
    def tokens_per_second(self) -> float:
        return (self.tokens - 1) / (self.end - self.first)


def aggregate(streams: list[Stream]) -> float:
    """All tokens over the wall time from the first request to the last token."""
    return sum(s.tokens for s in streams) / (max(s.end for s in streams) - min(s.start for s in streams))


def concurrently(run, count: int) -> list[Stream]:
    results: list[Stream | BaseException | None] = [None] * count

    def one(i):
        try:
            results[i] = run(i)
        except BaseException as exc:      # reported below, not lost in the thread
            results[i] = exc
    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


class InProcess:
    """The default model loaded in this process, asked through the front door."""

    def __init__(self):
        from loaders import load_backend
        from loaders.settings import LoadSettings
        from modules.front_door import FrontDoor
        from modules.roles import Identity
        from modules.scheduler import Scheduler
        self.backend = load_backend("llama.cpp", str(MODEL), LoadSettings(ctx_size=CTX, parallel=PARALLEL))
        self.scheduler = Scheduler(self.backend)
        self.door = FrontDoor(self.scheduler)
        self.who = [Identity(owner=f"bench-{i}", user=f"bench-{i}", address="127.0.0.1", is_admin=False)
                    for i in range(CLIENTS)]

    def run(self, tokens: int, client: int = 0) -> Stream:
        """One chat request: from admission (template, tokenising) to the Finished event."""
        from modules.events import TextDelta
        from modules.params import GenerationParams
        params = GenerationParams(do_sample=False, max_new_tokens=tokens, ban_eos_token=True)
        start = time.perf_counter()
        with self.door.admit(self.who[client], params) as admission:
            prompt = admission.chat_prompt([{"role": "user", "content": QUESTION}], self.backend.info.chat_template)
            request = admission.submit(prompt.text)
            first = None
            for event in request.events():
                if isinstance(event, TextDelta) and first is None:
                    first = time.perf_counter()
        end = time.perf_counter()
        assert request.finished.n_tokens == tokens, request.finished
        return Stream(start, first, end, tokens)

    def close(self) -> None:
        self.scheduler.swap_backend(None, "benchmark over")
        self.backend.unload()


def api_stream(client, tokens: int) -> Stream:
    """One streamed chat completion, read by the openai client."""
    start = time.perf_counter()
    first, count, chunks = None, 0, 0
    stream = client.chat.completions.create(
        model=MODEL.name, messages=[{"role": "user", "content": QUESTION}], max_tokens=tokens, temperature=0,
        stream=True, stream_options={"include_usage": True}, extra_body={"ban_eos_token": True})
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            chunks += 1
            if first is None:
                first = time.perf_counter()
        if chunk.usage:
            count = chunk.usage.completion_tokens
    end = time.perf_counter()
    assert count == tokens, count
    return Stream(start, first, end, count, chunks)


@dataclass
class Round:
    local: Stream
    api: Stream
    local_many: list[Stream]
    api_many: list[Stream]
    load: float                 # 1-minute load average as the round ended


def rounds(tokens: int, count: int) -> tuple[list[Round], str, str]:
    import os

    import openai
    from tests.browser.conftest import ServerProcess
    local = InProcess()
    with tempfile.TemporaryDirectory() as folder:
        server = ServerProcess(Path(folder), extra_args=["--api", "--api-key", ",".join(KEYS),
                                                        "--parallel", str(PARALLEL)], ctx_size=CTX)
        try:
            server.wait_ready()
            clients = [openai.OpenAI(base_url=server.url + "v1", api_key=key, max_retries=0, timeout=600)
                       for key in KEYS]
            for client in clients:                      # connections open, template workers warm
                api_stream(client, 8)
            local.run(8)
            load_before, done = machine_load(), []
            for index in range(count):
                one_local = lambda: local.run(tokens)                                      # noqa: E731
                one_api = lambda: api_stream(clients[0], tokens)                           # noqa: E731
                many_local = lambda: concurrently(lambda i: local.run(tokens, i), CLIENTS)  # noqa: E731
                many_api = lambda: concurrently(lambda i: api_stream(clients[i], tokens), CLIENTS)  # noqa: E731
                if index % 2 == 0:
                    a, b, c, d = one_local(), one_api(), many_local(), many_api()
                else:
                    b, a, d, c = one_api(), one_local(), many_api(), many_local()
                done.append(Round(a, b, c, d, os.getloadavg()[0]))
                print(f"round {index + 1}: in-process {a.tokens_per_second:.1f} tok/s, API {b.tokens_per_second:.1f}; "
                      f"ttft {a.ttft * 1000:.1f} / {b.ttft * 1000:.1f} ms; 4 streams {aggregate(c):.1f} / "
                      f"{aggregate(d):.1f} tok/s; load {done[-1].load:.1f}", flush=True)
            load_after = machine_load()
        finally:
            server.stop()
            local.close()
    return done, load_before, load_after


PATH_RUNS = 5


def path_cost(tokens: int, interval: float) -> dict:
    """The streaming path alone: median CPU microseconds per token here (server side, the
    token source included) and in the client's process, and chunks per stream."""
    import resource
    import subprocess

    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Route

    from modules.api.generation import EventStream, Generation, opened
    from modules.api.openai_routes import ChatReply
    from modules.api.tool_plan import ToolPlan
    from modules.params import GenerationParams
    from modules.request import Request

    costs = []                  # server CPU seconds of each measured stream

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    class Measured(EventStream):
        async def __call__(self, scope, receive, send) -> None:
            await super().__call__(scope, receive, send)
            if self.started is not None:
                costs.append(cpu() - self.started)

    def feed(request: Request, tokens: int) -> None:
        for index in range(tokens):
            request.add_token(index, b" word")
            time.sleep(interval)
        request.finish("length")

    async def chat(http_request):
        started = cpu()
        count = json.loads(await http_request.body())["max_tokens"]
        request = Request("", GenerationParams(max_new_tokens=count))
        threading.Thread(target=feed, args=(request, count), daemon=True).start()
        generation = Generation(request, 1)
        events = await opened(generation, http_request.receive)
        response = Measured(ChatReply(MODEL.name, ToolPlan(), generation, False).stream(events, True), generation)
        response.started = started if count == tokens else None      # not the client's warm-up
        return response

    from tests.browser.conftest import free_port
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])]),
                                           host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    runs = []
    try:
        for _ in range(PATH_RUNS):
            done = subprocess.run([sys.executable, __file__, "--path-client", f"http://127.0.0.1:{port}/v1",
                                   "--path-tokens", str(tokens)], capture_output=True, text=True, check=True)
            client_cpu, chunks = done.stdout.split()
            runs.append((costs[-1] / tokens * 1e6, float(client_cpu) / tokens * 1e6, int(chunks)))
    finally:
        server.should_exit = True
    return {"server": [r[0] for r in runs], "client": [r[1] for r in runs], "chunks": [float(r[2]) for r in runs]}


def path_client(url: str, tokens: int) -> None:
    """One stream read by the openai client after a short warm-up one (the client's first
    request builds its types); prints its CPU seconds and content chunks."""
    import openai
    client = openai.OpenAI(base_url=url, api_key="none", max_retries=0)
    for count in (2, tokens):
        started, chunks = time.process_time(), 0
        for chunk in client.chat.completions.create(model=MODEL.name, messages=[{"role": "user", "content": "x"}],
                                                    max_tokens=count, stream=True):
            chunks += bool(chunk.choices and chunk.choices[0].delta.content)
    print(time.process_time() - started, chunks)


def spread(values: list[float], unit: str = "", digits: int = 1, signed: bool = False) -> str:
    form = f"{'+' if signed else ''}.{digits}f"
    return (f"{statistics.median(values):{form}}{unit} "
            f"(range {min(values):{form}} to {max(values):{form}})")


def report(tokens: int, done: list[Round], load_before: str, load_after: str, path: dict,
           path_tokens: int, path_interval: float) -> str:
    tps = paired([r.api.tokens_per_second for r in done], [r.local.tokens_per_second for r in done])
    added = [(r.api.ttft - r.local.ttft) * 1000 for r in done]
    engine_gain = [aggregate(r.local_many) / aggregate([r.local]) for r in done]
    api_gain = [aggregate(r.api_many) / aggregate([r.api]) for r in done]
    kept = paired(api_gain, engine_gain)
    chunks = [s.chunks for r in done for s in [r.api, *r.api_many]]
    return "\n".join([
        "# API overhead and sharing (bench/bench_api.py)", "",
        f"Default model ({MODEL.name}), llama.cpp, --parallel {PARALLEL}, --ctx-size {CTX}; chat requests, greedy, "
        f"end-of-text banned, {tokens} tokens each. {len(done)} paired rounds; in each, in-process and API runs take "
        f"turns (order alternating between rounds), never overlapping. In-process: the same request through the "
        f"front door in the benchmark's own process (template, tokenising, scheduler; no HTTP). API: server.py --api "
        f"on loopback, read by the official `openai` client in the benchmark's process.", "",
        f"Machine: {load_before} at the start, {load_after} at the end.", "",
        "## One stream", "",
        "| | time to first token | tokens/s |", "| --- | --- | --- |",
        f"| engine in-process (front door) | {spread([r.local.ttft * 1000 for r in done], ' ms')} | "
        f"{spread([r.local.tokens_per_second for r in done])} |",
        f"| streamed to the openai client over /v1 | {spread([r.api.ttft * 1000 for r in done], ' ms')} | "
        f"{spread([r.api.tokens_per_second for r in done])} |",
        f"| API - in-process, per round | {spread(added, ' ms', signed=True)} | |",
        f"| API / in-process, per round | | {tps.describe()} |", "",
        f"Content chunks per API stream: {spread([float(c) for c in chunks])} for {tokens} tokens.", "",
        f"## {CLIENTS} concurrent clients against 1", "",
        f"Aggregate tokens/s (all tokens over the wall time from the first request to the last token); "
        f"{CLIENTS} in-process owners, {CLIENTS} API keys (each its own allowance).", "",
        f"| | 1 stream | {CLIENTS} streams | {CLIENTS} / 1 |", "| --- | --- | --- | --- |",
        f"| engine in-process | {spread([aggregate([r.local]) for r in done])} | "
        f"{spread([aggregate(r.local_many) for r in done])} | {spread(engine_gain, digits=2)} |",
        f"| API | {spread([aggregate([r.api]) for r in done])} | "
        f"{spread([aggregate(r.api_many) for r in done])} | {spread(api_gain, digits=2)} |", "",
        f"API's {CLIENTS}/1 over the engine's {CLIENTS}/1, per round: {kept.describe()}.", "",
        "| round | in-process tok/s | API tok/s | ratio | TTFT added | engine 4/1 | API 4/1 | load (1 min) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *[f"| {i + 1} | {r.local.tokens_per_second:.1f} | {r.api.tokens_per_second:.1f} | {t:.3f} | {a:+.1f} ms | "
          f"{e:.2f} | {g:.2f} | {r.load:.1f} |"
          for i, (r, t, a, e, g) in enumerate(zip(done, tps.ratios, added, engine_gain, api_gain))], "",
        targets([(f"tokens/s through the API at least {TPS_TARGET} of in-process", tps.median >= TPS_TARGET),
                 (f"under {TTFT_TARGET_MS:.0f} ms added to the time to first token",
                  statistics.median(added) < TTFT_TARGET_MS),
                 (f"the engine's {CLIENTS}/1 batching ratio kept through the API (at least {KEPT_TARGET} of it)",
                  kept.median >= KEPT_TARGET)], "this file"), "",
        "## The streaming path's own cost (CPU time)", "",
        f"{path_tokens} tokens, one every {path_interval * 1000:g} ms ({1 / path_interval:.0f} tokens/s) from a thread "
        f"feeding a real engine Request (no model), through the API's stream code under uvicorn to the openai client "
        f"in another process; median of {PATH_RUNS} streams. The server side includes the token source.", "",
        "| CPU per token, server side | CPU per token, client | chunks per stream |", "| --- | --- | --- |",
        f"| {spread(path['server'], ' µs', 0)} | {spread(path['client'], ' µs', 0)} | {spread(path['chunks'], '', 0)} |",
        ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--path-tokens", type=int, default=300)
    parser.add_argument("--path-interval", type=float, default=0.007, help="seconds between tokens (0.007: 143/s)")
    parser.add_argument("--path-client", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "api.md")
    args = parser.parse_args()
    if args.path_client:
        return path_client(args.path_client, args.path_tokens)
    done, load_before, load_after = rounds(args.tokens, args.rounds)
    path = path_cost(args.path_tokens, args.path_interval)
    text = report(args.tokens, done, load_before, load_after, path, args.path_tokens, args.path_interval)
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
