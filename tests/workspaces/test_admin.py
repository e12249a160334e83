"""Workspaces in the admin: members inline, secrets read-only, deletion takes the vectors too."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from rag.models import Document
from rag.providers.factory import get_vector_store
from rag.services.ingestion import DocumentInput, document_ingest
from tests.factories import UserFactory
from workspaces.models import ApiKey, Invitation, Workspace

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(UserFactory.create(is_staff=True, is_superuser=True))
    return client


def test_workspace_pages_show_members(admin_client, team):
    listing = admin_client.get("/admin/workspaces/workspace/")
    assert listing.status_code == 200 and "Acme support" in listing.content.decode()
    page = admin_client.get(f"/admin/workspaces/workspace/{team.workspace.pk}/change/")
    assert page.status_code == 200
    assert "memberships-TOTAL_FORMS" in page.content.decode()  # the members inline


def test_invitation_and_key_hashes_are_read_only_and_never_added_here(admin_client, team):
    invitation = Invitation.objects.create(
        workspace=team.workspace, email="g@example.com", token_hash="a" * 64, expires_at=timezone.now()
    )
    key = ApiKey.objects.create(
        workspace=team.workspace, created_by=team.owner, name="ci", prefix="rk_abc", key_hash="b" * 64, scopes=["chat"]
    )
    for url in (f"/admin/workspaces/invitation/{invitation.pk}/change/", f"/admin/workspaces/apikey/{key.pk}/change/"):
        page = admin_client.get(url).content.decode()
        assert 'name="token_hash"' not in page and 'name="key_hash"' not in page
    assert admin_client.get("/admin/workspaces/invitation/add/").status_code == 403
    assert admin_client.get("/admin/workspaces/apikey/add/").status_code == 403
    listing = admin_client.get("/admin/workspaces/apikey/").content.decode()
    assert "rk_abc" in listing and "b" * 64 not in listing
    admin_client.post("/admin/workspaces/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_deleting_a_workspace_in_the_admin_erases_its_vectors(admin_client, team):
    document = document_ingest(item=DocumentInput(title="Acme", content="Acme widgets ship on Mondays.")).document
    Document.objects.filter(pk=document.pk).update(workspace=team.workspace)
    assert get_vector_store().count() > 0
    response = admin_client.post(f"/admin/workspaces/workspace/{team.workspace.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Workspace.objects.filter(pk=team.workspace.pk).exists()
    assert get_vector_store().count() == 0 and not Document.objects.exists()
