"""Time to first token of a chat's new turn after a history, with the prompt cache and without.

One run loads the default model twice (reuse on, reuse off) and, for each history length,
sends the chat's previous turn (which leaves the history in the cache, as a real chat would),
then times the new turn's first token. The same new message without any history is the reference. A second part
times a streaming reply's gaps between tokens while a newcomer's 2,000-token prompt is read,
with the measured chunk size and with whole 512-token batches (the behaviour before).

    .venv/bin/python bench/bench_prompt_cache.py            # writes bench/results/prompt_cache.md
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loaders.llama_cpp_loader import load                       # noqa: E402
from loaders.settings import LoadSettings                       # noqa: E402
from modules.chat_prompt import build_chat_prompt               # noqa: E402
from modules.params import GenerationParams                     # noqa: E402
from modules.scheduler import Scheduler                         # noqa: E402

MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
NEW_MESSAGE = "Tell me the capital of France."
FILLER = ("I am planning a long trip through Europe next summer and keep notes about every city, "
          "its museums, its food, the trains between them and what each ticket costs. ")


def history(target_tokens: int, count) -> list[dict]:
    """User/assistant turns of about 250 tokens each until the history holds target_tokens."""
    messages = [{"role": "system", "content": "You are a helpful assistant."}]
    turn = 0
    while count(messages) < target_tokens:
        turn += 1
        messages.append({"role": "user", "content": f"Note {turn}: " + FILLER * 4})
        messages.append({"role": "assistant", "content": f"Noted, note {turn}. " + FILLER})
    return messages


def prompt_tokens(backend, messages) -> list[int]:
    info = backend.info
    built = build_chat_prompt(messages, info.chat_template, lambda text: 0, info.n_ctx,
                              bos_token=info.bos_token, eos_token=info.eos_token)
    return backend.tokenize(built.text, add_bos=info.add_bos_default)


def first_token_seconds(scheduler, tokens, owner) -> float:
    return turn(scheduler, tokens, owner, 8).time_to_first_token


def turn(scheduler, tokens, owner, max_new_tokens: int):
    request = scheduler.submit(tokens, GenerationParams(do_sample=False, max_new_tokens=max_new_tokens), owner)
    finished = request.result()
    assert finished.ok, finished.error
    return finished


def time_new_turn(scheduler, length: int, owner: str, previous_turn: bool) -> tuple[int, int, float]:
    """Sends the history's last turn (as the chat did one turn ago: that leaves the history
    in the cache, where a cache keeps it) and keeps the model's reply in the history, then
    times the new message.
    Returns (history tokens, prompt tokens, seconds to the first token)."""
    backend = scheduler.backend
    messages = history(length, lambda m: len(prompt_tokens(backend, m))) if length else \
        [{"role": "system", "content": "You are a helpful assistant."}]
    if previous_turn and length:
        # The chat stores the model's own reply, as the Chat tab does.
        reply = turn(scheduler, prompt_tokens(backend, messages[:-1]), owner, 32).text
        messages[-1] = {"role": "assistant", "content": reply}
    final = prompt_tokens(backend, messages + [{"role": "user", "content": NEW_MESSAGE}])
    history_tokens = len(prompt_tokens(backend, messages)) if length else 0
    return history_tokens, len(final), first_token_seconds(scheduler, final, owner)


def ttft_table(lengths, repeats: int) -> list[tuple]:
    rows = []
    for reuse in (True, False):
        backend = load(str(MODEL), LoadSettings(ctx_size=max(lengths) + 512, parallel=2, cache_reuse=reuse),
                       lambda f, m: None)
        scheduler = Scheduler(backend)
        try:
            # The first pass of a fresh context pays for buffers and page faults: not measured.
            first_token_seconds(scheduler, backend.tokenize("Hello there.", add_bos=False), "warm-up")
            for length in lengths:
                times = []
                for i in range(repeats):
                    history_tokens, total, seconds = time_new_turn(scheduler, length, f"user-{length}-{i}", reuse)
                    times.append(seconds)
                rows.append((reuse, length, history_tokens, statistics.median(times), times,
                             backend.cache_counters.summary(), total))
                print(rows[-1][:4], flush=True)
        finally:
            scheduler.swap_backend(None, "benchmark over")
            backend.unload()
    return rows


def stream_gaps(chunk: int) -> dict:
    """A reply streams; a newcomer's 2,000-token prompt arrives: the reply's gaps between tokens."""
    backend = load(str(MODEL), LoadSettings(ctx_size=2560, parallel=2, prefill_chunk=chunk), lambda f, m: None)
    try:
        params = GenerationParams(do_sample=False, max_new_tokens=4000, ban_eos_token=True)
        streaming = backend.open_sequence_for("a", backend.tokenize("Once upon a time", add_bos=False), params)
        feeds, usual, during = {}, [], []

        def step() -> float:
            started = time.perf_counter()
            ready = backend.forward(feeds)
            feeds.clear()
            if streaming in ready:
                token = backend.sample(streaming)
                streaming.generated.append(token)
                feeds[streaming] = token
            return time.perf_counter() - started
        for _ in range(60):
            usual.append(step())
        story = " ".join(f"Line {i}: the waves came in and went out again." for i in range(200))
        newcomer = backend.open_sequence_for("b", backend.tokenize(story, add_bos=False)[:2000], params)
        started = time.perf_counter()
        while newcomer.n_past < len(newcomer.prompt_tokens):
            during.append(step())
        return {"chunk": chunk or f"measured ({backend._budget.describe()})", "usual": statistics.median(usual[10:]),
                "median": statistics.median(during), "p90": sorted(during)[int(0.9 * len(during))],
                "longest": max(during), "passes": len(during), "prompt_seconds": time.perf_counter() - started}
    finally:
        backend.unload()


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} (1 / 5 / 15 min) on {os.cpu_count()} cores"


def write(rows, gaps, loads, path: Path) -> None:
    lines = ["# Prompt cache: time to first token of a new turn", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, shared with other work. "
             f"Model: {MODEL.name}, greedy, 2 slots, llama.cpp through the low-level API.", "",
             f"Load before: {loads[0]}. Load after: {loads[1]}.", "",
             "The chat's previous turn is sent first (as one turn ago), then the new message "
             f"\"{NEW_MESSAGE}\" is timed; median of the repeats. Reference: the same message with no history.", "",
             "| history tokens | prompt tokens | cache on: first token (s) | cache off: first token (s) "
             "| cache on / no history, cache off |",
             "| ---: | ---: | ---: | ---: | ---: |"]
    on = {r[1]: r for r in rows if r[0]}
    off = {r[1]: r for r in rows if not r[0]}
    base = off[0][3]
    for length in sorted(on):
        lines.append(f"| {on[length][2]:,} | {on[length][6]:,} | {on[length][3]:.3f} | {off[length][3]:.3f} "
                     f"| {on[length][3] / base:.2f} |")
    lines += ["", "All measurements (seconds): " + "; ".join(
        f"{'on' if r[0] else 'off'} {r[2]}: {', '.join(f'{t:.3f}' for t in r[4])}" for r in rows),
        "", f"Cache counters at the end (cache on): {[r for r in rows if r[0]][-1][5]}", "",
        "## A streaming reply while a newcomer's 2,000-token prompt is read", "",
        "| prompt chunk while others stream | reply's usual gap (ms) | median gap (ms) | 90th pct (ms) | "
        "longest (ms) | passes | prompt read in (s) |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for g in gaps:
        lines.append(f"| {g['chunk']} | {g['usual'] * 1000:.1f} | {g['median'] * 1000:.1f} | {g['p90'] * 1000:.1f} | "
                     f"{g['longest'] * 1000:.1f} | {g['passes']} | {g['prompt_seconds']:.1f} |")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", default="0,500,2000,6000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "prompt_cache.md"))
    args = parser.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]
    before = load_line()
    rows = ttft_table(lengths, args.repeats)
    gaps = [stream_gaps(0), stream_gaps(512)]
    write(rows, gaps, (before, load_line()), Path(args.out))
    print(Path(args.out).read_text())


if __name__ == "__main__":
    main()
