"""Restore: verify a backup archive member by member, load it into an empty database keeping
primary keys, reset the id sequences, then rebuild the vector store (see ``backups`` for the format).

An archive is input like any other: a 412 KB archive once took 2 GB to restore. Before anything is
read the members are counted and sized from their headers (``BACKUP_RESTORE_MAX_MEMBERS``,
``BACKUP_RESTORE_MAX_MEMBER_BYTES``); the manifest and its signature are read with small caps,
and rows are read as lines of at most ``BACKUP_RESTORE_MAX_ROW_BYTES``, so memory stays bounded by
one row whatever the archive inflates to. The manifest's HMAC (``manifest.sig``) must match the
signing key before any checksum in it is believed.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import tarfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from django.apps import apps
from django.conf import settings
from django.core import serializers
from django.core.management.color import no_style
from django.core.serializers.base import DeserializationError
from django.db import DatabaseError, connection, transaction
from django.db.models import Model

from background_tasks.services.backups import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    SIGNATURE,
    SIGNATURE_ALGORITHM,
    TABLES,
    BackupCorrupted,
    BackupError,
    RestoreRefused,
    applied_migrations,
    has_workspaces,
    manifest_signature,
    member_name,
    tables_of,
)
from chat.history import history_changed_for_everyone
from utils.exceptions import ServiceError

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000  # rows per bulk insert or delete
MAX_MANIFEST_BYTES = 1 << 20  # a real manifest is a few KB
MAX_SIGNATURE_BYTES = 4096


class _HashingReader(io.RawIOBase):
    """Hashes the bytes as they are read, so the restore checks what it actually loaded."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.sha = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        self.sha.update(data)
        return len(data)


def _open_member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    try:
        member = tar.getmember(name)
    except KeyError as exc:
        raise BackupCorrupted(f"The archive has no {name}.") from exc
    handle = tar.extractfile(member) if member.isfile() else None
    if handle is None:
        raise BackupCorrupted(f"{name} in the archive is not a regular file.")
    return handle


def _read_capped(handle: IO[bytes], limit: int, name: str) -> bytes:
    data = handle.read(limit + 1)
    if len(data) > limit:
        raise BackupCorrupted(f"{name} is larger than {limit} bytes; this is not a backup written by this application.")
    return data


def _scan_members(tar: tarfile.TarFile) -> None:
    """Count and size the members from their headers before reading any of them: a few hundred KB
    of gzip can declare millions of members or gigabytes of content."""
    limit, max_bytes = settings.BACKUP_RESTORE_MAX_MEMBERS, settings.BACKUP_RESTORE_MAX_MEMBER_BYTES
    seen: set[str] = set()
    member = tar.next()
    while member is not None:
        if len(seen) >= limit:
            raise BackupCorrupted(f"The archive holds more than {limit} members (BACKUP_RESTORE_MAX_MEMBERS).")
        if not member.isfile():
            raise BackupCorrupted(f"{member.name} in the archive is not a regular file.")
        if member.name in seen:
            raise BackupCorrupted(f"{member.name} appears twice in the archive.")
        if member.size > max_bytes:
            raise BackupCorrupted(
                f"{member.name} is {member.size} bytes, over BACKUP_RESTORE_MAX_MEMBER_BYTES ({max_bytes})."
            )
        seen.add(member.name)
        member = tar.next()


def _check_signature(tar: tarfile.TarFile, manifest_bytes: bytes, *, allow_unsigned: bool) -> None:
    names = set(tar.getnames())
    if SIGNATURE not in names:
        if allow_unsigned:
            logger.warning("Restoring an unsigned backup (allow_unsigned)")
            return
        raise BackupCorrupted(
            "The archive is not signed (manifest.sig is missing). Archives written before format version 2 "
            "can be restored with --allow-unsigned if you trust where they come from."
        )
    try:
        document = json.loads(_read_capped(_open_member(tar, SIGNATURE), MAX_SIGNATURE_BYTES, SIGNATURE))
        algorithm, signature = document["algorithm"], document["signature"]
    except (ValueError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise BackupCorrupted("manifest.sig is not a valid signature document.") from exc
    expected = manifest_signature(manifest_bytes)
    valid = isinstance(signature, str) and hmac.compare_digest(signature.encode(), expected.encode())
    if algorithm != SIGNATURE_ALGORITHM or not valid:
        raise BackupCorrupted(
            "The manifest's signature does not match: the archive was modified, or it was signed with another "
            "key (set BACKUP_SIGNING_KEY, or the SECRET_KEY, that wrote it)."
        )


def _manifest_check(manifest: Any) -> dict[str, Any]:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupCorrupted("This is not a backup written by this application (manifest.json has no valid format).")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BackupError(f"Backup format version {version!r} is newer than this code reads ({FORMAT_VERSION}).")
    files, counts = manifest.get("files"), manifest.get("counts")
    expected = {member_name(label) for label in tables_of(manifest)}
    if not isinstance(files, dict) or set(files) != expected or not isinstance(counts, dict):
        raise BackupCorrupted("manifest.json does not list the expected tables and checksums.")
    return manifest


def _read_manifest(tar: tarfile.TarFile, *, allow_unsigned: bool = False) -> dict[str, Any]:
    manifest_bytes = _read_capped(_open_member(tar, MANIFEST), MAX_MANIFEST_BYTES, MANIFEST)
    _check_signature(tar, manifest_bytes, allow_unsigned=allow_unsigned)
    try:
        return _manifest_check(json.loads(manifest_bytes))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BackupCorrupted(f"manifest.json is not valid JSON ({exc}).") from exc


def _rows(reader: _HashingReader, name: str) -> Iterator[str]:
    """The member's lines, none longer than ``BACKUP_RESTORE_MAX_ROW_BYTES``, read in blocks."""
    limit = settings.BACKUP_RESTORE_MAX_ROW_BYTES
    pending = bytearray()
    while block := reader.read(1 << 16):
        start = 0
        while (end := block.find(b"\n", start)) != -1:
            pending += block[start : end + 1]
            start = end + 1
            yield _decode_row(pending, limit, name)
            pending = bytearray()
        pending += block[start:]
        if len(pending) > limit:
            raise BackupCorrupted(f"A row of {name} is longer than BACKUP_RESTORE_MAX_ROW_BYTES ({limit}).")
    if pending:
        yield _decode_row(pending, limit, name)


def _decode_row(row: bytearray, limit: int, name: str) -> str:
    if len(row) > limit:
        raise BackupCorrupted(f"A row of {name} is longer than BACKUP_RESTORE_MAX_ROW_BYTES ({limit}).")
    try:
        return row.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BackupCorrupted(f"{name} is not UTF-8.") from exc


@contextmanager
def _archive(path: Path) -> Iterator[tarfile.TarFile]:
    if not path.is_file():
        raise BackupError(f"No backup archive at {path}.", code="backup_not_found")
    try:
        with tarfile.open(path, "r:gz") as tar:
            yield tar
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise BackupCorrupted(f"{path.name} is corrupted or not a backup archive: {exc}") from exc


def backup_verify(*, path: Path, allow_unsigned: bool = False) -> dict[str, Any]:
    """Check the members' count and sizes, the manifest's signature, and every member's SHA-256
    and row count; returns the manifest."""
    with _archive(path) as tar:
        _scan_members(tar)
        manifest = _read_manifest(tar, allow_unsigned=allow_unsigned)
        extra = {m.name for m in tar.getmembers()} - {MANIFEST, SIGNATURE, *manifest["files"]}
        if extra:
            raise BackupCorrupted(f"The archive holds files its manifest does not list: {sorted(extra)}.")
        for label in tables_of(manifest):
            name = member_name(label)
            reader = _HashingReader(_open_member(tar, name))
            lines = 0
            while block := reader.read(1 << 20):
                lines += block.count(b"\n")
            if reader.sha.hexdigest() != manifest["files"][name]:
                raise BackupCorrupted(f"Checksum mismatch for {name}: the archive is corrupted or was modified.")
            if lines != manifest["counts"].get(label):
                raise BackupCorrupted(f"{name} holds {lines} rows, the manifest says {manifest['counts'].get(label)}.")
    return manifest


def _check_migrations(manifest: dict[str, Any]) -> None:
    applied = applied_migrations()
    missing = [f"{app}.{name}" for app, names in manifest.get("migrations", {}).items() for name in names]
    missing = [m for m in missing if m.partition(".")[2] not in applied.get(m.partition(".")[0], [])]
    if missing:
        raise RestoreRefused(
            f"This database lacks migrations the backup was written with ({', '.join(missing[:5])}): "
            "run `manage.py migrate` first, with the code version that wrote the backup or a newer one."
        )


def _occupied_tables() -> dict[str, int]:
    counts = {label: apps.get_model(label)._default_manager.count() for label in TABLES}
    return {label: n for label, n in counts.items() if n}


def _wipe() -> None:
    from chat.models import IdempotencyRecord  # references messages and sessions

    IdempotencyRecord.objects.all().delete()
    for label in reversed(TABLES):
        model = apps.get_model(label)
        while ids := list(model._default_manager.order_by().values_list("pk", flat=True)[:BATCH_SIZE]):
            model._default_manager.filter(pk__in=ids).delete()


def _needs_raw_save(model: type[Model]) -> bool:
    """Models with auto_now fields or many-to-many links are saved one by one (raw save keeps
    timestamps as stored and sets the links); the rest go in with bulk_create."""
    auto_now = any(getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False) for f in model._meta.fields)
    return auto_now or bool(model._meta.many_to_many)


Prepare = Callable[[Model], None]


def _load(tar: tarfile.TarFile, label: str, expected_sha: str, prepare: Prepare | None = None) -> int:
    """Load one member's rows; ``prepare`` completes each row first (an older archive's)."""
    model = apps.get_model(label)
    reader = _HashingReader(_open_member(tar, member_name(label)))
    raw_save, batch, loaded = _needs_raw_save(model), [], 0
    try:
        for item in serializers.deserialize("jsonl", _rows(reader, member_name(label))):
            if type(item.object) is not model:
                raise BackupCorrupted(f"{member_name(label)} holds a {item.object._meta.label} row.")
            if prepare is not None:
                prepare(item.object)
            if raw_save:
                item.save()
            else:
                batch.append(item.object)
                if len(batch) >= BATCH_SIZE:
                    model._default_manager.bulk_create(batch)
                    batch = []
            loaded += 1
    except DeserializationError as exc:
        raise BackupCorrupted(f"{member_name(label)} could not be read: {exc}") from exc
    if batch:
        model._default_manager.bulk_create(batch)
    if reader.sha.hexdigest() != expected_sha:
        raise BackupCorrupted(f"Checksum mismatch for {member_name(label)} while restoring; nothing was restored.")
    return loaded


def _personal_workspaces() -> Prepare:
    """For an archive written before workspaces: every restored user gets their personal workspace
    (as the workspaces migration gave every existing user), and each session without a workspace
    goes into its user's. Documents without one are the shared knowledge base, as they were."""
    from chat.models import ChatSession
    from users.models import User
    from workspaces.services import workspace_personal_get

    personal = {user.pk: workspace_personal_get(user=user).pk for user in User.objects.order_by("pk").iterator()}

    def attach(row: Model) -> None:
        if isinstance(row, ChatSession) and row.workspace_id is None:
            row.workspace_id = personal[row.user_id]

    return attach


def _load_all(tar: tarfile.TarFile, manifest: dict[str, Any]) -> dict[str, int]:
    counts = {}
    for label in tables_of(manifest):
        legacy_sessions = label == "chat.ChatSession" and not has_workspaces(manifest)
        prepare = _personal_workspaces() if legacy_sessions else None  # the users are loaded by now
        counts[TABLES[label]] = _load(tar, label, manifest["files"][member_name(label)], prepare)
    return counts


def _reset_sequences() -> None:
    statements = connection.ops.sequence_reset_sql(no_style(), [apps.get_model(label) for label in TABLES])
    if statements:
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)


def backup_restore(
    *, path: Path, force: bool = False, dry_run: bool = False, rebuild_index: bool = True, allow_unsigned: bool = False
) -> dict[str, int]:
    """Verify ``path`` and load it into an empty database (``force`` wipes those tables first),
    keeping primary keys; then rebuild the vector store. Returns rows per table."""
    manifest = backup_verify(path=path, allow_unsigned=allow_unsigned)
    _check_migrations(manifest)
    occupied = _occupied_tables()
    if occupied and not force:
        listing = ", ".join(f"{TABLES[label]} ({n})" for label, n in occupied.items())
        raise RestoreRefused(f"The database is not empty: {listing}. Restore into an empty database, or use --force.")
    counts = {TABLES[label]: int(manifest["counts"][label]) for label in tables_of(manifest)}
    if dry_run:
        return counts | {f"{TABLES[label]}_to_wipe": n for label, n in occupied.items()}
    try:
        with _archive(path) as tar, transaction.atomic():
            if occupied:
                _wipe()
            counts = _load_all(tar, manifest)
            _reset_sequences()
            # Every process reloads its lexical index, whether or not the vectors are rebuilt below.
            from rag.services.retrieval import knowledge_base_changed

            knowledge_base_changed()
    except DatabaseError as exc:
        raise BackupError(f"The restore failed and was rolled back: {exc}") from exc
    history_changed_for_everyone()
    logger.info("Restored %s from %s", counts, path.name)
    if rebuild_index:
        from rag.services.ingestion import index_rebuild

        try:
            counts["chunks_indexed"] = index_rebuild()
        except ServiceError as exc:
            raise BackupError(
                f"The data was restored, but the vector store could not be rebuilt ({exc.detail}): "
                "run `manage.py reindex` once the provider answers."
            ) from exc
    return counts
