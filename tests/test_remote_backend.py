"""The Remote loader against a real OpenAI-compatible server: llama-cpp-python's own
(`python -m llama_cpp.server`) on loopback with the default model, loaded through our
model manager, chatted with through the front door."""
from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time

import httpx
import pytest

from loaders.settings import LoadSettings
from modules.chat_session import SessionControl
from modules.front_door import FrontDoor
from modules.limits import Limits
from modules.model_manager import ModelManager
from modules.model_settings_store import ModelSettingsStore
from modules.params import GenerationParams
from modules.roles import Identity
from modules.scheduler import Scheduler
from modules.ui.model_form import FORM_FIELDS
from tests.conftest import DEFAULT_GGUF

KEY = "test-key-7f3c9a"          # the remote's API key: must never come back out
ALICE = Identity(owner="alice", user="alice", address="127.0.0.1", is_admin=False)
FRANCE = [{"role": "user", "content": "Tell me the capital of France."}]
STARTUP_SECONDS = 120


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    """The remote server's /v1 address and its log (stdout and stderr)."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("remote") / "server.log"
    with open(log_path, "wb") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(DEFAULT_GGUF), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "2048", "--api_key", KEY],
            stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"

    def answering():
        if server.poll() is not None:
            raise AssertionError("the server exited:\n" + log_path.read_text(errors="replace")[-3000:])
        try:
            return httpx.get(f"{url}/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        except httpx.HTTPError:
            return False
    try:
        _wait_for(answering, STARTUP_SECONDS, "llama_cpp.server to answer")
        yield url, log_path
    finally:
        server.terminate()
        server.wait(30)


@pytest.fixture(scope="module")
def door(remote):
    manager = ModelManager(Scheduler(), DEFAULT_GGUF.parent)
    result = manager.load("", LoadSettings(loader="Remote", remote_url=remote[0], remote_key=KEY, ctx_size=2048))
    assert result.ok, result.message
    yield FrontDoor(manager.scheduler, Limits())
    manager.unload()


def _chat(door, params, messages=FRANCE, control=None, stop_after_first=False):
    updates = []
    with door.admit(ALICE, params, text=messages[-1]["content"]) as admission:
        for update in admission.stream_chat(messages, None, control):
            updates.append(update)
            if stop_after_first and update.text and update.finished is None:
                control.stop()
    return updates


def test_a_chat_reply_streams_back_through_the_front_door(door):
    updates = _chat(door, GenerationParams(do_sample=False, max_new_tokens=40))
    final = updates[-1]
    assert final.finished.reason == "stop", final.status
    assert "Paris" in final.text
    partial = [u.text for u in updates if u.finished is None and u.text]
    assert partial and all(final.text.startswith(text) for text in partial)
    assert not final.notices, final.notices     # temperature, top_p and the rest are taken


def test_a_sampler_the_remote_does_not_take_is_named_once(door):
    updates = _chat(door, GenerationParams(do_sample=False, max_new_tokens=20, typical_p=0.5,
                                           dry_multiplier=0.8, min_p=0.1))
    notices = [notice for update in updates for notice in update.notices]
    assert updates[-1].finished.reason == "stop" and "Paris" in updates[-1].text
    assert sorted(n.split(" does not take ")[1].split(";")[0] for n in notices) == ["dry_multiplier", "typical_p"]
    assert all("llama-cpp-python server" in notice for notice in notices)


def test_stop_ends_the_reply_and_closes_the_remote_stream(door, remote):
    _, log_path = remote
    disconnects = log_path.read_text(errors="replace").count("Disconnected from client")
    control = SessionControl()
    story = [{"role": "user", "content": "Write a very long story about a dragon and a knight."}]
    updates = _chat(door, GenerationParams(max_new_tokens=1500, seed=7), story, control, stop_after_first=True)
    assert updates[-1].finished.reason == "cancelled"
    assert updates[-1].finished.n_tokens < 200
    # the remote saw the client go, so it stopped generating for us
    _wait_for(lambda: log_path.read_text(errors="replace").count("Disconnected from client") > disconnects,
              60, "the remote server to see the stream closed")
    # and it serves the next request
    assert "Paris" in _chat(door, GenerationParams(do_sample=False, max_new_tokens=20))[-1].text


def test_the_tokens_are_the_remotes(door):
    """The Tokens view counts what the remote model reads: <|im_start|> is one token
    (llama-cpp-python's server does not spell out special tokens, so it is shown by id)."""
    tokens = door.token_view(ALICE, "<|im_start|>user\nHello", GenerationParams())
    assert [text for _, text in tokens] == ["<special token 1>", "user", "\n", "Hello"]


def test_an_engine_without_our_samplers_names_them_and_estimates_tokens(remote):
    """Told it is a plain OpenAI-compatible server, only the standard fields are sent."""
    manager = ModelManager(Scheduler(), DEFAULT_GGUF.parent)
    settings = LoadSettings(loader="Remote", remote_url=remote[0], remote_key=KEY, remote_engine="openai")
    assert manager.load("", settings).ok
    try:
        assert "estimate" in manager.info.details["tokens counted by"]
        updates = _chat(FrontDoor(manager.scheduler, Limits()),
                        GenerationParams(do_sample=False, max_new_tokens=20, top_k=20))
        assert "Paris" in updates[-1].text
        notices = [notice for update in updates for notice in update.notices]
        assert notices == ["The remote server (OpenAI-compatible server) does not take top_k; it was not applied."]
    finally:
        manager.unload()


def test_the_key_is_never_shown_stored_or_logged(remote, tmp_path, caplog):
    url, _ = remote
    caplog.set_level(logging.DEBUG)
    manager = ModelManager(Scheduler(), DEFAULT_GGUF.parent)
    wrong = manager.load("", LoadSettings(loader="Remote", remote_url=url, remote_key="not-" + KEY))
    assert not wrong.ok and "refused the key" in wrong.message
    settings = LoadSettings(loader="Remote", remote_url=url, remote_key=KEY)
    loaded = manager.load("", settings)
    assert loaded.ok, loaded.message
    try:
        store = ModelSettingsStore(tmp_path / "model-settings.yaml")
        store.remember("remote", settings)
        shown = [repr(settings), str(manager.info), loaded.message, manager.status_line(),
                 (tmp_path / "model-settings.yaml").read_text(), caplog.text,
                 str(["" if field.secret else getattr(settings, field.name) for field in FORM_FIELDS])]
        assert not [text for text in shown if KEY in text]
        assert store.get("remote").remote_url == url and store.get("remote").remote_key == ""
    finally:
        manager.unload()


def test_a_wrong_address_or_model_is_refused_with_the_previous_model_kept(remote, tmp_path):
    url, _ = remote
    manager = ModelManager(Scheduler(), DEFAULT_GGUF.parent)
    assert manager.load(DEFAULT_GGUF.name, LoadSettings(ctx_size=512, parallel=1)).ok
    backend = manager.backend
    try:
        for settings, message in [
                (LoadSettings(loader="Remote", remote_url="ftp://example"), "http:// or https://"),
                (LoadSettings(loader="Remote", remote_url=f"http://user:{KEY}@127.0.0.1:1/v1"), "remote-key"),
                (LoadSettings(loader="Remote", remote_url=f"http://127.0.0.1:{_free_port()}/v1"), "cannot be reached"),
                (LoadSettings(loader="Remote", remote_url=url, remote_key=KEY, remote_model="nope"),
                 "does not serve 'nope'")]:
            result = manager.load("", settings)
            assert not result.ok and message in result.message and KEY not in result.message, result.message
            assert manager.backend is backend and "stays loaded" in result.message   # never unloaded
    finally:
        manager.unload()


def test_the_server_started_on_a_remote_serves_the_api_with_no_model_file(remote, tmp_path):
    """`server.py --loader Remote --remote-url ...` needs nothing in models/: the page and
    the API answer from the remote model, and an admin can load it again through the API."""
    from openai import OpenAI

    from tests.api_server import ADMIN_KEY, serve
    url, _ = remote
    (tmp_path / "empty-models").mkdir()
    started = serve(tmp_path, ["--model-dir", str(tmp_path / "empty-models"), "--loader", "Remote",
                               "--remote-url", url, "--remote-key", KEY, "--admin-key", ADMIN_KEY])
    server = next(started)
    try:
        assert KEY not in server.log_tail(200_000)
        client = OpenAI(base_url=f"http://127.0.0.1:{server.api_port}/v1", api_key="unused")
        served = client.models.list().data[0].id
        reply = client.chat.completions.create(model=served, messages=FRANCE, max_tokens=24, temperature=0)
        assert "Paris" in reply.choices[0].message.content
        reloaded = httpx.post(f"http://127.0.0.1:{server.api_port}/v1/internal/model/load",
                              headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=120,
                              json={"model_name": "", "args": {"loader": "Remote", "remote_url": url,
                                                               "remote_key": KEY}})
        assert reloaded.status_code == 200, reloaded.text
    finally:
        started.close()
