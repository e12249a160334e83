"""OWASP API9:2023 Improper Inventory Management.

The OpenAPI schema is the inventory: every route under /api/ is in it with exactly the methods its
view implements, nothing in it is stale, and a method that is not documented answers 405 (OPTIONS
included; CORS preflights are answered by the CORS middleware). Routes outside /api/ are the
admin and the metrics endpoint, and nothing else.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from drf_spectacular.generators import SchemaGenerator

from tests.security.routes import HTTP_METHODS, Route, all_routes, api_routes

pytestmark = pytest.mark.django_db

# The documentation endpoints serve the schema; they are not part of it.
SCHEMA_ENDPOINTS = {"schema", "swagger-ui", "redoc"}
UNDOCUMENTED_PROBES = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def documented(schema: dict[str, Any]) -> dict[str, set[str]]:
    return {
        path: {method.upper() for method in item if method in HTTP_METHODS} for path, item in schema["paths"].items()
    }


def inventory_routes() -> list[Route]:
    return [route for route in api_routes() if route.name not in SCHEMA_ENDPOINTS]


def test_every_api_route_is_documented_with_exactly_its_methods(schema):
    in_schema = documented(schema)
    actual = {route.openapi_path: set(route.methods) for route in inventory_routes()}
    assert set(actual) - set(in_schema) == set(), "routes missing from the OpenAPI schema"
    assert set(in_schema) - set(actual) == set(), "schema paths that no route serves"
    assert {path: methods for path, methods in actual.items() if methods != in_schema[path]} == {}


def test_only_the_admin_and_metrics_live_outside_the_api():
    outside = {route.name for route in all_routes() if not route.pattern.startswith("api/")}
    assert {name for name in outside if not name.startswith("admin:")} == {"metrics"}


def test_undocumented_methods_answer_405(schema, staff_client):
    """As staff, so that no permission check answers first; the cache is cleared between calls so
    that no throttle does either."""
    in_schema = documented(schema)
    checked = 0
    for route in inventory_routes():
        allowed = in_schema[route.openapi_path]
        url = route.url(**dict.fromkeys(route.parameters, "1"))
        for method in UNDOCUMENTED_PROBES:
            if method in allowed:
                continue
            cache.clear()
            response = staff_client.generic(method, url)
            assert response.status_code == 405, (method, url, response.status_code, response.content[:200])
            assert response.json()["code"] == "method_not_allowed"
            checked += 1
    assert checked > 3 * len(in_schema)


def test_options_reveals_no_view_metadata(anon_client, api_client):
    for client, url in [(anon_client, "/api/auth/register/"), (api_client, "/api/chat/sessions/")]:
        response = client.options(url)
        assert response.status_code in (401, 405)
        assert "actions" not in response.json() and "parses" not in response.json()


def test_the_served_schema_is_the_generated_one(anon_client, schema):
    served = anon_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert served.status_code == 200
    assert set(served.json()["paths"]) == set(schema["paths"])
