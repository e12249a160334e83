"""Accounts (issue 13, item 12): registration races, stale reset links, access tokens that outlive a
revocation, and usernames that impersonate others."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core import mail
from rest_framework.test import APIClient

from tests.factories import DEFAULT_PASSWORD, UserFactory
from users import services
from users.models import User

pytestmark = pytest.mark.django_db

REGISTER = "/api/auth/register/"
LOGIN = "/api/auth/login/"
PROFILE = "/api/auth/profile/"
STRONG = "Violet-Harbour-Lantern-9"
NEWER = "Copper-Meadow-Whistle-4"


def bearer(access: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


def login(username: str, password: str = DEFAULT_PASSWORD) -> dict[str, Any]:
    response = APIClient().post(LOGIN, {"username": username, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


# --- concurrent registrations -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rival", "field"),
    [
        ({"username": "ADA", "email": "other@example.com"}, "username"),
        ({"username": "bob", "email": "ADA@example.com"}, "email"),
    ],
)
def test_a_registration_that_loses_the_race_for_a_name_or_address_is_a_400(anon_client, monkeypatch, rival, field):
    """Both requests passed validation; the rival committed first. The loser gets a 400, not a 500."""
    validate = services.password_validate

    def rival_commits_meanwhile(**kwargs: Any) -> None:
        UserFactory.create(**rival)
        validate(**kwargs)

    monkeypatch.setattr(services, "password_validate", rival_commits_meanwhile)
    response = anon_client.post(
        REGISTER, {"username": "ada", "email": "ada@example.com", "password": STRONG}, format="json"
    )
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid" and list(body["errors"]) == [field]
    assert mail.outbox == []  # (the rival, created in our transaction here, is rolled back with it)


# --- reset links and access tokens after a change ---------------------------------------------------


def test_a_reset_link_mailed_before_a_password_change_no_longer_works(
    user, anon_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        anon_client.post("/api/auth/password/reset/", {"email": user.email}, format="json")
    match = re.search(r"confirm/ :\s+([\w-]+)", str(mail.outbox[-1].body))
    assert match
    access = login(user.username)["access"]
    changed = bearer(access).post(
        "/api/auth/password/change/", {"old_password": DEFAULT_PASSWORD, "new_password": NEWER}, format="json"
    )
    assert changed.status_code == 200
    reset = anon_client.post(
        "/api/auth/password/reset/confirm/", {"token": match.group(1), "new_password": STRONG}, format="json"
    )
    assert reset.status_code == 400 and reset.json()["code"] == "invalid_token"
    user.refresh_from_db()
    assert user.check_password(NEWER)


def _logout_all(user: User, access: str, refresh: str) -> str | None:
    assert bearer(access).post("/api/auth/logout-all/").status_code == 205
    return None


def _password_change(user: User, access: str, refresh: str) -> str | None:
    body = {"old_password": DEFAULT_PASSWORD, "new_password": NEWER}
    response = bearer(access).post("/api/auth/password/change/", body, format="json")
    assert response.status_code == 200
    return str(response.json()["access"])


def _password_reset(user: User, access: str, refresh: str) -> str | None:
    from users.models import AccountToken

    raw = services.account_token_issue(user=user, purpose=AccountToken.Purpose.RESET_PASSWORD)
    body = {"token": raw, "new_password": NEWER}
    assert APIClient().post("/api/auth/password/reset/confirm/", body, format="json").status_code == 200
    return None


@pytest.mark.parametrize("revoke", [_logout_all, _password_change, _password_reset])
def test_access_tokens_issued_before_a_revocation_stop_working_at_once(user, revoke):
    tokens = login(user.username)
    other_device = login(user.username)["access"]
    assert bearer(tokens["access"]).get(PROFILE).status_code == 200
    fresh = revoke(user, tokens["access"], tokens["refresh"])
    for access in (tokens["access"], other_device):
        response = bearer(access).get(PROFILE)
        assert response.status_code == 401 and response.json()["code"] == "token_revoked"
    if fresh is not None:  # the password change hands this client a new pair, which works
        assert bearer(fresh).get(PROFILE).status_code == 200
    again = login(user.username, NEWER if revoke is not _logout_all else DEFAULT_PASSWORD)
    assert bearer(again["access"]).get(PROFILE).status_code == 200


def test_a_refreshed_access_token_keeps_the_generation_of_its_refresh_token(user):
    tokens = login(user.username)
    rotated = APIClient().post("/api/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json").json()
    assert bearer(rotated["access"]).get(PROFILE).status_code == 200
    services.token_generation_bump(user=user)
    assert bearer(rotated["access"]).get(PROFILE).status_code == 401


# --- usernames ---------------------------------------------------------------------------------------


def test_a_username_mixing_alphabets_is_refused(anon_client):
    for name in ["p\u0430ypal", "\u0430dmin", "Ad\u03bcin"]:  # Cyrillic a, Greek mu among Latin letters
        response = anon_client.post(
            REGISTER, {"username": name, "email": "x@example.com", "password": STRONG}, format="json"
        )
        assert response.status_code == 400 and "username" in response.json()["errors"], name
    assert not User.objects.exists()


def test_compatibility_forms_of_a_name_are_that_name(anon_client):
    UserFactory.create(username="bob")
    fullwidth = anon_client.post(
        REGISTER, {"username": "\uff42\uff4f\uff42", "email": "b2@example.com", "password": STRONG}, format="json"
    )
    assert fullwidth.status_code == 400 and "username" in fullwidth.json()["errors"]
    ligature = anon_client.post(
        REGISTER, {"username": "\ufb01x", "email": "fix@example.com", "password": STRONG}, format="json"
    )
    assert ligature.status_code == 201 and ligature.json()["username"] == "fix"
    User.objects.filter(username="fix").update(is_verified=True)
    assert APIClient().post(LOGIN, {"username": "\ufb01x", "password": STRONG}, format="json").status_code == 200


def test_names_in_one_writing_system_are_accepted(anon_client):
    for n, name in enumerate(["Łukasz", "Ελένη", "Дмитрий", "田中さん", "jalapeño_42"]):
        body = {"username": name, "email": f"u{n}@example.com", "password": STRONG}
        assert anon_client.post(REGISTER, body, format="json").status_code == 201, name
