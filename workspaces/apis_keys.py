"""API key management: a workspace's owners and admins list, create and revoke its keys.

These endpoints take a signed-in user (JWT) only: an API key is refused here with 403
``api_key_not_allowed`` (``workspaces.permissions``), so a leaked key cannot mint or keep alive
other keys.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from users.selectors import request_user
from utils.pagination import StandardPagination
from utils.schema import error_responses, request_example, response_example
from workspaces.access import membership_require
from workspaces.api_keys import api_key_create, api_key_get, api_key_revoke, api_keys_of
from workspaces.serializers_keys import ApiKeyCreatedSerializer, ApiKeyCreateSerializer, ApiKeySerializer

TAG = ["api keys"]

_KEY = {
    "id": 7,
    "workspace": 3,
    "name": "Helpdesk integration",
    "prefix": "a1B2c3D4",
    "scopes": ["chat", "documents:read"],
    "created_by": {"id": 12, "username": "alice"},
    "created_at": "2026-12-01T10:00:00Z",
    "last_used_at": "2026-12-06T08:14:00Z",
    "expires_at": "2027-03-01T10:00:00Z",
    "revoked_at": None,
}
_RAW_KEY = "rk_a1B2c3D4_Jx0mB3m7V1o2Qw9cKf3p6Z8rT4uY5sL0aE1dG2hN3iO"


class ApiKeyListApi(APIView):
    pagination_class = StandardPagination  # read by the schema generator (page parameters, envelope)

    @extend_schema(
        tags=TAG,
        summary="List a workspace's API keys",
        description="Owners and admins only. Revoked and expired keys are listed too; the keys themselves never are.",
        responses={200: ApiKeySerializer(many=True), **error_responses(401, 403, 404)},
        examples=[response_example("Page", _KEY)],
    )
    def get(self, request: Request, workspace_id: int) -> Response:
        membership = membership_require(user=request_user(request), workspace_id=workspace_id, manage=True)
        paginator = StandardPagination()
        page = paginator.paginate_queryset(api_keys_of(workspace=membership.workspace), request, view=self)
        return paginator.get_paginated_response(ApiKeySerializer(page, many=True).data)

    @extend_schema(
        tags=TAG,
        summary="Create an API key",
        description="Owners and admins only. The key acts as its creator, inside this workspace, within its "
        "scopes, and stops working when revoked, when it expires, or when its creator stops being an owner or "
        "admin here. The reply shows the key once. A workspace has at most API_KEYS_MAX_PER_WORKSPACE live "
        "keys (409 `api_key_limit_reached`).",
        request=ApiKeyCreateSerializer,
        responses={201: ApiKeyCreatedSerializer, **error_responses(400, 401, 403, 404, 409)},
        examples=[
            request_example(
                "Chat and read documents for 90 days",
                {"name": "Helpdesk integration", "scopes": ["chat", "documents:read"], "expires_in_days": 90},
            ),
            response_example("Created", _KEY | {"key": _RAW_KEY, "last_used_at": None}, 201),
        ],
    )
    def post(self, request: Request, workspace_id: int) -> Response:
        user = request_user(request)
        membership = membership_require(user=user, workspace_id=workspace_id, manage=True)
        serializer = ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = api_key_create(workspace=membership.workspace, created_by=user, **serializer.validated_data)
        data = ApiKeyCreatedSerializer(created.api_key, context={"raw_key": created.raw_key}).data
        return Response(data, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


class ApiKeyDetailApi(APIView):
    @extend_schema(
        tags=TAG,
        summary="Revoke an API key",
        description="Owners and admins only. The key is refused from the next request on; it stays listed with "
        "its `revoked_at`. Revoking a revoked key changes nothing.",
        responses={204: None, **error_responses(401, 403, 404)},
    )
    def delete(self, request: Request, workspace_id: int, key_id: int) -> Response:
        membership = membership_require(user=request_user(request), workspace_id=workspace_id, manage=True)
        api_key_revoke(api_key=api_key_get(workspace=membership.workspace, key_id=key_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
