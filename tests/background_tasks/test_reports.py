"""The daily report: counts on a prepared data set, recipients, and an email with text and HTML + SVG."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.core.management import CommandError, call_command

from background_tasks.charts import bar_chart_svg
from background_tasks.models import JobRun
from background_tasks.services.reports import (
    daily_report_build,
    daily_report_preview,
    daily_report_send,
    percentile,
    report_recipients,
)
from tests.factories import BotMessageFactory, ChatMessageFactory, ChatSessionFactory, JobRunFactory, UserFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
DAY = date(2026, 11, 20)
IN_DAY = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
EARLIER = datetime(2026, 11, 17, 12, 0, tzinfo=UTC)


def _answer(session, question, *, at, sources=True, degraded=False, latency=100, rating=None):
    ChatMessageFactory.create(session=session, content=question, created_at=at)
    metadata = {"sources": [{"document_id": 1}] if sources else [], "degraded": degraded, "latency_ms": latency}
    feedback = {"feedback_rating": rating, "feedback_at": at + timedelta(minutes=1)} if rating else {}
    return BotMessageFactory.create(
        session=session, created_at=at + timedelta(seconds=1), metadata=metadata, **feedback
    )


@pytest.fixture
def usage():
    """Yesterday (2026-11-20): 2 new users, 3 sessions by 2 users, 10 questions and 10 answers."""
    ann = UserFactory.create(date_joined=IN_DAY)
    bob = UserFactory.create(date_joined=IN_DAY + timedelta(hours=13, minutes=59))
    UserFactory.create(date_joined=IN_DAY - timedelta(days=1))  # joined the day before
    idle = UserFactory.create(date_joined=IN_DAY + timedelta(hours=2))  # counted as new, not active
    assert idle
    first = ChatSessionFactory.create(user=ann, created_at=IN_DAY)
    second = ChatSessionFactory.create(user=ann, created_at=IN_DAY)
    third = ChatSessionFactory.create(user=bob, created_at=IN_DAY)
    ChatSessionFactory.create(user=bob, created_at=EARLIER)
    at = IN_DAY
    for latency in (100, 200, 300, 400, 500, 600, 700):
        at += timedelta(minutes=5)
        _answer(first, f"Known question {latency}?", at=at, latency=latency, rating=1 if latency < 400 else None)
    _answer(
        second, "Do you sell <b>gift cards</b>?", at=at + timedelta(minutes=1), sources=False, latency=800, rating=-1
    )
    _answer(third, "do you sell <b>gift cards</b>", at=at + timedelta(minutes=2), sources=False, latency=900)
    _answer(third, "Where is the office?", at=at + timedelta(minutes=3), sources=False, degraded=True, latency=1000)
    for hours in (1, 2):
        ChatMessageFactory.create(session=first, created_at=EARLIER + timedelta(hours=hours))
    ChatMessageFactory.create(session=first, created_at=datetime(2026, 11, 21, 0, 0, tzinfo=UTC))  # today
    JobRunFactory.create(
        job_id="backup_data",
        status=JobRun.Status.FAILED,
        started_at=NOW - timedelta(hours=7),
        error="Tb\nOSError: disk full",
    )
    JobRunFactory.create(job_id="backup_data", status=JobRun.Status.FAILED, started_at=NOW - timedelta(hours=25))
    return {"ann": ann, "bob": bob}


def test_report_counts_on_a_prepared_day(usage):
    report = daily_report_build(day=DAY, now=NOW)
    assert (report.new_users, report.active_users, report.sessions_created) == (3, 2, 3)
    assert (report.messages, report.questions, report.answers) == (20, 10, 10)
    assert (report.unanswered, report.degraded) == (3, 1)
    assert (report.feedback_up, report.feedback_down) == (3, 1)
    assert (report.latency_p50_ms, report.latency_p95_ms) == (500, 1000)
    assert [(q.question, q.count) for q in report.top_unanswered] == [
        ("Do you sell <b>gift cards</b>?", 2),
        ("Where is the office?", 1),
    ]
    assert [(f.job_id, f.error) for f in report.job_failures] == [("backup_data", "OSError: disk full")]
    assert len(report.messages_per_day) == 14 and report.messages_per_day[-1] == (DAY, 20)
    assert report.messages_per_day[0][0] == DAY - timedelta(days=13)
    assert dict(report.messages_per_day)[date(2026, 11, 17)] == 2
    assert sum(n for _, n in report.messages_per_day) == 22


def test_report_email_has_a_text_part_and_an_html_part_with_svg_and_the_numbers(settings, usage):
    counts = daily_report_send(now=NOW, recipients=["ops@example.com"])
    assert counts["recipients"] == 1 and counts["messages"] == 20 and counts["unanswered"] == 3
    [message] = mail.outbox
    assert message.to == ["ops@example.com"] and "2026-11-20" in message.subject
    assert "Unanswered (no information):    3" in message.body
    assert "(2x) Do you sell <b>gift cards</b>?" in message.body  # plain text: not HTML-escaped
    assert isinstance(message, EmailMultiAlternatives)
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html" and isinstance(html, str)
    svg = re.search(r"<svg.*?</svg>", html, flags=re.S)
    assert svg is not None
    chart = ET.fromstring(svg.group(0))  # noqa: S314 (our own SVG)
    assert len(chart.findall("{http://www.w3.org/2000/svg}rect")) == 14
    table = re.search(r'<table[^>]*aria-label="Messages per day">(.*?)</table>', html, flags=re.S)
    assert table is not None
    assert re.findall(r'<td align="center">(\d+)</td>', table.group(1)) == [str(n) for _, n in counts_per_day()]
    assert "Do you sell &lt;b&gt;gift cards&lt;/b&gt;?" in html and "<b>gift" not in html  # user text escaped


def counts_per_day():
    return daily_report_build(day=DAY, now=NOW).messages_per_day


def test_recipients_are_the_setting_else_admins_else_active_staff(settings):
    staff = UserFactory.create(is_staff=True)
    UserFactory.create(is_staff=True, is_active=False)
    settings.REPORT_RECIPIENTS, settings.ADMINS = [], []
    assert report_recipients() == [staff.email]
    settings.ADMINS = [("Ann", "ann@example.com")]
    assert report_recipients() == ["ann@example.com"]
    settings.REPORT_RECIPIENTS = ["reports@example.com", "cto@example.com"]
    assert report_recipients() == ["reports@example.com", "cto@example.com"]


def test_no_recipients_sends_nothing_and_says_so(settings, caplog):
    settings.REPORT_RECIPIENTS, settings.ADMINS = [], []
    assert daily_report_send(now=NOW)["recipients"] == 0
    assert not mail.outbox and "not sent" in caplog.text


def test_percentile_is_nearest_rank():
    assert percentile([], 50) is None
    assert percentile([300, 100, 200], 50) == 200
    assert percentile(list(range(1, 101)), 95) == 95
    assert percentile([7], 95) == 7


def test_chart_bars_are_proportional_and_labels_escaped():
    svg = bar_chart_svg([("a<b", 2), ("x", 4), ("y", 0)], title="T & co", height=124)
    root = ET.fromstring(svg)  # noqa: S314
    heights = [float(r.get("height", "0")) for r in root.findall("{http://www.w3.org/2000/svg}rect")]
    assert heights == [42.0, 84.0, 0.0]
    assert "a&lt;b" in svg and "T &amp; co" in svg


PAST = date(2026, 11, 10)
PAST_AT = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
SOURCES = [{"document_id": 7, "title": "Renting", "source": "guides/renting.md"}]
NO_INFORMATION = "I don't have specific information about this topic. These pages came closest: Renting [1]."


def _exchange(session, question, answer, metadata, *, at, rating=None, comment="", rated_at=None):
    ChatMessageFactory.create(session=session, content=question, created_at=at)
    feedback = {}
    if rating:
        feedback = {"feedback_rating": rating, "feedback_comment": comment, "feedback_at": rated_at or at}
    BotMessageFactory.create(
        session=session, content=answer, created_at=at + timedelta(seconds=1), metadata=metadata, **feedback
    )


@pytest.fixture
def classified():
    """2026-11-10: answers with and without ``answer_status``, thumbs-down comments, 3 new users (1 verified)."""
    ann = UserFactory.create(date_joined=PAST_AT, is_verified=True)
    UserFactory.create(date_joined=PAST_AT + timedelta(hours=3), is_verified=False)
    UserFactory.create(date_joined=PAST_AT + timedelta(hours=4), is_verified=False)
    UserFactory.create(date_joined=PAST_AT - timedelta(days=1), is_verified=True)  # the day before
    session = ChatSessionFactory.create(user=ann, created_at=PAST_AT)
    at = PAST_AT + timedelta(minutes=1)
    answered = {"sources": SOURCES, "answer_status": "answered", "latency_ms": 100}
    _exchange(session, "How do I rent a bike?", "Scan the dock code [1].", answered, at=at)
    # Legacy (no answer_status): the no-information sentence with sources is unanswered.
    legacy = {"sources": SOURCES, "latency_ms": 100}
    _exchange(session, "Do you sell gift cards?", NO_INFORMATION, legacy, at=at + timedelta(minutes=1))
    abstained = {"sources": SOURCES, "answer_status": "abstained", "abstain_reason": "low_relevance"}
    _exchange(
        session, "Who is the CEO?", "I can't find that in the help centre.", abstained, at=at + timedelta(minutes=2)
    )
    # answer_status wins over the legacy rule: answered even without sources.
    no_sources = {"sources": [], "answer_status": "answered"}
    _exchange(session, "Hello there", "Hello! Ask me about renting.", no_sources, at=at + timedelta(minutes=3))
    _exchange(
        session,
        "How long do refunds take?",
        "Refunds take 5 days [1].",
        legacy,
        at=at + timedelta(minutes=4),
        rating=-1,
        comment="Wrong:\n it was  14 days for me",
    )
    _exchange(session, "Opening hours?", "9 to 5 [1].", legacy, at=at + timedelta(minutes=5), rating=-1)
    _exchange(session, "Is parking free?", "Yes [1].", legacy, at=at + timedelta(minutes=6), rating=1, comment="ok")
    _exchange(
        session,
        "Do you deliver?",
        "No [1].",
        legacy,
        at=at + timedelta(minutes=7),
        rating=-1,
        comment="rated the next day",
        rated_at=datetime(2026, 11, 11, 9, 0, tzinfo=UTC),
    )
    return session


def test_abstentions_count_as_unanswered_with_or_without_answer_status(classified):
    report = daily_report_build(day=PAST, now=datetime(2026, 11, 11, 8, 0, tzinfo=UTC))
    assert (report.answers, report.unanswered) == (8, 2)
    assert [q.question for q in report.top_unanswered] == ["Do you sell gift cards?", "Who is the CEO?"]
    assert report.unanswered_reasons == {"low_relevance": 1, "unspecified": 1}
    assert (report.new_users, report.verified_new_users) == (3, 1)
    assert (report.feedback_up, report.feedback_down) == (1, 2)
    assert [(c.question, c.comment) for c in report.negative_comments] == [
        ("How long do refunds take?", "Wrong: it was 14 days for me")
    ]
    counts = report.counts()
    assert counts["unanswered"] == 2 and counts["verified_new_users"] == 1 and counts["negative_comments"] == 1


def test_the_report_text_shows_verified_users_reasons_and_comments(classified):
    subject, text = daily_report_preview(day=PAST, now=datetime(2026, 12, 1, 8, 0, tzinfo=UTC))
    assert subject == "Daily report 2026-11-10: 16 messages, 2 unanswered"
    assert "New users:                      3 (1 verified their email)" in text
    assert "Unanswered (no information):    2 (low_relevance: 1, unspecified: 1)" in text
    assert "1. (1x) Do you sell gift cards?" in text and "2. (1x) Who is the CEO?" in text
    assert '"Wrong: it was 14 days for me" (on: How long do refunds take?)' in text
    assert "rated the next day" not in text and '"ok"' not in text
    assert "Job failures in the 24 hours before 2026-11-11 00:00 UTC" in text


def test_run_job_date_previews_a_past_day_without_sending_or_recording(classified, settings):
    settings.REPORT_RECIPIENTS = ["ops@example.com"]
    JobRunFactory.create(
        job_id="backup_data", status=JobRun.Status.FAILED, started_at=PAST_AT, error="OSError: disk full"
    )
    runs = JobRun.objects.count()
    out = io.StringIO()
    call_command("run_job", "send_daily_report", "--date", "2026-11-10", stdout=out)
    text = out.getvalue()
    assert text.startswith("Subject: Daily report 2026-11-10: 16 messages, 2 unanswered")
    assert "Daily report for Tuesday 10 November 2026 (UTC)" in text
    assert "Unanswered (no information):    2" in text and "- backup_data at 2026-11-10 09:00 UTC" in text
    assert not mail.outbox and JobRun.objects.count() == runs


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["send_daily_report", "--date", "10/11/2026"], "is not a date"),
        (["send_daily_report", "--date", "2999-01-01"], "in the future"),
        (["backup_data", "--date", "2026-11-10"], "only to send_daily_report"),
    ],
)
def test_run_job_date_rejects_bad_input(args, error):
    with pytest.raises(CommandError, match=error):
        call_command("run_job", *args, stdout=io.StringIO())


def test_the_html_part_lists_the_comments_escaped_and_the_verified_users(classified):
    ChatMessageFactory.create(session=classified, content="Is <i>this</i> right?", created_at=PAST_AT)
    BotMessageFactory.create(
        session=classified,
        created_at=PAST_AT + timedelta(seconds=1),
        feedback_rating=-1,
        feedback_comment="<script>no</script>",
        feedback_at=PAST_AT + timedelta(hours=1),
    )
    daily_report_send(day=PAST, now=datetime(2026, 11, 11, 8, 0, tzinfo=UTC), recipients=["ops@example.com"])
    [message] = mail.outbox
    assert isinstance(message, EmailMultiAlternatives)
    [(html, _)] = message.alternatives
    assert isinstance(html, str)
    assert '<td>&hellip; of whom verified their email</td><td align="right">1</td>' in html
    assert "&ldquo;&lt;script&gt;no&lt;/script&gt;&rdquo;" in html and "<script>" not in html
    assert "on: Is &lt;i&gt;this&lt;/i&gt; right?" in html
    assert "low_relevance: 1, unspecified: 1" in html
