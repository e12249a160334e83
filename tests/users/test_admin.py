"""Admin: staff see verification status and can verify or deactivate users."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client

from tests.factories import UserFactory
from users.models import User

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_() -> Client:
    admin = UserFactory.create(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    return client


def test_user_list_shows_verification(admin_client_):
    UserFactory.create(username="pending", is_verified=False)
    response = admin_client_.get("/admin/users/user/?is_verified__exact=0")
    assert response.status_code == 200
    html = response.content.decode()
    assert "pending" in html and "column-is_verified" in html


@pytest.mark.parametrize(
    ("action", "field", "value"), [("mark_verified", "is_verified", True), ("deactivate", "is_active", False)]
)
def test_bulk_actions(admin_client_, action, field, value):
    target = UserFactory.create(is_verified=False)
    response = admin_client_.post(
        "/admin/users/user/", {"action": action, "_selected_action": [target.pk]}, follow=True
    )
    assert response.status_code == 200
    assert getattr(User.objects.get(pk=target.pk), field) is value


def test_non_staff_cannot_use_admin(user):
    client = Client()
    client.force_login(user)
    assert client.get("/admin/users/user/").status_code == 302


def test_createsuperuser_makes_an_account_that_can_log_in(client):
    call_command("createsuperuser", interactive=False, username="root", email="root@example.com", verbosity=0)
    admin = User.objects.get(username="root")
    admin.set_password("An0ther-long-passphrase")
    admin.save()
    assert admin.is_verified and admin.is_superuser
    response = client.post(
        "/api/auth/login/", {"username": "root", "password": "An0ther-long-passphrase"}, content_type="application/json"
    )
    assert response.status_code == 200, response.json()
