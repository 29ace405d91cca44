"""Says on Gradio's log-in page why a log-in was refused when the throttle refused it.

Gradio's page shows one fixed "Incorrect Credentials" for any 400 from POST /login and nothing
at all for any other status, and it serves no script of ours before log-in. So this pure ASGI
middleware, installed only when accounts are on:
- answers POST /login with 429, a Retry-After header and {"detail": "Too many attempts: try
  again in N minutes"} while the throttle makes this account and address wait, without
  handing the attempt to Gradio; and in place of Gradio's 400 when that failure started a wait;
- adds <script src="login-messages.js"> to the log-in page (the page whose config says
  auth_required) and serves that script, which shows the 429's detail on the page.

Usage (server.py): app_kwargs={"middleware": [client_address_middleware(),
                                              login_messages_middleware(accounts)]}
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request

SCRIPT_NAME = "login-messages.js"
SCRIPT = (Path(__file__).with_name("login_messages.js")).read_bytes()
SCRIPT_TAG = f'<script src="{SCRIPT_NAME}" defer></script>'.encode()
LOGIN_PAGE_MARK = b'"auth_required":true'       # in window.gradio_config of the log-in page only
MAX_LOGIN_BODY = 64 * 1024                       # a log-in form is a few hundred bytes


def wait_text(seconds: float) -> str:
    """'Too many attempts: try again in 2 minutes' (seconds under a minute), rounded up so
    that trying again at the time said works."""
    whole_seconds = max(1, math.ceil(seconds))
    if whole_seconds < 60:
        count, unit = whole_seconds, "second"
    else:
        count, unit = math.ceil(seconds / 60), "minute"
    return f"Too many attempts: try again in {count} {unit}{'' if count == 1 else 's'}"


class LoginMessagesMiddleware:
    def __init__(self, app, accounts):
        self.app = app
        self.accounts = accounts            # modules.accounts.Accounts: its retry_after()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = _path_in_app(scope)
        if scope["method"] == "POST" and path in ("/login", "/login/"):
            await self._login(scope, receive, send)
        elif scope["method"] in ("GET", "HEAD") and path == "/" + SCRIPT_NAME:
            await _respond(send, 200, SCRIPT, {"content-type": "text/javascript; charset=utf-8",
                                               "cache-control": "no-cache"}, scope["method"] == "HEAD")
        elif scope["method"] == "GET" and path in ("", "/"):
            await self.app(scope, receive, _with_script_on_login_page(send))
        else:
            await self.app(scope, receive, send)

    async def _login(self, scope, receive, send):
        messages, complete = await _read_body(receive)
        replay = _replaying(messages, receive)
        if not complete:                    # not a form from the log-in page: Gradio answers
            await self.app(scope, replay, send)
            return
        user = await _form_user(scope, messages)
        client = scope.get("client")
        address = client[0] if client else None     # as ClientAddressMiddleware reads it
        if user is None:
            await self.app(scope, replay, send)
            return
        wait = self.accounts.retry_after(user, address)
        if wait > 0:                        # refused unchecked, as Accounts.gradio_auth would
            await _respond_wait(send, wait)
            return
        replaced = False

        async def send_or_replace(message):
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] == 400:
                wait = self.accounts.retry_after(user, address)   # this failure started a wait
                if wait > 0:
                    replaced = True
                    await _respond_wait(send, wait)
                    return
            if not replaced:
                await send(message)

        await self.app(scope, replay, send_or_replace)


def login_messages_middleware(accounts):
    """For launch(app_kwargs={"middleware": [..., login_messages_middleware(accounts)]})."""
    from starlette.middleware import Middleware
    return Middleware(LoginMessagesMiddleware, accounts=accounts)


# ---- helpers -------------------------------------------------------------------------------------
def _path_in_app(scope) -> str:
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


async def _read_body(receive) -> tuple[list[dict], bool]:
    """The request's messages up to MAX_LOGIN_BODY; complete=False when the body is longer (or
    the client left), and what was read is handed on as it came."""
    messages, size = [], 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, False
        size += len(message.get("body", b""))
        if size > MAX_LOGIN_BODY:
            return messages, False
        if not message.get("more_body", False):
            return messages, True


def _replaying(messages: list[dict], receive):
    """A receive that gives the messages already read, then the client's own."""
    pending = list(messages)

    async def replay():
        return pending.pop(0) if pending else await receive()
    return replay


async def _form_user(scope, messages) -> str | None:
    """The user name typed, stripped as Gradio strips it; None for a form that isn't one."""
    try:
        form = await Request(scope, _replaying(messages, _nothing_more)).form()
        user = form.get("username")
        await form.close()
    except Exception:                       # malformed: Gradio refuses it in its own way
        return None
    return user.strip() if isinstance(user, str) else None


async def _nothing_more():
    return {"type": "http.disconnect"}


async def _respond_wait(send, wait: float) -> None:
    body = json.dumps({"detail": wait_text(wait)}).encode()
    await _respond(send, 429, body, {"content-type": "application/json", "cache-control": "no-store",
                                     "retry-after": str(max(1, math.ceil(wait)))})


async def _respond(send, status: int, body: bytes, headers: dict, head_only: bool = False) -> None:
    raw = [(k.encode(), v.encode()) for k, v in {**headers, "content-length": str(len(body))}.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": b"" if head_only else body})


def _with_script_on_login_page(send):
    """A send that holds back an HTML page and adds the script tag when it is the log-in page."""
    start, chunks = None, []

    async def send_page(message):
        nonlocal start
        if message["type"] == "http.response.start":
            if Headers(raw=message["headers"]).get("content-type", "").startswith("text/html"):
                start = message
                return
        elif start is not None and message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            if LOGIN_PAGE_MARK in body and b"</head>" in body:
                body = body.replace(b"</head>", SCRIPT_TAG + b"</head>", 1)
                MutableHeaders(scope=start)["content-length"] = str(len(body))
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        await send(message)
    return send_page
