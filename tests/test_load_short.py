"""A short load test: 8 simulated browser users for 30 s against the real server, through
Gradio's HTTP queue protocol (tests/load_client.py), with Stops and dropped connections.
The five-minute run with the memory check is bench/load_test.py."""
from __future__ import annotations

from tests.load_client import run_load

USERS = 8
SECONDS = 30


def test_eight_users_for_thirty_seconds(tmp_path):
    # Short replies, so each user gets through several messages (and Stops, dropped
    # connections) in half a minute on a small machine.
    result = run_load(tmp_path, USERS, SECONDS, parallel=4, seed=1234,
                      settings="preset: Deterministic\nmax_new_tokens: 16\n")
    problems = "\n".join(result.server_errors[:20])
    assert not result.server_errors, f"server errors:\n{problems}"
    sent = sum(u.sent for u in result.users)
    finished = sum(u.finished for u in result.users)
    assert sent >= USERS and finished >= USERS // 2, f"too little traffic: {sent} sent, {finished} finished"
    assert all(u.page_loads >= 1 and u.sent >= 1 for u in result.users)
    history = result.history
    assert not history.lost, "\n".join(history.lost[:20])
    assert not history.mixed, "\n".join(history.mixed[:20])
    assert not history.bad_status, "\n".join(history.bad_status[:20])
    assert not history.leftover, "\n".join(history.leftover[:20])
    # Loose: a short run is mostly warm-up; bench/load_test.py holds the 10% target.
    base, end, growth = result.memory_growth()
    assert growth < 0.5, f"resident memory grew {growth:.0%} ({base >> 20} -> {end >> 20} MiB)"
