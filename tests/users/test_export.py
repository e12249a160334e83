"""``GET /api/auth/me/export/``: all of a user's data as a JSON file, and nothing of anyone else's."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rag.models import Document
from tests.factories import BotMessageFactory, ChatMessageFactory, ChatSessionFactory, UserFactory
from workspaces.models import ApiKey, Invitation, Membership
from workspaces.services import workspace_create, workspace_personal_get

pytestmark = pytest.mark.django_db

EXPORT = "/api/auth/me/export/"


def document(workspace: Any, title: str, content: str) -> Document:
    return Document.objects.create(
        workspace=workspace, title=title, content=content, category="Guide", source=f"{title}.md", content_hash="x"
    )


@pytest.fixture
def world() -> dict[str, Any]:
    ann, bob = UserFactory.create(username="ann", first_name="Ann"), UserFactory.create(username="bob")
    personal = workspace_personal_get(user=ann)
    team = workspace_create(name="Bob's team", owner=bob)
    Membership.objects.create(workspace=team, user=ann, role=Membership.Role.ADMIN)
    document(personal, "Ann's notes", "Tomatoes need sun.")
    document(team, "Team secret", "Bob's confidential plan.")
    document(workspace_personal_get(user=bob), "Bob's diary", "Dear diary.")
    session = ChatSessionFactory.create(user=ann, workspace=team, title="Ann asks")
    ChatMessageFactory.create(session=session, content="How do I plant tomatoes?")
    BotMessageFactory.create(
        session=session,
        content="In the sun [1].",
        metadata={
            "answer_status": "answered",
            "citations": [{"n": 1, "document_id": 1}],
            "sources": [{"document_id": 1, "title": "Ann's notes"}],
            "usage": {"total_tokens": 42},
        },
        feedback_rating=1,
        feedback_comment="Thanks!",
    )
    bob_session = ChatSessionFactory.create(user=bob, workspace=team, title="Bob's private question")
    ChatMessageFactory.create(session=bob_session, content="Bob's private message")
    ApiKey.objects.create(
        workspace=team, created_by=ann, name="ci", prefix="rk_ann01", key_hash="f" * 64, scopes=["chat"]
    )
    ApiKey.objects.create(workspace=team, created_by=bob, name="bobs", prefix="rk_bob01", key_hash="e" * 64)
    Invitation.objects.create(
        workspace=team, email="cy@example.com", token_hash="c" * 64, invited_by=ann, expires_at="2030-01-01T00:00Z"
    )
    Invitation.objects.create(
        workspace=team, email="dee@example.com", token_hash="d" * 64, invited_by=bob, expires_at="2030-01-01T00:00Z"
    )
    return {"ann": ann, "bob": bob, "team": team, "personal": personal}


def test_the_export_holds_all_of_the_users_data(world, client_for):
    response = client_for(world["ann"]).get(EXPORT)

    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="account-')
    assert response["Cache-Control"].startswith("max-age=0")
    data = response.json()
    assert data["profile"]["username"] == "ann" and data["profile"]["first_name"] == "Ann"
    assert {(m["workspace_name"], m["role"]) for m in data["memberships"]} == {
        ("ann's workspace", "owner"),
        ("Bob's team", "admin"),
    }
    [session] = data["sessions"]
    assert session["title"] == "Ann asks" and session["workspace_id"] == world["team"].pk
    question, answer = session["messages"]
    assert question["content"] == "How do I plant tomatoes?"
    assert answer["metadata"]["answer_status"] == "answered" and answer["metadata"]["citations"]
    assert answer["metadata"]["sources"][0]["title"] == "Ann's notes"
    assert answer["feedback_rating"] == 1 and answer["feedback_comment"] == "Thanks!"
    assert [(d["title"], d["content"]) for d in data["documents"]] == [("Ann's notes", "Tomatoes need sun.")]
    [key] = data["api_keys"]
    assert key["prefix"] == "rk_ann01" and key["scopes"] == ["chat"] and key["name"] == "ci"
    assert [i["email"] for i in data["invitations_sent"]] == ["cy@example.com"]


def test_the_export_holds_nothing_of_anyone_else(world, client_for):
    text = client_for(world["ann"]).get(EXPORT).content.decode()

    for foreign in ["Bob's private", "Team secret", "confidential", "Dear diary", "rk_bob01", "dee@example.com"]:
        assert foreign not in text
    assert "f" * 64 not in text and "key_hash" not in text  # never a key's hash
    assert "password" not in json.loads(text)["profile"]


def test_the_export_is_throttled_per_user(world, client_for, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "export": "2/hour"},
    }
    client = client_for(world["ann"])
    assert [client.get(EXPORT).status_code for _ in range(3)] == [200, 200, 429]
    assert client_for(world["bob"]).get(EXPORT).status_code == 200


def test_the_export_needs_a_signed_in_caller(anon_client):
    assert anon_client.get(EXPORT).status_code == 401


def test_a_new_account_exports_its_profile_and_empty_lists(user, client_for):
    data = client_for(user).get(EXPORT).json()
    assert data["profile"]["id"] == user.pk and data["format_version"] == 1
    assert data["sessions"] == data["documents"] == data["api_keys"] == data["invitations_sent"] == []
