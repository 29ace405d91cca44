"""The policy header is on every HTTP response the middleware wraps, streamed ones included."""
from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from modules.web_security import CONTENT_SECURITY_POLICY, content_security_policy_middleware


def _app() -> Starlette:
    async def page(request):
        return PlainTextResponse("hello")

    async def events(request):
        async def stream():
            for n in range(3):
                yield f"data: {n}\n\n"
        return StreamingResponse(stream(), media_type="text/event-stream")

    return Starlette(routes=[Route("/", page), Route("/events", events)],
                     middleware=[content_security_policy_middleware()])


def test_policy_keeps_images_media_and_connections_on_this_server():
    for directive in ("img-src 'self' data: blob:", "media-src 'self' data: blob:", "connect-src 'self'"):
        assert directive in CONTENT_SECURITY_POLICY


def test_every_response_carries_the_policy():
    with TestClient(_app()) as client:
        page = client.get("/")
        missing = client.get("/no-such-page")
        events = client.get("/events")
    assert page.text == "hello" and page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert missing.status_code == 404
    assert missing.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert events.text == "data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert events.headers.get_list("content-security-policy") == [CONTENT_SECURITY_POLICY]
