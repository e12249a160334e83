"""Login lockout per client address and per account, shared by the admin and the API login.

Both check ``login_locked_for`` before checking a password and call ``login_failure_record`` when
the credentials are wrong (``users.services.user_login``, ``users.admin_site``).

Failed logins are counted in the shared cache (Redis) in fixed windows of
``LOGIN_LOCKOUT_WINDOW_MINUTES``: once a client address has ``LOGIN_LOCKOUT_CLIENT_FAILURES``
failures, or an account ``LOGIN_LOCKOUT_ACCOUNT_FAILURES``, every login attempt from that address
or for that account is refused until the window ends, the right password included, and before any
password is hashed (so a flood of guesses costs the server almost nothing). An unknown account name
is counted like a real one, so the lockout does not reveal which accounts exist.

As the throttles do, the lockout fails open when Redis is unreachable (logged), see
``utils.throttling``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError
from rest_framework.throttling import BaseThrottle

from users.models import User

logger = logging.getLogger(__name__)


def client_address(request: Any) -> str:
    """The client's address as the throttles see it (``NUM_PROXIES`` decides whether to trust XFF)."""
    return str(BaseThrottle().get_ident(request))


def _account(identifier: str) -> str:
    """One key per account whether it is named by username or by email; unknown names by their text."""
    name = identifier.strip()
    field = "email__iexact" if "@" in name else "username__iexact"
    pk = User.objects.filter(**{field: name}).values_list("pk", flat=True).first() if name else None
    if pk is not None:
        return f"user:{pk}"
    return "name:" + hashlib.sha256(name.lower().encode()).hexdigest()


def _window() -> tuple[int, int]:
    """(this window's number, seconds until it ends)."""
    length = settings.LOGIN_LOCKOUT_WINDOW_MINUTES * 60
    now = time.time()
    return int(now // length), max(1, int(length - now % length))


def _keys(*, client: str, identifier: str) -> dict[str, int]:
    window, _ = _window()
    return {
        f"login-failures:{window}:client:{client}": settings.LOGIN_LOCKOUT_CLIENT_FAILURES,
        f"login-failures:{window}:account:{_account(identifier)}": settings.LOGIN_LOCKOUT_ACCOUNT_FAILURES,
    }


def login_locked_for(*, request: Any, identifier: str) -> int:
    """Seconds until a login for ``identifier`` from this client may be tried again; 0 if it may now."""
    keys = _keys(client=client_address(request), identifier=identifier)
    try:
        counts = cache.get_many(list(keys))
    except RedisError as exc:
        logger.warning("Login lockout skipped, cache unavailable: %s", exc)
        return 0
    if any(int(counts.get(key) or 0) >= limit for key, limit in keys.items()):
        return _window()[1]
    return 0


def login_failure_record(*, request: Any, identifier: str) -> None:
    """Count one failed login against the client and the account."""
    timeout = settings.LOGIN_LOCKOUT_WINDOW_MINUTES * 60 + 60  # outlives its window, never by much
    try:
        for key in _keys(client=client_address(request), identifier=identifier):
            cache.add(key, 0, timeout=timeout)
            cache.incr(key)
    except (RedisError, ValueError) as exc:  # ValueError: the key expired between add and incr
        logger.warning("Failed login not counted: %s", exc)
