"""A fake of Mistral's HTTP API (embeddings and chat completions), also OpenAI-compatible.

``POST /v1/embeddings`` answers deterministic, hash-seeded embeddings (texts that share words
get similar vectors, so retrieval tests behave sensibly). ``POST /v1/chat/completions``
answers a deterministic reply: by default the first sentence of the first fenced document
followed by ``[1]``, or ``canned_reply`` when a test sets it; ``stream: true`` is answered as
SSE ``data:`` chunks ending in ``data: [DONE]``, with ``usage`` in the last chunk. The
OpenAI-compatible generator can use the same fake at ``base_url = fake.url + "/v1"``.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
import time
from typing import Any

import numpy as np

from tests.fakes.server import FakeServer, RecordedRequest, Reply

NO_INFORMATION = "I don't have specific information about this topic."

_DOCUMENT = re.compile(r'<document number="(\d+)"[^>]*>(.*?)</document>', re.DOTALL)
_WORD = re.compile(r"\w+")
_PIECE = re.compile(r"\S+\s*")


@functools.lru_cache(maxsize=65536)
def _token_vector(token: str, dimension: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "big")
    return np.random.default_rng(seed).standard_normal(dimension).astype(np.float32)


def fake_embedding(text: str, dimension: int = 1024) -> list[float]:
    """The fake's embedding of ``text``: a normalised sum of per-word seeded random vectors."""
    tokens = _WORD.findall(text.lower()) or [""]
    vector = np.zeros(dimension, dtype=np.float32)
    for token in tokens:
        vector += _token_vector(token, dimension)
    vector /= float(np.linalg.norm(vector)) or 1.0
    return [float(x) for x in vector]


def default_reply(messages: list[dict[str, Any]]) -> str:
    """Quote the first sentence of document 1 with its marker, as a grounded model would."""
    for message in messages:
        content = message.get("content")
        if not isinstance(content, str):
            continue
        for number, text in _DOCUMENT.findall(content):
            sentence = re.split(r"(?<=[.!?])\s+", text.strip())[0].strip()
            if sentence:
                return f"{sentence} [{number}]"
    return NO_INFORMATION


def _count_words(text: str) -> int:
    return len(_WORD.findall(text))


class FakeMistral(FakeServer):
    """In-process Mistral (and OpenAI-compatible) server; see the module docstring."""

    def __init__(
        self,
        *,
        dimension: int = 1024,
        api_key: str | None = None,
        stream_event_delay_s: float = 0.0,
        log_limit: int | None = 10_000,
    ) -> None:
        super().__init__(log_limit=log_limit)
        self.dimension = dimension
        self.api_key = api_key  # when set, other bearer tokens get a 401
        self.canned_reply: str | None = None
        self.stream_event_delay_s = stream_event_delay_s
        self._ids = itertools.count(1)

    def handle(self, request: RecordedRequest) -> Reply:
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return Reply(401, self.error_body(401, "Unauthorized"))
        if request.method == "POST" and request.path == "/v1/embeddings":
            return self._embeddings(request.body or {})
        if request.method == "POST" and request.path == "/v1/chat/completions":
            return self._chat(request.body or {})
        return Reply(404, self.error_body(404, f"no route for {request.method} {request.path}"))

    def error_body(self, status: int, message: str) -> Any:
        return {"object": "error", "message": message, "type": "fake_error", "param": None, "code": str(status)}

    def invalid_json_reply(self, request: RecordedRequest) -> Reply:
        if isinstance(request.body, dict) and request.body.get("stream"):
            return Reply(200, events=['{"id": "broken", not json'])
        return super().invalid_json_reply(request)

    # --- embeddings ------------------------------------------------------------------------

    def _embeddings(self, body: dict[str, Any]) -> Reply:
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs:
            return Reply(422, self.error_body(422, "input must be a non-empty list of strings"))
        data = [
            {"object": "embedding", "embedding": fake_embedding(str(text), self.dimension), "index": i}
            for i, text in enumerate(inputs)
        ]
        tokens = sum(_count_words(str(text)) for text in inputs)
        return Reply(
            200,
            {
                "id": f"emb-{next(self._ids)}",
                "object": "list",
                "model": body.get("model", "mistral-embed"),
                "data": data,
                "usage": {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens},
            },
        )

    # --- chat ------------------------------------------------------------------------------

    def _chat(self, body: dict[str, Any]) -> Reply:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return Reply(422, self.error_body(422, "messages must be a non-empty list"))
        text = self.canned_reply if self.canned_reply is not None else default_reply(messages)
        prompt_tokens = sum(_count_words(str(m.get("content", ""))) for m in messages)
        completion_tokens = _count_words(text)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        head = {
            "id": f"cmpl-{next(self._ids)}",
            "model": body.get("model", "mistral-small-latest"),
            "created": int(time.time()),
        }
        if body.get("stream"):
            return Reply(200, events=self._chunks(head, text, usage), event_delay_s=self.stream_event_delay_s)
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        return Reply(200, {**head, "object": "chat.completion", "choices": [choice], "usage": usage})

    @staticmethod
    def _chunks(head: dict[str, Any], text: str, usage: dict[str, int]) -> list[Any]:
        def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
            return {**head, "object": "chat.completion.chunk", "choices": [choice], **extra}

        events: list[Any] = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": piece}) for piece in _PIECE.findall(text)]
        events.append(chunk({"content": ""}, "stop", usage=usage))
        events.append("[DONE]")
        return events
