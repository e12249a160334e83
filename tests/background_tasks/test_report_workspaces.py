"""The daily report's per-workspace section: messages, unanswered answers, documents and bytes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives

from background_tasks.services.report_workspaces import workspace_days
from background_tasks.services.reports import _unanswered, daily_report_build, daily_report_send
from chat.models import ChatMessage
from rag.models import Document
from tests.factories import BotMessageFactory, ChatMessageFactory, ChatSessionFactory, UserFactory
from workspaces.services import workspace_create, workspace_personal_get

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
DAY = date(2026, 11, 20)
IN_DAY = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def exchange(session, at, *, answered=True):
    ChatMessageFactory.create(session=session, created_at=at)
    metadata: dict[str, object] = {"answer_status": "answered" if answered else "abstained", "sources": []}
    BotMessageFactory.create(session=session, created_at=at + timedelta(seconds=1), metadata=metadata)


@pytest.fixture
def tenants():
    ann, bob = UserFactory.create(), UserFactory.create()
    acme = workspace_create(name="Acme <support>", owner=ann)
    personal = workspace_personal_get(user=bob)
    Document.objects.create(workspace=acme, title="Prices", content="ünïcode", content_hash="a")  # 9 bytes
    Document.objects.create(workspace=acme, title="Hours", content="9 to 5", content_hash="b")  # 6 bytes
    acme_session = ChatSessionFactory.create(user=ann, workspace=acme)
    for minutes in range(3):
        exchange(acme_session, IN_DAY + timedelta(minutes=minutes), answered=minutes != 0)
    exchange(ChatSessionFactory.create(user=bob, workspace=personal), IN_DAY, answered=False)
    exchange(acme_session, IN_DAY - timedelta(days=1))  # the day before: not counted
    return {"acme": acme, "personal": personal}


def test_each_active_workspace_has_its_figures_busiest_first(tenants):
    report = daily_report_build(day=DAY, now=NOW)

    assert report.active_workspaces == 2
    acme, personal = report.workspaces
    assert (acme.workspace_id, acme.messages, acme.questions, acme.unanswered) == (tenants["acme"].pk, 6, 3, 1)
    assert (acme.documents, acme.bytes) == (2, 15)
    assert (personal.workspace_id, personal.messages, personal.unanswered, personal.documents) == (
        tenants["personal"].pk,
        2,
        1,
        0,
    )
    assert report.counts()["active_workspaces"] == 2


def test_only_the_busiest_are_listed_and_the_rest_counted(tenants):
    start = datetime(2026, 11, 20, tzinfo=UTC)
    answers = ChatMessage.objects.filter(created_at__gte=start, sender=ChatMessage.Sender.BOT)
    shown, total = workspace_days(start=start, end=start + timedelta(days=1), unanswered=_unanswered(answers), limit=1)
    assert [w.workspace_id for w in shown] == [tenants["acme"].pk] and total == 2


def test_the_email_shows_the_workspace_section(tenants):
    daily_report_send(now=NOW, recipients=["ops@example.com"])
    [message] = mail.outbox
    assert "Workspaces (2 with messages)" in message.body
    assert f"Acme <support> (id {tenants['acme'].pk}): 6 messages (3 questions), 1 unanswered; 2 documents" in (
        message.body
    )
    assert isinstance(message, EmailMultiAlternatives)
    html = message.alternatives[0][0]
    assert isinstance(html, str)
    assert 'aria-label="Workspaces"' in html and "Acme &lt;support&gt;" in html and "<support>" not in html
