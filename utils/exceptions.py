"""The project's one exception hierarchy.

Every error a service or provider raises on purpose is a ``ServiceError``: it carries the HTTP
status, a stable machine-readable ``code`` and a human ``detail``. The DRF exception handler in
``utils.exception_handler`` renders it in the error envelope. This module imports no Django so
that pure code (chunking, providers) can raise these errors too.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: an expected failure with a status, a code and a message for the client."""

    status_code: int = 400
    code: str = "error"
    default_detail: str = "The request could not be completed."
    retry_after: int | None = None  # seconds, sent as the Retry-After header when set

    def __init__(self, detail: str | None = None, *, code: str | None = None) -> None:
        self.detail = detail or self.default_detail
        if code is not None:
            self.code = code
        super().__init__(self.detail)


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"
    default_detail = "Not found."


class Conflict(ServiceError):
    status_code = 409
    code = "conflict"
    default_detail = "The request conflicts with the current state."


class ValidationFailed(ServiceError):
    """A business-rule violation detected inside a service (not a serializer)."""

    status_code = 400
    code = "invalid"

    def __init__(
        self, detail: str | None = None, *, code: str | None = None, errors: dict[str, list[str]] | None = None
    ) -> None:
        super().__init__(detail, code=code)
        self.errors = errors or {}


class ProviderError(ServiceError):
    """A configured external provider (embedder, vector store, generator) failed."""

    status_code = 503
    code = "provider_error"
    default_detail = "An upstream provider failed."

    def __init__(self, detail: str | None = None, *, provider: str = "", code: str | None = None) -> None:
        self.provider = provider
        super().__init__(detail, code=code)


def public_detail(exc: ServiceError) -> str:
    """What a client may read: a provider's own message can name hosts, paths and internal state
    (the FAISS index directory, an upstream error), so clients get its class's fixed text."""
    return exc.default_detail if isinstance(exc, ProviderError) else exc.detail


class ProviderUnavailable(ProviderError):
    """Refused connection, closed connection, 5xx after retries."""

    code = "provider_unavailable"
    default_detail = "An upstream provider is unavailable."


class ProviderTimeout(ProviderError):
    code = "provider_timeout"
    default_detail = "An upstream provider did not answer in time."


class ProviderRateLimited(ProviderError):
    code = "provider_rate_limited"
    default_detail = "An upstream provider is rate limiting requests."


class ProviderBadResponse(ProviderError):
    """The provider answered, but with something we cannot use (invalid JSON, wrong shape, 4xx)."""

    code = "provider_bad_response"
    default_detail = "An upstream provider returned an unusable response."


class IndexMismatch(ProviderError):
    """The vector index was built by another embedder or with another dimension."""

    code = "index_mismatch"
    default_detail = "The vector index does not match the configured embedder: run `manage.py reindex`."


class AuthenticationFailed(ServiceError):
    status_code = 401
    code = "authentication_failed"
    default_detail = "Invalid credentials."


class PermissionDeniedError(ServiceError):
    status_code = 403
    code = "permission_denied"
    default_detail = "You do not have permission to perform this action."


class Throttled(ServiceError):
    status_code = 429
    code = "throttled"
    default_detail = "Too many requests."

    def __init__(self, detail: str | None = None, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(detail, code=code)
        self.retry_after = max(1, retry_after)
