"""OpenAPI helpers: the error envelope as a schema component, with an example per status."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer[Any]):
    detail = serializers.CharField()
    code = serializers.CharField()
    errors = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Validation errors by field (400 only).",
    )


_EXAMPLES: dict[int, tuple[str, dict[str, Any]]] = {
    400: (
        "Validation error",
        {"detail": "Invalid input.", "code": "invalid", "errors": {"field": ["This field is required."]}},
    ),
    401: (
        "Not authenticated",
        {"detail": "Authentication credentials were not provided.", "code": "not_authenticated"},
    ),
    403: ("Forbidden", {"detail": "You do not have permission to perform this action.", "code": "permission_denied"}),
    404: ("Not found", {"detail": "Not found.", "code": "not_found"}),
    409: ("Conflict", {"detail": "The request conflicts with the current state.", "code": "conflict"}),
    413: ("Too large", {"detail": "The upload is larger than 10 MB.", "code": "too_large"}),
    429: ("Throttled", {"detail": "Request was throttled. Expected available in 42 seconds.", "code": "throttled"}),
    503: ("Unavailable", {"detail": "An upstream provider is unavailable.", "code": "provider_unavailable"}),
}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """``responses={...}`` entries for the given error statuses, each with an example."""
    responses = {}
    for status in statuses:
        name, value = _EXAMPLES[status]
        responses[status] = OpenApiResponse(
            response=ErrorSerializer,
            description=name,
            examples=[OpenApiExample(name, value=value, response_only=True, status_codes=[str(status)])],
        )
    return responses
