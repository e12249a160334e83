"""Structured logs: a request id on every record, and a one-line JSON formatter.

The request id lives in a ``ContextVar`` so that code far from the view (provider calls, the
answer service) logs it without being handed it. ``utils.middleware`` sets it for each request
and job runs set ``job:<name>:<run id>``. ``RequestIdFilter`` copies it onto each record;
``settings.LOGGING`` puts the filter on the console handler, so every logger gets it. This module
imports no Django.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

_request_id: ContextVar[str] = ContextVar("request_id", default="")

# A client's X-Request-ID is echoed in logs and headers: keep it short and free of anything that
# could forge a log line or a header.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

# A safety net, not the policy (the policy is: never log them): credentials that slip into a
# message are masked. Bearer tokens, Authorization/API-key header values, JWTs.
_SECRETS = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [redacted]"),
    (
        re.compile(r"(?i)\b(authorization|api-key|x-api-key|proxy-authorization)(['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"),
        r"\1\2[redacted]",
    ),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), "[redacted-jwt]"),
    # Account tokens in a path (the mailed verification link) or a query string: a throttled or
    # failed request logs its path, and the token in it still works.
    (re.compile(r"(/verify-email/)[^/\s?#\"']+"), r"\1[redacted]"),
    (re.compile(r"(?i)((?:^|[?&])(?:token|refresh|access)=)[^&\s#\"']+"), r"\1[redacted]"),
]

# The attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id"}


def current_request_id() -> str:
    """The id of the request or job this thread is working for ("" outside of one)."""
    return _request_id.get()


def set_request_id(value: str) -> None:
    """Make ``value`` the current id until the next ``set_request_id`` / ``clear_request_id``."""
    _request_id.set(value)


def clear_request_id() -> None:
    _request_id.set("")


@contextmanager
def request_id_scope(value: str) -> Iterator[str]:
    """The current id is ``value`` inside the block and what it was before afterwards."""
    token = _request_id.set(value)
    try:
        yield value
    finally:
        _request_id.reset(token)


def sane_request_id(value: str | None) -> str | None:
    """``value`` if it is acceptable as a request id (1–64 of ``[A-Za-z0-9._-]``), else None."""
    if value and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return None


def redact(text: str) -> str:
    """``text`` with bearer tokens, credential header values and JWTs masked."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` ("-" outside a request) for the formatters and masks credentials
    in the message (for the plain format too); never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = _request_id.get() or "-"
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed call: the formatter reports it, a filter must not raise
            return True
        if (masked := redact(message)) != message:
            record.msg, record.args = masked, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, request_id, pid, exception.

    Values passed with ``extra=`` are included when they are plain JSON values; objects (such as
    the ``request`` Django attaches) are left out, so their headers cannot leak into the log.
    """

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "request_id": _record_request_id(record),
            "pid": record.process,
        }
        if record.exc_info:
            payload["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            payload["stack"] = redact(self.formatStack(record.stack_info))
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and key not in payload and _is_plain(value):
                payload[key] = redact(value) if isinstance(value, str) else value
        return json.dumps(payload, ensure_ascii=False, default=str)


def _record_request_id(record: logging.LogRecord) -> str | None:
    value = getattr(record, "request_id", "")
    if not value or value == "-":  # "-" is the filter's placeholder for plain text
        value = _request_id.get()
    return value or None


def _is_plain(value: Any) -> bool:
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, list | tuple):
        return all(_is_plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False
