"""OpenAI- and Anthropic-compatible HTTP API (`--api`), served under /v1 on the page's own
port (and on --api-port). Every request goes through the front door like the page's, under
an Identity per API key (docs/api.md).

errors.py      ApiError and the error bodies of each format
auth.py        keys (compared in constant time) -> Identity; the admin key
request_params.py   request fields + a preset -> GenerationParams
schemas.py     the request bodies (pydantic), lenient about fields we do not use
structured.py  response_format / tools forced by tool_choice -> a grammar
generation.py  one admitted request: prompt, submission, events as async iteration, disconnects
openai_routes.py, anthropic_routes.py, internal_routes.py   the endpoints of each family
sse.py         server-sent events
app.py         assembling the app, its middleware and its exception handlers
"""
