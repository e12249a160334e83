"""Operational endpoints shared by every app."""

from __future__ import annotations

from django.contrib.auth import get_user
from django.db import DatabaseError
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from users.authentication import JWTAuthentication
from utils.health import run_checks

_HealthSerializer = inline_serializer(
    name="Health",
    fields={
        "status": serializers.ChoiceField(choices=["ok", "degraded", "unavailable"]),
        "down": serializers.ListField(child=serializers.CharField()),
        "degraded": serializers.ListField(child=serializers.CharField()),
        "checks": serializers.DictField(
            child=inline_serializer(
                name="HealthCheck",
                fields={
                    "ok": serializers.BooleanField(),
                    "latency_ms": serializers.FloatField(),
                    "error": serializers.CharField(required=False, help_text="Staff only."),
                    "hint": serializers.CharField(required=False),
                },
            )
        ),
    },
)


def _staff(request: Request) -> bool:
    """A staff member signed in with a bearer token or an admin session; never an error (a probe
    with a bad token, or with the database down, is simply not staff)."""
    try:
        found = JWTAuthentication().authenticate(request)
        user = found[0] if found else get_user(request._request)  # the admin's session
        return bool(user is not None and user.is_active and getattr(user, "is_staff", False))
    except (APIException, DatabaseError):
        return False


class HealthApi(APIView):
    """Liveness and readiness: 200 when every component answers (``degraded`` naming those that need
    an operator, each with a ``hint``), 503 naming what is down.

    The public answer says which component is down or degraded and how to fix it, nothing else:
    error texts and details (backends, index sizes, models, an index path inside an error) are
    for staff only.
    """

    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    @extend_schema(
        tags=["operations"],
        summary="Service health",
        description="Public: which components answer. Signed-in staff also get each component's details "
        "and error text.",
        responses={200: _HealthSerializer, 503: _HealthSerializer},
        examples=[
            OpenApiExample(
                "All up",
                value={
                    "status": "ok",
                    "down": [],
                    "degraded": [],
                    "checks": {"database": {"ok": True, "latency_ms": 0.4}, "cache": {"ok": True, "latency_ms": 0.2}},
                },
                response_only=True,
                status_codes=["200"],
            ),
            OpenApiExample(
                "Index out of step with the database",
                value={
                    "status": "degraded",
                    "down": [],
                    "degraded": ["vector_store"],
                    "checks": {
                        "database": {"ok": True, "latency_ms": 0.4},
                        "vector_store": {
                            "ok": True,
                            "latency_ms": 1.1,
                            "backend": "faiss",
                            "vectors": 240,
                            "chunks": 247,
                            "hint": "The vector store holds 240 vectors for 247 chunks: run `manage.py reindex`.",
                        },
                    },
                },
                response_only=True,
                status_codes=["200"],
            ),
            OpenApiExample(
                "Cache down",
                value={
                    "status": "unavailable",
                    "down": ["cache"],
                    "degraded": [],
                    "checks": {
                        "database": {"ok": True, "latency_ms": 0.4},
                        "cache": {"ok": False, "latency_ms": 1001.2},
                    },
                },
                response_only=True,
                status_codes=["503"],
            ),
        ],
    )
    def get(self, request: Request) -> Response:
        results = run_checks()
        detailed = _staff(request)
        checks: dict[str, dict[str, object]] = {}
        for result in results:
            entry: dict[str, object] = {"ok": result.ok, "latency_ms": result.latency_ms}
            if result.degraded:
                entry["hint"] = result.degraded
            if detailed:
                entry.update(result.details)
                if result.error:
                    entry["error"] = result.error
            checks[result.name] = entry
        down = [result.name for result in results if not result.ok]
        degraded = [result.name for result in results if result.degraded]
        overall = "unavailable" if down else "degraded" if degraded else "ok"
        body = {"status": overall, "down": down, "degraded": degraded, "checks": checks}
        return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE if down else status.HTTP_200_OK)
