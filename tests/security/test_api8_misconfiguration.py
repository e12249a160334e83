"""OWASP API8:2023 Security Misconfiguration.

With DEBUG off (the default) no error shows a debug page, a traceback or a setting; CORS answers
only the origins it is told to; every response carries the security headers, HTTPS ones included.

Already covered: ``manage.py check --deploy`` is clean with production settings
(tests/config/test_settings.py::test_check_deploy_is_clean_with_production_settings), DEBUG
defaults to off and a missing SECRET_KEY stops the start (same module), DRF's 404, 405, 415, 400
and 500 are in the envelope without a traceback (tests/utils/test_errors.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware
from django.test import Client

pytestmark = pytest.mark.django_db

ALLOWED_ORIGIN = "https://app.example.com"
EVIL_ORIGIN = "https://evil.example"
DEBUG_PAGE_MARKERS = ("Traceback", "Django Version", "Request Method", "settings.py", "URLconf", "DEBUG = True")


def assert_plain_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"detail", "code"} and body["code"] == code
    text = response.content.decode()
    assert not [marker for marker in DEBUG_PAGE_MARKERS if marker in text]
    assert settings.SECRET_KEY not in text


def test_debug_is_off_under_test_as_in_production():
    assert settings.DEBUG is False


def test_an_error_outside_drf_is_the_json_envelope_without_a_traceback(monkeypatch):
    """A crash in middleware, before any view: Django's own 500 handler answers."""

    def explode(self: Any, request: Any) -> None:
        raise RuntimeError(f"internal detail {settings.SECRET_KEY} at /srv/app/settings.py")

    monkeypatch.setattr(SessionMiddleware, "process_request", explode)
    client = Client(raise_request_exception=False)
    for path in ("/admin/", "/api/health/", "/api/chat/sessions/"):
        response = client.get(path)
        assert_plain_error(response, 500, "server_error")
        assert "internal detail" not in response.content.decode()


def test_unknown_pages_are_a_plain_404_that_lists_no_routes():
    client = Client()
    for path in ("/", "/api/", "/api/v2/chat/", "/admin.php", "/.env", "/static/missing.js"):
        response = client.get(path)
        assert_plain_error(response, 404, "not_found")
        assert "api/auth" not in response.content.decode()


def test_a_forged_host_header_is_a_plain_400():
    response = Client().get("/api/health/", HTTP_HOST="evil.example")
    assert_plain_error(response, 400, "bad_request")
    assert "ALLOWED_HOSTS" not in response.content.decode()


def test_no_browsable_api_or_html_error_pages(api_client):
    for accept in ("text/html", "text/html,application/xhtml+xml,*/*;q=0.8"):
        for path in ("/api/chat/sessions/", "/api/does-not-exist/", "/api/auth/profile/"):
            response = api_client.get(path, HTTP_ACCEPT=accept)
            assert not response["Content-Type"].startswith("text/html"), (path, response["Content-Type"])
            assert b"<html" not in response.content.lower()


# --- CORS ------------------------------------------------------------------------------------------


@pytest.fixture
def cors(settings: Any) -> None:
    settings.CORS_ALLOWED_ORIGINS = [ALLOWED_ORIGIN]


def preflight(client: Any, path: str, origin: str) -> Any:
    return client.options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )


def test_cors_is_closed_by_default(anon_client, api_client):
    assert settings.CORS_ALLOWED_ORIGINS == [] and not getattr(settings, "CORS_ALLOW_ALL_ORIGINS", False)
    for origin in (EVIL_ORIGIN, ALLOWED_ORIGIN, "null"):
        assert "Access-Control-Allow-Origin" not in api_client.get("/api/chat/sessions/", HTTP_ORIGIN=origin)
        assert "Access-Control-Allow-Origin" not in preflight(anon_client, "/api/auth/login/", origin)


def test_a_disallowed_origin_gets_no_cors_headers(cors, anon_client, api_client):
    for origin in (EVIL_ORIGIN, "https://app.example.com.evil.example", "http://app.example.com", "null"):
        response = api_client.get("/api/chat/sessions/", HTTP_ORIGIN=origin)
        assert response.status_code == 200
        assert "Access-Control-Allow-Origin" not in response
        answer = preflight(anon_client, "/api/auth/login/", origin)
        assert "Access-Control-Allow-Origin" not in answer and "Access-Control-Allow-Methods" not in answer


def test_an_allowed_origin_gets_exactly_its_own_origin_and_no_credentials(cors, anon_client, api_client):
    response = api_client.get("/api/chat/sessions/", HTTP_ORIGIN=ALLOWED_ORIGIN)
    assert response["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "Access-Control-Allow-Credentials" not in response
    answer = preflight(anon_client, "/api/auth/login/", ALLOWED_ORIGIN)
    assert answer.status_code == 200 and answer["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "authorization" in answer["Access-Control-Allow-Headers"]


def test_cors_never_applies_outside_the_api(cors):
    response = Client().get("/admin/login/", HTTP_ORIGIN=ALLOWED_ORIGIN)
    assert "Access-Control-Allow-Origin" not in response


# --- security headers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status"),
    [("/api/health/", 200), ("/api/auth/profile/", 401), ("/api/nope/", 404), ("/admin/login/", 200)],
)
def test_security_headers_on_every_kind_of_response(path, status):
    response = Client().get(path, secure=True)
    assert response.status_code == status
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


def test_production_cookie_and_transport_settings():
    """The values ``check --deploy`` wants, as the environment gives them with DEBUG off."""
    assert settings.SESSION_COOKIE_SECURE and settings.CSRF_COOKIE_SECURE and settings.SESSION_COOKIE_HTTPONLY
    assert settings.SECURE_HSTS_SECONDS >= 31_536_000 and settings.SECURE_CONTENT_TYPE_NOSNIFF
    assert settings.CORS_ALLOW_CREDENTIALS is False
    assert settings.SIMPLE_JWT["ALGORITHM"] == "HS256" and settings.SIMPLE_JWT["ISSUER"]
