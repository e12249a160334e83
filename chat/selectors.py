"""Reads of chat data, always scoped to the requesting user: another user's object is not found."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from chat.models import ChatMessage, ChatSession
from users.models import User


def session_list(*, user: User) -> QuerySet[ChatSession]:
    return (
        ChatSession.objects.filter(user=user).annotate(message_count=Count("messages")).order_by("-updated_at", "-id")
    )


def session_get(*, user: User, session_id: int) -> ChatSession | None:
    return session_list(user=user).filter(pk=session_id).first()


def session_owned(*, user: User, session_id: int) -> ChatSession | None:
    """The session without its message count: for routes that only need to know it is the caller's."""
    return ChatSession.objects.filter(user=user, pk=session_id).first()


def message_list(*, user: User, session: ChatSession) -> QuerySet[ChatMessage]:
    return ChatMessage.objects.filter(session=session, session__user=user).order_by("id")


def message_get(*, user: User, message_id: int) -> ChatMessage | None:
    return ChatMessage.objects.filter(pk=message_id, session__user=user).select_related("session").first()


def recent_messages(*, user: User, limit: int = 20) -> QuerySet[ChatMessage]:
    return ChatMessage.objects.filter(session__user=user).order_by("-created_at", "-id")[:limit]


def message_total(*, user: User) -> int:
    return ChatMessage.objects.filter(session__user=user).count()
