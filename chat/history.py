"""``GET /api/chat/history/``: the overview a client polls most, cached per user until it changes.

Each user has a *version* token (``HistoryVersion``) that every write to their chat data replaces
inside the writing transaction; jobs touching everyone's chats (retention, restore, admin deletes)
replace every token. The rendered JSON is cached under (user, token), so a hit costs one primary-key
read and one cache read, and no cache entry is ever invalidated: a new token simply misses.

The token is read *before* the overview is built, so an entry can only hold data at least as new as
its token; it is served only while that token is current, that is until the next write commits.
Any cache works, shared or not: on Redis the workers share entries, on the embedded default each
worker's fakeredis holds its own, and both stay exact because the token lives in the database.
A user with no token yet (nothing written since the upgrade or a restore) is read from the database.
``CHAT_HISTORY_CACHE=false`` turns the cache off.

Only sessions in workspaces the user is still a member of are shown (and, for a request made with
an API key, only the key's workspace): the key also names that workspace and the user's current
memberships, so leaving a workspace hides its sessions at once even if nothing replaced the token.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count
from redis.exceptions import RedisError
from rest_framework.renderers import JSONRenderer

from chat import selectors
from chat.models import ChatMessage, HistoryVersion
from chat.serializers import MessageSerializer, SessionSerializer
from users.models import User
from workspaces.models import Membership

logger = logging.getLogger(__name__)

HISTORY_TTL_SECONDS = 300
RECENT = 20


def build_history(user: User, *, only_workspace_id: int | None = None) -> dict[str, Any]:
    """Four short indexed reads: the 20 latest sessions, their message counts, the 20 latest
    messages and the two totals (counting only this user's rows, never grouping all sessions)."""
    visible = selectors.sessions_visible(user=user, only_workspace_id=only_workspace_id)
    sessions = list(visible.order_by("-updated_at", "-id")[:RECENT])
    counts = dict(
        ChatMessage.objects.filter(session__in=sessions)
        .values_list("session_id")
        .annotate(n=Count("id"))
        .values_list("session_id", "n")
    )
    for session in sessions:
        session.message_count = counts.get(session.pk, 0)  # type: ignore[attr-defined]
    return {
        "sessions": SessionSerializer(sessions, many=True).data,
        "recent_messages": MessageSerializer(
            selectors.recent_messages(user=user, limit=RECENT, only_workspace_id=only_workspace_id), many=True
        ).data,
        "total_sessions": visible.count(),
        "total_messages": selectors.message_total(user=user, only_workspace_id=only_workspace_id),
    }


def _render(data: dict[str, Any]) -> bytes:
    return JSONRenderer().render(data)  # the bytes the view would have rendered


def _memberships_key(user: User) -> str:
    ids = Membership.objects.filter(user=user).order_by("workspace_id").values_list("workspace_id", flat=True)
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]


def history_json(user: User, *, only_workspace_id: int | None = None) -> bytes:
    """The overview as JSON bytes, from the cache when this user has not written since it was built."""
    token = None
    if settings.CHAT_HISTORY_CACHE:
        token = HistoryVersion.objects.filter(pk=user.pk).values_list("token", flat=True).first()
    if token is None:  # the cache is off, or this user has no version yet
        return _render(build_history(user, only_workspace_id=only_workspace_id))
    scope = f"{only_workspace_id or 'all'}:{_memberships_key(user)}"
    key = f"chat:history:{user.pk}:{token}:{scope}"
    try:
        cached: bytes | None = cache.get(key)
    except RedisError as exc:
        logger.warning("History cache unavailable (%s); reading the database", exc)
        return _render(build_history(user, only_workspace_id=only_workspace_id))
    if cached is not None:
        return cached
    body = _render(build_history(user, only_workspace_id=only_workspace_id))
    try:
        cache.set(key, body, timeout=HISTORY_TTL_SECONDS)
    except RedisError as exc:
        logger.warning("History not cached: %s", exc)
    return body


def history_changed(user_id: int) -> None:
    """Call in the same transaction as (or after) every write to this user's sessions or messages."""
    HistoryVersion.objects.bulk_create(
        [HistoryVersion(user_id=user_id, token=uuid.uuid4().hex)],
        update_conflicts=True,
        unique_fields=["user"],
        update_fields=["token"],
    )


def history_changed_for_everyone() -> None:
    """Call after writes that touch many users' chats (retention, restore, admin deletes)."""
    HistoryVersion.objects.update(token=uuid.uuid4().hex)
