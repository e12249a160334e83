"""The shared index version, kept in Redis, that tells each process when to reload its
in-memory copies (the FAISS index, the lexical index)."""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from utils.redis import get_redis, redis_key

logger = logging.getLogger(__name__)


class RedisVersionBoard:
    """A counter in the shared Redis; every write to the knowledge base bumps it."""

    def __init__(self, key: str) -> None:
        self.key = key

    def get(self) -> int | None:
        try:
            value = get_redis().get(redis_key(self.key))
        except RedisError as exc:
            # Without Redis a process keeps serving the index it has; it reloads once Redis is back.
            logger.warning("Index version unavailable (%s); serving the loaded index", exc)
            return None
        return int(value) if value is not None else None

    def bump(self) -> int:
        try:
            return int(get_redis().incr(redis_key(self.key)))
        except RedisError as exc:
            logger.warning("Could not publish a new index version (%s); other processes reload later", exc)
            return -1
