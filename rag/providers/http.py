"""HTTP helpers shared by the providers that speak to remote APIs."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Mapping
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
