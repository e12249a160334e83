"""One DRF exception handler: every API error in the envelope ``{"detail", "code"[, "errors"]}``."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from utils.exceptions import ProviderError, ServiceError, ValidationFailed, public_detail

logger = logging.getLogger(__name__)


def error_body(detail: str, code: str, errors: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"detail": detail, "code": code}
    if errors:
        body["errors"] = errors
    return body


DATABASE_ERRORS = (OperationalError, InterfaceError)  # the database is down or the connection broke


def database_unavailable_body() -> dict[str, Any]:
    return error_body("The database is unavailable; try again shortly.", "database_unavailable")


def _validation_errors(data: Any) -> dict[str, Any]:
    if isinstance(data, dict):
        return data
    return {"non_field_errors": data if isinstance(data, list) else [data]}


def _from_drf(exc: drf_exceptions.APIException, response: Response) -> None:
    if isinstance(exc, drf_exceptions.ValidationError):
        response.data = error_body("Invalid input.", "invalid", _validation_errors(exc.detail))
        return
    detail = exc.detail
    if isinstance(detail, dict):  # simplejwt's InvalidToken carries {"detail", "code", "messages"}
        message = str(detail.get("detail", exc.default_detail))
        code = str(detail.get("code", exc.default_code))
    else:
        message = str(detail)
        code = str(getattr(detail, "code", None) or exc.default_code)
    response.data = error_body(message, code)


def _staff(context: dict[str, Any]) -> bool:
    """Whether the caller is signed-in staff (who may read a provider's own error text)."""
    user = getattr(context.get("request"), "_user", None)  # set once DRF has authenticated the request
    return bool(getattr(user, "is_staff", False))


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """Render DRF, service and unexpected errors alike; 500s carry no traceback.

    Like DRF's own handler, it marks the request's transaction for rollback (``set_rollback``):
    under ``ATOMIC_REQUESTS`` a view that wrote and then failed leaves nothing behind, whatever the
    error. Without ``ATOMIC_REQUESTS`` (the default here) that is a no-op."""
    response = _render(exc, context)
    set_rollback()
    return response


def _render(exc: Exception, context: dict[str, Any]) -> Response:
    if isinstance(exc, ServiceError):
        errors = exc.errors if isinstance(exc, ValidationFailed) else None
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        detail = exc.detail if _staff(context) else public_detail(exc)
        if isinstance(exc, ProviderError):
            logger.warning("Provider error served as %s: %s", exc.code, exc.detail)
        return Response(error_body(detail, exc.code, errors), status=exc.status_code, headers=headers)
    if isinstance(exc, RequestDataTooBig):  # raised while DRF reads a body over DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response(
            error_body("The request body is too large.", "request_too_large"),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, SuspiciousOperation):  # e.g. too many form fields: the client's fault, never a 500
        logger.warning("Suspicious request refused: %s", exc)
        return Response(error_body("Bad request.", "bad_request"), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DATABASE_ERRORS):
        logger.exception("Database unavailable while serving %s", context.get("request"))
        return Response(database_unavailable_body(), status=status.HTTP_503_SERVICE_UNAVAILABLE)
    if isinstance(exc, (Http404, PermissionDenied, drf_exceptions.APIException)):
        response = drf_exception_handler(exc, context)
        if response is not None:
            drf_exc = exc
            if isinstance(exc, Http404):
                drf_exc = drf_exceptions.NotFound()
            elif isinstance(exc, PermissionDenied):
                drf_exc = drf_exceptions.PermissionDenied()
            assert isinstance(drf_exc, drf_exceptions.APIException)
            _from_drf(drf_exc, response)
            return response
    if isinstance(exc, DatabaseError):
        logger.exception("Database error while serving %s", context.get("request"))
    else:
        logger.exception("Unhandled error while serving %s", context.get("request"))
    return Response(error_body("Internal server error.", "server_error"), status=status.HTTP_500_INTERNAL_SERVER_ERROR)
