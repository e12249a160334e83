"""OWASP API6:2023 Unrestricted Access to Sensitive Business Flows.

The flows worth automating against us: mass account creation, mail bombing through the password
reset and verification flows, and message sending (each message costs a model call). Each is
throttled per client (or per user once signed in) with a 429 in the envelope and ``Retry-After``,
and a forged ``X-Forwarded-For`` does not reset the count (``NUM_PROXIES`` is 0 by default).

Already covered: login (tests/users/test_api.py::test_sixth_login_in_a_minute_is_429_with_retry_after),
registration at a configured rate (::test_register_throttle_uses_rate_from_settings), the chat
throttle (tests/chat/test_api.py::test_send_throttle) and the daily quota (::test_daily_quota).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail

from chat.models import ChatMessage, ChatSession
from tests.factories import UserFactory
from users.models import User
from workspaces.services import workspace_personal_get

pytestmark = pytest.mark.django_db


@pytest.fixture
def rates(settings: Any):
    def set_rate(scope: str, rate: str) -> None:
        current = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**current, scope: rate}}

    return set_rate


def assert_throttled(response: Any) -> None:
    assert response.status_code == 429, response.content
    assert response.json()["code"] in ("throttled", "daily_quota_exceeded")
    assert int(response["Retry-After"]) > 0


def test_the_documented_default_rates(settings):
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    assert (rates["login"], rates["register"], rates["password_reset"], rates["chat"]) == (
        "5/min",
        "20/hour",
        "5/hour",
        "30/min",
    )
    assert settings.CHAT_DAILY_QUOTA == 500


def test_bulk_registration_is_throttled_per_client_whatever_the_names_and_headers(
    anon_client, rates, django_capture_on_commit_callbacks
):
    rates("register", "3/hour")
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(4):
            response = anon_client.post(
                "/api/auth/register/",
                {"username": f"bot{n}", "email": f"bot{n}@spam.example", "password": "Violet-Harbour-Lantern-9"},
                format="json",
                HTTP_X_FORWARDED_FOR=f"203.0.113.{n}",
                HTTP_X_REAL_IP=f"203.0.113.{n}",
            )
    assert_throttled(response)
    assert sorted(User.objects.values_list("username", flat=True)) == ["bot0", "bot1", "bot2"]
    assert len(mail.outbox) == 3


def test_password_reset_cannot_be_used_to_mail_bomb_someone(anon_client, django_capture_on_commit_callbacks):
    UserFactory.create(email="victim@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        statuses = [
            anon_client.post(
                "/api/auth/password/reset/",
                {"email": "victim@example.com"},
                format="json",
                HTTP_X_FORWARDED_FOR=f"198.51.100.{n}",
            ).status_code
            for n in range(5)
        ]
        last = anon_client.post("/api/auth/password/reset/", {"email": "victim@example.com"}, format="json")
    assert statuses == [202] * 5
    assert_throttled(last)
    assert len(mail.outbox) == 5


def test_verification_resend_is_throttled_too(anon_client, rates, django_capture_on_commit_callbacks):
    rates("account_token", "2/hour")
    UserFactory.create(email="new@example.com", is_verified=False)
    with django_capture_on_commit_callbacks(execute=True):
        responses = [
            anon_client.post("/api/auth/resend-verification/", {"email": "new@example.com"}, format="json")
            for _ in range(3)
        ]
    assert [r.status_code for r in responses[:2]] == [202, 202]
    assert_throttled(responses[2])
    assert len(mail.outbox) == 2


def test_message_sending_is_throttled_per_user_across_sessions(api_client, user, client_for, rates):
    rates("chat", "3/min")
    first, second = (
        ChatSession.objects.create(user=user, workspace=workspace_personal_get(user=user)) for _ in range(2)
    )

    def send(client: Any, session: ChatSession) -> Any:
        return client.post(
            f"/api/chat/sessions/{session.pk}/messages/",
            {"content": "what is an AI chatbot?"},
            format="json",
            HTTP_X_FORWARDED_FOR="192.0.2.77",
        )

    assert [send(api_client, s).status_code for s in (first, second, first)] == [201, 201, 201]
    assert_throttled(send(api_client, second))  # a new session is no new budget
    stream = api_client.post(
        f"/api/chat/sessions/{second.pk}/messages/",
        {"content": "hi"},
        format="json",
        HTTP_ACCEPT="text/event-stream",
    )
    assert_throttled(stream)  # nor is streaming
    assert ChatMessage.objects.filter(sender="user", session__user=user).count() == 3
    other = UserFactory.create()
    theirs = ChatSession.objects.create(user=other, workspace=workspace_personal_get(user=other))
    assert send(client_for(other), theirs).status_code == 201  # one user's flood is not another's problem


def test_the_daily_quota_counts_every_session_of_the_user(api_client, user, settings):
    settings.CHAT_DAILY_QUOTA = 2
    sessions = [ChatSession.objects.create(user=user, workspace=workspace_personal_get(user=user)) for _ in range(3)]
    statuses = [
        api_client.post(f"/api/chat/sessions/{s.pk}/messages/", {"content": "hello there"}, format="json").status_code
        for s in sessions
    ]
    assert statuses[:2] == [201, 201] and statuses[2] == 429
    assert ChatMessage.objects.filter(sender="user").count() == 2
