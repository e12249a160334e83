"""HTTP helpers shared by the providers that speak to remote APIs: Retry-After, TLS, and bounds on
what a provider may send back."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Iterator, Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime

import httpx


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
