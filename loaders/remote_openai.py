"""A model served elsewhere: generation sent to an OpenAI-compatible server (vLLM,
llama.cpp's server, llama-cpp-python's, TGI, Ollama's /v1) through /v1/completions with
streaming, behind the same Backend contract as the local loaders.

The prompt is built here with our templates, as for every loader, and sent as text; the
remote's tokenizer counts it (loaders/remote_tokens.py). Each sequence is one HTTP stream
read by its own thread: forward() hands the scheduler the sequences that have a new piece
of text, sample() turns that piece into a token id whose bytes are the piece. Closing a
sequence (Stop, a closed tab, a switch) closes its stream, so the remote stops too.
Batching and caching happen on the remote; the scheduler here only forwards.

The key goes only into the Authorization header: never into ModelInfo, logs or messages.
"""
from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx
import openai

from loaders.base import Backend, ModelInfo, ModelLoadError, Sequence
from loaders.remote_samplers import ENGINE_TITLES, not_taken, request_fields
from loaders.remote_tokens import PIECE_BASE, RemoteTokenizer
from loaders.settings import LoadSettings
from modules.params import GenerationParams

log = logging.getLogger(__name__)
DEFAULT_CTX = 2048               # when the remote does not say (llama-cpp-python's own default)
END = (1 << 32) - 1              # the stream ended: the model finished its turn
EMPTY = (1 << 32) - 2            # the remote stopped at max_tokens: no text, the length rule ends it
CHUNK_BASE = 1 << 32             # ids of streamed pieces of text (PIECE_BASE lies above them all)
OWNERS = {"vllm": "vllm", "llamacpp": "llama.cpp", "me": "llama-cpp-python"}   # /v1/models' owned_by


@dataclass
class _Failed:
    message: str


class RemoteSequence(Sequence):
    def __init__(self, prompt_tokens, params):
        super().__init__(prompt_tokens, params)
        self.arrived: queue.Queue = queue.Queue()    # bytes, a finish reason (str) or _Failed
        self.ready = None            # the item sample() hands over next
        self.ended = None            # the finish reason, once the stream is over
        self.stream = None           # the open openai Stream, for closing it
        self.closed = False


class RemoteBackend(Backend):
    def __init__(self, settings: LoadSettings, progress):
        self._root = _server_root(settings.remote_url)
        self._shown_url = _without_credentials(self._root)
        headers = {"Authorization": f"Bearer {settings.remote_key}"} if settings.remote_key else {}
        self._http = httpx.Client(base_url=self._root, headers=headers, timeout=httpx.Timeout(30, connect=10))
        self._client = openai.OpenAI(base_url=self._root + "/v1", api_key=settings.remote_key or "none",
                                     max_retries=0, timeout=httpx.Timeout(600, connect=10))
        try:
            progress(0.2, f"Asking {self._shown_url} for its models")
            model, listing = self._choose_model(settings.remote_model)
            self.model_id = model["id"]
            self.engine = settings.remote_engine if settings.remote_engine != "auto" else self._detect(model)
            props = self._props()
            progress(0.6, "Checking its tokenizer")
            self.tokenizer = RemoteTokenizer(self._http, self.engine, model["id"])
            self._check_tokenizer()
        except Exception:
            self.unload()
            raise
        self.vocab_size = PIECE_BASE * 2 if self.tokenizer.estimated else CHUNK_BASE - 2
        self._arrived = threading.Event()          # some stream has something for forward()
        self._open: list[RemoteSequence] = []
        self._chunks: dict[int, bytes] = {}
        self._next_chunk = CHUNK_BASE
        self.info = self._describe(settings, model, listing, props)

    # ---- what the remote serves ------------------------------------------------------------------
    def _choose_model(self, wanted: str) -> tuple[dict, list[str]]:
        models = [m.model_dump() for m in _call(self._shown_url, self._client.models.list).data]
        names = [m["id"] for m in models]
        if not models:
            raise ModelLoadError(f"The remote server at {self._shown_url} serves no model yet.")
        if not wanted:
            return models[0], names
        for model in models:
            if model["id"] == wanted:
                return model, names
        raise ModelLoadError(f"The remote server at {self._shown_url} does not serve '{wanted}'; "
                             f"it serves: {', '.join(names)}.")

    def _detect(self, model: dict) -> str:
        engine = OWNERS.get(str(model.get("owned_by", "")).lower())
        if engine:
            return engine
        try:        # TGI answers /info with its router's name
            if "text-generation" in str(self._http.get("/info").json().get("router", "")):
                return "tgi"
        except (httpx.HTTPError, ValueError, AttributeError):
            pass
        return "openai"

    def _props(self) -> dict:
        """llama.cpp's server tells its chat template and context per slot at /props."""
        if self.engine != "llama.cpp":
            return {}
        try:
            return self._http.get("/props").json()
        except (httpx.HTTPError, ValueError):
            return {}

    def _check_tokenizer(self) -> None:
        if self.tokenizer.estimated:
            return
        try:
            self.tokenizer.tokenize("Hello", add_bos=False)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s: its tokenize endpoint failed (%s); lengths are estimated", self._shown_url, exc)
            self.tokenizer.estimated = True

    def _describe(self, settings: LoadSettings, model: dict, listing: list[str], props: dict) -> ModelInfo:
        slot = (props.get("default_generation_settings") or {}).get("n_ctx")
        told = model.get("max_model_len") or slot or (model.get("meta") or {}).get("n_ctx_train")
        n_ctx = settings.ctx_size or told or DEFAULT_CTX
        context_note = ("as set in ctx-size" if settings.ctx_size else
                        "as the remote says" if told else f"assumed; the remote does not say: set ctx-size")
        return ModelInfo(
            name=f"{model['id']} at {self._shown_url}", path=self._shown_url, loader="Remote",
            n_ctx=int(n_ctx), n_ctx_train=int((model.get("meta") or {}).get("n_ctx_train") or told or 0),
            max_sequences=max(1, settings.parallel), chat_template=props.get("chat_template") or None,
            bos_token=props.get("bos_token") or "", eos_token=props.get("eos_token") or "",
            details={
                "remote server": self._shown_url,
                "engine": ENGINE_TITLES[self.engine] + (" (detected)" if settings.remote_engine == "auto" else ""),
                "remote model": model["id"],
                "models it serves": ", ".join(listing),
                "context per request": f"{n_ctx} ({context_note})",
                "requests forwarded at once": max(1, settings.parallel),
                "tokens counted by": ("an estimate (3 bytes a token): the server has no tokenize endpoint"
                                      if self.tokenizer.estimated else "the remote's tokenizer"),
                "batching and prompt caching": "done by the remote server",
            })

    # ---- tokens ----------------------------------------------------------------------------------
    def tokenize(self, text: str, add_bos: bool, special: bool = True) -> list[int]:
        try:
            return self.tokenizer.tokenize(text, add_bos)
        except httpx.HTTPError as exc:
            raise RuntimeError(f"The remote server could not count the prompt's tokens: {exc}") from None

    def token_bytes(self, token: int, skip_special: bool) -> bytes:
        if token in (END, EMPTY):
            return b""
        if CHUNK_BASE <= token < PIECE_BASE:
            return self._chunks.get(token, b"")
        return self.tokenizer.piece(token)

    def token_text(self, token: int) -> str:
        piece = self.token_bytes(token, skip_special=False)
        if not piece and token < CHUNK_BASE:      # a server that does not spell out special tokens
            return f"<special token {token}>"
        return piece.decode("utf-8", errors="replace")

    def is_end_of_generation(self, token: int) -> bool:
        return token == END

    def warnings_for(self, params: GenerationParams) -> list[str]:
        return not_taken(params, self.engine)

    # ---- decoding --------------------------------------------------------------------------------
    def open_sequence(self, prompt_tokens: list[int], params: GenerationParams) -> Sequence:
        seq = RemoteSequence(prompt_tokens, params)
        text = self.tokenizer.text_of(prompt_tokens)
        threading.Thread(target=self._stream, args=(seq, text), name="remote-stream", daemon=True).start()
        self._open.append(seq)
        return seq

    def forward(self, feeds: dict[Sequence, int]) -> list[Sequence]:
        """The sequences with a piece of text (or their end) to hand over; waits a moment for
        one when none has, so the scheduler does not spin while the remote works."""
        ready = self._collect()
        if not ready and self._open:
            self._arrived.wait(0.05)
            ready = self._collect()
        return ready

    def _collect(self) -> list[RemoteSequence]:
        self._arrived.clear()
        ready = []
        for seq in self._open:
            if seq.ready is None and seq.ended is None:
                try:
                    seq.ready = seq.arrived.get_nowait()
                except queue.Empty:
                    continue
            ready.append(seq)
        return ready

    def sample(self, seq: Sequence) -> int:
        item, seq.ready = seq.ready, None
        if isinstance(item, _Failed):
            raise RuntimeError(item.message)
        if isinstance(item, str):
            seq.ended = item
        if seq.ended is not None:          # after the end, the scheduler's own rules finish it
            return EMPTY if seq.ended == "length" else END
        token, self._next_chunk = self._next_chunk, self._next_chunk + 1
        self._chunks[token] = item          # read by token_bytes() right after
        self._chunks.pop(token - 4096, None)
        return token

    def close_sequence(self, seq: Sequence) -> None:
        seq.closed = True
        if seq in self._open:
            self._open.remove(seq)
        stream = seq.stream
        if stream is not None:
            stream.close()          # the remote sees the client gone and stops generating

    def _stream(self, seq: RemoteSequence, text: str) -> None:
        """One request's HTTP stream, read on its own thread into seq.arrived."""
        body = request_fields(seq.params, self.engine)
        try:
            # every sampler field travels in extra_body, in the engine's own names
            seq.stream = self._client.completions.create(model=self.model_id, prompt=text, stream=True,
                                                         extra_body=body)
            if seq.closed:
                return seq.stream.close()
            finish = "stop"
            for chunk in seq.stream:
                choice = chunk.choices[0] if chunk.choices else None
                if choice is None:
                    continue
                if choice.text:
                    seq.arrived.put(choice.text.encode("utf-8"))
                    self._arrived.set()
                finish = choice.finish_reason or finish
            seq.arrived.put(finish)
        except Exception as exc:       # a closed stream ends here too, unseen
            if not seq.closed:
                seq.arrived.put(_Failed(_plain_error(self._shown_url, exc)))
        finally:
            self._arrived.set()

    def unload(self) -> None:
        for seq in list(getattr(self, "_open", [])):
            self.close_sequence(seq)
        self._client.close()
        self._http.close()


def load(path: str, settings: LoadSettings, progress) -> RemoteBackend:
    """`path` is unused: the model is the remote's (--remote-url, --remote-model)."""
    return RemoteBackend(settings, progress)


# ---- addresses and errors ------------------------------------------------------------------------
def _server_root(url: str) -> str:
    """http(s)://host[:port][/prefix] without a trailing /v1: the OpenAI routes live under
    /v1 and the tokenize endpoints at the root."""
    url = (url or "").strip().rstrip("/")
    if not url:
        raise ModelLoadError("Give the remote server's address (remote-url), e.g. http://gpu-node:8000/v1.")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ModelLoadError(f"remote-url must be an http:// or https:// address, e.g. "
                             f"http://gpu-node:8000/v1 (got {_without_credentials(url)!r}).")
    if parts.username or parts.password:      # the address is shown on the page; the key is not
        raise ModelLoadError("Put the remote server's credentials in remote-key, not in its address.")
    return url.removesuffix("/v1")


def _without_credentials(url: str) -> str:
    """The address as it may be shown: no user:password@, no query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _call(shown_url: str, function):
    try:
        return function()
    except Exception as exc:
        raise ModelLoadError(_plain_error(shown_url, exc)) from None


def _plain_error(shown_url: str, exc: Exception) -> str:
    if isinstance(exc, openai.AuthenticationError):
        return f"The remote server at {shown_url} refused the key (remote-key): {exc.status_code}."
    if isinstance(exc, openai.APIStatusError):
        return f"The remote server at {shown_url} answered {exc.status_code}: {_detail(exc)}"
    if isinstance(exc, openai.APITimeoutError):
        return f"The remote server at {shown_url} did not answer in time."
    if isinstance(exc, (openai.APIConnectionError, httpx.HTTPError)):
        cause = exc.__cause__ or exc
        return f"The remote server at {shown_url} cannot be reached ({type(cause).__name__}: {cause})."
    return f"The remote server at {shown_url} failed: {exc}"


def _detail(exc) -> str:
    body = exc.body
    if isinstance(body, dict):
        body = body.get("detail") or body.get("error") or body.get("message") or body
        if isinstance(body, dict):
            body = body.get("message", body)
    return str(body or exc.message)[:500]
