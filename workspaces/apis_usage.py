"""``GET /api/usage/``: the caller's usage and, to owners and admins, their workspaces' usage."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from users.selectors import request_user
from utils.schema import error_responses
from workspaces.usage import usage_for


class _Figures(serializers.Serializer[Any]):
    messages_today = serializers.IntegerField(help_text="Messages sent (questions), this UTC day.")
    messages_month = serializers.IntegerField(help_text="Messages sent (questions), this UTC month.")
    tokens_today = serializers.IntegerField(help_text="Tokens the answers used (as the generator reported), today.")
    tokens_month = serializers.IntegerField(help_text="Tokens the answers used, this month.")


class UserUsageSerializer(_Figures):
    max_messages_per_day = serializers.IntegerField(help_text="The per-user daily message quota.")


class WorkspaceLimitsSerializer(serializers.Serializer[Any]):
    max_documents = serializers.IntegerField()
    max_bytes = serializers.IntegerField()
    max_messages_per_day = serializers.IntegerField()


class WorkspaceUsageSerializer(_Figures):
    id = serializers.IntegerField()
    name = serializers.CharField()
    role = serializers.ChoiceField(choices=["owner", "admin"])
    documents = serializers.IntegerField()
    bytes = serializers.IntegerField(help_text="Size of the documents' text, UTF-8 bytes.")
    limits = WorkspaceLimitsSerializer()


class AccountUsageSerializer(serializers.Serializer[Any]):
    today = serializers.DateField()
    month_start = serializers.DateField()
    user = UserUsageSerializer()
    workspaces = WorkspaceUsageSerializer(many=True, help_text="Workspaces the caller owns or administers.")


_FIGURES = {"messages_today": 12, "messages_month": 230, "tokens_today": 5400, "tokens_month": 98000}
_EXAMPLE = {
    "today": "2026-12-06",
    "month_start": "2026-12-01",
    "user": _FIGURES | {"max_messages_per_day": 500},
    "workspaces": [
        {"id": 3, "name": "Acme support", "role": "owner", "documents": 42, "bytes": 913204}
        | _FIGURES
        | {"limits": {"max_documents": 200, "max_bytes": 52428800, "max_messages_per_day": 2000}}
    ],
}


class UsageApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        tags=["usage"],
        summary="Your usage, and your workspaces' usage if you manage them",
        description=(
            "Messages you sent and tokens your answers used, this UTC day and month; for every workspace "
            "where you are owner or admin: its documents, their bytes, its members' messages and tokens, "
            "and its limits. Members see only their own numbers."
        ),
        responses={200: AccountUsageSerializer, **error_responses(401)},
        examples=[OpenApiExample("Usage", value=_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request) -> Response:
        return Response(AccountUsageSerializer(usage_for(user=request_user(request))).data)
