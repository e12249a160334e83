"""Mistral embeddings (``mistral-embed``) and chat over the official ``mistralai`` SDK.

The SDK's own retries are off; 429, 500, 502, 503, 504, timeouts and dropped connections are
retried under the providers' one retry policy (``rag.providers.http.RetryPolicy``): exponential
backoff inside ``budget_s``, a ``Retry-After`` honoured when it fits the budget, and each attempt's
timeout clamped so that none runs past ``budget_s + timeout_s``. Every failure leaves as a typed
``ProviderError`` with ``provider="mistral"``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import httpx
import numpy as np
from mistralai.client import Mistral
from mistralai.client.errors import MistralError, NoResponseError, ResponseValidationError
from mistralai.client.models import TextChunk, UsageInfo
from mistralai.client.utils import BackoffStrategy, RetryConfig

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
from rag.types import AnswerRequest, Generation, GenerationDelta, Usage, Vectors
from utils.exceptions import (
    ProviderBadResponse,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from utils.logging import current_request_id

logger = logging.getLogger(__name__)

PROVIDER = "mistral"
EMBED_MODEL = "mistral-embed"
EMBED_DIMENSION = 1024
DEFAULT_CHAT_MODEL = "mistral-small-latest"

T = TypeVar("T")


# --- the transport under the SDK's httpx client ------------------------------------------------

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class _RequestIdTransport(httpx.BaseTransport):
    """Sends the current request id along, so the provider's logs can be matched with ours."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request_id := current_request_id():
            request.headers["X-Request-ID"] = request_id
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


def _retryable(exc: BaseException) -> bool:
    """Worth another attempt: a transient status, or a transport failure before any answer."""
    if isinstance(exc, MistralError):
        return exc.status_code in RETRYABLE_STATUSES
    return isinstance(exc, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError))


def _retry_after(exc: BaseException) -> float | None:
    if isinstance(exc, MistralError) and exc.status_code == 429:
        return retry_after_seconds(exc.raw_response.headers)
    return None


# --- error translation -------------------------------------------------------------------------

# What an SDK call can raise for a provider-side failure (anything else is a bug and propagates).
_CAUGHT = (MistralError, NoResponseError, httpx.RequestError, UnicodeDecodeError)


def _translate(exc: BaseException, operation: str, secret: str, stats: CallStats | None = None) -> ProviderError:
    """The typed error for a failure of ``operation``; its message never contains ``secret``."""
    error = _classify(exc, operation, stats or CallStats())
    if secret and secret in error.detail:
        error = type(error)(error.detail.replace(secret, "[redacted]"), provider=PROVIDER)
    return error


def _classify(exc: BaseException, operation: str, stats: CallStats) -> ProviderError:
    where = f"{PROVIDER}: {operation}"
    if stats.retry_after_beyond_budget is not None:
        return ProviderRateLimited(
            f"{where}: rate limited (HTTP 429); the server asked to retry after "
            f"{stats.retry_after_beyond_budget:g} s, beyond the time budget",
            provider=PROVIDER,
        )
    if isinstance(exc, ResponseValidationError):
        return ProviderBadResponse(f"{where}: invalid or unexpected JSON in the response", provider=PROVIDER)
    if isinstance(exc, MistralError):
        return _classify_status(exc.status_code, where, _server_message(exc))
    if isinstance(exc, ResponseTooLarge):
        return ProviderBadResponse(f"{where}: {exc}", provider=PROVIDER)
    if isinstance(exc, httpx.TimeoutException):
        return ProviderTimeout(f"{where}: no answer in time ({type(exc).__name__})", provider=PROVIDER)
    if isinstance(exc, httpx.RemoteProtocolError):
        return ProviderUnavailable(f"{where}: the server closed the connection ({exc})", provider=PROVIDER)
    if isinstance(exc, (httpx.DecodingError, UnicodeDecodeError)):
        return ProviderBadResponse(f"{where}: undecodable response body", provider=PROVIDER)
    if isinstance(exc, (httpx.RequestError, NoResponseError)):
        return ProviderUnavailable(f"{where}: connection failed ({type(exc).__name__}: {exc})", provider=PROVIDER)
    raise TypeError(f"unexpected exception type {type(exc).__name__}") from exc


def _classify_status(status: int, where: str, detail: str) -> ProviderError:
    suffix = f": {detail}" if detail else ""
    if status == 429:
        return ProviderRateLimited(f"{where}: rate limited (HTTP 429) after retries{suffix}", provider=PROVIDER)
    if status >= 500:
        return ProviderUnavailable(f"{where}: server error (HTTP {status}) after retries{suffix}", provider=PROVIDER)
    return ProviderBadResponse(f"{where}: request rejected (HTTP {status}){suffix}", provider=PROVIDER)


def _server_message(exc: MistralError) -> str:
    """The server's own short explanation (Mistral error JSON ``message``), if it sent one."""
    try:
        body = exc.raw_response.json()
    except (ValueError, httpx.ResponseNotRead):
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return " ".join(str(message).split())[:200] if message else ""


# --- the SDK client shared by the embedder and the generator ------------------------------------


class _MistralCalls:
    """An SDK client plus the budget plumbing; ``call`` runs one SDK call and translates failures."""

    def __init__(
        self,
        *,
        api_key: str,
        server_url: str | None,
        timeout_s: float,
        budget_s: float,
        initial_backoff_s: float,
        max_backoff_s: float,
        max_response_bytes: int,
    ) -> None:
        if not api_key:
            raise ValueError("mistral: an API key is required")
        self._api_key = api_key
        self.retry = RetryPolicy(
            provider=PROVIDER,
            budget_s=budget_s,
            timeout_s=timeout_s,
            initial_backoff_s=initial_backoff_s,
            max_backoff_s=max_backoff_s,
        )
        transport = _RequestIdTransport(
            ByteLimitedTransport(httpx.HTTPTransport(verify=tls_context()), max_bytes=max_response_bytes)
        )
        self._http = httpx.Client(transport=transport, follow_redirects=True)
        self.sdk = Mistral(
            api_key=api_key,
            server_url=server_url,
            client=self._http,
            async_client=httpx.AsyncClient(verify=tls_context()),  # unused; saves the SDK building one
            timeout_ms=_ms(timeout_s),
            retry_config=RetryConfig("none", BackoffStrategy(1, 1, 1.0, 1), retry_connection_errors=False),
        )

    def call(self, operation: str, request: Callable[[int], T]) -> T:
        """Run ``request(timeout_ms)`` (one SDK request) under the retry policy; translate its failure."""
        started = time.monotonic()
        stats = CallStats()
        try:
            return self.retry.call(
                lambda timeout: request(_ms(timeout)), retryable=_retryable, retry_after=_retry_after, stats=stats
            )
        except _CAUGHT as exc:
            error = _translate(exc, operation, self._api_key, stats)
            logger.warning("%s (after %.2f s, %d attempts)", error.detail, time.monotonic() - started, stats.attempts)
            raise error from exc

    def translate(self, exc: BaseException, operation: str) -> ProviderError:
        return _translate(exc, operation, self._api_key)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


# --- embeddings --------------------------------------------------------------------------------


class MistralEmbedder:
    """``mistral-embed`` (1024-d, or ``model``) in batched requests; float32, L2-normalised rows.

    ``name`` carries the model, so an index built by another model is refused (``manage.py reindex``).
    """

    dimension = EMBED_DIMENSION

    def __init__(
        self,
        api_key: str,
        server_url: str | None = None,
        timeout_s: float = 10.0,
        budget_s: float = 20.0,
        batch_size: int = 64,
        *,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 4.0,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        model: str = EMBED_MODEL,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.model = model
        self.name = f"mistral:{model}"
        self.batch_size = batch_size
        self._calls = _MistralCalls(
            api_key=api_key,
            server_url=server_url,
            timeout_s=timeout_s,
            budget_s=budget_s,
            initial_backoff_s=initial_backoff_s,
            max_backoff_s=max_backoff_s,
            max_response_bytes=max_response_bytes,
        )

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Shape (len(texts), 1024); one request per ``batch_size`` texts, each with its own budget."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        batches = [list(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        logger.debug("mistral: embedding %d texts in %d requests", len(texts), len(batches))
        return np.vstack([self._embed_batch(batch) for batch in batches])

    def embed_query(self, text: str) -> Vectors:
        """Shape (1024,)."""
        return self.embed_documents([text])[0]

    def _embed_batch(self, batch: list[str]) -> Vectors:
        response = self._calls.call(
            "embeddings",
            lambda timeout_ms: self._calls.sdk.embeddings.create(model=self.model, inputs=batch, timeout_ms=timeout_ms),
        )
        return _embedding_rows(response.data, expected=len(batch), dimension=self.dimension)


def _embedding_rows(data: Sequence[Any], *, expected: int, dimension: int) -> Vectors:
    """Check the response's shape and return its rows in input order, L2-normalised."""

    def bad(reason: str) -> ProviderBadResponse:
        return ProviderBadResponse(f"{PROVIDER}: embeddings: {reason}", provider=PROVIDER)

    if len(data) != expected:
        raise bad(f"{len(data)} embeddings returned for {expected} inputs")
    if all(item.index is not None for item in data):
        data = sorted(data, key=lambda item: item.index)
    rows = [item.embedding for item in data]
    if any(row is None or len(row) != dimension for row in rows):
        raise bad(f"an embedding is missing or does not have {dimension} dimensions")
    matrix = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if not np.all(np.isfinite(matrix)) or np.any(norms == 0):
        raise bad("an embedding is zero or not finite")
    return matrix / norms


# --- chat --------------------------------------------------------------------------------------


class MistralGenerator:
    """Answers through Mistral chat completions, streamed or not."""

    name = "mistral"

    def __init__(
        self,
        api_key: str,
        model: str = DEFAULT_CHAT_MODEL,
        server_url: str | None = None,
        timeout_s: float = 30.0,
        budget_s: float = 30.0,
        *,
        temperature: float | None = 0.2,
        max_tokens: int | None = None,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 4.0,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        max_answer_chars: int = MAX_ANSWER_CHARS,
    ) -> None:
        self.model = model
        self.max_answer_chars = max_answer_chars
        self._options: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens}
        self._options = {key: value for key, value in self._options.items() if value is not None}
        self._calls = _MistralCalls(
            api_key=api_key,
            server_url=server_url,
            timeout_s=timeout_s,
            budget_s=budget_s,
            initial_backoff_s=initial_backoff_s,
            max_backoff_s=max_backoff_s,
            max_response_bytes=max_response_bytes,
        )

    def generate(self, request: AnswerRequest) -> Generation:
        """One chat completion."""
        messages: Any = build_messages(request)
        response = self._calls.call(
            "chat completion",
            lambda timeout_ms: self._calls.sdk.chat.complete(
                model=self.model, messages=messages, timeout_ms=timeout_ms, **self._options
            ),
        )
        if not response.choices or response.choices[0].message is None:
            raise ProviderBadResponse(f"{PROVIDER}: chat completion: the response has no choices", provider=PROVIDER)
        text = _content_text(response.choices[0].message.content)
        if not text.strip():
            raise ProviderBadResponse(f"{PROVIDER}: chat completion: the answer is empty", provider=PROVIDER)
        if len(text) > self.max_answer_chars:
            raise self._too_long("chat completion")
        return Generation(text=text, model=bounded_model_name(response.model, self.model), usage=_usage(response.usage))

    def stream(self, request: AnswerRequest) -> Iterator[GenerationDelta]:
        """Text deltas as they arrive; a last, empty delta carries the usage when the server sends it."""
        messages: Any = build_messages(request)
        events = self._calls.call(
            "chat stream",
            lambda timeout_ms: self._calls.sdk.chat.stream(
                model=self.model, messages=messages, timeout_ms=timeout_ms, **self._options
            ),
        )
        usage: Usage | None = None
        finished = produced = False
        length = 0
        with events:  # closes the HTTP response even if the consumer stops early
            for chunk in self._chunks(events):
                usage = _usage(chunk.usage) or usage
                choice = chunk.choices[0] if chunk.choices else None
                if choice is None:
                    continue
                finished = finished or bool(choice.finish_reason)
                text = _content_text(choice.delta.content)
                if text:
                    length += len(text)
                    if length > self.max_answer_chars:
                        raise self._too_long("chat stream")
                    produced = True
                    yield GenerationDelta(text=text)
        if not finished:
            raise ProviderUnavailable(f"{PROVIDER}: chat stream: cut off before the answer ended", provider=PROVIDER)
        if not produced:
            raise ProviderBadResponse(f"{PROVIDER}: chat stream: the answer is empty", provider=PROVIDER)
        if usage is not None:
            yield GenerationDelta(text="", usage=usage)

    def _too_long(self, operation: str) -> ProviderBadResponse:
        return ProviderBadResponse(
            f"{PROVIDER}: {operation}: the answer is longer than {self.max_answer_chars} characters", provider=PROVIDER
        )

    def _chunks(self, events: Any) -> Iterator[Any]:
        """The stream's chunks, with read failures translated."""
        iterator = iter(events)
        while True:
            try:
                event = next(iterator)
            except StopIteration:
                return
            except _CAUGHT as exc:
                raise self._calls.translate(exc, "chat stream") from exc
            yield event.data


def _content_text(content: Any) -> str:
    """Text of a message or delta: a string, or the text parts of a list of chunks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.text for part in content if isinstance(part, TextChunk))
    return ""


def _usage(info: UsageInfo | None) -> Usage | None:
    if info is None:
        return None
    return Usage(
        prompt_tokens=info.prompt_tokens or 0,
        completion_tokens=info.completion_tokens or 0,
        total_tokens=info.total_tokens or 0,
    )
