"""Tokens of a remote engine, through its own tokenize endpoint, so that prompt lengths,
chat trimming and the Tokens view count what the remote model will read.

Each engine names the endpoint differently (llama-cpp-python: /extras/tokenize, llama.cpp
and vLLM: /tokenize, TGI: /tokenize with other fields). A plain OpenAI-compatible server
(Ollama's /v1, a hosted API) has none: then text is cut into pieces of three bytes, about
what a tokenizer makes of English, and the Model tab says lengths are estimates.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import httpx

BYTES_PER_PIECE = 3
PIECE_BASE = 1 << 34          # ids of estimated pieces: PIECE_BASE + (length << 24 | the bytes)


class RemoteTokenizer:
    """tokenize / detokenize / piece through `http` (an httpx.Client aimed at the server's
    root, the key in its headers). `engine` picks the endpoint; "openai" estimates."""

    def __init__(self, http: httpx.Client, engine: str, model: str):
        self._http, self.engine, self._model = http, engine, model
        self._pieces: dict[int, bytes] = {}          # token id -> its bytes, bounded by the vocabulary
        self._recent: OrderedDict = OrderedDict()    # (text, add_bos) -> tokens, newest last
        self._lock = threading.Lock()       # the scheduler and the pages' tokenisers share it
        self.estimated = engine not in ("llama-cpp-python", "llama.cpp", "vllm", "tgi")

    def tokenize(self, text: str, add_bos: bool) -> list[int]:
        key = (text, add_bos)
        with self._lock:
            if key in self._recent:        # chat trimming, then the scheduler, ask for the same text
                self._recent.move_to_end(key)
                return list(self._recent[key])
        tokens = self._estimate(text) if self.estimated else self._ask(text, add_bos)
        with self._lock:
            self._recent[key] = tuple(tokens)
            while len(self._recent) > 64:
                self._recent.popitem(last=False)
        return tokens

    def text_of(self, tokens: list[int]) -> str:
        """The text a token list came from: the one tokenize() was given when it is still
        remembered (exact), else the remote's detokenization."""
        wanted = tuple(tokens)
        with self._lock:
            found = next((text for (text, _), made in reversed(self._recent.items()) if made == wanted), None)
        if found is not None:
            return found
        if self.estimated:
            return b"".join(self.piece(t) for t in tokens).decode("utf-8", errors="replace")
        return self._detokenize(list(tokens))

    def piece(self, token: int) -> bytes:
        if token >= PIECE_BASE:
            packed = token - PIECE_BASE
            return (packed & 0xFFFFFF).to_bytes(3, "big")[:packed >> 24]
        if token not in self._pieces:
            try:
                self._pieces[token] = self._detokenize([token]).encode("utf-8")
            except (httpx.HTTPError, ValueError):
                return "\ufffd".encode()        # part of a character the server cannot show alone
        return self._pieces[token]

    # ---- the endpoints -------------------------------------------------------------------------
    def _ask(self, text: str, add_bos: bool) -> list[int]:
        if self.engine == "llama-cpp-python":      # adds the model's BOS as its own vocabulary says
            return self._post("/extras/tokenize", {"input": text, "model": self._model})["tokens"]
        if self.engine == "vllm":
            return self._post("/tokenize", {"model": self._model, "prompt": text,
                                            "add_special_tokens": add_bos})["tokens"]
        if self.engine == "tgi":
            found = self._post("/tokenize", {"inputs": text})
            self._pieces.update({item["id"]: item["text"].encode("utf-8") for item in found})
            return [item["id"] for item in found]
        found = self._post("/tokenize", {"content": text, "add_special": add_bos, "parse_special": True,
                                         "with_pieces": True})["tokens"]
        for item in found:         # llama.cpp: a piece that is not valid UTF-8 comes as its bytes
            piece = item["piece"]
            self._pieces[item["id"]] = bytes(piece) if isinstance(piece, list) else piece.encode("utf-8")
        return [item["id"] for item in found]

    def _detokenize(self, tokens: list[int]) -> str:
        if self.engine == "llama-cpp-python":
            return self._post("/extras/detokenize", {"tokens": tokens, "model": self._model})["text"]
        if self.engine == "vllm":
            return self._post("/detokenize", {"model": self._model, "tokens": tokens})["prompt"]
        if self.engine == "llama.cpp":
            return self._post("/detokenize", {"tokens": tokens})["content"]
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", errors="replace")

    def _post(self, path: str, body: dict):
        response = self._http.post(path, json=body)
        response.raise_for_status()
        return response.json()

    @staticmethod
    def _estimate(text: str) -> list[int]:
        data = text.encode("utf-8")
        return [PIECE_BASE + (len(chunk) << 24 | int.from_bytes(chunk.ljust(3, b"\0"), "big"))
                for chunk in (data[i:i + BYTES_PER_PIECE] for i in range(0, len(data), BYTES_PER_PIECE))]
