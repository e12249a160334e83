"""The daily report's per-workspace section: each workspace's messages and unanswered questions of
the day, with its documents and their size. The report goes to operators (``REPORT_RECIPIENTS``,
``ADMINS`` or active staff), never to a workspace's members, so it may name every workspace."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q, QuerySet

from chat.models import ChatMessage
from workspaces.models import Workspace
from workspaces.usage import workspaces_documents

TOP_WORKSPACES = 20  # the busiest of the day; the rest are counted, not listed


@dataclass(frozen=True)
class WorkspaceDay:
    workspace_id: int
    name: str
    messages: int
    questions: int
    unanswered: int
    documents: int
    bytes: int


def workspace_days(
    *, start: datetime, end: datetime, unanswered: QuerySet[ChatMessage], limit: int = TOP_WORKSPACES
) -> tuple[list[WorkspaceDay], int]:
    """The day's busiest workspaces (by messages) and how many workspaces had messages in all.
    ``unanswered`` is the report's selection of the day's unanswered answers."""
    rows = list(
        ChatMessage.objects.filter(created_at__gte=start, created_at__lt=end)
        .values("session__workspace_id")
        .annotate(
            messages=Count("id"),
            questions=Count("id", filter=Q(sender=ChatMessage.Sender.USER)),
            unanswered=Count("id", filter=Q(id__in=unanswered.values("id"))),
        )
        .order_by("-messages", "session__workspace_id")
    )
    shown = rows[:limit]
    ids = [row["session__workspace_id"] for row in shown]
    names = dict(Workspace.objects.filter(pk__in=ids).values_list("pk", "name"))
    documents = workspaces_documents(workspace_ids=ids)
    days = [
        WorkspaceDay(
            workspace_id=pk,
            name=names.get(pk, "?"),
            messages=row["messages"],
            questions=row["questions"],
            unanswered=row["unanswered"],
            documents=documents.get(pk, {}).get("documents", 0),
            bytes=documents.get(pk, {}).get("bytes", 0),
        )
        for pk, row in zip(ids, shown, strict=True)
    ]
    return days, len(rows)
