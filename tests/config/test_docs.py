"""The OpenAPI schema and the offline Swagger UI / ReDoc pages."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture
def schema(anon_client) -> dict:
    response = anon_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def test_schema_declares_bearer_jwt(schema):
    schemes = schema["components"]["securitySchemes"]
    assert any(s.get("type") == "http" and s.get("scheme") == "bearer" for s in schemes.values())


def test_every_operation_documents_request_responses_and_examples(schema):
    seen = 0
    for path, method, op in operations(schema):
        seen += 1
        assert op.get("summary"), f"{method} {path} has no summary"
        assert op["responses"], f"{method} {path} has no responses"
        if (
            method in ("post", "put", "patch")
            and "{token}" not in path
            and not path.endswith(("logout-all/", "leave/"))
        ):
            assert "requestBody" in op, f"{method} {path} has no request body"
            assert any(c.get("examples") for c in op["requestBody"]["content"].values()), f"{method} {path}"
        examples = [
            c.get("examples")
            for code, resp in op["responses"].items()
            if code.startswith("2")
            for c in resp.get("content", {}).values()
        ]
        has_body = any(resp.get("content") for code, resp in op["responses"].items() if code.startswith("2"))
        assert not has_body or any(examples), f"{method} {path} has no response example"
        errors = [code for code in op["responses"] if code[0] in "45"]
        assert errors, f"{method} {path} documents no error response"
    assert seen >= 14


def test_auth_routes_are_in_the_schema(schema):
    expected = {
        "/api/auth/register/",
        "/api/auth/verify-email/",
        "/api/auth/verify-email/{token}/",
        "/api/auth/resend-verification/",
        "/api/auth/login/",
        "/api/auth/token/refresh/",
        "/api/token/refresh/",
        "/api/auth/logout/",
        "/api/auth/logout-all/",
        "/api/auth/profile/",
        "/api/auth/password/change/",
        "/api/auth/password/reset/",
        "/api/auth/password/reset/confirm/",
        "/api/health/",
    }
    assert expected <= set(schema["paths"])


def test_swagger_ui_is_served_without_any_cdn(anon_client):
    response = anon_client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    external = [u for u in re.findall(r"""(?:src|href)=["']([^"']+)""", html) if re.match(r"(https?:)?//", u)]
    assert external == []
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html


def test_swagger_static_assets_are_served(anon_client):
    response = anon_client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert response.status_code == 200


def test_redoc_is_served(anon_client):
    response = anon_client.get("/api/redoc/")
    assert response.status_code == 200 and "redoc" in response.content.decode().lower()
