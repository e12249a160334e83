"""Reads of chat data, always scoped to the requesting user: another user's object is not found.

A session lives in a workspace (DESIGN §8): once its user is no longer a member of that workspace
it is not found either (its answers quote the workspace's documents). ``only_workspace_id`` (a
request made with an API key) narrows every read to the key's workspace."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, QuerySet

from chat.models import ChatMessage, ChatSession
from users.models import User
from workspaces.models import Membership


def sessions_visible(*, user: User, only_workspace_id: int | None = None) -> QuerySet[ChatSession]:
    """The user's sessions in workspaces they are still a member of."""
    memberships = Membership.objects.filter(user=user)
    if only_workspace_id is not None:
        memberships = memberships.filter(workspace_id=only_workspace_id)
    return ChatSession.objects.filter(user=user, workspace_id__in=memberships.values("workspace_id"))


def session_list(*, user: User, only_workspace_id: int | None = None) -> QuerySet[ChatSession]:
    return (
        sessions_visible(user=user, only_workspace_id=only_workspace_id)
        .annotate(message_count=Count("messages"))
        .order_by("-updated_at", "-id")
    )


def session_get(*, user: User, session_id: int, only_workspace_id: int | None = None) -> ChatSession | None:
    return session_list(user=user, only_workspace_id=only_workspace_id).filter(pk=session_id).first()


def session_owned(*, user: User, session_id: int, only_workspace_id: int | None = None) -> ChatSession | None:
    """The session without its message count: for routes that only need to know it is the caller's."""
    visible = sessions_visible(user=user, only_workspace_id=only_workspace_id)
    return visible.select_related("workspace").filter(pk=session_id).first()


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


def message_get(*, user: User, message_id: int, only_workspace_id: int | None = None) -> ChatMessage | None:
    sessions = sessions_visible(user=user, only_workspace_id=only_workspace_id)
    return ChatMessage.objects.filter(pk=message_id, session__in=sessions).select_related("session").first()


def recent_messages(*, user: User, limit: int = 20, only_workspace_id: int | None = None) -> QuerySet[ChatMessage]:
    sessions = sessions_visible(user=user, only_workspace_id=only_workspace_id)
    return ChatMessage.objects.filter(session__in=sessions).order_by("-created_at", "-id")[:limit]


def message_total(*, user: User, only_workspace_id: int | None = None) -> int:
    sessions = sessions_visible(user=user, only_workspace_id=only_workspace_id)
    return ChatMessage.objects.filter(session__in=sessions).count()
