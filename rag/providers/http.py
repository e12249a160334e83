"""HTTP helpers shared by the providers that speak to remote APIs: the one retry policy,
Retry-After, TLS, and bounds on what a provider may send back."""

from __future__ import annotations

import functools
import logging
import random
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception

from utils.metrics import failure_kind, record_retry

logger = logging.getLogger(__name__)

T = TypeVar("T")


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds asked for by ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date), if any."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(when.tzinfo)).total_seconds())


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context per process: each costs about 30 ms to build (it loads the CA bundle)."""
    return httpx.create_ssl_context()


# --- bounds on what a remote provider may send back ------------------------------------------
# A provider's answer is input we did not write: a broken or hostile server must not be able to
# exhaust memory, or have us store an unbounded string. No honest answer comes near these.

# Bytes of one response body as received. An embedding batch of 64 x 1024 floats is about 1.5 MB.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
# Characters of one generated answer (a long, honest answer is 2-4k).
MAX_ANSWER_CHARS = 20_000
# A model name echoed by the server is stored with every answer.
MAX_MODEL_NAME_CHARS = 200


class ResponseTooLarge(httpx.DecodingError):
    """A response body passed the byte limit (or came compressed, unasked); reading stopped there.

    A ``DecodingError``: it is not a transport failure, so neither the SDKs nor our retry loops
    retry it.
    """

    def __init__(self, message: str, *, request: httpx.Request | None = None) -> None:
        super().__init__(message, request=request)


class _LimitedStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, limit: int, request: httpx.Request) -> None:
        self._inner = inner
        self._limit = limit
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        received = 0
        for chunk in self._inner:
            received += len(chunk)
            if received > self._limit:
                raise ResponseTooLarge(f"the response body is larger than {self._limit} bytes", request=self._request)
            yield chunk

    def close(self) -> None:
        self._inner.close()


class ByteLimitedTransport(httpx.BaseTransport):
    """Refuses response bodies over ``max_bytes``, counted as they arrive (not after buffering).

    Asks for an uncompressed body, so the count is the size in memory; a body compressed anyway
    is refused, since a small compressed body can inflate without bound.
    """

    def __init__(self, inner: httpx.BaseTransport, max_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self._inner = inner
        self._max_bytes = max_bytes

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.headers["Accept-Encoding"] = "identity"
        response = self._inner.handle_request(request)
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        length = response.headers.get("Content-Length", "")
        reason = ""
        if encoding not in ("", "identity"):
            reason = f"the response body is {encoding}-encoded, though an uncompressed one was asked for"
        elif length.isdigit() and int(length) > self._max_bytes:
            reason = f"the response body is larger than {self._max_bytes} bytes ({length})"
        if reason:
            response.close()
            raise ResponseTooLarge(reason, request=request)
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = _LimitedStream(response.stream, self._max_bytes, request)
        return response

    def close(self) -> None:
        self._inner.close()


def bounded_model_name(value: object, default: str) -> str:
    """The model name a server reported, if it is a short string; else the one we asked for."""
    if isinstance(value, str) and value.strip() and len(value) <= MAX_MODEL_NAME_CHARS:
        return value
    return default


# --- the retry policy of every remote provider call -------------------------------------------


@dataclass
class CallStats:
    """What a ``RetryPolicy.call`` did, for the error message of a call that failed."""

    attempts: int = 0
    # A 429's Retry-After that ended after the budget: the call gave up instead of waiting.
    retry_after_beyond_budget: float | None = None


def _no_hint(exc: BaseException) -> float | None:
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and jitter (tenacity), inside a time budget.

    An attempt that fails with a retryable error is repeated after ``initial_backoff_s * 2**n``
    (capped at ``max_backoff_s`` and at ``timeout_s``, times a random 0.5-1 so throttled clients
    spread out), or after
    the server's Retry-After when it sent one, for at most ``max_attempts`` attempts. No retry
    starts after ``budget_s`` (a wait that would end later is not waited for), and each attempt is
    given ``timeout_s``, clamped so that none runs past ``budget_s + timeout_s`` from the start.
    """

    provider: str
    budget_s: float
    timeout_s: float
    max_attempts: int = 4
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 4.0

    def call(
        self,
        attempt: Callable[[float], T],
        *,
        retryable: Callable[[BaseException], bool],
        retry_after: Callable[[BaseException], float | None] = _no_hint,
        stats: CallStats | None = None,
    ) -> T:
        """``attempt(timeout_s)`` until it returns; the last error propagates as it was raised."""
        stats = stats if stats is not None else CallStats()
        started = time.monotonic()
        retry_until = started + self.budget_s
        deadline = retry_until + self.timeout_s

        def wait(state: RetryCallState) -> float:
            hinted = retry_after(_error(state))
            if hinted is not None:
                return hinted
            # Never longer than an attempt may last: a slow first attempt still leaves room for one more.
            cap = min(self.max_backoff_s, self.timeout_s)
            backoff = min(cap, self.initial_backoff_s * 2 ** (state.attempt_number - 1))
            return backoff * random.uniform(0.5, 1.0)

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number >= self.max_attempts:
                return True
            if time.monotonic() + state.upcoming_sleep <= retry_until:
                return False
            hinted = retry_after(_error(state))
            if hinted is not None and hinted == state.upcoming_sleep:
                stats.retry_after_beyond_budget = hinted
            return True

        def before_sleep(state: RetryCallState) -> None:
            error = _error(state)
            logger.debug(
                "%s: attempt %d failed (%r); retrying in %.2f s",
                self.provider,
                state.attempt_number,
                error,
                state.upcoming_sleep,
            )
            record_retry(self.provider, failure_kind(error))

        def one_attempt() -> T:
            stats.attempts += 1
            return attempt(max(0.001, min(self.timeout_s, deadline - time.monotonic())))

        retrying = Retrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception(retryable),
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(one_attempt)


def _error(state: RetryCallState) -> BaseException:
    assert state.outcome is not None
    error = state.outcome.exception()
    assert error is not None  # only failed attempts are retried
    return error
