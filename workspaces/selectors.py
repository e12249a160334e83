"""Workspace reads, always scoped to the requesting user's memberships."""

from __future__ import annotations

from django.db.models import QuerySet

from users.models import User
from workspaces.models import Membership, Workspace


def workspaces_of(*, user: User) -> QuerySet[Workspace]:
    """The workspaces ``user`` is a member of; any other workspace is simply not found."""
    return Workspace.objects.filter(memberships__user=user)


def membership_of(*, user: User, workspace_id: int) -> Membership | None:
    return Membership.objects.select_related("workspace").filter(user=user, workspace_id=workspace_id).first()
