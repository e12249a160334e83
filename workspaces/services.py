"""Workspace writes: creating workspaces (a user's personal one on demand)."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from users.models import User
from workspaces.models import Membership, Workspace


def _slug_for(name: str) -> str:
    base = slugify(name)[:48].strip("-") or "workspace"
    return f"{base}-{secrets.token_hex(4)}"


def plan_limits(plan: str) -> dict[str, int]:
    """The quotas a new workspace on ``plan`` starts with (``settings.WORKSPACE_PLANS``)."""
    return dict(settings.WORKSPACE_PLANS[plan])


@transaction.atomic
def workspace_create(*, name: str, owner: User, plan: str = Workspace.Plan.FREE) -> Workspace:
    workspace = Workspace.objects.create(name=name.strip(), slug=_slug_for(name), plan=plan, **plan_limits(plan))
    Membership.objects.create(workspace=workspace, user=owner, role=Membership.Role.OWNER)
    return workspace


def workspace_personal_get(*, user: User) -> Workspace:
    """The user's personal workspace, made on first use (registration makes it; older accounts and
    accounts made outside the API get it here). Concurrent first uses agree on one."""
    try:
        return Workspace.objects.get(personal_owner=user)
    except Workspace.DoesNotExist:
        pass
    try:
        with transaction.atomic():
            name = f"{user.username}'s workspace"
            workspace = Workspace.objects.create(
                name=name, slug=_slug_for(user.username), personal_owner=user, **plan_limits(Workspace.Plan.FREE)
            )
            Membership.objects.create(workspace=workspace, user=user, role=Membership.Role.OWNER)
            return workspace
    except IntegrityError:
        return Workspace.objects.get(personal_owner=user)
