"""Reads of chat data, always scoped to the requesting user: another user's object is not found."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class MessagePage:
    """One page of a session's messages, oldest first, and whether there are newer or older ones."""

    items: list[ChatMessage]
    count: int  # all the session's messages
    has_newer: bool
    has_older: bool


def message_page(
    *, user: User, session: ChatSession, size: int, before: int | None = None, after: int | None = None
) -> MessagePage:
    """Cursor paging by message id: ``after`` for newer messages, ``before`` for older; both together
    bound a window (the newest page inside it)."""
    queryset = message_list(user=user, session=session)
    if before is not None:
        window = queryset.filter(id__gt=after) if after is not None else queryset
        older = list(window.filter(id__lt=before).order_by("-id")[: size + 1])
        has_older = len(older) > size
        items = older[:size][::-1]
        has_newer = queryset.filter(id__gte=before).exists()
    else:
        start = queryset.filter(id__gt=after) if after is not None else queryset
        items = list(start.order_by("id")[: size + 1])
        has_newer = len(items) > size
        items = items[:size]
        has_older = after is not None and queryset.filter(id__lte=after).exists()
    return MessagePage(items=items, count=queryset.count(), has_newer=has_newer, has_older=has_older)


def message_get(*, user: User, message_id: int) -> ChatMessage | None:
    return ChatMessage.objects.filter(pk=message_id, session__user=user).select_related("session").first()


def recent_messages(*, user: User, limit: int = 20) -> QuerySet[ChatMessage]:
    return ChatMessage.objects.filter(session__user=user).order_by("-created_at", "-id")[:limit]


def message_total(*, user: User) -> int:
    return ChatMessage.objects.filter(session__user=user).count()
