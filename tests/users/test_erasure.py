"""Account erasure (``DELETE /api/auth/me/``): every row and every vector the account owns goes, in
one call that says what it removed; what others own stays; a wrong password or a workspace that
would lose its last owner erases nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps
from django.db.models import ForeignKey

from chat.models import ChatMessage, ChatSession, DailyMessageCount, HistoryVersion
from rag.models import Chunk, Document
from rag.providers.factory import get_vector_store, reset_providers
from rag.services.ingestion import DocumentInput, document_ingest
from tests.factories import (
    DEFAULT_PASSWORD,
    AccountTokenFactory,
    BotMessageFactory,
    ChatMessageFactory,
    ChatSessionFactory,
    IdempotencyRecordFactory,
    UserFactory,
)
from tests.fakes.pinecone_server import FakePinecone
from users.models import User
from workspaces.models import ApiKey, Invitation, Membership, Workspace
from workspaces.services import workspace_create, workspace_personal_get

pytestmark = pytest.mark.django_db

ME = "/api/auth/me/"
LOGIN = "/api/auth/login/"


def ingest(workspace: Workspace | None, title: str, body: str) -> Document:
    # Ingested into the workspace, so that its vectors live where its row says (a Pinecone namespace).
    workspace_id = workspace.pk if workspace is not None else None
    item = DocumentInput(title=title, content=body, category="Guide", workspace_id=workspace_id)
    return document_ingest(item=item).document


def rows_referencing(user_id: int) -> dict[str, int]:
    """Rows in any table whose foreign key points at ``user_id``, found by walking every model."""
    found = {}
    for model in apps.get_models():
        for field in model._meta.get_fields():
            if isinstance(field, ForeignKey) and field.related_model is User:  # OneToOneField included
                n = model._default_manager.filter(**{field.name: user_id}).count()
                if n:
                    found[f"{model._meta.label}.{field.name}"] = n
    return found


def api_key(workspace: Workspace, user: User, name: str) -> ApiKey:
    return ApiKey.objects.create(
        workspace=workspace, created_by=user, name=name, prefix=name[:8], key_hash=name.ljust(64, "0"), scopes=["chat"]
    )


@pytest.fixture
def world(knowledge_base: list[Document], client_for: Any, anon_client: Any) -> dict[str, Any]:
    """Ann owns a personal workspace and a solo one, and is a member of Bob's team workspace."""
    ann, bob = UserFactory.create(username="ann"), UserFactory.create(username="bob")
    personal, bob_personal = workspace_personal_get(user=ann), workspace_personal_get(user=bob)
    solo = workspace_create(name="Ann's side project", owner=ann)
    team = workspace_create(name="Bob's team", owner=bob)
    Membership.objects.create(workspace=team, user=ann, role=Membership.Role.ADMIN)
    ann_docs = [
        ingest(personal, "Ann's notes", "Ann keeps notes about gardening, tomatoes and compost. " * 30),
        ingest(solo, "Side project plan", "The side project ships a bicycle repair guide in spring. " * 30),
    ]
    bob_doc = ingest(team, "Team handbook", "The team meets on Mondays to plan the week's releases. " * 20)
    ingest(bob_personal, "Bob's own", "Bob writes about sailing and knots.")

    # Ann's chats in all three workspaces; Bob's in the team workspace stay.
    for workspace in (personal, solo, team):
        session = ChatSessionFactory.create(user=ann, workspace=workspace)
        ChatMessageFactory.create(session=session)
        BotMessageFactory.create(session=session)
    IdempotencyRecordFactory.create(user_message=ChatMessageFactory.create(session__user=ann, session__workspace=team))
    bob_session = ChatSessionFactory.create(user=bob, workspace=team)
    ChatMessageFactory.create(session=bob_session)
    DailyMessageCount.objects.create(user=ann, day="2026-12-06", count=3)
    HistoryVersion.objects.create(user=ann, token="t" * 32)
    AccountTokenFactory.create(user=ann)
    api_key(team, ann, "annteamkey")
    api_key(solo, ann, "annsolokey")
    bob_key = api_key(team, bob, "bobteamkey")
    Invitation.objects.create(
        workspace=team,
        email="ann@example.com",
        token_hash="a" * 64,
        invited_by=bob,
        expires_at="2030-01-01T00:00Z",
        accepted_at="2026-12-01T00:00Z",
        accepted_by=ann,
    )
    Invitation.objects.create(
        workspace=team, email="cy@example.com", token_hash="b" * 64, invited_by=ann, expires_at="2030-01-01T00:00Z"
    )
    assert anon_client.post(LOGIN, {"username": "ann", "password": DEFAULT_PASSWORD}, format="json").status_code == 200
    return {
        "ann": ann,
        "bob": bob,
        "team": team,
        "personal": personal,
        "solo": solo,
        "ann_docs": ann_docs,
        "bob_doc": bob_doc,
        "bob_key": bob_key,
        "bob_session": bob_session,
        "client": client_for(ann),
        "bob_client": client_for(bob),
    }


def test_erasing_an_account_leaves_no_row_and_no_vector_of_it(world):
    ann, client = world["ann"], world["client"]
    store = get_vector_store()
    vectors_before = store.count()
    ann_chunks = Chunk.objects.filter(document__in=world["ann_docs"]).count()
    ann_messages = ChatMessage.objects.filter(session__user=ann).count()
    assert rows_referencing(ann.pk)  # the walk finds the rows it is meant to find

    response = client.delete(ME, {"password": DEFAULT_PASSWORD}, format="json")

    assert response.status_code == 200, response.json()
    removed = response.json()["removed"]
    assert removed["documents"] == 2 and removed["chunks"] == removed["vectors"] == ann_chunks > 2
    assert removed["workspaces"] == 2 and removed["users"] == 1
    assert removed["sessions"] == 4 and removed["messages"] == ann_messages
    assert removed["api_keys"] == 2 and removed["invitations"] == 2 and removed["idempotency_records"] == 1
    assert removed["account_tokens"] == 1 and removed["refresh_tokens"] == 2  # the login and the client's
    assert removed["message_counters"] == 1 and removed["history_versions"] == 1
    assert removed["memberships"] == 3  # personal, solo, and the team membership

    assert rows_referencing(ann.pk) == {}
    assert not User.objects.filter(pk=ann.pk).exists()
    assert not Workspace.objects.filter(pk__in=[world["personal"].pk, world["solo"].pk]).exists()
    assert not Chunk.objects.filter(document_id__in=[d.pk for d in world["ann_docs"]]).exists()
    assert store.count() == vectors_before - ann_chunks


def test_what_others_own_survives_an_erasure(world):
    bob, team = world["bob"], world["team"]
    kept_chunks = list(Chunk.objects.exclude(document__in=world["ann_docs"]).values_list("pk", flat=True))

    assert world["client"].delete(ME, {"password": DEFAULT_PASSWORD}, format="json").status_code == 200

    assert Workspace.objects.filter(pk=team.pk).exists()
    assert list(Membership.objects.filter(workspace=team).values_list("user_id", "role")) == [(bob.pk, "owner")]
    assert Document.objects.filter(pk=world["bob_doc"].pk).exists()
    assert Document.objects.filter(workspace__isnull=True).count() == 5  # the shared knowledge base
    assert ApiKey.objects.filter(pk=world["bob_key"].pk).exists()
    assert ChatMessage.objects.filter(session=world["bob_session"]).count() == 1
    assert ChatSession.objects.filter(workspace=team).count() == 1
    assert sorted(Chunk.objects.values_list("pk", flat=True)) == sorted(kept_chunks)
    assert get_vector_store().count() == len(kept_chunks)
    # Ann's token is dead with her account; Bob's account works as before.
    assert world["client"].get("/api/auth/profile/").status_code == 401
    assert world["bob_client"].get("/api/auth/profile/").status_code == 200


def test_a_wrong_password_erases_nothing(world):
    ann, client = world["ann"], world["client"]
    before = rows_referencing(ann.pk)
    vectors = get_vector_store().count()

    response = client.delete(ME, {"password": "not-the-password"}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "wrong_password" and "password" in response.json()["errors"]
    assert rows_referencing(ann.pk) == before and get_vector_store().count() == vectors
    assert client.delete(ME, {}, format="json").status_code == 400  # the password is required


def test_wrong_passwords_lock_the_erasure_like_logins(world, settings):
    settings.LOGIN_LOCKOUT_ACCOUNT_FAILURES = 2
    client = world["client"]
    for _ in range(2):
        assert client.delete(ME, {"password": "wrong"}, format="json").status_code == 400
    locked = client.delete(ME, {"password": DEFAULT_PASSWORD}, format="json")
    assert locked.status_code == 429 and locked.json()["code"] == "login_locked"
    assert User.objects.filter(pk=world["ann"].pk).exists()


def test_the_last_owner_of_a_workspace_with_members_must_transfer_it_first(world):
    ann, bob, client = world["ann"], world["bob"], world["client"]
    shop = workspace_create(name="Ann's shop", owner=ann)
    Membership.objects.create(workspace=shop, user=bob, role=Membership.Role.MEMBER)
    ingest(shop, "Shop prices", "Prices of the shop's bicycles and spare parts.")
    before, vectors = rows_referencing(ann.pk), get_vector_store().count()

    response = client.delete(ME, {"password": DEFAULT_PASSWORD}, format="json")

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "transfer_ownership"
    assert body["errors"]["workspaces"] == [f"Ann's shop (id {shop.pk})"] and "Ann's shop" in body["detail"]
    assert rows_referencing(ann.pk) == before and get_vector_store().count() == vectors

    # With a second owner the workspace stays, with its documents, and the account goes.
    Membership.objects.filter(workspace=shop, user=bob).update(role=Membership.Role.OWNER)
    assert client.delete(ME, {"password": DEFAULT_PASSWORD}, format="json").status_code == 200
    assert Document.objects.filter(workspace=shop).count() == 1
    assert list(Membership.objects.filter(workspace=shop).values_list("user_id", flat=True)) == [bob.pk]


def test_erasure_needs_a_signed_in_caller(anon_client):
    assert anon_client.delete(ME, {"password": "x"}, format="json").status_code == 401


def test_erasure_removes_the_vectors_from_pinecone_too(settings, fake_pinecone: FakePinecone, user, client_for):
    from rag.providers.factory import get_embedder

    settings.RAG_VECTOR_STORE = "pinecone"
    settings.PINECONE_API_KEY, settings.PINECONE_HOST = "pc-test-key", fake_pinecone.url
    reset_providers()
    fake_pinecone.dimension = get_embedder().dimension
    other = UserFactory.create()
    mine = ingest(workspace_personal_get(user=user), "Mine", "A guide to pruning apple trees in winter. " * 40)
    ingest(workspace_personal_get(user=other), "Theirs", "A guide to knitting socks for the winter. " * 10)
    store = get_vector_store()
    mine_chunks, before = mine.chunks.count(), store.count()
    assert mine_chunks > 1 and before > mine_chunks

    response = client_for(user).delete(ME, {"password": DEFAULT_PASSWORD}, format="json")

    assert response.status_code == 200 and response.json()["removed"]["vectors"] == mine_chunks
    assert store.count() == before - mine_chunks
    assert rows_referencing(user.pk) == {}


def test_a_former_members_session_in_an_erased_workspace_goes_and_their_history_is_refreshed(world):
    carl = UserFactory.create()
    session = ChatSessionFactory.create(user=carl, workspace=world["solo"])  # Carl has since left it
    ChatMessageFactory.create(session=session)
    HistoryVersion.objects.create(user=carl, token="c" * 32)

    assert world["client"].delete(ME, {"password": DEFAULT_PASSWORD}, format="json").status_code == 200

    assert not ChatSession.objects.filter(pk=session.pk).exists()
    assert HistoryVersion.objects.get(user=carl).token != "c" * 32  # his cached history is not served again
    assert User.objects.filter(pk=carl.pk).exists()


def test_a_vector_store_outage_erases_nothing_and_a_retry_finishes(world, monkeypatch):
    from utils.exceptions import ProviderUnavailable

    ann, client = world["ann"], world["client"]
    store = get_vector_store()
    vectors = store.count()

    def refuse(ids: Any) -> None:
        raise ProviderUnavailable("the vector store is down", provider="faiss")

    monkeypatch.setattr(type(store), "delete", lambda self, ids, **kwargs: refuse(ids))
    response = client.delete(ME, {"password": DEFAULT_PASSWORD}, format="json")

    assert response.status_code == 503
    assert User.objects.filter(pk=ann.pk).exists() and store.count() == vectors
    assert Document.objects.filter(pk__in=[d.pk for d in world["ann_docs"]]).count() == 2

    monkeypatch.undo()
    assert client.delete(ME, {"password": DEFAULT_PASSWORD}, format="json").status_code == 200
    assert rows_referencing(ann.pk) == {}


def test_an_api_key_can_never_erase_the_account_even_with_the_password(world):
    from rest_framework.test import APIClient

    from workspaces.api_keys import api_key_create

    raw = api_key_create(
        workspace=world["solo"], created_by=world["ann"], name="all", scopes=["chat", "documents:read"]
    ).raw_key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    vectors = get_vector_store().count()

    for response in (
        client.delete(ME, {"password": DEFAULT_PASSWORD}, format="json"),
        client.get("/api/auth/me/export/"),
        client.get("/api/usage/"),
    ):
        assert response.status_code == 403 and response.json()["code"] == "api_key_not_allowed"
    assert User.objects.filter(pk=world["ann"].pk).exists() and get_vector_store().count() == vectors
