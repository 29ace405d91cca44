"""text-generation-webui's internal endpoints: tokens (encode, decode, token-count) for
anyone with API access; the model list, and loading and unloading for admins only
(--admin-key, or the page's rule without one). Plus /health.
"""
from __future__ import annotations

import dataclasses

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from loaders.specs import SPECS_BY_NAME
from modules.api.context import context_of
from modules.api.errors import ApiError, as_api_error
from modules.api.request_params import build_params
from modules.api.schemas import LoadModelBody, TextBody, TokensBody, parse_body


async def _admitted(request: Request, body, work):
    """Runs work(admission) in the thread pool inside one of the person's slots."""
    ctx = context_of(request)
    who = ctx.keys.identify(request)
    params = build_params(body.model_extra, {}, preset=getattr(body, "preset", None),
                          preset_store=ctx.preset_store, who=who, max_tokens_limit=ctx.limits.max_new_tokens_limit)
    try:
        with ctx.door.admit(who, params, text=getattr(body, "text", "")) as admission:
            return await run_in_threadpool(work, admission)
    except Exception as exc:
        raise as_api_error(exc) from None


async def encode(request: Request) -> Response:
    body = parse_body(await request.body(), TextBody)
    tokens = await _admitted(request, body, lambda admission: admission.tokenize(body.text))
    return JSONResponse({"tokens": tokens, "length": len(tokens)})


async def token_count(request: Request) -> Response:
    body = parse_body(await request.body(), TextBody)
    tokens = await _admitted(request, body, lambda admission: admission.tokenize(body.text))
    return JSONResponse({"length": len(tokens)})


async def decode(request: Request) -> Response:
    body = parse_body(await request.body(), TokensBody)
    text = await _admitted(request, body, lambda admission: admission.detokenize(body.tokens))
    return JSONResponse({"text": text})


# ---- models ------------------------------------------------------------------------------------------
async def model_info(request: Request) -> Response:
    ctx = context_of(request)
    ctx.keys.identify(request)
    info = ctx.loaded_info()
    return JSONResponse({"model_name": info.name if info else None, "loader": info.loader if info else None,
                         "context_per_sequence": info.n_ctx if info else None,
                         "sequences": info.max_sequences if info else None, "lora_names": []})


async def model_list(request: Request) -> Response:
    ctx = context_of(request)
    ctx.keys.identify(request)
    return JSONResponse({"model_names": ctx.model_names()})


async def model_load(request: Request) -> Response:
    ctx = context_of(request)
    ctx.keys.require_admin(request, "load a model")
    body = parse_body(await request.body(), LoadModelBody)
    base = ctx.models.current_settings or ctx.default_load_settings
    try:
        settings = dataclasses.replace(base, **body.args)
    except TypeError as exc:
        raise ApiError(400, f"args: {exc}.", param="args") from None
    name = body.model_name
    spec = SPECS_BY_NAME.get(settings.loader or "")
    if spec is not None and not spec.reads_files:
        name = ""                           # a remote server: its model is named in args
    elif name not in ctx.model_names():
        raise ApiError(404, f"No model '{name}' in the models folder; "
                       f"GET /v1/internal/model/list names them.", param="model_name")
    result = await run_in_threadpool(ctx.models.load, name, settings)
    if not result.ok:
        raise ApiError(400, result.message, code="model_load_failed")
    return JSONResponse({"status": "OK", "message": result.message})


async def model_unload(request: Request) -> Response:
    ctx = context_of(request)
    ctx.keys.require_admin(request, "unload the model")
    result = await run_in_threadpool(ctx.models.unload)
    return JSONResponse({"status": "OK", "message": result.message})


# ---- health and metrics (at the server's root, no key: they tell nothing private) -------------------------
async def health(request: Request) -> Response:
    ctx = context_of(request)
    info = ctx.loaded_info()
    scheduler = ctx.door.scheduler
    return JSONResponse({"status": "ok" if info else "no_model", "model_loaded": info is not None,
                         "model": info.name if info else None, "loader": info.loader if info else None,
                         "queue_depth": scheduler.queue_length()})


async def metrics(request: Request) -> Response:
    ctx = context_of(request)
    if ctx.metrics is None:
        raise ApiError(404, "Metrics are off.")
    payload, content_type = ctx.metrics.render()
    return Response(payload, media_type=content_type)
