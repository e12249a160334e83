"""Health checks: a small registry so each app can add the components it depends on.

A check raises when its component is down. A component that answers but is in a state that
needs an operator (e.g. a vector index that disagrees with the database) returns details with
a ``degraded`` entry: the hint that says how to fix it.
"""

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
DEGRADED = "degraded"  # the details key a check sets, to a hint, when its component needs attention
_CHECKS: dict[str, HealthCheck] = {}


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    latency_ms: float
    error: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    degraded: str = ""  # the hint, when the component answers but needs attention


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
            error = f"{type(exc).__name__}: {exc}"[:400]  # long enough for the fix a message names
            results.append(CheckResult(name, False, _elapsed_ms(started), error))
        else:
            details = dict(details or {})
            hint = str(details.pop(DEGRADED, "") or "")
            results.append(CheckResult(name, True, _elapsed_ms(started), details=details, degraded=hint))
    return results


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
