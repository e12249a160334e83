"""Reads about accounts."""

from __future__ import annotations

from rest_framework.request import Request

from users.models import User


def request_user(request: Request) -> User:
    """The signed-in user of a view guarded by ``IsAuthenticated``."""
    assert isinstance(request.user, User)
    return request.user
