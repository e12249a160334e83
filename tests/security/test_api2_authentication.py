"""OWASP API2:2023 Broken Authentication.

Already covered elsewhere (see docs/SECURITY.md): alg=none, expired, tampered and wrongly signed
tokens, a wrong or missing issuer, a refresh token used as an access token, an inactive user's
access token (tests/users/test_jwt.py); rotation with blacklisting, a blacklisted refresh token,
inactive and deleted users at refresh, logout, logout-all, login throttling
(tests/users/test_api.py). This module adds the cases those leave open.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jwt
import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from tests.factories import DEFAULT_PASSWORD, UserFactory
from users.models import User

pytestmark = pytest.mark.django_db

PROFILE = "/api/auth/profile/"
LOGIN = "/api/auth/login/"
REFRESH = "/api/auth/token/refresh/"


def claims(user: User, **overrides: Any) -> dict[str, Any]:
    payload = dict(AccessToken.for_user(user).payload)
    payload["iss"] = settings.SIMPLE_JWT["ISSUER"]
    return payload | overrides


def profile(client: Any, token: str, scheme: str = "Bearer") -> Any:
    return client.get(PROFILE, HTTP_AUTHORIZATION=f"{scheme} {token}")


def assert_401(response: Any, code: str | None = None) -> None:
    assert response.status_code == 401, response.content
    body = response.json()
    assert set(body) == {"detail", "code"} and (code is None or body["code"] == code)
    assert "access" not in body and "user" not in body


def test_deleted_users_access_token_is_refused(anon_client, user):
    token = str(AccessToken.for_user(user))
    assert profile(anon_client, token).status_code == 200
    user.delete()
    assert_401(profile(anon_client, token), "user_not_found")


def test_deactivated_users_refresh_and_access_tokens_both_stop_working(anon_client, user):
    refresh = RefreshToken.for_user(user)
    user.is_active = False
    user.save()
    assert_401(profile(anon_client, str(refresh.access_token)), "user_inactive")
    assert_401(anon_client.post(REFRESH, {"refresh": str(refresh)}, format="json"))


@pytest.mark.filterwarnings("ignore:The HMAC key is")  # PyJWT on our 58-byte test key with SHA-512
@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_only_hs256_is_accepted_even_with_the_right_key(anon_client, user, algorithm):
    token = jwt.encode(claims(user), settings.SIMPLE_JWT["SIGNING_KEY"], algorithm=algorithm)
    assert_401(profile(anon_client, token), "token_not_valid")


def test_a_token_from_before_the_not_before_time_or_issued_in_the_future_is_refused(anon_client, user):
    later = int((timezone.now() + timedelta(minutes=5)).timestamp())
    for overrides in ({"nbf": later}, {"iat": later}):
        token = jwt.encode(claims(user, **overrides), settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256")
        assert_401(profile(anon_client, token), "token_not_valid")


def test_access_token_is_not_a_refresh_token(anon_client, user):
    access = str(AccessToken.for_user(user))
    assert_401(anon_client.post(REFRESH, {"refresh": access}, format="json"), "token_not_valid")


def test_a_blacklisted_refresh_token_is_refused_everywhere(anon_client, user, client_for):
    refresh = RefreshToken.for_user(user)
    refresh.blacklist()
    assert_401(anon_client.post(REFRESH, {"refresh": str(refresh)}, format="json"), "token_not_valid")
    assert_401(anon_client.post("/api/token/refresh/", {"refresh": str(refresh)}, format="json"), "token_not_valid")
    assert_401(profile(anon_client, str(refresh)))  # nor does it authenticate a request


def test_tokens_are_read_from_the_bearer_header_only(anon_client, user):
    token = str(AccessToken.for_user(user))
    assert_401(profile(anon_client, token, scheme="JWT"))
    assert_401(profile(anon_client, token, scheme="Token"))
    assert_401(anon_client.get(PROFILE, {"token": token}))
    assert_401(anon_client.get(PROFILE, {"access": token}))
    anon_client.cookies["access"] = token
    assert_401(anon_client.get(PROFILE))


def test_garbage_in_the_authorization_header_is_a_clean_401(anon_client):
    for value in ("Bearer", "Bearer a.b", "Bearer " + "x" * 5000, "Bearer \x00\x01", "Bearer a b c"):
        response = anon_client.get(PROFILE, HTTP_AUTHORIZATION=value)
        assert_401(response)


def test_a_token_carries_no_secret_or_privilege_claim(user):
    for token in (AccessToken.for_user(user), RefreshToken.for_user(user)):
        payload = jwt.decode(str(token), options={"verify_signature": False})
        assert set(payload) <= {"token_type", "exp", "iat", "jti", "user_id", "iss"}, payload


def test_login_does_not_reveal_which_accounts_exist(anon_client):
    UserFactory.create(username="ada", email="ada@example.com")
    wrong_password = anon_client.post(LOGIN, {"username": "ada", "password": "wrong"}, format="json")
    nobody = anon_client.post(LOGIN, {"username": "nobody", "password": "wrong"}, format="json")
    by_email = anon_client.post(LOGIN, {"email": "nobody@example.com", "password": "wrong"}, format="json")
    assert wrong_password.status_code == nobody.status_code == by_email.status_code == 401
    assert wrong_password.json() == nobody.json() == by_email.json()


def test_login_throttle_counts_the_client_not_the_account(anon_client):
    """Credential stuffing: trying many accounts from one client is throttled like one account."""
    UserFactory.create(username="ada")
    statuses = [
        anon_client.post(
            LOGIN, {"username": f"victim{n}", "password": "guess"}, format="json", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}"
        ).status_code
        for n in range(5)
    ]
    assert statuses == [401] * 5
    response = anon_client.post(LOGIN, {"username": "ada", "password": DEFAULT_PASSWORD}, format="json")
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert "access" not in response.json()


def test_token_responses_are_never_cached(anon_client, user):
    response = anon_client.post(LOGIN, {"username": user.username, "password": DEFAULT_PASSWORD}, format="json")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    refreshed = anon_client.post(REFRESH, {"refresh": response.json()["refresh"]}, format="json")
    assert refreshed.status_code == 200 and "no-store" in refreshed["Cache-Control"]
    changed = anon_client.post(
        "/api/auth/password/change/",
        {"old_password": DEFAULT_PASSWORD, "new_password": "Violet-Harbour-Lantern-9"},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {refreshed.json()['access']}",
    )
    assert changed.status_code == 200 and "no-store" in changed["Cache-Control"]
