"""The account API: registration, verification, login, tokens, profile and passwords."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from tests.factories import DEFAULT_PASSWORD, UserFactory
from users.models import AccountToken, User

pytestmark = pytest.mark.django_db

REGISTER = "/api/auth/register/"
LOGIN = "/api/auth/login/"
REFRESH = "/api/auth/token/refresh/"
PROFILE = "/api/auth/profile/"
STRONG = "Violet-Harbour-Lantern-9"


def register(client: APIClient, capture: Any, **overrides: Any) -> Any:
    body = {"username": "ada", "email": "Ada@Example.com", "password": STRONG} | overrides
    with capture(execute=True):
        return client.post(REGISTER, body, format="json")


def mailed_token(kind: str = "verify-email") -> str:
    body = str(mail.outbox[-1].body)
    if kind == "verify-email":
        match = re.search(r"http://testserver/api/auth/verify-email/([\w-]+)/", body)
    else:
        match = re.search(r"confirm/ :\s+([\w-]+)", body)
    assert match, body
    return match.group(1)


def login(client: APIClient, identifier: str = "ada", password: str = STRONG, field: str = "username") -> Any:
    return client.post(LOGIN, {field: identifier, "password": password}, format="json")


def assert_envelope(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["code"], str)
    if code:
        assert body["code"] == code
    return body


# --- registration ---------------------------------------------------------------------------


def test_register_creates_unverified_user_and_mails_a_link(anon_client, django_capture_on_commit_callbacks):
    response = register(anon_client, django_capture_on_commit_callbacks)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "username", "email", "date_joined", "is_verified"}
    assert body["email"] == "ada@example.com" and body["is_verified"] is False
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ada@example.com"]
    raw = mailed_token()
    stored = AccountToken.objects.get(user_id=body["id"])
    assert raw not in stored.token_hash and len(stored.token_hash) == 64
    assert timedelta(hours=23, minutes=59) < stored.expires_at - stored.created_at <= timedelta(hours=24)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"password": "short"}, "password"),
        ({"password": "password123"}, "password"),
        ({"email": "not-an-email"}, "email"),
        ({"username": ""}, "username"),
        ({"username": "has@sign"}, "username"),
        ({"password_confirm": "different-Thing-77"}, "password_confirm"),
    ],
)
def test_register_validation_errors(anon_client, django_capture_on_commit_callbacks, overrides, field):
    response = register(anon_client, django_capture_on_commit_callbacks, **overrides)
    body = assert_envelope(response, 400, "invalid")
    assert field in body["errors"]
    assert not User.objects.exists()


def test_register_duplicate_username_or_email_is_400(anon_client, django_capture_on_commit_callbacks):
    UserFactory.create(username="Ada", email="ada@example.com")
    body = assert_envelope(register(anon_client, django_capture_on_commit_callbacks, email="x@example.com"), 400)
    assert "username" in body["errors"]
    body = assert_envelope(register(anon_client, django_capture_on_commit_callbacks, username="bob"), 400)
    assert "email" in body["errors"]


def test_register_ignores_privilege_fields(anon_client, django_capture_on_commit_callbacks):
    response = register(
        anon_client, django_capture_on_commit_callbacks, is_staff=True, is_superuser=True, is_verified=True
    )
    assert response.status_code == 201
    user = User.objects.get()
    assert (user.is_staff, user.is_superuser, user.is_verified) == (False, False, False)


# --- verification ---------------------------------------------------------------------------


def test_verify_by_link_get_then_reuse_is_400_saying_already_verified(anon_client, django_capture_on_commit_callbacks):
    register(anon_client, django_capture_on_commit_callbacks)
    token = mailed_token()
    response = anon_client.get(f"/api/auth/verify-email/{token}/")
    assert response.status_code == 200 and response.json()["is_verified"] is True
    assert User.objects.get().is_verified
    reused = anon_client.get(f"/api/auth/verify-email/{token}/")
    assert_envelope(reused, 400, "already_verified")
    assert "already verified" in reused.json()["detail"]


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_a_browser_gets_a_page_and_a_second_click_says_already_verified(
    anon_client, django_capture_on_commit_callbacks
):
    register(anon_client, django_capture_on_commit_callbacks)
    token = mailed_token()
    first = anon_client.get(f"/api/auth/verify-email/{token}/", HTTP_ACCEPT=BROWSER_ACCEPT)
    assert first.status_code == 200 and first["Content-Type"] == "text/html; charset=utf-8"
    assert "<h1" in first.content.decode() and "Email address verified" in first.content.decode()
    assert User.objects.get().is_verified
    second = anon_client.get(f"/api/auth/verify-email/{token}/", HTTP_ACCEPT=BROWSER_ACCEPT)
    assert second.status_code == 400 and second["Content-Type"].startswith("text/html")
    assert "Already verified" in second.content.decode() and "invalid" not in second.content.decode()


def test_a_browser_with_a_bad_link_is_told_how_to_get_a_new_one(anon_client):
    response = anon_client.get("/api/auth/verify-email/not-a-token/", HTTP_ACCEPT=BROWSER_ACCEPT)
    assert response.status_code == 400 and response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "This link does not work" in page and "/api/auth/resend-verification/" in page


def test_api_clients_still_get_json_from_the_link(anon_client, django_capture_on_commit_callbacks):
    register(anon_client, django_capture_on_commit_callbacks)
    response = anon_client.get(f"/api/auth/verify-email/{mailed_token()}/", HTTP_ACCEPT="*/*")
    assert response["Content-Type"] == "application/json" and response.json()["is_verified"] is True


def test_a_retired_link_of_an_unverified_account_is_still_invalid(anon_client, django_capture_on_commit_callbacks):
    register(anon_client, django_capture_on_commit_callbacks)
    first = mailed_token()
    with django_capture_on_commit_callbacks(execute=True):
        anon_client.post("/api/auth/resend-verification/", {"email": "ada@example.com"}, format="json")
    assert_envelope(anon_client.get(f"/api/auth/verify-email/{first}/"), 400, "invalid_token")


def test_verify_by_link_post_and_by_body(anon_client, django_capture_on_commit_callbacks):
    register(anon_client, django_capture_on_commit_callbacks)
    assert anon_client.post(f"/api/auth/verify-email/{mailed_token()}/").status_code == 200
    register(anon_client, django_capture_on_commit_callbacks, username="bob", email="bob@example.com")
    response = anon_client.post("/api/auth/verify-email/", {"token": mailed_token()}, format="json")
    assert response.status_code == 200 and User.objects.get(username="bob").is_verified


def test_verify_rejects_bad_expired_and_missing_tokens(anon_client, django_capture_on_commit_callbacks):
    register(anon_client, django_capture_on_commit_callbacks)
    assert_envelope(anon_client.post("/api/auth/verify-email/", {"token": "nope"}, format="json"), 400, "invalid_token")
    assert_envelope(anon_client.post("/api/auth/verify-email/", {}, format="json"), 400, "invalid")
    AccountToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_envelope(anon_client.get(f"/api/auth/verify-email/{mailed_token()}/"), 400, "invalid_token")
    assert not User.objects.get().is_verified


def test_a_new_verification_link_retires_the_old_one(anon_client, django_capture_on_commit_callbacks):
    register(anon_client, django_capture_on_commit_callbacks)
    first = mailed_token()
    with django_capture_on_commit_callbacks(execute=True):
        anon_client.post("/api/auth/resend-verification/", {"email": "ada@example.com"}, format="json")
    second = mailed_token()
    assert_envelope(anon_client.get(f"/api/auth/verify-email/{first}/"), 400, "invalid_token")
    assert anon_client.get(f"/api/auth/verify-email/{second}/").status_code == 200


def test_resend_verification_is_202_for_everyone_but_mails_only_unverified(
    anon_client, django_capture_on_commit_callbacks
):
    UserFactory.create(email="done@example.com", is_verified=True)
    UserFactory.create(email="todo@example.com", is_verified=False)
    for email in ("nobody@example.com", "done@example.com", "todo@example.com"):
        with django_capture_on_commit_callbacks(execute=True):
            response = anon_client.post("/api/auth/resend-verification/", {"email": email}, format="json")
        assert response.status_code == 202
    assert [m.to for m in mail.outbox] == [["todo@example.com"]]
    assert_envelope(anon_client.post("/api/auth/resend-verification/", {"email": "x"}, format="json"), 400)


# --- login ----------------------------------------------------------------------------------


def test_login_by_username_or_email_returns_tokens_and_user(anon_client):
    UserFactory.create(username="ada", email="ada@example.com")
    for identifier, field in (("ada", "username"), ("ADA@example.com", "username"), ("ada@example.com", "email")):
        response = login(anon_client, identifier, DEFAULT_PASSWORD, field)
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["user"]["username"] == "ada" and body["access"] and body["refresh"]
        assert anon_client.get(PROFILE, HTTP_AUTHORIZATION=f"Bearer {body['access']}").status_code == 200


def test_login_wrong_credentials_unverified_inactive(anon_client, settings):
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**rates, "login": "100/min"}}
    UserFactory.create(username="ada")
    UserFactory.create(username="new", is_verified=False)
    UserFactory.create(username="gone", is_active=False)
    assert_envelope(login(anon_client, "ada", "wrong-password"), 401, "authentication_failed")
    assert_envelope(login(anon_client, "nobody", DEFAULT_PASSWORD), 401, "authentication_failed")
    assert_envelope(login(anon_client, "gone", DEFAULT_PASSWORD), 401, "authentication_failed")
    assert_envelope(login(anon_client, "new", DEFAULT_PASSWORD), 403, "email_not_verified")
    assert_envelope(anon_client.post(LOGIN, {"password": "x"}, format="json"), 400, "invalid")
    settings.REQUIRE_EMAIL_VERIFICATION = False
    assert login(anon_client, "new", DEFAULT_PASSWORD).status_code == 200


def test_sixth_login_in_a_minute_is_429_with_retry_after(anon_client):
    UserFactory.create(username="ada")
    statuses = [login(anon_client, "ada", "wrong").status_code for _ in range(5)]
    assert statuses == [401] * 5
    response = login(anon_client, "ada", DEFAULT_PASSWORD)
    assert_envelope(response, 429, "throttled")
    assert 0 < int(response["Retry-After"]) <= 60


def test_register_throttle_uses_rate_from_settings(anon_client, settings, django_capture_on_commit_callbacks):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "register": "2/hour"},
    }
    for n in range(2):
        response = register(anon_client, django_capture_on_commit_callbacks, username=f"u{n}", email=f"u{n}@e.com")
        assert response.status_code == 201
    response = register(anon_client, django_capture_on_commit_callbacks, username="u9", email="u9@e.com")
    assert_envelope(response, 429, "throttled")
    assert int(response["Retry-After"]) > 60


# --- refresh, logout ------------------------------------------------------------------------


@pytest.fixture
def tokens(anon_client) -> dict[str, str]:
    UserFactory.create(username="ada")
    return login(anon_client, "ada", DEFAULT_PASSWORD).json()


@pytest.mark.parametrize("path", [REFRESH, "/api/token/refresh/"])
def test_refresh_rotates_and_blacklists_the_old_token(anon_client, tokens, path):
    response = anon_client.post(path, {"refresh": tokens["refresh"]}, format="json")
    assert response.status_code == 200
    fresh = response.json()
    assert set(fresh) == {"access", "refresh"} and fresh["refresh"] != tokens["refresh"]
    newest = anon_client.post(path, {"refresh": fresh["refresh"]}, format="json")
    assert newest.status_code == 200
    assert_envelope(anon_client.post(path, {"refresh": tokens["refresh"]}, format="json"), 401, "token_not_valid")
    # Reuse of a rotated token revokes its whole family (tests/security/test_refresh_rotation.py).
    assert_envelope(anon_client.post(path, {"refresh": newest.json()["refresh"]}, format="json"), 401)
    assert_envelope(anon_client.post(path, {}, format="json"), 400, "invalid")


def test_inactive_or_deleted_user_cannot_refresh(anon_client, tokens):
    User.objects.filter(username="ada").update(is_active=False)
    assert_envelope(anon_client.post(REFRESH, {"refresh": tokens["refresh"]}, format="json"), 401)
    User.objects.filter(username="ada").delete()
    assert_envelope(anon_client.post(REFRESH, {"refresh": tokens["refresh"]}, format="json"), 401)


def test_logout_revokes_that_refresh_token(anon_client, tokens):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {tokens['access']}"}
    assert_envelope(anon_client.post("/api/auth/logout/", {"refresh": tokens["refresh"]}, format="json"), 401)
    assert_envelope(anon_client.post("/api/auth/logout/", {}, format="json", **auth), 400, "invalid")
    response = anon_client.post("/api/auth/logout/", {"refresh": tokens["refresh"]}, format="json", **auth)
    assert response.status_code == 205
    assert_envelope(anon_client.post(REFRESH, {"refresh": tokens["refresh"]}, format="json"), 401, "token_not_valid")


def test_logout_refuses_another_users_refresh_token(anon_client, tokens):
    UserFactory.create(username="eve")
    eve = login(anon_client, "eve", DEFAULT_PASSWORD).json()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {eve['access']}"}
    response = anon_client.post("/api/auth/logout/", {"refresh": tokens["refresh"]}, format="json", **auth)
    assert_envelope(response, 400, "invalid_token")
    assert anon_client.post(REFRESH, {"refresh": tokens["refresh"]}, format="json").status_code == 200


def test_logout_all_revokes_every_refresh_token(anon_client, tokens):
    second = login(anon_client, "ada", DEFAULT_PASSWORD).json()
    assert_envelope(anon_client.post("/api/auth/logout-all/"), 401)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {tokens['access']}"}
    assert anon_client.post("/api/auth/logout-all/", **auth).status_code == 205
    for refresh in (tokens["refresh"], second["refresh"]):
        assert_envelope(anon_client.post(REFRESH, {"refresh": refresh}, format="json"), 401, "token_not_valid")


# --- profile --------------------------------------------------------------------------------


def test_profile_get_and_patch(api_client, user):
    body = api_client.get(PROFILE).json()
    assert body["username"] == user.username and body["is_verified"] is True
    response = api_client.patch(PROFILE, {"first_name": "Ada", "last_name": "King"}, format="json")
    assert response.status_code == 200 and response.json()["last_name"] == "King"
    user.refresh_from_db()
    assert (user.first_name, user.last_name) == ("Ada", "King")


def test_profile_ignores_mass_assignment(api_client, user):
    user.is_verified = False
    user.save()
    payload = {"is_staff": True, "is_superuser": True, "is_verified": True, "username": "root", "email": "r@x.com"}
    assert api_client.patch(PROFILE, payload, format="json").status_code == 200
    user.refresh_from_db()
    assert (user.is_staff, user.is_superuser, user.is_verified) == (False, False, False)
    assert user.username != "root" and user.email != "r@x.com"


def test_profile_validation_and_auth(api_client, anon_client):
    assert_envelope(api_client.patch(PROFILE, {"first_name": "x" * 151}, format="json"), 400, "invalid")
    assert_envelope(anon_client.get(PROFILE), 401, "not_authenticated")
    assert_envelope(anon_client.patch(PROFILE, {"first_name": "x"}, format="json"), 401)


# --- passwords ------------------------------------------------------------------------------


def test_password_change_revokes_refresh_tokens(anon_client, tokens):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {tokens['access']}"}
    body = {"old_password": DEFAULT_PASSWORD, "new_password": STRONG}
    response = anon_client.post("/api/auth/password/change/", body, format="json", **auth)
    assert response.status_code == 200
    fresh = response.json()
    assert_envelope(anon_client.post(REFRESH, {"refresh": tokens["refresh"]}, format="json"), 401, "token_not_valid")
    assert anon_client.post(REFRESH, {"refresh": fresh["refresh"]}, format="json").status_code == 200
    assert login(anon_client, "ada", DEFAULT_PASSWORD).status_code == 401


def test_password_change_validation(anon_client, tokens):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {tokens['access']}"}
    url = "/api/auth/password/change/"
    wrong = anon_client.post(url, {"old_password": "nope", "new_password": STRONG}, format="json", **auth)
    assert "old_password" in assert_envelope(wrong, 400, "wrong_password")["errors"]
    weak = anon_client.post(url, {"old_password": DEFAULT_PASSWORD, "new_password": "123"}, format="json", **auth)
    assert "new_password" in assert_envelope(weak, 400, "invalid")["errors"]
    assert_envelope(anon_client.post(url, {"old_password": "a", "new_password": STRONG}, format="json"), 401)


def reset_request(client: APIClient, capture: Any, email: str) -> Any:
    with capture(execute=True):
        return client.post("/api/auth/password/reset/", {"email": email}, format="json")


def test_password_reset_flow_is_single_use_and_revokes_tokens(anon_client, tokens, django_capture_on_commit_callbacks):
    assert reset_request(anon_client, django_capture_on_commit_callbacks, "nobody@example.com").status_code == 202
    assert mail.outbox == []
    assert reset_request(anon_client, django_capture_on_commit_callbacks, "ADA@example.com").status_code == 202
    token = mailed_token("reset")
    url = "/api/auth/password/reset/confirm/"
    weak = anon_client.post(url, {"token": token, "new_password": "123"}, format="json")
    assert "new_password" in assert_envelope(weak, 400)["errors"]
    assert anon_client.post(url, {"token": token, "new_password": STRONG}, format="json").status_code == 200
    assert_envelope(
        anon_client.post(url, {"token": token, "new_password": STRONG}, format="json"), 400, "invalid_token"
    )
    assert_envelope(anon_client.post(url, {"token": "forged", "new_password": STRONG}, format="json"), 400)
    assert login(anon_client, "ada", STRONG).status_code == 200
    assert_envelope(anon_client.post(REFRESH, {"refresh": tokens["refresh"]}, format="json"), 401)


def test_password_reset_validation(anon_client):
    assert_envelope(anon_client.post("/api/auth/password/reset/", {"email": ""}, format="json"), 400, "invalid")
    response = anon_client.post("/api/auth/password/reset/confirm/", {"token": "x"}, format="json")
    assert "new_password" in assert_envelope(response, 400)["errors"]


def test_the_verification_link_has_no_format_override(anon_client):
    # Only the Accept header chooses JSON or the page: an unknown ?format= is not a 404.
    assert_envelope(anon_client.get("/api/auth/verify-email/not-a-token/?format=AAA"), 400, "invalid_token")
    page = anon_client.get("/api/auth/verify-email/not-a-token/?format=json", HTTP_ACCEPT=BROWSER_ACCEPT)
    assert page["Content-Type"].startswith("text/html")
