"""Usage figures (``GET /api/usage/`` and the daily report): messages and tokens per user and per
workspace, documents and bytes per workspace. Each figure is one aggregate query, grouped by
workspace where there are several, never a loop over rows.

Messages count what users sent (their questions); tokens sum what answers consumed, as the
generator reported it in ``ChatMessage.metadata["usage"]["total_tokens"]`` (the extractive
answerer reports none). Days and months are UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from django.conf import settings
from django.db.models import BigIntegerField, Count, Func, Q, QuerySet, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from chat.models import ChatMessage
from rag.models import Document
from users.models import User
from workspaces.models import Membership, Workspace


class OctetLength(Func):
    """The UTF-8 size of a text column in bytes (what ``Workspace.max_bytes`` limits)."""

    function = "OCTET_LENGTH"
    output_field = BigIntegerField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(compiler, connection, template="LENGTH(CAST(%(expressions)s AS BLOB))", **extra)


@dataclass(frozen=True)
class Period:
    """The UTC day and month that ``now`` falls in."""

    day_start: datetime
    month_start: datetime

    @classmethod
    def of(cls, now: datetime | None = None) -> Period:
        today = (now or timezone.now()).astimezone(UTC).date()
        return cls(
            day_start=datetime.combine(today, time.min, tzinfo=UTC),
            month_start=datetime.combine(today.replace(day=1), time.min, tzinfo=UTC),
        )

    @property
    def today(self) -> date:
        return self.day_start.date()


def _tokens() -> Any:
    return Cast(KT("metadata__usage__total_tokens"), BigIntegerField())


def _message_figures(period: Period) -> dict[str, Any]:
    """Aggregates over messages of this month: questions and answer tokens, today and this month."""
    question, answer = Q(sender=ChatMessage.Sender.USER), Q(sender=ChatMessage.Sender.BOT)
    today = Q(created_at__gte=period.day_start)
    return {
        "messages_today": Count("id", filter=question & today),
        "messages_month": Count("id", filter=question),
        "tokens_today": Coalesce(Sum(_tokens(), filter=answer & today), 0),
        "tokens_month": Coalesce(Sum(_tokens(), filter=answer), 0),
    }


def _this_month(period: Period) -> QuerySet[ChatMessage]:
    return ChatMessage.objects.filter(created_at__gte=period.month_start)


def user_usage(*, user: User, period: Period) -> dict[str, int]:
    """The user's own messages and tokens, in every workspace."""
    figures = _this_month(period).filter(session__user=user).aggregate(**_message_figures(period))
    return {name: int(value) for name, value in figures.items()}


def workspaces_usage(*, workspace_ids: Iterable[int], period: Period) -> dict[int, dict[str, int]]:
    """Per workspace, across all its members: messages and tokens, documents and their bytes."""
    ids = list(workspace_ids)
    usage = {pk: dict.fromkeys(["documents", "bytes", *_message_figures(period)], 0) for pk in ids}
    messages = (
        _this_month(period)
        .filter(session__workspace_id__in=ids)
        .values("session__workspace_id")
        .annotate(**_message_figures(period))
        .order_by()
    )
    for row in messages:
        figures: dict[str, Any] = dict(row)
        usage[figures.pop("session__workspace_id")].update({k: int(v) for k, v in figures.items()})
    for pk, figures in workspaces_documents(workspace_ids=ids).items():
        usage[pk].update(figures)
    return usage


def workspaces_documents(*, workspace_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """Documents and their bytes per workspace (one grouped query); workspaces with none are absent."""
    rows = (
        Document.objects.filter(workspace_id__in=list(workspace_ids))
        .values("workspace_id")
        .annotate(documents=Count("id"), bytes=Coalesce(Sum(OctetLength("content")), 0))
        .order_by()
    )
    return {row["workspace_id"]: {"documents": int(row["documents"]), "bytes": int(row["bytes"])} for row in rows}


def usage_for(*, user: User, now: datetime | None = None) -> dict[str, Any]:
    """``GET /api/usage/``: the caller's own figures and, for each workspace they own or administer,
    the workspace's figures and limits. A plain member sees only their own numbers."""
    period = Period.of(now)
    managed = list(
        Membership.objects.filter(user=user, role__in=[Membership.Role.OWNER, Membership.Role.ADMIN])
        .select_related("workspace")
        .order_by("workspace__name", "workspace_id")
    )
    figures = workspaces_usage(workspace_ids=[m.workspace_id for m in managed], period=period)
    return {
        "today": period.today,
        "month_start": period.month_start.date(),
        "user": user_usage(user=user, period=period) | {"max_messages_per_day": settings.CHAT_DAILY_QUOTA},
        "workspaces": [_workspace_entry(m.workspace, m.role, figures[m.workspace_id]) for m in managed],
    }


def _workspace_entry(workspace: Workspace, role: str, figures: dict[str, int]) -> dict[str, Any]:
    limits = {
        "max_documents": workspace.max_documents,
        "max_bytes": workspace.max_bytes,
        "max_messages_per_day": workspace.max_messages_per_day,
    }
    return {"id": workspace.pk, "name": workspace.name, "role": role, **figures, "limits": limits}
