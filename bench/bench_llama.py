"""Our engine against a bare llama_decode loop doing the same greedy work, in one run.

Both decode the same prompt for the same number of tokens (end-of-text banned in both,
so the counts match), with the same threads, on the default model, each in a process of
its own. Runs alternate between the two so that machine noise hits both alike; each
round's pair gives one ratio, reported as their median and range (bench/pairs.py).

    .venv/bin/python bench/bench_llama.py [--tokens 256] [--rounds 5]
"""
from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import llama_cpp as ll  # noqa: E402

from loaders.llama_cpp_loader import _init_llama_backend, load  # noqa: E402
from loaders.settings import LoadSettings, available_cores  # noqa: E402
from modules.scheduler import Scheduler  # noqa: E402
from bench.pairs import machine_load, paired, targets  # noqa: E402
from bench.timing import greedy_tokens, time_request  # noqa: E402

MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = ("<|im_start|>user\nWrite a long story about a lighthouse keeper and a storm."
          "<|im_end|>\n<|im_start|>assistant\n")


class BareLoop:
    """The least work llama.cpp needs for greedy decoding of one sequence."""

    def __init__(self, ctx_size: int, threads: int):
        params = ll.llama_model_default_params()
        self.model = ll.llama_model_load_from_file(str(MODEL).encode(), params)
        self.vocab = ll.llama_model_get_vocab(self.model)
        cparams = ll.llama_context_default_params()
        cparams.n_ctx = ctx_size
        cparams.n_batch = cparams.n_ubatch = 512
        cparams.n_threads = cparams.n_threads_batch = threads
        cparams.no_perf = True
        self.ctx = ll.llama_init_from_model(self.model, cparams)
        self.batch = ll.llama_batch_init(512, 0, 1)
        n_vocab = ll.llama_vocab_n_tokens(self.vocab)
        ends = [t for t in range(n_vocab) if ll.llama_vocab_is_eog(self.vocab, t)]
        self.bias = (ll.llama_logit_bias * len(ends))(*[ll.llama_logit_bias(t, float("-inf")) for t in ends])
        self.n_vocab = n_vocab

    def run(self, n_tokens: int) -> tuple[float, float]:
        """Returns (time to first token, tokens/s after the first)."""
        ll.llama_memory_clear(ll.llama_get_memory(self.ctx), True)
        chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_logit_bias(self.n_vocab, len(self.bias), self.bias))
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_greedy())
        start = time.perf_counter()
        data = PROMPT.encode()
        buffer = (ll.llama_token * (len(data) + 8))()
        n_prompt = ll.llama_tokenize(self.vocab, data, len(data), buffer, len(data) + 8, False, True)
        self._fill(list(buffer[:n_prompt]), 0)
        ll.llama_decode(self.ctx, self.batch)
        pos = n_prompt
        piece = ctypes.create_string_buffer(64)
        token = ll.llama_sampler_sample(chain, self.ctx, -1)
        ll.llama_token_to_piece(self.vocab, token, piece, 64, 0, False)
        first = time.perf_counter()
        for _ in range(n_tokens - 1):
            self._fill([token], pos)
            pos += 1
            ll.llama_decode(self.ctx, self.batch)
            token = ll.llama_sampler_sample(chain, self.ctx, -1)
            ll.llama_token_to_piece(self.vocab, token, piece, 64, 0, False)
        end = time.perf_counter()
        ll.llama_sampler_free(chain)
        return first - start, (n_tokens - 1) / (end - first)

    def _fill(self, tokens: list[int], pos: int) -> None:
        for i, token in enumerate(tokens):
            self.batch.token[i] = token
            self.batch.pos[i] = pos + i
            self.batch.n_seq_id[i] = 1
            self.batch.seq_id[i][0] = 0
            self.batch.logits[i] = 1 if i == len(tokens) - 1 else 0
        self.batch.n_tokens = len(tokens)


def run_engine(scheduler: Scheduler, n_tokens: int) -> tuple[float, float]:
    """(time to first token, tokens/s after the first) through the scheduler."""
    timing = time_request(scheduler, PROMPT, greedy_tokens(n_tokens))
    return timing.time_to_first_token, (n_tokens - 1) / (timing.end - timing.first)


def measure_in_this_process(which: str, tokens: int, parallel: int) -> tuple[float, float]:
    """One warmed-up run of `which` ("bare" or "ours")."""
    threads = available_cores()
    _init_llama_backend()            # also keeps llama.cpp's load chatter off the console
    if which == "bare":
        bare = BareLoop(ctx_size=2048, threads=threads)
        bare.run(16)
        return bare.run(tokens)
    backend = load(str(MODEL), LoadSettings(ctx_size=2048, parallel=parallel), lambda f, m: None)
    scheduler = Scheduler(backend)
    run_engine(scheduler, 16)
    return run_engine(scheduler, tokens)


def measure_in_subprocess(which: str, tokens: int, parallel: int) -> tuple[float, float]:
    # Each side gets a process of its own: two llama.cpp contexts driven from two threads
    # of one process have two OpenMP thread teams, and the idle one's spinning threads
    # slow the other down (both fall to about a third of their speed here).
    output = subprocess.run(
        [sys.executable, __file__, "--worker", which, "--tokens", str(tokens), "--parallel", str(parallel)],
        check=True, capture_output=True, text=True).stdout
    ttft, tps = json.loads(output.strip().splitlines()[-1])
    return ttft, tps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=4, help="sequence slots of our engine")
    parser.add_argument("--worker", choices=["bare", "ours"], help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "llama_cpp.md"))
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure_in_this_process(args.worker, args.tokens, args.parallel)))
        return

    load_before = machine_load()
    bare_runs, ours_runs = [], []
    for _ in range(args.rounds):                      # alternate, so noise hits both alike
        bare_runs.append(measure_in_subprocess("bare", args.tokens, args.parallel))
        ours_runs.append(measure_in_subprocess("ours", args.tokens, args.parallel))
    speed = paired([r[1] for r in ours_runs], [r[1] for r in bare_runs])
    ttft_gaps = [(o[0] - b[0]) * 1000 for o, b in zip(ours_runs, bare_runs)]
    ttft_gap = statistics.median(ttft_gaps)
    rounds = [f"| {i + 1} | {b[1]:.1f} | {o[1]:.1f} | {o[1] / b[1]:.3f} | {b[0] * 1000:.1f} | "
              f"{o[0] * 1000:.1f} |" for i, (b, o) in enumerate(zip(bare_runs, ours_runs))]
    report = "\n".join([
        "# llama.cpp: our engine against a bare llama_decode loop",
        "",
        f"Default model, greedy, {args.tokens} new tokens, {available_cores()} threads, "
        f"{args.rounds} alternating rounds, each run in a fresh process after a 16-token warm-up "
        f"(bench/bench_llama.py). Machine: {load_before} before the run, {machine_load()} after.",
        "",
        "| round | bare tokens/s | ours tokens/s | ratio | bare first token (ms) | ours first token (ms) |",
        "| --- | --- | --- | --- | --- | --- |",
        *rounds,
        "",
        f"Speed ratio ours / bare: **{speed.describe()}**. Medians: bare "
        f"{statistics.median(r[1] for r in bare_runs):.1f}, ours {statistics.median(r[1] for r in ours_runs):.1f} "
        f"tokens/s. Time to first token, ours minus bare: **{ttft_gap:+.1f} ms** (median of the "
        f"rounds, range {min(ttft_gaps):+.1f} to {max(ttft_gaps):+.1f} ms).",
        "",
        targets([("speed ratio at least 0.95", speed.median >= 0.95),
                 ("time to first token less than 20 ms more", ttft_gap < 20)], "this file"),
        ""])
    print(report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
