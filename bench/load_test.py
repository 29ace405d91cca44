"""Load test through the real web endpoints: N simulated browser users chatting at once.

Starts the server on 127.0.0.1 (a port in 8000-8099, --parallel 4, a settings file with
preset Deterministic and max_new_tokens 48, its own data folder in a temporary directory),
then runs N users (tests/load_client.py's WebUser: Gradio's HTTP queue protocol, as the
page uses it). Each user loads the page with their own browser key, sends messages tagged
"[u3-m17]", presses Stop on about 15% of them, closes the connection mid-stream on about
10% (and reloads the page), sometimes starts a new chat, and pauses briefly in between.

Records server errors (failed events, ERROR/Traceback lines in the server log, non-200
answers), per-user messages sent/finished/stopped, and the server's resident memory every
few seconds. At the end it opens the history database read-only and checks that every
user's chats hold all of that user's tags and none of another user's, and that every
finished reply is stored as done or stopped.

    .venv/bin/python bench/load_test.py [--users 8] [--seconds 300]

Passes with zero server errors, no history lost or mixed, and resident memory growth after
warm-up (the first 20% of the run) under 10%. Prints a table, writes
bench/results/load_test.md, exits non-zero if a check fails.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.load_client import LoadResult, run_load  # noqa: E402

MEMORY_GROWTH_LIMIT = 0.10
MIB = 1024 * 1024


def checks(result: LoadResult) -> list[tuple[str, bool, str]]:
    base, end, growth = result.memory_growth()
    history = result.history
    return [
        ("zero server errors", not result.server_errors, f"{len(result.server_errors)} error(s)"),
        ("no history lost", not history.lost, f"{len(history.lost)} tag(s) missing"),
        ("no history mixed", not history.mixed, f"{len(history.mixed)} foreign tag(s)"),
        ("finished replies stored done/stopped", not (history.bad_status or history.leftover),
         f"{len(history.bad_status)} bad, {len(history.leftover)} left streaming/error"),
        (f"memory growth after warm-up < {MEMORY_GROWTH_LIMIT:.0%}", growth < MEMORY_GROWTH_LIMIT,
         f"{base / MIB:.0f} -> {end / MIB:.0f} MiB ({growth:+.1%})"),
    ]


def _load_summary(samples: list[float]) -> str:
    if not samples:
        return "not sampled"
    ordered = sorted(samples)
    return f"{ordered[len(ordered) // 2]:.1f} median, {ordered[-1]:.1f} max"


def report(result: LoadResult, args) -> str:
    users = result.users
    lines = [f"# Load test: {len(users)} users for {args.seconds:.0f} s through the web endpoints", "",
             f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.node()}, {platform.processor() or platform.machine()}; "
             f"server --parallel {args.parallel}, settings `{result.server_settings.strip().replace(chr(10), '; ')}`, "
             f"default model. Users ran {result.seconds:.0f} s in all (the last replies finish after the deadline). "
             f"{os.cpu_count()} CPU cores, shared: the 1-minute load average during the run was "
             f"{_load_summary(result.load_average)}.",
             "", "Each user: Gradio's queue protocol over HTTP (queue/join + the SSE stream, Stop via "
             "run/predict, the heartbeat connection held open), own browser key, Stop on ~15% of messages, connection closed mid-stream "
             "on ~10% (then a page reload), a new chat on ~5%, pauses of 0.1-1.5 s.", "",
             "| user | sent | finished | stopped | disconnected | failed | page loads | new chats | errors |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    total = dict(sent=0, finished=0, stopped=0, disconnected=0, failed=0, page_loads=0, new_chats=0, errors=0)
    for u in users:
        row = dict(sent=u.sent, finished=u.finished, stopped=u.stopped, disconnected=u.disconnected,
                   failed=u.failed, page_loads=u.page_loads, new_chats=u.new_chats, errors=len(u.errors))
        for key in total:
            total[key] += row[key]
        lines.append(f"| {u.index} | " + " | ".join(str(v) for v in row.values()) + " |")
    lines.append("| **all** | " + " | ".join(f"**{v}**" for v in total.values()) + " |")
    durations = sorted(o.seconds for u in users for o in u.outcomes if o.finished and not o.stop_sent)
    if durations:
        lines += ["", f"Messages answered in full: {len(durations)}, time from send to the end of the reply "
                  f"median {durations[len(durations) // 2]:.1f} s, p90 {durations[int(len(durations) * 0.9)]:.1f} s, "
                  f"max {durations[-1]:.1f} s."]
    history = result.history
    lines += ["", f"History database: {history.chats} chats, {history.messages} messages, statuses "
              + ", ".join(f"{k} {v}" for k, v in sorted(history.status_counts.items())) + "."]
    if result.memory:
        rss = [r for _, r in result.memory]
        base, end, growth = result.memory_growth()
        lines += ["", f"Server resident memory: {len(rss)} samples; start {rss[0] / MIB:.0f} MiB, after warm-up "
                  f"{base / MIB:.0f} MiB, end {end / MIB:.0f} MiB, peak {max(rss) / MIB:.0f} MiB "
                  f"(growth after warm-up {growth:+.1%}).", "", "| time (s) | RSS (MiB) |", "|---:|---:|"]
        step = max(1, len(result.memory) // 12)
        for t, r in result.memory[::step] + ([result.memory[-1]] if (len(result.memory) - 1) % step else []):
            lines.append(f"| {t:.0f} | {r / MIB:.0f} |")
    lines += ["", "| check | result | detail |", "|---|---|---|"]
    for name, ok, detail in checks(result):
        lines.append(f"| {name} | {'PASS' if ok else 'FAIL'} | {detail} |")
    problems = result.server_errors + history.lost + history.mixed + history.bad_status + history.leftover
    if problems:
        lines += ["", "Problems (first 30):", ""] + [f"- `{p[:300]}`" for p in problems[:30]]
    warnings = [w for u in users for w in u.warnings]
    if warnings:
        lines += ["", f"Notices shown to users: {len(warnings)} (first 10):", ""] + \
                 [f"- {w[:200]}" for w in warnings[:10]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "load_test.md"))
    args = parser.parse_args(argv)
    if not 1 <= args.users <= 64 or not 1 <= args.seconds <= 3600:
        parser.error("--users must be 1-64 and --seconds 1-3600")
    settings = f"preset: Deterministic\nmax_new_tokens: {args.max_new_tokens}\n"

    def progress(t, rss, users):
        sent = sum(u.stats.sent for u in users)
        errors = sum(len(u.stats.errors) for u in users)
        print(f"  {t:6.0f} s  RSS {rss / MIB:6.0f} MiB  sent {sent:5d}  errors {errors}", flush=True)
    last = [0.0]

    def throttled(t, rss, users):
        if t - last[0] >= 15 or t < 1:
            last[0] = t
            progress(t, rss, users)

    with tempfile.TemporaryDirectory(prefix="load-test-") as workdir:
        print(f"{args.users} users for {args.seconds:.0f} s (server in {workdir})", flush=True)
        result = run_load(Path(workdir), args.users, args.seconds, parallel=args.parallel,
                          settings=settings, seed=args.seed, progress=throttled)
    text = report(result, args)
    print(text)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    print(f"Written to {output}")
    return 0 if all(ok for _, ok, _ in checks(result)) else 1


if __name__ == "__main__":
    sys.exit(main())
