"""Per-workspace quotas (DESIGN §8): how many documents, how many bytes of their text, and how
many messages a day across the workspace's members.

Each check runs in the transaction that makes the write, so concurrent writes cannot overshoot:
document writes lock the workspace's row (``select_for_update``; SQLite's IMMEDIATE transactions
serialise writers anyway), messages claim a per-workspace counter with a conditional UPDATE, as
the per-user daily quota does (``chat.services``). The shared knowledge base has no quota.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta

from django.db import transaction
from django.db.models import Case, F, OuterRef, Q, Subquery, Value, When
from django.utils import timezone

from chat.models import ChatMessage, WorkspaceDailyMessageCount
from rag.ingestion.sanitize import strip_markup
from rag.models import Document
from rag.services.ingestion import DocumentInput, IngestResult, document_ingest, documents_ingest
from utils.exceptions import PermissionDeniedError, Throttled
from workspaces.models import Workspace
from workspaces.usage import workspaces_documents


class DocumentQuotaExceeded(PermissionDeniedError):
    code = "document_quota_exceeded"
    default_detail = "The workspace has reached its number of documents."


class StorageQuotaExceeded(PermissionDeniedError):
    # 403 like the document quota, not 413: the request is acceptable in itself (a smaller
    # workspace would take it); what refuses it is the workspace's plan.
    code = "storage_quota_exceeded"
    default_detail = "The workspace has reached its storage for documents."


def text_bytes(content: str) -> int:
    """The bytes ``content`` will take once stored (ingestion strips markup first)."""
    return len(strip_markup(content).encode())


def _usage(workspace_id: int) -> tuple[int, int]:
    """The workspace's number of documents and total bytes of their text."""
    row = workspaces_documents(workspace_ids=[workspace_id]).get(workspace_id, {"documents": 0, "bytes": 0})
    return row["documents"], row["bytes"]


def _existing(item: DocumentInput, document: Document | None) -> Document | None:
    """The document a write replaces (as ingestion matches it: by id, else by source in the workspace)."""
    if document is not None or not item.source:
        return document
    return Document.objects.filter(workspace=item.workspace_id, source=item.source).first()


def _check(workspace: Workspace, writes: Sequence[tuple[DocumentInput, Document | None]]) -> None:
    """Refuse ``writes`` if they would take the workspace past its documents or bytes quota."""
    count, size = _usage(workspace.pk)
    replaced: dict[int, int] = {}
    sources: set[str] = set()
    added = 0
    new_bytes = 0
    for item, document in writes:
        existing = _existing(item, document)
        if existing is not None:
            replaced.setdefault(existing.pk, len(existing.content.encode()))
        elif not (item.source and item.source in sources):  # the same file twice in a batch is one document
            added += 1
        if item.source:
            sources.add(item.source)
        new_bytes += text_bytes(item.content)
    if added and count + added > workspace.max_documents:
        raise DocumentQuotaExceeded(
            f"The workspace may hold {workspace.max_documents} documents; it has {count} and this adds {added}."
        )
    total = size - sum(replaced.values()) + new_bytes
    if total > workspace.max_bytes and total > size:  # a write that shrinks an over-quota workspace is fine
        raise StorageQuotaExceeded(
            f"The workspace may hold {workspace.max_bytes} bytes of text; this would make {total}."
        )


def _locked(workspace_id: int) -> Workspace:
    return Workspace.objects.select_for_update().get(pk=workspace_id)


def document_ingest_within_quota(*, item: DocumentInput, document: Document | None = None) -> IngestResult:
    """``document_ingest`` for a workspace's document, refused with a 403 past the workspace's quotas.

    The workspace row stays locked until the write commits: a concurrent write to the same workspace
    waits and then counts this one. That includes the embedding, the price of never overshooting.
    """
    if item.workspace_id is None:
        return document_ingest(item=item, document=document)
    with transaction.atomic():
        _check(_locked(item.workspace_id), [(item, document)])
        return document_ingest(item=item, document=document)


def documents_ingest_within_quota(*, items: Sequence[DocumentInput]) -> list[IngestResult]:
    """``documents_ingest`` of one workspace's documents, all or none within its quotas."""
    workspaces = {item.workspace_id for item in items}
    if len(workspaces) > 1:
        raise ValueError("A batch is written to one workspace.")
    workspace_id = next(iter(workspaces), None)
    if workspace_id is None:
        return documents_ingest(items=items)
    with transaction.atomic():
        _check(_locked(workspace_id), [(item, None) for item in items])
        return documents_ingest(items=items)


# --- messages per day --------------------------------------------------------------------------


_ENOUGH = 1_000_000  # the first count reads at most this many of today's messages (above any plan's quota)


def _next_midnight(now: datetime) -> datetime:
    return datetime.combine(now.date(), time.min, tzinfo=now.tzinfo) + timedelta(days=1)


def workspace_message_claim(*, workspace_id: int) -> None:
    """Count one more message against the workspace's daily quota, or raise (429
    ``workspace_message_quota_exceeded``). Call in the transaction that stores the message: a
    rolled-back send gives its place back, and parallel sends cannot overshoot (see
    ``chat.services._quota_claim``, whose counter this mirrors per workspace). The quota is read in
    the same statement, so a limit changed a moment ago applies at once."""
    now = timezone.now()
    today = now.date()
    quota = Subquery(Workspace.objects.filter(pk=OuterRef("workspace_id")).values("max_messages_per_day")[:1])
    counter = WorkspaceDailyMessageCount.objects.filter(workspace_id=workspace_id)
    claimable = counter.filter(~Q(day=today) | Q(count__lt=quota))
    for _ in range(2):
        if claimable.update(count=Case(When(day=today, then=F("count") + 1), default=Value(1)), day=today):
            return
        if counter.exists():
            break
        # The workspace's first send since the counter existed: start from what its members sent today.
        midnight = _next_midnight(now) - timedelta(days=1)
        sent = ChatMessage.objects.filter(
            session__workspace_id=workspace_id, sender=ChatMessage.Sender.USER, created_at__gte=midnight
        )[:_ENOUGH].count()
        WorkspaceDailyMessageCount.objects.bulk_create(
            [WorkspaceDailyMessageCount(workspace_id=workspace_id, day=today, count=sent)], ignore_conflicts=True
        )
    limit = Workspace.objects.filter(pk=workspace_id).values_list("max_messages_per_day", flat=True).first()
    raise Throttled(
        f"The workspace's daily quota of {limit} messages is reached; it resets at 00:00 UTC.",
        code="workspace_message_quota_exceeded",
        retry_after=max(1, int((_next_midnight(now) - now).total_seconds())),
    )
