"""Retention: only what is older than the cut-off goes, the sessions that this emptied, and sessions
that never got a message once they have been idle for a day."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from background_tasks.models import JobRun
from background_tasks.runner import job_run_now
from chat.models import ChatMessage, ChatSession
from chat.services import chat_history_prune
from tests.factories import ChatMessageFactory, ChatSessionFactory, IdempotencyRecordFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def chats():
    now = timezone.now()
    old, recent = now - timedelta(days=31), now - timedelta(days=29)
    all_old = ChatSessionFactory.create(created_at=old)
    for _ in range(5):
        ChatMessageFactory.create(session=all_old, created_at=old)
    mixed = ChatSessionFactory.create(created_at=old)
    ChatMessageFactory.create(session=mixed, created_at=old)
    kept_message = ChatMessageFactory.create(session=mixed, created_at=recent)
    fresh = ChatMessageFactory.create(created_at=recent)
    return {
        "all_old": all_old,
        "mixed": mixed,
        "kept_message": kept_message,
        "fresh": fresh,
        "new_empty": ChatSessionFactory.create(),
        "old_empty": ChatSessionFactory.create(created_at=old, updated_at=old),  # empty before this run
        "idle_empty": ChatSessionFactory.create(
            created_at=now - timedelta(days=1, minutes=1), updated_at=now - timedelta(days=1, minutes=1)
        ),
        "renamed_empty": ChatSessionFactory.create(created_at=old, updated_at=now - timedelta(hours=23)),
    }


def test_prune_deletes_old_messages_the_sessions_it_emptied_and_idle_empty_sessions(chats):
    counts = chat_history_prune(retention_days=30, batch_size=2)
    assert counts == {"messages_deleted": 6, "sessions_deleted": 1, "empty_sessions_deleted": 2}
    assert not ChatSession.objects.filter(pk=chats["all_old"].pk).exists()
    remaining_sessions = set(ChatSession.objects.values_list("pk", flat=True))
    assert remaining_sessions == {
        chats["mixed"].pk,
        chats["fresh"].session_id,
        chats["new_empty"].pk,  # empty, but opened less than a day ago
        chats["renamed_empty"].pk,  # empty, but renamed less than a day ago
    }
    assert set(ChatMessage.objects.values_list("pk", flat=True)) == {chats["kept_message"].pk, chats["fresh"].pk}


def test_prune_is_idempotent_and_its_dry_run_deletes_nothing(chats):
    dry = chat_history_prune(retention_days=30, dry_run=True)
    assert dry == {"messages_deleted": 6, "sessions_deleted": 1, "empty_sessions_deleted": 2}
    assert ChatMessage.objects.count() == 8 and ChatSession.objects.count() == 7
    chat_history_prune(retention_days=30)
    again = chat_history_prune(retention_days=30)
    assert again == {"messages_deleted": 0, "sessions_deleted": 0, "empty_sessions_deleted": 0}


def test_prune_removes_idempotency_records_of_pruned_messages():
    old = timezone.now() - timedelta(days=40)
    record = IdempotencyRecordFactory.create(user_message=ChatMessageFactory.create(created_at=old))
    chat_history_prune(retention_days=30)
    assert not type(record).objects.filter(pk=record.pk).exists()


def test_the_job_uses_chat_retention_days(settings, chats):
    settings.CHAT_RETENTION_DAYS = 28
    run = job_run_now(name="prune_chat_history", dry_run=True)
    assert run.status == JobRun.Status.SUCCEEDED and run.dry_run
    assert run.result == {"messages_deleted": 8, "sessions_deleted": 3, "empty_sessions_deleted": 2}
    assert ChatMessage.objects.count() == 8


def test_a_retention_below_one_day_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        chat_history_prune(retention_days=0)
