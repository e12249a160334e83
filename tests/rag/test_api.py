"""Knowledge-base API: the shared base (users read, staff write) and workspaces' own documents
(members read, owners and admins write)."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from pypdf import PdfWriter
from rest_framework.test import APIClient

from rag.models import Document
from rag.types import RetrievalScope
from tests.factories import UserFactory
from workspaces.models import ApiKey, Membership, Workspace
from workspaces.services import workspace_create, workspace_personal_get

pytestmark = pytest.mark.django_db

SEARCH = "/api/rag/search/"
DOCS = "/api/rag/documents/"


def search_sources(client, q: str, **params: str) -> list[str]:
    response = client.get(SEARCH, {"q": q, **params})
    assert response.status_code == 200, response.content
    return [r["source"] for r in response.json()["results"]]


def test_search_returns_sources_with_every_field(api_client, knowledge_base):
    response = api_client.get(SEARCH, {"q": "how do I reset my password", "top_k": 2})
    assert response.status_code == 200
    body = response.json()
    assert body["query"] == "how do I reset my password" and body["took_ms"] >= 0
    assert 1 <= len(body["results"]) <= 2
    first = body["results"][0]
    assert set(first) == {"document_id", "title", "category", "source", "score", "snippet"}
    assert first["source"] == "guides/reset.md"


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": "   "},
        {"q": "x", "top_k": 11},
        {"q": "x", "top_k": 0},
        {"q": "x" * 1001},
        {"q": "x", "previous": "x" * 301},
    ],
)
def test_search_validation(api_client, params):
    response = api_client.get(SEARCH, params)
    assert response.status_code == 400 and response.json()["code"] == "invalid"


def test_search_reads_a_follow_up_with_the_previous_question(api_client, knowledge_base):
    """``previous`` gives a stateless client what a chat session gives its turns."""
    assert search_sources(api_client, "how long is the link valid?")[0] == "guides/verify.md"
    password = "I forgot my password, how do I get back in?"
    assert search_sources(api_client, "how long is the link valid?", previous=password)[0] == "guides/reset.md"
    verification = "I never got the verification email after signing up"
    assert search_sources(api_client, "does it expire?")[0] == "policies/retention.md"
    assert search_sources(api_client, "does it expire?", previous=verification)[0] == "guides/verify.md"
    # The reply names the question searched, not the conversation; a blank previous question is none.
    reply = api_client.get(SEARCH, {"q": "does it expire?", "previous": verification}).json()
    assert reply["query"] == "does it expire?"
    assert search_sources(api_client, "how long is the link valid?", previous="  ")[0] == "guides/verify.md"


def test_search_and_documents_need_login(anon_client, knowledge_base):
    assert anon_client.get(SEARCH, {"q": "password"}).status_code == 401
    assert anon_client.get(DOCS).status_code == 401
    assert anon_client.get(f"{DOCS}{knowledge_base[0].pk}/").status_code == 401


def test_users_list_and_read_documents(api_client, knowledge_base):
    body = api_client.get(DOCS, {"category": "Policy", "workspace": "shared"}).json()
    assert (
        body["count"] == 2
        and {d["workspace"] for d in body["results"]} == {None}
        and {d["category"] for d in body["results"]} == {"Policy"}
    )
    assert all(d["chunk_count"] >= 1 for d in body["results"])
    detail = api_client.get(f"{DOCS}{knowledge_base[0].pk}/").json()
    assert detail["content"].startswith("If you forgot your password")
    assert api_client.get(f"{DOCS}999999/").status_code == 404


def test_staff_creates_a_json_document_that_becomes_searchable(staff_client, api_client, knowledge_base):
    payload = {
        "title": "Office hours",
        "content": "Human support answers on weekdays from nine to five UTC.",
        "category": "FAQ",
        "metadata": {"owner": "support"},
    }
    response = staff_client.post(DOCS, payload | {"workspace": "shared"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["chunk_count"] == 1 and response.json()["workspace"] is None
    results = api_client.get(SEARCH, {"q": "when can I talk to human support"}).json()["results"]
    assert results[0]["document_id"] == response.json()["id"]
    refused = api_client.post(DOCS, payload | {"workspace": "shared"}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "permission_denied"


def test_document_validation(staff_client):
    response = staff_client.post(DOCS, {"title": "", "content": " ", "category": "Nope!"}, format="json")
    assert response.status_code == 400
    assert {"title", "content", "category"} <= set(response.json()["errors"])


def upload(client, name: str, data: bytes, **extra):
    return client.post(DOCS, {"file": SimpleUploadedFile(name, data), **extra}, format="multipart")


def test_staff_uploads_markdown_html_and_pdf(staff_client):
    md = b"---\ntitle: Uploaded guide\ncategory: Guide\n---\nUploaded guides explain exports of chat sessions."
    response = upload(staff_client, "uploaded.md", md, workspace="shared")
    assert response.status_code == 201, response.content
    assert response.json()["title"] == "Uploaded guide" and response.json()["category"] == "Guide"
    assert response.json()["workspace"] is None
    html = (
        b"<html><head><title>Html page</title></head><body><p>HTML pages describe feedback ratings.</p></body></html>"
    )
    assert upload(staff_client, "page.html", html).json()["title"] == "Html page"
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    buffer = io.BytesIO()
    writer.write(buffer)
    response = upload(staff_client, "blank.pdf", buffer.getvalue(), title="Blank")
    assert response.status_code == 400 and response.json()["code"] == "empty_document"


def test_upload_rejects_unsupported_and_oversized_files(staff_client, settings):
    response = upload(staff_client, "tool.exe", b"MZ\x00\x00")
    assert response.status_code == 415 and response.json()["code"] == "unsupported_file_type"
    settings.MAX_UPLOAD_BYTES = 1000
    response = upload(staff_client, "big.txt", b"a" * 2000)
    assert response.status_code == 413 and response.json()["code"] == "file_too_large"
    assert not Document.objects.exists()


def test_staff_updates_and_deletes(staff_client, api_client, knowledge_base):
    doc = knowledge_base[3]
    url = f"{DOCS}{doc.pk}/"
    assert api_client.patch(url, {"category": "FAQ"}, format="json").status_code == 403
    assert api_client.delete(url).status_code == 403
    content = "Messages are kept for ninety days before the retention job removes them."
    response = staff_client.patch(url, {"content": content}, format="json")
    assert response.status_code == 200 and response.json()["content"] == content
    assert "policies/retention.md" in search_sources(api_client, "how many days are messages kept")
    assert staff_client.delete(url).status_code == 204
    assert "policies/retention.md" not in search_sources(api_client, "how many days are messages kept")
    assert staff_client.delete(url).status_code == 404


@pytest.mark.parametrize("path", ["/api/rag/index/", "/api/rag/index-documents/"])
def test_bulk_index(staff_client, api_client, path):
    docs = [{"title": f"Doc {n}", "content": f"Fact number {n} about backups.", "category": "Other"} for n in range(3)]
    response = staff_client.post(path, {"documents": docs, "workspace": "shared"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["indexed_count"] == 3 and len(body["ids"]) == 3
    assert Document.objects.filter(workspace=None).count() == 3
    assert api_client.post(path, {"documents": docs, "workspace": "shared"}, format="json").status_code == 403
    assert staff_client.post(path, {"documents": []}, format="json").status_code == 400


def test_health_reports_the_knowledge_base(anon_client, staff_client, knowledge_base):
    public = anon_client.get("/api/health/").json()
    assert public["status"] == "ok" and set(public["checks"]["vector_store"]) == {"ok", "latency_ms"}
    body = staff_client.get("/api/health/").json()  # the details are for staff
    assert body["status"] == "ok"
    assert body["checks"]["vector_store"]["backend"] == "faiss" and body["checks"]["vector_store"]["vectors"] >= 5
    assert body["checks"]["embedder"]["dimension"] == 384
    assert body["checks"]["generator"]["backend"] == "extractive"


# --- workspaces (DESIGN §8) ----------------------------------------------------------------------


@pytest.fixture
def team(user):
    """A team workspace: ``user`` is its owner, with an admin and a plain member."""
    workspace = workspace_create(name="Team", owner=user)
    admin, member = UserFactory.create(), UserFactory.create()
    Membership.objects.create(workspace=workspace, user=admin, role=Membership.Role.ADMIN)
    Membership.objects.create(workspace=workspace, user=member, role=Membership.Role.MEMBER)
    return workspace, admin, member


def note(title: str = "Team handbook", content: str = "Our team meets on Tuesdays.", **extra):
    return {"title": title, "content": content, "category": "Guide", **extra}


def test_any_user_adds_documents_to_their_personal_workspace(api_client, user, client_for, knowledge_base):
    response = api_client.post(DOCS, note(), format="json")
    assert response.status_code == 201, response.content
    personal = workspace_personal_get(user=user)
    assert response.json()["workspace"] == personal.pk
    listed = api_client.get(DOCS).json()
    assert [d["id"] for d in listed["results"]] == [response.json()["id"]]
    assert response.json()["id"] not in [
        d["id"] for d in api_client.get(DOCS, {"workspace": "shared"}).json()["results"]
    ]
    other = client_for(UserFactory.create())
    assert other.get(DOCS).json()["count"] == 0
    assert other.get(f"{DOCS}{response.json()['id']}/").status_code == 404


def test_members_read_and_only_owners_and_admins_write(team, client_for, api_client):
    workspace, admin, member = team
    created = client_for(admin).post(DOCS, note(workspace=workspace.pk), format="json")
    assert created.status_code == 201 and created.json()["workspace"] == workspace.pk
    url = f"{DOCS}{created.json()['id']}/"
    reader = client_for(member)
    assert reader.get(DOCS, {"workspace": workspace.pk}).json()["count"] == 1
    assert reader.get(url).json()["content"] == "Our team meets on Tuesdays."
    for refused in (
        reader.post(DOCS, note("Mine", workspace=workspace.pk), format="json"),
        reader.patch(url, {"title": "Renamed"}, format="json"),
        reader.delete(url),
        reader.post("/api/rag/index/", {"workspace": workspace.pk, "documents": [note()]}, format="json"),
    ):
        assert refused.status_code == 403 and refused.json()["code"] == "permission_denied"
    assert Document.objects.filter(workspace=workspace).count() == 1
    assert client_for(admin).patch(url, {"title": "Handbook"}, format="json").json()["title"] == "Handbook"
    assert api_client.delete(url).status_code == 204  # the owner
    assert not Document.objects.filter(workspace=workspace).exists()


def test_another_workspace_is_not_found_like_a_missing_id(team, client_for):
    workspace, admin, _ = team
    doc = client_for(admin).post(DOCS, note(workspace=workspace.pk), format="json").json()
    outsider = client_for(UserFactory.create())
    missing = outsider.get(f"{DOCS}{doc['id'] + 1000}/")
    for response in (
        outsider.get(f"{DOCS}{doc['id']}/"),
        outsider.patch(f"{DOCS}{doc['id']}/", {"title": "x"}, format="json"),
        outsider.delete(f"{DOCS}{doc['id']}/"),
    ):
        assert response.status_code == 404 and response.json() == missing.json()
    for response in (
        outsider.get(DOCS, {"workspace": workspace.pk}),
        outsider.get(SEARCH, {"q": "team meetings", "workspace": workspace.pk}),
        outsider.post(DOCS, note(workspace=workspace.pk), format="json"),
    ):
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert Document.objects.filter(workspace=workspace).count() == 1


@pytest.mark.parametrize("value", ["abc", 0, -3, True, "12", 1.5, None, [1]])
def test_workspace_must_be_an_id_or_shared(api_client, value):
    response = api_client.post(DOCS, note(workspace=value), format="json")
    assert response.status_code == 400 and "workspace" in response.json()["errors"]


@pytest.mark.parametrize("value", ["abc", "0", "-3", "1.5", ""])
def test_workspace_query_parameter_is_an_id_or_shared(api_client, value):
    response = api_client.get(DOCS, {"workspace": value})
    assert response.status_code == 400 and "workspace" in response.json()["errors"]


def test_a_document_stays_in_its_workspace(api_client, team):
    workspace, _, _ = team
    doc = api_client.post(DOCS, note(), format="json").json()
    response = api_client.patch(f"{DOCS}{doc['id']}/", {"workspace": workspace.pk}, format="json")
    assert response.status_code == 400 and "workspace" in response.json()["errors"]
    assert Document.objects.get(pk=doc["id"]).workspace_id == doc["workspace"]
    same = api_client.patch(f"{DOCS}{doc['id']}/", {"workspace": doc["workspace"], "title": "Kept"}, format="json")
    assert same.status_code == 200 and same.json()["title"] == "Kept"


def test_staff_writes_to_the_shared_base_only_when_named(staff_client, staff_user):
    response = staff_client.post(DOCS, note(), format="json")
    assert response.json()["workspace"] == workspace_personal_get(user=staff_user).pk
    shared = staff_client.post(DOCS, note("Shared page", workspace="shared"), format="json")
    assert shared.status_code == 201 and shared.json()["workspace"] is None


def test_categories_count_only_readable_documents(api_client, client_for, knowledge_base):
    client_for(UserFactory.create()).post(DOCS, note(category="Secret-Category"), format="json")
    names = {c["name"]: c["document_count"] for c in api_client.get("/api/rag/categories/").json()["results"]}
    assert "Secret-Category" not in names and names["Policy"] == 2


def test_an_api_key_reaches_only_its_workspace(user, team):
    workspace, _, _ = team
    personal = workspace_personal_get(user=user)
    private = Document.objects.create(title="Personal", content="Personal notes.", workspace=personal)
    in_team = Document.objects.create(title="Team", content="Team notes.", workspace=workspace)
    shared = Document.objects.create(title="Shared", content="Shared notes.")
    key = ApiKey.objects.create(
        workspace=workspace, created_by=user, name="ci", prefix="pfx", key_hash="0" * 64, scopes=["documents:read"]
    )
    client = APIClient()
    # What ApiKeyAuthentication yields: (creator, key); DRF's stub types the token as authtoken's Token.
    client.force_authenticate(user=user, token=key)  # type: ignore[arg-type]
    assert [d["id"] for d in client.get(DOCS).json()["results"]] == [in_team.pk]
    assert client.get(DOCS, {"workspace": personal.pk}).status_code == 404
    assert client.get(f"{DOCS}{private.pk}/").status_code == 404
    assert client.get(f"{DOCS}{in_team.pk}/").status_code == 200
    assert client.get(f"{DOCS}{shared.pk}/").status_code == 200
    refused = client.post(DOCS, note(workspace="shared"), format="json")
    assert refused.status_code == 403 and not Document.objects.filter(title="Team handbook").exists()


def test_search_asks_retrieval_for_the_named_scope(api_client, user, team, monkeypatch):
    """The stores apply the scope (tests/rag, tests/workspaces/test_isolation.py); this is the wiring."""
    from rag import apis

    workspace, _, _ = team
    Workspace.objects.filter(pk=workspace.pk).update(include_shared=False)
    seen: list[RetrievalScope] = []
    real = apis.retrieve

    def spy(**kwargs):
        seen.append(kwargs["scope"])
        return real(**kwargs)

    monkeypatch.setattr(apis, "retrieve", spy)
    for params in ({}, {"workspace": workspace.pk}, {"workspace": "shared"}):
        assert api_client.get(SEARCH, {"q": "team meetings", **params}).status_code == 200
    key = ApiKey.objects.create(workspace=workspace, created_by=user, name="k", prefix="k1", key_hash="1" * 64)
    client = APIClient()
    client.force_authenticate(user=user, token=key)  # type: ignore[arg-type]
    assert client.get(SEARCH, {"q": "team meetings"}).status_code == 200
    personal = workspace_personal_get(user=user).pk
    assert seen == [
        RetrievalScope(workspace_id=personal, include_shared=True),
        RetrievalScope(workspace_id=workspace.pk, include_shared=False),
        RetrievalScope(),
        RetrievalScope(workspace_id=workspace.pk, include_shared=False),
    ]


def test_an_upload_counts_against_the_workspace_quota(api_client, user):
    personal = workspace_personal_get(user=user)
    Workspace.objects.filter(pk=personal.pk).update(max_documents=0)
    response = upload(api_client, "notes.md", b"Some notes about the office.")
    assert response.status_code == 403 and response.json()["code"] == "document_quota_exceeded"
    assert not Document.objects.exists()
