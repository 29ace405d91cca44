"""A chat reply's speed while someone renders template bombs through the editor's code path.

Each round times the same greedy reply (end-of-text banned, so every run writes the same
number of tokens) in rotating order: alone; while another thread renders the bombs through
modules.instruction_templates.render_preview (what the Instruction template editor calls)
back to back, as fast as it returns; the same at 20 renders a second (the editor waits for a
typing pause, about 2 renders a second per person at most: 20/s is a room of people typing
bombs); while another thread renders, again and again, a template that runs until the time
limit stops it; and, to compare, beside a plain Python loop on another thread. On a shared
machine other work comes in bursts, so the ratio is the median of the per-round ratios; the
ratio of the best runs is shown too. Once, for comparison, the reply while one bomb is
compiled the way templates were before (jinja2's sandbox in the server's process).

llama.cpp runs one thread by default here: on a shared 2-core box a two-thread team's speed
swings several-fold with other people's load, which drowns what is measured.

    .venv/bin/python bench/bench_template_bomb.py [--tokens 48] [--rounds 30] [--threads 1] [--skip-before]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loaders import load_backend  # noqa: E402
from loaders.settings import LoadSettings  # noqa: E402
from modules.instruction_templates import render_preview  # noqa: E402
from modules.scheduler import Scheduler  # noqa: E402
from modules.template_render import TemplateError  # noqa: E402
from bench.timing import greedy_tokens, time_request  # noqa: E402

DEFAULT_MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = "<|im_start|>user\nWrite a story about a lighthouse.<|im_end|>\n<|im_start|>assistant\n"
# The bombs as the problem was reported, and the forms that are bombs in jinja2, which reads
# a**b**c as (a**b)**c.
BOMBS = ["{{ 7**10**7 }}", "{{ 9**9**9 }}", "{{ 7**(10**7) }}", "{{ 9**(9**9) }}",
         "{{ 'x' * 10**10 }}", "{{ range(10**10)|length }}"]
RUNAWAY = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
TARGET = 0.90


@dataclass
class Scenario:
    name: str
    sources: list[str] | None         # [] the reply alone, None beside a plain busy loop
    pause: float = 0.0                 # seconds between renders
    speeds: list[float] = field(default_factory=list)
    renders: int = 0
    errors: int = 0


class Renderer:
    """Renders `sources` in turn on a thread until stopped; counts what came back."""

    def __init__(self, sources: list[str], pause: float):
        self.sources = sources
        self.pause = pause
        self.renders = 0
        self.refused = 0
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        self._started.wait()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while not self._stop.is_set():
            for source in self.sources:
                self._started.set()
                try:
                    render_preview(source)
                except TemplateError:
                    self.refused += 1
                self.renders += 1
                if self.pause:
                    self._stop.wait(self.pause)


def reply_speed(scheduler: Scheduler, n_tokens: int) -> float:
    timing = time_request(scheduler, PROMPT, greedy_tokens(n_tokens))
    return timing.finished.n_tokens / (timing.end - timing.start)


def run_scenario(scheduler: Scheduler, n_tokens: int, scenario: Scenario) -> None:
    if scenario.sources is None:
        scenario.speeds.append(speed_beside_busy_loop(scheduler, n_tokens))
        return
    if not scenario.sources:
        scenario.speeds.append(reply_speed(scheduler, n_tokens))
        return
    with Renderer(scenario.sources, scenario.pause) as renderer:
        scenario.speeds.append(reply_speed(scheduler, n_tokens))
    scenario.renders += renderer.renders
    scenario.errors += renderer.refused


def speed_while_compiled_in_process(scheduler: Scheduler, n_tokens: int) -> tuple[float, float]:
    """The reply while one bomb compiles as before: jinja2's sandbox in the server's process,
    folding 7**(10**7) at compile time with the GIL held. Returns (tokens/s, compile seconds)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    took = []

    def compile_bomb():
        start = time.perf_counter()
        try:
            ImmutableSandboxedEnvironment().from_string("{{ 7**(10**7) }}")
        except ValueError:
            pass             # the folded number is too long to write into the compiled code
        took.append(time.perf_counter() - start)
    thread = threading.Thread(target=compile_bomb)
    thread.start()
    speed = reply_speed(scheduler, n_tokens)
    thread.join()
    return speed, took[0]


class BusyLoop:
    """For comparison: a plain Python loop on another thread, no templates at all."""

    def __init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        total = 0
        while not self._stop.is_set():
            total += sum(range(1000))


def speed_beside_busy_loop(scheduler: Scheduler, n_tokens: int) -> float:
    with BusyLoop():
        return reply_speed(scheduler, n_tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-before", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "template_bomb.md"))
    args = parser.parse_args()

    load_at_start = os.getloadavg()[0]
    backend = load_backend("llama.cpp", args.model,
                           LoadSettings(ctx_size=1024, parallel=2, threads=args.threads), None)
    scheduler = Scheduler(backend)
    reply_speed(scheduler, 16)
    render_preview("{{ messages[0].content }}")                  # warm-up: a started worker
    scenarios = [
        Scenario("alone", []),
        Scenario("while another thread renders the bombs back to back through the editor's "
                 "code path", BOMBS),
        Scenario("while another thread renders the bombs through the editor's code path, "
                 "20 a second", BOMBS, pause=0.05),
        Scenario("while another thread renders a template that runs until the 2 s limit stops it",
                 [RUNAWAY]),
        Scenario("for comparison: while another thread runs a plain Python loop (no templates)", None),
    ]
    for round_ in range(args.rounds):
        for i in range(len(scenarios)):          # rotate the order so none always goes first
            run_scenario(scheduler, args.tokens, scenarios[(round_ + i) % len(scenarios)])
        print(f"round {round_ + 1}: " + ", ".join(f"{s.speeds[-1]:.1f}" for s in scenarios)
              + " tokens/s", flush=True)
    before = None if args.skip_before else speed_while_compiled_in_process(scheduler, args.tokens)
    scheduler.swap_backend(None, "benchmark finished")
    backend.unload()

    loads = (load_at_start, os.getloadavg()[0])
    report = format_report(args, scenarios, before, loads)
    print(report)
    Path(args.out).write_text(report)


def format_report(args, scenarios: list[Scenario], before, loads: tuple[float, float]) -> str:
    alone = scenarios[0].speeds

    def ratio(scenario):
        return statistics.median(o / a for o, a in zip(scenario.speeds, alone))

    def verdict(value):
        return "met" if value >= TARGET else "not met"
    lines = [
        f"# A reply's speed while template bombs are rendered: llama.cpp, {Path(args.model).name}", "",
        f"Greedy, {args.tokens} tokens per reply, llama.cpp with {args.threads} thread(s), "
        f"{args.rounds} rounds in rotating order (bench/bench_template_bomb.py). tokens/s: the "
        f"median and the best run; ratio: the median of the per-round ratios to the reply alone, "
        f"and the ratio of the best runs.", "",
        f"The machine ({os.cpu_count()} cores) was shared with other work: load average "
        f"{loads[0]:.1f} at the start, {loads[1]:.1f} at the end; the reply alone ran at "
        f"{min(alone):.1f} to {max(alone):.1f} tokens/s from run to run, so single ratios are "
        f"noisy and the medians are the figures to read.", "",
        "| the reply | tokens/s (median, best) | ratio to alone (median, best) | renders meanwhile |",
        "| --- | --- | --- | --- |",
    ]
    for scenario in scenarios:
        speeds = f"{statistics.median(scenario.speeds):.1f}, {max(scenario.speeds):.1f}"
        if scenario.sources == []:
            lines.append(f"| {scenario.name} | {speeds} | 1.00 | - |")
            continue
        best = max(scenario.speeds) / max(alone)
        renders = ("-" if scenario.sources is None else
                   f"{scenario.renders:,} ({scenario.errors:,} refused or stopped)")
        lines.append(f"| {scenario.name} | {speeds} | **{ratio(scenario):.2f}**, {best:.2f} | {renders} |")
    if before is not None:
        speed, seconds = before
        lines.append(f"| before: while one `{{{{ 7**(10**7) }}}}` compiled in-process (jinja2 sandbox, "
                     f"constant folding with the GIL held; one run) | {speed:.1f} | "
                     f"{speed / statistics.median(alone):.2f} | 1 (compiling took {seconds:.1f} s) |")
    back_to_back, paced, runaway, busy = (ratio(s) for s in scenarios[1:])
    lines += [
        "", "Bombs: " + ", ".join(f"`{b}`" for b in BOMBS) + ". jinja2 reads `a**b**c` as "
        "`(a**b)**c`, so `7**10**7` and `9**9**9` are ordinary numbers; the parenthesised forms "
        "are the bombs. All are refused in a fraction of a millisecond, before Python computes "
        "them.", "",
        f"Target: the reply within 10% of its speed alone (median ratio >= {TARGET:.2f}).",
        f"- It applies to the bombs rendered at the rate the editor can send them (20 a second "
        f"row): **{verdict(paced)}** ({paced:.2f}).",
        f"- Back to back, as fast as the code path returns (thousands of renders a second, a "
        f"script rather than a person at the editor): {verdict(back_to_back)} ({back_to_back:.2f}). "
        f"What it costs there is the CPU of any busy thread beside the reply on a 2-core box "
        f"(a plain Python loop: {busy:.2f}), not the bombs: each is refused before it computes "
        f"anything.",
        f"- A template that really computes until the time limit stops it (in a worker process at "
        f"lower CPU priority, the server's threads free meanwhile): {verdict(runaway)} ({runaway:.2f}).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
