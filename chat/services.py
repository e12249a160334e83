"""Chat workflows. A user's message is stored and committed before any provider is called, so a
failing provider never loses it; the answer is stored as a second step."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, Exists, F, Model, OuterRef, Q, QuerySet, Value, When
from django.utils import timezone
from redis.exceptions import RedisError

from background_tasks.locks import RedisLock
from chat.history import history_changed, history_changed_for_everyone
from chat.models import ChatMessage, ChatSession, DailyMessageCount, IdempotencyRecord
from rag.services.answering import Answer, answer_question, answer_stream
from rag.types import RetrievalScope, Turn
from users.models import User
from utils.batches import BATCH_SIZE, delete_in_batches
from utils.exceptions import Conflict, ServiceError, Throttled, ValidationFailed
from utils.metrics import record_message_sent
from utils.redis import redis_key
from workspaces.access import retrieval_scope
from workspaces.models import Workspace
from workspaces.quotas import workspace_message_claim
from workspaces.services import workspace_personal_get

logger = logging.getLogger(__name__)

IDEMPOTENCY_WINDOW = timedelta(hours=24)
TITLE_FROM_QUESTION_CHARS = 60


class AnswerUnavailable(ServiceError):
    status_code = 503
    code = "answer_unavailable"
    default_detail = (
        "Your message was saved, but no answer could be produced right now. Retry the request "
        "with the same Idempotency-Key to answer it without storing it twice."
    )


@dataclass(frozen=True)
class Received:
    """The stored user message, and the stored answer when this is a replay."""

    user_message: ChatMessage
    bot_message: ChatMessage | None
    record: IdempotencyRecord | None
    replayed: bool
    user_id: int
    # What answering it may read: the session's workspace (and the shared base unless it is off).
    scope: RetrievalScope


# --- sessions ---------------------------------------------------------------------------------


@transaction.atomic
def session_create(*, user: User, title: str = "", workspace: Workspace | None = None) -> ChatSession:
    """Open a session in ``workspace`` (the caller has checked membership); default: personal."""
    workspace = workspace or workspace_personal_get(user=user)
    session = ChatSession.objects.create(user=user, workspace=workspace, title=title.strip())
    history_changed(user.pk)
    return session


@transaction.atomic
def session_rename(*, session: ChatSession, title: str) -> ChatSession:
    session.title = title.strip()
    session.updated_at = timezone.now()
    session.save(update_fields=["title", "updated_at"])
    history_changed(session.user_id)
    return session


@transaction.atomic
def session_delete(*, session: ChatSession) -> None:
    user_id = session.user_id
    session.delete()
    history_changed(user_id)


def _title_from(question: str) -> str:
    words = " ".join(question.split())
    if len(words) <= TITLE_FROM_QUESTION_CHARS:
        return words
    return words[:TITLE_FROM_QUESTION_CHARS].rsplit(" ", 1)[0] + "…"


# --- sending ----------------------------------------------------------------------------------


def _request_hash(session: ChatSession, content: str) -> str:
    return hashlib.sha256(f"{session.pk}\n{content}".encode()).hexdigest()


def _sent_today(user: User, *, since: datetime, limit: int) -> int:
    """Messages the user sent since ``since``, counted up to ``limit`` (a bounded read)."""
    today = ChatMessage.objects.filter(session__user=user, sender=ChatMessage.Sender.USER, created_at__gte=since)
    return today[:limit].count()


def _quota_claim(user: User) -> None:
    """Count one more message against today's quota, or raise ``daily_quota_exceeded``.

    Called in the transaction that stores the message: the conditional UPDATE takes the user's
    counter row, so on PostgreSQL a parallel send waits for this one to commit (or roll back) and
    then re-checks the condition, and on SQLite writers are serialised. Exactly the quota is stored
    however many sends race, and a rolled-back send gives its place back.
    """
    now = timezone.now()
    today = now.date()
    quota = settings.CHAT_DAILY_QUOTA
    claimable = DailyMessageCount.objects.filter(Q(user=user) & (~Q(day=today) | Q(count__lt=quota)))
    for _ in range(2):
        if claimable.update(count=Case(When(day=today, then=F("count") + 1), default=Value(1)), day=today):
            return
        if DailyMessageCount.objects.filter(user=user).exists():
            break
        # The user's first send since the counter existed: start it from what they sent today already
        # (once per user, so a deployment mid-day does not hand out a second quota).
        midnight = datetime.combine(today, time.min, tzinfo=now.tzinfo)
        sent = _sent_today(user, since=midnight, limit=quota)
        DailyMessageCount.objects.bulk_create(
            [DailyMessageCount(user=user, day=today, count=sent)], ignore_conflicts=True
        )
    midnight = datetime.combine(today, time.min, tzinfo=now.tzinfo)
    raise Throttled(
        f"Daily message quota of {quota} reached; it resets at 00:00 UTC.",
        code="daily_quota_exceeded",
        retry_after=max(1, int((midnight + timedelta(days=1) - now).total_seconds())),
    )


def _replay(record: IdempotencyRecord, session: ChatSession, content: str) -> Received:
    if record.request_hash != _request_hash(session, content):
        raise Conflict("This Idempotency-Key was already used for a different message.", code="idempotency_key_reused")
    return Received(
        record.user_message,
        record.bot_message,
        record,
        replayed=record.bot_message is not None,
        user_id=record.user_id,
        scope=retrieval_scope(session.workspace),
    )


def message_receive(*, user: User, session: ChatSession, content: str, idempotency_key: str = "") -> Received:
    """Store the user's message (or find the one this key already stored) and commit.

    The user's and the workspace's daily quotas are claimed in the same transaction: a refused
    message is not stored, and a stored one is never taken back.
    """
    with transaction.atomic():
        if idempotency_key:
            record = (
                IdempotencyRecord.objects.select_related("user_message", "bot_message")
                .filter(user=user, key=idempotency_key)
                .first()
            )
            if record is not None and record.created_at >= timezone.now() - IDEMPOTENCY_WINDOW:
                return _replay(record, session, content)
            if record is not None:
                record.delete()  # expired: the key may be used afresh
        _quota_claim(user)
        workspace_message_claim(workspace_id=session.workspace_id)
        now = timezone.now()
        message = ChatMessage.objects.create(session=session, sender=ChatMessage.Sender.USER, content=content)
        if not session.title:
            session.title = _title_from(content)
        session.updated_at = now
        session.save(update_fields=["title", "updated_at"])
        history_changed(user.pk)
        record = None
        if idempotency_key:
            try:
                with transaction.atomic():
                    record = IdempotencyRecord.objects.create(
                        user=user,
                        key=idempotency_key,
                        request_hash=_request_hash(session, content),
                        session=session,
                        user_message=message,
                    )
            except IntegrityError as exc:  # a concurrent request with the same key won the race
                raise Conflict(
                    "A request with this Idempotency-Key is in progress.", code="idempotency_in_progress"
                ) from exc
    record_message_sent()  # after the commit: rollbacks and replays are not counted
    return Received(message, None, record, replayed=False, user_id=user.pk, scope=retrieval_scope(session.workspace))


def _history(message: ChatMessage) -> list[Turn]:
    turns = settings.RAG_HISTORY_TURNS
    earlier = ChatMessage.objects.filter(session_id=message.session_id, id__lt=message.pk).order_by("-id")[:turns]
    return [
        Turn(role="user" if m.sender == ChatMessage.Sender.USER else "assistant", content=m.content)
        for m in reversed(earlier)
    ]


@transaction.atomic
def _store_answer(received: Received, answer: Answer) -> ChatMessage:
    """Store the answer; if a concurrent retry of the same key stored one first, return that one.

    The record's row is locked (PostgreSQL; SQLite serialises writers anyway), so of two overlapping
    retries — possible when the Redis answer lock is unavailable — exactly one answer is kept.
    """
    message = received.user_message
    if received.record is not None:
        stored = (
            IdempotencyRecord.objects.select_for_update()
            .filter(pk=received.record.pk)
            .values_list("bot_message_id", flat=True)
            .first()
        )
        if stored is not None:
            return ChatMessage.objects.get(pk=stored)
    bot = ChatMessage.objects.create(
        session_id=message.session_id, sender=ChatMessage.Sender.BOT, content=answer.text, metadata=answer.metadata()
    )
    ChatSession.objects.filter(pk=message.session_id).update(updated_at=bot.created_at)
    history_changed(received.user_id)
    if received.record is not None:
        IdempotencyRecord.objects.filter(pk=received.record.pk).update(bot_message=bot)
    return bot


class _AnswerLock:
    """One answer at a time per idempotency key, so a concurrent retry cannot answer twice.

    A ``RedisLock``: it is released only while it still holds our token, so an answer that outlives
    the TTL (a slow stream) cannot delete the lock a retry took after it expired.
    """

    def __init__(self, received: Received) -> None:
        self.key = redis_key("chat", "answering", str(received.record.pk)) if received.record else ""
        self._lock: RedisLock | None = None

    def __enter__(self) -> _AnswerLock:
        if not self.key:
            return self
        try:
            lock = RedisLock(self.key, ttl_s=int(settings.RAG_TIMEOUT_S * 3))
            held = lock.acquire()
        except RedisError as exc:
            logger.warning("Answer lock unavailable (%s); continuing without it", exc)
            return self
        if not held:
            raise Conflict("This message is being answered; retry shortly.", code="idempotency_in_progress")
        self._lock = lock
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None:
            self._lock.release()  # only if still ours; a Redis error is logged, the key expires by itself


def message_answer(*, received: Received) -> ChatMessage:
    """Answer a stored user message and store the answer (a replay returns the stored one)."""
    if received.bot_message is not None:
        return received.bot_message
    with _AnswerLock(received):
        try:
            answer = answer_question(
                question=received.user_message.content, history=_history(received.user_message), scope=received.scope
            )
        except ServiceError as exc:
            logger.warning("No answer for message %s: %s", received.user_message.pk, exc.code)
            raise AnswerUnavailable() from exc
        return _store_answer(received, answer)


def message_answer_stream(*, received: Received) -> Iterator[tuple[str, Any]]:
    """Yields ("sources", list), ("delta", str)…, then ("done", stored bot message).

    Raises ``AnswerUnavailable`` on the first ``next()`` if retrieval fails, before anything is sent.
    """
    if received.bot_message is not None:
        bot = received.bot_message
        yield "sources", bot.metadata.get("sources", [])
        yield "delta", bot.content
        yield "done", bot
        return
    with _AnswerLock(received):
        events = answer_stream(
            question=received.user_message.content, history=_history(received.user_message), scope=received.scope
        )
        try:
            first = next(events)
        except ServiceError as exc:
            raise AnswerUnavailable() from exc
        yield first.kind, first.data
        for event in events:
            if event.kind == "done":
                yield "done", _store_answer(received, event.data)
            else:
                yield event.kind, event.data


# --- feedback and export ----------------------------------------------------------------------


@transaction.atomic
def message_feedback(*, message: ChatMessage, rating: int, comment: str = "") -> ChatMessage:
    if message.sender != ChatMessage.Sender.BOT:
        raise ValidationFailed("Only answers can be rated.", code="not_an_answer")
    message.feedback_rating = rating
    message.feedback_comment = comment
    message.feedback_at = timezone.now()
    message.save(update_fields=["feedback_rating", "feedback_comment", "feedback_at"])
    history_changed(message.session.user_id)
    return message


# --- Retention and cleanup (the scheduled jobs of ``background_tasks.jobs``) ---------------------
# Chat retention: delete messages older than ``CHAT_RETENTION_DAYS``, then the sessions that this
# emptied, then sessions that never got a message and saw no activity for a day (opening sessions
# costs nothing, so without this they would pile up for ever).

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


def idempotency_records_delete(
    *, dry_run: bool = False, now: datetime | None = None, batch_size: int = BATCH_SIZE
) -> dict[str, int]:
    """Delete (or, dry, count) idempotency records past their window (``IDEMPOTENCY_WINDOW``)."""
    expired: QuerySet[Model] = IdempotencyRecord.objects.filter(
        created_at__lt=(now or timezone.now()) - IDEMPOTENCY_WINDOW
    )
    count = expired.count() if dry_run else delete_in_batches(expired, batch_size)
    return {"idempotency_records_deleted": count}
