"""Chat retention: delete messages older than ``CHAT_RETENTION_DAYS``, then the sessions that
this emptied, then sessions that never got a message and saw no activity for a day (opening
sessions costs nothing, so without this they would pile up for ever)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from chat.history import history_changed_for_everyone
from chat.models import ChatMessage, ChatSession

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000  # rows per DELETE: each transaction stays short, so a big table is never locked for long
EMPTY_SESSION_MAX_AGE = timedelta(days=1)  # since the last activity (creation or rename)


def _delete_emptied_sessions(session_ids: set[int]) -> int:
    # Lock the sessions first (PostgreSQL; SQLite serialises writers anyway): a message arriving
    # now waits for us instead of being swept away with a session we judged empty a moment ago.
    locked = list(
        ChatSession.objects.select_for_update().filter(id__in=session_ids).order_by("id").values_list("id", flat=True)
    )
    emptied = ChatSession.objects.filter(id__in=locked).exclude(
        Exists(ChatMessage.objects.filter(session_id=OuterRef("pk")))
    )
    _, by_model = emptied.delete()
    return by_model.get(ChatSession._meta.label, 0)


def _prune_batch(rows: list[tuple[int, int]]) -> tuple[int, int]:
    with transaction.atomic():
        _, by_model = ChatMessage.objects.filter(id__in=[message_id for message_id, _ in rows]).delete()
        sessions = _delete_emptied_sessions({session_id for _, session_id in rows})
    return by_model.get(ChatMessage._meta.label, 0), sessions


def chat_history_prune(
    *, retention_days: int, dry_run: bool = False, batch_size: int = BATCH_SIZE, now: datetime | None = None
) -> dict[str, int]:
    """Delete (or, dry, count) messages older than the cut-off and the sessions left empty."""
    if retention_days < 1:
        raise ValueError(f"CHAT_RETENTION_DAYS must be at least 1, got {retention_days}.")
    cutoff = (now or timezone.now()) - timedelta(days=retention_days)
    old = ChatMessage.objects.filter(created_at__lt=cutoff)
    idle = _idle_empty_sessions((now or timezone.now()) - EMPTY_SESSION_MAX_AGE)
    if dry_run:
        emptied = ChatSession.objects.filter(Exists(old.filter(session_id=OuterRef("pk")))).exclude(
            Exists(ChatMessage.objects.filter(session_id=OuterRef("pk"), created_at__gte=cutoff))
        )
        return {
            "messages_deleted": old.count(),
            "sessions_deleted": emptied.count(),
            "empty_sessions_deleted": idle.count(),
        }
    messages = sessions = 0
    while rows := list(old.values_list("id", "session_id")[:batch_size]):
        deleted_messages, deleted_sessions = _prune_batch(rows)
        messages += deleted_messages
        sessions += deleted_sessions
    empty = 0
    while ids := set(idle.values_list("id", flat=True)[:batch_size]):
        with transaction.atomic():
            deleted = _delete_emptied_sessions(ids)
        empty += deleted
        if not deleted:  # every one of them got a message meanwhile; never loop on a batch
            break
    if messages or empty:
        history_changed_for_everyone()
    logger.info(
        "Pruned %d messages and %d emptied sessions older than %s, and %d idle empty sessions",
        messages, sessions, cutoff, empty,
    )  # fmt: skip
    return {"messages_deleted": messages, "sessions_deleted": sessions, "empty_sessions_deleted": empty}


def _idle_empty_sessions(before: datetime) -> QuerySet[ChatSession]:
    """Sessions without a message whose last activity (creation, rename) is older than ``before``."""
    return ChatSession.objects.filter(updated_at__lt=before).exclude(
        Exists(ChatMessage.objects.filter(session_id=OuterRef("pk")))
    )
