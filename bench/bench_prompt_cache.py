"""The llama.cpp prompt cache, on against off, in one run of paired rounds:

1. time to first token of a chat's new turn after 0, 500, 2,000 and 6,000 history tokens,
   with flash attention off and on (four models loaded at once, every round measures all
   four in turn, alternating the order); the same message with no history is the reference;
2. four users taking turns on two slots: every turn after the first round finds its chat in
   host memory (--cache-ram); restore time against reading the same tokens again;
3. one 1,000-token character shared by four users on two slots: the second user on reads
   only their own tokens (a copy of another slot's cache, or a host copy lent);
4. a streaming reply's gaps between tokens while a newcomer's 2,000-token prompt is read,
   with the measured chunk size and with whole 512-token batches (the behaviour before).

Parts 2 and 3 run first and the file is written after every part, so a run on a busy
machine shows what it has measured so far.

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

from bench.pairs import machine_load, paired                     # noqa: E402
from loaders.llama_cpp_loader import load                       # noqa: E402
from loaders.settings import LoadSettings                       # noqa: E402
from modules.chat_prompt import build_chat_prompt               # noqa: E402
from modules.params import GenerationParams                     # noqa: E402
from modules.scheduler import Scheduler                         # noqa: E402

MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
NEW_MESSAGE = "Tell me the capital of France."
FILLER = ("I am planning a long trip through Europe next summer and keep notes about every city, "
          "its museums, its food, the trains between them and what each ticket costs. ")
TRAITS = ["patient", "curious", "dry-humoured", "precise", "kind", "stubborn", "well-read", "calm"]
CHARACTER = "You are Captain Mira Vale, keeper of the lighthouse at Gull Point. " + " ".join(
    f"Fact {i}: Mira is {TRAITS[i % len(TRAITS)]} and remembers the storm of year {1890 + i}, "
    f"when ship number {i * 7} came in." for i in range(34))
USERS = ("ann", "ben", "cid", "dee")
QUESTIONS = ("How is the light tonight?", "Tell me about the storm of 1893.",
             "Is the lamp oil running low?", "What do you see from the tower?")


def backend_for(reuse: bool, flash: bool, ctx_size: int):
    return load(str(MODEL), LoadSettings(ctx_size=ctx_size, parallel=2, cache_reuse=reuse, flash_attn=flash),
                lambda f, m: None)


def prompt_tokens(backend, messages) -> list[int]:
    info = backend.info
    built = build_chat_prompt(messages, info.chat_template, lambda text: 0, info.n_ctx,
                              bos_token=info.bos_token, eos_token=info.eos_token)
    return backend.tokenize(built.text, add_bos=info.add_bos_default)


def history(target_tokens: int, count, system: str = "You are a helpful assistant.") -> list[dict]:
    """User/assistant turns of about 250 tokens each until the history holds target_tokens."""
    messages = [{"role": "system", "content": system}]
    turn = 0
    while count(messages) < target_tokens:
        turn += 1
        messages.append({"role": "user", "content": f"Note {turn}: " + FILLER * 4})
        messages.append({"role": "assistant", "content": f"Noted, note {turn}. " + FILLER})
    return messages


# ---- 1. time to first token after a history, cache and flash attention on and off -----------

def turn(scheduler, tokens, owner, max_new_tokens: int):
    request = scheduler.submit(tokens, GenerationParams(do_sample=False, max_new_tokens=max_new_tokens), owner)
    finished = request.result()
    assert finished.ok, finished.error
    return finished


def time_new_turn(scheduler, length: int, owner: str, previous_turn: bool) -> tuple[int, int, float]:
    """Sends the history's last turn (as the chat did one turn ago: that leaves the history
    in the cache, where a cache keeps it) and keeps the model's reply in the history, then
    times the new message. Returns (history tokens, prompt tokens, seconds to the first token)."""
    backend = scheduler.backend
    messages = history(length, lambda m: len(prompt_tokens(backend, m))) if length else \
        [{"role": "system", "content": "You are a helpful assistant."}]
    if previous_turn and length:
        reply = turn(scheduler, prompt_tokens(backend, messages[:-1]), owner, 32).text
        messages[-1] = {"role": "assistant", "content": reply}
    final = prompt_tokens(backend, messages + [{"role": "user", "content": NEW_MESSAGE}])
    history_tokens = len(prompt_tokens(backend, messages)) if length else 0
    return history_tokens, len(final), turn(scheduler, final, owner, 8).time_to_first_token


def ttft_rounds(lengths, rounds: int) -> dict:
    """{(cache on, flash on, length): [(history tokens, prompt tokens, seconds) per round]}"""
    configs = [(reuse, flash) for reuse in (True, False) for flash in (False, True)]
    running = {}
    for reuse, flash in configs:
        backend = backend_for(reuse, flash, max(lengths) + 512)
        running[reuse, flash] = Scheduler(backend)
        # The first pass of a fresh context pays for buffers and page faults: not measured.
        turn(running[reuse, flash], backend.tokenize("Hello there.", add_bos=False), "warm-up", 4)
    results: dict = {}
    try:
        for r in range(rounds):
            for length in lengths:
                for reuse, flash in configs if r % 2 == 0 else configs[::-1]:
                    measured = time_new_turn(running[reuse, flash], length, f"user-{length}-{r}", reuse)
                    results.setdefault((reuse, flash, length), []).append(measured)
                    print("ttft", r, length, "cache", reuse, "flash", flash, measured, flush=True)
    finally:
        for scheduler in running.values():
            backend = scheduler.backend
            scheduler.swap_backend(None, "benchmark over")
            backend.unload()
    return results


# ---- 2 and 3: users taking turns on two slots, driven pass by pass --------------------------

def first_token(backend, tokens, owner, max_new_tokens=24) -> dict:
    """Opens a sequence (the slot's cache kept, copied or restored then: timed as `open`),
    reads the prompt until the first token, then lets the reply finish."""
    counters = backend.cache_counters
    before = (counters.tokens_read, counters.restores, counters.copies, counters.tokens_restored)
    started = time.perf_counter()
    seq = backend.open_sequence_for(owner, tokens, GenerationParams(do_sample=False, max_new_tokens=max_new_tokens))
    opened = time.perf_counter()
    feeds, first = {}, None
    while True:
        if seq in backend.forward(feeds):
            token = backend.sample(seq)
            first = first or time.perf_counter()
            if backend.is_end_of_generation(token) or len(seq.generated) + 1 >= max_new_tokens:
                break
            seq.generated.append(token)
            feeds = {seq: token}
    backend.close_sequence(seq)
    return {"open": opened - started, "ttft": first - started, "prompt": len(tokens),
            "read": counters.tokens_read - before[0], "restored": counters.restores > before[1],
            "copied": counters.copies > before[2], "tokens_restored": counters.tokens_restored - before[3],
            "reply": list(seq.generated)}


def text(backend, tokens) -> str:
    return b"".join(backend.token_bytes(t, skip_special=True) for t in tokens).decode("utf-8", "replace")


def paired_turns(chats: dict, rounds: int, flash: bool, ctx_size: int, label: str) -> list[dict]:
    """Each round, each user in turn sends their next message to the cache-on and the
    cache-off model (order alternating); the cache-on model's reply joins the chat."""
    on, off = backend_for(True, flash, ctx_size), backend_for(False, flash, ctx_size)
    rows = []
    try:
        for backend in (on, off):
            first_token(backend, backend.tokenize("Hello there.", add_bos=False), "warm-up", 4)
        for r in range(rounds):
            for i, (user, messages) in enumerate(chats.items()):
                message = {"role": "user", "content": f"Turn {r + 1}: {QUESTIONS[(i + r) % 4]}"}
                tokens = prompt_tokens(on, messages + [message])
                pair = {}
                for name in (("on", "off") if (r + i) % 2 == 0 else ("off", "on")):
                    pair[name] = first_token(on if name == "on" else off, tokens, user)
                messages += [message, {"role": "assistant", "content": text(on, pair["on"]["reply"])}]
                rows.append({"round": r, "user": user, **{f"{k}_{name}": v for name in pair
                                                          for k, v in pair[name].items()}})
                print(label, r, user, {k: v for k, v in rows[-1].items() if "reply" not in k}, flush=True)
        rows.append({"summary": on.cache_counters.summary()})
    finally:
        on.unload()
        off.unload()
    return rows


def four_users_chats(count, tokens: int) -> dict:
    """Four chats of about `tokens` tokens, each with its own system prompt: nothing shared."""
    return {user: history(tokens, count, system=f"You are {user}'s travel assistant; {user} writes in notes.")
            for user in USERS}


def character_chats() -> dict:
    return {user: [{"role": "system", "content": CHARACTER}] for user in USERS}


# ---- 4. a streaming reply while a long prompt is read --------------------------------------

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


# ---- the results file ----------------------------------------------------------------------

def ttft_lines(results: dict, lengths) -> list[str]:
    def median(reuse, flash, length, column=2):
        return statistics.median(m[column] for m in results[reuse, flash, length])
    base = {flash: median(False, flash, 0) for flash in (False, True)}
    lines = ["| history tokens | prompt tokens | flash attention | cache on: first token (s) | "
             "cache off: first token (s) | cache off / on (per-round median) | "
             "cache on / no history, cache off |", "| ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
    for length in lengths:
        for flash in (False, True):
            on, off = results[True, flash, length], results[False, flash, length]
            speedup = paired([1 / m[2] for m in on], [1 / m[2] for m in off])
            lines.append(f"| {on[0][0]:,} | {on[0][1]:,} | {'on' if flash else 'off'} | "
                         f"{median(True, flash, length):.3f} | {median(False, flash, length):.3f} | "
                         f"{speedup.median:.1f} ({min(speedup.ratios):.1f}-{max(speedup.ratios):.1f}) | "
                         f"{median(True, flash, length) / base[flash]:.2f} |")
    lines += ["", "Flash attention off against on, the same configuration in the same round "
              "(time on / time off: above 1, off is faster):", "",
              "| history tokens | cache on: on / off | cache off: on / off |", "| ---: | ---: | ---: |"]
    for length in lengths:
        cells = []
        for reuse in (True, False):
            ratio = paired([m[2] for m in results[reuse, True, length]], [m[2] for m in results[reuse, False, length]])
            cells.append(f"{ratio.median:.2f} ({min(ratio.ratios):.2f}-{max(ratio.ratios):.2f})")
        lines.append(f"| {results[True, False, length][0][0]:,} | {cells[0]} | {cells[1]} |")
    lines += ["", "All measurements (seconds, in round order): " + "; ".join(
        f"{'on' if reuse else 'off'}/flash {'on' if flash else 'off'} {length}: "
        + ", ".join(f"{m[2]:.3f}" for m in results[reuse, flash, length])
        for reuse in (True, False) for flash in (False, True) for length in lengths)]
    return lines


def turns_lines(rows: list[dict]) -> list[str]:
    lines = ["| round | user | prompt tokens | cache on: how | read (on) | open (ms, on) | "
             "first token on (s) | first token off (s) | off / on |",
             "| ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        if "summary" in row:
            continue
        how = ("restored" if row["restored_on"] else "copied" if row["copied_on"]
               else "kept" if row["read_on"] < row["prompt_on"] else "read")
        lines.append(f"| {row['round'] + 1} | {row['user']} | {row['prompt_on']:,} | {how} | {row['read_on']:,} | "
                     f"{row['open_on'] * 1000:.1f} | {row['ttft_on']:.3f} | {row['ttft_off']:.3f} | "
                     f"{row['ttft_off'] / row['ttft_on']:.1f} |")
    turns = [row for row in rows if "summary" not in row]
    same = sum(row["reply_on"] == row["reply_off"] for row in turns)
    lines += ["", f"Greedy replies (24 tokens) identical with the cache on and off: {same} of {len(turns)} turns.",
              f"Cache counters at the end (cache on): {rows[-1]['summary']}."]
    return lines


def restore_line(rows: list[dict]) -> tuple[str, float | None]:
    """Restore time (open, which includes saving the chat it displaces) against reading the
    restored tokens again (cache off's time to first token, scaled to those tokens)."""
    ratios = [row["ttft_off"] * row["tokens_restored_on"] / row["prompt_off"] / row["open_on"]
              for row in rows if row.get("restored_on")]
    if not ratios:
        return "No turn was restored from host memory.", None
    times = [row["open_on"] * 1000 for row in rows if row.get("restored_on")]
    return (f"{len(ratios)} turns restored from host memory: restoring took {statistics.median(times):.0f} ms "
            f"(median; range {min(times):.0f}-{max(times):.0f}, saving the displaced chat included); reading "
            f"the same tokens again took {statistics.median(ratios):.0f}x as long (median of per-turn ratios, "
            f"range {min(ratios):.0f}-{max(ratios):.0f})."), statistics.median(ratios)


def write(parts: dict, loads: list[str], lengths, path: Path) -> None:
    flash = parts["flash"]
    lines = ["# Prompt cache: on against off", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, shared with other work. "
             f"Model: {MODEL.name}, greedy, 2 slots, llama.cpp through the low-level API. "
             f"One run, paired rounds; " + " ".join(loads), "",
             "## Time to first token of a new turn after a history", ""]
    if "ttft" in parts:
        lines += ["The chat's previous turn is sent first (as one turn ago), then the new message "
                  f"\"{NEW_MESSAGE}\" is timed; median of {parts['rounds']} rounds, each measuring the four "
                  "configurations in turn (order alternating). Reference: the same message with no "
                  "history, cache off, same flash attention.", ""]
        lines += ttft_lines(parts["ttft"], lengths)
    else:
        lines.append("(not measured in this run)")
    restore_text, _ = restore_line(parts.get("four", []))
    lines += ["", f"## Four users taking turns on two slots (flash attention {'on' if flash else 'off'})", "",
              f"Four chats of about {parts['chat_tokens']:,} tokens, each its own system prompt; each round every user sends "
              "a message, to the cache-on and the cache-off model in turn. Two slots hold two chats; the "
              "others wait in host memory.", ""]
    lines += turns_lines(parts["four"]) + ["", restore_text] if "four" in parts else ["(not measured)"]
    lines += ["", f"## One 1,000-token character shared by four users (flash attention {'on' if flash else 'off'})",
              "", "The same character as system prompt for four users, two slots; each round every user "
              "sends a message. \"copied\": another slot's cache of the character was copied; \"restored\": "
              "a host copy (another user's, lent, or the user's own).", ""]
    lines += turns_lines(parts["character"]) if "character" in parts else ["(not measured)"]
    lines += ["", "## A streaming reply while a newcomer's 2,000-token prompt is read", "",
              "| prompt chunk while others stream | reply's usual gap (ms) | median gap (ms) | 90th pct (ms) | "
              "longest (ms) | passes | prompt read in (s) |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for g in parts.get("gaps", []):
        lines.append(f"| {g['chunk']} | {g['usual'] * 1000:.1f} | {g['median'] * 1000:.1f} | {g['p90'] * 1000:.1f} | "
                     f"{g['longest'] * 1000:.1f} | {g['passes']} | {g['prompt_seconds']:.1f} |")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", default="0,500,2000,6000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--turn-rounds", type=int, default=3, help="rounds of the four users' turns")
    parser.add_argument("--chat-tokens", type=int, default=1000, help="each of the four users' chats")
    parser.add_argument("--character-rounds", type=int, default=2)
    parser.add_argument("--gaps", action=argparse.BooleanOptionalAction, default=True,
                        help="part 4, the streaming reply's gaps")
    parser.add_argument("--flash-attn", action=argparse.BooleanOptionalAction,
                        default=LoadSettings().flash_attn, help="for parts 2 and 3 (default: the server's)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "prompt_cache.md"))
    args = parser.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]
    loads = [f"Load before: {machine_load()}."]
    parts = {"rounds": args.rounds, "flash": args.flash_attn, "chat_tokens": args.chat_tokens}
    out = Path(args.out)

    def done(name: str) -> None:           # the file after every part: a long run shows its progress
        loads.append(f"After {name}: {machine_load()}.")
        write(parts, loads, lengths, out)
    counter = backend_for(False, False, 2048)
    chats = four_users_chats(lambda m: len(prompt_tokens(counter, m)), args.chat_tokens)
    counter.unload()
    parts["four"] = paired_turns(chats, args.turn_rounds, args.flash_attn, 2048, "four")
    done("the four users")
    parts["character"] = paired_turns(character_chats(), args.character_rounds, args.flash_attn, 2048, "character")
    done("the shared character")
    if args.rounds:
        parts["ttft"] = ttft_rounds(lengths, args.rounds)
        done("the first-token table")
    if args.gaps:
        parts["gaps"] = [stream_gaps(0), stream_gaps(512)]
        done("the streaming gaps")
    print(out.read_text())

if __name__ == "__main__":
    main()
