"""What the HTTP API costs over calling the engine in-process, and how it shares.

1. In-process: the default model in this process, one chat request through the front door
   (chat template, scheduler), its events read as they come.
2. The same request streamed to the official `openai` client from server.py --api on
   loopback (same model, same flags): tokens/s and time to first token, and their ratio to 1.
3. 1 and then 4 concurrent API clients, each with its own key (its own allowance), streaming
   at once: aggregate tokens/s.

Every request is greedy with end-of-text banned, so each writes exactly --tokens tokens.
In-process and API runs alternate, never overlapping. Results go to bench/results/api.md.

    .venv/bin/python bench/bench_api.py [--tokens 128] [--runs 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
QUESTION = "Write a story about a lighthouse keeper."
PARALLEL, CTX = 4, 2048
KEYS = [f"bench-key-{i}-0123456789" for i in range(4)]


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
        self.who = Identity(owner="bench", user="bench", address="127.0.0.1", is_admin=False)

    def run(self, tokens: int) -> tuple[float, float]:
        """(time to first token, tokens/s) of one chat request."""
        from modules.events import TextDelta
        from modules.params import GenerationParams
        params = GenerationParams(do_sample=False, max_new_tokens=tokens, ban_eos_token=True)
        start = time.perf_counter()
        with self.door.admit(self.who, params) as admission:
            prompt = admission.chat_prompt([{"role": "user", "content": QUESTION}], self.backend.info.chat_template)
            request = admission.submit(prompt.text)
            first = None
            for event in request.events():
                if isinstance(event, TextDelta) and first is None:
                    first = time.perf_counter()
        end = time.perf_counter()
        assert request.finished.n_tokens == tokens, request.finished
        return first - start, (tokens - 1) / (end - first)

    def close(self) -> None:
        self.scheduler.swap_backend(None, "benchmark over")
        self.backend.unload()


def api_stream(client, tokens: int) -> tuple[float, float, int]:
    """(time to first token, tokens/s, tokens) of one streamed chat completion."""
    start = time.perf_counter()
    first, count = None, 0
    stream = client.chat.completions.create(
        model=MODEL.name, messages=[{"role": "user", "content": QUESTION}], max_tokens=tokens, temperature=0,
        stream=True, stream_options={"include_usage": True}, extra_body={"ban_eos_token": True})
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content and first is None:
            first = time.perf_counter()
        if chunk.usage:
            count = chunk.usage.completion_tokens
    end = time.perf_counter()
    assert count == tokens, count
    return first - start, (tokens - 1) / (end - first), count


def compare(tokens: int, runs: int) -> tuple[list, list, dict]:
    """In-process and API runs taken in turn, so a change in the machine's other load
    touches both alike; then the concurrency runs."""
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
            api_stream(clients[0], 8)                       # warm up both template workers
            local.run(8)
            in_process, api = [], []
            for _ in range(runs):
                in_process.append(local.run(tokens))
                api.append(api_stream(clients[0], tokens)[:2])
            local.close()
            concurrency = {n: _concurrent(clients[:n], tokens) for n in (1, 4)}
        finally:
            server.stop()
    return in_process, api, concurrency


def _concurrent(clients, tokens: int) -> dict:
    results = [None] * len(clients)

    def one(i):
        results[i] = api_stream(clients[i], tokens)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(clients))]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {"aggregate": sum(r[2] for r in results) / wall, "per_stream": [r[1] for r in results]}


def report(tokens: int, runs: int, local: list, api: list, concurrency: dict) -> str:
    def median(values):
        return statistics.median(values)
    local_ttft, local_tps = median([r[0] for r in local]), median([r[1] for r in local])
    api_ttft, api_tps = median([r[0] for r in api]), median([r[1] for r in api])
    one, four = concurrency[1]["aggregate"], concurrency[4]["aggregate"]
    return "\n".join([
        "# API overhead and sharing (bench/bench_api.py)", "",
        f"Default model ({MODEL.name}), llama.cpp, --parallel {PARALLEL}, --ctx-size {CTX}; one chat request, "
        f"greedy, {tokens} tokens, median of {runs} runs. The machine's other load at the time affects both parts.",
        "", "| | time to first token | tokens/s |", "| --- | --- | --- |",
        f"| engine in-process (front door) | {local_ttft * 1000:.1f} ms | {local_tps:.1f} |",
        f"| streamed to the openai client over /v1 | {api_ttft * 1000:.1f} ms | {api_tps:.1f} |",
        f"| API / in-process | +{(api_ttft - local_ttft) * 1000:.1f} ms | {api_tps / local_tps:.3f} |",
        "", "Concurrent API clients, each with its own key, streaming at once:", "",
        "| clients | aggregate tokens/s | per stream |", "| --- | --- | --- |",
        f"| 1 | {one:.1f} | {concurrency[1]['per_stream'][0]:.1f} |",
        f"| 4 | {four:.1f} | {', '.join(f'{s:.1f}' for s in concurrency[4]['per_stream'])} |",
        f"| 4 / 1 | {four / one:.2f} | |", ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "api.md")
    args = parser.parse_args()
    local, api, concurrency = compare(args.tokens, args.runs)
    text = report(args.tokens, args.runs, local, api, concurrency)
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
