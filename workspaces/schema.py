"""OpenAPI documentation of the workspace endpoints: the arguments of each view's ``extend_schema``
and the examples they show (``workspaces.apis`` applies them as ``@schema.<view>_<method>``)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema

from utils.schema import error_responses, request_example, response_example
from workspaces.serializers import (
    InvitationAcceptSerializer,
    InvitationCreateSerializer,
    InvitationSerializer,
    MemberRoleSerializer,
    MemberSerializer,
    WorkspaceCreateSerializer,
    WorkspaceDeletedSerializer,
    WorkspaceSerializer,
    WorkspaceUpdateSerializer,
)

TAG = ["workspaces"]

_WORKSPACE = {
    "id": 4,
    "name": "Acme support",
    "slug": "acme-support-3f9a1c2e",
    "role": "owner",
    "member_count": 3,
    "is_personal": False,
    "include_shared": True,
    "plan": "free",
    "limits": {"max_documents": 200, "max_bytes": 52428800, "max_messages_per_day": 2000},
    "created_at": "2026-11-21T09:30:00Z",
}
_MEMBER = {
    "user_id": 7,
    "username": "ada",
    "email": "ada@example.com",
    "role": "owner",
    "joined_at": "2026-11-21T09:30:00Z",
}
_INVITATION = {
    "id": 12,
    "email": "grace@example.com",
    "role": "member",
    "invited_by": "ada",
    "created_at": "2026-11-21T09:40:00Z",
    "expires_at": "2026-11-24T09:40:00Z",
}
_DELETED = {
    "deleted": {
        "documents": 14,
        "chunks": 212,
        "vectors": 212,
        "sessions": 9,
        "messages": 118,
        "members": 3,
        "invitations": 1,
        "api_keys": 2,
    }
}


def _conflict(name: str, detail: str, code: str) -> OpenApiExample:
    return OpenApiExample(name, value={"detail": detail, "code": code}, response_only=True, status_codes=["409"])


_NOT_A_MEMBER = "A workspace the caller is not a member of is a 404, like one that does not exist."

workspace_list_get = extend_schema(
    tags=TAG,
    summary="My workspaces",
    description="Every workspace the caller is a member of, with their role, the personal one first.",
    responses={200: WorkspaceSerializer(many=True), **error_responses(400, 401, 404)},
    examples=[response_example("Page", _WORKSPACE)],
)

workspace_list_post = extend_schema(
    tags=TAG,
    summary="Create a workspace",
    description="The caller becomes its owner. A user owns at most WORKSPACE_MAX_OWNED workspaces besides "
    "their personal one (409 `too_many_workspaces`); creation is throttled per user (THROTTLE_WORKSPACE_CREATE).",
    request=WorkspaceCreateSerializer,
    responses={201: WorkspaceSerializer, **error_responses(400, 401, 409, 429)},
    examples=[
        request_example("Create", {"name": "Acme support", "include_shared": True}),
        response_example("Created", _WORKSPACE | {"member_count": 1}, 201),
    ],
)

workspace_detail_get = extend_schema(
    tags=TAG,
    summary="One of my workspaces",
    description=_NOT_A_MEMBER,
    responses={200: WorkspaceSerializer, **error_responses(401, 404)},
    examples=[response_example("Workspace", _WORKSPACE)],
)

workspace_detail_patch = extend_schema(
    tags=TAG,
    summary="Rename a workspace or switch the shared knowledge base (owner or admin)",
    request=WorkspaceUpdateSerializer,
    responses={200: WorkspaceSerializer, **error_responses(400, 401, 403, 404)},
    examples=[
        request_example("Rename", {"name": "Acme help desk"}),
        request_example("Own documents only", {"include_shared": False}),
        response_example("Updated", _WORKSPACE | {"name": "Acme help desk"}),
    ],
)

workspace_detail_delete = extend_schema(
    tags=TAG,
    summary="Delete a workspace and everything in it (owner)",
    description='Confirm with the workspace\'s slug, as the JSON body `{"confirm": "<slug>"}` or the '
    "`confirm` query parameter; a wrong or missing one is a 400. Its documents and their vectors, its chat "
    "sessions and messages, members, invitations and API keys are erased, and the reply counts them. "
    "Admins get 403; a personal workspace goes with its account only (409 `personal_workspace`).",
    parameters=[
        OpenApiParameter("confirm", OpenApiTypes.STR, description="The workspace's slug (or send it in the body).")
    ],
    request=None,
    responses={200: WorkspaceDeletedSerializer, **error_responses(400, 401, 403, 404, 409, 503)},
    examples=[
        response_example("Deleted", _DELETED),
        _conflict(
            "Personal workspace", "A personal workspace is deleted with its account, not alone.", "personal_workspace"
        ),
    ],
)

member_list_get = extend_schema(
    tags=TAG,
    summary="Members of a workspace",
    description=f"Any member may list them, owners first. {_NOT_A_MEMBER}",
    responses={200: MemberSerializer(many=True), **error_responses(400, 401, 404)},
    examples=[response_example("Page", _MEMBER)],
)

member_detail_patch = extend_schema(
    tags=TAG,
    summary="Change a member's role (owner or admin)",
    description="Only an owner grants or takes `owner` or changes an owner's role; the last owner cannot be "
    "demoted (409 `last_owner`).",
    request=MemberRoleSerializer,
    responses={200: MemberSerializer, **error_responses(400, 401, 403, 404, 409)},
    examples=[
        request_example("Make admin", {"role": "admin"}),
        response_example(
            "Updated", _MEMBER | {"user_id": 9, "username": "grace", "email": "grace@example.com", "role": "admin"}
        ),
        _conflict(
            "Last owner",
            "The workspace's last owner cannot leave or be demoted; make another member owner first.",
            "last_owner",
        ),
    ],
)

member_detail_delete = extend_schema(
    tags=TAG,
    summary="Remove a member (owner or admin)",
    description="An admin cannot remove an owner. The member's API keys of this workspace go with them. "
    "Removing yourself is leaving (the last owner cannot).",
    responses={204: None, **error_responses(401, 403, 404, 409)},
)

leave_post = extend_schema(
    tags=TAG,
    summary="Leave a workspace",
    description="The last owner cannot leave (409 `last_owner`), so a personal workspace is never left. "
    "Your API keys of this workspace are deleted.",
    request=None,
    responses={204: None, **error_responses(401, 404, 409)},
    examples=[
        _conflict(
            "Last owner",
            "The workspace's last owner cannot leave or be demoted; make another member owner first.",
            "last_owner",
        ),
    ],
)

invitation_list_get = extend_schema(
    tags=TAG,
    summary="Pending invitations (owner or admin)",
    responses={200: InvitationSerializer(many=True), **error_responses(400, 401, 403, 404)},
    examples=[response_example("Page", _INVITATION)],
)

invitation_list_post = extend_schema(
    tags=TAG,
    summary="Invite someone by email (owner or admin)",
    description="Mails a single-use token that expires after WORKSPACE_INVITATION_TTL_HOURS; only its hash is "
    "stored. Inviting the same address again replaces the pending invitation. Only an owner invites an owner. "
    "A personal workspace has no other members (409 `personal_workspace`); an address of a member is 409 "
    "`already_member`. Throttled per user (THROTTLE_INVITATION).",
    request=InvitationCreateSerializer,
    responses={201: InvitationSerializer, **error_responses(400, 401, 403, 404, 409, 429)},
    examples=[
        request_example("Invite", {"email": "grace@example.com", "role": "member"}),
        response_example("Invited", _INVITATION, 201),
    ],
)

invitation_detail_delete = extend_schema(
    tags=TAG,
    summary="Revoke an invitation not yet accepted (owner or admin)",
    responses={204: None, **error_responses(401, 403, 404)},
)

invitation_accept_post = extend_schema(
    tags=TAG,
    summary="Accept an invitation",
    description="The signed-in, verified user whose email is the invited address joins with the invited role. "
    "An unknown, used, expired or someone else's token is one and the same 400 `invalid_invitation`; "
    "a member already is a 409 `already_member`; an unverified account a 403 `email_not_verified`.",
    request=InvitationAcceptSerializer,
    responses={201: WorkspaceSerializer, **error_responses(400, 401, 403, 409, 429)},
    examples=[
        request_example("Token", {"token": "q8Xk...Zs"}),
        response_example("Joined", _WORKSPACE | {"role": "member"}, 201),
        OpenApiExample(
            "Invalid invitation",
            value={
                "detail": "This invitation is invalid, expired, already used or meant for another address.",
                "code": "invalid_invitation",
            },
            response_only=True,
            status_codes=["400"],
        ),
    ],
)
