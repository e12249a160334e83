"""Backups: a faithful, checksummed round trip; corruption refused; atomic writes; rotation."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.core.management.color import no_style
from django.db import connection
from django.utils import timezone

from background_tasks.runner import job_run_now
from background_tasks.services import backups
from background_tasks.services.backups import TABLES, BackupCorrupted, RestoreRefused, backup_create, backups_list
from background_tasks.services.restore import backup_restore, backup_verify
from chat.models import ChatSession
from rag.providers.factory import get_embedder, get_vector_store
from rag.services.retrieval import lexical_index, retrieve
from tests.factories import (
    AccountTokenFactory,
    BotMessageFactory,
    ChatMessageFactory,
    ChatSessionFactory,
    UserFactory,
)
from users.models import AccountToken, User

pytestmark = pytest.mark.django_db

QUERIES = ["how do I reset my password", "how long are chat messages kept", "login attempts per minute"]


def table_fingerprints() -> dict[str, tuple[int, str]]:
    """Row count and a content hash per backed-up table (plus the user-group links)."""
    fingerprints = {}
    for label in TABLES:
        rows = list(apps.get_model(label)._default_manager.order_by("pk").values())
        fingerprints[label] = (len(rows), hashlib.sha256(json.dumps(rows, default=str).encode()).hexdigest())
    links = list(User.groups.through.objects.order_by("user_id").values_list("user_id", "group__name"))
    fingerprints["links"] = (len(links), hashlib.sha256(json.dumps(links).encode()).hexdigest())
    return fingerprints


def search_titles() -> list[list[str]]:
    return [[d.title for d in retrieve(query=q, use_cache=False).documents] for q in QUERIES]


@pytest.fixture
def data(knowledge_base):
    group = Group.objects.create(name="support")
    group.permissions.add(Permission.objects.get(codename="view_chatsession"))
    ann = UserFactory.create(first_name="Ann", is_staff=True)
    ann.groups.add(group)
    bob = UserFactory.create()
    AccountTokenFactory.create(user=bob)  # tokens are not backed up
    when = timezone.now() - timedelta(days=2, microseconds=123457)
    session = ChatSessionFactory.create(user=bob, title="Ünïcode ✓", created_at=when, updated_at=when)
    ChatMessageFactory.create(session=session, content="How do I reset my password?\nThanks", created_at=when)
    BotMessageFactory.create(
        session=session,
        created_at=when + timedelta(microseconds=1),
        metadata={"sources": [], "degraded": True, "latency_ms": 12.5, "nested": {"a": [1, None, "x"]}},
        feedback_rating=-1,
        feedback_comment="meh",
        feedback_at=when,
    )
    ChatSessionFactory.create(user=ann)
    return {"ann": ann, "bob": bob}


def wipe() -> None:
    """Empty the backed-up tables with their id sequences reset, as in a freshly migrated database."""
    models = [apps.get_model(label) for label in TABLES]
    tables = [m._meta.db_table for m in models] + [
        f.remote_field.through._meta.db_table for m in models for f in m._meta.many_to_many
    ]
    postgres = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        if postgres:  # TRUNCATE refuses tables with deferred FK checks pending in this test's transaction
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for sql in connection.ops.sql_flush(no_style(), tables, reset_sequences=True, allow_cascade=True):
            cursor.execute(sql)
        if postgres:
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    embedder = get_embedder()
    get_vector_store().reset(embedder_name=embedder.name, dimension=embedder.dimension)
    lexical_index.reset()


def test_backup_wipe_restore_gives_back_identical_rows_and_the_same_search(data, backup_dir):
    before, titles = table_fingerprints(), search_titles()
    assert all(titles)
    counts = backup_create(directory=backup_dir, keep=8)
    assert counts["users"] == 2 and counts["messages"] == 2 and counts["documents"] == 5 and counts["groups"] == 1
    [archive] = backups_list(directory=backup_dir)

    wipe()
    assert get_vector_store().count() == 0 and not User.objects.exists()
    restored = backup_restore(path=archive)

    assert table_fingerprints() == before
    assert restored["chunks_indexed"] == before["rag.Chunk"][0] == get_vector_store().count()
    assert search_titles() == titles
    assert not AccountToken.objects.exists()
    ann = User.objects.get(pk=data["ann"].pk)
    assert ann.password == data["ann"].password and ann.has_perm("chat.view_chatsession")
    # Sequences were reset after the restore: new rows do not collide with restored ids.
    restored_session_ids = list(ChatSession.objects.values_list("pk", flat=True))
    assert ChatSessionFactory.create(user=ann).pk > max(restored_session_ids)
    assert UserFactory.create().pk > max(data["ann"].pk, data["bob"].pk)


def test_archive_has_a_versioned_manifest_with_counts_and_checksums(data, backup_dir):
    run = job_run_now(name="backup_data")
    assert run.status == "succeeded" and run.result["users"] == 2
    [archive] = backups_list(directory=backup_dir)
    assert archive.name.startswith("ragchat-backup-") and archive.name.endswith(".tar.gz")
    with tarfile.open(archive, "r:gz") as tar:
        manifest = json.loads(member_bytes(tar, "manifest.json"))
        for name, digest in manifest["files"].items():
            assert hashlib.sha256(member_bytes(tar, name)).hexdigest() == digest
    assert manifest["format"] == "ragchat-backup" and manifest["format_version"] == 2
    assert manifest["app_version"] and datetime.fromisoformat(manifest["created_at"])
    assert manifest["counts"] == {
        "auth.Group": 1,
        "users.User": 2,
        "workspaces.Workspace": 2,
        "workspaces.Membership": 2,
        "workspaces.Invitation": 0,
        "workspaces.ApiKey": 0,
        "rag.Document": 5,
        "rag.Chunk": manifest["counts"]["rag.Chunk"],
        "chat.ChatSession": 2,
        "chat.ChatMessage": 2,
    }
    assert "0001_initial" in manifest["migrations"]["chat"]
    assert backup_verify(path=archive)["files"] == manifest["files"]


def member_bytes(tar: tarfile.TarFile, name: str) -> bytes:
    handle = tar.extractfile(name)
    assert handle is not None
    return handle.read()


def _rewrite_member(archive: Path, target: Path, name: str, edit, *, resign: bool = False) -> None:
    """Copy ``archive`` with one member edited; ``resign`` signs an edited manifest with the right key."""
    with tarfile.open(archive, "r:gz") as source, tarfile.open(target, "w:gz") as out:
        edited_manifest = None
        for member in source.getmembers():
            content = member_bytes(source, member.name)
            if member.name == name:
                content = edit(content)
                edited_manifest = content if name == "manifest.json" else None
            if member.name == "manifest.sig" and resign and edited_manifest is not None:
                content = backups.signature_document(edited_manifest)
            member.size = len(content)
            out.addfile(member, io.BytesIO(content))


def test_a_corrupted_or_tampered_archive_is_refused_with_a_clear_error(data, backup_dir, tmp_path):
    backup_create(directory=backup_dir, keep=8)
    [archive] = backups_list(directory=backup_dir)
    flipped = tmp_path / "flipped.tar.gz"
    raw = bytearray(archive.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    flipped.write_bytes(bytes(raw))
    with pytest.raises(CommandError, match="corrupted"):
        call_command("restore_backup", str(flipped), "--force")

    tampered = tmp_path / "tampered.tar.gz"
    _rewrite_member(
        archive, tampered, "data/users.User.jsonl", lambda b: b.replace(b'"is_staff": true', b'"is_staff": false')
    )
    with pytest.raises(CommandError, match=r"Checksum mismatch for data/users\.User\.jsonl"):
        call_command("restore_backup", str(tampered), "--force")

    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[:-200])
    with pytest.raises(BackupCorrupted):
        backup_verify(path=truncated)
    plain = tmp_path / "plain.tar.gz"
    plain.write_bytes(gzip.compress(b"not a tar"))
    with pytest.raises(BackupCorrupted):
        backup_verify(path=plain)
    assert User.objects.get(pk=data["ann"].pk).is_staff  # nothing was touched


def test_restore_refuses_a_non_empty_database_unless_forced(data, backup_dir):
    backup_create(directory=backup_dir, keep=8)
    [archive] = backups_list(directory=backup_dir)
    before = table_fingerprints()
    extra = UserFactory.create()
    with pytest.raises(RestoreRefused, match="not empty"):
        backup_restore(path=archive, rebuild_index=False)
    dry = backup_restore(path=archive, force=True, dry_run=True)
    assert dry["users"] == 2 and dry["users_to_wipe"] == 3 and User.objects.filter(pk=extra.pk).exists()
    call_command("restore_backup", str(archive), "--force", "--skip-index", stdout=io.StringIO())
    assert table_fingerprints() == before and not User.objects.filter(pk=extra.pk).exists()


def test_a_crash_while_writing_leaves_no_archive_and_no_temporary(data, backup_dir, monkeypatch):
    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tarfile.TarFile, "add", crash)
    with pytest.raises(OSError, match="disk full"):
        backup_create(directory=backup_dir, keep=8)
    assert list(backup_dir.iterdir()) == []


def test_rotation_keeps_the_newest_archives(db, backup_dir):
    start = datetime(2026, 11, 1, 1, 0, tzinfo=UTC)
    for week in range(5):
        backup_create(directory=backup_dir, keep=3, now=start + timedelta(weeks=week))
    names = [p.name for p in backups_list(directory=backup_dir)]
    assert names == [f"ragchat-backup-202611{day:02d}T010000.000000Z.tar.gz" for day in (15, 22, 29)]
    stale = backup_dir / ".ragchat-backup-old.tar.gz.tmp"
    stale.write_bytes(b"half")
    backups._remove_stale_temporaries(backup_dir)
    assert stale.exists()  # too recent to be a leftover


def test_an_archive_from_a_newer_schema_is_refused(data, backup_dir, tmp_path):
    backup_create(directory=backup_dir, keep=8)
    [archive] = backups_list(directory=backup_dir)
    newer = tmp_path / "newer.tar.gz"

    def add_migration(content: bytes) -> bytes:
        manifest = json.loads(content)
        manifest["migrations"]["chat"].append("0099_from_the_future")
        return json.dumps(manifest).encode()

    _rewrite_member(archive, newer, "manifest.json", add_migration, resign=True)
    with pytest.raises(RestoreRefused, match=r"chat\.0099_from_the_future"):
        backup_restore(path=newer, force=True)
