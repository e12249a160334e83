"""``Authorization: Api-Key <key>``: server-to-server clients act as the key's creator, inside the
key's workspace and within its scopes (DESIGN §8).

``request.user`` is the creator, so the per-user throttles and the daily message quota count a
key's traffic with its creator's; ``request.auth`` is the ``ApiKey`` (``workspaces.access.api_key_of``),
which confines the views to the key's workspace. A per-key throttle (``THROTTLE_API_KEY``) bounds
one key on endpoints that have no throttle of their own. Nothing about a key's validity is cached:
revoked, expired or orphaned keys fail on the next request.
"""

from __future__ import annotations

import logging
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from redis.exceptions import RedisError
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from users.models import User
from workspaces.api_keys import api_key_authenticate
from workspaces.models import ApiKey
from workspaces.permissions import api_key_scope_check, required_scope

logger = logging.getLogger(__name__)

KEYWORD = "Api-Key"


class ApiKeyThrottle(SimpleRateThrottle):
    """``THROTTLE_API_KEY`` requests per key, whatever the endpoint."""

    scope = "api_key"

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key
        super().__init__()

    def get_rate(self) -> str | None:
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)  # read per request, like utils.throttling
        return str(rate) if rate else None

    def get_cache_key(self, request: Any, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.api_key.pk}

    def allow_request(self, request: Any, view: Any) -> bool:
        try:
            return super().allow_request(request, view)
        except RedisError as exc:  # availability over rate limiting, as for every other throttle
            logger.warning("Throttle api_key skipped, cache unavailable: %s", exc)
            return True


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[User, ApiKey] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != KEYWORD.lower().encode():
            return None  # another scheme (Bearer) or none: not ours to judge
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid API key header.", code="api_key_invalid")
        try:
            raw_key = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid API key.", code="api_key_invalid") from None
        api_key = api_key_authenticate(raw_key=raw_key)
        if api_key is None:
            # One answer for unknown, revoked, expired and orphaned keys: the caller learns nothing
            # about which keys exist.
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked API key.", code="api_key_invalid")
        view = (getattr(request, "parser_context", None) or {}).get("view")
        api_key_scope_check(api_key=api_key, view=view, method=request.method or "GET")
        throttle = ApiKeyThrottle(api_key)
        if not throttle.allow_request(request, view):
            raise exceptions.Throttled(wait=throttle.wait())
        return api_key.created_by, api_key

    def authenticate_header(self, request: Request) -> str:
        return KEYWORD


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Lists the key scheme only on the operations a key may call (``API_KEY_SCOPES``)."""

    target_class = "workspaces.authentication.ApiKeyAuthentication"
    name = "apiKeyAuth"

    def get_security_requirement(self, auto_schema: Any) -> dict[str, list[Any]] | list[dict[str, list[Any]]]:
        if required_scope(auto_schema.view, auto_schema.method) is None:
            return []  # keys are refused here
        return {self.name: []}

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": (
                "A workspace API key, sent as `Authorization: Api-Key rk_<prefix>_<secret>`. It acts as the member "
                "who created it, inside the key's workspace, and only on the operations that list this scheme, "
                "each needing a scope: `chat` for everything under `/api/chat/`; `documents:read` for reading "
                "documents, categories and search; `documents:write` for adding, changing and removing documents "
                "and bulk indexing. A missing scope is 403 `insufficient_scope`; any other endpoint is 403 "
                "`api_key_not_allowed`; a revoked, expired or unknown key is 401 `api_key_invalid`."
            ),
        }
