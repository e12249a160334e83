"""A team workspace with one member of each role, and clients signed in as each of them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from tests.factories import UserFactory
from users.models import User
from workspaces.models import Membership, Workspace
from workspaces.services import workspace_create


@dataclass
class Team:
    workspace: Workspace
    owner: User
    admin: User
    member: User
    outsider: User  # a verified user who belongs to none of it
    client: Callable[[User], APIClient]

    @property
    def url(self) -> str:
        return f"/api/workspaces/{self.workspace.pk}/"


@pytest.fixture
def team(db: None, client_for: Callable[[User], APIClient]) -> Team:
    owner, admin, member, outsider = (UserFactory.create(username=n) for n in ("olive", "adam", "mia", "otto"))
    workspace = workspace_create(name="Acme support", owner=owner)
    Membership.objects.create(workspace=workspace, user=admin, role=Membership.Role.ADMIN)
    Membership.objects.create(workspace=workspace, user=member, role=Membership.Role.MEMBER)
    return Team(workspace=workspace, owner=owner, admin=admin, member=member, outsider=outsider, client=client_for)


def role_of(workspace: Workspace, user: User) -> str | None:
    return Membership.objects.filter(workspace=workspace, user=user).values_list("role", flat=True).first()
