"""Issue 13, item 4: the daily quota is counted atomically (exactly the quota is stored however
many sends race, on SQLite and PostgreSQL) and in constant time (one counter row per user, not
a count over all of the user's sessions and messages)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat.models import ChatMessage, ChatSession, DailyMessageCount
from chat.services import message_receive
from tests.factories import UserFactory
from tests.security.threads import in_thread, in_threads, threaded_db  # noqa: F401 (a fixture)
from utils.exceptions import Throttled
from workspaces.services import workspace_personal_get

PARALLEL_SENDS = 30
QUOTA = 5


@pytest.mark.usefixtures("threaded_db")
def test_parallel_sends_store_exactly_the_quota(settings):
    settings.CHAT_DAILY_QUOTA = QUOTA

    def prepare():
        user = UserFactory.create()
        return user, [
            ChatSession.objects.create(user=user, workspace=workspace_personal_get(user=user)) for _ in range(3)
        ]

    user, sessions = in_thread(prepare)

    def send(index: int) -> Callable[[], str]:
        def attempt() -> str:
            try:
                message_receive(user=user, session=sessions[index % 3], content=f"question {index}")
            except Throttled as exc:
                return exc.code
            return "stored"

        return attempt

    outcomes = in_threads([send(i) for i in range(PARALLEL_SENDS)])
    assert outcomes.count("stored") == QUOTA, outcomes
    assert outcomes.count("daily_quota_exceeded") == PARALLEL_SENDS - QUOTA, outcomes
    stored = in_thread(lambda: ChatMessage.objects.filter(session__user=user, sender="user").count())
    assert stored == QUOTA
    assert in_thread(lambda: DailyMessageCount.objects.get(user=user).count) == QUOTA


def test_the_quota_check_reads_no_messages_once_counting(db, settings):
    """Constant time: with the counter in place a send neither counts nor sorts the user's messages."""
    settings.CHAT_DAILY_QUOTA = 1000
    user = UserFactory.create()
    sessions = [ChatSession.objects.create(user=user, workspace=workspace_personal_get(user=user)) for _ in range(40)]
    ChatMessage.objects.bulk_create(
        [ChatMessage(session=s, sender="user", content="earlier") for s in sessions for _ in range(5)]
    )
    message_receive(user=user, session=sessions[0], content="first send counted")
    with CaptureQueriesContext(connection) as queries:
        message_receive(user=user, session=sessions[1], content="second send")
    reads_of_messages = [q["sql"] for q in queries if "chat_chatmessage" in q["sql"] and "INSERT" not in q["sql"]]
    assert reads_of_messages == []
    assert DailyMessageCount.objects.get(user=user).count == 202  # 200 already sent today, then two


def test_the_counter_starts_again_each_day_and_gives_back_a_failed_send(db, settings):
    settings.CHAT_DAILY_QUOTA = 2
    user = UserFactory.create()
    session = ChatSession.objects.create(user=user, workspace=workspace_personal_get(user=user))
    DailyMessageCount.objects.create(user=user, day=timezone.now().date() - timedelta(days=1), count=2)
    message_receive(user=user, session=session, content="a new day")
    assert DailyMessageCount.objects.get(user=user).count == 1
    # A send that fails after claiming its place rolls the claim back with the message.
    with mock.patch("chat.services.history_changed", side_effect=RuntimeError("boom")), pytest.raises(RuntimeError):
        message_receive(user=user, session=session, content="fails after the claim")
    assert DailyMessageCount.objects.get(user=user).count == 1
    message_receive(user=user, session=session, content="second")
    with pytest.raises(Throttled):
        message_receive(user=user, session=session, content="third")
    assert DailyMessageCount.objects.get(user=user).count == 2
    assert ChatMessage.objects.filter(session=session).count() == 2
