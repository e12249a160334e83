"""Invitations by email: single use, expiring, hashed at rest, only for the invited address."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from tests.factories import UserFactory
from tests.workspaces.conftest import role_of
from workspaces.models import Invitation, Membership
from workspaces.services import workspace_personal_get

pytestmark = pytest.mark.django_db

ACCEPT = "/api/workspaces/invitations/accept/"


@pytest.fixture
def invite(team, django_capture_on_commit_callbacks):
    """Invite ``email`` as ``by``; the raw token read from the mail that was sent."""

    def make(email="grace@example.com", role="member", by=None):
        with django_capture_on_commit_callbacks(execute=True):
            response = team.client(by or team.owner).post(
                f"{team.url}invitations/", {"email": email, "role": role}, format="json"
            )
        assert response.status_code == 201, response.content
        token = re.search(r"(?:^|token=)([A-Za-z0-9_-]{43})$", str(mail.outbox[-1].body), flags=re.MULTILINE)
        assert token, mail.outbox[-1].body
        return token.group(1)

    return make


def test_an_invitation_is_mailed_and_only_its_hash_is_stored(team, invite, settings):
    settings.PUBLIC_BASE_URL = "https://chat.example.com"
    raw = invite(email="Grace@Example.com", role="admin")
    message = mail.outbox[-1]
    assert message.to == ["grace@example.com"]
    assert "Acme support" in message.subject and "olive" in message.body and "as admin" in message.body
    assert f"https://chat.example.com{ACCEPT}" in message.body
    invitation = Invitation.objects.get()
    assert invitation.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in str(Invitation.objects.values().get())
    assert invitation.expires_at - invitation.created_at == timedelta(hours=72)
    assert (invitation.email, invitation.role, invitation.invited_by) == ("grace@example.com", "admin", team.owner)


def test_the_mail_links_to_the_front_end_when_configured(team, invite, settings):
    settings.WORKSPACE_INVITATION_URL_TEMPLATE = "https://app.example.com/join?token={token}"
    settings.WORKSPACE_INVITATION_TTL_HOURS = 5
    raw = invite()
    assert f"https://app.example.com/join?token={raw}" in mail.outbox[-1].body
    assert "expires in 5 hours" in mail.outbox[-1].body


def test_the_invited_user_accepts_once(team, invite, client_for):
    raw = invite(role="admin")
    grace = UserFactory.create(username="grace", email="GRACE@example.com")
    client = client_for(grace)
    response = client.post(ACCEPT, {"token": raw}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["id"] == team.workspace.pk and response.json()["role"] == "admin"
    assert role_of(team.workspace, grace) == "admin"
    invitation = Invitation.objects.get()
    assert invitation.accepted_by == grace and invitation.accepted_at is not None
    Membership.objects.filter(workspace=team.workspace, user=grace).delete()
    again = client.post(ACCEPT, {"token": raw}, format="json")
    assert again.status_code == 400 and again.json()["code"] == "invalid_invitation"
    assert role_of(team.workspace, grace) is None


def test_unknown_expired_and_wrong_address_tokens_look_the_same(team, invite, client_for):
    raw = invite()
    grace = UserFactory.create(email="grace@example.com")
    mallory = client_for(UserFactory.create(email="mallory@example.com"))
    wrong_address = mallory.post(ACCEPT, {"token": raw}, format="json")
    unknown = mallory.post(ACCEPT, {"token": "A" * 43}, format="json")
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    expired = client_for(grace).post(ACCEPT, {"token": raw}, format="json")
    for response in (wrong_address, unknown, expired):
        assert response.status_code == 400 and response.json() == unknown.json()
        assert response.json()["code"] == "invalid_invitation"
    assert Membership.objects.filter(workspace=team.workspace).count() == 3


def test_an_unverified_account_cannot_accept(team, invite, client_for):
    raw = invite()
    grace = UserFactory.create(email="grace@example.com", is_verified=False)
    response = client_for(grace).post(ACCEPT, {"token": raw}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "email_not_verified"
    assert role_of(team.workspace, grace) is None
    assert Invitation.objects.get().accepted_at is None


def test_a_member_already_gets_409_and_the_invitation_stays(team, invite, client_for):
    grace = UserFactory.create(email="grace@example.com")
    raw = invite()
    Membership.objects.create(workspace=team.workspace, user=grace)
    response = client_for(grace).post(ACCEPT, {"token": raw}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "already_member"


def test_inviting_a_members_address_is_409(team):
    response = team.client(team.owner).post(
        f"{team.url}invitations/", {"email": team.member.email.upper()}, format="json"
    )
    assert response.status_code == 409 and response.json()["code"] == "already_member"


def test_reinviting_replaces_the_pending_invitation(team, invite, client_for):
    first = invite()
    second = invite(role="admin")
    assert Invitation.objects.count() == 1
    grace = client_for(UserFactory.create(email="grace@example.com"))
    assert grace.post(ACCEPT, {"token": first}, format="json").status_code == 400
    assert grace.post(ACCEPT, {"token": second}, format="json").json()["role"] == "admin"


def test_roles_who_may_invite_whom(team, invite):
    member = team.client(team.member).post(f"{team.url}invitations/", {"email": "x@example.com"}, format="json")
    assert member.status_code == 403
    admin_owner = team.client(team.admin).post(
        f"{team.url}invitations/", {"email": "x@example.com", "role": "owner"}, format="json"
    )
    assert admin_owner.status_code == 403
    assert not Invitation.objects.exists() and not mail.outbox
    invite(email="x@example.com", role="admin", by=team.admin)
    invite(email="y@example.com", role="owner", by=team.owner)
    assert dict(Invitation.objects.values_list("email", "role")) == {"x@example.com": "admin", "y@example.com": "owner"}


def test_a_personal_workspace_takes_no_invitations(api_client, user):
    personal = workspace_personal_get(user=user)
    response = api_client.post(f"/api/workspaces/{personal.pk}/invitations/", {"email": "x@example.com"}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "personal_workspace"
    assert not Invitation.objects.exists()


@pytest.mark.parametrize("payload", [{}, {"email": "not-an-address"}, {"email": "x@example.com", "role": "boss"}])
def test_invitation_input_is_validated(team, payload):
    response = team.client(team.owner).post(f"{team.url}invitations/", payload, format="json")
    assert response.status_code == 400


def test_managers_list_and_revoke_pending_invitations(team, invite):
    invite(email="a@example.com")
    invite(email="b@example.com")
    Invitation.objects.filter(email="b@example.com").update(expires_at=timezone.now() - timedelta(minutes=1))
    listed = team.client(team.admin).get(f"{team.url}invitations/")
    assert listed.status_code == 200
    (pending,) = listed.json()["results"]
    assert pending["email"] == "a@example.com" and pending["invited_by"] == "olive"
    assert "token" not in str(listed.json()) and "hash" not in str(listed.json())
    assert team.client(team.member).get(f"{team.url}invitations/").status_code == 403
    url = f"{team.url}invitations/{pending['id']}/"
    assert team.client(team.member).delete(url).status_code == 403
    assert team.client(team.admin).delete(url).status_code == 204
    assert team.client(team.admin).delete(url).status_code == 404
    assert not Invitation.objects.filter(email="a@example.com").exists()
    expired = Invitation.objects.get(email="b@example.com")  # not listed, but can be cleaned up
    assert team.client(team.owner).delete(f"{team.url}invitations/{expired.pk}/").status_code == 204


def test_another_workspaces_invitation_is_not_found(team, invite, client_for):
    invite()
    invitation = Invitation.objects.get()
    stranger = client_for(team.outsider)
    theirs = stranger.post("/api/workspaces/", {"name": "Theirs"}, format="json").json()
    response = stranger.delete(f"/api/workspaces/{theirs['id']}/invitations/{invitation.pk}/")
    assert response.status_code == 404
    assert stranger.get(f"{team.url}invitations/").status_code == 404
    assert Invitation.objects.filter(pk=invitation.pk).exists()


def test_invitations_are_throttled_per_user(team, settings):
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**rates, "invitation": "2/hour"}}
    client = team.client(team.owner)
    for n in range(2):
        assert client.post(f"{team.url}invitations/", {"email": f"u{n}@example.com"}, format="json").status_code == 201
    response = client.post(f"{team.url}invitations/", {"email": "u9@example.com"}, format="json")
    assert response.status_code == 429
    assert Invitation.objects.count() == 2


def test_a_stray_invitation_to_a_personal_workspace_is_never_accepted(client_for):
    """Invitations to personal workspaces are refused when made; one that exists anyway (made in the
    database by hand) still admits nobody."""
    owner = UserFactory.create()
    personal = workspace_personal_get(user=owner)
    raw = "stray-token-" + "x" * 31
    Invitation.objects.create(
        workspace=personal,
        email="grace@example.com",
        token_hash=hashlib.sha256(raw.encode()).hexdigest(),
        expires_at=timezone.now() + timedelta(hours=1),
    )
    grace = UserFactory.create(email="grace@example.com")
    response = client_for(grace).post(ACCEPT, {"token": raw}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_invitation"
    assert role_of(personal, grace) is None
