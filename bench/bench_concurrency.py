"""Several users at once through the scheduler, in one run.

One stream alone, then 4 and 8 concurrent streams (greedy, end-of-text banned so every
stream writes the same number of tokens), then a newcomer's time to first token while 3
streams are running. Reports aggregate tokens/s, the ratio to one stream, the spread of
per-stream speeds, and the newcomer's wait.

    .venv/bin/python bench/bench_concurrency.py                       # llama.cpp, default model
    .venv/bin/python bench/bench_concurrency.py --loader Transformers --model PATH
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.pairs import machine_load, targets  # noqa: E402
from loaders import load_backend  # noqa: E402
from loaders.settings import LoadSettings  # noqa: E402
from modules.events import TextDelta  # noqa: E402
from modules.params import GenerationParams  # noqa: E402
from modules.scheduler import Scheduler  # noqa: E402
from bench.timing import greedy_tokens, time_request  # noqa: E402

DEFAULT_MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPTS = ["Write a story about a lighthouse.", "Explain how rain forms.", "Describe a busy market.",
           "Write a poem about autumn.", "Tell me about the moon.", "Describe a train journey.",
           "Write a letter to a friend.", "Explain how bread is made."]


def prompt(i: int) -> str:
    return f"<|im_start|>user\n{PROMPTS[i % len(PROMPTS)]}<|im_end|>\n<|im_start|>assistant\n"


def run_streams(scheduler: Scheduler, count: int, tokens: int) -> dict:
    params = greedy_tokens(tokens)
    results = [None] * count

    def one(i):
        timing = time_request(scheduler, prompt(i), params, owner=f"user{i}")
        results[i] = (timing.finished.n_tokens, timing.start, timing.first, timing.end)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    speeds = [n / (end - start) for n, start, first, end in results]
    return {"aggregate": sum(r[0] for r in results) / wall, "speeds": speeds,
            "spread": (max(speeds) - min(speeds)) / statistics.mean(speeds)}


def newcomer_wait(scheduler: Scheduler, tokens: int) -> float:
    """Time to first token of a new request while 3 long streams are running."""
    long_params = GenerationParams(do_sample=False, max_new_tokens=tokens * 4, ban_eos_token=True)
    running = [scheduler.submit(prompt(i), long_params, owner=f"busy{i}") for i in range(3)]
    for request in running:                      # wait until all three are decoding
        next(e for e in request.events() if isinstance(e, TextDelta))
    start = time.perf_counter()
    newcomer = scheduler.submit(prompt(5), GenerationParams(do_sample=False, max_new_tokens=8), owner="new")
    next(e for e in newcomer.events() if isinstance(e, TextDelta))
    wait = time.perf_counter() - start
    newcomer.cancel()
    for request in running:
        request.cancel()
        request.result()
    newcomer.result()
    return wait


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loader", default="llama.cpp")
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    load_before = machine_load()
    backend = load_backend(args.loader, args.model, LoadSettings(ctx_size=1024, parallel=8), None)
    scheduler = Scheduler(backend)
    run_streams(scheduler, 2, 8)                                   # warm-up
    rows = []
    alone = run_streams(scheduler, 1, args.tokens)
    for count in (1, 4, 8):
        result = alone if count == 1 else run_streams(scheduler, count, args.tokens)
        rows.append((count, result))
    wait = newcomer_wait(scheduler, args.tokens)
    backend.unload()

    name = Path(args.model).name
    lines = [f"# Concurrent streams: {args.loader}, {name}", "",
             f"Greedy, {args.tokens} tokens per stream, one run (bench/bench_concurrency.py).", "",
             "| streams | aggregate tokens/s | vs one stream | per-stream tokens/s (min-max) | spread |",
             "| --- | --- | --- | --- | --- |"]
    for count, result in rows:
        lines.append(f"| {count} | {result['aggregate']:.1f} | {result['aggregate'] / alone['aggregate']:.2f}x | "
                     f"{min(result['speeds']):.1f}-{max(result['speeds']):.1f} | {result['spread'] * 100:.0f}% |")
    lines += ["", f"Newcomer's time to first token while 3 streams run: **{wait * 1000:.0f} ms**.", ""]
    four = dict(rows)[4]
    if args.loader == "llama.cpp":
        lines.append(targets([("4 streams at least 1.4x one stream", four["aggregate"] / alone["aggregate"] >= 1.4),
                              ("per-stream speeds within 25% of each other", four["spread"] <= 0.25),
                              ("newcomer under 1 s", wait < 1.0)], "this file (llama.cpp, 2 cores)"))
    else:
        lines.append(targets([("newcomer under 1 s", wait < 1.0)], f"this file ({args.loader})")
                     + " The speed-up targets are set for llama.cpp only.")
    lines += ["", f"Machine: {load_before} before the run, {machine_load()} after.", ""]
    report = "\n".join(lines)
    print(report)
    out = Path(args.out or ROOT / "bench" / "results" / f"concurrency_{args.loader.replace('.', '_').lower()}.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)


if __name__ == "__main__":
    main()
