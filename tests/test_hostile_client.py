"""A hostile colleague skips the page and calls the server's Gradio queue endpoints
directly, as a logged-in non-admin. Every handler that changes what everyone uses must
refuse on its own, whatever the page hides."""
from __future__ import annotations

import time

import pytest

from tests.browser.conftest import ServerProcess
from tests.load_client import API, WebUser, random_session_hash

ADMIN, USER = ("alice", "wonderland1"), ("bob", "builder22")
EVENT_TIMEOUT = 300


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("hostile")
    server = ServerProcess(workdir, ["--gradio-auth", f"{ADMIN[0]}:{ADMIN[1]},{USER[0]}:{USER[1]}",
                                     "--admin-users", ADMIN[0]])
    server.wait_ready()
    yield server
    server.stop()


class QueueCaller:
    """Logs in over HTTP, then calls any event of the page by its trigger's elem_id."""

    def __init__(self, base_url: str, name: str, password: str):
        self.user = WebUser(base_url, 0)
        response = self.user.client.post(base_url.rstrip("/") + "/login",
                                          data={"username": name, "password": password})
        assert response.status_code == 200, f"log-in failed for {name}: {response.text[:200]}"
        self.config = self.user.client.get(self.user.base + "/config").json()
        self.user.session_hash = random_session_hash()

    def endpoint(self, elem_id: str, event: str = "click") -> tuple[int, dict, int]:
        target = next(c["id"] for c in self.config["components"]
                      if c.get("props", {}).get("elem_id") == elem_id)
        for index, dep in enumerate(self.config["dependencies"]):
            if [target, event] in [list(t) for t in dep["targets"]]:
                return dep.get("id", index), dep, target
        raise AssertionError(f"no {event} event on #{elem_id}")

    def call(self, elem_id: str, values: dict[str, object] | None = None, event: str = "click") -> dict:
        """Runs the event with the page's default inputs (values by elem_id override them);
        returns {"outputs": [...], "logs": [toast texts], "success": bool}."""
        fn_index, dep, trigger = self.endpoint(elem_id, event)
        components = {c["id"]: c for c in self.config["components"]}
        ids = {c.get("props", {}).get("elem_id"): c["id"] for c in self.config["components"]}
        overrides = {ids[k]: v for k, v in (values or {}).items()}
        data = [overrides.get(cid, None if components[cid].get("type") == "state"
                              else components[cid].get("props", {}).get("value")) for cid in dep["inputs"]]
        body = {"data": data, "event_data": None, "fn_index": fn_index, "trigger_id": trigger,
                "session_hash": self.user.session_hash}
        response = self.user.client.post(f"{self.user.base}{API}/queue/join", json=body)
        assert response.status_code == 200, response.text[:300]
        result = {"outputs": None, "logs": [], "success": False}

        def on_message(message):
            if message.get("msg") == "log":
                result["logs"].append(message.get("log") or "")
            elif message.get("msg") == "process_completed":
                result["success"] = bool(message.get("success"))
                result["outputs"] = (message.get("output") or {}).get("data")
        self.user.stream(on_message, time.monotonic() + EVENT_TIMEOUT)
        return result


def model_status(caller: QueueCaller) -> str:
    """What the Model tab's info box says now (its page-load event, as any visitor runs it)."""
    fn_index, dep = next((dep.get("id", i), dep) for i, dep in enumerate(caller.config["dependencies"])
                         if any(t[1] == "load" for t in dep["targets"])
                         and _elem(caller, "model-info") in dep["outputs"])
    body = {"data": [None] * len(dep["inputs"]), "event_data": None, "fn_index": fn_index,
            "trigger_id": None, "session_hash": caller.user.session_hash}
    caller.user.client.post(f"{caller.user.base}{API}/queue/join", json=body)
    outputs = {}

    def on_message(message):
        if message.get("msg") == "process_completed":
            outputs["data"] = (message.get("output") or {}).get("data")
    caller.user.stream(on_message, time.monotonic() + EVENT_TIMEOUT)
    return str(outputs["data"][dep["outputs"].index(_elem(caller, "model-info"))])


def _elem(caller: QueueCaller, elem_id: str) -> int:
    return next(c["id"] for c in caller.config["components"] if c.get("props", {}).get("elem_id") == elem_id)


@pytest.mark.parametrize("elem_id, values", [
    ("model-unload", {}),
    ("model-reload", {}),
    ("model-load", {"model-choice": "SmolLM2-135M-Instruct.Q4_1.gguf", "model-loader": "llama.cpp"}),
    ("download-start", {"download-repo": "bartowski/SmolLM2-135M-Instruct-GGUF"}),
])
def test_a_non_admin_calling_model_actions_directly_is_refused(server, elem_id, values):
    bob = QueueCaller(server.url, *USER)
    before = model_status(bob)
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in before
    result = bob.call(elem_id, values)
    assert any("Only an admin can" in log for log in result["logs"]), result
    assert "Only an admin can" in str(result["outputs"])
    assert model_status(bob) == before or "SmolLM2" in model_status(bob)
    assert "Unloaded" not in server.log_tail(20_000) and "Downloaded" not in server.log_tail(20_000)


def test_the_admin_can_do_the_same_through_the_same_endpoint(server):
    """The refusal above is the role, not a broken endpoint: the admin's identical call works."""
    alice = QueueCaller(server.url, *ADMIN)
    result = alice.call("model-reload", {"model-loader": "llama.cpp"})
    assert result["success"] and "Loaded" in str(result["outputs"]), result
    assert not any("Only an admin" in log for log in result["logs"])


def test_the_default_tab_holds_the_same_input_limit_as_the_chat(server):
    """The per-user caps used to exist only in the Chat tab; calling the Default tab's
    Generate directly with an oversized text is refused by the same front door."""
    bob = QueueCaller(server.url, *USER)
    result = bob.call("default-generate", {"default-input": "x" * 100_001})
    assert "100,001 characters" in str(result["outputs"]), result


def test_an_upload_over_the_size_limit_is_refused(server):
    bob = QueueCaller(server.url, *USER)
    big = b"\0" * (10 * 2**20 + 1)                      # one byte over --max-upload-mb 10
    refused = bob.user.client.post(f"{bob.user.base}{API}/upload", files={"files": ("big.png", big)})
    assert refused.status_code == 413, refused.text[:300]
    small = bob.user.client.post(f"{bob.user.base}{API}/upload", files={"files": ("small.png", b"\0" * 1000)})
    assert small.status_code == 200, small.text[:300]
