"""Many users at once: our engine against a bare batched llama_decode loop, in one run.

For 1, 4 and 8 concurrent streams, our engine (scheduler + llama.cpp backend, one reader
thread per stream, as the web UI and the API have) and a bare loop written directly on
llama-cpp-python's low-level API (llama_batch + llama_decode + the same native sampler
chain per sequence: end-of-text banned, greedy) decode the same prompts for the same number
of new tokens. Both use the same context layout (8 sequences, each its own slice of the
cache), the same threads, the same flash-attention setting (the server's default unless
--flash-attn says otherwise; llama.cpp's own default would turn it on in the bare loop only),
and time from the first prompt token to the last new token.

Each run is a fresh process (two llama.cpp contexts in one process have two thread teams
that slow each other down) after a warm-up; ours and bare alternate within each round, the
order flipping every round, so that the shared machine's load hits both alike. Each round
gives one ratio per stream count, reported as their median and range (bench/pairs.py).

A second part times the gaps between tokens of streaming users while a newcomer's long
prompt is read in chunks (loaders/prefill_budget.py), through the scheduler.

    .venv/bin/python bench/bench_many_users.py [--tokens 128] [--rounds 5]
    .venv/bin/python bench/bench_many_users.py --part gaps
"""
from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.pairs import machine_load, paired, targets  # noqa: E402
from loaders.settings import LoadSettings, available_cores  # noqa: E402

MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
SLOTS = 8
CTX_PER_SEQUENCE = 1024
COUNTS = (1, 4, 8)
PROMPTS = ["Write a story about a lighthouse.", "Explain how rain forms.", "Describe a busy market.",
           "Write a poem about autumn.", "Tell me about the moon.", "Describe a train journey.",
           "Write a letter to a friend.", "Explain how bread is made."]


def prompt(i: int) -> str:
    return f"<|im_start|>user\n{PROMPTS[i % len(PROMPTS)]}<|im_end|>\n<|im_start|>assistant\n"


# ---- ours ------------------------------------------------------------------------------------
def run_ours(scheduler, streams: int, tokens: int) -> float:
    """Aggregate tokens/s: all requests submitted at once, each read by its own thread."""
    from bench.timing import greedy_tokens
    params = greedy_tokens(tokens)
    counts = [0] * streams

    def read(i, request):
        for _ in request.events():
            pass
        counts[i] = request.finished.n_tokens

    start = time.perf_counter()
    requests = [scheduler.submit(prompt(i), params, owner=f"user{i}") for i in range(streams)]
    readers = [threading.Thread(target=read, args=(i, r)) for i, r in enumerate(requests)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    wall = time.perf_counter() - start
    assert counts == [tokens] * streams, counts
    return sum(counts) / wall


def ours_worker(streams: int, tokens: int, threads: int, flash: bool) -> float:
    from loaders.llama_cpp_loader import load
    from loaders.settings import LoadSettings
    from modules.scheduler import Scheduler
    backend = load(str(MODEL), LoadSettings(ctx_size=CTX_PER_SEQUENCE, parallel=SLOTS, threads=threads,
                                            flash_attn=flash),
                   lambda f, m: None)
    scheduler = Scheduler(backend)
    run_ours(scheduler, streams, 16)                  # warm-up: buffers, page faults
    return run_ours(scheduler, streams, tokens)


# ---- bare --------------------------------------------------------------------------------------
class BareBatchedLoop:
    """The least work llama.cpp needs to decode several sequences together: one batch per
    step, one native sampler chain per sequence (end-of-text banned, greedy), each token's
    bytes looked up, nothing else."""

    def __init__(self, threads: int, flash: bool):
        import llama_cpp as ll
        self.ll = ll
        self.model = ll.llama_model_load_from_file(str(MODEL).encode(), ll.llama_model_default_params())
        self.vocab = ll.llama_model_get_vocab(self.model)
        self.n_vocab = ll.llama_vocab_n_tokens(self.vocab)
        params = ll.llama_context_default_params()
        params.n_ctx = CTX_PER_SEQUENCE * SLOTS
        params.n_seq_max = SLOTS
        params.kv_unified = False
        params.n_batch = params.n_ubatch = 512
        params.n_threads = params.n_threads_batch = threads
        # as the engine is set: llama.cpp's own default (auto) turns flash attention on
        params.flash_attn_type = (ll.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash
                                  else ll.LLAMA_FLASH_ATTN_TYPE_DISABLED)
        params.no_perf = True
        self.ctx = ll.llama_init_from_model(self.model, params)
        self.batch = ll.llama_batch_init(512, 0, 1)
        ends = [t for t in range(self.n_vocab) if ll.llama_vocab_is_eog(self.vocab, t)]
        self.bias = (ll.llama_logit_bias * len(ends))(*[ll.llama_logit_bias(t, float("-inf")) for t in ends])

    def tokenize(self, text: str) -> list[int]:
        data = text.encode()
        buffer = (self.ll.llama_token * (len(data) + 8))()
        n = self.ll.llama_tokenize(self.vocab, data, len(data), buffer, len(data) + 8, True, True)
        return list(buffer[:n])

    def run(self, streams: int, tokens: int) -> float:
        ll, batch, ctx = self.ll, self.batch, self.ctx
        ll.llama_memory_clear(ll.llama_get_memory(ctx), True)
        start = time.perf_counter()
        chains = []
        for _ in range(streams):
            chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_logit_bias(self.n_vocab, len(self.bias), self.bias))
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_greedy())
            chains.append(chain)
        n, rows, positions = 0, [], []
        for seq in range(streams):                     # every prompt in the first batch
            prompt_tokens = self.tokenize(prompt(seq))
            for pos, token in enumerate(prompt_tokens):
                batch.token[n], batch.pos[n], batch.n_seq_id[n] = token, pos, 1
                batch.seq_id[n][0] = seq
                batch.logits[n] = pos == len(prompt_tokens) - 1
                n += 1
            rows.append(n - 1)
            positions.append(len(prompt_tokens))
        batch.n_tokens = n
        ll.llama_decode(ctx, batch)
        piece = ctypes.create_string_buffer(64)
        replies = [bytearray() for _ in range(streams)]
        for step in range(tokens):
            for seq in range(streams):
                token = ll.llama_sampler_sample(chains[seq], ctx, rows[seq])
                size = ll.llama_token_to_piece(self.vocab, token, piece, 64, 0, False)
                replies[seq] += piece.raw[:size]
                batch.token[seq], batch.pos[seq], batch.n_seq_id[seq] = token, positions[seq], 1
                batch.seq_id[seq][0] = seq
                batch.logits[seq] = 1
                rows[seq] = seq
                positions[seq] += 1
            if step == tokens - 1:
                break
            batch.n_tokens = streams
            ll.llama_decode(ctx, batch)
        wall = time.perf_counter() - start
        for chain in chains:
            ll.llama_sampler_free(chain)
        return streams * tokens / wall


def bare_worker(streams: int, tokens: int, threads: int, flash: bool) -> float:
    from loaders.llama_cpp_loader import _init_llama_backend
    _init_llama_backend()          # the same llama.cpp set-up, and its load chatter kept quiet
    loop = BareBatchedLoop(threads or available_cores(), flash)
    loop.run(streams, 16)
    return loop.run(streams, tokens)


def in_subprocess(which: str, streams: int, tokens: int, threads: int, flash: bool) -> float:
    output = subprocess.run(
        [sys.executable, __file__, "--worker", which, "--streams", str(streams), "--tokens", str(tokens),
         "--threads", str(threads), "--flash-attn" if flash else "--no-flash-attn"],
        check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


# ---- gaps while a long prompt is read --------------------------------------------------------
def gap_run(streaming: int, prompt_tokens: int, chunk: int, threads: int) -> dict:
    """`streaming` users generate; once they are going a newcomer's prompt of
    `prompt_tokens` arrives. Every text delta's arrival time is recorded per user."""
    from loaders.llama_cpp_loader import load
    from loaders.settings import LoadSettings
    from modules.events import TextDelta
    from modules.params import GenerationParams
    from modules.scheduler import Scheduler
    backend = load(str(MODEL), LoadSettings(ctx_size=prompt_tokens + 4096, parallel=streaming + 1,
                                            prefill_chunk=chunk, threads=threads), lambda f, m: None)
    scheduler = Scheduler(backend)
    try:
        run_ours(scheduler, streaming, 16)
        long_params = GenerationParams(do_sample=False, max_new_tokens=32_768, ban_eos_token=True)
        stamps: list[list[float]] = [[] for _ in range(streaming)]
        requests = [scheduler.submit(prompt(i), long_params, owner=f"user{i}") for i in range(streaming)]

        def read(i):
            for event in requests[i].events():
                if isinstance(event, TextDelta):
                    stamps[i].append(time.perf_counter())
        readers = [threading.Thread(target=read, args=(i,)) for i in range(streaming)]
        for reader in readers:
            reader.start()
        while min(len(s) for s in stamps) < 80:       # the usual gap, measured over 60 tokens
            time.sleep(0.01)
        story = " ".join(f"Line {i}: the waves came in and went out again." for i in range(prompt_tokens // 10))
        tokens = backend.tokenize(story, add_bos=False)[:prompt_tokens]
        assert len(tokens) == prompt_tokens
        arrived = time.perf_counter()
        newcomer = scheduler.submit(tokens, GenerationParams(do_sample=False, max_new_tokens=1), owner="newcomer")
        finished = newcomer.result()
        assert finished.ok, finished.error
        read_at = newcomer.first_token_at
        counts = [len(s) for s in stamps]
        while min(len(s) - c for s, c in zip(stamps, counts)) < 61:     # the usual gap again, deeper
            time.sleep(0.01)
        for request in requests:
            request.cancel()
        for reader in readers:
            reader.join()
    finally:
        scheduler.swap_backend(None, "benchmark over")
        backend.unload()
    # The streams are deeper in their context once the prompt is read, and each of their
    # passes costs more: 'usual' is the median of the 60 gaps before and the 60 after.
    before, after, during = [], [], []
    for times in stamps:
        gaps = [(b, b - a) for a, b in zip(times, times[1:])]
        before += [g for b, g in gaps[20:] if b < arrived][-60:]
        after += [g for b, g in gaps if b > read_at][1:61]
        during += [g for b, g in gaps if arrived < b <= read_at]
    during.sort()
    return {"usual": statistics.median(before + after), "before": statistics.median(before),
            "after": statistics.median(after), "median": statistics.median(during),
            "p99": during[int(0.99 * (len(during) - 1))], "longest": during[-1], "passes": len(during) // streaming,
            "read_in": read_at - arrived, "budget": backend_budget(backend)}


def backend_budget(backend) -> str:
    return backend.info.details.get("prompt reading while others generate", "")


# ---- report ------------------------------------------------------------------------------------
def throughput_part(rounds: int, tokens: int, threads: int, flash: bool) -> list[str]:
    runs = {(which, n): [] for which in ("ours", "bare") for n in COUNTS}
    for r in range(rounds):
        for n in COUNTS:
            order = ("ours", "bare") if r % 2 == 0 else ("bare", "ours")
            for which in order:
                runs[which, n].append(in_subprocess(which, n, tokens, threads, flash))
            print(f"round {r + 1}, {n} streams: ours {runs['ours', n][-1]:.1f}, bare {runs['bare', n][-1]:.1f}",
                  flush=True)
    ratio = {n: paired(runs["ours", n], runs["bare", n]) for n in COUNTS}
    ours_scaling = {n: paired(runs["ours", n], runs["ours", 1]) for n in COUNTS}
    bare_scaling = {n: paired(runs["bare", n], runs["bare", 1]) for n in COUNTS}
    lines = [
        f"Greedy, end-of-text banned, {tokens} new tokens per stream, {SLOTS} slots of {CTX_PER_SEQUENCE} "
        f"tokens, {rounds} rounds; in each round ours and bare alternate for each stream count "
        "(order flipped every round), each run a fresh process after a 16-token warm-up. Aggregate "
        "tokens/s = all new tokens / time from submitting the first prompt to the last token.", "",
        "| streams | bare tokens/s (median) | ours tokens/s (median) | ours / bare per round: median (range) "
        "| ours vs one stream | bare vs one stream |",
        "| --- | ---: | ---: | --- | ---: | ---: |"]
    for n in COUNTS:
        lines.append(
            f"| {n} | {statistics.median(runs['bare', n]):.1f} | {statistics.median(runs['ours', n]):.1f} | "
            f"**{ratio[n].median:.3f}** ({min(ratio[n].ratios):.3f}-{max(ratio[n].ratios):.3f}) | "
            f"{ours_scaling[n].median:.2f}x | {bare_scaling[n].median:.2f}x |")
    lines += ["", "Every round (tokens/s, ours / bare):", "",
              "| round | " + " | ".join(f"{n} streams" for n in COUNTS) + " |",
              "| --- | " + " | ".join("---" for _ in COUNTS) + " |"]
    for r in range(rounds):
        lines.append(f"| {r + 1} | " + " | ".join(
            f"{runs['ours', n][r]:.1f} / {runs['bare', n][r]:.1f} = {ratio[n].ratios[r]:.3f}" for n in COUNTS) + " |")
    lines += ["", targets([(f"{n} streams at least 0.9 of the bare batched loop", ratio[n].median >= 0.9)
                           for n in (4, 8)], "the throughput table")]
    return lines


def gaps_part(rounds: int, streaming: int, prompt_tokens: int, chunks: list[int], threads: int) -> list[str]:
    rows = []
    for r in range(rounds):
        for chunk in chunks:
            result = json.loads(subprocess.run(
                [sys.executable, __file__, "--worker", "gaps", "--streams", str(streaming),
                 "--prompt-tokens", str(prompt_tokens), "--chunk", str(chunk), "--threads", str(threads)],
                check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
            rows.append((r + 1, chunk, result))
            print(f"round {r + 1}, chunk {chunk or 'measured'}: {result}", flush=True)
    lines = [
        f"{streaming} users stream (greedy); once each has 80 tokens a newcomer's {prompt_tokens:,}-token "
        "prompt arrives. Gaps are between two text deltas of the same user as its reader thread got "
        "them, through the scheduler; 'usual' is the median of the 60 gaps before the newcomer and the 60 "
        "after its prompt was read (the streams are deeper by then, and their passes cost more); the "
        "others are over the gaps while the prompt was read. Each run a fresh process.", "",
        "| round | prompt chunk | usual gap (ms): before, after, both | median (ms) | 99th pct (ms) | longest (ms) "
        "| longest / usual | tokens per stream while read | prompt read in (s) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r, chunk, g in rows:
        lines.append(f"| {r} | {chunk or 'measured: ' + g['budget']} | {g['before'] * 1000:.1f}, "
                     f"{g['after'] * 1000:.1f}, {g['usual'] * 1000:.1f} | "
                     f"{g['median'] * 1000:.1f} | {g['p99'] * 1000:.1f} | {g['longest'] * 1000:.1f} | "
                     f"{g['longest'] / g['usual']:.2f} | {g['passes']} | {g['read_in']:.1f} |")
    measured = [g for _, chunk, g in rows if chunk == 0]
    if measured:
        worst = statistics.median(g["longest"] / g["usual"] for g in measured)
        lines += ["", f"Measured chunks: longest gap / usual gap, median of {len(measured)} runs: "
                      f"**{worst:.2f}**; the prompt read in {statistics.median(g['read_in'] for g in measured):.1f} s "
                      "(median).", "",
                  targets([("longest gap under 3x the usual gap", worst < 3.0)], "the gap table")]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["all", "throughput", "gaps"], default="all")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="llama.cpp threads on both sides; 0: the cores available")
    parser.add_argument("--flash-attn", action=argparse.BooleanOptionalAction, default=LoadSettings().flash_attn,
                        help="flash attention on both sides of the throughput part (default: the server's)")
    parser.add_argument("--gap-rounds", type=int, default=3)
    parser.add_argument("--gap-streams", type=int, default=3)
    parser.add_argument("--prompt-tokens", type=int, default=4000)
    parser.add_argument("--chunks", default="0", help="comma-separated prefill chunks for the gap part; 0: measured")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "many_users.md"))
    parser.add_argument("--worker", choices=["ours", "bare", "gaps"], help=argparse.SUPPRESS)
    parser.add_argument("--streams", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--chunk", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "ours":
        return print(json.dumps(ours_worker(args.streams, args.tokens, args.threads, args.flash_attn)))
    if args.worker == "bare":
        return print(json.dumps(bare_worker(args.streams, args.tokens, args.threads, args.flash_attn)))
    if args.worker == "gaps":
        return print(json.dumps(gap_run(args.streams, args.prompt_tokens, args.chunk, args.threads)))

    load_before = machine_load()
    lines = ["# Many users: our engine against a bare batched llama_decode loop", "",
             f"Default model ({MODEL.name}), llama.cpp through the low-level API, "
             f"{args.threads or available_cores()} threads, flash attention "
             f"{'on' if args.flash_attn else 'off'} on both sides "
             "(bench/bench_many_users.py).", ""]
    if args.part in ("all", "throughput"):
        lines += ["## Aggregate tokens/s with 1, 4 and 8 streams", ""] + throughput_part(args.rounds, args.tokens, args.threads, args.flash_attn) + [""]
    if args.part in ("all", "gaps"):
        lines += ["## Streaming users while a newcomer's long prompt is read", ""] + gaps_part(
            args.gap_rounds, args.gap_streams, args.prompt_tokens, [int(c) for c in args.chunks.split(",")],
            args.threads) + [""]
    lines += [f"Machine: {load_before} before the run, {machine_load()} after.", ""]
    report = "\n".join(lines)
    print(report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
