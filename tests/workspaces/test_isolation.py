"""The cross-tenant leak suite (issue 15, DESIGN §8): nothing of one workspace (a chunk, a snippet,
a score, a title, a count) reaches another, on any read path, with either vector store.

Users A and B each own a workspace whose documents share vocabulary and almost all of their text
with the other's (plus the shared base); only a code word and a title differ. On every path A
reads — search, chat answers and their stream, history, message pages, exports, document list and
detail, categories, errors for guessed ids — B's id, title and code word never appear, and A's own
document does (so an empty answer cannot pass for isolation).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from rest_framework.test import APIClient

from chat.models import ChatMessage, ChatSession
from rag.models import Document
from rag.providers.factory import get_embedder, reset_providers
from rag.services.ingestion import DocumentInput, document_ingest
from tests.factories import UserFactory
from tests.fakes.pinecone_server import FakePinecone
from users.models import User
from workspaces.models import Workspace
from workspaces.services import workspace_personal_get

pytestmark = pytest.mark.django_db

# The vector stores apply a retrieval scope inside the search (helper ws-store, merged separately).
# Until they do, the paths that go through retrieval cannot be isolated on this branch: set this to
# True when the stores filter by workspace (strict: a pass while False fails, as a reminder to flip it).
STORES_ISOLATE = True
needs_store_isolation = pytest.mark.xfail(
    not STORES_ISOLATE, reason="the vector stores do not filter by workspace on this branch yet", strict=True
)

SEARCH = "/api/rag/search/"
DOCS = "/api/rag/documents/"
SESSIONS = "/api/chat/sessions/"
QUESTION = "What is the escalation code for the night on-call rota?"
RUNBOOK = (
    "Escalation runbook for the night on-call rota. When a page is not acknowledged within ten minutes, "
    "the on-call engineer phones the duty manager and quotes the escalation code {code}. The escalation "
    "code for the night on-call rota is {code}; it changes every quarter."
)
SHARED = (
    "Escalation policy: every team keeps a night on-call rota and an escalation code. Pages that are not "
    "acknowledged are escalated to the duty manager."
)


@dataclass
class Tenant:
    user: User
    workspace: Workspace
    client: APIClient
    document: Document
    code: str
    title: str

    def secrets(self) -> list[str]:
        """What must never reach another tenant: the code word and the title."""
        return [self.code, self.title]


@pytest.fixture(params=["faiss", "pinecone"])
def store(request: pytest.FixtureRequest, settings: Any) -> Iterator[str]:
    """Every test runs on FAISS and on Pinecone (the fake server, with the real SDK)."""
    if request.param == "pinecone":
        fake: FakePinecone = request.getfixturevalue("fake_pinecone")
        fake.dimension = get_embedder().dimension
        settings.RAG_VECTOR_STORE = "pinecone"
        settings.PINECONE_API_KEY, settings.PINECONE_HOST = "pc-test-key", fake.url
        reset_providers()
    yield request.param
    reset_providers()


def _tenant(client_for: Callable[[User], APIClient], name: str, code: str) -> Tenant:
    user = UserFactory.create(username=name)
    workspace = workspace_personal_get(user=user)
    title = f"Escalation runbook {name}"
    document = document_ingest(
        item=DocumentInput(
            title=title, content=RUNBOOK.format(code=code), category="Runbook", workspace_id=workspace.pk
        )
    ).document
    return Tenant(user, workspace, client_for(user), document, code, title)


@pytest.fixture
def tenants(store: str, client_for: Callable[[User], APIClient]) -> tuple[Tenant, Tenant]:
    document_ingest(item=DocumentInput(title="Escalation policy", content=SHARED, category="Policy"))
    return _tenant(client_for, "alpha", "ALPHA-7731"), _tenant(client_for, "bravo", "BRAVO-4409")


def text_of(response: Any) -> str:
    if hasattr(response, "streaming_content"):
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def assert_no_trace(body: str, other: Tenant) -> None:
    for secret in other.secrets():
        assert secret not in body, f"{secret!r} leaked"
    assert f'"document_id":{other.document.pk}' not in body.replace(" ", "")


# --- retrieval: search, answers, the stream, and what they store --------------------------------


@needs_store_isolation
def test_search_reads_only_the_callers_workspace_and_the_shared_base(tenants):
    a, b = tenants
    response = a.client.get(SEARCH, {"q": QUESTION, "top_k": 10})
    assert response.status_code == 200
    results = response.json()["results"]
    ids = {r["document_id"] for r in results}
    assert a.document.pk in ids and b.document.pk not in ids
    assert ids <= {a.document.pk, *Document.objects.filter(workspace=None).values_list("id", flat=True)}
    assert_no_trace(text_of(response), b)


@needs_store_isolation
def test_another_tenant_changes_nothing_in_a_search(tenants):
    """Scores, snippets and counts are those of a deployment where B does not exist."""
    a, b = tenants
    before = a.client.get(SEARCH, {"q": QUESTION, "top_k": 10}).json()["results"]
    b.client.delete(f"{DOCS}{b.document.pk}/")
    assert a.client.get(SEARCH, {"q": QUESTION, "top_k": 10}).json()["results"] == before


@needs_store_isolation
def test_a_workspace_without_the_shared_base_reads_only_itself(tenants):
    a, _ = tenants
    Workspace.objects.filter(pk=a.workspace.pk).update(include_shared=False)
    ids = {r["document_id"] for r in a.client.get(SEARCH, {"q": QUESTION, "top_k": 10}).json()["results"]}
    assert ids == {a.document.pk}


@needs_store_isolation
def test_chat_answers_history_and_exports_carry_nothing_of_another_workspace(tenants):
    a, b = tenants
    session = a.client.post(SESSIONS, {}, format="json").json()
    url = f"{SESSIONS}{session['id']}/"
    answered = a.client.post(f"{url}messages/", {"content": QUESTION}, format="json")
    assert answered.status_code == 201
    bot = answered.json()["bot_message"]
    assert a.code in bot["content"] and {s["document_id"] for s in bot["sources"]} >= {a.document.pk}
    streamed = a.client.post(
        f"{url}messages/", {"content": QUESTION + " Again?"}, format="json", HTTP_ACCEPT="text/event-stream"
    )
    stream = text_of(streamed)
    assert a.code in stream
    bodies = [
        answered.content.decode(),
        stream,
        text_of(a.client.get(f"{url}messages/")),
        text_of(a.client.get("/api/chat/history/")),
        text_of(a.client.get(f"{url}export/", {"format": "json"})),
        text_of(a.client.get(f"{url}export/", {"format": "md"})),
    ]
    for body in bodies:
        assert_no_trace(body, b)
    stored = json.dumps([m.metadata for m in ChatMessage.objects.filter(session_id=session["id"])])
    assert_no_trace(stored, b)


# --- database reads: documents, categories, sessions, and errors for guessed ids -----------------


def test_document_lists_and_details_show_only_readable_documents(tenants):
    a, b = tenants
    mine = a.client.get(DOCS).json()
    assert mine["count"] == 1 and [d["id"] for d in mine["results"]] == [a.document.pk]
    shared = a.client.get(DOCS, {"workspace": "shared"}).json()
    assert shared["count"] == 1 and shared["results"][0]["workspace"] is None
    for body in (text_of(a.client.get(DOCS)), text_of(a.client.get(DOCS, {"workspace": "shared"}))):
        assert_no_trace(body, b)
    categories = a.client.get("/api/rag/categories/").json()["results"]
    assert {c["name"]: c["document_count"] for c in categories} == {"Policy": 1, "Runbook": 1}


def test_guessed_ids_read_exactly_like_missing_ones(tenants):
    a, b = tenants
    b_session = b.client.post(SESSIONS, {"title": b.title}, format="json").json()
    b_message = ChatMessage.objects.create(
        session_id=b_session["id"], sender=ChatMessage.Sender.BOT, content=b.code, metadata={}
    )
    missing = 10**9
    pairs = [
        (lambda i: a.client.get(f"{DOCS}{i}/"), b.document.pk),
        (lambda i: a.client.patch(f"{DOCS}{i}/", {"title": "x"}, format="json"), b.document.pk),
        (lambda i: a.client.delete(f"{DOCS}{i}/"), b.document.pk),
        (lambda i: a.client.get(DOCS, {"workspace": i}), b.workspace.pk),
        (lambda i: a.client.get(SEARCH, {"q": QUESTION, "workspace": i}), b.workspace.pk),
        (lambda i: a.client.post(DOCS, {"title": "t", "content": "c", "workspace": i}, format="json"), b.workspace.pk),
        (lambda i: a.client.post(SESSIONS, {"workspace": i}, format="json"), b.workspace.pk),
        (lambda i: a.client.get(f"{SESSIONS}{i}/"), b_session["id"]),
        (lambda i: a.client.get(f"{SESSIONS}{i}/messages/"), b_session["id"]),
        (lambda i: a.client.post(f"{SESSIONS}{i}/messages/", {"content": "hi"}, format="json"), b_session["id"]),
        (lambda i: a.client.get(f"{SESSIONS}{i}/export/"), b_session["id"]),
        (lambda i: a.client.post(f"/api/chat/messages/{i}/feedback/", {"rating": 1}, format="json"), b_message.pk),
    ]
    for request, guessed in pairs:
        response, reference = request(guessed), request(missing)
        assert response.status_code == 404 and reference.status_code == 404
        assert response.json() == reference.json()
        assert_no_trace(response.content.decode(), b)
    assert Document.objects.filter(pk=b.document.pk, title=b.title).exists()
    assert ChatSession.objects.filter(pk=b_session["id"], title=b.title).exists()


def test_sessions_history_and_counts_are_the_callers_own(tenants):
    a, b = tenants
    b_session = b.client.post(SESSIONS, {"title": b.title}, format="json").json()
    ChatMessage.objects.create(session_id=b_session["id"], sender=ChatMessage.Sender.USER, content=b.code)
    a.client.post(SESSIONS, {"title": "Mine"}, format="json")
    sessions = a.client.get(SESSIONS).json()
    assert sessions["count"] == 1 and sessions["results"][0]["title"] == "Mine"
    history = a.client.get("/api/chat/history/").json()
    assert history["total_sessions"] == 1 and history["total_messages"] == 0
    for body in (json.dumps(sessions), json.dumps(history)):
        assert_no_trace(body, b)


def test_members_read_a_workspace_and_only_admins_write_it(tenants, client_for):
    a, b = tenants
    team = Workspace.objects.get(pk=a.workspace.pk)
    admin = UserFactory.create(username="admin-of-alpha")
    team.memberships.create(user=admin, role="admin")
    team.memberships.create(user=b.user, role="member")
    member = b.client
    assert member.get(f"{DOCS}{a.document.pk}/").json()["title"] == a.title  # members read
    for refused in (
        member.post(DOCS, {"title": "t", "content": "c", "workspace": team.pk}, format="json"),
        member.patch(f"{DOCS}{a.document.pk}/", {"title": "Defaced"}, format="json"),
        member.delete(f"{DOCS}{a.document.pk}/"),
    ):
        assert refused.status_code == 403 and refused.json()["code"] == "permission_denied"
    written = client_for(admin).patch(f"{DOCS}{a.document.pk}/", {"title": "Runbook v2"}, format="json")
    assert written.status_code == 200 and written.json()["title"] == "Runbook v2"
    created = client_for(admin).post(
        DOCS, {"title": "Pager", "content": "Pager rota.", "workspace": team.pk}, format="json"
    )
    assert created.status_code == 201 and created.json()["workspace"] == team.pk
    # B's own workspace stays B's: the admin of A's workspace does not reach it.
    assert client_for(admin).get(f"{DOCS}{b.document.pk}/").status_code == 404


# --- the same through an API key, and the account-wide reads ------------------------------------


def _key_client(tenant: Tenant) -> APIClient:
    from workspaces.api_keys import api_key_create

    key = api_key_create(
        workspace=tenant.workspace,
        created_by=tenant.user,
        name="server",
        scopes=["chat", "documents:read", "documents:write"],
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key.raw_key}")
    return client


@needs_store_isolation
def test_an_api_key_reads_only_its_workspace_and_the_shared_base(tenants):
    a, b = tenants
    key = _key_client(a)
    found = key.get(SEARCH, {"q": QUESTION}).json()
    assert a.document.pk in {r["document_id"] for r in found["results"]}
    session = key.post(SESSIONS, {}, format="json").json()
    url = f"{SESSIONS}{session['id']}/"
    answered = key.post(f"{url}messages/", {"content": QUESTION}, format="json")
    assert answered.status_code == 201 and a.code in answered.json()["bot_message"]["content"]
    streamed = key.post(f"{url}messages/", {"content": QUESTION}, format="json", HTTP_ACCEPT="text/event-stream")
    bodies = [
        json.dumps(found),
        answered.content.decode(),
        text_of(streamed),
        text_of(key.get(f"{url}messages/")),
        text_of(key.get("/api/chat/history/")),
        text_of(key.get(SESSIONS)),
        text_of(key.get(DOCS)),
        text_of(key.get(f"{DOCS}{a.document.pk}/")),
    ]
    for body in bodies:
        assert_no_trace(body, b)
    # Another workspace's objects, named outright, read like missing ones through the key too.
    b_session = b.client.post(SESSIONS, {"title": b.title}, format="json").json()
    for response in (
        key.get(f"{DOCS}{b.document.pk}/"),
        key.get(DOCS, {"workspace": b.workspace.pk}),
        key.get(SEARCH, {"q": QUESTION, "workspace": b.workspace.pk}),
        key.get(f"{SESSIONS}{b_session['id']}/"),
        key.post(f"{SESSIONS}{b_session['id']}/messages/", {"content": "hi"}, format="json"),
    ):
        assert response.status_code == 404
        assert_no_trace(response.content.decode(), b)


@needs_store_isolation
def test_account_export_usage_and_health_carry_nothing_of_another_workspace(tenants):
    a, b = tenants
    for tenant in (a, b):
        session = tenant.client.post(SESSIONS, {"title": tenant.title}, format="json").json()
        sent = tenant.client.post(f"{SESSIONS}{session['id']}/messages/", {"content": QUESTION}, format="json")
        assert sent.status_code == 201
    export = a.client.get("/api/auth/me/export/")
    assert export.status_code == 200 and a.code in text_of(export)
    usage = a.client.get("/api/usage/")
    assert usage.status_code == 200
    assert [w["id"] for w in usage.json()["workspaces"]] == [a.workspace.pk]
    health = a.client.get("/api/health/")
    for body in (text_of(export), text_of(usage), text_of(health)):
        assert_no_trace(body, b)
        assert b.user.username not in body and str(b.workspace.slug) not in body
