"""``GET /api/chat/history/``: the overview a client polls most, cached per user until it changes.

A user's payload is cached with the *generation* it was built under: a per-user token that every
write to their chat data replaces (after the write commits), and a global one that jobs touching
everyone's data (retention, restore, admin deletes) replace. The generations are read *before* the
database, so a payload built while a write commits is stored under the old generation and never
served. One cache round trip per hit; the TTL bounds the age of anything a missed writer leaves.
Without Redis, or with ``CHAT_HISTORY_CACHE`` off (the default on fakeredis, which is per process),
the payload is built from the database every time.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count
from redis.exceptions import RedisError

from chat import selectors
from chat.models import ChatMessage, ChatSession
from chat.serializers import MessageSerializer, SessionSerializer
from users.models import User

logger = logging.getLogger(__name__)

HISTORY_TTL_SECONDS = 300
RECENT = 20
_EVERYONE = "chat:history:gen"


def _keys(user_id: int) -> tuple[str, str]:
    return f"chat:history:{user_id}", f"chat:history:gen:{user_id}"


def build_history(user: User) -> dict[str, Any]:
    """Four short indexed reads: the 20 latest sessions, their message counts, the 20 latest
    messages and the two totals (counting only this user's rows, never grouping all sessions)."""
    sessions = list(ChatSession.objects.filter(user=user).order_by("-updated_at", "-id")[:RECENT])
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
        "recent_messages": MessageSerializer(selectors.recent_messages(user=user, limit=RECENT), many=True).data,
        "total_sessions": ChatSession.objects.filter(user=user).count(),
        "total_messages": selectors.message_total(user=user),
    }


def history_for(user: User) -> dict[str, Any]:
    if not settings.CHAT_HISTORY_CACHE:
        return build_history(user)
    payload_key, user_key = _keys(user.pk)
    try:
        found = cache.get_many([payload_key, user_key, _EVERYONE])
    except RedisError as exc:
        logger.warning("History cache unavailable (%s); reading the database", exc)
        return build_history(user)
    generation = (found.get(user_key), found.get(_EVERYONE))
    cached = found.get(payload_key)
    if cached is not None and cached["generation"] == generation:
        data: dict[str, Any] = cached["data"]
        return data
    data = build_history(user)
    try:
        cache.set(payload_key, {"generation": generation, "data": data}, timeout=HISTORY_TTL_SECONDS)
    except RedisError as exc:
        logger.warning("History not cached: %s", exc)
    return data


def _replace(key: str) -> None:
    try:
        cache.set(key, uuid.uuid4().hex, timeout=None)
    except RedisError as exc:  # the TTL still bounds how long a stale overview can be served
        logger.warning("Could not invalidate the cached history (%s): %s", key, exc)


def history_changed(user_id: int) -> None:
    """Call on every write to this user's sessions or messages (takes effect at commit)."""
    transaction.on_commit(lambda: _replace(_keys(user_id)[1]))


def history_changed_for_everyone() -> None:
    """Call after writes that touch many users' chats (retention, restore, admin deletes)."""
    transaction.on_commit(lambda: _replace(_EVERYONE))
