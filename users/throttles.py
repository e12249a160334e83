"""Per-client throttles for the account flows; rates come from settings (env)."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView


class ClientScopedThrottle(ScopedRateThrottle):
    """Keyed by client address even for a signed-in caller: these limits guard the address."""

    def get_rate(self) -> str | None:
        # Read at request time (DRF binds the rates at import), so settings changes take effect.
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope or "")
        return str(rate) if rate else None

    def get_cache_key(self, request: Request, view: APIView) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
