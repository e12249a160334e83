"""Issue 13, item 6: failed logins lock out the client and the account, on the admin login and the
API login alike, counted in the shared cache; a locked attempt is refused before any password is
hashed, so a flood of guesses cannot slow everyone else down."""

from __future__ import annotations

from unittest import mock

import pytest
from django.test import Client

from tests.factories import DEFAULT_PASSWORD, UserFactory
from users.backends import UsernameOrEmailBackend

pytestmark = pytest.mark.django_db

ADMIN_LOGIN = "/admin/login/?next=/admin/"
API_LOGIN = "/api/auth/login/"


@pytest.fixture
def admin_user():
    return UserFactory.create(username="root", is_staff=True, is_superuser=True)


def admin_login(client: Client, username: str, password: str, address: str = "127.0.0.1"):
    return client.post(ADMIN_LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def logged_in(client: Client) -> bool:
    return client.get("/admin/").status_code == 200


def test_thirty_wrong_passwords_then_the_right_one_does_not_get_into_the_admin(admin_user):
    client = Client()
    for _ in range(30):
        assert admin_login(client, "root", "wrong-guess").status_code in (200, 429)
    response = admin_login(client, "root", DEFAULT_PASSWORD)
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "Too many failed logins" in response.content.decode()
    assert not logged_in(client)


def test_the_account_locks_whatever_addresses_the_guesses_come_from(admin_user, settings):
    settings.LOGIN_LOCKOUT_ACCOUNT_FAILURES = 5
    client = Client()
    for n in range(5):
        admin_login(client, "root", "wrong-guess", address=f"10.0.0.{n}")
    assert admin_login(client, "root", DEFAULT_PASSWORD, address="10.9.9.9").status_code == 429
    assert not logged_in(client)
    # Named by email, it is the same account.
    assert admin_login(client, admin_user.email.upper(), DEFAULT_PASSWORD, address="10.9.9.8").status_code == 429
    # Another account from another address is not affected.
    UserFactory.create(username="other", is_staff=True)
    assert admin_login(client, "other", DEFAULT_PASSWORD, address="10.9.9.7").status_code == 302
    assert logged_in(client)


def test_a_flooding_client_is_refused_without_any_password_being_hashed(admin_user, settings):
    settings.LOGIN_LOCKOUT_CLIENT_FAILURES = 10
    flooder = Client()
    for n in range(10):  # ten different accounts: only the client's count can stop this
        admin_login(flooder, f"nobody{n}", "guess", address="203.0.113.9")
    with mock.patch.object(UsernameOrEmailBackend, "authenticate", autospec=True, return_value=None) as checks:
        for n in range(20):
            assert admin_login(flooder, f"someone{n}", "guess", address="203.0.113.9").status_code == 429
        assert checks.call_count == 0  # no password was checked, or hashed as a decoy
    # Everyone else still gets in, at once.
    other = Client()
    assert admin_login(other, "root", DEFAULT_PASSWORD, address="198.51.100.1").status_code == 302
    assert logged_in(other)


def test_the_api_login_shares_the_lockout(anon_client, user, settings):
    settings.LOGIN_LOCKOUT_ACCOUNT_FAILURES = 3
    # Wrong passwords through the admin and the API count against the same account ...
    admin_login(Client(), user.username, "wrong", address="10.1.0.1")
    for n in range(2):
        anon_client.post(
            API_LOGIN, {"username": user.username, "password": "wrong"}, format="json", REMOTE_ADDR=f"10.1.1.{n}"
        )
    # ... and then the right one is refused on both, from any address.
    response = anon_client.post(
        API_LOGIN, {"email": user.email, "password": DEFAULT_PASSWORD}, format="json", REMOTE_ADDR="10.1.2.1"
    )
    assert response.status_code == 429 and response.json()["code"] == "login_locked"
    assert int(response["Retry-After"]) > 0 and "access" not in response.json()
    assert admin_login(Client(), user.username, DEFAULT_PASSWORD, address="10.1.2.2").status_code == 429


def test_the_lockout_does_not_reveal_which_accounts_exist(anon_client, user, settings):
    settings.LOGIN_LOCKOUT_ACCOUNT_FAILURES = 2
    answers = {}
    for name in (user.username, "no-such-user"):
        for n in range(2):
            anon_client.post(
                API_LOGIN, {"username": name, "password": "wrong"}, format="json", REMOTE_ADDR=f"10.2.{n}.1"
            )
        response = anon_client.post(
            API_LOGIN, {"username": name, "password": "x"}, format="json", REMOTE_ADDR="10.3.0.1"
        )
        answers[name] = (response.status_code, response.json())
    assert answers[user.username] == answers["no-such-user"]
    assert answers[user.username][0] == 429
