"""Members: list, change role, remove, leave; owners are protected (DESIGN §8)."""

from __future__ import annotations

import pytest

from tests.factories import UserFactory
from tests.workspaces.conftest import role_of
from workspaces.models import ApiKey, Membership
from workspaces.services import member_role_change, workspace_personal_get

pytestmark = pytest.mark.django_db


def member_url(team, user):
    return f"{team.url}members/{user.pk}/"


def test_any_member_lists_the_members_owners_first(team):
    response = team.client(team.member).get(f"{team.url}members/")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(m["username"], m["role"]) for m in results] == [("olive", "owner"), ("adam", "admin"), ("mia", "member")]
    assert set(results[0]) == {"user_id", "username", "email", "role", "joined_at"}


def test_a_non_member_cannot_list_or_touch_members(team):
    client = team.client(team.outsider)
    missing = client.get("/api/workspaces/987654321/members/")
    assert missing.status_code == 404
    for response in (
        client.get(f"{team.url}members/"),
        client.patch(member_url(team, team.member), {"role": "admin"}, format="json"),
        client.delete(member_url(team, team.member)),
        client.post(f"{team.url}leave/"),
    ):
        assert response.status_code == 404 and response.json() == missing.json()
    assert role_of(team.workspace, team.member) == "member"


def test_a_member_of_another_workspace_is_not_found_here(team):
    response = team.client(team.owner).patch(member_url(team, team.outsider), {"role": "admin"}, format="json")
    assert response.status_code == 404
    assert team.client(team.owner).delete(member_url(team, team.outsider)).status_code == 404


@pytest.mark.parametrize("who", ["owner", "admin"])
def test_owner_and_admin_change_a_members_role(team, who):
    response = team.client(getattr(team, who)).patch(member_url(team, team.member), {"role": "admin"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["role"] == "admin" and role_of(team.workspace, team.member) == "admin"


def test_a_member_cannot_change_roles(team):
    response = team.client(team.member).patch(member_url(team, team.member), {"role": "admin"}, format="json")
    assert response.status_code == 403
    assert role_of(team.workspace, team.member) == "member"


@pytest.mark.parametrize(
    ("target", "role"),
    [("member", "owner"), ("admin", "owner"), ("owner", "member"), ("owner", "admin")],
)
def test_only_an_owner_grants_takes_or_changes_owner(team, target, role):
    client = team.client(team.admin)
    response = client.patch(member_url(team, getattr(team, target)), {"role": role}, format="json")
    assert response.status_code == 403, response.content
    assert role_of(team.workspace, team.owner) == "owner" and role_of(team.workspace, team.admin) == "admin"


def test_an_owner_makes_another_owner_then_steps_down(team):
    client = team.client(team.owner)
    assert client.patch(member_url(team, team.admin), {"role": "owner"}, format="json").status_code == 200
    assert client.patch(member_url(team, team.owner), {"role": "member"}, format="json").status_code == 200
    assert role_of(team.workspace, team.owner) == "member" and role_of(team.workspace, team.admin) == "owner"


def test_the_last_owner_cannot_be_demoted(team):
    response = team.client(team.owner).patch(member_url(team, team.owner), {"role": "admin"}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "last_owner"
    assert role_of(team.workspace, team.owner) == "owner"


def test_a_stale_actor_role_is_rechecked_against_the_target(team):
    """The service reads the target's role under the lock, not as the caller loaded it."""
    actor = Membership.objects.get(workspace=team.workspace, user=team.admin)
    target = Membership.objects.get(workspace=team.workspace, user=team.member)
    Membership.objects.filter(pk=target.pk).update(role=Membership.Role.OWNER)  # promoted meanwhile
    from utils.exceptions import PermissionDeniedError

    with pytest.raises(PermissionDeniedError):
        member_role_change(actor=actor, target=target, role=Membership.Role.MEMBER)
    assert role_of(team.workspace, team.member) == "owner"


@pytest.mark.parametrize("role", ["", "superuser", 1, None])
def test_role_must_be_one_of_the_three(team, role):
    response = team.client(team.owner).patch(member_url(team, team.member), {"role": role}, format="json")
    assert response.status_code == 400


@pytest.mark.parametrize("who", ["owner", "admin"])
def test_owner_and_admin_remove_a_member_with_their_keys(team, who):
    ApiKey.objects.create(workspace=team.workspace, created_by=team.member, name="k", prefix="p1", key_hash="1" * 64)
    personal = workspace_personal_get(user=team.member)
    ApiKey.objects.create(workspace=personal, created_by=team.member, name="mine", prefix="p2", key_hash="2" * 64)
    response = team.client(getattr(team, who)).delete(member_url(team, team.member))
    assert response.status_code == 204
    assert role_of(team.workspace, team.member) is None
    assert list(ApiKey.objects.filter(created_by=team.member).values_list("prefix", flat=True)) == ["p2"]


def test_an_admin_cannot_remove_an_owner(team):
    response = team.client(team.admin).delete(member_url(team, team.owner))
    assert response.status_code == 403
    assert role_of(team.workspace, team.owner) == "owner"


def test_an_admin_removes_another_admin(team):
    other = UserFactory.create()
    Membership.objects.create(workspace=team.workspace, user=other, role=Membership.Role.ADMIN)
    assert team.client(team.admin).delete(member_url(team, other)).status_code == 204


def test_a_member_cannot_remove_anyone_but_may_remove_themself(team):
    client = team.client(team.member)
    assert client.delete(member_url(team, team.admin)).status_code == 403
    assert role_of(team.workspace, team.admin) == "admin"
    assert client.delete(member_url(team, team.member)).status_code == 204
    assert role_of(team.workspace, team.member) is None


@pytest.mark.parametrize("who", ["admin", "member"])
def test_members_leave(team, who):
    user = getattr(team, who)
    response = team.client(user).post(f"{team.url}leave/")
    assert response.status_code == 204
    assert role_of(team.workspace, user) is None
    assert team.client(user).get(team.url).status_code == 404


def test_the_last_owner_cannot_leave_or_remove_themself(team):
    client = team.client(team.owner)
    for response in (client.post(f"{team.url}leave/"), client.delete(member_url(team, team.owner))):
        assert response.status_code == 409 and response.json()["code"] == "last_owner"
    assert role_of(team.workspace, team.owner) == "owner"


def test_an_owner_leaves_when_another_owner_stays(team):
    Membership.objects.filter(workspace=team.workspace, user=team.admin).update(role=Membership.Role.OWNER)
    assert team.client(team.owner).post(f"{team.url}leave/").status_code == 204
    assert list(Membership.objects.filter(workspace=team.workspace, role="owner").values_list("user", flat=True)) == [
        team.admin.pk
    ]


def test_a_personal_workspace_is_never_left(api_client, user):
    personal = workspace_personal_get(user=user)
    response = api_client.post(f"/api/workspaces/{personal.pk}/leave/")
    assert response.status_code == 409 and response.json()["code"] == "last_owner"


def test_an_actor_demoted_meanwhile_acts_with_the_role_they_have_now(team):
    from utils.exceptions import PermissionDeniedError

    actor = Membership.objects.get(workspace=team.workspace, user=team.admin)
    target = Membership.objects.get(workspace=team.workspace, user=team.member)
    Membership.objects.filter(pk=actor.pk).update(role=Membership.Role.MEMBER)
    with pytest.raises(PermissionDeniedError):
        member_role_change(actor=actor, target=target, role=Membership.Role.ADMIN)
    assert role_of(team.workspace, team.member) == "member"


def test_a_membership_removed_meanwhile_is_not_found(team):
    from utils.exceptions import NotFound
    from workspaces.services import membership_leave

    gone = Membership.objects.get(workspace=team.workspace, user=team.member)
    Membership.objects.filter(pk=gone.pk).delete()
    with pytest.raises(NotFound):
        membership_leave(membership=gone)


def test_a_removed_member_no_longer_sees_the_workspaces_sessions(team):
    from tests.factories import ChatMessageFactory, ChatSessionFactory

    session = ChatSessionFactory.create(user=team.member, workspace=team.workspace, title="Acme internals")
    ChatMessageFactory.create(session=session)
    client = team.client(team.member)
    assert "Acme internals" in client.get("/api/chat/history/").content.decode()  # cached now
    assert team.client(team.admin).delete(member_url(team, team.member)).status_code == 204
    assert "Acme internals" not in client.get("/api/chat/history/").content.decode()
    assert client.get(f"/api/chat/sessions/{session.pk}/").status_code == 404
