"""/api/workspaces/: list mine, create, read, rename, delete with confirmation (DESIGN §8)."""

from __future__ import annotations

import pytest

from chat.models import ChatMessage, ChatSession, HistoryVersion
from rag.models import Chunk, Document
from rag.providers.factory import get_vector_store
from rag.services.ingestion import DocumentInput, document_ingest
from tests.factories import ChatMessageFactory, ChatSessionFactory, UserFactory
from tests.workspaces.conftest import role_of
from workspaces.models import ApiKey, Invitation, Membership, Workspace
from workspaces.services import workspace_create, workspace_delete, workspace_personal_get

pytestmark = pytest.mark.django_db

LONG = " ".join(f"Paragraph {n} tells how the Acme widget is set up and kept in order." for n in range(40))


def test_list_shows_my_workspaces_with_my_role_personal_first(team):
    response = team.client(team.admin).get("/api/workspaces/")
    assert response.status_code == 200
    results = response.json()["results"]
    personal = workspace_personal_get(user=team.admin)
    assert [w["id"] for w in results] == [personal.pk, team.workspace.pk]
    assert results[0]["is_personal"] is True and results[0]["role"] == "owner" and results[0]["member_count"] == 1
    shared = results[1]
    assert shared["role"] == "admin" and shared["member_count"] == 3 and shared["is_personal"] is False
    assert shared["plan"] == "free" and shared["include_shared"] is True
    assert shared["limits"] == {
        "max_documents": team.workspace.max_documents,
        "max_bytes": team.workspace.max_bytes,
        "max_messages_per_day": team.workspace.max_messages_per_day,
    }


def test_list_shows_nothing_of_other_workspaces(team):
    results = team.client(team.outsider).get("/api/workspaces/").json()["results"]
    assert [w["id"] for w in results] == [workspace_personal_get(user=team.outsider).pk]


def test_create_makes_the_caller_owner(api_client, user):
    response = api_client.post("/api/workspaces/", {"name": "  Docs team ", "include_shared": False}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "Docs team" and body["role"] == "owner" and body["member_count"] == 1
    assert body["include_shared"] is False and body["is_personal"] is False
    workspace = Workspace.objects.get(pk=body["id"])
    assert body["slug"] == workspace.slug and role_of(workspace, user) == "owner"


@pytest.mark.parametrize(
    "payload",
    [{}, {"name": ""}, {"name": "   "}, {"name": 5}, {"name": "x" * 121}, {"name": "a", "include_shared": "no"}],
)
def test_create_validates_its_input(api_client, payload):
    response = api_client.post("/api/workspaces/", payload, format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid"


def test_owned_workspaces_are_capped(api_client, user, settings):
    settings.WORKSPACE_MAX_OWNED = 2
    workspace_personal_get(user=user)
    for n in range(2):
        assert api_client.post("/api/workspaces/", {"name": f"w{n}"}, format="json").status_code == 201
    response = api_client.post("/api/workspaces/", {"name": "one too many"}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "too_many_workspaces"
    assert Workspace.objects.filter(memberships__user=user).count() == 3  # the personal one is not counted


def test_creation_is_throttled_per_user(api_client, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "workspace_create": "2/hour"},
    }
    for n in range(2):
        assert api_client.post("/api/workspaces/", {"name": f"w{n}"}, format="json").status_code == 201
    response = api_client.post("/api/workspaces/", {"name": "w3"}, format="json")
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert api_client.get("/api/workspaces/").status_code == 200  # listing is not throttled


def test_any_member_reads_the_workspace(team):
    response = team.client(team.member).get(team.url)
    assert response.status_code == 200 and response.json()["role"] == "member"


@pytest.mark.parametrize("who", ["owner", "admin"])
def test_owner_and_admin_rename_and_switch_the_shared_base(team, who):
    client = team.client(getattr(team, who))
    response = client.patch(team.url, {"name": "Acme help desk", "include_shared": False}, format="json")
    assert response.status_code == 200, response.content
    team.workspace.refresh_from_db()
    assert (team.workspace.name, team.workspace.include_shared) == ("Acme help desk", False)
    assert response.json()["name"] == "Acme help desk"


def test_a_member_cannot_rename(team):
    response = team.client(team.member).patch(team.url, {"name": "Mine"}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    team.workspace.refresh_from_db()
    assert team.workspace.name == "Acme support"


def test_a_non_member_gets_404_like_a_missing_id(team):
    client = team.client(team.outsider)
    missing = client.get("/api/workspaces/987654321/")
    for response in (
        client.get(team.url),
        client.patch(team.url, {"name": "Mine"}, format="json"),
        client.delete(team.url, {"confirm": team.workspace.slug}, format="json"),
    ):
        assert response.status_code == 404 and response.json() == missing.json()
    assert Workspace.objects.filter(pk=team.workspace.pk, name="Acme support").exists()


# --- deletion ---------------------------------------------------------------------------------


def _workspace_document(workspace, title):
    document = document_ingest(item=DocumentInput(title=title, content=LONG, source=f"{title}.md")).document
    Document.objects.filter(pk=document.pk).update(workspace=workspace)
    return document


def test_delete_with_confirmation_erases_everything_and_says_what(team, knowledge_base):
    ws = team.workspace
    docs = [_workspace_document(ws, f"Acme {n}") for n in range(2)]
    chunks = Chunk.objects.filter(document__in=docs).count()
    store = get_vector_store()
    vectors_before = store.count()
    sessions = [ChatSessionFactory.create(user=u, workspace=ws) for u in (team.owner, team.member)]
    for session in sessions:
        ChatMessageFactory.create_batch(2, session=session)
    elsewhere = ChatSessionFactory.create(user=team.member)  # in the member's personal workspace
    ChatMessageFactory.create(session=elsewhere)
    Invitation.objects.create(workspace=ws, email="x@example.com", token_hash="1" * 64, expires_at="2099-01-01T00:00Z")
    ApiKey.objects.create(workspace=ws, created_by=team.admin, name="ci", prefix="abc", key_hash="2" * 64)
    HistoryVersion.objects.create(user=team.member, token="before")

    response = team.client(team.owner).delete(team.url, {"confirm": ws.slug}, format="json")

    assert response.status_code == 200, response.content
    assert response.json() == {
        "deleted": {
            "documents": 2,
            "chunks": chunks,
            "vectors": chunks,
            "sessions": 2,
            "messages": 4,
            "members": 3,
            "invitations": 1,
            "api_keys": 1,
        }
    }
    assert store.count() == vectors_before - chunks
    assert not Workspace.objects.filter(pk=ws.pk).exists()
    assert not Document.objects.filter(pk__in=[d.pk for d in docs]).exists()
    assert Document.objects.count() == len(knowledge_base)  # the shared base is untouched
    assert list(ChatSession.objects.filter(user__in=[team.owner, team.member]).values_list("pk", flat=True)) == [
        elsewhere.pk
    ]
    assert ChatMessage.objects.filter(session=elsewhere).count() == 1
    assert HistoryVersion.objects.get(user=team.member).token != "before"  # cached history is refreshed
    assert not Membership.objects.filter(workspace_id=ws.pk).exists()


def test_deleted_sessions_leave_the_cached_history(team):
    session = ChatSessionFactory.create(user=team.member, workspace=team.workspace, title="Acme secrets")
    ChatMessageFactory.create(session=session)
    client = team.client(team.member)
    assert "Acme secrets" in client.get("/api/chat/history/").content.decode()  # now cached
    team.client(team.owner).delete(team.url, {"confirm": team.workspace.slug}, format="json")
    assert "Acme secrets" not in client.get("/api/chat/history/").content.decode()


def test_confirmation_can_be_the_query_parameter(team):
    response = team.client(team.owner).delete(f"{team.url}?confirm={team.workspace.slug}")
    assert response.status_code == 200 and response.json()["deleted"]["members"] == 3


@pytest.mark.parametrize("body", [{}, {"confirm": ""}, {"confirm": "acme-support"}, {"confirm": 5}])
def test_delete_without_the_right_confirmation_is_400(team, body):
    response = team.client(team.owner).delete(team.url, body, format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid"
    assert Workspace.objects.filter(pk=team.workspace.pk).exists()


@pytest.mark.parametrize("who", ["admin", "member"])
def test_only_an_owner_deletes(team, who):
    response = team.client(getattr(team, who)).delete(team.url, {"confirm": team.workspace.slug}, format="json")
    assert response.status_code == 403
    assert Workspace.objects.filter(pk=team.workspace.pk).exists() and Membership.objects.count() >= 3


def test_a_personal_workspace_is_not_deleted_alone(api_client, user):
    personal = workspace_personal_get(user=user)
    response = api_client.delete(f"/api/workspaces/{personal.pk}/", {"confirm": personal.slug}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "personal_workspace"
    assert Workspace.objects.filter(pk=personal.pk).exists()
    # With the account, it goes.
    assert workspace_delete(workspace=personal, allow_personal=True)["members"] == 1


def test_a_second_owner_may_delete(team):
    other = UserFactory.create()
    Membership.objects.create(workspace=team.workspace, user=other, role=Membership.Role.OWNER)
    response = team.client(other).delete(team.url, {"confirm": team.workspace.slug}, format="json")
    assert response.status_code == 200


def test_deleting_one_workspace_leaves_another_whole(team):
    other = workspace_create(name="Other", owner=team.owner)
    kept = _workspace_document(other, "Kept")
    _workspace_document(team.workspace, "Gone")
    kept_chunks = set(kept.chunks.values_list("id", flat=True))
    team.client(team.owner).delete(team.url, {"confirm": team.workspace.slug}, format="json")
    assert Document.objects.filter(workspace=other).count() == 1
    assert get_vector_store().count() == len(kept_chunks)


def test_a_document_added_during_the_erasure_loses_its_vectors_too(team, monkeypatch):
    from rag.services import ingestion

    _workspace_document(team.workspace, "First")
    real = ingestion.documents_delete
    calls: list[object] = []

    def racing(*, documents):
        erased = real(documents=documents)
        if not calls:  # another request adds a document right after the first pass
            _workspace_document(team.workspace, "Late")
        calls.append(erased)
        return erased

    monkeypatch.setattr(ingestion, "documents_delete", racing)
    deleted = workspace_delete(workspace=team.workspace)
    assert deleted["documents"] == 2 and len(calls) == 2
    assert get_vector_store().count() == 0 and not Document.objects.exists()


def test_the_documented_defaults(settings):
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    assert (rates["workspace_create"], rates["invitation"]) == ("20/hour", "30/hour")
    assert (settings.WORKSPACE_MAX_OWNED, settings.WORKSPACE_INVITATION_TTL_HOURS) == (20, 72)


def test_only_a_persons_bearer_token_is_taken(team):
    """Workspace management is for people: an API key header (or none) is a 401 on every route."""
    from rest_framework.test import APIClient

    from workspaces.api_keys import api_key_create

    key = api_key_create(
        workspace=team.workspace, created_by=team.owner, name="ci", scopes=["chat", "documents:read", "documents:write"]
    )
    client = APIClient()
    for headers in ({}, {"HTTP_AUTHORIZATION": f"Api-Key {key.raw_key}"}):
        for method, url in [
            ("get", "/api/workspaces/"),
            ("get", team.url),
            ("get", f"{team.url}members/"),
            ("post", f"{team.url}invitations/"),
            ("post", "/api/workspaces/invitations/accept/"),
        ]:
            response = getattr(client, method)(url, **headers)
            assert response.status_code == 401, (method, url, response.content)
    # The control: the key itself is good where keys are taken.
    assert client.get("/api/chat/sessions/", HTTP_AUTHORIZATION=f"Api-Key {key.raw_key}").status_code == 200


def test_a_name_with_a_nul_character_is_refused(api_client):
    response = api_client.post("/api/workspaces/", {"name": "Acme\x00"}, format="json")
    assert response.status_code == 400
