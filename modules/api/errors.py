"""Errors as each client family expects them: OpenAI's {"error": {...}} or Anthropic's
{"type": "error", "error": {...}}, with a 4xx status for anything the caller can fix.
Nothing here ever sends a traceback; unexpected failures are logged and answered 500
with a plain sentence.
"""
from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from modules.chat_prompt import PromptTooLong
from modules.front_door import NoModelLoaded
from modules.params import ParamError
from modules.presets import PresetError
from modules.request_limits import LimitExceeded, TooManyRequests
from modules.roles import NotAdmin
from modules.template_render import TemplateError

log = logging.getLogger(__name__)

OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "invalid_request_error", 429: "rate_limit_error",
                503: "service_unavailable"}
ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                   404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                   503: "overloaded_error"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param


def is_anthropic(request: Request) -> bool:
    """Anthropic's clients send anthropic-version on every request; /v1/messages is theirs."""
    path = request.url.path
    return "/messages" in path or "anthropic-version" in request.headers


def openai_body(error: ApiError) -> dict:
    return {"error": {"message": error.message, "type": OPENAI_TYPES.get(error.status, "server_error"),
                      "param": error.param, "code": error.code}}


def anthropic_body(error: ApiError) -> dict:
    return {"type": "error", "error": {"type": ANTHROPIC_TYPES.get(error.status, "api_error"),
                                       "message": error.message}}


def body_for(request: Request, error: ApiError) -> dict:
    return anthropic_body(error) if is_anthropic(request) else openai_body(error)


def error_response(request: Request, error: ApiError) -> JSONResponse:
    headers = {"Retry-After": "1"} if error.status == 429 else None
    return JSONResponse(body_for(request, error), status_code=error.status, headers=headers)


def as_api_error(exc: Exception) -> ApiError:
    """The engine's and the front door's refusals, with the status that fits each."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, TooManyRequests):
        return ApiError(429, str(exc), code="rate_limit_exceeded")
    if isinstance(exc, NoModelLoaded):
        return ApiError(503, "No model is loaded. An admin can load one (POST /v1/internal/model/load).",
                        code="model_not_loaded")
    if isinstance(exc, PromptTooLong):
        return ApiError(400, str(exc), code="context_length_exceeded", param="messages")
    if isinstance(exc, TemplateError):
        return ApiError(400, f"The chat template failed: {exc}", code="template_error")
    if isinstance(exc, NotAdmin):
        return ApiError(403, str(exc), code="not_admin")
    if isinstance(exc, (LimitExceeded, ParamError, PresetError, ValueError)):
        return ApiError(400, str(exc))
    log.exception("API request failed", exc_info=exc)
    return ApiError(500, "Internal error; see the server log.")


async def handle_exception(request: Request, exc: Exception) -> JSONResponse:
    """The app's handler for everything a route raises."""
    return error_response(request, as_api_error(exc))
