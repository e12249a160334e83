"""OWASP API3:2023 Broken Object Property Level Authorization: mass assignment and excessive data
exposure.

Writes: a client can set only the properties an endpoint documents; privilege, ownership, ids and
timestamps sent along are ignored. Reads: responses are allow-lists, never a model dump, so no
password hash, internal error or other user's data leaves the server.

Already covered: is_staff/is_superuser/is_verified at registration
(tests/users/test_api.py::test_register_ignores_privilege_fields) and on the profile, with
username and email (tests/users/test_api.py::test_profile_ignores_mass_assignment).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from background_tasks.models import JobRun
from chat.models import ChatMessage, ChatSession
from rag.models import Document
from tests.factories import DEFAULT_PASSWORD, ChatSessionFactory, UserFactory
from users.models import User
from workspaces.services import workspace_personal_get

pytestmark = pytest.mark.django_db

SESSIONS = "/api/chat/sessions/"
HASH_MARKERS = ("md5$", "pbkdf2_", "argon2", "bcrypt", "scrypt")
USER_FIELDS = {"id", "username", "email", "first_name", "last_name", "date_joined", "is_verified"}
MESSAGE_FIELDS = {
    "id",
    "session_id",
    "sender",
    "content",
    "created_at",
    "answer_status",
    "abstain_reason",
    "citations",
    "sources",
    "degraded",
    "latency_ms",
    "provider",
    "model",
    "usage",
    "feedback",
}


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (key path, leaf value) of a JSON document; keys are reported as leaves too."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.{key}", key
            yield from walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, f"{path}[{index}]")
    else:
        yield path, value


def assert_nothing_leaks(body: Any, *, user: User, others: list[str]) -> None:
    for path, leaf in walk(body):
        text = str(leaf)
        assert "password" not in text.lower() or path.endswith(".detail"), path
        assert user.password not in text, path
        assert not any(marker in text for marker in HASH_MARKERS), (path, text)
        assert not any(secret in text for secret in others), (path, text)


# --- writes: mass assignment ----------------------------------------------------------------------


def test_registration_sets_only_documented_fields(anon_client, django_capture_on_commit_callbacks):
    staff = UserFactory.create(is_staff=True)
    long_ago = "2001-01-01T00:00:00Z"
    body = {
        "username": "mallory",
        "email": "mallory@example.com",
        "password": "Violet-Harbour-Lantern-9",
        "id": staff.pk + 1000,
        "is_active": False,
        "is_staff": True,
        "is_superuser": True,
        "is_verified": True,
        "date_joined": long_ago,
        "last_login": long_ago,
        "groups": [1],
        "user_permissions": [1, 2, 3],
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = anon_client.post("/api/auth/register/", body, format="json")
    assert response.status_code == 201, response.content
    assert set(response.json()) == {"id", "username", "email", "date_joined", "is_verified"}
    user = User.objects.get(username="mallory")
    assert user.pk != staff.pk + 1000 and user.is_active
    assert (user.is_staff, user.is_superuser, user.is_verified) == (False, False, False)
    assert user.date_joined > timezone.now() - timedelta(minutes=1) and user.last_login is None
    assert not user.groups.exists() and not user.user_permissions.exists()


def test_profile_update_cannot_touch_identity_password_or_status(api_client, user):
    original = (user.pk, user.date_joined, user.username, user.email)
    payload = {
        "first_name": "Ada",
        "id": user.pk + 1,
        "password": "changed-by-patch-123",
        "date_joined": "2001-01-01T00:00:00Z",
        "is_active": False,
        "last_login": "2001-01-01T00:00:00Z",
    }
    response = api_client.patch("/api/auth/profile/", payload, format="json")
    assert response.status_code == 200 and set(response.json()) == USER_FIELDS
    user.refresh_from_db()
    assert user.first_name == "Ada" and (user.pk, user.date_joined, user.username, user.email) == original
    assert user.check_password(DEFAULT_PASSWORD) and user.is_active and user.last_login is None


def test_a_session_always_belongs_to_its_creator(api_client, user):
    other = UserFactory.create()
    response = api_client.post(
        SESSIONS,
        {"title": "mine", "user": other.pk, "user_id": other.pk, "id": 424242, "created_at": "2001-01-01T00:00:00Z"},
        format="json",
    )
    assert response.status_code == 201
    session = ChatSession.objects.get(pk=response.json()["id"])
    assert session.user == user and session.pk != 424242 and session.created_at.year > 2001
    renamed = api_client.patch(f"{SESSIONS}{session.pk}/", {"title": "x", "user": other.pk}, format="json")
    assert renamed.status_code == 200
    session.refresh_from_db()
    assert session.user == user and not ChatSession.objects.filter(user=other).exists()


def test_a_sent_message_cannot_pose_as_the_bot_or_bring_its_own_sources(api_client, user):
    session = ChatSession.objects.create(user=user, workspace=workspace_personal_get(user=user))
    forged_source = {"document_id": 1, "title": "Official Policy", "category": "Policy", "source": "x", "score": 1}
    response = api_client.post(
        f"{SESSIONS}{session.pk}/messages/",
        {
            "content": "what is an AI chatbot?",
            "sender": "bot",
            "sources": [forged_source],
            "degraded": True,
            "metadata": {"provider": "admin"},
            "session": 999,
            "feedback_rating": 1,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    mine, bot = response.json()["user_message"], response.json()["bot_message"]
    assert mine["sender"] == "user" and mine["sources"] == [] and mine["degraded"] is False
    assert bot["sources"] == [] and bot["provider"] == "extractive"  # nothing in the knowledge base
    stored = ChatMessage.objects.get(pk=mine["id"])
    assert stored.session == session and stored.metadata == {} and stored.feedback_rating is None


def test_feedback_is_set_only_on_the_message_in_the_path(api_client, user):
    session = ChatSession.objects.create(user=user, workspace=workspace_personal_get(user=user))
    mine = ChatMessage.objects.create(session=session, sender="bot", content="answer")
    theirs = ChatMessage.objects.create(
        session=ChatSessionFactory.create(title=""), sender="bot", content="their answer"
    )
    body = {"rating": 1, "message": theirs.pk, "message_id": theirs.pk, "session": theirs.session_id}
    assert api_client.post(f"/api/chat/messages/{mine.pk}/feedback/", body, format="json").status_code == 200
    theirs.refresh_from_db()
    mine.refresh_from_db()
    assert mine.feedback_rating == 1 and theirs.feedback_rating is None


def test_staff_document_writes_ignore_server_managed_fields(staff_client):
    body = {
        "title": "Office hours",
        "content": "Support answers on weekdays from nine to five.",
        "category": "FAQ",
        "id": 777,
        "chunk_count": 99,
        "created_at": "2001-01-01T00:00:00Z",
        "content_hash": "0" * 64,
    }
    response = staff_client.post("/api/rag/documents/", body, format="json")
    assert response.status_code == 201, response.content
    document = Document.objects.get(pk=response.json()["id"])
    assert document.pk != 777 and document.created_at.year > 2001
    assert response.json()["chunk_count"] == document.chunks.count() != 99
    patched = staff_client.patch(f"/api/rag/documents/{document.pk}/", {"source": "evil.md", "id": 1}, format="json")
    assert patched.status_code == 200
    document.refresh_from_db()
    assert document.source == "" and Document.objects.filter(pk=document.pk).exists()


def test_a_manual_job_run_cannot_claim_another_trigger_or_outcome(staff_client):
    response = staff_client.post(
        "/api/ops/jobs/cleanup_tokens/run/",
        {"dry_run": True, "trigger": "scheduled", "status": "failed", "error": "forged"},
        format="json",
    )
    assert response.status_code == 200, response.content
    run = JobRun.objects.get()
    assert run.trigger == JobRun.Trigger.MANUAL and run.status == JobRun.Status.SUCCEEDED and run.error == ""


# --- reads: excessive data exposure ------------------------------------------------------------


def test_no_response_carries_a_password_hash_internal_error_or_another_users_data(
    anon_client, api_client, user, client_for
):
    other = UserFactory.create(username="zed-the-other", email="zed@elsewhere.example")
    other_session = ChatSession.objects.create(
        user=other, workspace=workspace_personal_get(user=other), title="zed's plans"
    )
    ChatMessage.objects.create(session=other_session, sender="user", content="zed private question")
    session = ChatSession.objects.create(user=user, workspace=workspace_personal_get(user=user), title="mine")
    ChatMessage.objects.create(session=session, sender="user", content="my question")
    bot = ChatMessage.objects.create(
        session=session,
        sender="bot",
        content="an answer",
        metadata={"sources": [], "provider": "extractive", "degraded": True, "error": "provider_timeout at 10.0.0.7"},
    )
    login = anon_client.post(
        "/api/auth/login/", {"username": user.username, "password": DEFAULT_PASSWORD}, format="json"
    )
    responses = {
        "login": login,
        "profile": api_client.get("/api/auth/profile/"),
        "sessions": api_client.get(SESSIONS),
        "session": api_client.get(f"{SESSIONS}{session.pk}/"),
        "messages": api_client.get(f"{SESSIONS}{session.pk}/messages/"),
        "history": api_client.get("/api/chat/history/"),
        "export": api_client.get(f"{SESSIONS}{session.pk}/export/", {"format": "json"}),
        "feedback": api_client.post(f"/api/chat/messages/{bot.pk}/feedback/", {"rating": 1}, format="json"),
    }
    others = [other.username, other.email, "zed private question", "zed's plans", "10.0.0.7", "provider_timeout"]
    for name, response in responses.items():
        assert response.status_code == 200, (name, response.content)
        assert_nothing_leaks(response.json(), user=user, others=others)
    assert set(login.json()["user"]) == USER_FIELDS
    assert set(responses["profile"].json()) == USER_FIELDS
    for message in responses["messages"].json()["results"]:
        assert set(message) == MESSAGE_FIELDS
    markdown = api_client.get(f"{SESSIONS}{session.pk}/export/", {"format": "md"}).content.decode()
    assert "10.0.0.7" not in markdown and user.password not in markdown


def test_staff_listings_do_not_expose_accounts_either(staff_client, staff_user):
    UserFactory.create(username="zed-the-other")
    for url in ("/api/ops/jobs/", "/api/rag/documents/"):
        response = staff_client.get(url)
        assert response.status_code == 200
        assert_nothing_leaks(response.json(), user=staff_user, others=["zed-the-other"])
