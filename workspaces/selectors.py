"""Workspace reads, always scoped to the requesting user's memberships."""

from __future__ import annotations

from django.db.models import Case, Count, F, OuterRef, QuerySet, Subquery, Value, When
from django.utils import timezone

from users.models import User
from workspaces.models import Invitation, Membership, Workspace


def workspaces_of(*, user: User) -> QuerySet[Workspace]:
    """The workspaces ``user`` is a member of; any other workspace is simply not found."""
    return Workspace.objects.filter(memberships__user=user)


def membership_of(*, user: User, workspace_id: int) -> Membership | None:
    return Membership.objects.select_related("workspace").filter(user=user, workspace_id=workspace_id).first()


def workspace_list(*, user: User) -> QuerySet[Workspace]:
    """``user``'s workspaces with ``my_role`` and ``member_count``; the personal one first."""
    role = Membership.objects.filter(workspace=OuterRef("pk"), user=user).values("role")[:1]
    members = (
        Membership.objects.filter(workspace=OuterRef("pk"))
        .order_by()
        .values("workspace")
        .annotate(n=Count("id"))
        .values("n")
    )
    return (
        workspaces_of(user=user)
        .annotate(my_role=Subquery(role), member_count=Subquery(members))
        .order_by(F("personal_owner_id").asc(nulls_last=True), "name", "id")
    )


def workspace_get(*, user: User, workspace_id: int) -> Workspace | None:
    return workspace_list(user=user).filter(pk=workspace_id).first()


def member_list(*, user: User, workspace_id: int) -> QuerySet[Membership]:
    """The members of a workspace ``user`` belongs to (none of any other), owners first."""
    if not Membership.objects.filter(user=user, workspace_id=workspace_id).exists():
        return Membership.objects.none()
    order = Case(
        When(role=Membership.Role.OWNER, then=Value(0)), When(role=Membership.Role.ADMIN, then=Value(1)), default=2
    )
    return (
        Membership.objects.select_related("user").filter(workspace_id=workspace_id).order_by(order, "created_at", "id")
    )


def member_get(*, user: User, workspace_id: int, member_id: int) -> Membership | None:
    """The membership of user ``member_id`` in a workspace ``user`` belongs to."""
    return member_list(user=user, workspace_id=workspace_id).filter(user_id=member_id).first()


def invitation_pending_list(*, user: User, workspace_id: int) -> QuerySet[Invitation]:
    """Pending (not accepted, not expired) invitations of a workspace ``user`` belongs to."""
    return (
        Invitation.objects.select_related("invited_by")
        .filter(
            workspace_id=workspace_id,
            workspace__memberships__user=user,
            accepted_at__isnull=True,
            expires_at__gt=timezone.now(),
        )
        .order_by("-created_at", "-id")
    )


def invitation_open_get(*, user: User, workspace_id: int, invitation_id: int) -> Invitation | None:
    """A not yet accepted invitation (expired or not) of a workspace ``user`` belongs to."""
    return Invitation.objects.filter(
        pk=invitation_id, workspace_id=workspace_id, workspace__memberships__user=user, accepted_at__isnull=True
    ).first()
