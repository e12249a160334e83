"""Admin: workspaces with their members, invitations and API keys. Secrets are stored hashed and
shown read-only; deleting a workspace goes through ``workspace_delete`` so its vectors go too."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from workspaces.models import ApiKey, Invitation, Membership, Workspace
from workspaces.services import workspace_delete


class MembershipInline(admin.TabularInline[Membership, Workspace]):
    model = Membership
    fields = ("user", "role", "created_at")
    readonly_fields = ("created_at",)
    raw_id_fields = ("user",)
    extra = 0


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin[Workspace]):
    list_display = ("name", "slug", "plan", "personal_owner", "include_shared", "members", "created_at")
    list_filter = ("plan", "include_shared")
    search_fields = ("name", "slug", "personal_owner__username", "memberships__user__email")
    readonly_fields = ("slug", "personal_owner", "created_at")
    inlines = [MembershipInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Workspace]:
        return (
            super().get_queryset(request).annotate(member_total=Count("memberships")).select_related("personal_owner")
        )

    @admin.display(description="Members", ordering="member_total")
    def members(self, workspace: Any) -> int:
        return int(getattr(workspace, "member_total", 0))

    # A plain delete would cascade over the documents' rows and leave their vectors in the store.
    def delete_model(self, request: HttpRequest, obj: Workspace) -> None:
        workspace_delete(workspace=obj, allow_personal=True)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Workspace]) -> None:
        for workspace in queryset:
            workspace_delete(workspace=workspace, allow_personal=True)


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin[Invitation]):
    list_display = ("email", "workspace", "role", "invited_by", "created_at", "expires_at", "accepted_at")
    list_filter = ("role",)
    search_fields = ("email", "workspace__name")
    list_select_related = ("workspace", "invited_by")
    readonly_fields = (
        "workspace",
        "email",
        "role",
        "token_hash",
        "invited_by",
        "created_at",
        "expires_at",
        "accepted_at",
        "accepted_by",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the token is mailed once by the API; one made here could never be used


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin[ApiKey]):
    list_display = ("name", "workspace", "prefix", "scopes", "created_by", "last_used_at", "expires_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix", "workspace__name", "created_by__username")
    list_select_related = ("workspace", "created_by")
    readonly_fields = ("workspace", "created_by", "prefix", "key_hash", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a key is shown once when the API makes it; one made here would have no secret

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"{count} API key(s) revoked.", messages.SUCCESS)
