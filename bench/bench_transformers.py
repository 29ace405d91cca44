"""Our engine (scheduler + Transformers/GPTQ backend) against bare `model.generate`
doing the same greedy work, in one run, for the fp16 folder and the GPTQ folder.

Both get the same prompt and produce the same number of new tokens (end of text banned
in ours, min_new_tokens in generate), on the same loaded model object, so only the
decoding loop differs. Runs alternate between the two so machine noise hits both alike;
each round's pair gives one ratio, reported as their median and range, beside the median
speeds of the same rounds (bench/pairs.py). A last column measures four users at
once. The test models are built first if missing.

    .venv/bin/python bench/bench_transformers.py [--tokens 64] [--rounds 7]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from loaders import load_backend  # noqa: E402
from loaders.settings import LoadSettings, available_cores  # noqa: E402
from modules.scheduler import Scheduler  # noqa: E402
from bench.pairs import machine_load, paired, targets  # noqa: E402
from bench.timing import greedy_tokens, time_request  # noqa: E402
from tools.make_test_models import ensure_test_models  # noqa: E402

PROMPT = ("<|im_start|>user\nWrite a long story about a lighthouse keeper and a storm."
          "<|im_end|>\n<|im_start|>assistant\n")


def run_generate(backend, n_tokens: int) -> float:
    """Seconds for bare generate to produce n_tokens greedily (prompt included)."""
    ids = torch.tensor([backend.tokenize(PROMPT, add_bos=True)], device=backend.device)
    start = time.perf_counter()
    with torch.inference_mode():
        out = backend.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                     max_new_tokens=n_tokens, min_new_tokens=n_tokens)
    seconds = time.perf_counter() - start
    assert out.shape[1] - ids.shape[1] == n_tokens
    return seconds


def run_engine(scheduler: Scheduler, n_tokens: int) -> tuple[float, float]:
    """(seconds for n_tokens, prompt included; time to first token) through the scheduler."""
    timing = time_request(scheduler, PROMPT, greedy_tokens(n_tokens))
    return timing.end - timing.start, timing.time_to_first_token


def run_engine_users(scheduler: Scheduler, n_tokens: int, users: int) -> float:
    """Aggregate tokens/s of `users` identical requests decoded together."""
    params = greedy_tokens(n_tokens)
    start = time.perf_counter()
    requests = [scheduler.submit(PROMPT, params) for _ in range(users)]
    total = sum(r.result().n_tokens for r in requests)
    return total / (time.perf_counter() - start)


def bench(name: str, loader: str, folder: Path, n_tokens: int, rounds: int) -> dict:
    backend = load_backend(loader, str(folder), LoadSettings(ctx_size=2048, parallel=4))
    scheduler = Scheduler(backend)
    run_generate(backend, 8), run_engine(scheduler, 8)        # warm-up
    bare, ours, ttft = [], [], []
    for round_ in range(rounds):
        # Alternate which goes first so that neither always follows the other.
        if round_ % 2:
            seconds, first = run_engine(scheduler, n_tokens)
            bare.append(run_generate(backend, n_tokens))
        else:
            bare.append(run_generate(backend, n_tokens))
            seconds, first = run_engine(scheduler, n_tokens)
        ours.append(seconds)
        ttft.append(first)
    users = max(run_engine_users(scheduler, n_tokens, 4) for _ in range(3))
    # On a shared machine other work comes in bursts of seconds: the two runs of one round
    # see about the same load, so the ratio is the median of the per-round ratios.
    bare_speeds = [n_tokens / s for s in bare]
    ours_speeds = [n_tokens / s for s in ours]
    row = {"name": name, "dtype": backend.info.details["dtype"], "users4": users,
           "bare": statistics.median(bare_speeds), "ours": statistics.median(ours_speeds),
           "ratio": paired(ours_speeds, bare_speeds), "ttft": statistics.median(ttft),
           "rounds": list(zip(bare_speeds, ours_speeds))}
    scheduler.swap_backend(None, "benchmark finished")
    backend.unload()
    print(f"{name}: generate {row['bare']:.1f} tok/s, ours {row['ours']:.1f} tok/s", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "transformers.md"))
    args = parser.parse_args()

    folders = ensure_test_models()
    load_before = machine_load()
    rows = [bench("Transformers (fp16 folder)", "Transformers", folders["fp16"], args.tokens, args.rounds),
            bench("GPTQ 4-bit, group 64", "GPTQ", folders["gptq"], args.tokens, args.rounds)]
    lines = [
        "# Transformers and GPTQ: our engine against bare model.generate",
        "",
        f"SmolLM2-135M-Instruct, greedy, {args.tokens} new tokens (prompt processing included), "
        f"CPU, {available_cores()} cores, torch threads {torch.get_num_threads()}, "
        f"{args.rounds} rounds (bench/bench_transformers.py). Speeds are medians over the rounds; "
        f"the ratio is the median of the per-round ratios, with their range. Machine: "
        f"{load_before} before the run, {machine_load()} after.",
        "",
        "| model | weights in memory | model.generate tok/s | our engine tok/s | ratio ours/generate | our time to first token | ours, 4 users together (aggregate tok/s, best of 3) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['name']} | {r['dtype']} | {r['bare']:.1f} | {r['ours']:.1f} | "
                     f"**{r['ratio'].describe()}** | {r['ttft'] * 1000:.0f} ms | {r['users4']:.1f} |")
    lines += ["", "Rounds (tok/s, model.generate / ours):", ""]
    for r in rows:
        lines.append(f"- {r['name']}: " + ", ".join(f"{b:.1f} / {o:.1f}" for b, o in r["rounds"]))
    lines += ["", targets([(f"{r['name']}: ratio at least 0.95", r["ratio"].median >= 0.95) for r in rows],
                          "this file"),
              "The last column is what the box serves when four users generate at once: their next",
              "tokens are computed in one batched model call; no target is set for it.", ""]
    report = "\n".join(lines)
    print(report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
