"""Downloading models from a Hugging Face repository, through a fake hub on loopback.

The fake hub is a real HTTP server on 127.0.0.1 that answers the requests
huggingface_hub makes: repository info with file sizes, then HEAD and GET of
/{repo}/resolve/{revision}/{file}. HF_ENDPOINT points at it, so nothing leaves
this machine.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "3")
os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
os.environ.pop("HF_HUB_OFFLINE", None)

from loaders.settings import LoadSettings  # noqa: E402
from modules import hub_download, model_files  # noqa: E402
from modules.hub_download import DownloadError  # noqa: E402
from modules.model_manager import ModelManager  # noqa: E402
from modules.params import GenerationParams  # noqa: E402
from modules.scheduler import Scheduler  # noqa: E402
from modules.template_render import render_chat_template  # noqa: E402
from tests.conftest import DEFAULT_GGUF  # noqa: E402

COMMIT = "0123456789abcdef0123456789abcdef01234567"
GGUF_REPO = "test-org/SmolLM2-135M-Instruct-GGUF"
TWO_GGUF_REPO = "test-org/two-quantizations-GGUF"
FOLDER_REPO = "test-org/tiny-folder"
FAULTY_REPO = "test-org/faulty-folder"            # its second file fails as FakeHubHandler.faults says
FAULTY_GGUF_REPO = "test-org/faulty-GGUF"
BIG = bytes(range(256)) * 8192                    # 2 MiB: large enough to be cut in the middle


def _repos() -> dict[str, dict[str, bytes | Path]]:
    """Repository id -> {path in the repository: its bytes, or a file on disk to serve}."""
    return {
        GGUF_REPO: {DEFAULT_GGUF.name: DEFAULT_GGUF, "README.md": b"# SmolLM2 GGUF\n"},
        TWO_GGUF_REPO: {"model.Q4_K_M.gguf": b"GGUF-a", "model.Q8_0.gguf": b"GGUF-b"},
        FOLDER_REPO: {"config.json": b'{"model_type": "llama"}', "tokenizer.json": b"{}",
                      "sub/notes.txt": b"hello"},
        FAULTY_REPO: {"config.json": b'{"model_type": "llama"}', "model.safetensors": BIG},
        FAULTY_GGUF_REPO: {"model.Q4_0.gguf": b"GGUF" + BIG},
    }


def _size(content: bytes | Path) -> int:
    return content.stat().st_size if isinstance(content, Path) else len(content)


class FakeHubHandler(BaseHTTPRequestHandler):
    repos: dict = {}
    authorizations: list = []          # the Authorization header of each request, None when absent
    # file name -> how its download fails: "drop" (the connection closes halfway through
    # the body, on every attempt), "500" (the GET answers a server error), "gated"
    faults: dict = {}

    def log_message(self, *args):      # keeps the test output quiet
        pass

    def do_GET(self):
        self._answer(send_body=True)

    def do_HEAD(self):
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        self.authorizations.append(self.headers.get("Authorization"))
        path = self.path.split("?")[0]
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            return self._repo_info("/".join(parts[2:4]))
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._file("/".join(parts[:2]), "/".join(parts[4:]), send_body)
        self._error(404, "RepoNotFound")

    def _repo_info(self, repo_id: str) -> None:
        files = self.repos.get(repo_id)
        if files is None:
            return self._error(401, "RepoNotFound")     # what the hub answers for unknown repos
        body = json.dumps({"id": repo_id, "sha": COMMIT, "private": False, "siblings": [
            {"rfilename": name, "size": _size(content)} for name, content in files.items()]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _file(self, repo_id: str, name: str, send_body: bool) -> None:
        files = self.repos.get(repo_id)
        if files is None:
            return self._error(401, "RepoNotFound")
        if name not in files:
            return self._error(404, "EntryNotFound")
        fault = self.faults.get(name)
        if fault == "gated":
            return self._error(403, "GatedRepo")
        if fault == "500" and send_body:
            return self._error(500, "InternalServerError")
        content = files[name]
        size = _size(content)
        start = 0
        if self.headers.get("Range", "").startswith("bytes="):
            start = int(self.headers["Range"][6:].split("-")[0])
        self.send_response(206 if start else 200)
        self.send_header("ETag", f'"{repo_id}-{name}-{size}"'.replace("/", "_"))
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("Content-Length", str(size - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if not send_body:
            return
        if fault == "drop":
            self.wfile.write(content[start:start + max(1, (size - start) // 2)])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if isinstance(content, Path):
            with content.open("rb") as source:
                source.seek(start)
                shutil.copyfileobj(source, self.wfile, 1 << 20)
        else:
            self.wfile.write(content[start:])

    def _error(self, status: int, code: str) -> None:
        body = b'{"error": "not found"}'
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


@pytest.fixture(scope="module")
def fake_hub():
    FakeHubHandler.repos = _repos()
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHubHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def hub(fake_hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", fake_hub)
    return fake_hub


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- downloads that work ------------------------------------------------------------------

def test_gguf_download_lands_in_models_and_answers(hub, tmp_path):
    if not DEFAULT_GGUF.exists():
        pytest.fail(f"{DEFAULT_GGUF} is missing: run ./run_tests.sh, which installs it.")
    steps = []
    result = hub_download.download(GGUF_REPO, "*Q4_1.gguf", tmp_path,
                                   progress=lambda fraction, message: steps.append((fraction, message)))

    landed = tmp_path / DEFAULT_GGUF.name
    assert result.path == landed and landed.stat().st_size == DEFAULT_GGUF.stat().st_size
    # the user sees exactly one new model, with the right loader, and no leftovers
    assert [(e.name, e.loader) for e in model_files.list_models(tmp_path)] == [(DEFAULT_GGUF.name, "llama.cpp")]
    assert not (tmp_path / hub_download.STAGING_FOLDER).exists()
    fractions = [f for f, _ in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(steps) > 3
    assert "MiB" in result.message

    manager = ModelManager(Scheduler(), tmp_path)
    loaded = manager.load(DEFAULT_GGUF.name, LoadSettings(ctx_size=512, parallel=1))
    assert loaded.ok, loaded.message
    try:
        prompt = render_chat_template(manager.info.chat_template,
                                      [{"role": "user", "content": "Tell me the capital of France."}],
                                      add_generation_prompt=True)
        reply = manager.scheduler.submit(prompt, GenerationParams(do_sample=False, max_new_tokens=24)).text()
        assert "Paris" in reply
    finally:
        manager.unload()

    again = hub_download.download(GGUF_REPO, DEFAULT_GGUF.name, tmp_path)
    assert again.already_present and "already" in again.message


def test_full_repository_lands_in_owner_name_folder(hub, tmp_path):
    result = hub_download.download(f"{hub}/{FOLDER_REPO}/tree/main", "", tmp_path)   # a pasted address works too
    folder = tmp_path / "test-org_tiny-folder"
    assert result.path == folder
    assert (folder / "config.json").read_bytes() == b'{"model_type": "llama"}'
    assert (folder / "sub" / "notes.txt").read_text() == "hello"
    assert [(e.name, e.loader) for e in model_files.list_models(tmp_path)] == [("test-org_tiny-folder", "Transformers")]


def test_pattern_picks_one_quantization(hub, tmp_path):
    result = hub_download.download(TWO_GGUF_REPO, "*Q8_0.gguf", tmp_path)
    assert result.path == tmp_path / "model.Q8_0.gguf" and result.path.read_bytes() == b"GGUF-b"
    assert not (tmp_path / "model.Q4_K_M.gguf").exists()


# ---- clear messages -----------------------------------------------------------------------

@pytest.mark.parametrize("repo_id", ["not a repo", "owner/name/extra", "../etc", "owner/", ""])
def test_invalid_repository_id(hub, tmp_path, repo_id):
    with pytest.raises(DownloadError, match="repository id"):
        hub_download.download(repo_id, "", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_missing_repository(hub, tmp_path):
    with pytest.raises(DownloadError, match="test-org/no-such-model was not found") as caught:
        hub_download.download("test-org/no-such-model", "", tmp_path)
    assert hub in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_no_matching_file_lists_the_files(hub, tmp_path):
    with pytest.raises(DownloadError, match=r"No file in .* matches '\*Q2_K.gguf'") as caught:
        hub_download.download(GGUF_REPO, "*Q2_K.gguf", tmp_path)
    assert DEFAULT_GGUF.name in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_several_gguf_files_ask_for_a_choice(hub, tmp_path):
    with pytest.raises(DownloadError, match="2 GGUF files") as caught:
        hub_download.download(TWO_GGUF_REPO, "", tmp_path)
    assert "model.Q4_K_M.gguf" in str(caught.value) and "model.Q8_0.gguf" in str(caught.value)


def test_unreachable_hub(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_free_port()}")   # nothing listens there
    with pytest.raises(DownloadError, match="Could not reach http://127.0.0.1"):
        hub_download.download(GGUF_REPO, "*.gguf", tmp_path)


# ---- what a shared server needs ---------------------------------------------------------------

def test_the_servers_token_is_sent_only_when_asked(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_operator_secret")
    FakeHubHandler.authorizations.clear()
    hub_download.download(FOLDER_REPO, "", tmp_path / "plain")
    assert FakeHubHandler.authorizations and not any(FakeHubHandler.authorizations)
    FakeHubHandler.authorizations.clear()
    hub_download.download(FOLDER_REPO, "", tmp_path / "admin", use_token=True)
    assert "Bearer hf_operator_secret" in FakeHubHandler.authorizations


def test_an_existing_model_folder_is_never_overwritten(hub, tmp_path):
    existing = tmp_path / hub_download.target_folder_name(FOLDER_REPO)
    existing.mkdir()
    (existing / "config.json").write_text('{"mine": true}')
    with pytest.raises(hub_download.DownloadError, match="not replaced"):
        hub_download.download(FOLDER_REPO, "", tmp_path)
    assert (existing / "config.json").read_text() == '{"mine": true}'
    assert sorted(p.name for p in existing.iterdir()) == ["config.json"]


def test_a_download_larger_than_the_free_disk_is_refused_before_fetching(hub, tmp_path):
    free = shutil.disk_usage(tmp_path).free
    FakeHubHandler.authorizations.clear()
    with pytest.raises(hub_download.DownloadError, match="Not enough disk space"):
        hub_download.download(FOLDER_REPO, "", tmp_path, margin_bytes=free)
    assert not (tmp_path / hub_download.target_folder_name(FOLDER_REPO)).exists()
    assert len(FakeHubHandler.authorizations) == 1          # only the look-up; no file was fetched


# ---- downloads that fail midway leave nothing behind --------------------------------------------

@pytest.fixture
def faults():
    FakeHubHandler.faults = {}
    yield FakeHubHandler.faults
    FakeHubHandler.faults = {}


def assert_nothing_left(models_dir: Path) -> None:
    """No model, no half-made file or folder, no staging folder: as before the download."""
    assert model_files.list_models(models_dir) == []
    leftovers = [str(p.relative_to(models_dir)) for p in models_dir.rglob("*")]
    assert leftovers == [], leftovers


@pytest.mark.parametrize("fault, message", [
    ("drop", "peer closed connection"),
    ("500", "HTTP 500"),
    ("gated", "gated"),
])
@pytest.mark.parametrize("repo, failing", [(FAULTY_REPO, "model.safetensors"),
                                           (FAULTY_GGUF_REPO, "model.Q4_0.gguf")])
def test_a_download_failing_midway_leaves_no_half_made_model(hub, faults, tmp_path, fault, message,
                                                              repo, failing):
    models = tmp_path / "models"
    models.mkdir()
    faults[failing] = fault
    seen = []
    with pytest.raises(DownloadError, match=message):
        hub_download.download(repo, "", models, margin_bytes=0,
                              progress=lambda fraction, text: seen.append(fraction))
    if repo == FAULTY_REPO:
        assert any(f > 0 for f in seen), "the first file was not fetched before the failure"
    assert_nothing_left(models)

    faults.clear()                    # the hub recovers: the same download now completes
    result = hub_download.download(repo, "", models, margin_bytes=0)
    assert [p.name for p in models.iterdir()] == [result.path.name]
    if repo == FAULTY_REPO:
        assert (result.path / "model.safetensors").read_bytes() == BIG
    else:
        assert result.path.read_bytes() == b"GGUF" + BIG
