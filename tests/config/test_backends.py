"""The suite really runs on the backends the environment names (CI's second pass uses them)."""

from __future__ import annotations

import os

import pytest
from django.conf import settings
from django.db import connection

from utils.redis import get_redis


@pytest.mark.django_db
def test_database_backend_follows_database_url():
    expected = "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "sqlite"
    assert connection.vendor == expected


def test_redis_backend_follows_redis_url():
    real = bool(os.environ.get("REDIS_URL") or os.environ.get("REDIS_HOST"))
    assert settings.USE_FAKE_REDIS is not real
    client = get_redis()
    client.set("backend-probe", "1", ex=5)
    assert client.get("backend-probe") == b"1"
    assert ("Fake" in client.connection_pool.connection_class.__name__) is not real
