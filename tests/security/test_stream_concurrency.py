"""Issue 13 item 8: one user held every worker with answer streams.

Eight concurrent streams of one user, inside the 30/min throttle, held all 2x4 threads and health
took 9.4 s. A user may now have ``CHAT_MAX_CONCURRENT_STREAMS`` streams open; one more is a 429
``too_many_streams`` that stores nothing. The test client leaves a streamed response open until it
is read or closed, which is how these tests hold streams open: counted, not timed.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection

from chat.models import ChatMessage, ChatSession
from chat.stream_slots import StreamSlot, stream_slot_acquire
from tests.factories import UserFactory
from utils.exceptions import Throttled
from workspaces.services import workspace_personal_get


@pytest.fixture
def session(user: Any) -> ChatSession:
    return ChatSession.objects.create(user=user, workspace=workspace_personal_get(user=user))


def open_stream(client: Any, session: ChatSession, content: str = "how do I reset my password") -> Any:
    return client.post(
        f"/api/chat/sessions/{session.pk}/messages/",
        {"content": content},
        format="json",
        HTTP_ACCEPT="text/event-stream",
    )


def test_one_stream_over_the_limit_is_a_429_that_stores_nothing(settings, api_client, session, knowledge_base):
    settings.CHAT_MAX_CONCURRENT_STREAMS = 2
    held = [open_stream(api_client, session) for _ in range(2)]
    assert [r.status_code for r in held] == [200, 200]
    stored = ChatMessage.objects.count()
    refused = open_stream(api_client, session)
    assert refused.status_code == 429
    assert refused["Content-Type"].startswith("application/json")
    assert refused.json()["code"] == "too_many_streams" and refused.json()["detail"]
    assert int(refused["Retry-After"]) >= 1
    assert ChatMessage.objects.count() == stored  # the refused question was not stored
    # A plain (JSON) answer does not hold a thread after it returns, and is not counted.
    plain = api_client.post(f"/api/chat/sessions/{session.pk}/messages/", {"content": "hello"}, format="json")
    assert plain.status_code == 201
    for response in held:
        b"".join(response.streaming_content)
        response.close()


def test_a_finished_or_abandoned_stream_frees_its_slot(settings, api_client, session, knowledge_base, monkeypatch):
    settings.CHAT_MAX_CONCURRENT_STREAMS = 1
    # Closing a response ends its request, which would close the test's transaction-bound database
    # connection (PostgreSQL): keep it, as tests/chat/test_api.py does for the same reason.
    monkeypatch.setattr(connection, "close_if_unusable_or_obsolete", lambda: None)
    first = open_stream(api_client, session)
    assert open_stream(api_client, session).status_code == 429
    b"".join(first.streaming_content)  # read to the end
    first.close()
    second = open_stream(api_client, session)
    assert second.status_code == 200
    next(iter(second.streaming_content))  # the client reads one event, then leaves
    second.close()
    third = open_stream(api_client, session)
    assert third.status_code == 200
    b"".join(third.streaming_content)
    third.close()
    # The abandoned answer was still completed and stored (3 questions, 3 answers).
    assert ChatMessage.objects.filter(session=session).count() == 6


def test_one_users_streams_do_not_limit_another(settings, api_client, session, client_for, knowledge_base):
    settings.CHAT_MAX_CONCURRENT_STREAMS = 1
    mine = open_stream(api_client, session)
    other = UserFactory.create()
    theirs = open_stream(
        client_for(other), ChatSession.objects.create(user=other, workspace=workspace_personal_get(user=other))
    )
    assert (mine.status_code, theirs.status_code) == (200, 200)
    for response in (mine, theirs):
        b"".join(response.streaming_content)
        response.close()


def test_a_failing_stream_start_releases_its_slot(settings, api_client, session, monkeypatch):
    settings.CHAT_MAX_CONCURRENT_STREAMS = 1

    def refuse(**kwargs: Any) -> Any:
        raise Throttled("daily quota", retry_after=60, code="daily_quota_exceeded")

    monkeypatch.setattr("chat.services.message_receive", refuse)
    assert open_stream(api_client, session).status_code == 429
    assert stream_slot_acquire(user_id=session.user_id).key  # the slot was given back


def test_an_expired_slot_is_not_released_by_its_old_holder(settings):
    settings.CHAT_MAX_CONCURRENT_STREAMS = 1
    old = stream_slot_acquire(user_id=7)
    cache.delete(old.key)  # its TTL ran out while the worker hung
    new = stream_slot_acquire(user_id=7)
    old.release()
    with pytest.raises(Throttled):
        stream_slot_acquire(user_id=7)  # the new holder still has it
    new.release()
    assert isinstance(stream_slot_acquire(user_id=7), StreamSlot)


def test_zero_means_no_limit(settings):
    settings.CHAT_MAX_CONCURRENT_STREAMS = 0
    assert all(stream_slot_acquire(user_id=8).key == "" for _ in range(20))
