"""The log-in throttle's answer through Gradio's real /login route and log-in page."""
from __future__ import annotations

import argon2
import pytest
from argon2.profiles import CHEAPEST

from modules.accounts import Accounts, LoginThrottle, client_address_middleware
from modules.login_messages import (SCRIPT_NAME, LoginMessagesMiddleware, login_messages_middleware,
                                   wait_text)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.mark.parametrize("seconds, text", [
    (0.2, "1 second"), (1.0, "1 second"), (1.01, "2 seconds"), (59.0, "59 seconds"),
    (59.5, "1 minute"), (60.0, "1 minute"), (61.0, "2 minutes"), (300.0, "5 minutes"),
])
def test_the_wait_is_said_in_seconds_under_a_minute_and_rounded_up(seconds, text):
    assert wait_text(seconds) == f"Too many attempts: try again in {text}"


@pytest.fixture
def served():
    """Gradio's own app with the accounts, both middlewares as server.py adds them, and a
    clock the test moves."""
    gr = pytest.importorskip("gradio")
    from fastapi.testclient import TestClient
    from gradio.routes import App

    clock = FakeClock()
    accounts = Accounts.from_passwords({"alice": "wonder", "bob": "builder"},
                                       hasher=argon2.PasswordHasher.from_parameters(CHEAPEST),
                                       throttle=LoginThrottle(clock=clock))
    with gr.Blocks() as demo:
        gr.Markdown("hi")
    demo.auth, demo.auth_message = accounts.gradio_auth, None     # as launch() sets them
    app = App.create_app(demo, app_kwargs={"middleware": [client_address_middleware(),
                                                          login_messages_middleware(accounts)]})
    with TestClient(app) as client:
        yield client, clock


def log_in(client, user, password, *, multipart=True):
    fields = {"username": user, "password": password}
    if multipart:           # what the log-in page sends (FormData)
        return client.post("/login", files={name: (None, value) for name, value in fields.items()})
    return client.post("/login", data=fields)


def test_the_failure_that_starts_a_wait_and_attempts_during_it_get_429_with_the_wait(served):
    client, clock = served
    for _ in range(3):          # the free failures: Gradio's own answer
        answer = log_in(client, "bob", "wrong")
        assert answer.status_code == 400 and answer.json()["detail"] == "Incorrect credentials."
    answer = log_in(client, "bob", "wrong")
    assert answer.status_code == 429
    assert answer.json() == {"detail": "Too many attempts: try again in 1 second"}
    assert answer.headers["retry-after"] == "1"
    # while waiting even the right password is refused, in the same words
    assert log_in(client, "bob", "builder", multipart=False).json()["detail"].startswith("Too many attempts")
    clock.now += 1.5
    assert log_in(client, "bob", "wrong").status_code == 429           # now a 2 s wait
    clock.now += 2.5
    answer = log_in(client, "bob", "builder")
    assert answer.status_code == 200 and answer.json() == {"success": True}


def test_long_waits_are_said_in_minutes(served):
    client, clock = served
    for _ in range(10):         # 3 free, then 1, 2, 4, ... 64 s waits, each waited out
        log_in(client, "bob", "wrong")
        clock.now += 100
    answer = log_in(client, "bob", "wrong")                              # the 11th: 128 s
    assert answer.json()["detail"] == "Too many attempts: try again in 3 minutes"
    assert answer.headers["retry-after"] == "128"


def test_a_colleague_is_not_refused_and_malformed_forms_reach_gradio(served):
    client, _ = served
    for _ in range(4):
        log_in(client, "bob", "wrong")
    assert log_in(client, "alice", "wonder").status_code == 200
    assert client.post("/login", data={"password": "x"}).status_code == 422   # Gradio's own refusal


def test_the_script_is_served():
    from starlette.testclient import TestClient
    script = TestClient(LoginMessagesMiddleware(_page("<p>unused</p>"), accounts=None)).get("/" + SCRIPT_NAME)
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "429" in script.text


@pytest.mark.parametrize("config, gets_script", [('{"auth_required":true}', True), ('{"components":[]}', False)])
def test_only_the_log_in_page_gets_the_script(config, gets_script):
    """Gradio's page carries its config inline; only the log-in page's says auth_required."""
    from starlette.testclient import TestClient
    html = f"<html><head><script>window.gradio_config = {config};</script></head><body></body></html>"
    page = TestClient(LoginMessagesMiddleware(_page(html), accounts=None)).get("/")
    assert (f'<script src="{SCRIPT_NAME}" defer></script></head>' in page.text) == gets_script
    assert int(page.headers["content-length"]) == len(page.content)


def _page(html: str):
    from starlette.responses import HTMLResponse
    return HTMLResponse(html)
