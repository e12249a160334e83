"""Tenancy (DESIGN §8): workspaces, their members, invitations and API keys.

A document belongs to one workspace or, with no workspace, to the shared knowledge base curated
by staff; a chat session belongs to a user in one workspace. Nothing of one workspace reaches
another: every read is scoped by the workspaces the caller is a member of.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Workspace(models.Model):
    class Plan(models.TextChoices):
        FREE = "free", "Free"
        TEAM = "team", "Team"

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=64, unique=True)
    # The workspace every user gets at registration; it is erased with the account, never alone.
    personal_owner = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="personal_workspace",
        help_text="Set on a user's personal workspace only.",
    )
    plan = models.CharField(max_length=16, choices=Plan.choices, default=Plan.FREE)
    include_shared = models.BooleanField(
        default=True, help_text="Search and chat in this workspace also retrieve from the shared knowledge base."
    )
    # Quotas, filled from the plan's defaults (settings.WORKSPACE_PLANS) when the workspace is made;
    # staff may raise them per workspace in the admin.
    max_documents = models.PositiveIntegerField()
    max_bytes = models.PositiveBigIntegerField(help_text="Total size of the documents' text, in bytes.")
    max_messages_per_day = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_personal(self) -> bool:
        return self.personal_owner_id is not None


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["workspace_id", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "user"], name="workspaces_membership_unique"),
        ]
        indexes = [models.Index(fields=["user", "workspace"], name="workspaces_membership_user")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.workspace_id} as {self.role}"

    @property
    def can_manage(self) -> bool:
        """Owners and admins write the workspace's documents, invite and manage API keys."""
        return self.role in (self.Role.OWNER, self.Role.ADMIN)


class Invitation(models.Model):
    """An emailed invitation: single use, expiring; only the SHA-256 of its token is stored."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(max_length=254)
    role = models.CharField(max_length=8, choices=Membership.Role.choices, default=Membership.Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workspace", "email"], name="workspaces_invitation_email")]

    def __str__(self) -> str:
        return f"Invitation of {self.email} to {self.workspace_id}"


class ApiKey(models.Model):
    """A server-to-server key of one workspace: shown once, stored hashed, found by its prefix."""

    class Scope(models.TextChoices):
        CHAT = "chat", "Chat"
        DOCUMENTS_READ = "documents:read", "Read documents"
        DOCUMENTS_WRITE = "documents:write", "Write documents"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_keys")
    # The member the key acts as (its sessions, quota and usage); the key dies with their membership.
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["workspace"], condition=Q(revoked_at__isnull=True), name="workspaces_apikey_live")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
