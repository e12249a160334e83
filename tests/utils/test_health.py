"""/api/health/: 200 when the database and cache answer, 503 naming what is down."""

from __future__ import annotations

import pytest
from django.db import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError

pytestmark = pytest.mark.django_db


def test_health_ok(anon_client):
    response = anon_client.get("/api/health/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["down"] == []
    assert body["checks"]["database"]["ok"] and body["checks"]["cache"]["ok"]


def test_health_names_the_cache_when_it_is_down(anon_client, monkeypatch):
    from django.core.cache import cache

    def broken(*args, **kwargs):
        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(cache, "set", broken)
    response = anon_client.get("/api/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["cache"] and body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is True


def test_health_names_the_database_when_it_is_down(anon_client, monkeypatch):
    from utils import health

    def broken() -> None:
        raise OperationalError("could not connect to server")

    monkeypatch.setitem(health._CHECKS, "database", broken)
    response = anon_client.get("/api/health/")
    assert response.status_code == 503 and response.json()["down"] == ["database"]
