"""``GET /metrics`` for Prometheus, outside ``/api/`` and the OpenAPI schema (a plain Django view).

Guarded: with ``METRICS_TOKEN`` set a scrape needs ``Authorization: Bearer <token>`` (compared in
constant time); without it the endpoint does not exist (404), except with ``DEBUG`` on for a
client on loopback, so a developer can look at it without configuring anything.
"""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse

from utils.exception_handler import error_body
from utils.metrics import exposition
from utils.views import page_not_found


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _refusal(request: HttpRequest) -> HttpResponse | None:
    """The response that refuses this scrape, or None to serve it."""
    token: str = settings.METRICS_TOKEN
    if not token:
        if settings.DEBUG and _is_loopback(request.META.get("REMOTE_ADDR", "")):
            return None
        return page_not_found(request)  # not configured: the endpoint does not exist
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return None
    response = JsonResponse(error_body("A valid metrics bearer token is required.", "not_authenticated"), status=401)
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus text format (OpenMetrics when the scraper asks for it)."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    body, content_type = exposition(request.headers.get("Accept", ""))
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
