"""Backups carry workspaces, members, invitations and API-key hashes; an archive written before
workspaces existed still restores, each user getting a personal workspace that holds their sessions."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from background_tasks.services import backups
from background_tasks.services.backups import WORKSPACE_TABLES, backup_create, backups_list, member_name
from background_tasks.services.restore import backup_restore, backup_verify
from chat.models import ChatMessage, ChatSession
from rag.models import Chunk, Document
from rag.providers.factory import get_vector_store
from tests.background_tasks.test_backups import table_fingerprints, wipe
from tests.factories import BotMessageFactory, ChatMessageFactory, ChatSessionFactory, UserFactory
from users.models import User
from workspaces.models import ApiKey, Invitation, Membership, Workspace
from workspaces.services import workspace_create, workspace_personal_get

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenants(knowledge_base: list[Document]) -> dict[str, Any]:
    """Two workspaces with members, an invitation, an API key and a document of their own."""
    ann, bob = UserFactory.create(username="ann"), UserFactory.create(username="bob")
    acme = workspace_create(name="Acme", owner=ann, plan=Workspace.Plan.TEAM)
    globex = workspace_create(name="Globex", owner=bob)
    Membership.objects.create(workspace=acme, user=bob, role=Membership.Role.ADMIN)
    workspace_personal_get(user=ann)
    Workspace.objects.filter(pk=globex.pk).update(include_shared=False, max_documents=7)
    Document.objects.filter(pk=knowledge_base[0].pk).update(workspace=acme)  # with its chunks and vectors
    key = ApiKey.objects.create(
        workspace=acme,
        created_by=ann,
        name="ci",
        prefix="rk_ci0001",
        key_hash="9" * 64,
        scopes=["chat", "documents:read"],
    )
    Invitation.objects.create(
        workspace=globex, email="cy@example.com", token_hash="7" * 64, invited_by=bob, expires_at="2030-01-01T00:00Z"
    )
    session = ChatSessionFactory.create(user=bob, workspace=acme)
    ChatMessageFactory.create(session=session)
    BotMessageFactory.create(session=session)
    return {"ann": ann, "bob": bob, "acme": acme, "globex": globex, "key": key}


def test_a_round_trip_gives_back_workspaces_members_and_key_hashes(tenants, backup_dir):
    before = table_fingerprints()
    counts = backup_create(directory=backup_dir, keep=8)
    assert (counts["workspaces"], counts["memberships"], counts["invitations"], counts["api_keys"]) == (3, 4, 1, 1)
    [archive] = backups_list(directory=backup_dir)

    wipe()
    assert not Workspace.objects.exists() and get_vector_store().count() == 0
    restored = backup_restore(path=archive)

    assert table_fingerprints() == before
    assert ApiKey.objects.get(prefix="rk_ci0001").key_hash == "9" * 64
    acme = Workspace.objects.get(pk=tenants["acme"].pk)
    assert (acme.plan, acme.documents.count()) == ("team", 1)
    assert dict(Membership.objects.filter(workspace=acme).values_list("user__username", "role")) == {
        "ann": "owner",
        "bob": "admin",
    }
    assert Workspace.objects.get(pk=tenants["globex"].pk).max_documents == 7
    assert restored["chunks_indexed"] == Chunk.objects.count() == get_vector_store().count()
    # The sequences follow the restored ids.
    assert workspace_create(name="New", owner=tenants["ann"]).pk > tenants["globex"].pk


def _legacy_rows(content: bytes, drop: str) -> bytes:
    """JSON lines without the field ``drop`` (as the serializer wrote them before it existed)."""
    rows = [json.loads(line) for line in content.splitlines()]
    for row in rows:
        del row["fields"][drop]
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def make_legacy(archive: Path, target: Path) -> None:
    """Rewrite ``archive`` as the code before workspaces wrote it: no workspaces tables or
    migrations, sessions and documents without a workspace; signed with the right key."""
    with tarfile.open(archive, "r:gz") as source:
        members = {m.name: source.extractfile(m).read() for m in source.getmembers()}  # type: ignore[union-attr]
    manifest = json.loads(members.pop("manifest.json"))
    members.pop("manifest.sig")
    for label in WORKSPACE_TABLES:
        members.pop(member_name(label))
        del manifest["files"][member_name(label)], manifest["counts"][label]
    del manifest["migrations"]["workspaces"]
    manifest["migrations"]["chat"] = [m for m in manifest["migrations"]["chat"] if "workspace" not in m]
    manifest["migrations"]["rag"] = [m for m in manifest["migrations"]["rag"] if "workspace" not in m]
    for label, field in (("chat.ChatSession", "workspace"), ("rag.Document", "workspace")):
        members[member_name(label)] = _legacy_rows(members[member_name(label)], field)
        manifest["files"][member_name(label)] = hashlib.sha256(members[member_name(label)]).hexdigest()
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode()
    members = {"manifest.json": manifest_bytes, "manifest.sig": backups.signature_document(manifest_bytes)} | members
    with tarfile.open(target, "w:gz") as out:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            out.addfile(info, io.BytesIO(content))


def test_an_archive_from_before_workspaces_restores_with_personal_workspaces(tenants, backup_dir, tmp_path):
    ChatSessionFactory.create(user=tenants["ann"])
    backup_create(directory=backup_dir, keep=8)
    [archive] = backups_list(directory=backup_dir)
    legacy = tmp_path / "legacy.tar.gz"
    make_legacy(archive, legacy)
    assert set(backup_verify(path=legacy)["files"]) == {member_name(label) for label in backups.TABLES} - {
        member_name(label) for label in WORKSPACE_TABLES
    }
    users, sessions, messages = User.objects.count(), ChatSession.objects.count(), ChatMessage.objects.count()

    wipe()
    restored = backup_restore(path=legacy)

    assert (User.objects.count(), ChatSession.objects.count(), ChatMessage.objects.count()) == (
        users,
        sessions,
        messages,
    )
    assert "workspaces" not in restored
    for user in User.objects.all():
        personal = Workspace.objects.get(personal_owner=user)
        assert list(Membership.objects.filter(workspace=personal).values_list("user_id", "role")) == [
            (user.pk, "owner")
        ]
        assert set(ChatSession.objects.filter(user=user).values_list("workspace_id", flat=True)) <= {personal.pk}
    assert ChatSession.objects.filter(user=tenants["bob"]).exists()
    # Before workspaces every document was the shared knowledge base; it is searchable again.
    assert not Document.objects.filter(workspace__isnull=False).exists()
    assert not ApiKey.objects.exists() and not Invitation.objects.exists()
    assert restored["chunks_indexed"] == get_vector_store().count() == Chunk.objects.count()


def test_a_dry_run_of_an_archive_from_before_workspaces_lists_only_its_tables(tenants, backup_dir, tmp_path):
    backup_create(directory=backup_dir, keep=8)
    [archive] = backups_list(directory=backup_dir)
    legacy = tmp_path / "legacy.tar.gz"
    make_legacy(archive, legacy)

    counts = backup_restore(path=legacy, force=True, dry_run=True)

    assert counts["users"] == User.objects.count() and counts["sessions"] == ChatSession.objects.count()
    assert not {"workspaces", "memberships", "invitations", "api_keys"} & set(counts)
    assert counts["workspaces_to_wipe"] == Workspace.objects.count()  # a forced restore would wipe them
    assert ApiKey.objects.count() == 1  # a dry run touches nothing
