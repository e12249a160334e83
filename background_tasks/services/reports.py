"""The daily report: the previous UTC day's usage, emailed as plain text and HTML."""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import TruncDate
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import mark_safe

from background_tasks.charts import bar_chart_svg
from background_tasks.models import JobRun
from background_tasks.services.alerts import admin_emails
from background_tasks.services.report_workspaces import WorkspaceDay, workspace_days
from chat.models import ChatMessage, ChatSession
from rag.providers.extractive import NO_INFORMATION_ANSWER
from users.models import User
from utils import stats

logger = logging.getLogger(__name__)

CHART_DAYS = 14
TOP_UNANSWERED = 10
QUESTION_CHARS = 200
TOP_COMMENTS = 20
COMMENT_CHARS = 300
# Older answers carry no ``answer_status``: one that opens with the no-information sentence is an
# abstention even when it lists sources (the extractive answerer lists what it retrieved).
NO_INFORMATION_PREFIX = NO_INFORMATION_ANSWER.split(" about ")[0]  # "I don't have specific information"


@dataclass(frozen=True)
class UnansweredQuestion:
    question: str
    count: int


@dataclass(frozen=True)
class NegativeComment:
    question: str
    comment: str
    rated_at: datetime


@dataclass(frozen=True)
class JobFailure:
    job_id: str
    started_at: datetime
    error: str


@dataclass
class DailyReport:
    day: date
    new_users: int = 0
    verified_new_users: int = 0  # of the day's new users, those who have verified their email since
    active_users: int = 0
    sessions_created: int = 0
    messages: int = 0
    questions: int = 0
    answers: int = 0
    unanswered: int = 0
    degraded: int = 0
    feedback_up: int = 0
    feedback_down: int = 0
    latency_p50_ms: int | None = None
    latency_p95_ms: int | None = None
    unanswered_reasons: dict[str, int] = field(default_factory=dict)  # abstain_reason -> answers
    top_unanswered: list[UnansweredQuestion] = field(default_factory=list)
    negative_comments: list[NegativeComment] = field(default_factory=list)
    job_failures: list[JobFailure] = field(default_factory=list)
    failures_until: datetime | None = None  # job failures are those of the 24 hours before this
    messages_per_day: list[tuple[date, int]] = field(default_factory=list)
    workspaces: list[WorkspaceDay] = field(default_factory=list)  # the busiest of the day
    active_workspaces: int = 0  # workspaces with messages that day, listed or not

    def counts(self) -> dict[str, int]:
        names = ["new_users", "verified_new_users", "active_users", "sessions_created", "messages", "questions"]
        names += ["answers", "unanswered", "degraded", "feedback_up", "feedback_down"]
        names += ["latency_p50_ms", "latency_p95_ms", "active_workspaces"]
        values = {name: getattr(self, name) for name in names}
        values["negative_comments"] = len(self.negative_comments)
        values["job_failures"] = len(self.job_failures)
        return {name: value for name, value in values.items() if value is not None}


def percentile(values: Sequence[float], p: float) -> int | None:
    """Nearest-rank percentile in whole milliseconds; None for no values."""
    value = stats.percentile(values, p)
    return None if value is None else round(value)


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _normalise(question: str) -> str:
    return re.sub(r"\s+", " ", question).strip().rstrip("?!. ").casefold()


def _unanswered(answers: QuerySet[ChatMessage]) -> QuerySet[ChatMessage]:
    """Answers that gave no answer: ``answer_status`` "abstained"; for older answers without that
    key, no sources, or a text that opens with the no-information sentence."""
    no_information = Q(content__startswith=NO_INFORMATION_PREFIX) | Q(
        content__startswith=NO_INFORMATION_PREFIX.replace("'", "\u2019")
    )
    legacy = Q(metadata__sources=[]) | ~Q(metadata__has_key="sources") | no_information
    return answers.filter(Q(metadata__answer_status="abstained") | (~Q(metadata__has_key="answer_status") & legacy))


def _unanswered_reasons(unanswered: QuerySet[ChatMessage]) -> dict[str, int]:
    reasons: Counter[str] = Counter()
    for reason in unanswered.values_list("metadata__abstain_reason", flat=True):
        reasons[str(reason) if reason else "unspecified"] += 1
    return dict(sorted(reasons.items(), key=lambda item: (-item[1], item[0])))


def _preceding_question() -> Subquery:
    """For annotating bot messages: the user question just before each one in its session."""
    asked = ChatMessage.objects.filter(
        session_id=OuterRef("session_id"), sender=ChatMessage.Sender.USER, id__lt=OuterRef("id")
    ).order_by("-id")
    return Subquery(asked.values("content")[:1])


def _negative_comments(start: datetime, end: datetime) -> list[NegativeComment]:
    """The comments left with a thumbs-down during the day, oldest first."""
    rated = ChatMessage.objects.filter(
        feedback_at__gte=start, feedback_at__lt=end, feedback_rating=ChatMessage.Rating.DOWN
    ).exclude(feedback_comment="")
    rows = rated.annotate(question=_preceding_question()).order_by("feedback_at", "id")[:TOP_COMMENTS]
    return [
        NegativeComment(
            question=" ".join((row.question or "").split())[:QUESTION_CHARS],
            comment=" ".join(row.feedback_comment.split())[:COMMENT_CHARS],
            rated_at=row.feedback_at or start,
        )
        for row in rows
    ]


def _top_unanswered(unanswered: QuerySet[ChatMessage]) -> list[UnansweredQuestion]:
    """The user questions that preceded unanswered answers, most frequent first."""
    questions = unanswered.annotate(question=_preceding_question()).values_list("question", flat=True)
    counts: Counter[str] = Counter()
    shown: dict[str, str] = {}
    for question in questions:
        if not question:
            continue
        key = _normalise(question)
        counts[key] += 1
        shown.setdefault(key, " ".join(question.split())[:QUESTION_CHARS])
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_UNANSWERED]
    return [UnansweredQuestion(shown[key], count) for key, count in ranked]


def _latencies(answers: QuerySet[ChatMessage]) -> list[float]:
    values = answers.values_list("metadata__latency_ms", flat=True)
    return [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]


def _messages_per_day(day: date) -> list[tuple[date, int]]:
    first = day - timedelta(days=CHART_DAYS - 1)
    start, end = _day_bounds(first)[0], _day_bounds(day)[1]
    rows = (
        ChatMessage.objects.filter(created_at__gte=start, created_at__lt=end)
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day")
        .annotate(n=Count("id"))
        .order_by()
    )
    by_day = {row["day"]: row["n"] for row in rows}
    return [(first + timedelta(days=i), by_day.get(first + timedelta(days=i), 0)) for i in range(CHART_DAYS)]


def _job_failures(now: datetime) -> list[JobFailure]:
    failed = JobRun.objects.filter(status=JobRun.Status.FAILED, started_at__gte=now - timedelta(days=1))
    failures = []
    for run in failed.order_by("started_at")[:50]:
        lines = [line for line in run.error.splitlines() if line.strip()]
        failures.append(JobFailure(run.job_id, run.started_at, lines[-1][:300] if lines else ""))
    return failures


def daily_report_build(*, day: date, now: datetime | None = None) -> DailyReport:
    """Usage of one UTC day; job failures are those of the 24 hours before ``now``."""
    now = now or timezone.now()
    start, end = _day_bounds(day)
    in_day = {"created_at__gte": start, "created_at__lt": end}
    messages = ChatMessage.objects.filter(**in_day)
    answers = messages.filter(sender=ChatMessage.Sender.BOT)
    unanswered = _unanswered(answers)
    joined = User.objects.filter(date_joined__gte=start, date_joined__lt=end)
    feedback = ChatMessage.objects.filter(feedback_at__gte=start, feedback_at__lt=end).aggregate(
        up=Count("id", filter=Q(feedback_rating=ChatMessage.Rating.UP)),
        down=Count("id", filter=Q(feedback_rating=ChatMessage.Rating.DOWN)),
    )
    latencies = _latencies(answers)
    workspaces, active_workspaces = workspace_days(start=start, end=end, unanswered=unanswered)
    return DailyReport(
        day=day,
        new_users=joined.count(),
        verified_new_users=joined.filter(is_verified=True).count(),
        active_users=messages.filter(sender=ChatMessage.Sender.USER).values("session__user_id").distinct().count(),
        sessions_created=ChatSession.objects.filter(**in_day).count(),
        messages=messages.count(),
        questions=messages.filter(sender=ChatMessage.Sender.USER).count(),
        answers=answers.count(),
        unanswered=unanswered.count(),
        degraded=answers.filter(metadata__degraded=True).count(),
        feedback_up=feedback["up"],
        feedback_down=feedback["down"],
        latency_p50_ms=percentile(latencies, 50),
        latency_p95_ms=percentile(latencies, 95),
        unanswered_reasons=_unanswered_reasons(unanswered),
        top_unanswered=_top_unanswered(unanswered),
        negative_comments=_negative_comments(start, end),
        job_failures=_job_failures(now),
        failures_until=now,
        messages_per_day=_messages_per_day(day),
        workspaces=workspaces,
        active_workspaces=active_workspaces,
    )


def daily_report_preview(*, day: date, now: datetime | None = None) -> tuple[str, str]:
    """Subject and plain-text body of any day's report, sent to no one (``run_job ... --date``).

    A past day's job failures are those of that day itself (the 24 hours before its end).
    """
    now = now or timezone.now()
    report = daily_report_build(day=day, now=min(now, _day_bounds(day)[1]))
    subject, text, _ = daily_report_render(report)
    return subject, text


def report_recipients() -> list[str]:
    """``REPORT_RECIPIENTS``, else the admins (``ADMINS``, else active staff)."""
    return list(settings.REPORT_RECIPIENTS) or admin_emails()


def daily_report_render(report: DailyReport) -> tuple[str, str, str]:
    """Subject, plain-text body and HTML body (with the inline SVG chart and its numbers)."""
    points = [(f"{d:%d}", n) for d, n in report.messages_per_day]
    chart = bar_chart_svg(points, title=f"Messages per day, last {CHART_DAYS} days")
    context = {"report": report, "chart_svg": mark_safe(chart), "base_url": settings.PUBLIC_BASE_URL}  # noqa: S308 (escaped by bar_chart_svg)
    subject = f"Daily report {report.day:%Y-%m-%d}: {report.messages} messages, {report.unanswered} unanswered"
    text = render_to_string("background_tasks/daily_report.txt", context)
    html = render_to_string("background_tasks/daily_report.html", context)
    return subject, text, html


def daily_report_send(
    *, day: date | None = None, now: datetime | None = None, recipients: list[str] | None = None
) -> dict[str, int]:
    """Build the report of ``day`` (default: yesterday, UTC) and email it; returns its counts."""
    now = now or timezone.now()
    day = day or (now.astimezone(UTC).date() - timedelta(days=1))
    report = daily_report_build(day=day, now=now)
    to = recipients if recipients is not None else report_recipients()
    counts = report.counts()
    if not to:
        logger.warning("Daily report for %s not sent: no REPORT_RECIPIENTS, ADMINS or staff with an email", day)
        return {"recipients": 0, **counts}
    subject, text, html = daily_report_render(report)
    message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, to)
    message.attach_alternative(html, "text/html")
    message.send(fail_silently=False)
    logger.info("Daily report for %s sent to %d recipient(s)", day, len(to))
    return {"recipients": len(to), **counts}
