"""Redis clients on the configured server, real or fakeredis (embedded default).

Everything that needs raw Redis (locks, the scheduler's job store) goes through
``get_redis()`` so it shares the server that the Django cache uses, and names its keys with
``redis_key()`` so that every key starts with ``CACHE_KEY_PREFIX`` as the cache's own do:
deployments that share a Redis never read or delete each other's keys.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import fakeredis
import redis

# One in-process server per process: the cache, locks and the scheduler all see the same data.
_FAKE_SERVER = fakeredis.FakeServer()


def fake_connection_options() -> dict[str, Any]:
    """Connection-pool options that route a redis client to the in-process fake server."""
    return {"connection_class": fakeredis.FakeRedisConnection, "server": _FAKE_SERVER}


def redis_key(*parts: str) -> str:
    """A key in this deployment's namespace: ``<CACHE_KEY_PREFIX>:<part>:<part>…``."""
    from django.conf import settings

    return ":".join([settings.CACHE_KEY_PREFIX, *parts])


@lru_cache(maxsize=1)
def connection_pool() -> redis.ConnectionPool:
    from django.conf import settings

    if settings.USE_FAKE_REDIS:
        return redis.ConnectionPool(**fake_connection_options())
    return redis.ConnectionPool.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT_S,
        socket_timeout=settings.REDIS_SOCKET_TIMEOUT_S,
    )


@lru_cache(maxsize=1)
def get_redis() -> redis.Redis:
    """A shared client (thread-safe: each command borrows a pooled connection)."""
    return redis.Redis(connection_pool=connection_pool())
