"""OWASP API1:2023 Broken Object Level Authorization.

Every route that names an object in its path (an id, a pk, a token) is enumerated from the URL
resolver. Each must have a case below that tries every method the view implements on an object
the caller does not own: another user's object is 404, exactly like an object that does not
exist, and nothing changes. A new route with a path parameter fails
``test_every_route_with_an_object_in_its_path_has_a_case`` until a case is written for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from background_tasks.models import JobRun
from chat.models import ChatMessage, ChatSession
from rag.models import Document
from tests.factories import UserFactory
from tests.security.routes import Route, all_routes
from users.models import AccountToken, User
from users.services import account_token_issue
from workspaces.api_keys import api_key_create
from workspaces.models import ApiKey, Invitation, Membership, Workspace
from workspaces.services import workspace_create, workspace_personal_get

pytestmark = pytest.mark.django_db

MISSING_ID = 987_654_321


@dataclass
class Context:
    route: Route
    attacker: APIClient  # a verified, signed-in user who owns nothing here
    staff: APIClient
    victim: User
    session: ChatSession  # the victim's
    bot_message: ChatMessage  # the victim's
    victim_client: APIClient


def assert_not_found(response: Any, like: Any = None, code: str = "not_found") -> None:
    assert response.status_code == 404, (response.status_code, response.content)
    assert response.json()["code"] == code
    if like is not None:  # no oracle: another user's object looks exactly like one that does not exist
        assert response.json() == like.json()


def assert_refused(response: Any, status: int) -> None:
    assert response.status_code == status, (response.status_code, response.content)
    assert set(response.json()) >= {"detail", "code"}


# --- one case per route with an object in its path ----------------------------------------------------


def session_detail(ctx: Context) -> set[str]:
    url, missing = ctx.route.url(session_id=ctx.session.pk), ctx.route.url(session_id=MISSING_ID)
    assert_not_found(ctx.attacker.get(url), like=ctx.attacker.get(missing))
    assert_not_found(ctx.attacker.patch(url, {"title": "mine now"}, format="json"))
    assert_not_found(ctx.attacker.delete(url))
    ctx.session.refresh_from_db()
    assert ctx.session.title == "private" and ctx.session.user == ctx.victim
    return {"GET", "PATCH", "DELETE"}


def session_messages(ctx: Context) -> set[str]:
    url, missing = ctx.route.url(session_id=ctx.session.pk), ctx.route.url(session_id=MISSING_ID)
    before = ChatMessage.objects.count()
    assert_not_found(ctx.attacker.get(url), like=ctx.attacker.get(missing))
    assert_not_found(ctx.attacker.get(url, {"after": ctx.bot_message.pk - 1}))
    assert_not_found(ctx.attacker.post(url, {"content": "hello"}, format="json"))
    assert_not_found(ctx.attacker.post(url, {"content": "hello"}, format="json", HTTP_ACCEPT="text/event-stream"))
    assert ChatMessage.objects.count() == before
    return {"GET", "POST"}


def session_export(ctx: Context) -> set[str]:
    url, missing = ctx.route.url(session_id=ctx.session.pk), ctx.route.url(session_id=MISSING_ID)
    for fmt in ("json", "md"):
        response = ctx.attacker.get(url, {"format": fmt})
        assert_not_found(response, like=ctx.attacker.get(missing, {"format": fmt}))
        assert "secret plans" not in response.content.decode()
    return {"GET"}


def message_feedback(ctx: Context) -> set[str]:
    url, missing = ctx.route.url(message_id=ctx.bot_message.pk), ctx.route.url(message_id=MISSING_ID)
    body = {"rating": -1, "comment": "spam"}
    assert_not_found(ctx.attacker.post(url, body, format="json"), like=ctx.attacker.post(missing, body, format="json"))
    ctx.bot_message.refresh_from_db()
    assert ctx.bot_message.feedback_rating is None and ctx.bot_message.feedback_comment == ""
    return {"POST"}


def document_detail(ctx: Context) -> set[str]:
    """Documents belong to the shared knowledge base, not to a user: any user reads them, only staff
    change them, and an id that does not exist is 404 for everyone."""
    document = Document.objects.create(title="Pricing", content="Plans cost 10 EUR.", category="FAQ")
    url = ctx.route.url(document_id=document.pk)
    assert ctx.attacker.get(url).status_code == 200
    assert_refused(ctx.attacker.patch(url, {"title": "Defaced"}, format="json"), 403)
    assert_refused(ctx.attacker.delete(url), 403)
    document.refresh_from_db()
    assert document.title == "Pricing"
    missing = ctx.route.url(document_id=MISSING_ID)
    assert_not_found(ctx.attacker.get(missing))
    assert_not_found(ctx.staff.patch(missing, {"title": "x"}, format="json"))
    assert_not_found(ctx.staff.delete(missing))
    return {"GET", "PATCH", "DELETE"}


def verify_email_link(ctx: Context) -> set[str]:
    """The token is the capability: only a live verification token verifies, and only its own user."""
    ctx.victim.is_verified = False
    ctx.victim.save()
    reset_token = account_token_issue(user=ctx.victim, purpose=AccountToken.Purpose.RESET_PASSWORD)
    anonymous = APIClient()
    for token in (reset_token, "A" * 43, "x" * 300):
        assert_refused(anonymous.get(ctx.route.url(token=token)), 400)
        assert_refused(anonymous.post(ctx.route.url(token=token)), 400)
    ctx.victim.refresh_from_db()
    assert not ctx.victim.is_verified
    other = UserFactory.create(is_verified=False)
    token = account_token_issue(user=other, purpose=AccountToken.Purpose.VERIFY_EMAIL)
    assert anonymous.get(ctx.route.url(token=token)).json()["id"] == other.pk
    ctx.victim.refresh_from_db()
    assert not ctx.victim.is_verified  # someone else's token verified someone else
    assert_refused(anonymous.post(ctx.route.url(token=token)), 400)  # and works once
    return {"GET", "POST"}


def api_keys(ctx: Context) -> set[str]:
    """A workspace's keys are its managers' business: to anyone else the workspace does not exist."""
    workspace = workspace_personal_get(user=ctx.victim)
    api_key_create(workspace=workspace, created_by=ctx.victim, name="theirs", scopes=["chat"])
    url, missing = ctx.route.url(workspace_id=workspace.pk), ctx.route.url(workspace_id=MISSING_ID)
    body = {"name": "mine now", "scopes": ["chat"]}
    assert_not_found(ctx.attacker.get(url), like=ctx.attacker.get(missing))
    assert_not_found(ctx.attacker.post(url, body, format="json"), like=ctx.attacker.post(missing, body, format="json"))
    assert list(ApiKey.objects.values_list("name", flat=True)) == ["theirs"]
    return {"GET", "POST"}


def api_key_detail(ctx: Context) -> set[str]:
    workspace = workspace_personal_get(user=ctx.victim)
    key = api_key_create(workspace=workspace, created_by=ctx.victim, name="theirs", scopes=["chat"]).api_key
    url = ctx.route.url(workspace_id=workspace.pk, key_id=key.pk)
    missing = ctx.route.url(workspace_id=MISSING_ID, key_id=key.pk)
    assert_not_found(ctx.attacker.delete(url), like=ctx.attacker.delete(missing))
    key.refresh_from_db()
    assert key.revoked_at is None
    return {"DELETE"}


def job_run(ctx: Context) -> set[str]:
    """Jobs are not owned; running one is staff-only (see API5), and an unknown job is 404."""
    assert_refused(ctx.attacker.post(ctx.route.url(job_id="cleanup_tokens"), {}, format="json"), 403)
    assert_not_found(ctx.staff.post(ctx.route.url(job_id="no_such_job"), {}, format="json"), code="job_not_found")
    assert not JobRun.objects.exists()
    return {"POST"}


def _victim_workspace(ctx: Context) -> tuple[Workspace, Invitation]:
    """The victim's team workspace with a member and a pending invitation; the attacker is in none of it."""
    workspace = workspace_create(name="Victim team", owner=ctx.victim)
    Membership.objects.create(workspace=workspace, user=UserFactory.create(), role=Membership.Role.MEMBER)
    invitation = Invitation.objects.create(
        workspace=workspace, email="friend@example.com", token_hash="f" * 64, expires_at=timezone.now() + timedelta(1)
    )
    return workspace, invitation


def _workspace_unchanged(workspace: Workspace, invitation: Invitation) -> None:
    workspace.refresh_from_db()
    assert workspace.name == "Victim team" and workspace.memberships.count() == 2
    assert Invitation.objects.filter(pk=invitation.pk).exists()


def workspace_detail(ctx: Context) -> set[str]:
    workspace, invitation = _victim_workspace(ctx)
    url, missing = ctx.route.url(workspace_id=workspace.pk), ctx.route.url(workspace_id=MISSING_ID)
    assert_not_found(ctx.attacker.get(url), like=ctx.attacker.get(missing))
    assert_not_found(ctx.attacker.patch(url, {"name": "mine now"}, format="json"))
    assert_not_found(ctx.attacker.delete(url, {"confirm": workspace.slug}, format="json"))
    assert_not_found(ctx.staff.delete(url, {"confirm": workspace.slug}, format="json"))  # staff are no member
    _workspace_unchanged(workspace, invitation)
    return {"GET", "PATCH", "DELETE"}


def workspace_members(ctx: Context) -> set[str]:
    workspace, _ = _victim_workspace(ctx)
    url, missing = ctx.route.url(workspace_id=workspace.pk), ctx.route.url(workspace_id=MISSING_ID)
    response = ctx.attacker.get(url)
    assert_not_found(response, like=ctx.attacker.get(missing))
    assert ctx.victim.email not in response.content.decode()
    return {"GET"}


def workspace_member_detail(ctx: Context) -> set[str]:
    workspace, invitation = _victim_workspace(ctx)
    url = ctx.route.url(workspace_id=workspace.pk, user_id=ctx.victim.pk)
    missing = ctx.route.url(workspace_id=MISSING_ID, user_id=ctx.victim.pk)
    body = {"role": "member"}
    assert_not_found(
        ctx.attacker.patch(url, body, format="json"), like=ctx.attacker.patch(missing, body, format="json")
    )
    assert_not_found(ctx.attacker.delete(url))
    _workspace_unchanged(workspace, invitation)
    assert workspace.memberships.get(user=ctx.victim).role == Membership.Role.OWNER
    return {"PATCH", "DELETE"}


def workspace_leave(ctx: Context) -> set[str]:
    workspace, invitation = _victim_workspace(ctx)
    url, missing = ctx.route.url(workspace_id=workspace.pk), ctx.route.url(workspace_id=MISSING_ID)
    assert_not_found(ctx.attacker.post(url), like=ctx.attacker.post(missing))
    _workspace_unchanged(workspace, invitation)
    return {"POST"}


def workspace_invitations(ctx: Context) -> set[str]:
    workspace, _ = _victim_workspace(ctx)
    url, missing = ctx.route.url(workspace_id=workspace.pk), ctx.route.url(workspace_id=MISSING_ID)
    response = ctx.attacker.get(url)
    assert_not_found(response, like=ctx.attacker.get(missing))
    assert "friend@example.com" not in response.content.decode()
    assert_not_found(ctx.attacker.post(url, {"email": "attacker@example.com", "role": "owner"}, format="json"))
    assert not Invitation.objects.filter(email="attacker@example.com").exists()
    return {"GET", "POST"}


def workspace_invitation_detail(ctx: Context) -> set[str]:
    workspace, invitation = _victim_workspace(ctx)
    own = workspace_personal_get(user=ctx.victim)  # any workspace id of the victim's, with the right invitation id
    url = ctx.route.url(workspace_id=workspace.pk, invitation_id=invitation.pk)
    assert_not_found(ctx.attacker.delete(url))
    assert_not_found(ctx.victim_client.delete(ctx.route.url(workspace_id=own.pk, invitation_id=invitation.pk)))
    _workspace_unchanged(workspace, invitation)
    return {"DELETE"}


CASES: dict[str, Callable[[Context], set[str]]] = {
    "chat:session-detail": session_detail,
    "chat:session-messages": session_messages,
    "chat:session-export": session_export,
    "chat:message-feedback": message_feedback,
    "rag:document-detail": document_detail,
    "users:verify-email-link": verify_email_link,
    "background_tasks:job-run": job_run,
    "workspaces:workspace-detail": workspace_detail,
    "workspaces:members": workspace_members,
    "workspaces:member-detail": workspace_member_detail,
    "workspaces:leave": workspace_leave,
    "workspaces:invitations": workspace_invitations,
    "workspaces:invitation-detail": workspace_invitation_detail,
    "api_keys:list": api_keys,
    "api_keys:detail": api_key_detail,
}


def object_routes() -> dict[str, Route]:
    """Routes with a path parameter, the admin aside: the whole admin is staff-only (API5's tests)."""
    return {r.name: r for r in all_routes() if r.parameters and not r.name.startswith("admin:")}


def test_every_route_with_an_object_in_its_path_has_a_case():
    assert set(object_routes()) == set(CASES), "write an object-level authorization case for the new route"


@pytest.mark.parametrize("name", sorted(CASES))
def test_another_users_object_is_not_found(name, api_client, staff_client, client_for):
    victim = UserFactory.create()
    session = ChatSession.objects.create(user=victim, workspace=workspace_personal_get(user=victim), title="private")
    ChatMessage.objects.create(session=session, sender="user", content="my secret plans")
    bot = ChatMessage.objects.create(session=session, sender="bot", content="about your secret plans", metadata={})
    route = object_routes()[name]
    ctx = Context(
        route=route,
        attacker=api_client,
        staff=staff_client,
        victim=victim,
        session=session,
        bot_message=bot,
        victim_client=client_for(victim),
    )
    exercised = CASES[name](ctx)
    assert exercised == route.methods, f"{name}: the case must try every method the view implements"


def test_lists_show_only_the_callers_objects(api_client, user):
    """Object lists are scoped too: the other user's session is in no list or total of the caller."""
    victim = UserFactory.create()
    theirs = ChatSession.objects.create(user=victim, workspace=workspace_personal_get(user=victim), title="private")
    ChatMessage.objects.create(session=theirs, sender="user", content="my secret plans")
    mine = ChatSession.objects.create(user=user, workspace=workspace_personal_get(user=user), title="mine")
    sessions = api_client.get("/api/chat/sessions/", {"page_size": 100}).json()
    assert [s["id"] for s in sessions["results"]] == [mine.pk]
    history = api_client.get("/api/chat/history/").json()
    assert [s["id"] for s in history["sessions"]] == [mine.pk]
    assert history["total_messages"] == 0 and history["recent_messages"] == []
    assert "secret plans" not in str(history)
