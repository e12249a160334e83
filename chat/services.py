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
from django.utils import timezone
from redis.exceptions import RedisError

from chat.history import history_changed
from chat.models import ChatMessage, ChatSession, IdempotencyRecord
from rag.providers.base import Turn
from rag.services.answering import Answer, answer_question, answer_stream
from users.models import User
from utils.exceptions import Conflict, ServiceError, Throttled, ValidationFailed
from utils.metrics import record_message_sent
from utils.redis import get_redis, redis_key

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


# --- sessions ---------------------------------------------------------------------------------


@transaction.atomic
def session_create(*, user: User, title: str = "") -> ChatSession:
    session = ChatSession.objects.create(user=user, title=title.strip())
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


def _quota_check(user: User) -> None:
    now = timezone.now()
    midnight = datetime.combine(now.date(), time.min, tzinfo=now.tzinfo)
    today = ChatMessage.objects.filter(session__user=user, sender=ChatMessage.Sender.USER, created_at__gte=midnight)
    sent = today[: settings.CHAT_DAILY_QUOTA].count()  # stops counting at the quota: a bounded read
    if sent >= settings.CHAT_DAILY_QUOTA:
        seconds = int((midnight + timedelta(days=1) - now).total_seconds())
        raise Throttled(
            f"Daily message quota of {settings.CHAT_DAILY_QUOTA} reached; it resets at 00:00 UTC.",
            code="daily_quota_exceeded",
            retry_after=seconds,
        )


def _replay(record: IdempotencyRecord, session: ChatSession, content: str) -> Received:
    if record.request_hash != _request_hash(session, content):
        raise Conflict("This Idempotency-Key was already used for a different message.", code="idempotency_key_reused")
    return Received(
        record.user_message, record.bot_message, record, replayed=record.bot_message is not None, user_id=record.user_id
    )


def message_receive(*, user: User, session: ChatSession, content: str, idempotency_key: str = "") -> Received:
    """Store the user's message (or find the one this key already stored) and commit."""
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
        _quota_check(user)
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
    return Received(message, None, record, replayed=False, user_id=user.pk)


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
    """One answer at a time per idempotency key, so a concurrent retry cannot answer twice."""

    def __init__(self, received: Received) -> None:
        self.key = redis_key("chat", "answering", str(received.record.pk)) if received.record else ""
        self.held = False

    def __enter__(self) -> _AnswerLock:
        if self.key:
            try:
                self.held = bool(get_redis().set(self.key, "1", nx=True, ex=int(settings.RAG_TIMEOUT_S * 3)))
            except RedisError as exc:
                logger.warning("Answer lock unavailable (%s); continuing without it", exc)
                self.held = True
                self.key = ""
            if not self.held:
                raise Conflict("This message is being answered; retry shortly.", code="idempotency_in_progress")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.key and self.held:
            try:
                get_redis().delete(self.key)
            except RedisError:
                logger.warning("Could not release the answer lock %s; it expires by itself", self.key)


def message_answer(*, received: Received) -> ChatMessage:
    """Answer a stored user message and store the answer (a replay returns the stored one)."""
    if received.bot_message is not None:
        return received.bot_message
    with _AnswerLock(received):
        try:
            answer = answer_question(question=received.user_message.content, history=_history(received.user_message))
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
        events = answer_stream(question=received.user_message.content, history=_history(received.user_message))
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
