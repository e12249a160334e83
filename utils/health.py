"""Health checks: a small registry so each app can add the components it depends on."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.db import connection

logger = logging.getLogger(__name__)

HealthCheck = Callable[[], dict[str, Any] | None]  # raises on failure; may return details
_CHECKS: dict[str, HealthCheck] = {}


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    latency_ms: float
    error: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def register_check(name: str, check: HealthCheck) -> None:
    _CHECKS[name] = check


def check_database() -> dict[str, Any] | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"backend": connection.vendor}


def check_cache() -> dict[str, Any] | None:
    key = f"health:{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=5)
    if cache.get(key) != "1":
        raise RuntimeError("cache did not return the value just written")
    cache.delete(key)
    return None


register_check("database", check_database)
register_check("cache", check_cache)


def run_checks() -> list[CheckResult]:
    results = []
    for name, check in _CHECKS.items():
        started = time.perf_counter()
        try:
            details = check()
        except Exception as exc:  # a health probe must report any failure, not raise it
            logger.warning("Health check %s failed: %s", name, exc)
            error = f"{type(exc).__name__}: {exc}"[:200]
            results.append(CheckResult(name, False, _elapsed_ms(started), error))
        else:
            results.append(CheckResult(name, True, _elapsed_ms(started), details=details or {}))
    return results


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
