"""Throttles on the shared cache with rates read from settings at request time.

If Redis is unreachable the throttles let requests through (and log a warning) rather than
turning every request into an error: availability of auth and chat wins over rate limiting
during a cache outage. The daily chat quota is counted in the database and keeps working.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

logger = logging.getLogger(__name__)


class ScopedThrottle(ScopedRateThrottle):
    """DRF's scoped throttle (per user when signed in, else per client address)."""

    def get_rate(self) -> str | None:
        # DRF binds the rates at import; reading them here lets settings changes take effect.
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope or "")
        return str(rate) if rate else None

    def allow_request(self, request: Request, view: APIView) -> bool:
        try:
            return super().allow_request(request, view)
        except RedisError as exc:
            logger.warning("Throttle %s skipped, cache unavailable: %s", getattr(view, "throttle_scope", "?"), exc)
            return True


class ClientScopedThrottle(ScopedThrottle):
    """Keyed by client address even for a signed-in caller: these limits guard the address."""

    def get_cache_key(self, request: Request, view: APIView) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
