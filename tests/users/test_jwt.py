"""Access tokens that must be refused: tampered, expired, unsigned, wrong key, wrong issuer."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken

pytestmark = pytest.mark.django_db

PROFILE = "/api/auth/profile/"


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims(user, **overrides) -> dict:
    payload = dict(AccessToken.for_user(user).payload)
    payload["iss"] = settings.SIMPLE_JWT["ISSUER"]  # simplejwt adds it when encoding
    payload.update(overrides)
    return payload


def get_profile(anon_client, token: str):
    return anon_client.get(PROFILE, HTTP_AUTHORIZATION=f"Bearer {token}")


def assert_refused(response) -> None:
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "token_not_valid"


def test_valid_token_is_accepted(anon_client, user):
    token = jwt.encode(claims(user), settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256")
    assert get_profile(anon_client, token).status_code == 200


def test_tampered_signature(anon_client, user):
    token = str(AccessToken.for_user(user))
    head, body, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert_refused(get_profile(anon_client, f"{head}.{body}.{flipped}"))


def test_tampered_payload(anon_client, user, staff_user):
    token = str(AccessToken.for_user(user))
    head, _, signature = token.split(".")
    forged = b64(claims(user, user_id=str(staff_user.pk)))
    assert_refused(get_profile(anon_client, f"{head}.{forged}.{signature}"))


def test_expired(anon_client, user):
    past = timezone.now() - timedelta(minutes=1)
    payload = claims(user, exp=int(past.timestamp()))
    assert_refused(get_profile(anon_client, jwt.encode(payload, settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256")))


def test_alg_none(anon_client, user):
    token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims(user))}."
    assert_refused(get_profile(anon_client, token))


def test_wrong_key(anon_client, user):
    token = jwt.encode(claims(user), "another-secret-key-that-is-long-enough-0123456789", algorithm="HS256")
    assert_refused(get_profile(anon_client, token))


@pytest.mark.parametrize("issuer", ["evil-issuer", None])
def test_wrong_or_missing_issuer(anon_client, user, issuer):
    payload = claims(user, iss=issuer)
    if issuer is None:
        payload.pop("iss")
    token = jwt.encode(payload, settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256")
    assert_refused(get_profile(anon_client, token))


def test_issued_tokens_carry_the_issuer_and_lifetimes(user):
    encoded = str(AccessToken.for_user(user))
    assert jwt.get_unverified_header(encoded)["alg"] == "HS256"
    access = jwt.decode(encoded, options={"verify_signature": False})
    assert access["iss"] == settings.SIMPLE_JWT["ISSUER"]
    assert access["exp"] - access["iat"] == 15 * 60


def test_refresh_token_is_not_an_access_token(anon_client, user):
    from rest_framework_simplejwt.tokens import RefreshToken

    assert_refused(get_profile(anon_client, str(RefreshToken.for_user(user))))


def test_inactive_user_access_token_refused(anon_client, user):
    token = str(AccessToken.for_user(user))
    user.is_active = False
    user.save()
    response = get_profile(anon_client, token)
    assert response.status_code == 401 and response.json()["code"] == "user_inactive"
