"""Our engine (scheduler + Transformers/GPTQ backend) against bare `model.generate`
doing the same greedy work, in one run, for the fp16 folder and the GPTQ folder.

Both get the same prompt and produce the same number of new tokens (end of text banned
in ours, min_new_tokens in generate), on the same loaded model object, so only the
decoding loop differs. Runs alternate between the two so machine noise hits both alike;
medians are reported. The test models are built first if missing.

    .venv/bin/python bench/bench_transformers.py [--tokens 64] [--rounds 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from loaders import load_backend  # noqa: E402
from loaders.settings import LoadSettings, available_cores  # noqa: E402
from modules.events import TextDelta  # noqa: E402
from modules.params import GenerationParams  # noqa: E402
from modules.scheduler import Scheduler  # noqa: E402
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
    params = GenerationParams(do_sample=False, max_new_tokens=n_tokens, ban_eos_token=True)
    start = time.perf_counter()
    request = scheduler.submit(PROMPT, params)
    first = None
    for event in request.events():
        if isinstance(event, TextDelta) and first is None:
            first = time.perf_counter()
    seconds = time.perf_counter() - start
    result = request.finished
    assert result.n_tokens == n_tokens, (result.n_tokens, result.reason, result.error)
    return seconds, first - start


def bench(name: str, loader: str, folder: Path, n_tokens: int, rounds: int) -> dict:
    backend = load_backend(loader, str(folder), LoadSettings(ctx_size=2048, parallel=4))
    scheduler = Scheduler(backend)
    run_generate(backend, 8), run_engine(scheduler, 8)        # warm-up
    bare, ours, ttft = [], [], []
    for _ in range(rounds):
        bare.append(run_generate(backend, n_tokens))
        seconds, first = run_engine(scheduler, n_tokens)
        ours.append(seconds)
        ttft.append(first)
    row = {"name": name, "dtype": backend.info.details["dtype"],
           "bare": n_tokens / statistics.median(bare), "ours": n_tokens / statistics.median(ours),
           "ttft": statistics.median(ttft)}
    scheduler.swap_backend(None, "benchmark finished")
    backend.unload()
    print(f"{name}: generate {row['bare']:.1f} tok/s, ours {row['ours']:.1f} tok/s", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "transformers.md"))
    args = parser.parse_args()

    folders = ensure_test_models()
    rows = [bench("Transformers (fp16 folder)", "Transformers", folders["fp16"], args.tokens, args.rounds),
            bench("GPTQ 4-bit, group 64", "GPTQ", folders["gptq"], args.tokens, args.rounds)]
    lines = [
        "# Transformers and GPTQ: our engine against bare model.generate",
        "",
        f"SmolLM2-135M-Instruct, greedy, {args.tokens} new tokens (prompt processing included), "
        f"CPU, {available_cores()} cores, torch threads {torch.get_num_threads()}, "
        f"median of {args.rounds} alternating rounds (bench/bench_transformers.py).",
        "",
        "| model | weights in memory | model.generate tok/s | our engine tok/s | ratio | our time to first token |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['name']} | {r['dtype']} | {r['bare']:.1f} | {r['ours']:.1f} | "
                     f"**{r['ours'] / r['bare']:.3f}** | {r['ttft'] * 1000:.0f} ms |")
    lines += ["", "Target: ratio at least 0.95.", ""]
    report = "\n".join(lines)
    print(report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
