"""Browser tests: the real server (real model) in a subprocess, driven by Chromium.

One server for the whole session (plus one with accounts for the accounts tests); each
test gets a fresh browser context, so it is a new visitor with its own chats.
"""
from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv" / "bin" / "python"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PORTS = range(7900, 8000)
START_TIMEOUT = 120
ACCOUNTS = {"alice": "wonderland1", "bob": "builder22"}
ADMIN = "alice"                 # --admin-users on the server with accounts
# Greedy and short: the tests' prompts are ones the small model answers robustly this way.
TEST_SETTINGS = "preset: Deterministic\nmax_new_tokens: 48\n"


def free_port(ports=PORTS) -> int:
    candidates = list(ports)
    random.shuffle(candidates)
    for port in candidates:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")


class ServerProcess:
    """server.py on 127.0.0.1 with its own data folder; .url once it answers."""

    def __init__(self, workdir: Path, extra_args: list[str] = (), ctx_size: int = 2048,
                 settings: str | None = TEST_SETTINGS, port: int | None = None):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        args = [str(PYTHON if PYTHON.exists() else sys.executable), "server.py",
                "--listen-port", str(self.port), "--data-dir", str(workdir / "data"),
                "--ctx-size", str(ctx_size), *extra_args]
        if settings is not None:
            settings_file = workdir / "settings.yaml"
            settings_file.write_text(settings, encoding="utf-8")
            args += ["--settings", str(settings_file)]
        self.log_path = workdir / "server.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(args, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        raise RuntimeError(f"server did not answer within {timeout} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self._log.close()


def serve(workdir: Path, **kwargs):
    """For a fixture to `yield from`: a ServerProcess(workdir, **kwargs) once it answers,
    stopped when the fixture ends (also when it never came up)."""
    server = ServerProcess(workdir, **kwargs)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """The real server with the default model, greedy settings, no accounts."""
    yield from serve(tmp_path_factory.mktemp("server"))


@pytest.fixture(scope="session")
def server_url(server) -> str:
    return server.url


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory):
    """A second server with log-in accounts: alice, an admin, and bob, who is not."""
    auth = ",".join(f"{user}:{password}" for user, password in ACCOUNTS.items())
    yield from serve(tmp_path_factory.mktemp("auth-server"),
                     extra_args=["--gradio-auth", auth, "--admin-users", ADMIN])


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run ./run_tests.sh, which installs chromium.")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_context(browser):
    """Makes fresh browser contexts (separate visitors: own storage, own cookies)."""
    contexts = []

    def make():
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(30_000)
        contexts.append(context)
        return context
    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_context):
    return new_context().new_page()


@pytest.fixture
def new_visitor(browser):
    """new_visitor(**context options) -> a page of a new browser context (a new visitor),
    closed after the test: a locale, a viewport..."""
    contexts = []

    def make(**options):
        context = browser.new_context(**options)
        context.set_default_timeout(30_000)
        contexts.append(context)
        return context.new_page()
    yield make
    for context in contexts:
        context.close()
