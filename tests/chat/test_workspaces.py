"""Chat in workspaces (DESIGN §8): a session belongs to a workspace its user is a member of, answers
read that workspace's scope, and a session the user can no longer reach (they left the workspace,
or an API key of another workspace asks) is not found."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from chat import services
from chat.models import ChatMessage, ChatSession, DailyMessageCount, WorkspaceDailyMessageCount
from chat.selectors import session_get
from rag.types import RetrievalScope
from tests.chat.test_api import SESSIONS, messages_url, parse_sse, send
from tests.factories import BotMessageFactory, UserFactory
from workspaces.models import ApiKey, Membership
from workspaces.services import workspace_create, workspace_personal_get

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(user):
    workspace = workspace_create(name="Team", owner=user)
    member = UserFactory.create()
    Membership.objects.create(workspace=workspace, user=member, role=Membership.Role.MEMBER)
    return workspace, member


def test_a_session_opens_in_a_workspace_of_the_caller(api_client, user, team):
    workspace, _ = team
    default = api_client.post(SESSIONS, {}, format="json").json()
    assert default["workspace"] == workspace_personal_get(user=user).pk
    chosen = api_client.post(SESSIONS, {"title": "Team chat", "workspace": workspace.pk}, format="json")
    assert chosen.status_code == 201 and chosen.json()["workspace"] == workspace.pk
    assert api_client.get(f"{SESSIONS}{chosen.json()['id']}/").json()["workspace"] == workspace.pk


@pytest.mark.parametrize("value", ["1", 0, True, 1.0, None])
def test_the_workspace_of_a_session_is_an_integer_id(api_client, value):
    response = api_client.post(SESSIONS, {"workspace": value}, format="json")
    assert response.status_code == 400 and "workspace" in response.json()["errors"]


def test_a_workspace_of_others_is_not_found(client_for, team):
    workspace, _ = team
    outsider = client_for(UserFactory.create())
    response = outsider.post(SESSIONS, {"workspace": workspace.pk}, format="json")
    missing = outsider.post(SESSIONS, {"workspace": workspace.pk + 1000}, format="json")
    assert response.status_code == 404 and response.json() == missing.json()
    assert not ChatSession.objects.filter(workspace=workspace).exists()


def test_leaving_a_workspace_hides_its_sessions(client_for, team, knowledge_base):
    workspace, member = team
    client = client_for(member)
    session = client.post(SESSIONS, {"workspace": workspace.pk}, format="json").json()
    bot = send(client, session["id"], "How do I reset my password?").json()["bot_message"]
    assert client.get("/api/chat/history/").json()["total_sessions"] == 1
    Membership.objects.filter(workspace=workspace, user=member).delete()
    url = f"{SESSIONS}{session['id']}/"
    for response in (
        client.get(url),
        client.patch(url, {"title": "x"}, format="json"),
        client.get(messages_url(session["id"])),
        send(client, session["id"], "And now?"),
        client.get(f"{url}export/"),
        client.post(f"/api/chat/messages/{bot['id']}/feedback/", {"rating": 1}, format="json"),
        client.delete(url),
    ):
        assert response.status_code == 404, response.content
    assert client.get(SESSIONS).json()["count"] == 0
    history = client.get("/api/chat/history/").json()
    assert history["total_sessions"] == 0 and history["total_messages"] == 0
    assert history["sessions"] == [] and history["recent_messages"] == []
    assert ChatMessage.objects.filter(session_id=session["id"]).count() == 2  # hidden, not deleted


@pytest.fixture
def scopes(monkeypatch) -> list[RetrievalScope]:
    """Records the scope each answer is asked with (the stores apply it: tests/rag)."""
    seen: list[RetrievalScope] = []
    real_question, real_stream = services.answer_question, services.answer_stream

    def question(**kwargs: Any):
        seen.append(kwargs["scope"])
        return real_question(**kwargs)

    def stream(**kwargs: Any):
        seen.append(kwargs["scope"])
        return real_stream(**kwargs)

    monkeypatch.setattr(services, "answer_question", question)
    monkeypatch.setattr(services, "answer_stream", stream)
    return seen


def test_answers_read_the_session_workspace_scope(api_client, team, scopes, knowledge_base):
    workspace, _ = team
    workspace.include_shared = False
    workspace.save(update_fields=["include_shared"])
    session = api_client.post(SESSIONS, {"workspace": workspace.pk}, format="json").json()
    assert send(api_client, session["id"], "How do I reset my password?").status_code == 201
    streamed = api_client.post(
        messages_url(session["id"]), {"content": "And by email?"}, format="json", HTTP_ACCEPT="text/event-stream"
    )
    assert parse_sse(b"".join(streamed.streaming_content))[-1][0] == "done"
    personal = api_client.post(SESSIONS, {}, format="json").json()
    send(api_client, personal["id"], "How do I reset my password?")
    assert scopes == [
        RetrievalScope(workspace_id=workspace.pk, include_shared=False),
        RetrievalScope(workspace_id=workspace.pk, include_shared=False),
        RetrievalScope(workspace_id=personal["workspace"], include_shared=True),
    ]


def api_key_client(user, workspace) -> APIClient:
    key = ApiKey.objects.create(
        workspace=workspace, created_by=user, name="bot", prefix=f"p{workspace.pk}", key_hash=f"{workspace.pk:064}"
    )
    client = APIClient()
    # What ApiKeyAuthentication yields: (creator, key); DRF's stub types the token as authtoken's Token.
    client.force_authenticate(user=user, token=key)  # type: ignore[arg-type]
    return client


def test_an_api_key_reaches_only_the_sessions_of_its_workspace(api_client, user, team, knowledge_base):
    workspace, _ = team
    personal = api_client.post(SESSIONS, {"title": "Mine"}, format="json").json()
    answered = send(api_client, personal["id"], "How do I reset my password?").json()["bot_message"]
    client = api_key_client(user, workspace)
    created = client.post(SESSIONS, {}, format="json").json()
    assert created["workspace"] == workspace.pk  # the key's workspace by default
    assert client.post(SESSIONS, {"workspace": personal["workspace"]}, format="json").status_code == 404
    assert [s["id"] for s in client.get(SESSIONS).json()["results"]] == [created["id"]]
    url = f"{SESSIONS}{personal['id']}/"
    assert client.get(url).status_code == 404
    assert send(client, personal["id"], "Hello?").status_code == 404
    assert client.get(f"{url}export/").status_code == 404
    feedback = client.post(f"/api/chat/messages/{answered['id']}/feedback/", {"rating": 1}, format="json")
    assert feedback.status_code == 404
    history = client.get("/api/chat/history/").json()
    assert [s["id"] for s in history["sessions"]] == [created["id"]] and history["total_messages"] == 0
    # The same user without the key still sees both (the cached history is keyed by scope).
    assert api_client.get("/api/chat/history/").json()["total_sessions"] == 2


# --- the workspace's daily message quota ------------------------------------------------------


def test_the_workspace_quota_counts_every_member(api_client, user, client_for, team, knowledge_base):
    workspace, member = team
    workspace.max_messages_per_day = 2
    workspace.save(update_fields=["max_messages_per_day"])
    mine = api_client.post(SESSIONS, {"workspace": workspace.pk}, format="json").json()
    theirs = client_for(member).post(SESSIONS, {"workspace": workspace.pk}, format="json").json()
    assert send(api_client, mine["id"], "How do I reset my password?").status_code == 201
    assert send(client_for(member), theirs["id"], "How do I verify my email?").status_code == 201
    refused = send(api_client, mine["id"], "What are the rate limits?")
    assert refused.status_code == 429 and refused.json()["code"] == "workspace_message_quota_exceeded"
    assert 1 <= int(refused["Retry-After"]) <= 86400
    assert ChatMessage.objects.filter(session__workspace=workspace, sender="user").count() == 2
    assert DailyMessageCount.objects.get(user=user).count == 1  # the refused send gave its place back
    # Other workspaces are not affected.
    personal = api_client.post(SESSIONS, {}, format="json").json()
    assert send(api_client, personal["id"], "What are the rate limits?").status_code == 201


def test_the_workspace_quota_starts_again_each_day(api_client, team, knowledge_base):
    workspace, _ = team
    workspace.max_messages_per_day = 1
    workspace.save(update_fields=["max_messages_per_day"])
    yesterday = timezone.now().date() - timedelta(days=1)
    WorkspaceDailyMessageCount.objects.create(workspace=workspace, day=yesterday, count=1)
    session = api_client.post(SESSIONS, {"workspace": workspace.pk}, format="json").json()
    assert send(api_client, session["id"], "How do I reset my password?").status_code == 201
    assert WorkspaceDailyMessageCount.objects.get(workspace=workspace).count == 1
    assert send(api_client, session["id"], "And again?").status_code == 429


def test_a_replayed_message_is_not_counted_again(api_client, team, knowledge_base):
    workspace, _ = team
    workspace.max_messages_per_day = 1
    workspace.save(update_fields=["max_messages_per_day"])
    session = api_client.post(SESSIONS, {"workspace": workspace.pk}, format="json").json()
    first = send(api_client, session["id"], "How do I reset my password?", HTTP_IDEMPOTENCY_KEY="k1")
    again = send(api_client, session["id"], "How do I reset my password?", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == 201 and again.status_code == 201
    assert again.json()["user_message"]["id"] == first.json()["user_message"]["id"]


def test_bot_factory_sessions_stay_visible(user):
    """Sessions made outside the API (factories, admin) are in the personal workspace and visible."""
    bot = BotMessageFactory.create(session__user=user)
    assert session_get(user=user, session_id=bot.session_id) is not None


def test_a_stream_over_the_workspace_quota_is_refused_before_it_starts(api_client, team, knowledge_base):
    workspace, _ = team
    workspace.max_messages_per_day = 0
    workspace.save(update_fields=["max_messages_per_day"])
    session = api_client.post(SESSIONS, {"workspace": workspace.pk}, format="json").json()
    for _ in range(3):  # the stream slot is given back each time (CHAT_MAX_CONCURRENT_STREAMS is 2)
        refused = api_client.post(
            messages_url(session["id"]), {"content": "Hello?"}, format="json", HTTP_ACCEPT="text/event-stream"
        )
        assert refused.status_code == 429 and refused.json()["code"] == "workspace_message_quota_exceeded"
        assert refused["Retry-After"]
    assert not ChatMessage.objects.filter(session_id=session["id"]).exists()
