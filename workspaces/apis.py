"""Workspace endpoints: thin views over ``workspaces.services`` and ``workspaces.selectors``.

Every lookup of a workspace goes through ``membership_require``: one the caller is not a member
of is a 404, exactly like one that does not exist. These endpoints manage people and erase data,
so they take a signed-in person's token only, never a workspace API key.
"""

from __future__ import annotations

from typing import Any

from rest_framework import status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from users.authentication import JWTAuthentication
from users.selectors import request_user
from utils.exceptions import NotFound, PermissionDeniedError
from utils.pagination import StandardPagination
from utils.serializers import query_value
from utils.throttling import ScopedThrottle
from workspaces import schema, selectors, services
from workspaces.access import membership_require
from workspaces.models import Membership
from workspaces.serializers import (
    InvitationAcceptSerializer,
    InvitationCreateSerializer,
    InvitationSerializer,
    MemberRoleSerializer,
    MemberSerializer,
    WorkspaceCreateSerializer,
    WorkspaceDeleteSerializer,
    WorkspaceSerializer,
    WorkspaceUpdateSerializer,
)


class WorkspaceApi(APIView):
    authentication_classes = [JWTAuthentication]
    permission_classes = [IsAuthenticated]

    def membership(self, workspace_id: int, *, manage: bool = False) -> Membership:
        return membership_require(user=request_user(self.request), workspace_id=workspace_id, manage=manage)

    def workspace_body(self, workspace_id: int) -> dict[str, Any]:
        workspace = selectors.workspace_get(user=request_user(self.request), workspace_id=workspace_id)
        if workspace is None:  # left or deleted in between
            raise NotFound("Workspace not found.")
        return dict(WorkspaceSerializer(workspace).data)

    def page(self, queryset: Any, serializer: Any) -> Response:
        paginator = StandardPagination()
        page: list[Any] | None = paginator.paginate_queryset(queryset, self.request, view=self)
        return paginator.get_paginated_response(serializer(page, many=True).data)


class WorkspaceListApi(WorkspaceApi):
    pagination_class = StandardPagination  # read by the schema generator (page parameters, envelope)
    throttle_scope = "workspace_create"

    def get_throttles(self) -> list[Any]:
        return [ScopedThrottle()] if self.request.method == "POST" else []

    @schema.workspace_list_get
    def get(self, request: Request) -> Response:
        user = request_user(request)
        services.workspace_personal_get(user=user)  # accounts made outside the API get theirs on first use
        return self.page(selectors.workspace_list(user=user), WorkspaceSerializer)

    @schema.workspace_list_post
    def post(self, request: Request) -> Response:
        serializer = WorkspaceCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        workspace = services.workspace_open(owner=request_user(request), **serializer.validated_data)
        return Response(self.workspace_body(workspace.pk), status=status.HTTP_201_CREATED)


class WorkspaceDetailApi(WorkspaceApi):
    @schema.workspace_detail_get
    def get(self, request: Request, workspace_id: int) -> Response:
        return Response(self.workspace_body(self.membership(workspace_id).workspace_id))

    @schema.workspace_detail_patch
    def patch(self, request: Request, workspace_id: int) -> Response:
        workspace = self.membership(workspace_id, manage=True).workspace
        serializer = WorkspaceUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.workspace_update(workspace=workspace, **serializer.validated_data)
        return Response(self.workspace_body(workspace.pk))

    @schema.workspace_detail_delete
    def delete(self, request: Request, workspace_id: int) -> Response:
        membership = self.membership(workspace_id)
        # Refused before the confirmation is read: no slug makes an admin's or a personal deletion possible.
        services.workspace_delete_check(membership=membership)
        confirm = request.data.get("confirm") if isinstance(request.data, dict) else None
        if confirm is None:
            confirm = query_value(request.query_params, "confirm")
        serializer = WorkspaceDeleteSerializer(data={"confirm": confirm}, context={"workspace": membership.workspace})
        serializer.is_valid(raise_exception=True)
        return Response({"deleted": services.workspace_delete(workspace=membership.workspace)})


class MemberListApi(WorkspaceApi):
    pagination_class = StandardPagination

    @schema.member_list_get
    def get(self, request: Request, workspace_id: int) -> Response:
        self.membership(workspace_id)
        members = selectors.member_list(user=request_user(request), workspace_id=workspace_id)
        return self.page(members, MemberSerializer)


class MemberDetailApi(WorkspaceApi):
    def target(self, workspace_id: int, user_id: int) -> Membership:
        member = selectors.member_get(user=request_user(self.request), workspace_id=workspace_id, member_id=user_id)
        if member is None:
            raise NotFound("Member not found.")
        return member

    @schema.member_detail_patch
    def patch(self, request: Request, workspace_id: int, user_id: int) -> Response:
        actor = self.membership(workspace_id, manage=True)
        serializer = MemberRoleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        target = self.target(workspace_id, user_id)
        member = services.member_role_change(actor=actor, target=target, role=serializer.validated_data["role"])
        return Response(MemberSerializer(member).data)

    @schema.member_detail_delete
    def delete(self, request: Request, workspace_id: int, user_id: int) -> Response:
        actor = self.membership(workspace_id)
        if actor.user_id != user_id and not actor.can_manage:
            raise PermissionDeniedError("Only the workspace's owners and admins can remove members.")
        services.member_remove(actor=actor, target=self.target(workspace_id, user_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class LeaveApi(WorkspaceApi):
    @schema.leave_post
    def post(self, request: Request, workspace_id: int) -> Response:
        services.membership_leave(membership=self.membership(workspace_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationListApi(WorkspaceApi):
    pagination_class = StandardPagination
    throttle_scope = "invitation"

    def get_throttles(self) -> list[Any]:
        return [ScopedThrottle()] if self.request.method == "POST" else []

    @schema.invitation_list_get
    def get(self, request: Request, workspace_id: int) -> Response:
        self.membership(workspace_id, manage=True)
        invitations = selectors.invitation_pending_list(user=request_user(request), workspace_id=workspace_id)
        return self.page(invitations, InvitationSerializer)

    @schema.invitation_list_post
    def post(self, request: Request, workspace_id: int) -> Response:
        actor = self.membership(workspace_id, manage=True)
        serializer = InvitationCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invitation = services.invitation_create(actor=actor, **serializer.validated_data)
        return Response(InvitationSerializer(invitation).data, status=status.HTTP_201_CREATED)


class InvitationDetailApi(WorkspaceApi):
    @schema.invitation_detail_delete
    def delete(self, request: Request, workspace_id: int, invitation_id: int) -> Response:
        self.membership(workspace_id, manage=True)
        invitation = selectors.invitation_open_get(
            user=request_user(request), workspace_id=workspace_id, invitation_id=invitation_id
        )
        if invitation is None:
            raise NotFound("Invitation not found.")
        services.invitation_revoke(invitation=invitation)
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationAcceptApi(WorkspaceApi):
    # Per user; the token is 256 random bits, so this bounds mail-link replays, not guessing.
    throttle_classes = [ScopedThrottle]
    throttle_scope = "account_token"

    @schema.invitation_accept_post
    def post(self, request: Request) -> Response:
        serializer = InvitationAcceptSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.invitation_accept(
            user=request_user(request), raw_token=serializer.validated_data["token"]
        )
        return Response(self.workspace_body(membership.workspace_id), status=status.HTTP_201_CREATED)
