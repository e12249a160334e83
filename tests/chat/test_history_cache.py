"""GET /api/chat/history/ is cached per user and never stale after that user's writes.

These tests commit for real (``transaction=True``), as in production. Writes never touch the cache
(they replace the version token in the database), so a cache per worker behaves as a shared one.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat.models import ChatMessage, HistoryVersion
from chat.services import chat_history_prune
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


HISTORY = "/api/chat/history/"
SESSIONS = "/api/chat/sessions/"


def history(client) -> dict:
    response = client.get(HISTORY)
    assert response.status_code == 200
    return response.json()


def ask(client, session_id: int, content: str) -> dict:
    response = client.post(f"{SESSIONS}{session_id}/messages/", {"content": content}, format="json")
    assert response.status_code == 201
    return response.json()


def test_a_repeated_read_comes_from_the_cache(api_client, knowledge_base):
    session = api_client.post(SESSIONS, {}, format="json").json()
    ask(api_client, session["id"], "how do I reset my password")
    first = history(api_client)
    with CaptureQueriesContext(connection) as queries:
        again = history(api_client)
    assert again == first
    # Authentication and the version token; the overview itself is served from the cache.
    chat_reads = [q["sql"] for q in queries.captured_queries if "chat_" in q["sql"]]
    assert len(chat_reads) == 1 and "chat_historyversion" in chat_reads[0]


def test_a_change_that_skips_the_version_is_not_seen_until_the_next_write(api_client, knowledge_base):
    # Shows that reads really come from the cache, and that the version token is what refreshes it.
    session = api_client.post(SESSIONS, {}, format="json").json()
    ask(api_client, session["id"], "how do I reset my password")
    history(api_client)
    ChatMessage.objects.update(content="changed behind the cache's back")
    assert "changed behind the cache's back" not in str(history(api_client))
    api_client.patch(f"{SESSIONS}{session['id']}/", {"title": "Renamed"}, format="json")
    assert history(api_client)["recent_messages"][0]["content"] == "changed behind the cache's back"


def test_a_user_without_a_version_is_read_from_the_database(api_client, knowledge_base):
    # After an upgrade or a restore, until the user's next write.
    session = api_client.post(SESSIONS, {}, format="json").json()
    ask(api_client, session["id"], "how do I reset my password")
    HistoryVersion.objects.all().delete()
    history(api_client)
    ChatMessage.objects.update(content="changed")
    assert history(api_client)["recent_messages"][0]["content"] == "changed"


def test_every_write_of_the_user_shows_at_once(api_client, knowledge_base):
    session = api_client.post(SESSIONS, {}, format="json").json()
    assert history(api_client)["total_sessions"] == 1
    reply = ask(api_client, session["id"], "how do I reset my password")
    seen = history(api_client)
    assert seen["total_messages"] == 2 and seen["recent_messages"][0]["id"] == reply["bot_message"]["id"]
    assert seen["sessions"][0]["message_count"] == 2
    api_client.patch(f"{SESSIONS}{session['id']}/", {"title": "Renamed"}, format="json")
    assert history(api_client)["sessions"][0]["title"] == "Renamed"
    bot_id = reply["bot_message"]["id"]
    api_client.post(f"/api/chat/messages/{bot_id}/feedback/", {"rating": 1}, format="json")
    assert history(api_client)["recent_messages"][0]["feedback"]["rating"] == 1
    api_client.delete(f"{SESSIONS}{session['id']}/")
    assert history(api_client) == {"sessions": [], "recent_messages": [], "total_sessions": 0, "total_messages": 0}


def test_users_do_not_share_cached_overviews(api_client, client_for, knowledge_base):
    session = api_client.post(SESSIONS, {}, format="json").json()
    ask(api_client, session["id"], "how do I reset my password")
    history(api_client)
    other = client_for(UserFactory())
    assert history(other)["total_messages"] == 0


def test_the_retention_job_refreshes_everyones_overview(api_client, knowledge_base):
    session = api_client.post(SESSIONS, {}, format="json").json()
    ask(api_client, session["id"], "how do I reset my password")
    assert history(api_client)["total_messages"] == 2
    ChatMessage.objects.update(created_at=timezone.now() - timedelta(days=90))
    chat_history_prune(retention_days=30)
    assert history(api_client)["total_messages"] == 0


def test_without_the_cache_every_read_is_fresh(api_client, knowledge_base, settings):
    settings.CHAT_HISTORY_CACHE = False
    session = api_client.post(SESSIONS, {}, format="json").json()
    ask(api_client, session["id"], "how do I reset my password")
    history(api_client)
    ChatMessage.objects.update(content="changed behind the cache's back")  # no invalidation at all
    assert history(api_client)["recent_messages"][0]["content"] == "changed behind the cache's back"
