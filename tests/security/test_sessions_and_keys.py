"""Resources nobody cleans up and keys nobody owns (issue 13, item 12): empty chat sessions are
throttled and pruned; every Redis key carries the deployment's prefix."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from background_tasks.runner import job_run_now
from chat.models import ChatMessage, ChatSession
from tests.factories import UserFactory
from utils.redis import get_redis

pytestmark = pytest.mark.django_db

SESSIONS = "/api/chat/sessions/"


def test_opening_sessions_is_throttled_per_user(settings, api_client, user, client_for):
    assert django_settings.THROTTLE_RATES["session_create"] == "60/hour"  # the default
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] | {"session_create": "3/hour"}
    settings.REST_FRAMEWORK = settings.REST_FRAMEWORK | {"DEFAULT_THROTTLE_RATES": rates}
    for _ in range(3):
        assert api_client.post(SESSIONS, {}, format="json").status_code == 201
    refused = api_client.post(SESSIONS, {"title": "one more"}, format="json")
    assert refused.status_code == 429 and refused.json()["code"] == "throttled" and int(refused["Retry-After"]) > 0
    assert ChatSession.objects.filter(user=user).count() == 3
    assert api_client.get(SESSIONS).status_code == 200  # reading is not limited
    assert client_for(UserFactory.create()).post(SESSIONS, {}, format="json").status_code == 201  # per user


def test_sessions_that_never_got_a_message_are_pruned_after_a_day_idle(api_client, user):
    ids = [api_client.post(SESSIONS, {}, format="json").json()["id"] for _ in range(3)]
    idle, used, fresh = ids
    ChatMessage.objects.create(session_id=used, sender="user", content="hello")
    a_day_ago = timezone.now() - timedelta(days=1, minutes=5)
    ChatSession.objects.filter(pk__in=[idle, used]).update(created_at=a_day_ago, updated_at=a_day_ago)
    run = job_run_now(name="prune_chat_history")
    assert run.result["empty_sessions_deleted"] == 1
    assert set(ChatSession.objects.values_list("pk", flat=True)) == {used, fresh}
    assert [s["id"] for s in api_client.get(SESSIONS).json()["results"]] == [fresh, used]  # history follows


def test_every_redis_key_carries_the_deployment_prefix(api_client, knowledge_base, monkeypatch):
    """Caches, throttles, index versions, answer locks, scheduler keys: one prefix, so deployments
    sharing a Redis never read or delete each other's keys."""
    from chat import services

    prefix = f"{django_settings.CACHE_KEY_PREFIX}:"
    written: list[str] = []
    client = get_redis()
    original_set = type(client).set

    def recording_set(self: Any, name: Any, *args: Any, **kwargs: Any) -> Any:
        written.append(name.decode() if isinstance(name, bytes) else str(name))
        return original_set(self, name, *args, **kwargs)

    monkeypatch.setattr(type(client), "set", recording_set)
    session = api_client.post(SESSIONS, {}, format="json").json()
    headers = {"HTTP_IDEMPOTENCY_KEY": "k-1"}
    url = f"{SESSIONS}{session['id']}/messages/"
    assert api_client.post(url, {"content": "how do I reset my password"}, format="json", **headers).status_code == 201
    assert api_client.get("/api/chat/history/").status_code == 200
    job_run_now(name="cleanup_tokens")
    assert any(":answering:" in key for key in written)  # the answer lock was taken (and released)
    keys = [key.decode() if isinstance(key, bytes) else str(key) for key in client.keys("*")] + written
    assert len(keys) > 5 and [key for key in keys if not key.startswith(prefix)] == []
    assert services.redis_key("x") == f"{prefix}x"
