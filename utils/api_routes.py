"""Django's ``CommonMiddleware``, except that under ``/api/`` an unknown route is a JSON 404.

Django's behaviour there is wrong for an API: with ``DEBUG`` on an unknown route is an HTML page
and a POST to a route without its trailing slash (``/api/auth/login``) a 500 about
``APPEND_SLASH``; with ``DEBUG`` off the same POST is redirected, and clients follow a 301 with a
GET. Under ``/api/`` there is never a redirect: the 404 is the error envelope, and names the route
with the slash when that one exists.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.middleware.common import CommonMiddleware
from django.urls import get_urlconf, is_valid_path

from utils.exception_handler import error_body

API_PREFIX = "/api/"


def is_api_path(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX) or request.path_info == API_PREFIX.rstrip("/")


def api_not_found(request: HttpRequest) -> JsonResponse:
    """404 in the envelope; a missing trailing slash is named rather than guessed at."""
    path = request.path_info
    if not path.endswith("/") and is_valid_path(f"{path}/", get_urlconf()):
        detail = f"Not found. API routes end with a slash: {request.path}/"
    else:
        detail = "Not found."
    return JsonResponse(error_body(detail, "not_found"), status=404)


class ApiCommonMiddleware(CommonMiddleware):
    """``CommonMiddleware`` with JSON 404s and no slash redirects under ``/api/``."""

    def should_redirect_with_slash(self, request: HttpRequest) -> bool:
        return not is_api_path(request) and super().should_redirect_with_slash(request)

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        # No view matched (a view's own 404 is already an envelope, from DRF's handler).
        if response.status_code == 404 and is_api_path(request) and getattr(request, "resolver_match", None) is None:
            replacement = api_not_found(request)
            for header, value in response.items():  # those the middleware after this one added
                if header.lower() not in ("content-type", "content-length"):
                    replacement[header] = value
            response = replacement
        return super().process_response(request, response)
