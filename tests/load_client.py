"""Simulated browser users for load tests: Gradio's own HTTP queue protocol, no browser.

A `WebUser` talks to a running server the way the page does (Gradio 6, protocol sse_v3):

  * GET /config; the Chat tab's events are found by their trigger's elem_id (chat-send,
    chat-stop, chat-new) and the tab's load handler as the load event whose outputs
    include the Send button;
  * a page visit is a fresh random session_hash: the load events run through the queue,
    the Chat tab's first, with this user's browser key (what the page keeps in
    localStorage) so the server sets this session's owner; State values stay on the
    server, keyed by session_hash (the page sends null for them);
  * a queued event: POST /gradio_api/queue/join {data, fn_index, trigger_id, session_hash,
    event_data} -> {event_id}, then GET /gradio_api/queue/data?session_hash=... streams
    server-sent events (estimation, process_starts, process_generating, process_completed,
    close_stream) until the session has nothing pending;
  * an unqueued event (queue=False, e.g. Stop): POST /gradio_api/run/predict with the same
    body; the answer is the outputs as JSON;
  * while a page is open it holds GET /gradio_api/heartbeat/{session_hash} open, as the page
    does (connect_heartbeat); closing it tells the server the tab is gone;
  * a disconnect is closing the SSE connection mid-stream (and the heartbeat: the tab is
    closed or reloaded): the server cancels the session's events. The user then comes back
    as a new page visit with the same browser key.

`run_load` starts a server (tests/browser/conftest.py's ServerProcess), runs N users for a
while, samples the server's resident memory, then checks the history database.
"""
from __future__ import annotations

import json
import os
import random
import re
import secrets
import socket
import sqlite3
import string
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

API = "/gradio_api"
TAG_RE = re.compile(r"\[u(\d+)-m(\d+)\]")
PROMPTS = [
    "What is the capital of France?", "Name three colours.", "Say hello in Spanish.",
    "What is two plus two?", "Give me a short tip for sleeping well.", "What do cats eat?",
    "Write one sentence about the sea.", "Which planet is the largest?",
    "Tell me a fun fact about bees.", "How many days are in a week?",
    "Suggest a name for a dog.", "What is water made of?",
]
EVENT_TIMEOUT = 300.0          # the longest one event may take, queue wait included (a hang fails)
HTTP_TIMEOUT = httpx.Timeout(30.0, read=60.0)
SERVER_LOG_ERROR = re.compile(r"\bERROR\b|Traceback \(most recent call last\)")


class ProtocolError(RuntimeError):
    pass


# ---- the page's configuration ---------------------------------------------------------------
@dataclass
class Endpoint:
    fn_index: int
    trigger_id: int | None
    inputs: list[int]
    outputs: list[int]
    queue: bool


@dataclass
class PageConfig:
    components: dict[int, dict]
    chat_load: Endpoint                  # the Chat tab's on_load (browser key -> owner)
    other_loads: list[Endpoint]          # the page's other load events (State initial values...)
    send: Endpoint
    stop: Endpoint
    new_chat: Endpoint | None
    connect_heartbeat: bool = False

    @classmethod
    def parse(cls, config: dict) -> PageConfig:
        components = {c["id"]: c for c in config["components"]}
        by_elem = {c.get("props", {}).get("elem_id"): c["id"] for c in config["components"]
                   if c.get("props", {}).get("elem_id")}

        def endpoint(index, dep, trigger_id=None) -> Endpoint:
            return Endpoint(index, trigger_id, list(dep["inputs"]), list(dep["outputs"]),
                            dep.get("queue") is not False)

        def triggered_by(elem_id: str, event: str) -> Endpoint | None:
            target = by_elem.get(elem_id)
            for index, dep in enumerate(config["dependencies"]):
                if [target, event] in [list(t) for t in dep["targets"]]:
                    return endpoint(dep.get("id", index), dep, target)
            return None

        send, stop = triggered_by("chat-send", "click"), triggered_by("chat-stop", "click")
        if send is None or stop is None:
            raise ProtocolError("the page has no chat-send or chat-stop click event")
        # the page's load events that run on the server (a JavaScript-only one has no backend)
        loads = [endpoint(dep.get("id", i), dep) for i, dep in enumerate(config["dependencies"])
                 if any(t[1] == "load" for t in dep["targets"]) and dep.get("backend_fn", True)]
        send_button = by_elem["chat-send"]
        chat_load = next((e for e in loads if send_button in e.outputs), None)
        if chat_load is None:
            raise ProtocolError("no load event sets the chat-send button (the Chat tab's on_load)")
        return cls(components, chat_load, [e for e in loads if e is not chat_load], send, stop,
                   triggered_by("chat-new", "click"), bool(config.get("connect_heartbeat")))

    def is_state(self, component_id: int) -> bool:
        return self.components[component_id].get("type") in ("state",)

    def default_inputs(self, endpoint: Endpoint, overrides: dict[int, object] | None = None) -> list:
        """What the page sends: null for State (kept on the server), else the shown value."""
        overrides = overrides or {}
        data = []
        for cid in endpoint.inputs:
            if cid in overrides:
                data.append(overrides[cid])
            elif self.is_state(cid):
                data.append(None)
            else:
                data.append(self.components[cid].get("props", {}).get("value"))
        return data


# ---- one simulated browser user -------------------------------------------------------------
@dataclass
class Outcome:
    tag: str
    text: str
    started: bool = False           # the server took it (it streamed or finished)
    finished: bool = False          # process_completed arrived with success
    failed: str | None = None       # the event failed: why
    stop_sent: bool = False
    disconnected: bool = False
    status_line: str = ""
    chunks: int = 0
    seconds: float = 0.0


@dataclass
class UserStats:
    index: int
    owner_key: str
    sent: int = 0
    finished: int = 0
    stopped: int = 0
    disconnected: int = 0
    failed: int = 0
    page_loads: int = 0
    new_chats: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)      # failed events, bad HTTP answers
    warnings: list[str] = field(default_factory=list)    # gr.Warning / gr.Info shown to the user


def random_session_hash() -> str:
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(11))


class WebUser:
    """One person in one browser: their own browser key, one page (session) at a time."""

    def __init__(self, base_url: str, index: int, page: PageConfig | None = None,
                 browser_key: str | None = None, rng: random.Random | None = None):
        self.base = base_url.rstrip("/")
        self.index = index
        self.browser_key = browser_key or secrets.token_urlsafe(24)     # 32 URL-safe characters
        self.rng = rng or random.Random()
        self.client = httpx.Client(timeout=HTTP_TIMEOUT)
        self.stats = UserStats(index, self.browser_key)
        self.page = page
        self.session_hash = ""
        self.owner_ready = False
        self._lock = threading.Lock()
        self._heartbeat: tuple | None = None      # (reader thread, leaving, client, sockets)

    def close(self) -> None:
        self.leave_page()
        self.client.close()

    # -- the page's heartbeat connection
    def _start_heartbeat(self) -> None:
        if not (self.page and self.page.connect_heartbeat):
            return
        leaving, client = threading.Event(), httpx.Client(timeout=HTTP_TIMEOUT)
        url = f"{self.base}{API}/heartbeat/{self.session_hash}"
        sockets: list = []

        def hold():
            try:
                with client.stream("GET", url) as response:
                    stream = response.extensions.get("network_stream")
                    if stream is not None:
                        sockets.append(stream.get_extra_info("socket"))
                    if response.status_code != 200:
                        self._error(f"GET /heartbeat: HTTP {response.status_code}")
                        return
                    for _ in response.iter_lines():
                        if leaving.is_set():
                            return
            except Exception:      # closing the client under the reader ends it with some error
                if not leaving.is_set():
                    self._error("the heartbeat connection broke")
        thread = threading.Thread(target=hold, daemon=True)
        thread.start()
        self._heartbeat = (thread, leaving, client, sockets)

    def leave_page(self) -> None:
        """Closes the tab: drops the heartbeat connection."""
        if self._heartbeat is None:
            return
        thread, leaving, client, sockets = self._heartbeat
        self._heartbeat = None
        leaving.set()
        for sock in sockets:          # wakes the reader now, not at the next heartbeat
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except (OSError, AttributeError):
                pass
        client.close()
        thread.join(5)

    # -- HTTP helpers
    def _error(self, message: str) -> None:
        with self._lock:
            self.stats.errors.append(message)

    def _post(self, path: str, body: dict) -> dict:
        response = self.client.post(self.base + path, json=body)
        if response.status_code != 200:
            self._error(f"POST {path}: HTTP {response.status_code} {response.text[:300]}")
            raise ProtocolError(f"POST {path}: HTTP {response.status_code}")
        return response.json()

    def fetch_config(self) -> PageConfig:
        response = self.client.get(self.base + "/config")
        if response.status_code != 200:
            self._error(f"GET /config: HTTP {response.status_code}")
            raise ProtocolError(f"GET /config: HTTP {response.status_code}")
        self.page = PageConfig.parse(response.json())
        return self.page

    def _body(self, endpoint: Endpoint, data: list) -> dict:
        return {"data": data, "event_data": None, "fn_index": endpoint.fn_index,
                "trigger_id": endpoint.trigger_id, "session_hash": self.session_hash}

    def join(self, endpoint: Endpoint, data: list) -> str:
        return self._post(f"{API}/queue/join", self._body(endpoint, data))["event_id"]

    def run_unqueued(self, endpoint: Endpoint, data: list) -> dict:
        return self._post(f"{API}/run/predict", self._body(endpoint, data))

    def stream(self, on_message, deadline: float) -> bool:
        """Reads this session's SSE stream until close_stream; on_message(msg) may return
        "disconnect" to drop the connection. Returns False when it was dropped."""
        url = f"{self.base}{API}/queue/data"
        with self.client.stream("GET", url, params={"session_hash": self.session_hash}) as response:
            if response.status_code != 200:
                self._error(f"GET /queue/data: HTTP {response.status_code}")
                raise ProtocolError(f"GET /queue/data: HTTP {response.status_code}")
            for line in response.iter_lines():
                if time.monotonic() > deadline:
                    self._error("an event took longer than %d s" % EVENT_TIMEOUT)
                    return False
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("msg") == "close_stream":
                    return True
                if on_message(message) == "disconnect":
                    return False                        # leaving the `with` closes the connection
        return True

    def _common(self, message: dict, event_label: str) -> None:
        kind = message.get("msg")
        if kind == "log":
            with self._lock:
                self.stats.warnings.append(f"{message.get('level')}: {message.get('log')}")
        elif kind == "unexpected_error":
            self._error(f"{event_label}: unexpected_error {message.get('message')}")
        elif kind == "process_completed" and not message.get("success"):
            output = message.get("output") or {}
            self._error(f"{event_label}: failed: {output.get('error') or output}")

    # -- what a person does
    def open_page(self) -> None:
        """A page visit: a new session; the load events run, the Chat tab's first."""
        if self.page is None:
            self.fetch_config()
        page = self.page
        self.leave_page()
        self.session_hash = random_session_hash()
        self._start_heartbeat()
        self.owner_ready = False
        self.stats.page_loads += 1
        key_input = page.chat_load.inputs[0]
        pending = {self.join(page.chat_load, page.default_inputs(page.chat_load, {key_input: self.browser_key}))}
        for endpoint in page.other_loads:
            pending.add(self.join(endpoint, page.default_inputs(endpoint)))
        completed = set()

        def on_message(message):
            self._common(message, "page load")
            if message.get("msg") == "process_completed":
                completed.add(message.get("event_id"))
                if message.get("success"):
                    pass
        self.stream(on_message, time.monotonic() + EVENT_TIMEOUT)
        if completed != pending:
            self._error(f"page load: {len(pending - completed)} load event(s) never completed")
        self.owner_ready = True

    def new_chat(self) -> None:
        if self.page.new_chat is None:
            return
        self.run_unqueued(self.page.new_chat, self.page.default_inputs(self.page.new_chat))
        self.stats.new_chats += 1

    def stop(self) -> None:
        self.run_unqueued(self.page.stop, self.page.default_inputs(self.page.stop))

    def send(self, text: str, tag: str, *, stop_after: int | None = None,
             disconnect_after: int | None = None) -> Outcome:
        """Sends `text`; presses Stop after `stop_after` streamed updates, or closes the
        connection after `disconnect_after` of them."""
        page = self.page
        outcome = Outcome(tag, text)
        started = time.monotonic()
        data = page.default_inputs(page.send, {page.send.inputs[0]: text})
        event_id = self.join(page.send, data)
        self.stats.sent += 1
        status_index = 2 if len(page.send.outputs) > 2 else None    # chatbot, chat_id, status, ...

        def on_message(message):
            self._common(message, f"send {tag}")
            if message.get("event_id") not in (None, event_id):
                return None
            kind = message.get("msg")
            if kind == "process_generating":
                outcome.started = True
                outcome.chunks += 1
                if disconnect_after is not None and outcome.chunks >= disconnect_after:
                    outcome.disconnected = True
                    return "disconnect"
                if stop_after is not None and outcome.chunks >= stop_after and not outcome.stop_sent:
                    outcome.stop_sent = True
                    self.stop()
            elif kind == "process_completed":
                if message.get("success"):
                    outcome.started = outcome.finished = True
                    values = (message.get("output") or {}).get("data") or []
                    if status_index is not None and len(values) > status_index:
                        line = values[status_index]
                        outcome.status_line = line if isinstance(line, str) else json.dumps(line)
                        if outcome.status_line.startswith("Error"):
                            self._error(f"send {tag}: {outcome.status_line}")
                else:
                    output = message.get("output") or {}
                    outcome.failed = str(output.get("error") or output)
            return None
        self.stream(on_message, started + EVENT_TIMEOUT)
        outcome.seconds = time.monotonic() - started
        with self._lock:
            self.stats.outcomes.append(outcome)
            self.stats.finished += outcome.finished
            self.stats.stopped += outcome.finished and outcome.stop_sent
            self.stats.disconnected += outcome.disconnected
            self.stats.failed += outcome.failed is not None
        if not outcome.finished and not outcome.disconnected and outcome.failed is None:
            self._error(f"send {tag}: the stream ended without the event completing")
        return outcome

    # -- a person's session of chatting
    def chat_for(self, seconds: float, *, max_messages: int = 10_000, stop_rate: float = 0.15,
                 disconnect_rate: float = 0.10, new_chat_rate: float = 0.05,
                 pause: tuple[float, float] = (0.1, 1.5)) -> UserStats:
        deadline = time.monotonic() + seconds
        try:
            self.open_page()
            for number in range(1, max_messages + 1):
                if time.monotonic() >= deadline:
                    break
                tag = f"[u{self.index}-m{number}]"
                text = f"{tag} {self.rng.choice(PROMPTS)}"
                roll = self.rng.random()
                stop_after = disconnect_after = None
                if roll < stop_rate:
                    stop_after = self.rng.randint(1, 6)
                elif roll < stop_rate + disconnect_rate:
                    disconnect_after = self.rng.randint(1, 6)
                try:
                    outcome = self.send(text, tag, stop_after=stop_after, disconnect_after=disconnect_after)
                except (httpx.HTTPError, ProtocolError) as exc:
                    self._error(f"send {tag}: {type(exc).__name__}: {exc}")
                    self.open_page()
                    continue
                if outcome.disconnected:
                    self.leave_page()                # the tab is closed...
                    time.sleep(self.rng.uniform(*pause))
                    self.open_page()                 # ...and opened again
                elif self.rng.random() < new_chat_rate:
                    self.new_chat()
                time.sleep(self.rng.uniform(*pause))
        except (httpx.HTTPError, ProtocolError) as exc:
            self._error(f"user {self.index}: {type(exc).__name__}: {exc}")
        return self.stats


# ---- checks on the history database ---------------------------------------------------------
@dataclass
class HistoryCheck:
    lost: list[str] = field(default_factory=list)          # a user's tag missing from their chats
    mixed: list[str] = field(default_factory=list)         # another user's tag in someone's chats
    bad_status: list[str] = field(default_factory=list)    # a finished reply not stored done/stopped
    leftover: list[str] = field(default_factory=list)      # messages left streaming/error/interrupted
    chats: int = 0
    messages: int = 0
    status_counts: Counter = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.mixed or self.bad_status or self.leftover)


def check_history(db_path: Path, users: list[UserStats], owner_prefix: str = "browser:") -> HistoryCheck:
    """Opens the database read-only and checks every user's chats against what they sent."""
    check = HistoryCheck()
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        rows = db.execute("SELECT c.owner, c.id AS chat_id, m.id, m.role, m.content, m.status "
                          "FROM messages m JOIN chats c ON c.id = m.chat_id ORDER BY m.id").fetchall()
        check.chats = db.execute("SELECT COUNT(*) FROM chats").fetchone()[0]
    finally:
        db.close()
    check.messages = len(rows)
    check.status_counts = Counter(r["status"] for r in rows)
    by_owner: dict[str, list] = {}
    for row in rows:
        by_owner.setdefault(row["owner"], []).append(row)
    sent_by = {}            # tag -> user index, for every tag any user sent
    for user in users:
        for outcome in user.outcomes:
            sent_by[outcome.tag] = user.index
    for row in rows:
        if row["status"] in ("streaming", "error", "interrupted"):
            check.leftover.append(f"message {row['id']} ({row['role']}) is {row['status']}")
    for user in users:
        owner_rows = [r for r in rows if r["owner"].endswith(user.owner_key)]
        owners = {r["owner"] for r in owner_rows}
        if len(owners) > 1:
            check.mixed.append(f"user {user.index}'s key maps to several owners: {sorted(owners)}")
        # what the user said, in order, per chat: tag -> the message after it
        user_messages = {}
        by_chat: dict[str, list] = {}
        for row in owner_rows:
            by_chat.setdefault(row["chat_id"], []).append(row)
        for chat_rows in by_chat.values():
            for position, row in enumerate(chat_rows):
                for match in TAG_RE.finditer(row["content"]):
                    tag = match.group(0)
                    if sent_by.get(tag, user.index) != user.index:
                        check.mixed.append(f"user {user.index}'s chats hold {tag} ({row['role']} "
                                           f"message {row['id']}), sent by user {sent_by[tag]}")
                    if row["role"] == "user" and row["content"].startswith(tag):
                        following = chat_rows[position + 1] if position + 1 < len(chat_rows) else None
                        user_messages.setdefault(tag, following)
        for outcome in user.outcomes:
            if not outcome.started:
                continue        # never taken by the server (dropped while queued): nothing to keep
            if outcome.tag not in user_messages:
                check.lost.append(f"user {user.index}: {outcome.tag} is not in their chats")
                continue
            reply = user_messages[outcome.tag]
            if outcome.finished and (reply is None or reply["role"] != "assistant"
                                     or reply["status"] not in ("done", "stopped")):
                what = "no reply" if reply is None else f"{reply['role']} message status {reply['status']}"
                check.bad_status.append(f"user {user.index}: the reply to {outcome.tag}: {what}")
    known = {u.owner_key for u in users}
    for owner in by_owner:
        if not any(owner.endswith(key) for key in known):
            check.mixed.append(f"chats of an unknown owner {owner!r}")
    return check


def wait_until_settled(db_path: Path, timeout: float = 30.0) -> int:
    """Waits (bounded) until no reply is still streaming; returns how many still are."""
    deadline = time.monotonic() + timeout
    while True:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            streaming = db.execute("SELECT COUNT(*) FROM messages WHERE status = 'streaming'").fetchone()[0]
        finally:
            db.close()
        if streaming == 0 or time.monotonic() >= deadline:
            return streaming
        time.sleep(0.5)


def server_log_errors(log_text: str) -> list[str]:
    lines = log_text.splitlines()
    return [line for line in lines if SERVER_LOG_ERROR.search(line)]


# ---- a whole run ------------------------------------------------------------------------------
@dataclass
class LoadResult:
    users: list[UserStats]
    seconds: float
    memory: list[tuple[float, int]]              # (seconds since users started, RSS bytes)
    history: HistoryCheck
    log_errors: list[str]
    server_settings: str
    still_streaming: int = 0
    load_average: list[float] = field(default_factory=list)   # the machine's 1-minute load, sampled

    @property
    def server_errors(self) -> list[str]:
        return [e for u in self.users for e in u.errors] + self.log_errors

    def memory_growth(self, warmup_fraction: float = 0.2) -> tuple[int, int, float]:
        """(RSS just after warm-up, RSS at the end, growth fraction): medians of the samples
        in the last quarter of the warm-up and in the last 10% of the run, so one spike
        doesn't decide it."""
        if len(self.memory) < 4:
            return 0, 0, 0.0
        total = self.memory[-1][0]
        warm_end = total * warmup_fraction
        base = [rss for t, rss in self.memory if warm_end * 0.75 <= t <= warm_end] or \
            [min(self.memory, key=lambda s: abs(s[0] - warm_end))[1]]
        end = [rss for t, rss in self.memory if t >= total * 0.9] or [self.memory[-1][1]]
        base_rss, end_rss = _median(base), _median(end)
        return base_rss, end_rss, (end_rss - base_rss) / base_rss


def _median(values: list[int]) -> int:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


LOAD_TEST_PORTS = range(8000, 8100)


def run_load(workdir: Path, n_users: int = 8, seconds: float = 30.0, *, parallel: int = 4,
             settings: str = "preset: Deterministic\nmax_new_tokens: 48\n", sample_every: float = 2.0,
             seed: int | None = None, progress=None) -> LoadResult:
    """Starts a server in `workdir`, runs `n_users` for `seconds`, checks, stops the server."""
    import psutil

    from tests.browser.conftest import ServerProcess, free_port

    server = ServerProcess(Path(workdir), extra_args=["--parallel", str(parallel)], ctx_size=2048,
                           settings=settings, port=free_port(LOAD_TEST_PORTS))
    try:
        server.wait_ready()
        process = psutil.Process(server.process.pid)
        rng = random.Random(seed)
        first = WebUser(server.url, 0)
        page = first.fetch_config()
        first.close()
        users = [WebUser(server.url, i + 1, page, rng=random.Random(rng.random())) for i in range(n_users)]
        memory: list[tuple[float, int]] = []
        load_average: list[float] = []
        done = threading.Event()
        started = time.monotonic()

        def sample():
            while not done.is_set():
                try:
                    memory.append((time.monotonic() - started, process.memory_info().rss))
                    load_average.append(os.getloadavg()[0])
                except psutil.Error:
                    return
                if progress is not None:
                    progress(time.monotonic() - started, memory[-1][1], users)
                done.wait(sample_every)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        threads = [threading.Thread(target=u.chat_for, args=(seconds,), daemon=True) for u in users]
        for thread in threads:
            thread.start()
            time.sleep(0.05)
        for thread in threads:
            thread.join(seconds + EVENT_TIMEOUT * 2)
        elapsed = time.monotonic() - started
        done.set()
        sampler.join(10)
        memory.append((time.monotonic() - started, process.memory_info().rss))
        for user in users:
            user.close()
        db_path = Path(workdir) / "data" / "chats" / "history.sqlite3"
        still_streaming = wait_until_settled(db_path)
        log_errors = server_log_errors(server.log_tail(chars=10_000_000))
        history = check_history(db_path, [u.stats for u in users])
        return LoadResult([u.stats for u in users], elapsed, memory, history, log_errors,
                          settings, still_streaming, load_average)
    finally:
        server.stop()
