"""Redis locks for the scheduler: who schedules (leader), who runs a job now (mutex), who runs a tick.

All are ``SET key token NX EX ttl``. Renewal and release only touch a key that still holds our
token (a WATCH/MULTI check-and-set: fakeredis has no Lua without ``lupa``), so a process that
lost its lock can never extend or delete the lock of its successor.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import redis
from redis.exceptions import RedisError, WatchError

from utils.redis import get_redis, redis_key

logger = logging.getLogger(__name__)


def owner_token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RedisLock:
    """A lock with a TTL, optionally kept alive by a daemon thread while its holder lives."""

    def __init__(self, key: str, *, ttl_s: int, client: redis.Redis | None = None) -> None:
        self.key = key
        self.ttl_s = max(1, ttl_s)
        self.token = owner_token()
        self._redis = client or get_redis()
        self._stop_renewing = threading.Event()
        self._renewer: threading.Thread | None = None

    def acquire(self) -> bool:
        return bool(self._redis.set(self.key, self.token, nx=True, ex=self.ttl_s))

    def holder(self) -> str | None:
        value = self._redis.get(self.key)
        return value.decode() if isinstance(value, bytes) else value

    def wait(self, *, stop: threading.Event, poll_s: float = 5.0) -> bool:
        """Block until the lock is ours (True) or ``stop`` is set (False); logs while waiting."""
        announced = False
        while not stop.is_set():
            try:
                if self.acquire():
                    logger.info("Acquired %s", self.key)
                    return True
                if not announced:
                    logger.info("Waiting for %s, held by %s", self.key, self.holder())
                    announced = True
            except RedisError as exc:
                logger.warning("Cannot reach Redis for %s (%s); retrying", self.key, exc)
            stop.wait(poll_s)
        return False

    def _if_ours(self, action: Callable[[redis.client.Pipeline], object]) -> bool:
        with self._redis.pipeline() as pipe:
            try:
                pipe.watch(self.key)
                if pipe.get(self.key) != self.token.encode():
                    pipe.unwatch()
                    return False
                pipe.multi()
                action(pipe)
                pipe.execute()
            except WatchError:  # the key changed under us: someone else holds it now
                return False
        return True

    def renew(self) -> bool:
        return self._if_ours(lambda pipe: pipe.expire(self.key, self.ttl_s))

    def release(self) -> None:
        self._stop_renewing.set()
        try:
            if self._if_ours(lambda pipe: pipe.delete(self.key)):
                logger.debug("Released %s", self.key)
        except RedisError as exc:
            logger.warning("Could not release %s (%s); it expires in %d s", self.key, exc, self.ttl_s)

    def keep_alive(self, *, on_lost: Callable[[], None]) -> None:
        """Renew every third of the TTL in a daemon thread; call ``on_lost`` if the lock slips away."""
        self._stop_renewing.clear()
        self._renewer = threading.Thread(
            target=self._renew_loop, args=(on_lost,), name=f"renew {self.key}", daemon=True
        )
        self._renewer.start()

    def _renew_loop(self, on_lost: Callable[[], None]) -> None:
        interval = self.ttl_s / 3
        last_renewed = time.monotonic()
        while not self._stop_renewing.wait(interval):
            try:
                if self.renew():
                    last_renewed = time.monotonic()
                    continue
                if self._stop_renewing.is_set():  # released while we renewed: given up, not lost
                    return
                logger.error("Lost %s: another process holds it now", self.key)
            except RedisError as exc:
                if self._stop_renewing.is_set():
                    return
                if time.monotonic() - last_renewed < self.ttl_s:
                    logger.warning("Could not renew %s (%s); retrying", self.key, exc)
                    continue
                logger.error("Could not renew %s for %d s: assuming it is lost", self.key, self.ttl_s)
            on_lost()
            return


def tick_claim(*, job_id: str, scheduled_for: datetime, ttl_s: int) -> bool:
    """Claim one scheduled run of a job; only the first caller per (job, tick) gets True.

    The claim is never released: it marks the tick as taken for ``ttl_s``, which outlasts the
    window in which another scheduler could still try that tick (the misfire grace time).
    """
    tick = scheduled_for.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return bool(get_redis().set(redis_key("jobs", "tick", job_id, tick), owner_token(), nx=True, ex=max(1, ttl_s)))
