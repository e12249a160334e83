"""Every error, DRF's or Django's, comes back in the one envelope; 500s carry no traceback."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connection, transaction
from rest_framework import exceptions as drf_exceptions
from rest_framework.test import APIClient

from users import services
from users.models import User
from utils.exception_handler import api_exception_handler
from utils.exceptions import ServiceError, ValidationFailed

pytestmark = pytest.mark.django_db


def assert_envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code and isinstance(body["detail"], str)
    return body


def test_unknown_route_is_json_404(anon_client):
    assert_envelope(anon_client.get("/api/does-not-exist/"), 404, "not_found")
    assert_envelope(anon_client.get("/nothing-here"), 404, "not_found")


def test_wrong_method_is_405(anon_client):
    assert_envelope(anon_client.get("/api/auth/login/"), 405, "method_not_allowed")


def test_unsupported_media_type_is_415(anon_client):
    response = anon_client.post("/api/auth/login/", data="username=a", content_type="text/plain")
    assert_envelope(response, 415, "unsupported_media_type")


def test_malformed_json_is_400(anon_client):
    response = anon_client.post("/api/auth/login/", data='{"username": ', content_type="application/json")
    assert_envelope(response, 400, "parse_error")


def test_validation_error_lists_fields(anon_client):
    body = assert_envelope(anon_client.post("/api/auth/register/", {}, format="json"), 400, "invalid")
    assert {"username", "email", "password"} <= set(body["errors"])


def test_uncaught_exception_is_500_without_traceback(monkeypatch, user):
    def explode(**kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(services, "user_login", explode)
    response = APIClient().post("/api/auth/login/", {"username": "a", "password": "b"}, format="json")
    body = assert_envelope(response, 500, "server_error")
    assert "secret internal detail" not in response.content.decode()
    assert "Traceback" not in response.content.decode() and set(body) == {"detail", "code"}


def test_database_down_is_503(monkeypatch, user):
    def refuse(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(services, "user_login", refuse)
    response = APIClient().post("/api/auth/login/", {"username": "a", "password": "b"}, format="json")
    assert_envelope(response, 503, "database_unavailable")
    assert "connection refused" not in response.content.decode()


@pytest.mark.parametrize(
    "exc",
    [
        ServiceError("Nope."),
        ValidationFailed("Bad.", errors={"name": ["taken"]}),
        drf_exceptions.ValidationError({"name": ["taken"]}),
        RuntimeError("boom"),
    ],
    ids=["service", "validation-failed", "drf", "unexpected"],
)
def test_a_handled_error_rolls_back_the_request_transaction(exc, monkeypatch):
    """As DRF's handler does: under ATOMIC_REQUESTS, what the view wrote before failing is undone."""
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    with transaction.atomic():
        User.objects.create_user(username="written-before-the-error", password="pw-0123456789")
        response = api_exception_handler(exc, {"request": None})
        assert response.status_code >= 400
        assert transaction.get_rollback()
    assert not User.objects.filter(username="written-before-the-error").exists()
