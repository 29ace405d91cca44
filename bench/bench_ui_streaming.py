"""How the Chat tab keeps up with a long streamed reply, measured in a real browser.

Starts the server (--ctx-size 8192 --parallel 1, end-of-text banned, max_new_tokens 4000
through --settings), opens the Chat tab in headless Chromium, sends one message and
measures, while the ~4,000-token reply streams in:

  (a) the lag between the last token and the page showing the reply finished. Server
      side: the server runs through bench/stamped_server.py, which records the wall-clock
      time (time.time()) each request's last token was generated. Browser side: a
      MutationObserver stamps (performance.timeOrigin + performance.now()) the moment the
      final summary line ("N tokens, X tokens/s") and the final reply text are in the DOM.
      Same machine, same clock. The reply's save in the history database (updated_at) is
      reported too, to show where the time goes.
  (b) long tasks on the page's main thread (PerformanceObserver, type "longtask").
  (c) that the text on screen is the stored reply: the same words in the same order (the
      screen shows rendered Markdown, so characters of markup and whitespace differ).

    .venv/bin/python bench/bench_ui_streaming.py [--tokens 4000] [--port 7950]

Targets: lag under 0.5 s, no main-thread task over 200 ms. Writes bench/results/ui_streaming.md.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.pairs import machine_load, targets  # noqa: E402

PYTHON = ROOT / ".venv" / "bin" / "python"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PROMPT = "Write a long story about a dragon."
LAG_TARGET_S = 0.5
LONG_TASK_TARGET_MS = 200

# Installed in the page before the message is sent. Records, in epoch milliseconds:
# every DOM change of the chat view (with the reply's length), the status line's
# changes, and every long task.
OBSERVE = """
() => {
  const now = () => performance.timeOrigin + performance.now();
  const rec = window.__bench = {longtasks: [], view: [], status: [], final: null};
  new PerformanceObserver(list => {
    for (const e of list.getEntries())
      rec.longtasks.push({start: performance.timeOrigin + e.startTime, duration: e.duration});
  }).observe({type: "longtask", buffered: false});
  const view = document.querySelector("#chat-view");
  const status = document.querySelector("#chat-status");
  const replyLength = () => {
    const bots = view.querySelectorAll('[data-testid="bot"]');
    return bots.length ? bots[bots.length - 1].textContent.length : 0;
  };
  new MutationObserver(() => rec.view.push([now(), replyLength()]))
    .observe(view, {childList: true, subtree: true, characterData: true});
  new MutationObserver(() => {
    const text = status.textContent.trim();
    const last = rec.status[rec.status.length - 1];
    if (!last || last[1] !== text) rec.status.push([now(), text]);
    if (rec.final === null && /tokens\\/s/.test(text)) rec.final = {t: now(), length: replyLength()};
  }).observe(status, {childList: true, subtree: true, characterData: true});
  window.__replyText = () => {
    const bots = view.querySelectorAll('[data-testid="bot"]');
    return bots.length ? bots[bots.length - 1].textContent : "";
  };
}
"""


def free_port(preferred: int | None) -> int:
    candidates = [preferred] if preferred else []
    candidates += [p for p in range(7950, 8000) if p != preferred]
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 7950-7999")


def start_server(workdir: Path, port: int, tokens: int) -> subprocess.Popen:
    settings = workdir / "settings.yaml"
    settings.write_text(f"preset: Balanced\nseed: 1234\nmax_new_tokens: {tokens}\nban_eos_token: true\n",
                        encoding="utf-8")
    log = open(workdir / "server.log", "wb")
    env = {**os.environ, "BENCH_TOKEN_LOG": str(workdir / "tokens.jsonl")}
    process = subprocess.Popen(
        [str(PYTHON if PYTHON.exists() else sys.executable), "bench/stamped_server.py", "--listen-port", str(port),
         "--data-dir", str(workdir / "data"), "--ctx-size", "8192", "--parallel", "1",
         "--settings", str(settings)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((workdir / "server.log").read_text(errors="replace")[-3000:])
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                return process
        except OSError:
            time.sleep(0.25)
    process.terminate()
    raise RuntimeError("the server did not answer within 120 s")


def server_finish(db_path: Path) -> tuple[float, str, dict]:
    """(save time, reply text, meta) of the last assistant reply, from the history store."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        row = db.execute("SELECT updated_at, content, status, meta FROM messages "
                         "WHERE role = 'assistant' ORDER BY id DESC LIMIT 1").fetchone()
    updated_at, content, status, meta = row
    if status != "done":
        raise RuntimeError(f"the reply ended with status {status!r}")
    return updated_at, content, json.loads(meta or "{}")


def last_token_time(token_log: Path) -> float:
    """Wall-clock time of the last token of the last request that generated any."""
    records = [json.loads(line) for line in token_log.read_text(encoding="utf-8").splitlines()]
    return [r for r in records if r["last_token"] is not None][-1]["last_token"]


def compare_words(stored: str, shown: str) -> str:
    """Whether the screen shows the stored reply: the same words in the same order."""
    a, b = re.findall(r"\w+", stored), re.findall(r"\w+", shown)
    if a == b:
        return f"same {len(a)} words in the same order"
    at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return (f"DIFFERENT: {len(a)} words stored, {len(b)} shown, first difference at word {at} "
            f"(stored {' '.join(a[at:at + 5])!r}, shown {' '.join(b[at:at + 5])!r})")


def run_once(url: str, db_path: Path, timeout_s: float) -> dict:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout, sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.goto(url)
            page.wait_for_selector("#chat-input textarea", timeout=60_000)
            time.sleep(2)                       # the page's load events finish
            page.evaluate(OBSERVE)
            page.locator("#chat-input textarea").fill(PROMPT)
            sent = time.time()
            page.locator("#chat-send").click()
            deadline = time.monotonic() + timeout_s
            while True:       # a progress line every 10 s, so a slow run shows where it is
                try:
                    page.wait_for_function("window.__bench.final !== null", timeout=10_000, polling=500)
                    break
                except PlaywrightTimeout:
                    if time.monotonic() > deadline:
                        raise
                progress = page.evaluate(
                    "[document.querySelector('#chat-status').textContent.trim(),"
                    " (window.__bench.view.at(-1) || [0, 0])[1],"
                    " Math.max(0, ...window.__bench.longtasks.map(t => t.duration)),"
                    " window.__bench.longtasks.length]")
                print(f"  {time.time() - sent:5.0f} s: {progress[0]!r}, {progress[1]} chars on screen, "
                      f"longest task {progress[2]:.0f} ms ({progress[3]} long tasks)", flush=True)
            time.sleep(1.0)                     # anything still arriving after the summary
            record = page.evaluate("window.__bench")
            shown_text = page.evaluate("window.__replyText()")
        finally:
            browser.close()
    saved_s, stored_text, meta = server_finish(db_path)
    finish_s = last_token_time(db_path.parents[2] / "tokens.jsonl")
    final_status_ms = record["final"]["t"]
    # the final text: the first view change that shows the reply at its final length
    final_length = max((length for _, length in record["view"]), default=0)
    text_done_ms = next((t for t, length in record["view"] if length == final_length), None)
    first_text_ms = next((t for t, length in record["view"] if length > 0), None)
    updates = len({round(t) for t, _ in record["view"] if sent * 1000 <= t <= final_status_ms})
    longest = max((task["duration"] for task in record["longtasks"]), default=0.0)
    stream_s = (final_status_ms - (first_text_ms or final_status_ms)) / 1000
    return {
        "tokens": meta.get("tokens"), "server_tokens_per_s": meta.get("tokens_per_second"),
        "reply_chars": len(stored_text), "chars_on_screen": final_length,
        "same_text": compare_words(stored_text, shown_text), "save_after_last_token_s": saved_s - finish_s,
        "lag_status_s": final_status_ms / 1000 - finish_s,
        "lag_text_s": (max(text_done_ms, final_status_ms) if text_done_ms else final_status_ms) / 1000
                      - finish_s,
        "first_text_s": ((first_text_ms or 0) / 1000 - sent) if first_text_ms else None,
        "stream_s": stream_s, "view_updates": updates,
        "longest_task_ms": longest,
        "long_tasks": len(record["longtasks"]),
        "long_tasks_over_200": sum(task["duration"] > 200 for task in record["longtasks"]),
        "long_task_ms_total": sum(task["duration"] for task in record["longtasks"]),
    }


def table(result: dict, tokens: int) -> str:
    lag = max(result["lag_status_s"], result["lag_text_s"])
    rows = [
        ("tokens in the reply (server)", f"{result['tokens']}"),
        ("server speed", f"{result['server_tokens_per_s']:.1f} tokens/s"),
        ("reply length: stored / on screen", f"{result['reply_chars']} / {result['chars_on_screen']} chars "
         "(the screen shows rendered Markdown)"),
        ("**(c) text on screen against the stored reply**", f"**{result['same_text']}**"),
        ("first text on screen after Send", f"{result['first_text_s']:.2f} s" if result["first_text_s"] else "-"),
        ("streaming time on screen", f"{result['stream_s']:.1f} s"),
        ("DOM updates of the chat view (distinct ms)", f"{result['view_updates']}"),
        ("reply saved in the history database after the last token", f"{result['save_after_last_token_s'] * 1000:.0f} ms"),
        ("**(a) lag: last token -> final status on screen**", f"**{result['lag_status_s'] * 1000:.0f} ms**"),
        ("**(a) lag: last token -> final text on screen**", f"**{result['lag_text_s'] * 1000:.0f} ms**"),
        ("**(b) longest main-thread task**", f"**{result['longest_task_ms']:.0f} ms**"),
        ("long tasks (> 50 ms): count / total", f"{result['long_tasks']} / {result['long_task_ms_total']:.0f} ms"),
        ("long tasks over 200 ms", f"{result['long_tasks_over_200']}"),
    ]
    verdict = targets([(f"lag from the last token under {LAG_TARGET_S * 1000:.0f} ms", lag < LAG_TARGET_S),
                       (f"no main-thread task over {LONG_TASK_TARGET_MS} ms",
                        result["longest_task_ms"] <= LONG_TASK_TARGET_MS),
                       ("the screen shows the stored reply", result["same_text"].startswith("same"))],
                      "this file")
    lines = ["| measure | value |", "| --- | --- |"] + [f"| {a} | {b} |" for a, b in rows]
    return "\n".join(lines) + "\n\n" + verdict + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=4000)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed for the reply")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "ui_streaming.md"))
    args = parser.parse_args()

    load_before = machine_load()
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        workdir = Path(tmp)
        port = free_port(args.port)
        server = start_server(workdir, port, args.tokens)
        try:
            result = run_once(f"http://127.0.0.1:{port}/", workdir / "data" / "chats" / "history.sqlite3",
                              args.timeout)
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
    text = table(result, args.tokens)
    print(text)
    report = (f"# Chat tab: streaming a long reply in a real browser\n\n"
              f"One reply of {args.tokens} tokens (end-of-text banned) to \"{PROMPT}\" in the Chat tab, "
              f"headless Chromium, server `--ctx-size 8192 --parallel 1`, default model on llama.cpp "
              f"(bench/bench_ui_streaming.py). Machine: {load_before} before the run, {machine_load()} "
              f"after.\n\n{text}")
    Path(args.out).write_text(report, encoding="utf-8")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
