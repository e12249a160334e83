"""Shared fixtures: users, an authenticated API client, fast hashing, a clean cache per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.factories import UserFactory
from users.models import User
from users.services import tokens_for


@pytest.fixture(autouse=True)
def _fast_hashing_and_clean_cache(settings: Any) -> Iterator[None]:
    # PBKDF2 at Django's default cost would dominate the suite's run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()  # throttles and caches start empty, on fakeredis and on a real Redis alike
    yield
    cache.clear()


@pytest.fixture
def user(db: None) -> User:
    return UserFactory.create()


@pytest.fixture
def staff_user(db: None) -> User:
    return UserFactory.create(is_staff=True)


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


@pytest.fixture
def client_for() -> Callable[[User], APIClient]:
    def make(user: User) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_for(user).access}")
        return client

    return make


@pytest.fixture
def api_client(user: User, client_for: Callable[[User], APIClient]) -> APIClient:
    return client_for(user)


@pytest.fixture
def staff_client(staff_user: User, client_for: Callable[[User], APIClient]) -> APIClient:
    return client_for(staff_user)
