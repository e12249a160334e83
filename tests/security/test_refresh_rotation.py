"""Issue 13, item 3: a refresh token refreshes once, atomically (parallel refreshes over real
threads, on SQLite and PostgreSQL), and presenting an already-rotated token revokes every token
of its family (refresh token reuse detection, OAuth 2.0 Security BCP)."""

from __future__ import annotations

from collections.abc import Callable

import jwt
import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.security.threads import in_thread, in_threads, threaded_db  # noqa: F401 (a fixture)
from users.models import RevokedTokenFamily

REFRESH = "/api/auth/token/refresh/"
PARALLEL = 8


def login(client: APIClient, username: str) -> dict[str, str]:
    response = client.post("/api/auth/login/", {"username": username, "password": DEFAULT_PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def refresh(client: APIClient, token: str):
    return client.post(REFRESH, {"refresh": token}, format="json")


def family(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["fam"]


@pytest.mark.usefixtures("threaded_db")
def test_parallel_refreshes_of_one_token_rotate_it_once():
    def prepare() -> dict[str, str]:
        UserFactory.create(username="ada")
        return login(APIClient(), "ada")

    tokens = in_thread(prepare)

    def attempt() -> Callable[[], tuple[int, str]]:
        def post() -> tuple[int, str]:
            response = refresh(APIClient(), tokens["refresh"])
            return response.status_code, response.json().get("refresh", "")

        return post

    outcomes = in_threads([attempt() for _ in range(PARALLEL)])
    statuses = sorted(status for status, _ in outcomes)
    assert statuses == [200] + [401] * (PARALLEL - 1), outcomes
    # One successor was issued; and the other presentations were reuse, which revoked the family,
    # the successor included: whoever else held the token (a thief) gets nothing that lasts.
    assert in_thread(lambda: OutstandingToken.objects.count()) == 2
    winner = next(token for status, token in outcomes if status == 200)
    assert in_thread(lambda: refresh(APIClient(), winner).status_code) == 401
    assert in_thread(lambda: RevokedTokenFamily.objects.filter(family=family(winner)).exists())


def test_reusing_a_rotated_token_revokes_every_token_descended_from_it(db, anon_client):
    UserFactory.create(username="ada")
    first = login(anon_client, "ada")["refresh"]
    other_device = login(anon_client, "ada")["refresh"]  # a family of its own
    second = refresh(anon_client, first).json()["refresh"]
    third = refresh(anon_client, second).json()["refresh"]
    assert family(first) == family(second) == family(third) != family(other_device)

    stolen = refresh(anon_client, first)  # an attacker replays the first token
    assert stolen.status_code == 401 and stolen.json()["code"] == "token_not_valid"
    for descendant in (second, third):
        assert refresh(anon_client, descendant).status_code == 401
    assert refresh(anon_client, other_device).status_code == 200  # other logins are untouched


def test_tokens_issued_before_families_rotate_once_and_their_descendants_are_revoked(db, anon_client, user):
    legacy = str(RefreshToken.for_user(user))  # no "fam" claim: its own id is its family
    successor = refresh(anon_client, legacy)
    assert successor.status_code == 200
    assert family(successor.json()["refresh"]) == jwt.decode(legacy, options={"verify_signature": False})["jti"]
    assert refresh(anon_client, legacy).status_code == 401
    assert refresh(anon_client, successor.json()["refresh"]).status_code == 401


def test_a_revoked_family_refreshes_nothing_even_a_token_not_yet_blacklisted(db, anon_client, user):
    """A successor issued while the family was being revoked (the race's losing side) is refused."""
    pair = login(anon_client, user.username)
    RevokedTokenFamily.objects.create(family=family(pair["refresh"]), user=user)
    response = refresh(anon_client, pair["refresh"])
    assert response.status_code == 401 and response.json()["code"] == "token_not_valid"
