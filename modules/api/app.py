"""The API assembled: its routes for the page's own app, and an app of its own for --api-port.

On the page's port the routes are handed to Gradio's FastAPI app when it is created
(launch(app_kwargs={"routes": ...})): they come before Gradio's routes, share its port,
its middleware (Content-Security-Policy, client address) and its uvicorn server, and need
no second server. Gradio's log-in does not apply to them; API keys do (auth.py).
"""
from __future__ import annotations

import logging
import threading

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.routing import Route

from modules.api import anthropic_routes, internal_routes, openai_routes
from modules.api.auth import ApiKeys, split_keys
from modules.api.context import SCOPE_KEY, ApiContext
from modules.api.errors import ApiError, as_api_error, error_response
from modules.metrics import Metrics

log = logging.getLogger(__name__)
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]

API_ENDPOINTS = (
    ("/v1/models", openai_routes.list_models, "GET"),
    ("/v1/chat/completions", openai_routes.chat_completions, "POST"),
    ("/v1/completions", openai_routes.completions, "POST"),
    ("/v1/messages", anthropic_routes.messages, "POST"),
    ("/v1/messages/count_tokens", anthropic_routes.count_tokens, "POST"),
    ("/v1/internal/encode", internal_routes.encode, "POST"),
    ("/v1/internal/decode", internal_routes.decode, "POST"),
    ("/v1/internal/token-count", internal_routes.token_count, "POST"),
    ("/v1/internal/model/info", internal_routes.model_info, "GET"),
    ("/v1/internal/model/list", internal_routes.model_list, "GET"),
    ("/v1/internal/model/load", internal_routes.model_load, "POST"),
    ("/v1/internal/model/unload", internal_routes.model_unload, "POST"),
    ("/health", internal_routes.health, "GET"),
    ("/metrics", internal_routes.metrics, "GET"),
)


def build_context(args, *, door, models, policy, preset_store, load_settings, metrics: Metrics | None) -> ApiContext:
    """The API's context from the command-line flags (--api-key, --admin-key)."""
    keys = ApiKeys(policy, split_keys(args.api_key), args.admin_key)
    return ApiContext(door=door, models=models, keys=keys, preset_store=preset_store,
                      default_load_settings=load_settings, metrics=metrics)


def api_routes(ctx: ApiContext) -> list[Route]:
    """Every API route, plus a JSON 404 for any other path under /v1."""
    routes = [Route(path, _handler(endpoint, ctx, path), methods=[method]) for path, endpoint, method in API_ENDPOINTS]
    routes.append(Route("/v1/{rest:path}", _handler(_not_found, ctx, "other"), methods=ALL_METHODS))
    return routes


async def _not_found(request: Request):
    raise ApiError(404, f"There is no {request.method} {request.url.path} here; see docs/api.md.")


def _handler(endpoint, ctx: ApiContext, route: str):
    """The endpoint with the context in reach, every failure as an error body in the
    client's format (never a traceback), and the request counted in the metrics."""
    async def handle(request: Request):
        request.scope[SCOPE_KEY] = ctx
        try:
            response = await endpoint(request)
        except Exception as exc:
            response = error_response(request, as_api_error(exc))
        if ctx.metrics is not None:
            ctx.metrics.count_request(route, response.status_code)
        return response
    handle.__name__ = getattr(endpoint, "__name__", "api")
    return handle


def api_app(ctx: ApiContext, cors_origins: list[str] = ()) -> Starlette:
    """The API alone, for --api-port. CORS only for the origins given (--api-cors-origins)."""
    middleware = []
    if cors_origins:
        middleware.append(Middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=ALL_METHODS,
                                     allow_headers=["*"]))
    return Starlette(routes=api_routes(ctx), middleware=middleware)


def serve_on_port(ctx: ApiContext, host: str, port: int, cors_origins: list[str] = ()) -> threading.Thread:
    """Serves the API on its own port from a background thread (the page keeps its own)."""
    import uvicorn
    config = uvicorn.Config(api_app(ctx, cors_origins), host=host, port=port, log_level="warning",
                            proxy_headers=True)     # X-Forwarded-For only from FORWARDED_ALLOW_IPS
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api-server", daemon=True)
    thread.start()
    return thread


def start_api(args, host: str, *, door, models, policy, preset_store, load_settings) -> list[Route]:
    """With --api (or --api-port): counts generations for /metrics, starts the --api-port
    server, and returns the routes for the page's own app. Without: nothing."""
    if not (args.api or args.api_port):
        return []
    metrics = Metrics(door.scheduler)
    door.scheduler.on_finished = metrics.observe_finished
    ctx = build_context(args, door=door, models=models, policy=policy, preset_store=preset_store,
                        load_settings=load_settings, metrics=metrics)
    if not ctx.keys.api_keys:
        log.warning("The API has no key (--api-key): %s", "requests are refused while accounts are on."
                    if policy.accounts_on else "anyone who can reach the port can use it.")
    if args.api_port:
        serve_on_port(ctx, host, args.api_port, split_keys(args.api_cors_origins))
        log.info("API also on http://%s:%d/v1", host if host != "0.0.0.0" else "localhost", args.api_port)
    return api_routes(ctx)
