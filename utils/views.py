"""Django-level error views (outside DRF): the same JSON envelope for 400, 403, 404 and 500."""

from __future__ import annotations

import sys
from typing import Any

from django.http import HttpRequest, JsonResponse

from utils.exception_handler import DATABASE_ERRORS, database_unavailable_body, error_body


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("Bad request.", "bad_request"), status=400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(
        error_body("You do not have permission to perform this action.", "permission_denied"), status=403
    )


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("Not found.", "not_found"), status=404)


def server_error(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    # Django calls this while it handles the exception. A database outage met outside DRF (the
    # session middleware, the admin) is a 503, as it is in the API: the client should retry.
    if isinstance(sys.exc_info()[1], DATABASE_ERRORS):
        return JsonResponse(database_unavailable_body(), status=503)
    return JsonResponse(error_body("Internal server error.", "server_error"), status=500)


def csrf_failure(request: HttpRequest, reason: str = "") -> JsonResponse:
    return JsonResponse(error_body("CSRF verification failed.", "csrf_failed"), status=403)
