"""Workspace quotas (issue 15): documents, bytes of text and messages per day, each refused with
its own code, checked in the writing transaction so that parallel writes cannot overshoot."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chat.models import ChatMessage, ChatSession, WorkspaceDailyMessageCount
from chat.services import message_receive
from rag.models import Document
from rag.services.ingestion import DocumentInput
from tests.factories import UserFactory
from tests.security.threads import in_thread, in_threads, threaded_db  # noqa: F401 (a fixture)
from utils.exceptions import ServiceError
from workspaces.models import Membership, Workspace
from workspaces.quotas import document_ingest_within_quota, text_bytes
from workspaces.services import workspace_create

DOCS = "/api/rag/documents/"
INDEX = "/api/rag/index/"


@pytest.fixture
def small(db, user) -> Workspace:
    workspace = workspace_create(name="Small", owner=user)
    workspace.max_documents, workspace.max_bytes = 2, 200
    workspace.save(update_fields=["max_documents", "max_bytes"])
    return workspace


def doc(title: str, content: str = "A short page about opening hours.", **extra):
    return {"title": title, "content": content, **extra}


def test_the_documents_quota(api_client, small):
    for n in range(2):
        assert api_client.post(DOCS, doc(f"Page {n}", workspace=small.pk), format="json").status_code == 201
    refused = api_client.post(DOCS, doc("Page 3", workspace=small.pk), format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "document_quota_exceeded"
    assert Document.objects.filter(workspace=small).count() == 2
    # Changing a document adds none; other workspaces and the shared base are not counted.
    first = Document.objects.filter(workspace=small).earliest("id")
    assert api_client.patch(f"{DOCS}{first.pk}/", {"content": "New hours."}, format="json").status_code == 200
    assert api_client.post(DOCS, doc("Personal page"), format="json").status_code == 201


def test_a_second_upload_of_the_same_file_replaces_it(api_client, small):
    def upload(text: bytes):
        from django.core.files.uploadedfile import SimpleUploadedFile

        file = SimpleUploadedFile("hours.md", text)
        return api_client.post(DOCS, {"file": file, "workspace": str(small.pk)}, format="multipart")

    api_client.post(DOCS, doc("Other", workspace=small.pk), format="json")
    assert upload(b"Opening hours: nine to five.").status_code == 201
    assert upload(b"Opening hours: ten to six.").status_code == 201  # at the quota, but no new document
    assert Document.objects.filter(workspace=small).count() == 2


def test_the_storage_quota_counts_utf8_bytes(api_client, small):
    text = "é" * 150  # 150 characters, 300 bytes
    assert text_bytes(text) == 300
    refused = api_client.post(DOCS, doc("Accents", text, workspace=small.pk), format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "storage_quota_exceeded"
    assert api_client.post(DOCS, doc("Plain", "e" * 150, workspace=small.pk), format="json").status_code == 201
    plain = Document.objects.get(workspace=small)
    grown = api_client.patch(f"{DOCS}{plain.pk}/", {"content": "e" * 250}, format="json")
    assert grown.status_code == 403 and grown.json()["code"] == "storage_quota_exceeded"
    assert Document.objects.get(pk=plain.pk).content == "e" * 150


def test_a_shrinking_change_is_allowed_over_the_quota(api_client, small):
    assert api_client.post(DOCS, doc("Plain", "e" * 150, workspace=small.pk), format="json").status_code == 201
    Workspace.objects.filter(pk=small.pk).update(max_bytes=50)  # the plan was lowered meanwhile
    plain = Document.objects.get(workspace=small)
    assert api_client.patch(f"{DOCS}{plain.pk}/", {"content": "e" * 100}, format="json").status_code == 200


def test_a_batch_is_indexed_whole_or_not_at_all(api_client, small):
    three = [doc(f"Page {n}") for n in range(3)]
    refused = api_client.post(INDEX, {"workspace": small.pk, "documents": three}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "document_quota_exceeded"
    assert not Document.objects.filter(workspace=small).exists()
    big = [doc("Big", "x" * 120), doc("Bigger", "y" * 120)]
    refused = api_client.post(INDEX, {"workspace": small.pk, "documents": big}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "storage_quota_exceeded"
    ok = api_client.post(INDEX, {"workspace": small.pk, "documents": three[:2]}, format="json")
    assert ok.status_code == 201 and Document.objects.filter(workspace=small).count() == 2


def test_the_shared_base_has_no_quota(staff_client, settings):
    docs = [doc(f"Page {n}") for n in range(3)]
    assert staff_client.post(INDEX, {"workspace": "shared", "documents": docs}, format="json").status_code == 201


@pytest.mark.usefixtures("threaded_db")
def test_parallel_writes_do_not_overshoot_the_documents_quota():
    def prepare() -> Workspace:
        workspace = workspace_create(name="Race", owner=UserFactory.create())
        Workspace.objects.filter(pk=workspace.pk).update(max_documents=2)
        return workspace

    workspace = in_thread(prepare)

    def write(n: int) -> Callable[[], str]:
        def attempt() -> str:
            item = DocumentInput(
                title=f"Page {n}", content=f"Fact {n} about racing writers.", workspace_id=workspace.pk
            )
            try:
                document_ingest_within_quota(item=item)
            except ServiceError as exc:
                return exc.code
            return "stored"

        return attempt

    outcomes = in_threads([write(n) for n in range(5)])
    assert outcomes.count("stored") == 2 and outcomes.count("document_quota_exceeded") == 3, outcomes
    assert in_thread(lambda: Document.objects.filter(workspace=workspace).count()) == 2


@pytest.mark.usefixtures("threaded_db")
def test_parallel_sends_do_not_overshoot_the_workspace_message_quota(settings):
    settings.CHAT_DAILY_QUOTA = 1000

    def prepare() -> list[ChatSession]:
        owner = UserFactory.create()
        workspace = workspace_create(name="Busy", owner=owner)
        Workspace.objects.filter(pk=workspace.pk).update(max_messages_per_day=4)
        members = [owner]
        for _ in range(2):
            member = UserFactory.create()
            Membership.objects.create(workspace=workspace, user=member)
            members.append(member)
        return [ChatSession.objects.create(user=m, workspace=workspace) for m in members]

    sessions = in_thread(prepare)

    def send(n: int) -> Callable[[], str]:
        def attempt() -> str:
            session = sessions[n % 3]
            try:
                message_receive(user=session.user, session=session, content=f"question {n}")
            except ServiceError as exc:
                return exc.code
            return "stored"

        return attempt

    outcomes = in_threads([send(n) for n in range(12)])
    assert outcomes.count("stored") == 4, outcomes
    assert outcomes.count("workspace_message_quota_exceeded") == 8, outcomes
    workspace_id = sessions[0].workspace_id
    stored = in_thread(lambda: ChatMessage.objects.filter(session__workspace_id=workspace_id).count())
    assert stored == 4
    assert in_thread(lambda: WorkspaceDailyMessageCount.objects.get(workspace_id=workspace_id).count) == 4
