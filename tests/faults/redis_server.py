"""A real ``redis-server`` owned by one test: started on a free port, killed and restarted at will,
and the app's Redis clients pointed at it for the duration."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self

import pytest
import redis
from django.conf import settings
from django.test import override_settings

from tests.fakes import unused_port
from utils import redis as app_redis

SOCKET_TIMEOUT_S = 1.0


def require_binary(name: str) -> str:
    """The binary's path; skipped when it is missing, unless in CI where the test must run."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required in CI")
        pytest.skip(f"{name} is not installed")
    return path


class RedisProcess:
    """``redis-server`` on 127.0.0.1 without persistence: a restart comes back empty, like a
    replaced cache node."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or unused_port()
        self._binary = require_binary("redis-server")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> Self:
        args = [self._binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.02)
            finally:
                client.close()
        return self

    def kill(self) -> None:
        """SIGKILL: the server vanishes without a goodbye, as in a crash or a lost node."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port)


def reset_app_redis_clients() -> None:
    """Forget the shared Redis pool and client (``utils.redis``) so the next use reads settings."""
    app_redis.get_redis.cache_clear()
    app_redis.connection_pool.cache_clear()


@contextmanager
def app_on(server: RedisProcess, *, key_prefix: str = "faults") -> Iterator[RedisProcess]:
    """Point the Django cache, throttles, locks and scheduler at ``server`` for a while.

    ``CACHES`` changing makes Django drop its cache connections (the ``setting_changed``
    signal); the raw clients of ``utils.redis`` are cached separately and reset here.
    """
    options: dict[str, Any] = {"socket_connect_timeout": SOCKET_TIMEOUT_S, "socket_timeout": SOCKET_TIMEOUT_S}
    default = {**settings.CACHES["default"], "LOCATION": server.url, "KEY_PREFIX": key_prefix, "OPTIONS": options}
    override = override_settings(
        USE_FAKE_REDIS=False, REDIS_URL=server.url, CACHE_KEY_PREFIX=key_prefix, CACHES={"default": default}
    )
    override.enable()
    reset_app_redis_clients()
    try:
        yield server
    finally:
        override.disable()
        reset_app_redis_clients()
