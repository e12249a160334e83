"""Per-request observability: the request id and the request latency histogram.

First in ``MIDDLEWARE`` so that it sees every response, including the static files, redirects
and errors of the middleware after it. The request id stays set until Django's
``request_finished`` (after the last byte of a streamed answer, and after Django's own
"Not Found"/"Internal Server Error" log lines), so those lines carry it too.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.core.signals import request_finished
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse

from utils.logging import clear_request_id, sane_request_id, set_request_id
from utils.metrics import record_request

REQUEST_ID_HEADER = "X-Request-ID"


class RequestContextMiddleware:
    """Takes the client's ``X-Request-ID`` when sane (else a new uuid4 hex), echoes it in the
    response, and times the request by view name, method and status class."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        request_id = sane_request_id(request.headers.get(REQUEST_ID_HEADER)) or uuid.uuid4().hex
        set_request_id(request_id)
        started = time.perf_counter()
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        view = _view_label(request)
        if isinstance(response, StreamingHttpResponse) and isinstance(content := response.streaming_content, Iterator):
            # Timed to its last byte. (An async stream, under ASGI, is timed to its start.)
            response.streaming_content = _timed(content, request, view, response, started)
        else:
            _observe(request, view, response, started)
        return response


def _view_label(request: HttpRequest) -> str:
    """The URL pattern's name ("chat:session-messages"), never the raw path: bounded cardinality."""
    match = request.resolver_match
    if match is not None:
        return match.view_name or match.route or "<unnamed>"
    if request.path_info.startswith("/" + settings.STATIC_URL.lstrip("/")):
        return "<static>"
    return "<unmatched>"


def _observe(request: HttpRequest, view: str, response: HttpResponseBase, started: float) -> None:
    record_request(
        view=view, method=request.method or "", status=response.status_code, seconds=time.perf_counter() - started
    )


def _timed(
    content: Iterator[Any], request: HttpRequest, view: str, response: HttpResponseBase, started: float
) -> Iterator[Any]:
    """The stream, observed when its last chunk has gone out (or the client went away)."""
    try:
        yield from content
    finally:
        _observe(request, view, response, started)


@receiver(request_finished, dispatch_uid="utils.middleware.clear_request_id")
def _request_finished(sender: Any, **kwargs: Any) -> None:
    clear_request_id()
