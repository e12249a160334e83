"""At most ``CHAT_MAX_CONCURRENT_STREAMS`` open answer streams per user.

A streamed answer holds a worker thread until its last event; 8 streams of one user, well inside
the per-minute throttle, held every thread of the 2x4 layout and health took 9.4 s. A user now
holds one of N slots (``chat:stream-slot:<user>:<i>`` in the shared cache) per open stream and
gets a 429 ``too_many_streams`` when all are taken. The slot is released in a ``finally`` when the
stream ends, also when the client leaves; a slot of a worker that died expires after
``CHAT_STREAM_SLOT_TTL`` seconds. Like the throttles, this fails open when Redis is down.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError

from utils.exceptions import Throttled

logger = logging.getLogger(__name__)

TOO_MANY = "You already have the most answers streaming at once; wait for one to finish."


class StreamSlot:
    def __init__(self, key: str, token: str) -> None:
        self.key, self.token = key, token

    def release(self) -> None:
        if not self.key:
            return
        try:
            # Only our own: after a TTL expiry another stream may hold this slot.
            if cache.get(self.key) == self.token:
                cache.delete(self.key)
        except RedisError as exc:
            logger.warning("Stream slot %s not released, cache unavailable: %s", self.key, exc)
        self.key = ""


def stream_slot_acquire(*, user_id: int) -> StreamSlot:
    """Take a free slot of this user or raise ``Throttled`` (429 ``too_many_streams``)."""
    limit = settings.CHAT_MAX_CONCURRENT_STREAMS
    if limit <= 0:
        return StreamSlot("", "")
    token = secrets.token_hex(8)
    try:
        for index in range(limit):
            key = f"chat:stream-slot:{user_id}:{index}"
            if cache.add(key, token, timeout=settings.CHAT_STREAM_SLOT_TTL):
                return StreamSlot(key, token)
    except RedisError as exc:
        logger.warning("Stream limit skipped, cache unavailable: %s", exc)
        return StreamSlot("", "")
    raise Throttled(TOO_MANY, retry_after=5, code="too_many_streams")


def released_after(stream: Iterator[bytes], slot: StreamSlot) -> Iterator[bytes]:
    """``stream``, then the slot released: when it ends, fails, or the server closes it."""
    try:
        yield from stream
    finally:
        try:
            close = getattr(stream, "close", None)
            if close is not None:
                close()  # finishes (drains) the answer first when the client left
        finally:
            slot.release()
