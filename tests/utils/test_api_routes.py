"""Under /api/ an unknown route is the JSON envelope, with DEBUG on or off, and a missing trailing
slash is a 404 that names the right route: never an HTML page, a 500 or a redirect."""

from __future__ import annotations

import pytest
from django.test import Client


@pytest.fixture(params=[True, False], ids=["debug", "production"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/no/such/route/", "/api/chat/sessions/not-a-number/", "/api", "/api/x"])
def test_unknown_api_route_is_a_json_404(debug, path):
    response = Client().get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found.", "code": "not_found"}


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_missing_slash_is_a_404_naming_the_route(debug, method):
    response = getattr(Client(), method)("/api/auth/login", {"username": "a"}, content_type="application/json")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "detail": "Not found. API routes end with a slash: /api/auth/login/",
        "code": "not_found",
    }


@pytest.mark.django_db
def test_outside_the_api_slashes_are_still_appended(settings):
    settings.DEBUG = False
    response = Client().get("/admin")
    assert response.status_code == 301 and response["Location"] == "/admin/"
