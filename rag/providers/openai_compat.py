"""Answers from any OpenAI-compatible chat server (Ollama, vLLM, LM Studio) over plain httpx.

``POST {base_url}/chat/completions``, optionally with a bearer key; ``stream: true`` is read as
SSE ``data:`` lines ending with ``data: [DONE]``. Failures that may pass (429, 500, 502, 503,
504, timeouts, refused or dropped connections) are retried under the providers' one retry policy
(``rag.providers.http.RetryPolicy``): exponential backoff while the time budget lasts, a 429's
``Retry-After`` honoured when it fits the budget, no attempt past ``budget_s + timeout_s``.
Every failure leaves as a typed ``ProviderError`` with ``provider="openai"``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from rag.providers.http import (
    MAX_ANSWER_CHARS,
    MAX_RESPONSE_BYTES,
    ByteLimitedTransport,
    CallStats,
    ResponseTooLarge,
    RetryPolicy,
    bounded_model_name,
    retry_after_seconds,
    tls_context,
)
from rag.providers.prompt import build_messages
from rag.types import AnswerRequest, Generation, GenerationDelta, Usage
from utils.exceptions import (
    ProviderBadResponse,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from utils.logging import current_request_id

logger = logging.getLogger(__name__)

PROVIDER = "openai"
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class _StatusError(Exception):
    """The server answered with an HTTP error status."""

    def __init__(self, status: int, retry_after: float | None, detail: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after
        self.detail = detail


class OpenAICompatGenerator:
    """Chat completions from an OpenAI-compatible server, streamed or not."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        budget_s: float = 30.0,
        *,
        temperature: float | None = 0.2,
        max_tokens: int | None = None,
        max_attempts: int = 4,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 4.0,
        stream_usage: bool = True,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        max_answer_chars: int = MAX_ANSWER_CHARS,
    ) -> None:
        self.model = model
        self.max_answer_chars = max_answer_chars
        self._url = f"{base_url.rstrip('/')}/chat/completions"
        self._api_key = api_key or ""
        self._retry = RetryPolicy(
            provider=PROVIDER,
            budget_s=budget_s,
            timeout_s=timeout_s,
            max_attempts=max_attempts,
            initial_backoff_s=initial_backoff_s,
            max_backoff_s=max_backoff_s,
        )
        self._stream_usage = stream_usage  # asks for a final usage chunk (OpenAI's stream_options)
        options = {"temperature": temperature, "max_tokens": max_tokens}
        self._options = {key: value for key, value in options.items() if value is not None}
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        transport = ByteLimitedTransport(httpx.HTTPTransport(verify=tls_context()), max_bytes=max_response_bytes)
        self._http = httpx.Client(headers=headers, transport=transport)

    def generate(self, request: AnswerRequest) -> Generation:
        """One chat completion."""
        payload = {"model": self.model, "messages": build_messages(request), "stream": False, **self._options}
        response = self._send(payload, "chat completion", stream=False)
        data = self._json(response.content, "chat completion")
        text = _completion_text(data)
        if text is None:
            raise self._bad("chat completion", "the response has no choices[0].message.content")
        if not text.strip():
            raise self._bad("chat completion", "the answer is empty")
        if len(text) > self.max_answer_chars:
            raise self._bad("chat completion", f"the answer is longer than {self.max_answer_chars} characters")
        model = bounded_model_name(data.get("model"), self.model)
        return Generation(text=text, model=model, usage=_usage(data.get("usage")))

    def stream(self, request: AnswerRequest) -> Iterator[GenerationDelta]:
        """Text deltas as they arrive; a last, empty delta carries the usage when the server sends it."""
        payload: dict[str, Any] = {"model": self.model, "messages": build_messages(request), "stream": True}
        payload.update(self._options)
        if self._stream_usage:
            payload["stream_options"] = {"include_usage": True}
        response = self._send(payload, "chat stream", stream=True)
        usage: Usage | None = None
        produced = False
        length = 0
        try:
            for chunk in self._sse_chunks(response):
                usage = _usage(chunk.get("usage")) or usage
                text = _delta_text(chunk)
                if text:
                    length += len(text)
                    if length > self.max_answer_chars:
                        raise self._bad("chat stream", f"the answer is longer than {self.max_answer_chars} characters")
                    produced = True
                    yield GenerationDelta(text=text)
        finally:  # also when the consumer stops early
            response.close()
        if not produced:
            raise self._bad("chat stream", "the answer is empty")
        if usage is not None:
            yield GenerationDelta(text="", usage=usage)

    # --- transport with retries ------------------------------------------------------------

    def _send(self, payload: dict[str, Any], operation: str, *, stream: bool) -> httpx.Response:
        """POST under the retry policy (``rag.providers.http.RetryPolicy``); a successful response is returned."""
        started = time.monotonic()
        stats = CallStats()
        try:
            return self._retry.call(
                lambda timeout: self._attempt(payload, timeout, stream=stream),
                retryable=_retryable,
                retry_after=_retry_after,
                stats=stats,
            )
        except (httpx.RequestError, _StatusError) as exc:
            error = self._translate(exc, operation, stats.attempts)
            logger.warning("%s (after %.2f s)", error.detail, time.monotonic() - started)
            raise error from exc

    def _attempt(self, payload: dict[str, Any], timeout: float, *, stream: bool) -> httpx.Response:
        headers = {"X-Request-ID": request_id} if (request_id := current_request_id()) else None
        request = self._http.build_request("POST", self._url, json=payload, timeout=timeout, headers=headers)
        response = self._http.send(request, stream=True)
        if response.status_code < 400 and stream:
            return response  # the caller reads the body, then closes it
        try:
            body = response.read()
        finally:
            response.close()
        if response.status_code >= 400:
            raise _StatusError(response.status_code, retry_after_seconds(response.headers), _server_message(body))
        return response

    # --- parsing and errors ----------------------------------------------------------------

    def _sse_chunks(self, response: httpx.Response) -> Iterator[dict[str, Any]]:
        """The JSON objects of the stream's ``data:`` lines, up to ``[DONE]``."""
        lines = response.iter_lines()
        while True:
            try:
                line = next(lines)
            except StopIteration:
                raise ProviderUnavailable(
                    f"{PROVIDER}: chat stream: cut off before [DONE]", provider=PROVIDER
                ) from None
            except httpx.RequestError as exc:
                raise self._translate(exc, "chat stream", 1) from exc
            if not line.startswith("data:"):
                continue  # blank separators, comments, event names
            data = line[len("data:") :].strip()
            if data == "[DONE]":
                return
            chunk = self._json(data.encode(), "chat stream")
            if "error" in chunk:
                reported = self._redact(_error_message(chunk))
                raise ProviderUnavailable(
                    f"{PROVIDER}: chat stream: the server reported an error: {reported}", provider=PROVIDER
                )
            yield chunk

    def _json(self, content: bytes, operation: str) -> dict[str, Any]:
        try:
            data = json.loads(content)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            raise self._bad(operation, "invalid JSON in the response") from exc
        if not isinstance(data, dict):
            raise self._bad(operation, "the response is not a JSON object")
        return data

    def _bad(self, operation: str, reason: str) -> ProviderBadResponse:
        return ProviderBadResponse(f"{PROVIDER}: {operation}: {reason}", provider=PROVIDER)

    def _translate(self, exc: Exception, operation: str, attempts: int) -> ProviderError:
        error = _classify(exc, f"{PROVIDER}: {operation}", attempts)
        redacted = self._redact(error.detail)
        return error if redacted == error.detail else type(error)(redacted, provider=PROVIDER)

    def _redact(self, text: str) -> str:
        """``text`` without the API key (a server may echo it back in an error)."""
        return text.replace(self._api_key, "[redacted]") if self._api_key else text


def _retry_after(exc: BaseException) -> float | None:
    return exc.retry_after if isinstance(exc, _StatusError) else None


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, _StatusError):
        return exc.status in RETRYABLE_STATUSES
    return isinstance(exc, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError))


def _classify(exc: Exception, where: str, attempts: int) -> ProviderError:
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    if isinstance(exc, ResponseTooLarge):
        return ProviderBadResponse(f"{where}: {exc}", provider=PROVIDER)
    if isinstance(exc, _StatusError):
        detail = f": {exc.detail}" if exc.detail else ""
        if exc.status == 429:
            return ProviderRateLimited(f"{where}: rate limited (HTTP 429){tries}{detail}", provider=PROVIDER)
        if exc.status >= 500:
            return ProviderUnavailable(f"{where}: server error (HTTP {exc.status}){tries}{detail}", provider=PROVIDER)
        return ProviderBadResponse(f"{where}: request rejected (HTTP {exc.status}){detail}", provider=PROVIDER)
    if isinstance(exc, httpx.TimeoutException):
        return ProviderTimeout(f"{where}: no answer in time ({type(exc).__name__}){tries}", provider=PROVIDER)
    if isinstance(exc, httpx.DecodingError):
        return ProviderBadResponse(f"{where}: undecodable response body", provider=PROVIDER)
    if isinstance(exc, httpx.RemoteProtocolError):
        return ProviderUnavailable(f"{where}: the server closed the connection{tries} ({exc})", provider=PROVIDER)
    return ProviderUnavailable(f"{where}: connection failed{tries} ({type(exc).__name__}: {exc})", provider=PROVIDER)


def _completion_text(data: Mapping[str, Any]) -> str | None:
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message")
    return _text(message.get("content")) if isinstance(message, dict) else None


def _delta_text(chunk: Mapping[str, Any]) -> str:
    choices = chunk.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ""  # e.g. the final usage-only chunk
    delta = choices[0].get("delta")
    return (_text(delta.get("content")) or "") if isinstance(delta, dict) else ""


def _text(content: Any) -> str | None:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return None


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    try:
        return Usage(
            prompt_tokens=int(raw.get("prompt_tokens") or 0),
            completion_tokens=int(raw.get("completion_tokens") or 0),
            total_tokens=int(raw.get("total_tokens") or 0),
        )
    except (TypeError, ValueError):
        return None


def _server_message(body: bytes) -> str:
    """A short explanation from an error body (``{"error": {"message"}}`` or ``{"message"}``)."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    return _error_message(data) if isinstance(data, dict) else ""


def _error_message(data: Mapping[str, Any]) -> str:
    error = data.get("error")
    message = error.get("message") if isinstance(error, dict) else error or data.get("message")
    return " ".join(str(message).split())[:200] if message else ""
