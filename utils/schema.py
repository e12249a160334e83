"""OpenAPI helpers: the error envelope as a schema component, with an example per status, and the
schema of the strict text field (``utils.serializers``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import Direction, OpenApiExample, OpenApiResponse
from rest_framework import serializers

from utils.serializers import NO_NUL_PATTERN, NOT_BLANK_PATTERN, StrictCharField

if TYPE_CHECKING:
    from drf_spectacular.openapi import AutoSchema


class ErrorSerializer(serializers.Serializer[Any]):
    detail = serializers.CharField()
    code = serializers.CharField()
    errors = serializers.DictField(  # type: ignore[assignment]
        child=serializers.JSONField(),
        required=False,
        help_text="Validation errors by field (400 only): a list of messages, or for a nested object or list "
        'the same shape again, e.g. `{"documents": {"0": {"title": ["This field is required."]}}}`.',
    )


def response_example(name: str, value: Any, code: int = 200) -> OpenApiExample:
    """An example of the response with status ``code``."""
    return OpenApiExample(name, value=value, response_only=True, status_codes=[str(code)])


def request_example(name: str, value: Any) -> OpenApiExample:
    """An example of a request body."""
    return OpenApiExample(name, value=value, request_only=True)


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
    415: (
        "Unsupported file type",
        {"detail": "Upload a .txt, .md, .rst, .html or .pdf file.", "code": "unsupported_file_type"},
    ),
    422: (
        "Document too complex",
        {
            "detail": "The PDF could not be read within the time and memory allowed for one document.",
            "code": "document_too_complex",
        },
    ),
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


class StrictCharFieldExtension(OpenApiSerializerFieldExtension):
    """Adds the NUL and blank rules to request schemas (responses are what the server wrote)."""

    target_class = StrictCharField
    match_subclasses = True

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Direction) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        field = self.target
        if direction == "request" and "pattern" not in schema and "enum" not in schema:
            blank_ok = field.allow_blank or not field.trim_whitespace
            schema["pattern"] = NO_NUL_PATTERN if blank_ok else NOT_BLANK_PATTERN
        return schema
