"""Input and output shapes of the workspaces API."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from utils.serializers import StrictBooleanField, StrictCharField, StrictChoiceField, StrictEmailField
from workspaces.models import Invitation, Membership, Workspace

NAME_MAX = 120  # Workspace.name
LIMIT_FIELDS = ("max_documents", "max_bytes", "max_messages_per_day")


class LimitsSerializer(serializers.Serializer[Any]):
    max_documents = serializers.IntegerField()
    max_bytes = serializers.IntegerField(help_text="Total size of the documents' text, in bytes.")
    max_messages_per_day = serializers.IntegerField()


class WorkspaceSerializer(serializers.ModelSerializer[Workspace]):
    """A workspace as one of its members sees it, with the caller's role."""

    role = serializers.ChoiceField(choices=Membership.Role.choices, source="my_role", read_only=True)
    member_count = serializers.IntegerField(read_only=True)
    is_personal = serializers.BooleanField(read_only=True)
    limits = serializers.SerializerMethodField()

    class Meta:
        model = Workspace
        fields = [
            "id",
            "name",
            "slug",
            "role",
            "member_count",
            "is_personal",
            "include_shared",
            "plan",
            "limits",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(LimitsSerializer)
    def get_limits(self, workspace: Workspace) -> dict[str, int]:
        return {key: getattr(workspace, key) for key in LIMIT_FIELDS}


class WorkspaceCreateSerializer(serializers.Serializer[Any]):
    name = StrictCharField(max_length=NAME_MAX)
    include_shared = StrictBooleanField(
        required=False, default=True, help_text="Also retrieve from the shared knowledge base (default true)."
    )


class WorkspaceUpdateSerializer(serializers.Serializer[Any]):
    name = StrictCharField(max_length=NAME_MAX, required=False)
    include_shared = StrictBooleanField(required=False)


class WorkspaceDeleteSerializer(serializers.Serializer[Any]):
    confirm = StrictCharField(max_length=64, help_text="The workspace's slug, to confirm the erasure.")

    def validate_confirm(self, value: str) -> str:
        if value != self.context["workspace"].slug:
            raise serializers.ValidationError("Send the workspace's slug to confirm the deletion.")
        return value


class DeletedCountsSerializer(serializers.Serializer[Any]):
    documents = serializers.IntegerField()
    chunks = serializers.IntegerField()
    vectors = serializers.IntegerField()
    sessions = serializers.IntegerField()
    messages = serializers.IntegerField()
    members = serializers.IntegerField()
    invitations = serializers.IntegerField()
    api_keys = serializers.IntegerField()


class WorkspaceDeletedSerializer(serializers.Serializer[Any]):
    deleted = DeletedCountsSerializer()


class MemberSerializer(serializers.ModelSerializer[Membership]):
    user_id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)
    joined_at = serializers.DateTimeField(source="created_at", read_only=True)

    class Meta:
        model = Membership
        fields = ["user_id", "username", "email", "role", "joined_at"]
        read_only_fields = fields


class MemberRoleSerializer(serializers.Serializer[Any]):
    role = StrictChoiceField(choices=Membership.Role.choices)


class InvitationSerializer(serializers.ModelSerializer[Invitation]):
    invited_by = serializers.CharField(source="invited_by.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "invited_by", "created_at", "expires_at"]
        read_only_fields = fields


class InvitationCreateSerializer(serializers.Serializer[Any]):
    email = StrictEmailField(max_length=254)
    role = StrictChoiceField(
        choices=Membership.Role.choices,
        required=False,
        default=Membership.Role.MEMBER.value,
        help_text="`member` (default) or `admin`; `owner` only by an owner.",
    )


class InvitationAcceptSerializer(serializers.Serializer[Any]):
    token = StrictCharField(max_length=128)
